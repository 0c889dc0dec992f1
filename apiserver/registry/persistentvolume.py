"""Strategies for v1 PersistentVolume and PersistentVolumeClaim (upstream pkg/apis/core/validation:
ValidatePersistentVolume(Update), ValidatePersistentVolumeClaim(Update); defaults from
pkg/apis/core/v1/defaults.go)."""

from __future__ import annotations

import copy
from typing import Any

from apimachinery.meta import now
from apimachinery.quantity import QuantityError, parse_quantity
from apimachinery.validation import (
    forbidden_cause,
    invalid_cause,
    is_dns1123_subdomain,
    name_is_dns_label,
    not_supported_cause,
    required_cause,
    validate_enum,
    validate_immutable,
    validate_node_selector,
)
from apimachinery.volumebinding import BETA_STORAGE_CLASS_ANNOTATION
from apiserver.registry.base import Cause, Obj, Strategy, default_field

ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")
RECLAIM_POLICIES = ("Delete", "Recycle", "Retain")
VOLUME_MODES = ("Block", "Filesystem")
#: the PersistentVolumeSource members (one of them, exactly)
VOLUME_SOURCES = (
    "awsElasticBlockStore", "azureDisk", "azureFile", "cephfs", "cinder", "csi", "fc", "flexVolume", "flocker",
    "gcePersistentDisk", "glusterfs", "hostPath", "iscsi", "local", "nfs", "photonPersistentDisk",
    "portworxVolume", "quobyte", "rbd", "scaleIO", "storageos", "vsphereVolume",
)


def _access_modes(spec: Obj, path: str) -> list[Cause]:
    modes = spec.get("accessModes") or []
    if not modes:
        return [required_cause(path, "at least 1 access mode is required")]
    causes = [not_supported_cause(path, m, ACCESS_MODES) for m in modes if m not in ACCESS_MODES]
    if "ReadWriteOncePod" in modes and len(modes) > 1:
        causes.append(forbidden_cause(path, "may not use ReadWriteOncePod with other access modes"))
    return causes


def _storage(resources: Any, path: str, what: str) -> list[Cause]:
    storage = (resources or {}).get("storage") if isinstance(resources, dict) else None
    if storage is None:
        return [required_cause(f"{path}[storage]", "")]
    try:
        q = parse_quantity(storage)
    except (QuantityError, TypeError):
        return [invalid_cause(f"{path}[storage]", storage, "quantities must match the regular expression "
                              "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    if q <= 0:
        return [invalid_cause(f"{path}[storage]", storage, f"must be greater than zero{what}")]
    return []


def validate_pv_spec(spec: Obj, path: str, inline: bool = False) -> list[Cause]:
    """ValidatePersistentVolumeSpec; `inline`: a VolumeAttachment's inlineVolumeSpec (a CSI source, no
    capacity, no claimRef)."""
    if not isinstance(spec, dict):
        return [invalid_cause(path, spec, "must be an object")]
    causes: list[Cause] = []
    if inline:
        for key in ("claimRef", "capacity"):
            if spec.get(key):
                causes.append(forbidden_cause(f"{path}.{key}", "may not be specified in the context of inline volumes"))
        if spec.get("csi") is None:
            causes.append(required_cause(f"{path}.csi", "has to be specified in the context of inline volumes"))
    causes += _access_modes(spec, f"{path}.accessModes")
    if not inline:
        causes += _storage(spec.get("capacity"), f"{path}.capacity", "")
    causes += validate_enum(spec.get("persistentVolumeReclaimPolicy"), RECLAIM_POLICIES,
                            f"{path}.persistentVolumeReclaimPolicy", required=False)
    causes += validate_enum(spec.get("volumeMode"), VOLUME_MODES, f"{path}.volumeMode", required=False)
    sources = [s for s in VOLUME_SOURCES if spec.get(s) is not None]
    if not sources:
        causes.append(required_cause(path, "must specify a volume type"))
    elif len(sources) > 1:
        causes.append(forbidden_cause(f"{path}.{sources[1]}", "may not specify more than 1 volume type"))
    for kind in ("hostPath", "local"):
        src = spec.get(kind)
        if isinstance(src, dict) and not src.get("path"):
            causes.append(required_cause(f"{path}.{kind}.path", ""))
    node_affinity = spec.get("nodeAffinity")
    if isinstance(node_affinity, dict):  # upstream validateVolumeNodeAffinity
        if node_affinity.get("required") is not None:
            causes += validate_node_selector(node_affinity["required"], f"{path}.nodeAffinity.required")
        else:
            causes.append(required_cause(f"{path}.nodeAffinity.required", "must specify required node constraints"))
    if isinstance(spec.get("local"), dict) and node_affinity is None:
        causes.append(required_cause(f"{path}.nodeAffinity", "Local volume requires node affinity"))
    return causes


class _StorageObjectStrategy(Strategy):
    """Both kinds: a status subresource, born Pending, volumeMode defaulted to Filesystem."""

    has_status = True

    def initial_status(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Pending"}

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            spec.setdefault("volumeMode", "Filesystem")


class PVStrategy(_StorageObjectStrategy):
    def initial_status(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Pending", "lastPhaseTransitionTime": now()}

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        """A phase change stamps status.lastPhaseTransitionTime unless the writer set a new one
        (upstream's PV status strategy)."""
        merged = super().prepare_for_status_update(new, old)
        before, after = old.get("status") or {}, merged.get("status")
        if isinstance(after, dict) and after.get("phase") != before.get("phase"):
            stamp = after.get("lastPhaseTransitionTime")
            if stamp is None or stamp == before.get("lastPhaseTransitionTime"):
                merged["status"] = {**after, "lastPhaseTransitionTime": now()}
        return merged

    def default(self, obj: Obj) -> None:
        super().default(obj)
        spec = obj.get("spec")
        if isinstance(spec, dict):
            default_field(spec, "persistentVolumeReclaimPolicy", "Retain")

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        return super().validate(obj, namespaced) + validate_pv_spec(obj.get("spec") or {}, "spec")

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate_update(new, old, namespaced)
        ns, os_ = new.get("spec") or {}, old.get("spec") or {}
        for s in VOLUME_SOURCES:
            if ns.get(s) != os_.get(s):
                causes.append(forbidden_cause("spec.persistentvolumesource",
                                              "spec.persistentvolumesource is immutable after creation"))
                break
        causes += validate_immutable(ns.get("volumeMode") or "Filesystem", os_.get("volumeMode") or "Filesystem",
                                     "volumeMode")
        if os_.get("nodeAffinity"):
            causes += validate_immutable(ns.get("nodeAffinity"), os_.get("nodeAffinity"), "nodeAffinity")
        return causes


def _class_set_from_nil(old: Obj, new: Obj) -> bool:
    """upstream's validateStorageClassUpgradeFromNil: a claim created with no class at all may get
    one later (the retroactive default class), unless a beta annotation names another."""
    def beta(obj: Obj) -> str | None:
        return ((obj.get("metadata") or {}).get("annotations") or {}).get(BETA_STORAGE_CLASS_ANNOTATION)

    was, now = (old.get("spec") or {}).get("storageClassName"), (new.get("spec") or {}).get("storageClassName")
    return was is None and beta(old) is None and now is not None and beta(new) in (None, now)


def _data_source(ref: Any, path: str) -> list[Cause]:
    """upstream validateDataSource / validateDataSourceRef."""
    if not isinstance(ref, dict):
        return [invalid_cause(path, ref, "must be an object")]
    causes = [required_cause(f"{path}.{f}") for f in ("name", "kind") if not ref.get(f)]
    group = ref.get("apiGroup") or ""
    if not group and ref.get("kind") != "PersistentVolumeClaim":
        causes.append(invalid_cause(path, ref.get("kind") or "", "must be 'PersistentVolumeClaim' when referencing "
                                                                  "the default apiGroup"))
    causes += [invalid_cause(f"{path}.apiGroup", group, m) for m in (is_dns1123_subdomain(group) if group else [])]
    namespace = ref.get("namespace")
    if namespace:
        causes += [invalid_cause(f"{path}.namespace", namespace, m) for m in name_is_dns_label(str(namespace))]
    return causes


def _same_source(source: Obj, ref: Obj) -> bool:
    return all(source.get(f) == ref.get(f) for f in ("apiGroup", "kind", "name"))


def normalize_data_sources(spec: Obj) -> None:
    """A claim's dataSource and dataSourceRef say the same (upstream NormalizeDataSources, with
    AnyVolumeDataSource on): the one set is copied into the other; a cross-namespace
    dataSourceRef has no dataSource."""
    source, ref = spec.get("dataSource"), spec.get("dataSourceRef")
    if isinstance(source, dict) and ref is None:
        spec["dataSourceRef"] = {k: source[k] for k in ("apiGroup", "kind", "name") if k in source}
    elif isinstance(ref, dict) and source is None and not ref.get("namespace"):
        spec["dataSource"] = {k: ref[k] for k in ("apiGroup", "kind", "name") if k in ref}


#: the dataSource kinds claims could name before dataSourceRef (upstream dataSourceIsEnabled)
_LEGACY_DATA_SOURCES = {("", "PersistentVolumeClaim"), ("snapshot.storage.k8s.io", "VolumeSnapshot")}


class PVCStrategy(_StorageObjectStrategy):
    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        spec = obj.get("spec")
        if isinstance(spec, dict):
            source = spec.get("dataSource")
            # upstream EnforceDataSourceBackwardsCompatibility: other kinds belong in dataSourceRef
            if isinstance(source, dict) and (source.get("apiGroup") or "", source.get("kind")) not in _LEGACY_DATA_SOURCES:
                spec.pop("dataSource")
            normalize_data_sources(spec)

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate(obj, namespaced)
        spec = obj.get("spec") or {}
        causes += _access_modes(spec, "spec.accessModes")
        causes += _storage((spec.get("resources") or {}).get("requests"), "spec.resources", "")
        causes += validate_enum(spec.get("volumeMode"), VOLUME_MODES, "spec.volumeMode", required=False)
        source, ref = spec.get("dataSource"), spec.get("dataSourceRef")
        if source is not None:
            causes += _data_source(source, "spec.dataSource")
        if ref is not None:
            causes += _data_source(ref, "spec.dataSourceRef")
        if isinstance(ref, dict) and ref.get("namespace"):
            if source is not None:
                causes.append(invalid_cause("spec", "spec.dataSource",
                                            "may not be specified when dataSourceRef.namespace is specified"))
        elif isinstance(source, dict) and isinstance(ref, dict) and not _same_source(source, ref):
            causes.append(invalid_cause("spec", "spec.dataSource", "must match dataSourceRef"))
        return causes

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate_update(new, old, namespaced)
        ns, os_ = new.get("spec") or {}, old.get("spec") or {}
        # what may change: volumeName when it was empty (binding), the requested size of a bound
        # claim (expansion), and the VolumeAttributesClass
        want, had = copy.deepcopy(ns), copy.deepcopy(os_)
        if not had.get("volumeName"):
            had["volumeName"] = want.get("volumeName")
        if _class_set_from_nil(old, new):
            had["storageClassName"] = want["storageClassName"]
        bound = (old.get("status") or {}).get("phase") == "Bound"
        if bound:
            had["resources"] = {**(had.get("resources") or {}), "requests": (want.get("resources") or {}).get("requests")}
        for spec in (want, had):  # objects written before volumeMode was defaulted
            spec.setdefault("volumeMode", "Filesystem")
        had["volumeAttributesClassName"] = want.get("volumeAttributesClassName")
        if {k: v for k, v in want.items() if v is not None} != {k: v for k, v in had.items() if v is not None}:
            causes.append(forbidden_cause("spec", "spec is immutable after creation except resources.requests and "
                                                  "volumeAttributesClassName for bound claims"))
        elif bound:
            causes += _storage((ns.get("resources") or {}).get("requests"), "spec.resources.requests", "")
            before = ((os_.get("resources") or {}).get("requests") or {}).get("storage")
            after = ((ns.get("resources") or {}).get("requests") or {}).get("storage")
            try:
                if before is not None and after is not None and parse_quantity(after) < parse_quantity(before):
                    causes.append(forbidden_cause("spec.resources.requests.storage",
                                                  "field can not be less than status.capacity"))
            except (QuantityError, TypeError):
                pass
        return causes
