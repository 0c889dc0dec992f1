"""The pod garbage collector over a fake API and a fake clock."""

from __future__ import annotations

from controller_manager.podgc import PodGCController
from tests.unit.cm_fakes import FakeAPI, make_context

NS = "ns"


def pod(name: str, phase: str = "Running", node: str | None = "n1", created: str = "2024-01-01T00:00:00Z",
        deleting: bool = False, reason: str | None = None) -> dict:
    p = {"metadata": {"name": name, "namespace": NS, "creationTimestamp": created},
         "spec": {"nodeName": node} if node else {}, "status": {"phase": phase}}
    if deleting:
        p["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
        p["metadata"]["finalizers"] = ["hold"]  # keeps the fake from removing it on its own
    if reason:
        p["status"]["reason"] = reason
    return p


def names(api: FakeAPI) -> list[str]:
    return sorted(p["metadata"]["name"] for p in api.objects_of("v1", "pods"))


def ready_node(name: str, ready: bool = True, taints: list | None = None) -> dict:
    return {"metadata": {"name": name}, "spec": {"taints": taints or []},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


async def test_terminated_pods_over_the_threshold_oldest_and_evicted_first() -> None:
    api = FakeAPI()
    c = PodGCController(make_context(api, terminated_pod_gc_threshold=2))
    api.seed("v1", "nodes", ready_node("n1"))
    api.seed("v1", "pods", pod("old", "Succeeded", created="2024-01-01T00:00:01Z"))
    api.seed("v1", "pods", pod("older", "Failed", created="2024-01-01T00:00:00Z"))
    api.seed("v1", "pods", pod("new", "Failed", created="2024-01-01T00:00:09Z"))
    api.seed("v1", "pods", pod("evicted", "Failed", created="2024-01-01T00:00:10Z", reason="Evicted"))
    api.seed("v1", "pods", pod("running"))
    await c.gc()
    assert names(api) == ["new", "old", "running"]
    assert all(a[4]["gracePeriodSeconds"] == 0 for a in api.writes("delete"))
    assert not api.writes("patch")  # finished pods need no Failed phase


async def test_threshold_zero_disables_terminated_gc() -> None:
    api = FakeAPI()
    c = PodGCController(make_context(api, terminated_pod_gc_threshold=0))
    api.seed("v1", "nodes", ready_node("n1"))
    for i in range(5):
        api.seed("v1", "pods", pod(f"p{i}", "Succeeded"))
    await c.gc()
    assert len(names(api)) == 5


async def test_pods_of_deleted_nodes_after_quarantine() -> None:
    api = FakeAPI()
    ctx = make_context(api)
    c = PodGCController(ctx)
    api.seed("v1", "nodes", ready_node("n1"))
    api.seed("v1", "pods", pod("alive", node="n1"))
    api.seed("v1", "pods", pod("lost", node="gone"))
    api.seed("v1", "pods", pod("late", node="late-node"))
    await c.gc()
    assert names(api) == ["alive", "late", "lost"]  # quarantined: the informer may just be behind
    ctx.clock.step(20)
    api.seed("v1", "nodes", ready_node("late-node"))  # it shows up after all
    await c.gc()
    assert names(api) == ["alive", "late", "lost"]
    ctx.clock.step(25)
    await c.gc()
    assert names(api) == ["alive", "late"]
    (mark,) = api.writes("patch")
    assert mark[3] == "lost" and mark[5] == "status"
    assert mark[4]["status"]["phase"] == "Failed"
    assert mark[4]["status"]["conditions"][0] | {"lastTransitionTime": None} == {
        "type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
        "message": "PodGC: node no longer exists", "lastTransitionTime": None}


async def test_missing_node_that_the_api_still_has_is_spared() -> None:
    api = FakeAPI()
    ctx = make_context(api)
    c = PodGCController(ctx)
    api.seed("v1", "pods", pod("p", node="n1"))
    # the node exists in the API but the informer never saw it
    api.table("v1", "nodes")[("", "n1")] = {"metadata": {"name": "n1", "resourceVersion": "1"}}
    await c.gc()
    ctx.clock.step(41)
    await c.gc()
    assert names(api) == ["p"]


async def test_terminating_pods_on_out_of_service_nodes_and_unscheduled() -> None:
    api = FakeAPI()
    c = PodGCController(make_context(api))
    api.seed("v1", "nodes", ready_node("down", False, [{"key": "node.kubernetes.io/out-of-service", "effect": "NoExecute"}]))
    api.seed("v1", "nodes", ready_node("notready", False))
    api.seed("v1", "pods", pod("stuck", node="down", deleting=True))
    api.seed("v1", "pods", pod("waiting", node="notready", deleting=True))
    api.seed("v1", "pods", pod("unscheduled", node=None, deleting=True, phase="Pending"))
    await c.gc()
    deleted = sorted(a[3] for a in api.writes("delete"))
    assert deleted == ["stuck", "unscheduled"]
    assert {a[3] for a in api.writes("patch")} == {"stuck", "unscheduled"}  # marked Failed first
