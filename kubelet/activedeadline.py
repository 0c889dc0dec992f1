"""A pod's spec.activeDeadlineSeconds (upstream pkg/kubelet/active_deadline.go).

Once the pod has been active on the node (since status.startTime) for its deadline, the
kubelet kills it with its grace period and reports it Failed with this reason and message.
The deadline may be lowered while the pod runs; the kubelet syncs the pod when it falls due.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apimachinery.meta import parse_time

REASON = "DeadlineExceeded"
MESSAGE = "Pod was active on the node longer than the specified deadline"


def seconds_left(spec: Mapping[str, Any], start_time: str | None, now: float) -> float | None:
    """Seconds until the pod's active deadline (<= 0: past it); None without a deadline or a start time."""
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is None or not start_time:
        return None
    try:
        started = parse_time(start_time).timestamp()
    except ValueError:
        return None
    return started + int(deadline) - now
