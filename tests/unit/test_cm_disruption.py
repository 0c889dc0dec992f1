"""The disruption controller over a fake API: PDB status from pods and their controllers."""

from __future__ import annotations

import datetime as dt

import pytest

from apimachinery.meta import format_time
from controller_manager.disruption import DisruptionController, scaled_value
from tests.unit.cm_fakes import FakeAPI, make_context, run_queue

NS = "ns"


def owner_ref(obj: dict) -> dict:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True}


def pod(name: str, ready: bool = True, owner: dict | None = None, deleting: bool = False) -> dict:
    p = {"metadata": {"name": name, "namespace": NS, "labels": {"app": "db"}},
         "spec": {}, "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}
    if owner is not None:
        p["metadata"]["ownerReferences"] = [owner_ref(owner)]
    if deleting:
        p["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
        p["metadata"]["finalizers"] = ["hold"]
    return p


def pdb(api: FakeAPI, **spec) -> dict:
    return api.seed("policy/v1", "poddisruptionbudgets", {
        "metadata": {"name": "budget", "namespace": NS, "generation": 3},
        "spec": {"selector": {"matchLabels": {"app": "db"}}, **spec}})


def status(api: FakeAPI) -> dict:
    return api.get_obj("policy/v1", "poddisruptionbudgets", NS, "budget")["status"]


def test_scaled_value() -> None:
    assert scaled_value(2, 10, True) == 2
    assert scaled_value("50%", 5, True) == 3
    assert scaled_value("50%", 5, False) == 2
    assert scaled_value("3", 5, True) == 3


async def test_min_available_number() -> None:
    api = FakeAPI()
    c = DisruptionController(make_context(api))
    pdb(api, minAvailable=2)
    for i, ready in enumerate((True, True, True, False)):
        api.seed("v1", "pods", pod(f"p{i}", ready))
    api.seed("v1", "pods", pod("leaving", deleting=True))
    await run_queue(c)
    st = status(api)
    assert {k: st[k] for k in ("currentHealthy", "desiredHealthy", "expectedPods", "disruptionsAllowed",
                                "observedGeneration")} == {
        "currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 5, "disruptionsAllowed": 1, "observedGeneration": 3}
    (cond,) = st["conditions"]
    assert cond["type"] == "DisruptionAllowed" and cond["status"] == "True" and cond["reason"] == "SufficientPods"
    assert cond["observedGeneration"] == 3
    # nothing changed: no write
    writes = len(api.writes())
    c.queue.add(f"{NS}/budget")
    await run_queue(c)
    assert len(api.writes()) == writes


async def test_percentages_use_the_controllers_scale() -> None:
    api = FakeAPI()
    c = DisruptionController(make_context(api))
    d = api.seed("apps/v1", "deployments", {"metadata": {"name": "d", "namespace": NS}, "spec": {"replicas": 4}})
    rs = api.seed("apps/v1", "replicasets", {"metadata": {"name": "d-1", "namespace": NS,
                                                          "ownerReferences": [owner_ref(d)]}, "spec": {"replicas": 4}})
    sts = api.seed("apps/v1", "statefulsets", {"metadata": {"name": "s", "namespace": NS}, "spec": {"replicas": 2}})
    for i in range(3):
        api.seed("v1", "pods", pod(f"d{i}", owner=rs))
    api.seed("v1", "pods", pod("s0", owner=sts))
    pdb(api, maxUnavailable="30%")
    await run_queue(c)
    st = status(api)
    # expected = 4 (deployment, not its replica set) + 2 (statefulset); 30% of 6 rounded up = 2 unavailable
    assert (st["expectedPods"], st["desiredHealthy"], st["currentHealthy"], st["disruptionsAllowed"]) == (6, 4, 4, 0)
    assert st["conditions"][0]["reason"] == "InsufficientPods" and st["conditions"][0]["status"] == "False"


async def test_pods_without_a_controller_fail_safe() -> None:
    api = FakeAPI()
    ctx = make_context(api)
    c = DisruptionController(ctx)
    api.seed("v1", "pods", pod("bare"))
    pdb(api, minAvailable="50%")
    await run_queue(c)
    st = status(api)
    assert st["disruptionsAllowed"] == 0
    assert st["conditions"][0]["reason"] == "SyncFailed" and "found no controller ref" in st["conditions"][0]["message"]
    assert any(e[3] == "CalculateExpectedPodCountFailed" for e in ctx.events)  # type: ignore[attr-defined]


async def test_disrupted_pods_are_pruned_and_not_counted() -> None:
    api = FakeAPI()
    ctx = make_context(api)
    c = DisruptionController(ctx)
    now = ctx.clock.now()
    recent = format_time(now - dt.timedelta(seconds=30))
    expired = format_time(now - dt.timedelta(seconds=300))
    for i in range(4):
        api.seed("v1", "pods", pod(f"p{i}"))
    api.seed("v1", "pods", pod("going", deleting=True))
    b = pdb(api, minAvailable=1)
    api.seed("policy/v1", "poddisruptionbudgets", {**b, "status": {
        "disruptedPods": {"p0": recent, "p1": expired, "going": recent, "vanished": recent}}})
    await run_queue(c)
    st = status(api)
    # p0 was just evicted (not healthy, kept); p1 should long be gone (dropped, NotDeleted);
    # "going" is being deleted and "vanished" does not exist (both dropped)
    assert st["disruptedPods"] == {"p0": recent}
    assert st["currentHealthy"] == 3 and st["disruptionsAllowed"] == 2
    assert any(e[3] == "NotDeleted" and e[1] == "p1" for e in ctx.events)  # type: ignore[attr-defined]


async def test_no_pods_means_no_disruptions() -> None:
    api = FakeAPI()
    ctx = make_context(api)
    c = DisruptionController(ctx)
    pdb(api, maxUnavailable=1)
    await run_queue(c)
    st = status(api)
    assert (st["expectedPods"], st["disruptionsAllowed"]) == (0, 0)
    assert any(e[3] == "NoPods" for e in ctx.events)  # type: ignore[attr-defined]


@pytest.mark.parametrize("ready", [True, False])
async def test_pod_changes_requeue_their_budget(ready: bool) -> None:
    api = FakeAPI()
    c = DisruptionController(make_context(api))
    pdb(api, minAvailable=1)
    await run_queue(c)
    api.seed("v1", "pods", pod("p", ready))
    assert len(c.queue) == 1
    await run_queue(c)
    assert status(api)["currentHealthy"] == (1 if ready else 0)


async def test_stale_disruption_target_condition_is_reset() -> None:
    api = FakeAPI()
    ctx = make_context(api)
    c = DisruptionController(ctx)
    p = pod("p")
    p["status"]["conditions"].append({"type": "DisruptionTarget", "status": "True",
                                      "lastTransitionTime": format_time(ctx.clock.now() - dt.timedelta(seconds=200))})
    api.seed("v1", "pods", p)
    await run_queue(c)
    (patch,) = api.writes("patch", "pods")
    assert patch[5] == "status" and patch[4]["status"]["conditions"][0]["status"] == "False"
