"""The order in which a pod with sidecars stops (upstream's terminationOrdering).

Regular containers stop at once; each sidecar (restartPolicy Always init container) waits
until every regular container and every later sidecar has stopped, so sidecars stop last and in
reverse order — a proxy or log shipper outlives the containers that use it. Waiting eats into
the sidecar's grace period; its preStop hook runs at the start, as everyone's does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from apimachinery.podutil import is_restartable_init_container


class TerminationOrder:
    def __init__(self, spec: dict[str, Any], running: set[str]) -> None:
        """`running`: names of the pod's containers being stopped (the others are no one's wait)."""
        self._stopped: dict[str, asyncio.Event] = {}
        self._waits_for: dict[str, list[asyncio.Event]] = {}

        def stopped_event(name: str) -> asyncio.Event:
            event = self._stopped[name] = asyncio.Event()
            if name not in running:
                event.set()
            return event

        regular = [stopped_event(c["name"]) for c in spec.get("containers") or []]
        later_sidecar: asyncio.Event | None = None
        for c in reversed(spec.get("initContainers") or []):
            event = stopped_event(c["name"])
            if is_restartable_init_container(c):
                self._waits_for[c["name"]] = regular + ([later_sidecar] if later_sidecar is not None else [])
                later_sidecar = event

    async def wait_for_turn(self, name: str, timeout: float) -> int:
        """Wait (at most `timeout` seconds) until the containers `name` waits for have stopped;
        the whole seconds waited, which the caller takes off the grace period."""
        events = self._waits_for.get(name)
        if not events:
            return 0
        started = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), max(timeout, 0))
        return int(time.monotonic() - started)

    def stopped(self, name: str) -> None:
        event = self._stopped.get(name)
        if event is not None:
            event.set()


def termination_order(pod: dict[str, Any] | None, running: set[str]) -> TerminationOrder | None:
    """The pod's stop order, or None when it has no sidecars (everything stops at once)."""
    spec = (pod or {}).get("spec") or {}
    if not any(is_restartable_init_container(c) for c in spec.get("initContainers") or []):
        return None
    return TerminationOrder(spec, running)
