"""Node lifecycle, taint eviction and node IPAM over a fake API and a fake clock."""

from __future__ import annotations

import datetime as dt

from apimachinery.meta import format_time
from apimachinery.taints import tolerates
from controller_manager.node_lifecycle import NodeLifecycleController, compute_zone_state
from controller_manager.nodeipam import NodeIpamController
from controller_manager.taint_eviction import TaintEvictionController
from controller_manager.taints import matching_tolerations, min_toleration_seconds
from tests.unit.cm_fakes import FakeAPI, make_context, run_queue

GRACE = 40.0


def node(name: str, ready: str | None = "True", heartbeat: str = "2024-01-01T00:00:00Z", **spec) -> dict:
    conds = []
    if ready is not None:
        conds = [{"type": "Ready", "status": ready, "lastHeartbeatTime": heartbeat,
                  "lastTransitionTime": "2024-01-01T00:00:00Z"},
                 {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": heartbeat}]
    return {"metadata": {"name": name, "uid": f"uid-{name}"}, "spec": spec, "status": {"conditions": conds}}


def lease(name: str, renew: dt.datetime) -> dict:
    return {"metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "renewTime": renew.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}}


def taints(api: FakeAPI, name: str) -> set[tuple[str, str]]:
    return {(t["key"], t["effect"]) for t in (api.get_obj("v1", "nodes", None, name)["spec"].get("taints") or [])}


def ready_of(api: FakeAPI, name: str) -> dict:
    return next(c for c in api.get_obj("v1", "nodes", None, name)["status"]["conditions"] if c["type"] == "Ready")


async def lifecycle(**options):
    api = FakeAPI()
    ctx = make_context(api, node_monitor_grace_period=GRACE, **options)
    return api, ctx, NodeLifecycleController(ctx)


UNREACHABLE = ("node.kubernetes.io/unreachable", "NoExecute")
NOT_READY = ("node.kubernetes.io/not-ready", "NoExecute")


async def test_silent_node_becomes_unknown_and_tainted_while_leases_keep_others_healthy() -> None:
    api, ctx, c = await lifecycle()
    for n in ("a", "b"):
        api.seed("v1", "nodes", node(n))
        api.seed("coordination.k8s.io/v1", "leases", lease(n, ctx.clock.now()))
    api.seed("v1", "pods", {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "a"},
                            "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    await c.monitor_node_health()
    assert not api.writes("update_status")
    for _ in range(3):  # b keeps renewing its lease (its NodeStatus heartbeat stays old), a is silent
        ctx.clock.step(20)
        api.seed("coordination.k8s.io/v1", "leases", lease("b", ctx.clock.now()))
        await c.monitor_node_health()
        await c.do_no_execute_tainting_pass()
    assert ready_of(api, "b")["status"] == "True"
    cond = ready_of(api, "a")
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
    mem = next(c for c in api.get_obj("v1", "nodes", None, "a")["status"]["conditions"] if c["type"] == "MemoryPressure")
    assert mem["status"] == "Unknown"
    # never posted by the kubelet: added as NeverUpdated
    disk = next(c for c in api.get_obj("v1", "nodes", None, "a")["status"]["conditions"] if c["type"] == "DiskPressure")
    assert disk["reason"] == "NodeStatusNeverUpdated"
    assert UNREACHABLE in taints(api, "a") and not taints(api, "b")
    added = next(t for t in api.get_obj("v1", "nodes", None, "a")["spec"]["taints"] if t["effect"] == "NoExecute")
    assert added["timeAdded"]
    # its pods were marked not ready
    (mark,) = api.writes("patch", "pods")
    assert mark[4]["status"]["conditions"][0]["type"] == "Ready" and mark[4]["status"]["conditions"][0]["status"] == "False"
    # NoSchedule taint from the condition, on the node's next sync
    c.queue.add("a")
    await run_queue(c)
    assert ("node.kubernetes.io/unreachable", "NoSchedule") in taints(api, "a")
    # the kubelet comes back: Ready again, the taints go
    back = api.get_obj("v1", "nodes", None, "a")
    back["status"]["conditions"] = node("a", heartbeat=format_time(ctx.clock.now()))["status"]["conditions"]
    api.seed("v1", "nodes", back)
    await c.monitor_node_health()
    await run_queue(c)
    assert taints(api, "a") == set()


async def test_kubelet_reporting_not_ready_gets_the_not_ready_taint() -> None:
    api, ctx, c = await lifecycle()
    api.seed("v1", "nodes", node("a", "False"))
    api.seed("v1", "nodes", node("b"))
    await c.monitor_node_health()
    await c.do_no_execute_tainting_pass()
    assert NOT_READY in taints(api, "a")
    # it then goes silent: the taint is swapped at once
    ctx.clock.step(GRACE + 1)
    api.seed("coordination.k8s.io/v1", "leases", lease("b", ctx.clock.now()))
    await c.monitor_node_health()
    assert UNREACHABLE in taints(api, "a") and NOT_READY not in taints(api, "a")


async def test_all_nodes_down_means_no_taints() -> None:
    api, ctx, c = await lifecycle()
    api.seed("v1", "nodes", node("a"))
    api.seed("v1", "nodes", node("b"))
    await c.monitor_node_health()
    ctx.clock.step(GRACE + 1)
    await c.monitor_node_health()
    await c.do_no_execute_tainting_pass()
    assert ready_of(api, "a")["status"] == "Unknown" and ready_of(api, "b")["status"] == "Unknown"
    assert taints(api, "a") == taints(api, "b") == set()
    assert set(c.zone_states.values()) == {"FullDisruption"}


async def test_eviction_rate_limits_tainting() -> None:
    api, ctx, c = await lifecycle(node_eviction_rate=0.1)
    for n in ("a", "b", "c", "d"):
        api.seed("v1", "nodes", node(n))
    await c.monitor_node_health()
    ctx.clock.step(GRACE + 1)
    for n in ("c", "d"):
        api.seed("coordination.k8s.io/v1", "leases", lease(n, ctx.clock.now()))
    await c.monitor_node_health()
    await c.do_no_execute_tainting_pass()
    tainted = [n for n in ("a", "b") if UNREACHABLE in taints(api, n)]
    assert len(tainted) == 1  # one token: one node now
    ctx.clock.step(10)
    await c.do_no_execute_tainting_pass()
    assert all(UNREACHABLE in taints(api, n) for n in ("a", "b"))


async def test_never_reported_node_after_startup_grace() -> None:
    api, ctx, c = await lifecycle(node_startup_grace_period=60.0)
    api.seed("v1", "nodes", node("new", ready=None))
    api.seed("v1", "nodes", node("b"))
    await c.monitor_node_health()
    ctx.clock.step(GRACE + 1)
    api.seed("coordination.k8s.io/v1", "leases", lease("b", ctx.clock.now()))
    await c.monitor_node_health()
    assert not api.get_obj("v1", "nodes", None, "new")["status"]["conditions"]  # still within startup grace
    ctx.clock.step(20)
    api.seed("coordination.k8s.io/v1", "leases", lease("b", ctx.clock.now()))
    await c.monitor_node_health()
    cond = ready_of(api, "new")
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "Unknown", "NodeStatusNeverUpdated", "Kubelet never posted node status.")


async def test_no_schedule_taints_follow_conditions_and_unschedulable() -> None:
    api, _ctx, c = await lifecycle()
    n = node("a", unschedulable=True)
    n["status"]["conditions"].append({"type": "DiskPressure", "status": "True"})
    api.seed("v1", "nodes", n)
    await run_queue(c)
    assert taints(api, "a") == {("node.kubernetes.io/unschedulable", "NoSchedule"),
                                ("node.kubernetes.io/disk-pressure", "NoSchedule")}
    fixed = api.get_obj("v1", "nodes", None, "a")
    fixed["spec"]["unschedulable"] = False
    fixed["status"]["conditions"] = node("a")["status"]["conditions"]
    fixed["spec"]["taints"].append({"key": "user", "effect": "NoSchedule"})
    api.seed("v1", "nodes", fixed)
    await run_queue(c)
    assert taints(api, "a") == {("user", "NoSchedule")}  # other taints are not ours to remove


def test_zone_state() -> None:
    t, f, u = {"status": "True"}, {"status": "False"}, {"status": "Unknown"}
    assert compute_zone_state([t, u], 0.55) == (1, "Normal")
    assert compute_zone_state([u, u], 0.55) == (2, "FullDisruption")
    assert compute_zone_state([t, u, f, u], 0.55) == (3, "PartialDisruption")
    assert compute_zone_state([t, t, f, u, u, t, t], 0.55) == (3, "Normal")


# -- taint eviction -----------------------------------------------------------------------

def test_tolerations() -> None:
    taint = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}
    assert tolerates({"key": taint["key"], "operator": "Exists", "effect": "NoExecute"}, taint)
    assert tolerates({"operator": "Exists"}, taint)
    assert not tolerates({"key": taint["key"], "operator": "Exists", "effect": "NoSchedule"}, taint)
    assert tolerates({"key": "k", "value": "v"}, {"key": "k", "value": "v", "effect": "NoExecute"})
    assert not tolerates({"key": "k", "value": "w"}, {"key": "k", "value": "v", "effect": "NoExecute"})
    ok, used = matching_tolerations([taint], [{"operator": "Exists", "tolerationSeconds": 5}, {"operator": "Exists"}])
    assert ok and min_toleration_seconds(used) == 5
    assert min_toleration_seconds([{"operator": "Exists"}]) == -1


def evicting_pod(name: str, tolerations: list | None = None) -> dict:
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"},
            "spec": {"nodeName": "a", "tolerations": tolerations or []}, "status": {"phase": "Running"}}


async def test_taint_eviction_now_later_never_and_cancelled() -> None:
    api = FakeAPI()
    ctx = make_context(api)
    c = TaintEvictionController(ctx)
    unreachable = {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}
    api.seed("v1", "nodes", node("a"))
    api.seed("v1", "pods", evicting_pod("now"))
    api.seed("v1", "pods", evicting_pod("later", [{**unreachable, "tolerationSeconds": 300}]))
    api.seed("v1", "pods", evicting_pod("never", [unreachable]))
    api.seed("v1", "pods", evicting_pod("cancelled", [{**unreachable, "tolerationSeconds": 300}]))
    await run_queue(c)
    assert not api.writes()  # no taint yet
    tainted = api.get_obj("v1", "nodes", None, "a")
    tainted["spec"]["taints"] = [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]
    api.seed("v1", "nodes", tainted)
    await run_queue(c)
    assert [a[3] for a in api.writes("delete")] == ["now"]
    (cond_patch,) = api.writes("patch")
    assert cond_patch[4]["status"]["conditions"][0]["reason"] == "DeletionByTaintManager"
    assert set(c.scheduled) == {"ns/later", "ns/cancelled"}
    # "later" goes when its tolerationSeconds have passed, not before
    ctx.clock.step(299)
    await c.sync("ns/later")
    assert [a[3] for a in api.writes("delete")] == ["now"]
    ctx.clock.step(2)
    await c.sync("ns/later")
    assert [a[3] for a in api.writes("delete")] == ["now", "later"]
    # the taint goes away: the pending eviction of "cancelled" is dropped
    healthy = api.get_obj("v1", "nodes", None, "a")
    healthy["spec"]["taints"] = []
    api.seed("v1", "nodes", healthy)
    await run_queue(c)
    assert "ns/cancelled" not in c.scheduled
    assert {p["metadata"]["name"] for p in api.objects_of("v1", "pods")} == {"never", "cancelled"}


# -- node IPAM ----------------------------------------------------------------------------

async def test_node_ipam_allocates_unique_ranges() -> None:
    api = FakeAPI()
    ctx = make_context(api, allocate_node_cidrs=True, cluster_cidr="10.244.0.0/22",
                       service_cluster_ip_range="10.244.1.0/24")
    api.seed("v1", "nodes", {"metadata": {"name": "old"}, "spec": {"podCIDR": "10.244.0.0/24",
                                                                  "podCIDRs": ["10.244.0.0/24"]}})
    c = NodeIpamController(ctx)
    api.seed("v1", "nodes", {"metadata": {"name": "n1"}, "spec": {}})
    await run_queue(c)
    n1 = api.get_obj("v1", "nodes", None, "n1")["spec"]
    assert n1["podCIDR"] == "10.244.2.0/24" and n1["podCIDRs"] == ["10.244.2.0/24"]  # .0 taken, .1 is services
    api.seed("v1", "nodes", {"metadata": {"name": "n2"}, "spec": {}})
    await run_queue(c)
    assert api.get_obj("v1", "nodes", None, "n2")["spec"]["podCIDR"] == "10.244.3.0/24"
    api.seed("v1", "nodes", {"metadata": {"name": "n3"}, "spec": {}})
    try:
        await run_queue(c)
    except RuntimeError as e:
        assert "no pod CIDR left" in str(e)
    assert any(ev[3] == "CIDRNotAvailable" for ev in ctx.events)  # type: ignore[attr-defined]
    # a node leaves: its range can be used again
    n2 = api.get_obj("v1", "nodes", None, "n2")
    api.table("v1", "nodes").pop(("", "n2"))
    api.informers[("", "nodes")][0].delete(n2)
    c.queue.add("n3")
    await run_queue(c)
    assert api.get_obj("v1", "nodes", None, "n3")["spec"]["podCIDR"] == "10.244.3.0/24"


async def test_node_ipam_off_without_the_flag() -> None:
    api = FakeAPI()
    c = NodeIpamController(make_context(api))
    api.seed("v1", "nodes", {"metadata": {"name": "n1"}, "spec": {}})
    await run_queue(c)
    assert not api.writes()


async def test_a_new_nodes_not_ready_taint_goes_once_it_is_ready() -> None:
    # TaintNodesByCondition (admission) taints every new Node not-ready:NoSchedule; Ready lifts it
    api, _ctx, c = await lifecycle()
    n = node("a")
    n["spec"]["taints"] = [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]
    api.seed("v1", "nodes", n)
    await run_queue(c)
    assert taints(api, "a") == set()
