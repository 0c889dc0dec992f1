"""DaemonSet and StatefulSet controllers end to end, with fake Node objects and a fake kubelet."""

from __future__ import annotations

import httpx

from tests.conftest import ControlPlane, wait_for
from tests.integration.controllers.conftest import ControllerManager, FakeKubelet, get


def node_body(name: str, labels: dict, taints: list | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
            "spec": {"taints": taints or []},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}


def test_daemonset_one_pod_per_eligible_node_and_rolling_update(controller_manager: ControllerManager,
                                                                 plane: ControlPlane, admin: httpx.Client, ns: str):
    tag = ns  # node labels unique to this test: other tests' nodes must not matter
    nodes = [f"{ns}-n{i}" for i in range(3)]
    try:
        for i, n in enumerate(nodes):
            taints = [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}] if i == 2 else []
            admin.post("/api/v1/nodes", json=node_body(n, {"pool": tag}, taints)).raise_for_status()
        ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
              "spec": {"selector": {"matchLabels": {"app": "agent"}},
                       "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                       "template": {"metadata": {"labels": {"app": "agent"}},
                                    "spec": {"nodeSelector": {"pool": tag},
                                             "containers": [{"name": "c", "image": "agent:1"}]}}}}
        with FakeKubelet(plane, ns):
            admin.post(f"/apis/apps/v1/namespaces/{ns}/daemonsets", json=ds).raise_for_status()
            plane.kubectl("-n", ns, "rollout", "status", "daemonset/agent", "--timeout=60s", timeout=70)
            pods = get(admin, f"/api/v1/namespaces/{ns}/pods")["items"]
            targets = sorted(p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
                             ["nodeSelectorTerms"][0]["matchFields"][0]["values"][0] for p in pods)
            assert targets == nodes[:2]  # the tainted node is not eligible
            st = get(admin, f"/apis/apps/v1/namespaces/{ns}/daemonsets/agent")["status"]
            assert (st["desiredNumberScheduled"], st["currentNumberScheduled"], st["numberReady"]) == (2, 2, 2)
            plane.kubectl("-n", ns, "set", "image", "daemonset/agent", "c=agent:2")
            plane.kubectl("-n", ns, "rollout", "status", "daemonset/agent", "--timeout=60s", timeout=70)
            wait_for(lambda: sorted(p["spec"]["containers"][0]["image"]
                                    for p in get(admin, f"/api/v1/namespaces/{ns}/pods")["items"]
                                    if not p["metadata"].get("deletionTimestamp")) == ["agent:2", "agent:2"],
                     30, what="both pods on agent:2")
            history = plane.kubectl("-n", ns, "rollout", "history", "daemonset/agent").stdout
            assert [ln.split()[0] for ln in history.splitlines()[2:] if ln.strip()] == ["1", "2"]
            # untaint the third node: it gets a pod too
            admin.patch(f"/api/v1/nodes/{nodes[2]}", json={"spec": {"taints": None}},
                        headers={"Content-Type": "application/merge-patch+json"}).raise_for_status()
            wait_for(lambda: get(admin, f"/apis/apps/v1/namespaces/{ns}/daemonsets/agent")["status"]
                     .get("numberReady") == 3, 30, what="3 ready daemon pods")
    finally:
        for n in nodes:
            admin.delete(f"/api/v1/nodes/{n}")
    controller_manager.assert_no_rbac_denials()


def test_statefulset_ordered_creation_scale_and_update(controller_manager: ControllerManager, plane: ControlPlane,
                                                       admin: httpx.Client, ns: str):
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
           "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db"}},
                                 "spec": {"containers": [{"name": "c", "image": "db:1"}]}},
                    "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}
    order: list[str] = []

    def names() -> list[str]:
        return sorted(p["metadata"]["name"] for p in get(admin, f"/api/v1/namespaces/{ns}/pods")["items"]
                      if not p["metadata"].get("deletionTimestamp"))

    admin.post(f"/apis/apps/v1/namespaces/{ns}/statefulsets", json=sts).raise_for_status()
    wait_for(lambda: names() == ["db-0"], 20, what="db-0")
    # db-1 only once db-0 is running and ready (OrderedReady)
    assert names() == ["db-0"]
    with FakeKubelet(plane, ns, predicate=lambda p: order.append(p["metadata"]["name"]) or True):
        plane.kubectl("-n", ns, "rollout", "status", "statefulset/db", "--timeout=60s", timeout=70)
        assert order[:3] == ["db-0", "db-1", "db-2"]
        pod = get(admin, f"/api/v1/namespaces/{ns}/pods/db-1")
        assert pod["spec"]["hostname"] == "db-1" and pod["spec"]["subdomain"] == "db"
        claims = sorted(c["metadata"]["name"] for c in
                        get(admin, f"/api/v1/namespaces/{ns}/persistentvolumeclaims")["items"])
        assert claims == ["data-db-0", "data-db-1", "data-db-2"]
        plane.kubectl("-n", ns, "set", "image", "statefulset/db", "c=db:2")
        plane.kubectl("-n", ns, "rollout", "status", "statefulset/db", "--timeout=60s", timeout=70)
        wait_for(lambda: {get(admin, f"/api/v1/namespaces/{ns}/pods/{n}")["spec"]["containers"][0]["image"]
                          for n in names()} == {"db:2"}, 30, what="all pods on db:2")
        plane.kubectl("-n", ns, "scale", "statefulset/db", "--replicas=1")
        wait_for(lambda: names() == ["db-0"], 30, what="scaled down to db-0")
    st = wait_for(lambda: (s := get(admin, f"/apis/apps/v1/namespaces/{ns}/statefulsets/db")["status"])["replicas"] == 1
                  and s, 20, what="status.replicas 1")
    assert st["currentRevision"] == st["updateRevision"]
    controller_manager.assert_no_rbac_denials()
