"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics.

- A candidate takes the lease only when it is free (holderIdentity "") or has not changed
  for leaseDurationSeconds *as measured by the candidate's own monotonic clock* since it
  last saw it change (observed time; remote clocks are never trusted).
- Every write is an update conditioned on the resourceVersion read: of two candidates
  racing, the second gets 409 Conflict and stays a follower.
- The leader renews every `retry_period`; if no renewal succeeds for `renew_deadline`, or
  it sees another holder, it stops leading. renew_deadline < lease_duration means it
  steps down before anyone else may take over.
- On cancel the leader releases the lease (holderIdentity "", leaseDurationSeconds 1) so
  a standby takes over at once (ReleaseOnCancel).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from apimachinery.meta import now_micro
from client.backoff import jittered
from client.errors import APIConnectionError, ApiError, is_already_exists, is_conflict, is_not_found

if TYPE_CHECKING:
    from client.rest import APIClient

log = logging.getLogger("client.leaderelection")

JITTER_FACTOR = 1.2  # client-go's JitterFactor for the acquire loop

OnStarted = Callable[[asyncio.Event], Awaitable[None]]
OnStopped = Callable[[], "Awaitable[None] | None"]


def _record(lease: dict[str, Any]) -> dict[str, Any]:
    return lease.get("spec") or {}


class LeaderElector:
    """Campaign for the Lease `namespace/name` as `identity`; see `run`."""

    def __init__(
        self,
        client: APIClient,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        *,
        release_on_cancel: bool = True,
        on_new_leader: Callable[[str], None] | None = None,
    ) -> None:
        if not identity:
            raise ValueError("leader election needs a non-empty identity")
        if lease_duration <= renew_deadline:
            raise ValueError("lease_duration must be greater than renew_deadline")
        if renew_deadline <= JITTER_FACTOR * retry_period:
            raise ValueError("renew_deadline must be greater than retry_period*1.2")
        self.leases = client.resource("coordination.k8s.io/v1", "leases")
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.release_on_cancel = release_on_cancel
        self.on_new_leader = on_new_leader
        self._observed: dict[str, Any] | None = None  # the lease's spec as last read or written
        self._observed_rv = ""
        self._observed_time = 0.0  # monotonic time of the last *change* we saw
        self._reported_leader: str | None = None
        self._leading = False

    # -- state -------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        """This elector holds the lease and has renewed it within renew_deadline."""
        return self._leading

    @property
    def leader(self) -> str:
        """The holder as last observed ("" for none)."""
        return (self._observed or {}).get("holderIdentity") or ""

    def _lease_valid(self, now: float) -> bool:
        spec = self._observed or {}
        duration = spec.get("leaseDurationSeconds") or self.lease_duration
        return self._observed_time + float(duration) > now

    def _observe(self, lease: dict[str, Any], now: float) -> None:
        spec = dict(_record(lease))
        if spec != self._observed:
            self._observed = spec
            self._observed_time = now
        self._observed_rv = (lease.get("metadata") or {}).get("resourceVersion") or ""
        holder = spec.get("holderIdentity") or ""
        if holder != self._reported_leader:
            self._reported_leader = holder
            if self.on_new_leader is not None and holder:
                try:
                    self.on_new_leader(holder)
                except Exception:
                    log.exception("on_new_leader failed")

    # -- one attempt -------------------------------------------------------------------

    async def try_acquire_or_renew(self) -> bool:
        """One round: read the lease, take or renew it if we may. True if we hold it now."""
        stamp = now_micro()
        try:
            lease = await self.leases.get(self.name, self.namespace)
        except ApiError as e:
            if not is_not_found(e):
                raise
            lease = None
        if lease is None:
            spec = {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": max(1, math.ceil(self.lease_duration)),
                "acquireTime": stamp,
                "renewTime": stamp,
                "leaseTransitions": 0,
            }
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec}
            try:
                created = await self.leases.create(body, self.namespace)
            except ApiError as e:
                if is_already_exists(e):
                    return False  # someone else created it first
                raise
            self._observe(created, time.monotonic())
            return True

        now = time.monotonic()
        self._observe(lease, now)
        old = _record(lease)
        holder = old.get("holderIdentity") or ""
        i_hold = holder == self.identity
        if holder and not i_hold and self._lease_valid(now):
            return False  # held by someone else, and not expired by our clock
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, math.ceil(self.lease_duration)),
            "renewTime": stamp,
        }
        if i_hold:
            spec["acquireTime"] = old.get("acquireTime") or stamp
            spec["leaseTransitions"] = old.get("leaseTransitions") or 0
        else:
            spec["acquireTime"] = stamp
            spec["leaseTransitions"] = (old.get("leaseTransitions") or 0) + 1
        updated_lease = {**lease, "spec": {**old, **spec}}
        try:
            updated = await self.leases.update(updated_lease, self.namespace)  # conditional on resourceVersion
        except ApiError as e:
            if is_conflict(e):
                return False  # lost a race: someone else wrote first
            raise
        self._observe(updated, time.monotonic())
        return True

    async def _attempt(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                return await self.try_acquire_or_renew()
        except (ApiError, APIConnectionError, TimeoutError) as e:
            log.warning("lease %s/%s: %s", self.namespace, self.name, e or type(e).__name__)
            return False

    # -- the campaign ------------------------------------------------------------------

    async def acquire(self) -> None:
        """Return once we hold the lease (tries every retry_period, jittered)."""
        while True:
            if await self._attempt(self.renew_deadline):
                self._leading = True
                log.info("lease %s/%s acquired by %s", self.namespace, self.name, self.identity)
                return
            await asyncio.sleep(jittered(self.retry_period, JITTER_FACTOR))

    async def renew_until_lost(self) -> None:
        """Keep renewing; return when leadership is lost (deadline passed or another holder seen)."""
        last_renew = time.monotonic()
        while True:
            await asyncio.sleep(self.retry_period)
            left = last_renew + self.renew_deadline - time.monotonic()
            while left > 0:
                if await self._attempt(left):
                    last_renew = time.monotonic()
                    break
                if self.leader and self.leader != self.identity:
                    self._leading = False
                    log.warning("lease %s/%s: now held by %s", self.namespace, self.name, self.leader)
                    return
                await asyncio.sleep(min(self.retry_period, max(0.0, left)))
                left = last_renew + self.renew_deadline - time.monotonic()
            else:
                self._leading = False
                log.warning("lease %s/%s: not renewed within %.1fs; stepping down",
                            self.namespace, self.name, self.renew_deadline)
                return

    async def release(self) -> bool:
        """Give the lease up if we hold it: holderIdentity "" so a standby takes over at once."""
        if self._observed is None or self._observed.get("holderIdentity") != self.identity:
            return False
        self._leading = False
        stamp = now_micro()
        try:
            async with asyncio.timeout(self.renew_deadline):
                lease = await self.leases.get(self.name, self.namespace)
                if (_record(lease).get("holderIdentity") or "") != self.identity:
                    return False
                spec = {
                    "holderIdentity": "",
                    "leaseDurationSeconds": 1,
                    "acquireTime": stamp,
                    "renewTime": stamp,
                    "leaseTransitions": _record(lease).get("leaseTransitions") or 0,
                }
                released = await self.leases.update({**lease, "spec": spec}, self.namespace)
        except (ApiError, APIConnectionError, TimeoutError) as e:
            log.warning("lease %s/%s: release failed: %s", self.namespace, self.name, e)
            return False
        self._observe(released, time.monotonic())
        return True

    async def run(self, on_started_leading: OnStarted, on_stopped_leading: OnStopped | None = None) -> None:
        """Campaign, lead, and return when leadership is lost.

        `on_started_leading(stop)` runs as a task while we lead; `stop` is set (and the task
        then cancelled) when leadership ends. If it returns, we keep the lease until cancelled
        (client-go); if it raises, we step down, release the lease and re-raise here.
        `on_stopped_leading()` is called once leadership ends, if we ever led (also on cancel).
        Cancelling `run` releases the lease when release_on_cancel.
        """
        leading_task: asyncio.Task[None] | None = None
        renew_task: asyncio.Task[None] | None = None
        stop = asyncio.Event()
        failure: BaseException | None = None
        try:
            await self.acquire()
            leading_task = asyncio.create_task(on_started_leading(stop), name=f"leading {self.name}")
            renew_task = asyncio.create_task(self.renew_until_lost(), name=f"renewing {self.name}")
            await asyncio.wait({leading_task, renew_task}, return_when=asyncio.FIRST_COMPLETED)
            if leading_task.done() and not leading_task.cancelled() and leading_task.exception() is not None:
                failure = leading_task.exception()
                log.error("lease %s/%s: the leader's work failed: %r; stepping down", self.namespace, self.name,
                          failure)
            else:
                await renew_task  # returns once leadership is lost
        finally:
            self._leading = False
            stop.set()
            for task in (renew_task, leading_task):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            if failure is not None or (_current_task_cancelling() and self.release_on_cancel):
                # shielded: the release must survive the cancellation that brought us here
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(self.release())
            if leading_task is not None and on_stopped_leading is not None:
                try:
                    result = on_stopped_leading()
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("on_stopped_leading failed")
        if failure is not None:
            raise failure


def _current_task_cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
