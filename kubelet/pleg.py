"""The pod lifecycle event generator: relists CRI every second and reports which pods changed.

containerd 1.6 has no container events (GetContainerEvents is unimplemented), so this is
upstream's generic PLEG: two List calls per relist, a fingerprint per pod (its sandboxes' and
containers' ids and states), and the uids whose fingerprint moved go to the pod workers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from kubelet.cri import CRIError, pb
from kubelet.runtime import CONTAINER_STATES as _STATES
from kubelet.runtime import UNKNOWN, PodRuntimeStatus, Runtime, RuntimePod

log = logging.getLogger("kubelet.pleg")

RELIST_THRESHOLD = 180.0  # upstream: PLEG is unhealthy when a relist is older than 3 minutes


def fingerprint(pod: RuntimePod) -> tuple:
    return (
        tuple(sorted((s.id, s.state == pb.SANDBOX_READY) for s in pod.sandboxes)),
        tuple(sorted((c.id, _STATES.get(c.state, UNKNOWN)) for c in pod.containers)),
    )


def status_fingerprint(rs: PodRuntimeStatus) -> tuple:
    """The same fingerprint, from a pod status the kubelet just read itself."""
    return (
        tuple(sorted((s.id, s.ready) for s in rs.sandboxes)),
        tuple(sorted((c.id, c.state) for c in rs.containers)),
    )


class PLEG:
    def __init__(self, runtime: Runtime, period: float, on_change: Callable[[set[str]], None]) -> None:
        self.runtime = runtime
        self.period = period
        self.on_change = on_change
        self.pods: dict[str, RuntimePod] = {}
        self._fingerprints: dict[str, tuple] = {}
        self.last_relist = 0.0
        self.relists = 0
        self._wake = asyncio.Event()

    def healthy(self) -> bool:
        return self.last_relist > 0 and time.monotonic() - self.last_relist < RELIST_THRESHOLD

    def observed(self, rs: PodRuntimeStatus) -> None:
        """The kubelet saw this state itself (after a sync): no event for it at the next relist."""
        if rs.uid in self._fingerprints or rs.sandboxes or rs.containers:
            self._fingerprints[rs.uid] = status_fingerprint(rs)

    def relist_soon(self) -> None:
        """Relist now instead of at the next tick (after the kubelet changed something)."""
        self._wake.set()

    async def relist(self) -> set[str]:
        pods = await self.runtime.list_pods()
        prints = {uid: fingerprint(p) for uid, p in pods.items()}
        changed = {uid for uid, fp in prints.items() if self._fingerprints.get(uid) != fp}
        changed |= set(self._fingerprints) - set(prints)
        self.pods = pods
        self._fingerprints = prints
        self.last_relist = time.monotonic()
        self.relists += 1
        return changed

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                changed = await self.relist()
                if changed:
                    self.on_change(changed)
            except CRIError as e:
                log.warning("PLEG relist failed: %s", e)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("PLEG relist failed")
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.period)
            except TimeoutError:
                pass
