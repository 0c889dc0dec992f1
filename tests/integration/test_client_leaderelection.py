"""LeaderElector on a real Lease: one leader at a time, takeover on release and on crash, observed time."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator

import pytest

from client import APIClient, LeaderElector, from_kubeconfig
from tests.conftest import ControlPlane, until

LEASE = 2.0
RENEW = 1.5
RETRY = 0.3


class Campaign:
    """Electors sharing one lease; records who leads when, and any overlap."""

    def __init__(self, api: APIClient, namespace: str, name: str) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.leading: set[str] = set()
        self.overlaps: list[tuple[str, set[str]]] = []
        self.started_at: dict[str, float] = {}
        self.stopped: list[str] = []
        self.electors: dict[str, LeaderElector] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, identity: str, release_on_cancel: bool = True) -> LeaderElector:
        el = LeaderElector(self.api, self.namespace, self.name, identity, LEASE, RENEW, RETRY,
                           release_on_cancel=release_on_cancel)

        async def lead(stop: asyncio.Event) -> None:
            if self.leading:
                self.overlaps.append((identity, set(self.leading)))
            self.leading.add(identity)
            self.started_at[identity] = time.monotonic()
            try:
                await stop.wait()
            finally:
                self.leading.discard(identity)

        def stopped() -> None:
            self.stopped.append(identity)

        self.electors[identity] = el
        self.tasks[identity] = asyncio.create_task(el.run(lead, stopped))
        return el

    async def cancel(self, identity: str) -> None:
        t = self.tasks.pop(identity)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t

    async def close(self) -> None:
        for identity in list(self.tasks):
            await self.cancel(identity)


@pytest.fixture
async def kube(control_plane: ControlPlane) -> AsyncIterator[APIClient]:
    async with APIClient(from_kubeconfig(control_plane.kubeconfig, qps=0)) as api:
        yield api


async def test_one_leader_then_release_hands_over_at_once(kube: APIClient, namespace: str) -> None:
    c = Campaign(kube, namespace, "ctrl")
    try:
        c.start("alpha")
        c.start("beta")
        await until(lambda: c.leading, 10, "a leader")
        first = next(iter(c.leading))
        other = "beta" if first == "alpha" else "alpha"
        # several renewals and lease durations pass: the leader keeps it, the other never leads
        deadline = time.monotonic() + 1.5 * LEASE
        while time.monotonic() < deadline:
            assert c.leading == {first}
            assert c.electors[first].is_leader and not c.electors[other].is_leader
            await asyncio.sleep(RETRY / 2)
        lease = await kube.resource("coordination.k8s.io/v1", "leases").get("ctrl", namespace)
        assert lease["spec"]["holderIdentity"] == first
        assert lease["spec"]["leaseDurationSeconds"] == 2
        assert lease["spec"]["renewTime"].endswith("Z") and len(lease["spec"]["renewTime"]) == 27  # MicroTime
        transitions = lease["spec"]["leaseTransitions"]

        cancelled_at = time.monotonic()
        await c.cancel(first)  # releases the lease on the way out
        assert c.stopped == [first]
        await until(lambda: other in c.leading, LEASE, "the standby to take over")
        assert c.started_at[other] - cancelled_at < LEASE  # no need to wait the lease out
        lease = await kube.resource("coordination.k8s.io/v1", "leases").get("ctrl", namespace)
        assert lease["spec"]["holderIdentity"] == other
        assert lease["spec"]["leaseTransitions"] == transitions + 1
        assert c.overlaps == []
    finally:
        await c.close()


async def test_crashed_leader_is_replaced_after_the_lease_expires(kube: APIClient, namespace: str) -> None:
    c = Campaign(kube, namespace, "sched")
    try:
        c.start("alpha", release_on_cancel=False)
        await until(lambda: "alpha" in c.leading, 10, "alpha to lead")
        beta = c.start("beta", release_on_cancel=False)
        await until(lambda: beta.leader == "alpha", 10, "beta to see alpha's lease")
        crashed_at = time.monotonic()
        await c.cancel("alpha")  # no release: like a killed process
        await until(lambda: "beta" in c.leading, LEASE + 3.0, "beta to take over")
        waited = c.started_at["beta"] - crashed_at
        # never before the lease (as beta's own clock saw it last change) expired
        assert waited >= LEASE - RETRY - 0.05, waited
        assert c.overlaps == []
    finally:
        await c.close()


async def test_expiry_is_judged_by_the_observers_clock(kube: APIClient, namespace: str) -> None:
    """A lease whose renewTime is an hour old (a skewed remote clock) still has to be watched for its duration."""
    leases = kube.resource("coordination.k8s.io/v1", "leases")
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    await leases.create({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                         "metadata": {"name": "skew", "namespace": namespace},
                         "spec": {"holderIdentity": "ghost", "leaseDurationSeconds": 2, "acquireTime": old,
                                  "renewTime": old, "leaseTransitions": 4}})
    el = LeaderElector(kube, namespace, "skew", "me", LEASE, RENEW, RETRY)
    start = time.monotonic()
    assert not await el.try_acquire_or_renew()  # first sight: valid for 2 s from now
    assert el.leader == "ghost"
    await el.acquire()
    assert time.monotonic() - start >= 2.0
    lease = await leases.get("skew", namespace)
    assert lease["spec"]["holderIdentity"] == "me" and lease["spec"]["leaseTransitions"] == 5
    assert await el.release()
    assert (await leases.get("skew", namespace))["spec"]["holderIdentity"] == ""


async def test_leader_steps_down_when_someone_else_holds_the_lease(kube: APIClient, namespace: str) -> None:
    leases = kube.resource("coordination.k8s.io/v1", "leases")
    c = Campaign(kube, namespace, "stolen")
    try:
        el = c.start("alpha")
        await until(lambda: "alpha" in c.leading, 10, "alpha to lead")
        lease = await leases.get("stolen", namespace)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        lease["spec"].update(holderIdentity="intruder", renewTime=stamp, leaseDurationSeconds=30)
        await leases.update(lease)
        await until(lambda: "alpha" not in c.leading, RENEW + 1.0, "alpha to step down")
        assert not el.is_leader and c.stopped == ["alpha"]
        await until(lambda: c.tasks["alpha"].done(), 5, "run() to return")
        c.tasks.pop("alpha")
    finally:
        await c.close()


async def test_two_electors_racing_to_create_the_lease(kube: APIClient, namespace: str) -> None:
    a = LeaderElector(kube, namespace, "race", "a", LEASE, RENEW, RETRY)
    b = LeaderElector(kube, namespace, "race", "b", LEASE, RENEW, RETRY)
    results = await asyncio.gather(a.try_acquire_or_renew(), b.try_acquire_or_renew())
    assert sorted(results) == [False, True]


async def test_failing_leader_work_steps_down_and_releases(kube: APIClient, namespace: str) -> None:
    el = LeaderElector(kube, namespace, "fails", "alpha", LEASE, RENEW, RETRY)
    stopped: list[bool] = []

    async def work(stop: asyncio.Event) -> None:
        raise RuntimeError("controller crashed")

    with pytest.raises(RuntimeError, match="controller crashed"):
        await asyncio.wait_for(el.run(work, lambda: stopped.append(True)), 10)
    assert stopped == [True] and not el.is_leader
    lease = await kube.resource("coordination.k8s.io/v1", "leases").get("fails", namespace)
    assert lease["spec"]["holderIdentity"] == ""  # a standby may take over at once


def test_invalid_timings_rejected() -> None:
    with pytest.raises(ValueError):
        LeaderElector(None, "ns", "n", "id", lease_duration=5, renew_deadline=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        LeaderElector(None, "ns", "n", "", 15, 10, 2)  # type: ignore[arg-type]
