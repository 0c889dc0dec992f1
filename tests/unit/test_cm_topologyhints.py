"""Topology Aware Routing in the EndpointSlice controller: allocation, safeguards, Events, node changes."""

from __future__ import annotations

from controller_manager.endpointslice import EndpointSliceController
from controller_manager.topologycache import TopologyCache, hints_enabled
from tests.unit.cm_fakes import FakeAPI, make_context, run_queue
from tests.unit.test_cm_endpoints import NS, pod, service
from tests.unit.test_cm_endpointslice import endpoints_by_pod

AUTO = {"service.kubernetes.io/topology-mode": "Auto"}


def node(name: str, zone: str | None, cpu: str | None = "4", ready: bool = True, labels: dict | None = None) -> dict:
    lbl = dict(labels or {})
    if zone:
        lbl["topology.kubernetes.io/zone"] = zone
    status: dict = {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if cpu:
        status["allocatable"] = {"cpu": cpu}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": lbl}, "status": status}


def annotated(annotations: dict | None = None, **spec) -> dict:
    svc = service(**spec)
    svc["metadata"]["annotations"] = dict(AUTO if annotations is None else annotations)
    return svc


async def cluster(nodes: list[dict]):
    api = FakeAPI()
    ctx = make_context(api)
    c = EndpointSliceController(ctx)
    for n in nodes:
        api.seed("v1", "nodes", n)
    return api, c, ctx.events


def hints(api: FakeAPI) -> dict[str, list[str] | None]:
    return {name: ([z["name"] for z in ep["hints"]["forZones"]] if "hints" in ep else None)
            for name, ep in endpoints_by_pod(api).items()}


def seed_pods(api: FakeAPI, per_node: dict[str, int]) -> None:
    i = 0
    for node_name, count in per_node.items():
        for _ in range(count):
            i += 1
            api.seed("v1", "pods", pod(f"p{i:02d}", f"10.0.0.{i}", node=node_name))


def test_annotation_precedence() -> None:
    assert hints_enabled({"service.kubernetes.io/topology-mode": "Auto"})
    assert hints_enabled({"service.kubernetes.io/topology-aware-hints": "auto"})
    # the deprecated annotation wins when both are set
    assert not hints_enabled({"service.kubernetes.io/topology-aware-hints": "disabled",
                              "service.kubernetes.io/topology-mode": "Auto"})
    assert not hints_enabled({"service.kubernetes.io/topology-mode": "PreferZone"}) and not hints_enabled(None)


def test_allocations_follow_cpu_and_safeguards() -> None:
    t = TopologyCache()
    t.set_nodes([node("a", "z1", "2"), node("b", "z2", "6"), node("cp", "z3", "64",
                 labels={"node-role.kubernetes.io/control-plane": ""}), node("down", "z4", "64", ready=False)])
    assert t.cpu_ratios_by_zone == {"z1": 0.25, "z2": 0.75}  # control-plane and not-ready nodes ignored
    allocs, ev = t.allocations(8)
    assert ev is None
    assert (allocs["z1"].minimum, allocs["z1"].desired) == (2, 2.0)
    assert (allocs["z2"].minimum, allocs["z2"].desired, allocs["z2"].maximum) == (5, 6.0, 6)
    _, ev = t.allocations(1)
    assert ev.message == "Insufficient number of endpoints (1 endpoints, 2 zones)"
    t.set_nodes([node("a", "z1", "1"), node("b", "z2", "99")])
    _, ev = t.allocations(2)  # z1 needs 1, z2 needs ceil(1.98/1.2)=2: does not fit
    assert ev.message.startswith("Unable to allocate minimum required endpoints")
    t.set_nodes([node("a", "z1", "2"), node("b", None, "2")])  # a ready node without a zone
    assert t.cpu_ratios_by_zone is None
    assert t.allocations(4)[1].message.startswith("Insufficient Node information")
    t.set_nodes([node("a", "z1", "2"), node("b", "z2", None)])  # a ready node without allocatable CPU
    assert t.cpu_ratios_by_zone is None
    t.set_nodes([node("a", "z1", "2"), node("b", "z1", "2")])  # one zone only
    assert t.cpu_ratios_by_zone is None


async def test_hints_proportional_to_cpu_with_redistribution_and_event() -> None:
    # z1 has 1/4 of the CPU but 6 of 8 endpoints: 4 of them are hinted for z2
    api, c, events = await cluster([node("n1", "z1", "2"), node("n2", "z2", "6")])
    api.seed("v1", "services", annotated())
    seed_pods(api, {"n1": 6, "n2": 2})
    await run_queue(c)
    got = hints(api)
    assert all(h is not None and len(h) == 1 for h in got.values())
    assert sorted(h[0] for h in got.values()).count("z1") == 2
    assert all(got[f"p{i:02d}"] == ["z2"] for i in (7, 8))  # z2's own endpoints stay in z2
    assert events == [("Service", "web", "Normal", "TopologyAwareHintsEnabled",
                       "Topology Aware Hints has been enabled, addressType: IPv4")]
    # a resync changes nothing (existing valid hints are kept)
    api.actions.clear()
    c.queue.add(f"{NS}/web")
    await run_queue(c)
    assert not api.writes()


async def test_not_ready_endpoints_get_no_hints_and_each_zone_gets_one() -> None:
    api, c, _ = await cluster([node("n1", "z1"), node("n2", "z2"), node("n3", "z3")])
    api.seed("v1", "services", annotated())
    seed_pods(api, {"n1": 3})
    api.seed("v1", "pods", pod("sick", "10.0.1.1", node="n1", ready=False))
    await run_queue(c)
    got = hints(api)
    assert got.pop("sick") is None
    assert sorted(h[0] for h in got.values()) == ["z1", "z2", "z3"]


async def test_safeguards_disable_with_events() -> None:
    api, c, events = await cluster([node("n1", "z1"), node("n2", "z2"), node("n3", "z3")])
    api.seed("v1", "services", annotated())
    seed_pods(api, {"n1": 1, "n2": 1})  # 2 endpoints, 3 zones
    await run_queue(c)
    assert set(hints(api).values()) == {None}
    assert events[-1][2:] == ("Warning", "TopologyAwareHintsDisabled",
                              "Insufficient number of endpoints (2 endpoints, 3 zones), addressType: IPv4")
    # an endpoint on a node without a zone
    api2, c2, events2 = await cluster([node("n1", "z1"), node("n2", "z2"), node("nz", None, ready=False)])
    api2.seed("v1", "services", annotated())
    seed_pods(api2, {"n1": 2, "n2": 1, "nz": 1})
    await run_queue(c2)
    assert set(hints(api2).values()) == {None}
    assert events2[-1][4] == "One or more endpoints do not have a zone specified, addressType: IPv4"


async def test_hints_removed_when_annotation_goes_and_trafficdistribution_applies() -> None:
    api, c, events = await cluster([node("n1", "z1"), node("n2", "z2")])
    svc = api.seed("v1", "services", annotated(trafficDistribution="PreferClose"))
    seed_pods(api, {"n1": 3, "n2": 1})
    await run_queue(c)
    assert sorted(h[0] for h in hints(api).values()) == ["z1", "z1", "z2", "z2"]  # the annotation wins
    svc = dict(svc, metadata=dict(svc["metadata"], annotations={}))
    api.seed("v1", "services", svc)
    await run_queue(c)
    # PreferClose now: each endpoint for its own zone
    assert sorted(h[0] for h in hints(api).values()) == ["z1", "z1", "z1", "z2"]
    assert events[-1][2:] == ("Warning", "TopologyAwareHintsDisabled",
                              "Topology Aware Hints has been disabled, addressType: IPv4")
    svc["spec"] = {k: v for k, v in svc["spec"].items() if k != "trafficDistribution"}
    api.seed("v1", "services", svc)
    await run_queue(c)
    assert set(hints(api).values()) == {None}


async def test_node_changes_resync_overloaded_services() -> None:
    api, c, events = await cluster([node("n1", "z1"), node("n2", "z2")])
    api.seed("v1", "services", annotated())
    seed_pods(api, {"n1": 2, "n2": 2})
    await run_queue(c)
    assert sorted(h[0] for h in hints(api).values()) == ["z1", "z1", "z2", "z2"]
    # as upstream's updateNode, a change of allocatable CPU alone is not acted on at once
    api.seed("v1", "nodes", node("n2", "z2", "12"))
    assert len(c.queue) == 0
    # a new Ready node in z2 (3/4 of the CPU now): z1's share (2 endpoints) overloads z2 → resync, one moves
    api.seed("v1", "nodes", node("n3", "z2", "4"))
    assert len(c.queue) == 1  # only the overloaded service is queued
    await run_queue(c)
    assert sorted(h[0] for h in hints(api).values()) == ["z1", "z2", "z2", "z2"]
    # a node loses its zone: node info is insufficient, hints go with an Event
    api.seed("v1", "nodes", node("n1", None))
    await run_queue(c)
    assert set(hints(api).values()) == {None}
    assert events[-1][3:] == ("TopologyAwareHintsDisabled", "Insufficient Node information: allocatable CPU or "
                              "zone not specified on one or more nodes, addressType: IPv4")
