"""Strategies for storage.k8s.io/v1 StorageClass, VolumeAttributesClass, CSIDriver, CSINode, VolumeAttachment
and CSIStorageCapacity (upstream pkg/apis/storage/validation)."""

from __future__ import annotations

from typing import Any

from apimachinery.validation import (
    child,
    duplicate_cause,
    forbidden_cause,
    index,
    invalid_cause,
    is_dns1123_subdomain,
    is_qualified_name,
    not_supported_cause,
    required_cause,
    too_long_cause,
    type_invalid_cause,
    validate_enum,
    validate_immutable,
)
from apimachinery.volumebinding import is_default_class
from apiserver.registry.base import Cause, Obj, Strategy, as_dict, as_list, as_str

__all__ = ["CSIDriverStrategy", "CSINodeStrategy", "CSIStorageCapacityStrategy", "StorageClassStrategy",
           "VolumeAttachmentStrategy", "VolumeAttributesClassStrategy", "is_default_class"]

RECLAIM_POLICIES = ("Delete", "Retain")
BINDING_MODES = ("Immediate", "WaitForFirstConsumer")
MAX_PARAMETERS = 512
MAX_PARAMETERS_SIZE = 256 * 1024  # bytes of keys and values together


def validate_provisioner(name: Any, path: str) -> list[Cause]:
    """validateProvisioner: required, a qualified name (case-insensitively)."""
    if not name:
        return [required_cause(path)]
    name = as_str(name)
    return [invalid_cause(path, name, m) for m in is_qualified_name(name.lower())]


def validate_parameters(params: Any, allow_empty: bool, path: str = "parameters") -> list[Cause]:
    """validateParameters of StorageClass and VolumeAttributesClass: at most 512 non-empty keys,
    256 KiB in all; a VolumeAttributesClass needs at least one."""
    params = as_dict(params)
    if len(params) > MAX_PARAMETERS:
        return [too_long_cause(path, MAX_PARAMETERS)]
    causes = [invalid_cause(path, k, "field can not be empty.") for k in params if not k]
    if sum(len(str(k).encode()) + len(str(v).encode()) for k, v in params.items()) > MAX_PARAMETERS_SIZE:
        causes.append(too_long_cause(path, MAX_PARAMETERS_SIZE))
    if not allow_empty and not params:
        causes.append(required_cause(path, "must contain at least one key/value pair"))
    return causes


class StorageClassStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        obj.setdefault("reclaimPolicy", "Delete")
        obj.setdefault("volumeBindingMode", "Immediate")

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate(obj, namespaced)
        causes += validate_provisioner(obj.get("provisioner"), "provisioner")
        causes += validate_parameters(obj.get("parameters"), allow_empty=True)
        causes += validate_enum(obj.get("reclaimPolicy"), RECLAIM_POLICIES, "reclaimPolicy")
        causes += validate_enum(obj.get("volumeBindingMode"), BINDING_MODES, "volumeBindingMode")
        return causes

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate_update(new, old, namespaced)
        for f in ("parameters", "provisioner", "reclaimPolicy"):
            if new.get(f) != old.get(f):
                causes.append(forbidden_cause(f, f"updates to {f} are forbidden."))
        causes += validate_immutable(new.get("volumeBindingMode"), old.get("volumeBindingMode"), "volumeBindingMode")
        return causes


class VolumeAttributesClassStrategy(Strategy):
    """Mutable volume attributes a CSI driver applies to volumes whose claims name the class
    (driverName and parameters are immutable, as upstream)."""

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate(obj, namespaced)
        causes += validate_provisioner(obj.get("driverName"), "driverName")
        causes += validate_parameters(obj.get("parameters"), allow_empty=False)
        return causes

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate_update(new, old, namespaced)
        if new.get("driverName") != old.get("driverName"):
            causes.append(forbidden_cause("driverName", "updates to driverName are forbidden."))
        if (new.get("parameters") or {}) != (old.get("parameters") or {}):
            causes.append(forbidden_cause("parameters", "updates to parameters are forbidden."))
        return causes


# -- CSIDriver, CSINode (upstream pkg/apis/storage/validation, v1 defaults) ----------------------

FS_GROUP_POLICIES = ("File", "None", "ReadWriteOnceWithFSType")
VOLUME_LIFECYCLE_MODES = ("Ephemeral", "Persistent")
#: upstream's csiNodeIDLongerMaxLength (the CSINode strategy allows the longer IDs)
MAX_NODE_ID = 256


def validate_csi_driver_name(name: Any, path: str) -> list[Cause]:
    """apivalidation.ValidateCSIDriverName: a DNS subdomain (of any case) of at most 63 characters."""
    if not isinstance(name, str) or not name:
        return [required_cause(path)]
    causes = [too_long_cause(path, 63)] if len(name) > 63 else []
    return causes + [invalid_cause(path, name, m) for m in is_dns1123_subdomain(name.lower())]


class CSIDriverStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        for key, value in (("attachRequired", True), ("podInfoOnMount", False), ("storageCapacity", False),
                           ("fsGroupPolicy", "ReadWriteOnceWithFSType"), ("requiresRepublish", False),
                           ("seLinuxMount", False)):
            if spec.get(key) is None:
                spec[key] = value
        if not spec.get("volumeLifecycleModes"):
            spec["volumeLifecycleModes"] = ["Persistent"]

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate(obj, namespaced)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [*causes, type_invalid_cause("spec", spec, "must be of type object")]
        # upstream's field path says "attachedRequired"
        for key, path in (("attachRequired", "spec.attachedRequired"), ("podInfoOnMount", "spec.podInfoOnMount"),
                          ("storageCapacity", "spec.storageCapacity"), ("seLinuxMount", "spec.seLinuxMount")):
            if spec.get(key) is None:
                causes.append(required_cause(path))
        causes += validate_enum(spec.get("fsGroupPolicy"), FS_GROUP_POLICIES, "spec.fsGroupPolicy")
        audiences: set[str] = set()
        for i, tr in enumerate(as_list(spec.get("tokenRequests"))):
            p = index("spec.tokenRequests", i)
            tr = as_dict(tr)
            audience = as_str(tr.get("audience"))
            if audience in audiences:
                causes.append(duplicate_cause(child(p, "audience"), audience))
                continue
            audiences.add(audience)
            seconds = tr.get("expirationSeconds")
            if isinstance(seconds, int) and not isinstance(seconds, bool):
                if seconds < 600:
                    causes.append(invalid_cause(child(p, "expirationSeconds"), seconds,
                                                "may not specify a duration less than 10 minutes"))
                if seconds > 1 << 32:
                    causes.append(invalid_cause(child(p, "expirationSeconds"), seconds,
                                                "may not specify a duration larger than 2^32 seconds"))
        for i, mode in enumerate(as_list(spec.get("volumeLifecycleModes"))):
            if mode not in VOLUME_LIFECYCLE_MODES:
                causes.append(not_supported_cause(index("spec.volumeLifecycleModes", i), mode, VOLUME_LIFECYCLE_MODES))
        return causes

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate_update(new, old, namespaced)
        spec, old_spec = as_dict(new.get("spec")), as_dict(old.get("spec"))
        causes += validate_immutable(spec.get("attachRequired"), old_spec.get("attachRequired"), "spec.attachedRequired")
        causes += validate_immutable(spec.get("volumeLifecycleModes"), old_spec.get("volumeLifecycleModes"),
                                     "spec.volumeLifecycleModes")
        return causes


class CSINodeStrategy(Strategy):
    """One per node, named after it; what its CSI drivers registered (by the kubelet upstream)."""

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate(obj, namespaced)
        spec = obj.get("spec")
        if spec is not None and not isinstance(spec, dict):
            return [*causes, type_invalid_cause("spec", spec, "must be of type object")]
        names: set[str] = set()
        for i, driver in enumerate(as_list(as_dict(spec).get("drivers"))):
            p = index("spec.drivers", i)
            driver = as_dict(driver)
            name = driver.get("name")
            causes += validate_csi_driver_name(name, child(p, "name"))
            node_id = as_str(driver.get("nodeID"))
            if not node_id:
                causes.append(required_cause(child(p, "nodeID")))
            if len(node_id) > MAX_NODE_ID:
                causes.append(invalid_cause(child(p, "nodeID"), node_id, f"must be {MAX_NODE_ID} characters or less"))
            count = as_dict(driver.get("allocatable")).get("count")
            if isinstance(count, int) and count < 0:
                causes.append(invalid_cause(child(child(p, "allocatable"), "count"), count,
                                            "must be greater than or equal to 0"))
            if isinstance(name, str) and name in names:
                causes.append(duplicate_cause(child(p, "name"), name))
            names.add(str(name))
            keys: set[str] = set()
            for key in as_list(driver.get("topologyKeys")):  # upstream reports these at the driver's path
                key = as_str(key)
                if not key:
                    causes.append(required_cause(p))
                if key in keys:
                    causes.append(duplicate_cause(p, key))
                keys.add(key)
                causes += [invalid_cause(p, key, m) for m in is_qualified_name(key)]
        return causes

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate_update(new, old, namespaced)
        new_drivers = as_list(as_dict(new.get("spec")).get("drivers"))
        for old_driver in as_list(as_dict(old.get("spec")).get("drivers")):
            for new_driver in new_drivers:  # a registered driver's entry stays as it is
                if as_dict(new_driver).get("name") == as_dict(old_driver).get("name") and new_driver != old_driver:
                    causes += validate_immutable(new_driver, old_driver, "spec.drivers")
        return causes


# -- VolumeAttachment, CSIStorageCapacity ---------------------------------------------------------

#: upstream's maxAttachedVolumeMetadataSize and maxVolumeErrorMessageSize
MAX_ATTACHMENT_METADATA = 256 * 1024
MAX_VOLUME_ERROR_MESSAGE = 1024


def _volume_error(e: Any, path: str) -> list[Cause]:
    if not isinstance(e, dict):
        return []
    causes: list[Cause] = []
    if len(as_str(e.get("message"))) > MAX_VOLUME_ERROR_MESSAGE:
        # (upstream names the metadata limit here)
        causes.append(too_long_cause(child(path, "message"), MAX_ATTACHMENT_METADATA))
    code = e.get("errorCode")
    if isinstance(code, int) and code < 0:
        causes.append(invalid_cause(child(path, "errorCode"), code, "must be between 0 and 2147483647, inclusive"))
    return causes


class VolumeAttachmentStrategy(Strategy):
    """What the attach/detach controller asks a CSI attacher to do; the spec never changes."""

    has_status = True

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        from apiserver.registry.persistentvolume import validate_pv_spec

        causes = super().validate(obj, namespaced)
        spec = as_dict(obj.get("spec"))
        attacher = spec.get("attacher")
        if not attacher:
            causes.append(required_cause("spec.attacher"))
        source = as_dict(spec.get("source"))
        pv, inline = source.get("persistentVolumeName"), source.get("inlineVolumeSpec")
        if pv is None and inline is None:
            causes.append(required_cause("spec.source", "must specify exactly one of inlineVolumeSpec and "
                                                        "persistentVolumeName"))
        elif pv is not None and inline is not None:
            causes.append(forbidden_cause("spec.source", "must specify exactly one of inlineVolumeSpec and "
                                                         "persistentVolumeName"))
        elif pv is not None and not pv:
            causes.append(required_cause("spec.source.persistentVolumeName", "must specify non empty "
                                                                             "persistentVolumeName"))
        elif inline is not None:
            causes += validate_pv_spec(inline, "spec.source.inlineVolumeSpec", inline=True)
        node = as_str(spec.get("nodeName"))
        causes += [invalid_cause("spec.nodeName", node, m) for m in is_dns1123_subdomain(node)]
        status = as_dict(obj.get("status"))
        metadata = as_dict(status.get("attachmentMetadata"))
        if sum(len(str(k)) + len(str(v)) for k, v in metadata.items()) > MAX_ATTACHMENT_METADATA:
            causes.append(too_long_cause("status.attachmentMetadata", MAX_ATTACHMENT_METADATA))
        causes += _volume_error(status.get("attachError"), "status.attachError")
        causes += _volume_error(status.get("detachError"), "status.detachError")
        # v1's own checks, after the shared ones (upstream's ValidateVolumeAttachmentV1)
        if attacher:
            causes += validate_csi_driver_name(attacher, "spec.attacher")
        if isinstance(pv, str) and pv:
            causes += [invalid_cause("spec.source.persistentVolumeName", pv, m) for m in is_dns1123_subdomain(pv)]
        return causes

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate_update(new, old, namespaced)
        return causes + validate_immutable(new.get("spec"), old.get("spec"), "spec")

    def validate_status_update(self, new: Obj, old: Obj) -> list[Cause]:
        return self.validate(new, namespaced=False)


class CSIStorageCapacityStrategy(Strategy):
    """Capacity a CSI driver reports for a storage class in a topology segment (namespaced)."""

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        from apimachinery.validation import validate_label_selector, validate_quantity

        causes = super().validate(obj, namespaced)
        causes += validate_label_selector(obj.get("nodeTopology"), "nodeTopology")
        sc = as_str(obj.get("storageClassName"))
        causes += [invalid_cause("storageClassName", sc, m) for m in is_dns1123_subdomain(sc)]
        if obj.get("capacity") is not None:  # (upstream checks capacity only, not maximumVolumeSize)
            causes += validate_quantity(obj["capacity"], "capacity")
        return causes

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate_update(new, old, namespaced)
        causes += validate_immutable(new.get("nodeTopology"), old.get("nodeTopology"), "nodeTopology")
        return causes + validate_immutable(new.get("storageClassName"), old.get("storageClassName"), "storageClassName")
