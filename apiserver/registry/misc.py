"""Strategies for coordination, discovery, policy and scheduling kinds."""

from __future__ import annotations

from apimachinery.validation import invalid_cause, not_supported_cause, required_cause
from apiserver.registry.base import Cause, Obj, Strategy


class LeaseStrategy(Strategy):
    allow_create_on_update = True


class EndpointSliceStrategy(Strategy):
    tracks_generation = True
    ADDRESS_TYPES = ("IPv4", "IPv6", "FQDN")

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate(obj, namespaced)
        at = obj.get("addressType")
        if at is None:
            causes.append(required_cause("addressType"))
        elif at not in self.ADDRESS_TYPES:
            causes.append(not_supported_cause("addressType", at, self.ADDRESS_TYPES))
        eps = obj.get("endpoints") or []
        if len(eps) > 1000:
            causes.append(invalid_cause("endpoints", len(eps), "must have at most 1000 items"))
        for i, ep in enumerate(eps):
            addrs = ep.get("addresses") if isinstance(ep, dict) else None
            if not addrs:
                causes.append(required_cause(f"endpoints[{i}].addresses"))
        return causes

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate_update(new, old, namespaced)
        if new.get("addressType") != old.get("addressType"):
            causes.append(invalid_cause("addressType", new.get("addressType"), "field is immutable"))
        return causes

    def spec_changed(self, new: Obj, old: Obj) -> bool:
        # no spec: the generation follows any change outside metadata (upstream)
        return {k: v for k, v in new.items() if k != "metadata"} != {k: v for k, v in old.items() if k != "metadata"}


class PDBStrategy(Strategy):
    has_status = True
    tracks_generation = True

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate(obj, namespaced)
        spec = obj.get("spec") or {}
        if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
            causes.append(invalid_cause("spec", spec, "minAvailable and maxUnavailable cannot be both set"))
        return causes


class PriorityClassStrategy(Strategy):
    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate(obj, namespaced)
        v = obj.get("value")
        if not isinstance(v, int) or isinstance(v, bool):
            causes.append(required_cause("value"))
        elif v > 1_000_000_000 and not obj["metadata"].get("name", "").startswith("system-"):
            causes.append(invalid_cause("value", v, "must be less than or equal to 1000000000 for user-defined priority classes"))
        pp = obj.get("preemptionPolicy")
        if pp is not None and pp not in ("PreemptLowerPriority", "Never"):
            causes.append(not_supported_cause("preemptionPolicy", pp, ("Never", "PreemptLowerPriority")))
        return causes

    def default(self, obj: Obj) -> None:
        obj.setdefault("preemptionPolicy", "PreemptLowerPriority")

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate_update(new, old, namespaced)
        if new.get("value") != old.get("value"):
            causes.append(invalid_cause("value", new.get("value"), "field is immutable"))
        return causes
