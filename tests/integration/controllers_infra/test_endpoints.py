"""Endpoints and EndpointSlices from a Service's selector and its pods' (faked) status."""

from __future__ import annotations

import httpx

from tests.conftest import wait_for
from tests.integration.controllers_infra.conftest import ControllerManager


def make_pod(admin: httpx.Client, ns: str, name: str, ip: str, ready: bool, http_port: int) -> None:
    base = f"/api/v1/namespaces/{ns}/pods"
    admin.post(base, json={"metadata": {"name": name, "labels": {"app": "web"}},
                           "spec": {"containers": [{"name": "c", "image": "x",
                                                    "ports": [{"name": "http", "containerPort": http_port}]}]}}
               ).raise_for_status()
    set_status(admin, ns, name, ip, ready)


def set_status(admin: httpx.Client, ns: str, name: str, ip: str, ready: bool) -> None:
    """What the kubelet would report (no kubelet runs here)."""
    pod = admin.get(f"/api/v1/namespaces/{ns}/pods/{name}").json()
    pod["status"] = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                     "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    admin.put(f"/api/v1/namespaces/{ns}/pods/{name}/status", json=pod).raise_for_status()


def endpoints_state(admin: httpx.Client, ns: str) -> dict | None:
    r = admin.get(f"/api/v1/namespaces/{ns}/endpoints/web")
    if r.status_code != 200:
        return None
    out = {}
    for s in r.json().get("subsets") or []:
        ports = tuple(sorted((p.get("name", ""), p["port"]) for p in s.get("ports") or []))
        out[ports] = (sorted(a["ip"] for a in s.get("addresses") or []),
                      sorted(a["ip"] for a in s.get("notReadyAddresses") or []))
    return out


def slices_state(admin: httpx.Client, ns: str) -> dict:
    items = admin.get(f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
                      params={"labelSelector": "kubernetes.io/service-name=web"}).json()["items"]
    out: dict = {}
    for s in items:
        ports = tuple(sorted((p.get("name", ""), p["port"]) for p in s.get("ports") or []))
        for e in s.get("endpoints") or []:
            out.setdefault(ports, {})[e["addresses"][0]] = e["conditions"]["ready"]
    return out


def test_endpoints_and_slices_follow_pods(admin: httpx.Client, ns: str, controller_manager: ControllerManager) -> None:
    svc = admin.post(f"/api/v1/namespaces/{ns}/services", json={
        "metadata": {"name": "web", "labels": {"team": "a"}},
        "spec": {"selector": {"app": "web"}, "ports": [
            {"name": "http", "port": 80, "targetPort": "http"},
            {"name": "metrics", "port": 9100, "targetPort": 9100}]}}).json()
    make_pod(admin, ns, "a", "10.244.1.10", True, 8080)
    make_pod(admin, ns, "b", "10.244.1.11", False, 8080)
    make_pod(admin, ns, "c", "10.244.1.12", True, 8081)  # the named port maps elsewhere on this one
    want = {(("http", 8080), ("metrics", 9100)): (["10.244.1.10"], ["10.244.1.11"]),
            (("http", 8081), ("metrics", 9100)): (["10.244.1.12"], [])}
    wait_for(lambda: endpoints_state(admin, ns) == want, 20, 0.1, "the endpoints")
    want_slices = {(("http", 8080), ("metrics", 9100)): {"10.244.1.10": True, "10.244.1.11": False},
                   (("http", 8081), ("metrics", 9100)): {"10.244.1.12": True}}
    wait_for(lambda: slices_state(admin, ns) == want_slices, 20, 0.1, "the endpoint slices")
    for s in admin.get(f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices").json()["items"]:
        assert s["metadata"]["ownerReferences"][0]["uid"] == svc["metadata"]["uid"]
        assert s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
        assert s["metadata"]["labels"]["team"] == "a"
    # b becomes ready, a goes away
    set_status(admin, ns, "b", "10.244.1.11", True)
    admin.delete(f"/api/v1/namespaces/{ns}/pods/a").raise_for_status()
    want = {(("http", 8080), ("metrics", 9100)): (["10.244.1.11"], []),
            (("http", 8081), ("metrics", 9100)): (["10.244.1.12"], [])}
    wait_for(lambda: endpoints_state(admin, ns) == want, 20, 0.1, "the endpoints after the change")
    wait_for(lambda: slices_state(admin, ns) == {(("http", 8080), ("metrics", 9100)): {"10.244.1.11": True},
                                                 (("http", 8081), ("metrics", 9100)): {"10.244.1.12": True}},
             20, 0.1, "the slices after the change")
    # publishNotReadyAddresses: every address is published as ready
    set_status(admin, ns, "c", "10.244.1.12", False)
    admin.patch(f"/api/v1/namespaces/{ns}/services/web", json={"spec": {"publishNotReadyAddresses": True}},
                headers={"content-type": "application/merge-patch+json"}).raise_for_status()
    wait_for(lambda: endpoints_state(admin, ns) == want, 20, 0.1, "not-ready addresses published")
    # the service goes: its Endpoints go, its slices follow through the garbage collector
    admin.delete(f"/api/v1/namespaces/{ns}/services/web").raise_for_status()
    wait_for(lambda: endpoints_state(admin, ns) is None and slices_state(admin, ns) == {}, 20, 0.1,
             "endpoints and slices gone")
    controller_manager.assert_no_rbac_denials()


def test_the_apiservers_own_endpoints_are_left_alone(admin: httpx.Client, controller_manager: ControllerManager) -> None:
    ep = admin.get("/api/v1/namespaces/default/endpoints/kubernetes").json()
    assert ep["subsets"][0]["ports"][0]["name"] == "https"
    slices = admin.get("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices").json()["items"]
    assert [s["metadata"]["name"] for s in slices] == ["kubernetes"]
