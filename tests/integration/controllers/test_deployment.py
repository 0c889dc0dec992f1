"""Deployment controller end to end: rolling update invariants, kubectl rollout status/undo/history, scale."""

from __future__ import annotations

import httpx

from tests.conftest import ControlPlane, wait_for
from tests.integration.controllers.conftest import ControllerManager, FakeKubelet, Watcher, get

REPLICAS, SURGE, UNAVAILABLE = 4, 1, 1


def deployment_body(name: str, image: str, replicas: int = REPLICAS) -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxSurge": SURGE, "maxUnavailable": UNAVAILABLE}},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}}}


def images(admin: httpx.Client, ns: str) -> list[str]:
    items = get(admin, f"/api/v1/namespaces/{ns}/pods?labelSelector=app=web")["items"]
    return sorted(p["spec"]["containers"][0]["image"] for p in items if not p["metadata"].get("deletionTimestamp"))


def test_rolling_update_rollback_and_scale(controller_manager: ControllerManager, plane: ControlPlane,
                                           admin: httpx.Client, ns: str):
    kubectl = plane.kubectl
    with FakeKubelet(plane, ns):
        admin.post(f"/apis/apps/v1/namespaces/{ns}/deployments", json=deployment_body("web", "img:a")).raise_for_status()
        out = kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=60s", timeout=70).stdout
        assert 'deployment "web" successfully rolled out' in out
        assert images(admin, ns) == ["img:a"] * REPLICAS
        # the conditions kubectl wait reads are the controller's, as upstream's
        out = kubectl("-n", ns, "wait", "--for=condition=Available", "deployment/web", "--timeout=30s",
                      timeout=40).stdout
        assert "deployment.apps/web condition met" in out
        out = kubectl("-n", ns, "wait", "--for=condition=Progressing=True", "deployment/web", "--timeout=30s",
                      timeout=40).stdout
        assert "condition met" in out

        def surge_ok(rss: dict[str, dict]) -> None:
            asked = sum(rs["spec"]["replicas"] for rs in rss.values())
            assert asked <= REPLICAS + SURGE, f"{asked} pods asked for by {sorted(rss)}"

        def availability_ok(ds: dict[str, dict]) -> None:
            st = ds["web"].get("status") or {}
            assert st.get("availableReplicas", 0) >= REPLICAS - UNAVAILABLE, f"available: {st}"

        rs_path = f"/apis/apps/v1/namespaces/{ns}/replicasets"
        d_path = f"/apis/apps/v1/namespaces/{ns}/deployments"
        with Watcher(plane, rs_path, surge_ok) as rs_watch, Watcher(plane, d_path, availability_ok) as d_watch:
            kubectl("-n", ns, "set", "image", "deployment/web", "c=img:b")
            out = kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=60s", timeout=70).stdout
            assert "successfully rolled out" in out
            wait_for(lambda: images(admin, ns) == ["img:b"] * REPLICAS, 30, what="all pods on img:b")
            kubectl("-n", ns, "rollout", "undo", "deployment/web")
            kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=60s", timeout=70)
            wait_for(lambda: images(admin, ns) == ["img:a"] * REPLICAS, 30, what="all pods back on img:a")
        assert rs_watch.events > 5 and d_watch.events > 5
        assert rs_watch.errors == [], (rs_watch.errors, [h[:4] for h in rs_watch.history])
        assert d_watch.errors == [], d_watch.errors

        rss = get(admin, f"/apis/apps/v1/namespaces/{ns}/replicasets")["items"]
        revisions = {rs["spec"]["template"]["spec"]["containers"][0]["image"]:
                     rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] for rs in rss}
        assert revisions == {"img:a": "3", "img:b": "2"}
        history = kubectl("-n", ns, "rollout", "history", "deployment/web").stdout
        assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["2", "3"]

        for n in (10, 2):
            kubectl("-n", ns, "scale", "deployment/web", f"--replicas={n}")
            kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=60s", timeout=70)
            wait_for(lambda n=n: len(images(admin, ns)) == n, 30, what=f"{n} pods")
        row = kubectl("-n", ns, "get", "deployment", "web", "--no-headers").stdout.split()
        assert row[:4] == ["web", "2/2", "2", "2"]
        d = get(admin, f"/apis/apps/v1/namespaces/{ns}/deployments/web")
        conds = {c["type"]: c for c in d["status"]["conditions"]}
        assert conds["Available"]["status"] == "True" and conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
        assert d["status"]["observedGeneration"] == d["metadata"]["generation"]
    controller_manager.assert_no_rbac_denials()


def test_paused_deployment(controller_manager: ControllerManager, plane: ControlPlane, admin: httpx.Client, ns: str):
    kubectl = plane.kubectl
    d_path = f"/apis/apps/v1/namespaces/{ns}/deployments/web"

    def progressing_reason() -> str | None:
        conds = get(admin, d_path).get("status", {}).get("conditions", [])
        return next((c["reason"] for c in conds if c["type"] == "Progressing"), None)

    with FakeKubelet(plane, ns):
        admin.post(f"/apis/apps/v1/namespaces/{ns}/deployments", json=deployment_body("web", "img:a", 2)).raise_for_status()
        kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=60s", timeout=70)
        kubectl("-n", ns, "set", "image", "deployment/web", "c=img:b")
        kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=60s", timeout=70)
        kubectl("-n", ns, "rollout", "pause", "deployment/web")
        wait_for(lambda: progressing_reason() == "DeploymentPaused", 20, what="the DeploymentPaused condition")
        r = kubectl("-n", ns, "rollout", "undo", "deployment/web", check=False)
        assert r.returncode != 0 and "cannot rollback a paused deployment" in r.stderr
        kubectl("-n", ns, "set", "image", "deployment/web", "c=img:c")
        wait_for(lambda: get(admin, d_path)["status"].get("observedGeneration") == get(admin, d_path)["metadata"]["generation"],
                 20, what="the paused change observed")
        assert len(get(admin, f"/apis/apps/v1/namespaces/{ns}/replicasets")["items"]) == 2  # no new set while paused
        kubectl("-n", ns, "rollout", "resume", "deployment/web")
        kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=60s", timeout=70)
        wait_for(lambda: images(admin, ns) == ["img:c"] * 2, 30, what="pods on img:c")
        assert progressing_reason() == "NewReplicaSetAvailable"
