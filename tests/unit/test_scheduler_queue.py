"""The scheduling queue: ordering, backoff, unschedulable pods moved by events, gates, the nominator."""

from __future__ import annotations

import asyncio

from scheduler.framework import ASSIGNED_POD_ADD, ASSIGNED_POD_DELETE, NODE_ADD, NODE_LABEL_CHANGE
from scheduler.podinfo import PodInfo
from scheduler.queue import SchedulingQueue
from tests.unit.scheduler_fakes import make_pod

EVENTS = {
    "NodeResourcesFit": (("Pod", 2), ("Node", 1 | 4 | 8 | 16 | 32)),
    "TaintToleration": (("Node", 1 | 4 | 8 | 16 | 32),),
    "InterPodAffinity": (("Pod", 63), ("Node", 1 | 8)),
}


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def new_queue(clock: Clock) -> SchedulingQueue:
    return SchedulingQueue(EVENTS, clock=clock)


def fail(q: SchedulingQueue, *plugins: str):
    """Pop the next pod and put it back as rejected by `plugins`."""
    qpi = q.pop_nowait()
    qpi.unschedulable_plugins = set(plugins)
    assert q.add_unschedulable_if_not_present(qpi, q.scheduling_cycle)
    return qpi


def test_active_queue_orders_by_priority_then_arrival() -> None:
    clock = Clock()
    q = new_queue(clock)
    for name, prio in (("low", 0), ("high", 100), ("low2", 0), ("mid", 50)):
        q.add(make_pod(name, priority=prio))
        clock.t += 1
    assert [q.pop_nowait().key for _ in range(4)] == ["default/high", "default/mid", "default/low", "default/low2"]
    assert q.pop_nowait() is None


def test_backoff_doubles_from_one_second_up_to_ten() -> None:
    clock = Clock()
    q = new_queue(clock)
    q.add(make_pod("p"))
    qpi = q.pop_nowait()
    durations = []
    for attempts in range(1, 7):
        qpi.attempts = attempts
        durations.append(q.backoff_duration(qpi))
    assert durations == [1, 2, 4, 8, 10, 10]


def test_unschedulable_pods_wait_for_an_event_their_plugins_care_about() -> None:
    clock = Clock()
    q = new_queue(clock)
    q.add(make_pod("cpu"))
    q.add(make_pod("taint"))
    fail(q, "NodeResourcesFit")
    fail(q, "TaintToleration")
    assert q.sizes()["unschedulable"] == 2
    clock.t += 20  # backoff over
    assert q.move_all_to_active_or_backoff(ASSIGNED_POD_DELETE) == 1  # only the resource-starved pod
    assert q.pop_nowait().key == "default/cpu"
    q.move_all_to_active_or_backoff(NODE_ADD)
    assert q.pop_nowait().key == "default/taint"


def test_a_pod_still_backing_off_goes_to_the_backoff_queue_and_is_flushed_later() -> None:
    clock = Clock()
    q = new_queue(clock)
    q.add(make_pod("p"))
    fail(q, "NodeResourcesFit")
    q.move_all_to_active_or_backoff(NODE_ADD)
    assert q.sizes() == {"active": 0, "backoff": 1, "unschedulable": 0, "gated": 0}
    clock.t += 0.5
    assert q.flush_backoff_completed() == 0
    clock.t += 0.6
    assert q.flush_backoff_completed() == 1 and q.pop_nowait().key == "default/p"


def test_event_during_the_cycle_sends_the_failed_pod_to_backoff() -> None:
    clock = Clock()
    q = new_queue(clock)
    q.add(make_pod("p"))
    qpi = q.pop_nowait()
    q.move_all_to_active_or_backoff(NODE_LABEL_CHANGE)  # arrives while "p" is being scheduled
    qpi.unschedulable_plugins = {"TaintToleration"}
    q.add_unschedulable_if_not_present(qpi, q.scheduling_cycle)
    assert q.sizes()["backoff"] == 1 and q.sizes()["unschedulable"] == 0


def test_error_without_rejecting_plugins_goes_to_backoff() -> None:
    q = new_queue(Clock())
    q.add(make_pod("p"))
    fail(q)
    assert q.sizes()["backoff"] == 1


def test_assigned_pod_moves_only_pods_whose_affinity_it_satisfies() -> None:
    clock = Clock()
    q = new_queue(clock)
    aff = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    q.add(make_pod("needs-db", affinity=aff))
    q.add(make_pod("plain"))
    fail(q, "InterPodAffinity")
    fail(q, "InterPodAffinity")
    clock.t += 20
    assert q.assigned_pod_added(PodInfo(make_pod("web", labels={"app": "web"}, node="n")), ASSIGNED_POD_ADD) == 0
    assert q.assigned_pod_added(PodInfo(make_pod("db", labels={"app": "db"}, node="n")), ASSIGNED_POD_ADD) == 1
    assert q.pop_nowait().key == "default/needs-db"


def test_leftover_unschedulable_pods_are_retried_after_five_minutes() -> None:
    clock = Clock()
    q = new_queue(clock)
    q.add(make_pod("p"))
    fail(q, "TaintToleration")
    clock.t += 299
    assert q.flush_unschedulable_leftover() == 0
    clock.t += 2
    assert q.flush_unschedulable_leftover() == 1 and q.pop_nowait().key == "default/p"


def test_spec_update_requeues_an_unschedulable_pod_but_a_status_update_does_not() -> None:
    clock = Clock()
    q = new_queue(clock)
    old = make_pod("p")
    q.add(old)
    fail(q, "TaintToleration")
    clock.t += 20
    status_only = {**old, "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled"}]}}
    q.update(old, status_only)
    assert q.sizes()["unschedulable"] == 1
    relabelled = {**old, "metadata": {**old["metadata"], "labels": {"x": "y"}}}
    q.update(status_only, relabelled)
    assert q.pop_nowait().pod_info.labels == {"x": "y"}


def test_scheduling_gates_hold_a_pod_until_removed() -> None:
    q = new_queue(Clock())
    gated = make_pod("g")
    gated["spec"]["schedulingGates"] = [{"name": "example.com/wait"}]
    q.add(gated)
    assert q.sizes() == {"active": 0, "backoff": 0, "unschedulable": 0, "gated": 1}
    q.move_all_to_active_or_backoff(NODE_ADD)
    assert q.pop_nowait() is None
    open_pod = {**gated, "spec": {**gated["spec"], "schedulingGates": []}}
    q.update(gated, open_pod)
    assert q.pop_nowait().key == "default/g"


def test_delete_removes_from_every_queue() -> None:
    q = new_queue(Clock())
    a, b = make_pod("a"), make_pod("b")
    q.add(a)
    q.add(b)
    fail(q, "TaintToleration")
    q.delete(a)
    q.delete(b)
    assert q.sizes() == {"active": 0, "backoff": 0, "unschedulable": 0, "gated": 0}


def test_nominator_tracks_status_and_in_memory_nominations() -> None:
    q = new_queue(Clock())
    p = make_pod("p", nominated_node="n1", priority=5)
    q.add(p)
    assert [x.name for x in q.nominated_pods_for_node("n1")] == ["p"]
    q.nominator.add(PodInfo(p), "n2")
    assert q.nominated_pods_for_node("n1") == [] and len(q.nominated_pods_for_node("n2")) == 1
    # an update without a nominated node keeps the in-memory reservation
    q.update(make_pod("p", uid=p["metadata"]["uid"]), make_pod("p", uid=p["metadata"]["uid"]))
    assert len(q.nominated_pods_for_node("n2")) == 1
    q.delete(p)
    assert q.nominated_pods_for_node("n2") == []


async def test_pop_waits_for_a_pod() -> None:
    q = new_queue(Clock())
    popper = asyncio.create_task(q.pop())
    await asyncio.sleep(0)
    assert not popper.done()
    q.add(make_pod("p"))
    qpi = await asyncio.wait_for(popper, 1)
    assert qpi.key == "default/p" and qpi.attempts == 1 and q.scheduling_cycle == 1
    closing = asyncio.create_task(q.pop())
    await asyncio.sleep(0)
    q.close()
    assert await asyncio.wait_for(closing, 1) is None
