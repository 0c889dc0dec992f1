"""Node taints and pod tolerations (upstream pkg/util/taints, v1helper.TolerationsTolerateTaint)."""

from __future__ import annotations

import copy
from typing import Any

from apimachinery.meta import format_time
from apimachinery.taints import NO_EXECUTE, tolerates

Obj = dict[str, Any]

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
PID_PRESSURE = "node.kubernetes.io/pid-pressure"
NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"

def taint_matches(a: Obj, b: Obj) -> bool:
    """Same key and effect: the same taint for adding/removing (upstream Taint.MatchTaint)."""
    return a.get("key") == b.get("key") and a.get("effect") == b.get("effect")


def has_taint(taints: list[Obj] | None, template: Obj) -> bool:
    return any(taint_matches(t, template) for t in taints or [])


def swap_taints(taints: list[Obj] | None, add: list[Obj], remove: list[Obj], now) -> list[Obj] | None:
    """`taints` with `remove` gone and `add` present (timeAdded now); None if nothing changes."""
    current = list(taints or [])
    out = [t for t in current if not any(taint_matches(t, r) for r in remove)]
    changed = len(out) != len(current)
    for a in add:
        if any(taint_matches(t, a) for t in out):
            continue
        new = {k: v for k, v in a.items() if v is not None}
        new["timeAdded"] = format_time(now)
        out.append(new)
        changed = True
    return out if changed else None


def matching_tolerations(taints: list[Obj], tolerations: list[Obj]) -> tuple[bool, list[Obj]]:
    """(every taint is tolerated, the tolerations used) — upstream getMatchingTolerations."""
    used = []
    for taint in taints:
        found = next((t for t in tolerations if tolerates(t, taint)), None)
        if found is None:
            return False, []
        used.append(found)
    return True, used


def min_toleration_seconds(tolerations: list[Obj]) -> float:
    """The shortest tolerationSeconds; -1 when every toleration is forever (none set)."""
    best = -1.0
    for t in tolerations:
        secs = t.get("tolerationSeconds")
        if secs is None:
            continue
        secs = max(0.0, float(secs))
        if best < 0 or secs < best:
            best = secs
    return best


def no_execute_taints(node: Obj | None) -> list[Obj]:
    return [t for t in ((node or {}).get("spec") or {}).get("taints") or [] if t.get("effect") == NO_EXECUTE]


def copy_taint(t: Obj) -> Obj:
    return copy.deepcopy(t)
