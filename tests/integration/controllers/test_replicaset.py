"""ReplicaSet controller in a real controller-manager process."""

from __future__ import annotations

import httpx

from tests.conftest import ControlPlane, audited, read_audit_events, wait_for
from tests.integration.controllers.conftest import ControllerManager, get


def rs_body(name: str, replicas: int, app: str | None = None) -> dict:
    labels = {"app": app or name}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}


def pods(admin: httpx.Client, ns: str, selector: str = "") -> list[dict]:
    return get(admin, f"/api/v1/namespaces/{ns}/pods" + (f"?labelSelector={selector}" if selector else ""))["items"]


def test_replicaset_creates_adopts_and_releases(controller_manager: ControllerManager, admin: httpx.Client, ns: str):
    orphan = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "orphan", "labels": {"app": "web"}},
              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    admin.post(f"/api/v1/namespaces/{ns}/pods", json=orphan).raise_for_status()
    rs = admin.post(f"/apis/apps/v1/namespaces/{ns}/replicasets", json=rs_body("web", 3)).json()
    wait_for(lambda: len(pods(admin, ns, "app=web")) == 3, 20, what="3 pods")
    # the orphan was adopted, not duplicated
    adopted = get(admin, f"/api/v1/namespaces/{ns}/pods/orphan")
    assert adopted["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
    for p in pods(admin, ns, "app=web"):
        ref = p["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["name"], ref["controller"]) == ("ReplicaSet", "web", True)
    wait_for(lambda: get(admin, f"/apis/apps/v1/namespaces/{ns}/replicasets/web").get("status", {}).get("replicas") == 3,
             20, what="status.replicas 3")
    # relabel the orphan out of the selector: released, and replaced
    admin.patch(f"/api/v1/namespaces/{ns}/pods/orphan", json={"metadata": {"labels": {"app": "debug"}}},
                headers={"Content-Type": "application/merge-patch+json"}).raise_for_status()
    wait_for(lambda: not get(admin, f"/api/v1/namespaces/{ns}/pods/orphan")["metadata"].get("ownerReferences"),
             20, what="the pod released")
    wait_for(lambda: len(pods(admin, ns, "app=web")) == 3, 20, what="a replacement pod")
    # events from the replicaset-controller itself
    events = get(admin, f"/api/v1/namespaces/{ns}/events")["items"]
    assert any(e["reason"] == "SuccessfulCreate" and e["source"]["component"] == "replicaset-controller"
               for e in events)
    controller_manager.assert_no_rbac_denials()


def test_replicaset_writes_as_its_own_service_account(controller_manager: ControllerManager, plane: ControlPlane,
                                                      admin: httpx.Client, ns: str):
    admin.post(f"/apis/apps/v1/namespaces/{ns}/replicasets", json=rs_body("who", 1)).raise_for_status()
    wait_for(lambda: len(pods(admin, ns, "app=who")) == 1, 20, what="a pod")

    def created_by() -> set[str]:
        return {e["user"]["username"] for e in audited(read_audit_events(plane.cfg.log("audit")), verb="create",
                                                       resource="pods", namespace=ns)}

    users = wait_for(created_by, 15, what="the audit record")
    assert users == {"system:serviceaccount:kube-system:replicaset-controller"}


def test_scale_subresource_and_status(controller_manager: ControllerManager, admin: httpx.Client, ns: str):
    admin.post(f"/apis/apps/v1/namespaces/{ns}/replicasets", json=rs_body("sc", 2)).raise_for_status()
    wait_for(lambda: len(pods(admin, ns, "app=sc")) == 2, 20, what="2 pods")
    scale = get(admin, f"/apis/apps/v1/namespaces/{ns}/replicasets/sc/scale")
    scale["spec"]["replicas"] = 5
    admin.put(f"/apis/apps/v1/namespaces/{ns}/replicasets/sc/scale", json=scale).raise_for_status()
    wait_for(lambda: len(pods(admin, ns, "app=sc")) == 5, 20, what="5 pods")
    scale = get(admin, f"/apis/apps/v1/namespaces/{ns}/replicasets/sc/scale")
    scale["spec"]["replicas"] = 1
    admin.put(f"/apis/apps/v1/namespaces/{ns}/replicasets/sc/scale", json=scale).raise_for_status()
    wait_for(lambda: len(pods(admin, ns, "app=sc")) == 1, 20, what="1 pod")
    wait_for(lambda: get(admin, f"/apis/apps/v1/namespaces/{ns}/replicasets/sc")["status"].get("replicas") == 1
             and get(admin, f"/apis/apps/v1/namespaces/{ns}/replicasets/sc")["status"].get("observedGeneration") == 3,
             20, what="status caught up")
