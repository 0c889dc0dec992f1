"""The RuntimeClass admission plugin: a new pod naming a RuntimeClass gets that class's pod
overhead and scheduling constraints (nodeSelector merged, tolerations merged); a pod naming a
class that does not exist, or setting an overhead no class gave it, is refused (upstream's
plugin/pkg/admission/runtimeclass)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from apimachinery import quantity
from apiserver.admission import CREATE, Attributes, Plugin

if TYPE_CHECKING:
    from apiserver.server import APIServer


class RuntimeClass(Plugin):
    name = "RuntimeClass"

    def __init__(self, server: APIServer) -> None:
        self.server = server

    @staticmethod
    def _pod_spec(a: Attributes) -> dict[str, Any] | None:
        if a.operation != CREATE or a.resource.plural != "pods" or a.resource.group or a.subresource:
            return None
        spec = (a.obj or {}).get("spec") if isinstance(a.obj, dict) else None
        return spec if isinstance(spec, dict) else None

    async def _runtime_class(self, a: Attributes, spec: dict[str, Any]) -> dict[str, Any] | None:
        name = spec.get("runtimeClassName")
        if not name:
            return None
        cache = self.server.cache_for("node.k8s.io", "runtimeclasses")
        key = f"{cache.prefix}{name}"
        if not cache.ready.is_set() or cache.get(key) is None:
            await cache.sync_with_store()  # just created? the cache may lag: read up to etcd's revision
        entry = cache.get(key)
        if entry is None:
            raise self.forbidden(a, f'pod rejected: RuntimeClass "{name}" not found')
        return orjson.loads(entry.data)

    async def admit(self, a: Attributes) -> None:
        spec = self._pod_spec(a)
        if spec is None:
            return
        rc = await self._runtime_class(a, spec)
        if rc is None:
            return
        fixed = (rc.get("overhead") or {}).get("podFixed")
        if fixed is not None:
            if spec.get("overhead") and not _same_resources(spec["overhead"], fixed):
                raise self.forbidden(a, "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead")
            spec["overhead"] = dict(fixed)
        scheduling = rc.get("scheduling")
        if not scheduling:
            return
        own = spec.get("nodeSelector") or {}
        if not isinstance(own, dict):
            return  # validation refuses it with the field's path
        selector = dict(own)
        for key, value in (scheduling.get("nodeSelector") or {}).items():
            if key in selector and selector[key] != value:
                raise self.forbidden(a, f"conflict: runtimeClass.scheduling.nodeSelector[{key}] = {value}; "
                                        f"pod.spec.nodeSelector[{key}] = {selector[key]}")
            selector[key] = value
        if selector:
            spec["nodeSelector"] = selector
        own_tolerations = spec.get("tolerations") or []
        if not isinstance(own_tolerations, list) or not all(isinstance(t, dict) for t in own_tolerations):
            return  # validation refuses it with the field's path
        merged = merge_tolerations(list(own_tolerations), list(scheduling.get("tolerations") or []))
        if merged:
            spec["tolerations"] = merged

    async def validate(self, a: Attributes) -> None:
        spec = self._pod_spec(a)
        if spec is None:
            return
        rc = await self._runtime_class(a, spec)  # a webhook may have named another class since
        if not spec.get("overhead"):
            return
        fixed = ((rc or {}).get("overhead") or {}).get("podFixed")
        if fixed is None:
            raise self.forbidden(a, "pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead")
        if not _same_resources(spec["overhead"], fixed):
            raise self.forbidden(a, "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead")


def _same_resources(a: Any, b: Any) -> bool:
    """Semantic equality of two resource lists ("1" and "1000m" are the same quantity)."""
    if not isinstance(a, dict) or not isinstance(b, dict) or a.keys() != b.keys():
        return False
    try:
        return all(quantity.parse_quantity(a[k]) == quantity.parse_quantity(b[k]) for k in a)
    except quantity.QuantityError:
        return a == b


def _tolerates_superset(ss: dict[str, Any], t: dict[str, Any]) -> bool:
    """Whether toleration `ss` tolerates everything `t` does (upstream's isSuperset)."""
    if ss == t:
        return True
    if t.get("key", "") != ss.get("key", "") and (ss.get("key", "") or ss.get("operator") != "Exists"):
        return False
    if t.get("effect", "") != ss.get("effect", "") and ss.get("effect", ""):
        return False
    if ss.get("effect") == "NoExecute" and ss.get("tolerationSeconds") is not None:
        if t.get("tolerationSeconds") is None or t["tolerationSeconds"] > ss["tolerationSeconds"]:
            return False
    operator = ss.get("operator", "")
    if operator in ("Equal", ""):
        return t.get("operator") == "Equal" and t.get("value", "") == ss.get("value", "")
    return operator == "Exists"


def merge_tolerations(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Both lists in one, without a toleration another one in it covers (the first of equal ones
    stays) — upstream's tolerations.MergeTolerations."""
    everything = first + second
    merged: list[dict[str, Any]] = []
    for i, t in enumerate(everything):
        if any(_tolerates_superset(kept, t) for kept in merged):
            continue
        if any(later != t and _tolerates_superset(later, t) for later in everything[i + 1:]):
            continue
        merged.append(t)
    return merged
