"""One worker per pod: syncs run one at a time per pod, in parallel across pods.

`update(uid)` asks for a sync; requests that come while a sync runs fold into one more sync
after it. The sync function returns how long until the pod wants its next sync (a back-off
expiring, a retry), None for the regular resync period, or FINISHED when the pod is gone and
the worker may end.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

log = logging.getLogger("kubelet.podworkers")

FINISHED = -1.0


class _Worker:
    def __init__(self, uid: str) -> None:
        self.uid = uid
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None


class PodWorkers:
    def __init__(self, sync: Callable[[str], Awaitable[float | None]], resync_period: float) -> None:
        self.sync = sync
        self.resync_period = resync_period
        self.workers: dict[str, _Worker] = {}
        self.syncs = 0

    def update(self, uid: str) -> None:
        worker = self.workers.get(uid)
        if worker is None:
            worker = self.workers[uid] = _Worker(uid)
            worker.task = asyncio.get_running_loop().create_task(self._run(worker), name=f"pod worker {uid}")
        worker.wake.set()

    def update_all(self) -> None:
        for uid in list(self.workers):
            self.update(uid)

    def _schedule(self, worker: _Worker, delay: float) -> None:
        if worker.timer is not None:
            worker.timer.cancel()
        worker.timer = asyncio.get_running_loop().call_later(max(delay, 0.0), worker.wake.set)

    async def _run(self, worker: _Worker) -> None:
        try:
            while True:
                await worker.wake.wait()
                worker.wake.clear()
                try:
                    delay = await self.sync(worker.uid)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("syncing pod %s failed; retrying", worker.uid)
                    delay = 2.0 + random.random()
                finally:
                    self.syncs += 1
                if delay == FINISHED:
                    if worker.wake.is_set():
                        continue  # something new arrived meanwhile (the pod came back)
                    break
                if delay is None:
                    # jittered like upstream's resync, so pods don't all sync at once
                    delay = self.resync_period * (0.9 + 0.2 * random.random())
                self._schedule(worker, delay)
        finally:
            if worker.timer is not None:
                worker.timer.cancel()
            if self.workers.get(worker.uid) is worker:
                del self.workers[worker.uid]

    async def stop(self) -> None:
        tasks = [w.task for w in self.workers.values() if w.task is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.workers.clear()
