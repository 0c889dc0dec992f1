"""Taints and tolerations with upstream's matching rules (core/v1 Toleration.ToleratesTaint)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

NO_SCHEDULE = "NoSchedule"
PREFER_NO_SCHEDULE = "PreferNoSchedule"
NO_EXECUTE = "NoExecute"
TAINT_NODE_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"

Taint = Mapping[str, Any]
Toleration = Mapping[str, Any]


def tolerates(toleration: Toleration, taint: Taint) -> bool:
    """An empty effect matches every effect, an empty key with Exists matches every key;
    operator "" or Equal compares values, Exists ignores them."""
    effect = toleration.get("effect") or ""
    if effect and effect != (taint.get("effect") or ""):
        return False
    key = toleration.get("key") or ""
    if key and key != (taint.get("key") or ""):
        return False
    op = toleration.get("operator") or ""
    if op in ("", "Equal"):
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return op == "Exists"


def tolerations_tolerate_taint(tolerations: Iterable[Toleration], taint: Taint) -> bool:
    return any(tolerates(t, taint) for t in tolerations)


def do_not_schedule(taint: Taint) -> bool:
    """The effects the TaintToleration filter enforces."""
    return taint.get("effect") in (NO_SCHEDULE, NO_EXECUTE)


def find_untolerated_taint(taints: Sequence[Taint], tolerations: Sequence[Toleration],
                           include: Callable[[Taint], bool]) -> Taint | None:
    """The first taint (in the node's order) passing `include` that no toleration tolerates."""
    for taint in taints:
        if not include(taint):
            continue
        if not tolerations_tolerate_taint(tolerations, taint):
            return taint
    return None


def taint_string(taint: Taint) -> str:
    """`{key: value}` as upstream's untolerated-taint reason prints it."""
    return f"{{{taint.get('key') or ''}: {taint.get('value') or ''}}}"
