"""PodDisruptionBudget status feeding pods/eviction, and the pod garbage collector's threshold."""

from __future__ import annotations

import time

import httpx

from tests.conftest import wait_for
from tests.integration.controllers_infra.conftest import TERMINATED_POD_THRESHOLD, ControllerManager


def running_pod(admin: httpx.Client, ns: str, name: str, labels: dict, phase: str = "Running") -> None:
    admin.post(f"/api/v1/namespaces/{ns}/pods", json={
        "metadata": {"name": name, "labels": labels}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    ).raise_for_status()
    p = admin.get(f"/api/v1/namespaces/{ns}/pods/{name}").json()
    p["status"] = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if phase == "Running" else "False"}]}
    admin.put(f"/api/v1/namespaces/{ns}/pods/{name}/status", json=p).raise_for_status()


def evict(admin: httpx.Client, ns: str, name: str) -> httpx.Response:
    return admin.post(f"/api/v1/namespaces/{ns}/pods/{name}/eviction",
                      json={"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name}})


def test_disruption_budget_status_and_evictions(admin: httpx.Client, ns: str, controller_manager: ControllerManager) -> None:
    for name in ("db-0", "db-1"):
        running_pod(admin, ns, name, {"app": "db"})
    admin.post(f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets", json={
        "metadata": {"name": "db"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}}}
    ).raise_for_status()
    path = f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/db"

    def status() -> dict:
        return admin.get(path).json().get("status") or {}

    st = wait_for(lambda: (lambda s: s if s.get("expectedPods") == 2 else None)(status()), 20, 0.1, "the PDB status")
    pdb = admin.get(path).json()
    assert {k: st[k] for k in ("currentHealthy", "desiredHealthy", "disruptionsAllowed", "observedGeneration")} == {
        "currentHealthy": 2, "desiredHealthy": 1, "disruptionsAllowed": 1, "observedGeneration": pdb["metadata"]["generation"]}
    assert [(c["type"], c["status"], c["reason"]) for c in st["conditions"]] == [("DisruptionAllowed", "True", "SufficientPods")]
    # one eviction is allowed, and then the budget is spent
    assert evict(admin, ns, "db-0").status_code == 201
    st = wait_for(lambda: (lambda s: s if s.get("currentHealthy") == 1 and s.get("expectedPods") == 1 else None)(status()),
                  20, 0.1, "the PDB after the eviction")
    assert st["disruptionsAllowed"] == 0 and not st.get("disruptedPods")  # the evicted pod is gone: pruned
    assert st["conditions"][0]["reason"] == "InsufficientPods"
    r = evict(admin, ns, "db-1")
    assert r.status_code == 429, r.text
    causes = r.json()["details"]["causes"]
    assert causes == [{"reason": "DisruptionBudget", "message": "The disruption budget db needs 1 healthy pods and has 1 currently"}]
    controller_manager.assert_no_rbac_denials()


def test_terminated_pods_beyond_the_threshold_are_collected(admin: httpx.Client, ns: str,
                                                            controller_manager: ControllerManager) -> None:
    names = [f"done-{i}" for i in range(TERMINATED_POD_THRESHOLD + 2)]
    for name in names:
        running_pod(admin, ns, name, {"app": "batch"}, phase="Succeeded")
        time.sleep(1.05)  # distinct creation timestamps (second precision): the oldest go first

    def remaining() -> list[str] | None:
        items = admin.get(f"/api/v1/namespaces/{ns}/pods", params={"labelSelector": "app=batch"}).json()["items"]
        left = sorted(p["metadata"]["name"] for p in items)
        return left if len(left) <= TERMINATED_POD_THRESHOLD else None

    # the pod GC looks every 20 s
    assert wait_for(remaining, 30, 0.5, "the pod GC") == names[2:]
    controller_manager.assert_no_rbac_denials()
