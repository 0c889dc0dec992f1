"""Strategy for storage.k8s.io/v1 StorageClass (upstream pkg/apis/storage/validation)."""

from __future__ import annotations

from apimachinery.validation import (
    forbidden_cause,
    invalid_cause,
    is_qualified_name,
    required_cause,
    too_many_cause,
    validate_enum,
    validate_immutable,
)
from apimachinery.volumebinding import is_default_class
from apiserver.registry.base import Cause, Obj, Strategy

__all__ = ["StorageClassStrategy", "is_default_class"]

RECLAIM_POLICIES = ("Delete", "Retain")
BINDING_MODES = ("Immediate", "WaitForFirstConsumer")
MAX_PARAMETERS = 512


class StorageClassStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        obj.setdefault("reclaimPolicy", "Delete")
        obj.setdefault("volumeBindingMode", "Immediate")

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate(obj, namespaced)
        provisioner = obj.get("provisioner") or ""
        if not provisioner:
            causes.append(required_cause("provisioner"))
        else:
            causes += [invalid_cause("provisioner", provisioner, m) for m in is_qualified_name(provisioner.lower())]
        params = obj.get("parameters") or {}
        if len(params) > MAX_PARAMETERS:
            causes.append(too_many_cause("parameters", len(params), MAX_PARAMETERS))
        if any(not k for k in params):
            causes.append(invalid_cause("parameters", params, "parameters must contain non-empty keys"))
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
