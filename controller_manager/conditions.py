"""Status conditions of workload objects (upstream's Set/Get/RemoveCondition helpers)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from apimachinery.meta import format_time

Obj = dict[str, Any]


def new_condition(type_: str, status: str, reason: str, message: str, now: dt.datetime) -> Obj:
    ts = format_time(now)
    return {"type": type_, "status": status, "lastTransitionTime": ts, "reason": reason, "message": message}


def get_condition(status: Obj | None, type_: str) -> Obj | None:
    for c in (status or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c
    return None


def set_condition(status: Obj, cond: Obj) -> None:
    """Set the condition of its type (upstream SetCondition): unchanged status and reason → no-op;
    the same status keeps its lastTransitionTime; the condition moves to the end of the list."""
    current = get_condition(status, cond["type"])
    if current is not None:
        if current.get("status") == cond["status"] and current.get("reason") == cond.get("reason"):
            return
        if current.get("status") == cond["status"] and current.get("lastTransitionTime"):
            cond = {**cond, "lastTransitionTime": current["lastTransitionTime"]}
    conds = [c for c in status.get("conditions") or [] if c.get("type") != cond["type"]]
    conds.append(cond)
    status["conditions"] = conds


def remove_condition(status: Obj, type_: str) -> None:
    conds = [c for c in status.get("conditions") or [] if c.get("type") != type_]
    if conds:
        status["conditions"] = conds
    else:
        status.pop("conditions", None)


def is_node_ready(node: Obj) -> bool:
    """The node's Ready condition is True."""
    ready = get_condition(node.get("status"), "Ready")
    return ready is not None and ready.get("status") == "True"
