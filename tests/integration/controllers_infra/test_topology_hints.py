"""Topology Aware Routing: a Service with topology-mode Auto gets zone hints from the real
EndpointSlice controller, an Event when they are disabled, and none once the annotation goes."""

from __future__ import annotations

import httpx

from tests.conftest import wait_for
from tests.integration.controllers_infra.conftest import ControllerManager

ZONES = {"topo-a": ("zone-a", "2"), "topo-b": ("zone-b", "2"), "topo-c": ("zone-c", "4")}


def make_node(admin: httpx.Client, name: str, zone: str, cpu: str) -> None:
    admin.post("/api/v1/nodes", json={"metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone}}}
               ).raise_for_status()

    def set_status() -> bool:  # the node lifecycle controller may write the node meanwhile (409)
        node = admin.get(f"/api/v1/nodes/{name}").json()
        node["status"] = {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
                          "capacity": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
                          "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}
        return admin.put(f"/api/v1/nodes/{name}/status", json=node).status_code == 200
    wait_for(set_status, 10, 0.1, f"node {name} status")


def make_pod(admin: httpx.Client, ns: str, name: str, ip: str, node: str) -> None:
    base = f"/api/v1/namespaces/{ns}/pods"
    admin.post(base, json={"metadata": {"name": name, "labels": {"app": "web"}},
                           "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]}}
               ).raise_for_status()
    pod = admin.get(f"{base}/{name}").json()
    pod["status"] = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                     "conditions": [{"type": "Ready", "status": "True"}]}
    admin.put(f"{base}/{name}/status", json=pod).raise_for_status()


def set_annotations(admin: httpx.Client, ns: str, annotations: dict[str, str]) -> None:
    svc = admin.get(f"/api/v1/namespaces/{ns}/services/web").json()
    svc["metadata"]["annotations"] = annotations
    admin.put(f"/api/v1/namespaces/{ns}/services/web", json=svc).raise_for_status()


def hints(admin: httpx.Client, ns: str) -> dict[str, tuple[str | None, tuple[str, ...] | None]]:
    items = admin.get(f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
                      params={"labelSelector": "kubernetes.io/service-name=web"}).json()["items"]
    return {e["targetRef"]["name"]: (e.get("zone"), tuple(z["name"] for z in e["hints"]["forZones"])
                                     if "hints" in e else None)
            for s in items for e in s.get("endpoints") or []}


def events(admin: httpx.Client, ns: str) -> list[tuple[str, str]]:
    items = admin.get(f"/api/v1/namespaces/{ns}/events").json()["items"]
    return [(e["reason"], e["message"]) for e in items
            if e["involvedObject"].get("kind") == "Service" and e["involvedObject"].get("name") == "web"]


def test_topology_mode_auto(admin: httpx.Client, ns: str, controller_manager: ControllerManager) -> None:
    for name, (zone, cpu) in ZONES.items():
        make_node(admin, name, zone, cpu)
    try:
        others = [n for n in admin.get("/api/v1/nodes").json()["items"] if n["metadata"]["name"] not in ZONES]
        assert not others, "this test needs the cluster's only nodes to be its own"
        admin.post(f"/api/v1/namespaces/{ns}/services", json={
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}).raise_for_status()
        # 8 endpoints: 4 in zone-a, 2 in zone-b, 2 in zone-c; zone-c holds half the CPU
        for i, node in enumerate(["topo-a"] * 4 + ["topo-b"] * 2 + ["topo-c"] * 2):
            make_pod(admin, ns, f"p{i}", f"10.244.9.{i + 1}", node)
        wait_for(lambda: len(hints(admin, ns)) == 8, 20, 0.1, "the endpoints")
        assert all(v[1] is None for v in hints(admin, ns).values())  # no hints without the annotation
        # annotated only now: while pods come up one by one every sync would record a Disabled
        # Event (as upstream), and the recorder's spam filter (25 per object) would swallow later ones
        set_annotations(admin, ns, {"service.kubernetes.io/topology-mode": "Auto"})

        def allocated() -> bool:
            h = hints(admin, ns)
            if len(h) != 8 or any(v[1] is None for v in h.values()):
                return False
            per_zone = {z: sum(1 for _, hz in h.values() if hz == (z,)) for z in ("zone-a", "zone-b", "zone-c")}
            return per_zone == {"zone-a": 2, "zone-b": 2, "zone-c": 4}
        wait_for(allocated, 20, 0.1, "hints allocated by CPU")
        # zone-c's own endpoints stay hinted for zone-c; two of zone-a's are lent to it
        h = hints(admin, ns)
        assert all(hz == ("zone-c",) for z, hz in h.values() if z == "zone-c")
        assert sum(1 for z, hz in h.values() if z == "zone-a" and hz == ("zone-c",)) == 2
        wait_for(lambda: ("TopologyAwareHintsEnabled", "Topology Aware Hints has been enabled, addressType: IPv4")
                 in events(admin, ns), 20, 0.1, "the Enabled event")

        # too few endpoints for three zones: hints go, with a Warning event saying why
        for i in range(2, 8):
            admin.delete(f"/api/v1/namespaces/{ns}/pods/p{i}", params={"gracePeriodSeconds": "0"})
        wait_for(lambda: len(hints(admin, ns)) == 2 and all(v[1] is None for v in hints(admin, ns).values()),
                 20, 0.1, "hints removed")
        wait_for(lambda: ("TopologyAwareHintsDisabled",
                          "Insufficient number of endpoints (2 endpoints, 3 zones), addressType: IPv4")
                 in events(admin, ns), 20, 0.1, "the Disabled event")

        # enough endpoints again, then the annotation is removed: no hints
        for i, node in ((2, "topo-b"), (3, "topo-c")):
            make_pod(admin, ns, f"q{i}", f"10.244.9.{20 + i}", node)
        wait_for(lambda: len(hints(admin, ns)) == 4 and all(v[1] for v in hints(admin, ns).values()),
                 20, 0.1, "hints back")
        set_annotations(admin, ns, {})
        wait_for(lambda: len(hints(admin, ns)) == 4 and all(v[1] is None for v in hints(admin, ns).values()),
                 20, 0.1, "hints removed with the annotation")
        wait_for(lambda: ("TopologyAwareHintsDisabled", "Topology Aware Hints has been disabled, addressType: IPv4")
                 in events(admin, ns), 20, 0.1, "the annotation-removed event")
    finally:
        for name in ZONES:
            admin.delete(f"/api/v1/nodes/{name}")
