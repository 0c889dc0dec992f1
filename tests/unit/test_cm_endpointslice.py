"""The EndpointSlice controller over a fake API: endpoints, conditions, port groups, reuse, limits."""

from __future__ import annotations

import pytest

from controller_manager.endpointslice import (
    CONTROLLER_NAME,
    LABEL_MANAGED_BY,
    LABEL_SERVICE_NAME,
    EndpointSliceController,
    StaleInformer,
)
from tests.unit.cm_fakes import FakeAPI, make_context, run_queue
from tests.unit.test_cm_endpoints import NS, pod, service


def slices(api: FakeAPI) -> list[dict]:
    return sorted(api.objects_of("discovery.k8s.io/v1", "endpointslices"), key=lambda s: s["metadata"]["name"])


def endpoints_by_pod(api: FakeAPI) -> dict[str, dict]:
    return {ep["targetRef"]["name"]: ep for s in slices(api) for ep in s["endpoints"]}


async def setup(**options):
    api = FakeAPI()
    c = EndpointSliceController(make_context(api, **options))
    api.seed("v1", "nodes", {"metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "z1"}}})
    return api, c


async def test_slice_contents_and_conditions() -> None:
    api, c = await setup()
    svc = api.seed("v1", "services", service())
    api.seed("v1", "pods", pod("a", "10.0.0.1"))
    api.seed("v1", "pods", pod("b", "10.0.0.2", ready=False))
    api.seed("v1", "pods", pod("c", "10.0.0.3", deleting=True))
    api.seed("v1", "pods", pod("d", "10.0.0.4", labels={"app": "other"}))
    await run_queue(c)
    (s,) = slices(api)
    assert s["addressType"] == "IPv4"
    assert s["metadata"]["generateName"] == "web-"
    assert s["metadata"]["labels"] == {"tier": "front", LABEL_SERVICE_NAME: "web", LABEL_MANAGED_BY: CONTROLLER_NAME}
    assert s["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Service", "name": "web",
                                                 "uid": svc["metadata"]["uid"], "controller": True,
                                                 "blockOwnerDeletion": True}]
    assert s["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    eps = endpoints_by_pod(api)
    assert set(eps) == {"a", "b", "c"}
    assert eps["a"] == {"addresses": ["10.0.0.1"], "conditions": {"ready": True, "serving": True, "terminating": False},
                        "targetRef": {"kind": "Pod", "namespace": NS, "name": "a", "uid": "uid-a"},
                        "nodeName": "n1", "zone": "z1"}
    assert eps["b"]["conditions"] == {"ready": False, "serving": False, "terminating": False}
    assert eps["c"]["conditions"] == {"ready": False, "serving": True, "terminating": True}


async def test_publish_not_ready_makes_every_endpoint_ready() -> None:
    api, c = await setup()
    api.seed("v1", "services", service(publishNotReadyAddresses=True))
    api.seed("v1", "pods", pod("b", "10.0.0.2", ready=False))
    await run_queue(c)
    assert endpoints_by_pod(api)["b"]["conditions"] == {"ready": True, "serving": True, "terminating": False}


async def test_named_target_ports_split_slices_and_placeholder() -> None:
    api, c = await setup()
    api.seed("v1", "services", service(ports=[{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]))
    await run_queue(c)
    (placeholder,) = slices(api)
    assert placeholder["endpoints"] == [] and placeholder["ports"] == []
    api.seed("v1", "pods", pod("a", "10.0.0.1", ports=[{"name": "http", "containerPort": 8080}]))
    api.seed("v1", "pods", pod("b", "10.0.0.2", ports=[{"name": "http", "containerPort": 9090}]))
    await run_queue(c)
    got = {s["ports"][0]["port"]: [e["targetRef"]["name"] for e in s["endpoints"]] for s in slices(api)}
    assert got == {8080: ["a"], 9090: ["b"]}
    assert api.get_obj("discovery.k8s.io/v1", "endpointslices", NS, placeholder["metadata"]["name"]) is None


async def test_max_endpoints_per_slice_and_reuse() -> None:
    api, c = await setup(max_endpoints_per_slice=2)
    api.seed("v1", "services", service())
    for i in range(5):
        api.seed("v1", "pods", pod(f"p{i}", f"10.0.0.{i + 1}"))
    await run_queue(c)
    assert sorted(len(s["endpoints"]) for s in slices(api)) == [1, 2, 2]
    names = {s["metadata"]["name"] for s in slices(api)}
    api.actions.clear()
    # one pod becomes unready: exactly one slice is rewritten, none created or deleted
    api.seed("v1", "pods", pod("p3", "10.0.0.4", ready=False))
    await run_queue(c)
    assert [a[0] for a in api.writes()] == ["update"]
    assert {s["metadata"]["name"] for s in slices(api)} == names
    # a pod goes and another comes: the free room is reused
    api.actions.clear()
    api.table("v1", "pods").pop((NS, "p0"))
    api.informers[("", "pods")][0].delete(pod("p0"))
    await run_queue(c)
    api.seed("v1", "pods", pod("p9", "10.0.0.9"))
    await run_queue(c)
    assert not api.writes("create")
    assert sorted(len(s["endpoints"]) for s in slices(api)) == [1, 2, 2]


async def test_waits_for_its_own_writes_before_syncing_again() -> None:
    api, c = await setup()
    svc = api.seed("v1", "services", service())
    api.seed("v1", "pods", pod("a"))
    inf = api.informers[("discovery.k8s.io", "endpointslices")][0]
    api.informers[("discovery.k8s.io", "endpointslices")] = []  # the informer falls behind
    await run_queue(c)
    assert len(slices(api)) == 1
    with pytest.raises(StaleInformer):
        await c.sync(f"{NS}/web")
    assert len(slices(api)) == 1  # no duplicate
    inf.add(slices(api)[0])  # the informer catches up
    await c.sync(f"{NS}/web")
    assert len(slices(api)) == 1 and svc


async def test_slices_of_an_older_service_incarnation_are_replaced() -> None:
    api, c = await setup()
    api.seed("discovery.k8s.io/v1", "endpointslices", {
        "metadata": {"name": "web-old", "namespace": NS,
                     "labels": {LABEL_SERVICE_NAME: "web", LABEL_MANAGED_BY: CONTROLLER_NAME},
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "gone",
                                          "controller": True}]},
        "addressType": "IPv4", "endpoints": [], "ports": []})
    api.seed("v1", "services", service())
    api.seed("v1", "pods", pod("a"))
    await run_queue(c)
    assert [s["metadata"]["name"] for s in slices(api)] != ["web-old"]
    assert all(s["metadata"]["ownerReferences"][0]["uid"] == "uid-svc-web" for s in slices(api))


async def test_prefer_close_hints_each_endpoint_for_its_own_zone() -> None:
    api, c = await setup()
    api.seed("v1", "nodes", {"metadata": {"name": "n2"}})  # no zone: its endpoints get no hints
    api.seed("v1", "services", service(trafficDistribution="PreferClose"))
    api.seed("v1", "pods", pod("a", "10.0.0.1"))
    far = pod("b", "10.0.0.2")
    far["spec"]["nodeName"] = "n2"
    api.seed("v1", "pods", far)
    await run_queue(c)
    eps = endpoints_by_pod(api)
    assert eps["a"]["hints"] == {"forZones": [{"name": "z1"}]} and "hints" not in eps["b"]
    # without the field, no hints
    api2, c2 = await setup()
    api2.seed("v1", "services", service())
    api2.seed("v1", "pods", pod("a", "10.0.0.1"))
    await run_queue(c2)
    assert "hints" not in endpoints_by_pod(api2)["a"]
