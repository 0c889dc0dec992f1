"""PrioritySort (QueueSort): higher spec.priority first, then the pod queued earlier."""

from __future__ import annotations

NAME = "PrioritySort"


def sort_key(priority: int, timestamp: float) -> tuple[int, float]:
    """A key ordering the active queue: smaller sorts first (upstream PrioritySort.Less)."""
    return (-priority, timestamp)


def less(p1: tuple[int, float], p2: tuple[int, float]) -> bool:
    """(priority, queue timestamp) pairs: p1 before p2?"""
    return sort_key(*p1) < sort_key(*p2)
