"""Pod state as controllers judge it (upstream's podutil and controller_utils helpers)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from typing import Any

from apimachinery.meta import controller_of, parse_time

Obj = dict[str, Any]

POD_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"

_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return meta(obj).get("labels") or {}


def phase(pod: Obj) -> str:
    return (pod.get("status") or {}).get("phase") or ""


def is_terminating(obj: Obj) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


def is_pod_active(pod: Obj) -> bool:
    """Neither finished nor being deleted (upstream IsPodActive)."""
    return phase(pod) not in ("Succeeded", "Failed") and not is_terminating(pod)


def is_pod_terminal(pod: Obj) -> bool:
    return phase(pod) in ("Succeeded", "Failed")


def filter_active_pods(pods: Iterable[Obj]) -> list[Obj]:
    return [p for p in pods if is_pod_active(p)]


def pod_condition(pod: Obj, type_: str) -> dict[str, Any] | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c
    return None


def is_pod_ready(pod: Obj) -> bool:
    c = pod_condition(pod, "Ready")
    return c is not None and c.get("status") == "True"


def ready_since(pod: Obj) -> dt.datetime | None:
    """When the pod last became Ready (its Ready condition's lastTransitionTime), if it is ready."""
    c = pod_condition(pod, "Ready")
    if c is None or c.get("status") != "True" or not c.get("lastTransitionTime"):
        return None
    try:
        return parse_time(c["lastTransitionTime"])
    except ValueError:
        return None


def is_pod_available(pod: Obj, min_ready_seconds: int, now: dt.datetime) -> bool:
    """Ready for at least minReadySeconds (upstream IsPodAvailable)."""
    if not is_pod_ready(pod):
        return False
    if not min_ready_seconds:
        return True
    since = ready_since(pod)
    return since is not None and since + dt.timedelta(seconds=min_ready_seconds) < now


def creation_time(obj: Obj) -> dt.datetime | None:
    ts = meta(obj).get("creationTimestamp")
    if not ts:
        return None
    try:
        return parse_time(ts)
    except ValueError:
        return None


def max_restarts(pod: Obj) -> int:
    return max((cs.get("restartCount") or 0 for cs in (pod.get("status") or {}).get("containerStatuses") or []),
               default=0)


def deletion_cost(pod: Obj) -> int:
    v = (meta(pod).get("annotations") or {}).get(POD_DELETION_COST)
    if v is None:
        return 0
    try:
        return max(-(2**31), min(2**31 - 1, int(v)))
    except ValueError:
        return 0


def _log_bucket(t: dt.datetime | None, now: dt.datetime) -> int:
    """floor(log2(age in seconds)), for LogarithmicScaleDown's comparisons (-1: no time)."""
    if t is None:
        return -1
    age = (now - t).total_seconds()
    return math.floor(math.log2(age)) if age >= 1 else 0


def deletion_order_key(pod: Obj, rank: int, now: dt.datetime) -> tuple:
    """Sort key putting the pods to delete first (upstream ActivePodsWithRanks.Less, LogarithmicScaleDown on):

    unassigned < assigned; Pending < Unknown < Running; not ready < ready; lower deletion cost
    first; more related pods on the same node first; ready for less time first; more restarts
    first; newer first (creation and readiness compared in log2 buckets).
    """
    node = 1 if (pod.get("spec") or {}).get("nodeName") else 0
    ready = is_pod_ready(pod)
    ready_bucket = _log_bucket(ready_since(pod), now) if ready else -1
    created = creation_time(pod)
    # newer first: a bigger age bucket sorts later; no creation time sorts first
    created_bucket = _log_bucket(created, now)
    return (
        node,
        _PHASE_RANK.get(phase(pod), 0),
        1 if ready else 0,
        deletion_cost(pod),
        -rank,
        ready_bucket,
        -max_restarts(pod),
        created_bucket,
        meta(pod).get("uid") or "",
    )


def rank_pods_for_deletion(pods: list[Obj], related: Iterable[Obj], now: dt.datetime) -> list[Obj]:
    """`pods` ordered so the first are the best to delete; rank = active related pods on the same node."""
    per_node: dict[str, int] = {}
    for p in related:
        node = (p.get("spec") or {}).get("nodeName")
        if node and is_pod_active(p):
            per_node[node] = per_node.get(node, 0) + 1
    return sorted(pods, key=lambda p: deletion_order_key(p, per_node.get((p.get("spec") or {}).get("nodeName") or "", 0), now))


def owned_by(obj: Obj, uid: str) -> bool:
    ref = controller_of(obj)
    return ref is not None and ref.get("uid") == uid


def pod_key(pod: Obj) -> str:
    m = meta(pod)
    return f"{m.get('namespace', '')}/{m.get('name', '')}"
