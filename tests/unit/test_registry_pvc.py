"""PersistentVolumeClaim updates (apiserver.registry.persistentvolume.PVCStrategy): the spec is
immutable except what upstream's ValidatePersistentVolumeClaimUpdate lets change."""

from __future__ import annotations

import copy

from apiserver.registry.persistentvolume import PVCStrategy


def claim(cls: str | None = None, beta: str | None = None) -> dict:
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
            "volumeMode": "Filesystem"}
    if cls is not None:
        spec["storageClassName"] = cls
    meta = {"name": "c", "namespace": "ns"}
    if beta is not None:
        meta["annotations"] = {"volume.beta.kubernetes.io/storage-class": beta}
    return {"metadata": meta, "spec": spec, "status": {"phase": "Pending"}}


def errors(old: dict, new: dict) -> list[str]:
    return [c["message"] for c in PVCStrategy().validate_update(new, old, True) if c["field"] == "spec"]


def test_a_claim_without_a_class_may_get_one_later():
    old = claim()
    new = copy.deepcopy(old)
    new["spec"]["storageClassName"] = "standard"  # the binder's retroactive default class
    assert errors(old, new) == []


def test_a_class_once_set_or_named_by_the_beta_annotation_stays():
    old = claim("fast")
    new = copy.deepcopy(old)
    new["spec"]["storageClassName"] = "standard"
    assert errors(old, new)
    old = claim(beta="fast")
    new = copy.deepcopy(old)
    new["spec"]["storageClassName"] = "standard"
    assert errors(old, new)
    old = claim("")  # "" is a class choice too: no class, and it stays that way
    new = copy.deepcopy(old)
    new["spec"]["storageClassName"] = "standard"
    assert errors(old, new)
