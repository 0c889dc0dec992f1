"""Which PersistentVolume may satisfy a PersistentVolumeClaim: one set of rules for the PV binder
(controller-manager) and the scheduler's VolumeBinding plugin (upstream
pkg/controller/volume/persistentvolume/util: FindMatchingVolume, CheckVolumeModeMismatches,
CheckAccessModes, IsVolumeBoundToClaim).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

from apimachinery.quantity import value as quantity_value
from apimachinery.selectors import selector_from_label_selector

Obj = dict[str, Any]

#: on a PVC: the binding is complete (set by the binder when it bound the claim)
ANN_BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
#: on a PV or PVC: the binder (or the scheduler), not the user, set the binding
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
#: on a PV: the provisioner that created it
ANN_DYNAMICALLY_PROVISIONED = "pv.kubernetes.io/provisioned-by"
#: on a PVC: the provisioner asked to provision it (and the beta name, still set by upstream)
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
#: on a PVC of a WaitForFirstConsumer class: the node the scheduler chose for its first pod
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
#: a StorageClass provisioner that provisions nothing (statically provisioned local volumes)
NO_PROVISIONER = "kubernetes.io/no-provisioner"

WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"
BETA_STORAGE_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"
#: finalizers the StorageObjectInUseProtection admission plugin adds and the protection controllers remove
PVC_PROTECTION_FINALIZER = "kubernetes.io/pvc-protection"
PV_PROTECTION_FINALIZER = "kubernetes.io/pv-protection"
DEFAULT_CLASS_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class",
                             "storageclass.beta.kubernetes.io/is-default-class")


def annotations(obj: Obj) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def is_default_class(cls: Obj) -> bool:
    """The StorageClass is marked as the cluster's default."""
    return any(annotations(cls).get(a) == "true" for a in DEFAULT_CLASS_ANNOTATIONS)


def storage_class_name(obj: Obj) -> str:
    """A claim's or volume's class name ("" for none); the beta annotation wins, as upstream's
    GetPersistentVolumeClaimClass / GetPersistentVolumeClass."""
    beta = annotations(obj).get(BETA_STORAGE_CLASS_ANNOTATION)
    if beta is not None:
        return beta
    return (obj.get("spec") or {}).get("storageClassName") or ""



def is_delay_binding(claim: Obj, get_class: Callable[[str], Obj | None]) -> bool:
    """The claim's class exists and is WaitForFirstConsumer (no class, or a missing one: Immediate)."""
    name = storage_class_name(claim)
    cls = get_class(name) if name else None
    return cls is not None and cls.get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER


def is_bound_to(volume: Obj, claim: Obj) -> bool:
    """The volume's claimRef names this claim (a claimRef without uid is a pre-binding by name)."""
    ref = (volume.get("spec") or {}).get("claimRef")
    if not ref:
        return False
    meta = claim["metadata"]
    if ref.get("name") != meta["name"] or (ref.get("namespace") or "") != (meta.get("namespace") or ""):
        return False
    return not ref.get("uid") or ref["uid"] == meta.get("uid")


def claim_ref(claim: Obj) -> Obj:
    meta = claim["metadata"]
    return {"kind": "PersistentVolumeClaim", "namespace": meta.get("namespace"), "name": meta["name"],
            "uid": meta.get("uid"), "apiVersion": "v1", "resourceVersion": meta.get("resourceVersion")}


def bind_volume_to_claim(pv: Obj, claim: Obj) -> tuple[Obj, bool]:
    """(a copy of `pv` pre-bound to `claim`, whether anything changed) — upstream GetBindVolumeToClaim:
    the claimRef (with the claim's uid), and `bound-by-controller` unless the volume named the claim
    already (a user's pre-binding stays the user's)."""
    already = is_bound_to(pv, claim)
    out: Obj = copy.deepcopy(pv)
    dirty = False
    ref = (pv.get("spec") or {}).get("claimRef") or {}
    if not already or (ref.get("uid") or "") != (claim["metadata"].get("uid") or ""):
        out.setdefault("spec", {})["claimRef"] = claim_ref(claim)
        dirty = True
    ann = out.setdefault("metadata", {}).setdefault("annotations", {})
    if not already and ANN_BOUND_BY_CONTROLLER not in ann:
        ann[ANN_BOUND_BY_CONTROLLER] = "yes"
        dirty = True
    return out, dirty


def volume_mode_mismatch(claim: Obj, volume: Obj) -> bool:
    want = (claim.get("spec") or {}).get("volumeMode") or "Filesystem"
    have = (volume.get("spec") or {}).get("volumeMode") or "Filesystem"
    return want != have


def access_modes_fit(claim: Obj, volume: Obj) -> bool:
    have = set((volume.get("spec") or {}).get("accessModes") or [])
    return set((claim.get("spec") or {}).get("accessModes") or []) <= have


def requested_bytes(claim: Obj) -> int:
    storage = (((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")
    return quantity_value(storage) if storage is not None else 0


def capacity_bytes(volume: Obj) -> int:
    storage = ((volume.get("spec") or {}).get("capacity") or {}).get("storage")
    return quantity_value(storage) if storage is not None else 0


def selector_matches(claim: Obj, volume: Obj) -> bool:
    selector = (claim.get("spec") or {}).get("selector")
    if not selector:
        return True
    try:
        return selector_from_label_selector(selector).matches((volume.get("metadata") or {}).get("labels") or {})
    except ValueError:
        return False


def find_best_match(claim: Obj, volumes: Iterable[Obj], delay_binding: bool,
                    fits_node: Callable[[Obj], bool] | None = None,
                    excluded: set[str] | frozenset[str] = frozenset()) -> Obj | None:
    """upstream's FindMatchingVolume: the smallest Available volume that satisfies the claim — or
    a volume pre-bound to it, which wins over everything (and on a node it does not fit, there is
    no match at all). With `delay_binding` (a WaitForFirstConsumer class) and no node (`fits_node`
    None) only pre-bound volumes match; with a node, volumes must fit it."""
    want = requested_bytes(claim)
    cls = storage_class_name(claim)
    wanted_name = (claim.get("spec") or {}).get("volumeName") or ""
    best: Obj | None = None
    best_size = 0
    for volume in volumes:
        name = volume["metadata"]["name"]
        if name in excluded or (wanted_name and name != wanted_name):
            continue
        size = capacity_bytes(volume)
        if size < want or volume_mode_mismatch(claim, volume) or volume["metadata"].get("deletionTimestamp"):
            continue
        fits = fits_node is None or fits_node(volume)
        if is_bound_to(volume, claim):
            return volume if fits else None
        if delay_binding and fits_node is None:
            continue
        if ((volume.get("status") or {}).get("phase") or "Available") != "Available":
            continue
        if (volume.get("spec") or {}).get("claimRef"):
            continue
        if not selector_matches(claim, volume) or storage_class_name(volume) != cls:
            continue
        if not fits or not access_modes_fit(claim, volume):
            continue
        if best is None or size < best_size:
            best, best_size = volume, size
    return best


def volume_satisfies_claim(volume: Obj, claim: Obj) -> str:
    """Why a volume the claim names cannot be bound to it ("" when it can): upstream's
    checkVolumeSatisfyClaim (the selector and phase do not count for a volume asked for by name)."""
    if volume["metadata"].get("deletionTimestamp"):
        return f'the volume is marked for deletion "{volume["metadata"]["name"]}"'
    if capacity_bytes(volume) < requested_bytes(claim):
        return "requested PV is too small"
    if storage_class_name(volume) != storage_class_name(claim):
        return "storageClassName does not match"
    if volume_mode_mismatch(claim, volume):
        return "incompatible volumeMode"
    if not access_modes_fit(claim, volume):
        return "incompatible accessMode"
    return ""


def pod_claim_names(pod: Obj) -> list[tuple[str, bool]]:
    """(claim name, generic ephemeral?) for each of the pod's volumes backed by a claim, in order:
    `persistentVolumeClaim.claimName`, or for an ephemeral volume the claim its controller
    creates, `<pod name>-<volume name>`."""
    out: list[tuple[str, bool]] = []
    for v in (pod.get("spec") or {}).get("volumes") or []:
        pvc = v.get("persistentVolumeClaim")
        if pvc is not None:
            out.append((pvc.get("claimName") or "", False))
        elif v.get("ephemeral") is not None:
            out.append((ephemeral_claim_name(pod, v), True))
    return out


def ephemeral_claim_name(pod: Obj, volume: Obj) -> str:
    return f"{pod['metadata']['name']}-{volume['name']}"


def ephemeral_claim_error(pod: Obj, claim: Obj) -> str | None:
    """Why `claim` is not the generic ephemeral volume claim of `pod` (upstream VolumeIsForPod)."""
    uid = pod["metadata"].get("uid")
    if not any(ref.get("uid") == uid and ref.get("controller")
               for ref in (claim.get("metadata") or {}).get("ownerReferences") or []):
        ns = pod["metadata"].get("namespace")
        return f"PVC {ns}/{claim['metadata']['name']} was not created for pod {ns}/{pod['metadata']['name']} (pod is not owner)"
    return None
