"""Liveness, readiness and startup probes: one worker per (pod, container, probe kind).

A worker probes the container's current instance every periodSeconds once initialDelaySeconds
have passed since it started; successThreshold / failureThreshold consecutive results flip
the outcome. Readiness starts failed, liveness succeeded, startup unknown (as upstream); while
a startup probe has not succeeded the other two wait. A liveness or startup failure puts the
worker on hold until the container is replaced and tells the pod worker, which restarts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apimachinery.podutil import sidecars
from kubelet.actions import ActionRunner
from kubelet.runtime import PodRuntimeStatus

log = logging.getLogger("kubelet.probes")

LIVENESS, READINESS, STARTUP = "liveness", "readiness", "startup"
_SPEC_KEYS = {LIVENESS: "livenessProbe", READINESS: "readinessProbe", STARTUP: "startupProbe"}


@dataclass
class _Target:
    container_id: str
    started_at: float  # wall-clock seconds


class _Worker:
    def __init__(self, uid: str, container: dict[str, Any], kind: str, probe: dict[str, Any]) -> None:
        self.uid = uid
        self.container = container
        self.kind = kind
        self.probe = probe
        self.target: _Target | None = None
        self.pod_ip = ""
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.on_hold: str = ""  # container id a liveness/startup failure was reported for
        self.last_id = ""
        self.last_ok: bool | None = None
        self.run = 0


class ProbeManager:
    def __init__(
        self,
        actions: ActionRunner,
        on_change: Callable[[str], None],
        on_event: Callable[[str, str, str, str], None],
    ) -> None:
        """on_change(pod uid) when a result changes; on_event(uid, container, reason, message)."""
        self.actions = actions
        self.on_change = on_change
        self.on_event = on_event
        self._workers: dict[tuple[str, str, str], _Worker] = {}
        self._ready: dict[str, bool] = {}
        self._started: dict[str, bool] = {}
        self._failed: dict[str, tuple[str, str]] = {}  # container id -> (kind, message)
        self.probes_run = 0

    # -- results -------------------------------------------------------------------------------

    def readiness(self, container_id: str) -> bool | None:
        return self._ready.get(container_id)

    def started(self, container_id: str) -> bool | None:
        return self._started.get(container_id)

    def failure(self, container_id: str) -> tuple[str, str] | None:
        """(kind, message) when a liveness or startup probe failed for this container instance."""
        return self._failed.get(container_id)

    def has_probe(self, uid: str, container: str, kind: str) -> bool:
        return (uid, container, kind) in self._workers

    # -- lifecycle -----------------------------------------------------------------------------

    def sync_pod(self, pod: dict[str, Any], rs: PodRuntimeStatus, pod_ip: str) -> None:
        uid = pod["metadata"]["uid"]
        status = pod.get("status") or {}
        api_statuses = {s.get("name"): s for key in ("initContainerStatuses", "containerStatuses")
                        for s in status.get(key) or []}
        wanted: set[tuple[str, str, str]] = set()
        spec = pod.get("spec") or {}
        # sidecars (restartPolicy Always init containers) are probed like regular containers
        for c in sidecars(spec) + list(spec.get("containers") or []):
            for kind, key in _SPEC_KEYS.items():
                probe = c.get(key)
                if not probe:
                    continue
                wk = (uid, c["name"], kind)
                wanted.add(wk)
                worker = self._workers.get(wk)
                if worker is None or worker.probe != probe:
                    if worker is not None:
                        self._stop_worker(worker)
                    worker = self._workers[wk] = _Worker(uid, c, kind, probe)
                    worker.task = asyncio.get_running_loop().create_task(self._run(worker), name=f"probe {wk}")
                latest = rs.latest(c["name"])
                target = _Target(latest.id, latest.started_at / 1e9) if latest is not None and latest.running else None
                if (worker.target is None) != (target is None) or (
                    target is not None and worker.target is not None and target.container_id != worker.target.container_id
                ):
                    worker.target = target
                    if target is not None and target.container_id not in self._ready and kind == READINESS:
                        # after a kubelet restart: keep what the API says about this very instance
                        api = api_statuses.get(c["name"]) or {}
                        if api.get("containerID", "").endswith(target.container_id) and api.get("ready"):
                            self._ready[target.container_id] = True
                    worker.changed.set()
                worker.pod_ip = pod_ip
        for wk in [k for k in self._workers if k[0] == uid and k not in wanted]:
            self._stop_worker(self._workers.pop(wk))

    def remove_pod(self, uid: str) -> None:
        for wk in [k for k in self._workers if k[0] == uid]:
            self._stop_worker(self._workers.pop(wk))

    def forget_containers(self, live_ids: set[str]) -> None:
        for d in (self._ready, self._started, self._failed):
            for cid in [k for k in d if k not in live_ids]:
                del d[cid]

    def _stop_worker(self, worker: _Worker) -> None:
        if worker.task is not None:
            worker.task.cancel()

    async def stop(self) -> None:
        tasks = [w.task for w in self._workers.values() if w.task is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers.clear()

    # -- the worker ----------------------------------------------------------------------------

    def _has_startup(self, w: _Worker) -> bool:
        return (w.uid, w.container["name"], STARTUP) in self._workers

    async def _sleep(self, w: _Worker, seconds: float) -> None:
        w.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(w.changed.wait(), max(seconds, 0.01))

    async def _run(self, w: _Worker) -> None:
        p = w.probe
        period = float(p.get("periodSeconds") or 10)
        timeout = float(p.get("timeoutSeconds") or 1)
        success_threshold = int(p.get("successThreshold") or 1)
        failure_threshold = int(p.get("failureThreshold") or 3)
        initial_delay = float(p.get("initialDelaySeconds") or 0)
        await asyncio.sleep(random.uniform(0, min(period, 1.0)))
        while True:
            target = w.target
            if target is None:
                await self._sleep(w, period)
                continue
            cid = target.container_id
            if cid != w.last_id:
                w.last_id, w.last_ok, w.run = cid, None, 0
                if w.kind == READINESS:
                    self._ready.setdefault(cid, False)
                elif w.kind == STARTUP:
                    self._started.setdefault(cid, False)
            if w.on_hold == cid:
                await self._sleep(w, period)
                continue
            if w.kind != STARTUP and self._has_startup(w) and not self._started.get(cid, False):
                await self._sleep(w, min(period, 1.0))
                continue
            if w.kind == STARTUP and self._started.get(cid):
                await self._sleep(w, period)  # startup probes stop once they succeeded
                continue
            since_start = time.time() - target.started_at
            if since_start < initial_delay:
                await self._sleep(w, initial_delay - since_start)
                continue
            try:
                ok, message = await asyncio.wait_for(
                    self.actions.run(p, w.container, cid, w.pod_ip, timeout), timeout + 5
                )
            except TimeoutError:
                ok, message = False, f"probe timed out after {timeout:g}s"
            except asyncio.CancelledError:
                raise
            except Exception as e:
                ok, message = False, f"probe errored: {e}"
            self.probes_run += 1
            if w.target is None or w.target.container_id != cid:
                continue  # the container changed while probing
            if ok == w.last_ok:
                w.run += 1
            else:
                w.last_ok, w.run = ok, 1
            if not ok:
                self.on_event(w.uid, w.container["name"], "Unhealthy", f"{w.kind.capitalize()} probe failed: {message}")
            if (ok and w.run >= success_threshold) or (not ok and w.run >= failure_threshold):
                self._record(w, cid, ok, message)
            await self._sleep(w, period)

    def _record(self, w: _Worker, cid: str, ok: bool, message: str) -> None:
        if w.kind == READINESS:
            if self._ready.get(cid) != ok:
                self._ready[cid] = ok
                self.on_change(w.uid)
        elif w.kind == STARTUP:
            if ok:
                if not self._started.get(cid):
                    self._started[cid] = True
                    self.on_change(w.uid)
            else:
                self._failed[cid] = (STARTUP, message)
                w.on_hold = cid
                self.on_change(w.uid)
        elif not ok:  # liveness
            self._failed[cid] = (LIVENESS, message)
            w.on_hold = cid
            self.on_change(w.uid)
