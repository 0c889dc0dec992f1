"""The Endpoints controller over a fake API: selectors, readiness, ports, packing, lifecycle."""

from __future__ import annotations

import pytest

from controller_manager.endpoints import EndpointsController, desired_subsets, repack_subsets
from controller_manager.endpointutil import (
    StaleInformer,
    find_port,
    services_to_update,
    should_pod_be_in_endpoints,
)
from tests.unit.cm_fakes import FakeAPI, make_context, run_queue

NS = "ns"


def pod(name: str, ip: str | None = "10.0.0.1", ready: bool = True, labels: dict | None = None, node: str = "n1",
        ports: list | None = None, phase: str = "Running", deleting: bool = False, **spec) -> dict:
    p = {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": name, "namespace": NS, "labels": labels if labels is not None else {"app": "web"},
                      "uid": f"uid-{name}"},
         "spec": {"nodeName": node, "containers": [{"name": "c", "ports": ports or []}], **spec},
         "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}
    if ip:
        p["status"]["podIP"] = ip
    if deleting:
        p["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return p


def service(name: str = "web", ports: list | None = None, selector: dict | None = None, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": NS, "labels": {"tier": "front"}, "uid": f"uid-svc-{name}"},
            "spec": {"selector": selector if selector is not None else {"app": "web"},
                     "ports": ports if ports is not None else [{"name": "http", "port": 80, "targetPort": 8080,
                                                              "protocol": "TCP"}],
                     **spec}}


def test_find_port_numeric_named_and_missing() -> None:
    p = pod("a", ports=[{"name": "http", "containerPort": 8081}, {"name": "dns", "containerPort": 53, "protocol": "UDP"}])
    assert find_port(p, {"port": 80, "targetPort": 9000}) == 9000
    assert find_port(p, {"port": 80}) == 80  # no targetPort: the service port
    assert find_port(p, {"port": 80, "targetPort": "http"}) == 8081
    assert find_port(p, {"port": 53, "targetPort": "dns", "protocol": "UDP"}) == 53
    assert find_port(p, {"port": 53, "targetPort": "dns", "protocol": "TCP"}) is None  # protocol must match
    assert find_port(p, {"port": 80, "targetPort": "metrics"}) is None


def test_which_pods_belong() -> None:
    assert should_pod_be_in_endpoints(pod("a"), False)
    assert not should_pod_be_in_endpoints(pod("a", ip=None), False)
    assert not should_pod_be_in_endpoints(pod("a", phase="Succeeded"), True)
    assert not should_pod_be_in_endpoints(pod("a", deleting=True), False)
    assert should_pod_be_in_endpoints(pod("a", deleting=True), True)


def test_subsets_ready_not_ready_and_named_ports() -> None:
    svc = service(ports=[{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
                         {"name": "metrics", "port": 9090, "targetPort": 9090, "protocol": "TCP"}])
    pods = [
        pod("a", "10.0.0.1", ports=[{"name": "http", "containerPort": 8080}]),
        pod("b", "10.0.0.2", ready=False, ports=[{"name": "http", "containerPort": 8080}]),
        pod("c", "10.0.0.3", ports=[{"name": "http", "containerPort": 8081}]),
        pod("d", "10.0.0.4", ports=[]),  # no "http" port: only in the metrics port set
        pod("e", None),
        pod("f", "10.0.0.6", phase="Failed"),
    ]
    subsets, total = desired_subsets(svc, pods)
    assert total == 4
    by_ports = {tuple((p["name"], p["port"]) for p in s["ports"]): s for s in subsets}
    assert set(by_ports) == {(("http", 8080), ("metrics", 9090)), (("http", 8081), ("metrics", 9090)),
                             (("metrics", 9090),)}
    s8080 = by_ports[(("http", 8080), ("metrics", 9090))]
    assert [a["ip"] for a in s8080["addresses"]] == ["10.0.0.1"]
    assert [a["ip"] for a in s8080["notReadyAddresses"]] == ["10.0.0.2"]
    assert s8080["addresses"][0] == {"ip": "10.0.0.1", "nodeName": "n1",
                                     "targetRef": {"kind": "Pod", "namespace": NS, "name": "a", "uid": "uid-a"}}
    assert [a["ip"] for a in by_ports[(("metrics", 9090),)]["addresses"]] == ["10.0.0.4"]


def test_publish_not_ready_addresses_and_headless() -> None:
    svc = service(publishNotReadyAddresses=True)
    subsets, _ = desired_subsets(svc, [pod("a", ready=False), pod("b", "10.0.0.2", deleting=True)])
    assert [a["ip"] for a in subsets[0]["addresses"]] == ["10.0.0.1", "10.0.0.2"]
    assert "notReadyAddresses" not in subsets[0]
    headless = service(ports=[], clusterIP="None")
    subsets, _ = desired_subsets(headless, [pod("a", hostname="a", subdomain="web")])
    assert subsets == [{"addresses": [{"ip": "10.0.0.1", "nodeName": "n1", "hostname": "a",
                                       "targetRef": {"kind": "Pod", "namespace": NS, "name": "a", "uid": "uid-a"}}]}]
    # a non-headless service without ports publishes nothing
    assert desired_subsets(service(ports=[]), [pod("a")])[0] == []


def test_repack_merges_addresses_with_equal_ports() -> None:
    port = {"name": "p", "port": 1, "protocol": "TCP"}
    a = {"ip": "10.0.0.2", "targetRef": {"uid": "2"}}
    b = {"ip": "10.0.0.1", "targetRef": {"uid": "1"}}
    assert repack_subsets([(a, True, [port]), (b, True, [port])]) == [{"addresses": [b, a], "ports": [port]}]


def test_pod_change_relevance() -> None:
    from client import Store

    services = Store()
    services.put(service())
    old = pod("a")
    assert services_to_update(services, None, old) == {f"{NS}/web"}
    same = pod("a")
    same["metadata"]["annotations"] = {"x": "y"}
    assert services_to_update(services, old, same) == set()  # nothing endpoints show
    assert services_to_update(services, old, pod("a", ready=False)) == {f"{NS}/web"}
    assert services_to_update(services, old, pod("a", labels={"app": "other"})) == {f"{NS}/web"}


async def test_sync_creates_updates_and_deletes_endpoints() -> None:
    api = FakeAPI()
    ctx = make_context(api)
    c = EndpointsController(ctx)
    api.seed("v1", "services", service(clusterIP="None"))
    api.seed("v1", "pods", pod("a"))
    await run_queue(c)
    ep = api.get_obj("v1", "endpoints", NS, "web")
    assert ep["metadata"]["labels"] == {"tier": "front", "service.kubernetes.io/headless": ""}
    assert ep["subsets"][0]["addresses"][0]["ip"] == "10.0.0.1"
    assert ep["subsets"][0]["ports"] == [{"port": 8080, "protocol": "TCP", "name": "http"}]
    writes = len(api.writes())
    # nothing changed: no write
    c.queue.add(f"{NS}/web")
    await run_queue(c)
    assert len(api.writes()) == writes
    # the pod stops being ready: it moves to notReadyAddresses
    api.seed("v1", "pods", pod("a", ready=False))
    await run_queue(c)
    ep = api.get_obj("v1", "endpoints", NS, "web")
    assert "addresses" not in ep["subsets"][0] and ep["subsets"][0]["notReadyAddresses"][0]["ip"] == "10.0.0.1"
    # the service goes: so do its endpoints
    api.table("v1", "services").pop((NS, "web"))
    api.informers[("", "services")][0].delete(service())
    await run_queue(c)
    assert api.get_obj("v1", "endpoints", NS, "web") is None


async def test_a_stale_informer_copy_never_stands_in_for_its_own_last_write() -> None:
    """A pod goes not-ready (written), then the service publishes not-ready addresses before the
    informer saw that write: comparing against the stale copy (still "ready") would skip the write
    that is needed now (upstream's staleEndpointsTracker)."""
    api = FakeAPI()
    c = EndpointsController(make_context(api))
    api.seed("v1", "services", service())
    api.seed("v1", "pods", pod("a"))
    await run_queue(c)
    informer = api.informers[("", "endpoints")][0]
    api.informers[("", "endpoints")] = []  # the endpoints informer falls behind from here
    api.seed("v1", "pods", pod("a", ready=False))
    await run_queue(c)
    assert api.get_obj("v1", "endpoints", NS, "web")["subsets"][0]["notReadyAddresses"][0]["ip"] == "10.0.0.1"
    api.seed("v1", "services", service(publishNotReadyAddresses=True))
    with pytest.raises(StaleInformer):
        await c.sync(f"{NS}/web")
    informer.update(api.get_obj("v1", "endpoints", NS, "web"))  # the informer catches up
    await c.sync(f"{NS}/web")
    assert api.get_obj("v1", "endpoints", NS, "web")["subsets"][0]["addresses"][0]["ip"] == "10.0.0.1"


async def test_services_without_selector_are_left_alone() -> None:
    api = FakeAPI()
    c = EndpointsController(make_context(api))
    api.seed("v1", "endpoints", {"metadata": {"name": "manual", "namespace": NS},
                                 "subsets": [{"addresses": [{"ip": "1.2.3.4"}]}]})
    api.seed("v1", "services", service("manual", selector={}))
    await run_queue(c)
    assert api.writes() == []
    assert api.get_obj("v1", "endpoints", NS, "manual")["subsets"][0]["addresses"] == [{"ip": "1.2.3.4"}]


async def test_over_capacity_is_truncated_and_annotated() -> None:
    api = FakeAPI()
    c = EndpointsController(make_context(api))
    api.seed("v1", "services", service())
    for i in range(1003):
        api.seed("v1", "pods", pod(f"p{i}", f"10.1.{i // 250}.{i % 250}"))
    await run_queue(c)
    ep = api.get_obj("v1", "endpoints", NS, "web")
    assert sum(len(s.get("addresses", [])) for s in ep["subsets"]) == 1000
    assert ep["metadata"]["annotations"]["endpoints.kubernetes.io/over-capacity"] == "truncated"
