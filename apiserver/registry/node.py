"""node.k8s.io: RuntimeClass — a name pods use for one of the nodes' container runtime handlers,
with the pod overhead and scheduling constraints that runtime brings (upstream's
pkg/apis/node/validation)."""

from __future__ import annotations

from apimachinery.validation import (
    child,
    duplicate_cause,
    invalid_cause,
    is_dns1123_label,
    validate_immutable,
    validate_labels,
)
from apiserver.registry.base import Cause, Obj, Strategy
from apiserver.registry.podspec import validate_overhead, validate_tolerations


class RuntimeClassStrategy(Strategy):
    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate(obj, namespaced)
        handler = obj.get("handler", "")
        if not isinstance(handler, str):
            causes.append(invalid_cause("handler", handler, "must be a string"))
        else:  # upstream's NameIsDNSLabel: an empty handler is an invalid one, not a missing one
            causes += [invalid_cause("handler", handler, msg) for msg in is_dns1123_label(handler)]
        overhead = obj.get("overhead")
        if overhead is not None:
            if not isinstance(overhead, dict):
                causes.append(invalid_cause("overhead", overhead, "must be an object"))
            elif overhead.get("podFixed") is not None:
                causes += validate_overhead(overhead["podFixed"], "overhead")
        scheduling = obj.get("scheduling")
        if scheduling is not None:
            causes += _validate_scheduling(scheduling)
        return causes

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate_update(new, old, namespaced)
        return causes + validate_immutable(new.get("handler"), old.get("handler"), "handler")


def _validate_scheduling(scheduling: object) -> list[Cause]:
    if not isinstance(scheduling, dict):
        return [invalid_cause("scheduling", scheduling, "must be an object")]
    causes: list[Cause] = []
    selector = scheduling.get("nodeSelector")
    if selector is not None:
        if isinstance(selector, dict):
            causes += validate_labels(selector, "scheduling.nodeSelector")
        else:
            causes.append(invalid_cause("scheduling.nodeSelector", selector, "must be an object"))
    path = child("scheduling", "tolerations")
    tolerations = scheduling.get("tolerations")
    causes += validate_tolerations(tolerations, path)
    # a toleration's identity (upstream's list keys) may appear once
    seen: set[tuple] = set()
    for i, t in enumerate(tolerations if isinstance(tolerations, list) else []):
        if not isinstance(t, dict):
            continue
        identity = (t.get("key", ""), t.get("operator", ""), t.get("value", ""), t.get("effect", ""))
        if identity in seen:
            causes.append(duplicate_cause(f"{path}[{i}]", t))
        seen.add(identity)
    return causes
