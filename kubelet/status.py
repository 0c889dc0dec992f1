"""The status manager: writes pod statuses through `pods/<name>/status`, only when they change.

A JSON merge patch of the whole status (fields the kubelet no longer reports are nulled), so a
status write never conflicts with spec or metadata changes made by others, and carries the
pod's uid so it can never land on a newer pod of the same name.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from client import APIClient, is_conflict, is_not_found
from kubelet.podstatus import comparable

log = logging.getLogger("kubelet.status")

WRITERS = 8


@dataclass
class _Desired:
    namespace: str
    name: str
    uid: str  # the API object's uid (a mirror pod's for static pods)
    status: dict[str, Any]


class StatusManager:
    def __init__(self, api: APIClient, current: Callable[[str, str], dict[str, Any] | None]) -> None:
        """`current(namespace, name)` returns the pod as the API has it (the informer's copy)."""
        self.api = api
        self.current = current
        self._desired: dict[str, _Desired] = {}  # API uid -> desired status
        self._written: dict[str, dict[str, Any]] = {}  # API uid -> comparable form last written
        self._pending: dict[str, dict[str, Any]] = {}  # API uid -> comparable form queued or in flight
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self.writes = 0

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._writer(), name=f"status writer {i}") for i in range(WRITERS)]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def set_status(self, namespace: str, name: str, uid: str, status: dict[str, Any]) -> bool:
        """Record the status the pod should have; queue a write if it differs. True if queued."""
        target = comparable(status)
        api_pod = self.current(namespace, name)
        api_status = (api_pod or {}).get("status") or {}
        same_uid = api_pod is not None and (api_pod.get("metadata") or {}).get("uid") == uid
        self._desired[uid] = _Desired(namespace, name, uid, status)
        if (same_uid and comparable(api_status) == target) or self._written.get(uid) == target:
            return False
        if self._pending.get(uid) == target:
            return False  # this very status is queued or being written already
        self._pending[uid] = target
        if uid not in self._queued:
            self._queued.add(uid)
            self._queue.put_nowait(uid)
        return True

    def desired(self, uid: str) -> dict[str, Any] | None:
        d = self._desired.get(uid)
        return d.status if d else None

    def forget(self, uid: str) -> None:
        self._desired.pop(uid, None)
        self._written.pop(uid, None)
        self._pending.pop(uid, None)

    async def flush(self, uid: str, timeout: float = 30.0) -> None:
        """Wait until the pod's desired status has been written (or dropped)."""
        if uid not in self._queued:
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(uid, []).append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            log.warning("status of pod %s not written within %.0fs", uid, timeout)

    async def _writer(self) -> None:
        while True:
            uid = await self._queue.get()
            self._queued.discard(uid)
            desired = self._desired.get(uid)
            try:
                if desired is not None:
                    await self._write(desired)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("writing status of pod %s/%s: %s; retrying", desired.namespace if desired else "?",
                            desired.name if desired else uid, e)
                await asyncio.sleep(1.0)
                if uid in self._desired and uid not in self._queued:
                    self._queued.add(uid)
                    self._queue.put_nowait(uid)
                continue
            if uid not in self._queued:
                for fut in self._waiters.pop(uid, []):
                    if not fut.done():
                        fut.set_result(None)

    async def _write(self, d: _Desired) -> None:
        api_pod = self.current(d.namespace, d.name)
        old = (api_pod or {}).get("status") or {}
        body_status: dict[str, Any] = dict(d.status)
        for key in old:
            if key not in body_status:
                body_status[key] = None
        patch = {"metadata": {"uid": d.uid}, "status": body_status}
        try:
            await self.api.resource("v1", "pods").patch(d.name, patch, d.namespace, "merge", subresource="status")
        except Exception as e:
            if is_not_found(e) or is_conflict(e):  # gone, or replaced by a pod with another uid
                log.debug("pod %s/%s (%s) is gone; status dropped", d.namespace, d.name, d.uid)
                self._desired.pop(d.uid, None)
                self._pending.pop(d.uid, None)
                return
            raise
        self.writes += 1
        written = comparable(d.status)
        self._written[d.uid] = written
        if self._pending.get(d.uid) == written:
            del self._pending[d.uid]
