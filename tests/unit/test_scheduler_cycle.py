"""The scheduling cycle end to end in memory: binding, failures, events, status, informer events."""

from __future__ import annotations

from client import ApiError
from scheduler.eventhandlers import EventHandlers, node_scheduling_property_changes
from scheduler.scheduler import Scheduler, SchedulerConfig, status_patch
from tests.unit.scheduler_fakes import FakeAPI, FakeEvents, FakePodsAPI, FakeStore, make_node, make_pod


def new_scheduler(api: FakeAPI | None = None, names: tuple[str, ...] = ("default-scheduler",)) -> tuple:
    sched = Scheduler(SchedulerConfig(scheduler_names=list(names)))
    api = api or FakeAPI()
    events = FakeEvents()
    stores = {"pods": FakeStore(), "nodes": FakeStore(), "namespaces": FakeStore(), "pdbs": FakeStore()}
    sched.attach(api, stores, {n: events for n in names})
    return sched, api, events, EventHandlers(sched), stores


def add_pod(handlers: EventHandlers, stores: dict, pod: dict) -> None:
    stores["pods"].put(pod)
    handlers.on_pod_add(pod)


async def run_once(sched: Scheduler) -> None:
    qpi = sched.queue.pop_nowait()
    assert qpi is not None
    await sched.schedule_one(qpi)
    await sched.drain()


async def test_a_pod_is_bound_and_the_event_recorded() -> None:
    sched, api, events, h, stores = new_scheduler()
    h.on_node_add(make_node("n1"))
    pod = make_pod("p", cpu="100m")
    add_pod(h, stores, pod)
    await run_once(sched)
    assert api.pods.bindings == [("default", "p", "n1")]
    assert events.events == [("p", "Normal", "Scheduled", "Successfully assigned default/p to n1")]
    assert sched.metrics.schedule_attempts.get("scheduled", "default-scheduler") == 1
    # the informer then delivers the bound pod: the assumed pod is confirmed
    bound = {**pod, "spec": {**pod["spec"], "nodeName": "n1"}}
    stores["pods"].put(bound)
    h.on_pod_update(pod, bound)
    assert not sched.cache.is_assumed(pod["metadata"]["uid"]) and sched.cache.get("n1").req_cpu == 100


async def test_unschedulable_pod_gets_event_condition_and_waits_for_a_node() -> None:
    sched, api, events, h, stores = new_scheduler()
    h.on_node_add(make_node("small", cpu="1"))
    pod = make_pod("p", cpu="2")
    add_pod(h, stores, pod)
    await run_once(sched)
    msg = ("0/1 nodes are available: 1 Insufficient cpu. "
           "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.")
    assert events.events == [("p", "Warning", "FailedScheduling", msg)]
    (_ns, name, patch, sub), = api.pods.patches
    cond = patch["status"]["conditions"][0]
    assert (name, sub, cond["type"], cond["status"], cond["reason"], cond["message"]) == (
        "p", "status", "PodScheduled", "False", "Unschedulable", msg)
    assert sched.queue.sizes()["unschedulable"] == 1
    h.on_node_add(make_node("tiny", cpu="500m"))  # does not fit either: the pre-check keeps it waiting
    assert sched.queue.sizes()["unschedulable"] == 1
    sched.queue.clock = lambda: 10**9  # backoff long over
    h.on_node_add(make_node("big", cpu="4"))
    assert sched.queue.sizes()["active"] == 1
    await run_once(sched)
    assert api.pods.bindings == [("default", "p", "big")]


def test_status_patch_only_when_something_changes() -> None:
    pod = make_pod("p")
    first = status_patch(pod, "Unschedulable", "msg", None)
    assert first is not None and "nominatedNodeName" not in first["status"]
    pod["status"]["conditions"] = first["status"]["conditions"]
    assert status_patch(pod, "Unschedulable", "msg", None) is None
    assert status_patch(pod, "Unschedulable", "other", None) is not None
    assert status_patch(pod, "Unschedulable", "msg", "n1")["status"] == {"nominatedNodeName": "n1"}


async def test_failed_binding_forgets_the_pod_and_retries_it() -> None:
    api = FakeAPI(FakePodsAPI(fail_binding=ApiError(409, "Conflict", 'pod p is already assigned to node "x"')))
    sched, api, events, h, stores = new_scheduler(api)
    h.on_node_add(make_node("n1"))
    add_pod(h, stores, make_pod("p", cpu="1"))
    await run_once(sched)
    assert sched.cache.get("n1").req_cpu == 0 and sched.cache.num_pods == 0
    assert events.events == [("p", "Warning", "FailedScheduling", 'pod p is already assigned to node "x"')]
    assert sched.queue.sizes()["backoff"] == 1
    assert api.pods.patches[0][2]["status"]["conditions"][0]["reason"] == "SchedulerError"


async def test_pods_of_other_schedulers_are_left_alone_and_assigned_ones_are_cached() -> None:
    sched, _api, _events, h, stores = new_scheduler(names=("default-scheduler", "gpu-scheduler"))
    add_pod(h, stores, make_pod("mine", scheduler_name="gpu-scheduler"))
    add_pod(h, stores, make_pod("theirs", scheduler_name="other-scheduler"))
    add_pod(h, stores, make_pod("running", cpu="1", node="n1", scheduler_name="other-scheduler"))
    assert sched.queue.sizes()["active"] == 1 and sched.queue.pop_nowait().key == "default/mine"
    assert sched.cache.num_pods == 1


async def test_deleting_pods_are_skipped() -> None:
    sched, api, events, h, stores = new_scheduler()
    h.on_node_add(make_node("n1"))
    add_pod(h, stores, make_pod("p", deleting=True))
    await run_once(sched)
    assert api.pods.bindings == []
    assert events.events == [("p", "Warning", "FailedScheduling", "skip schedule deleting pod: default/p")]


async def test_deleted_pending_pod_leaves_the_queue_and_a_deleted_bound_pod_frees_room() -> None:
    sched, _api, _events, h, stores = new_scheduler()
    h.on_node_add(make_node("n1", cpu="1"))
    pending = make_pod("pending")
    add_pod(h, stores, pending)
    h.on_pod_delete(pending)
    assert sched.queue.sizes()["active"] == 0
    holder = make_pod("holder", cpu="1", node="n1")
    add_pod(h, stores, holder)
    waiting = make_pod("waiting", cpu="1")
    add_pod(h, stores, waiting)
    await run_once(sched)
    assert sched.queue.sizes()["unschedulable"] == 1
    sched.queue.clock = lambda: 10**9
    h.on_pod_delete(holder)
    assert sched.queue.sizes()["active"] == 1 and sched.cache.get("n1").req_cpu == 0


def test_node_property_changes() -> None:
    old = make_node("n", labels={"a": "1"}, unschedulable=True)
    new = make_node("n", labels={"a": "2"}, cpu="8")
    labels = [e[2] for e in node_scheduling_property_changes(new, old)]
    assert labels == ["NodeSpecUnschedulableChange", "NodeAllocatableChange", "NodeLabelChange"]
    assert node_scheduling_property_changes(old, old) == []
