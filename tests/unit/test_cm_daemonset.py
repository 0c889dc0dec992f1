"""DaemonSet controller against the in-memory API."""

from __future__ import annotations

import copy

import pytest

from controller_manager import history
from controller_manager.base import ControllerContext, FakeClock
from controller_manager.daemonset import (
    DaemonSetController,
    add_daemon_tolerations,
    node_name_affinity,
    node_should_run_daemon_pod,
    target_node,
)
from controller_manager.fake import FakeAPI, FakeInformerFactory, make_pods_ready, run_until_idle

NS = "kube-system"


def node(name: str, labels: dict | None = None, taints: list | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"taints": taints or []}}


def daemonset(name: str = "agent", image: str = "agent:1", node_selector: dict | None = None,
              max_unavailable: int | str = 1, max_surge: int | str = 0, tolerations: list | None = None) -> dict:
    spec: dict = {"containers": [{"name": "c", "image": image}]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    if tolerations:
        spec["tolerations"] = tolerations
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": NS},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
                     "updateStrategy": {"type": "RollingUpdate",
                                        "rollingUpdate": {"maxUnavailable": max_unavailable, "maxSurge": max_surge}},
                     "revisionHistoryLimit": 10}}


class Env:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.api = FakeAPI(self.clock)
        ctx = ControllerContext(self.api, FakeInformerFactory(self.api), clock=self.clock,  # type: ignore[arg-type]
                                recorder_factory=self.api.recorder)
        self.dsc = DaemonSetController(ctx)
        self.kubelet = True

    def settle_kubelet(self) -> None:
        if self.kubelet:
            make_pods_ready(self.api, NS)

    async def settle(self) -> None:
        await run_until_idle([self.dsc], settle=self.settle_kubelet)

    def pods(self) -> list[dict]:
        return self.api.list_objects("v1", "pods", NS)

    def pods_by_node(self) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {}
        for p in self.pods():
            out.setdefault(target_node(p), []).append(p)
        return out

    def ds(self, name: str = "agent") -> dict:
        return self.api.get_object("apps/v1", "daemonsets", NS, name)

    def set_image(self, image: str) -> None:
        d = copy.deepcopy(self.ds())
        d["spec"]["template"]["spec"]["containers"][0]["image"] = image
        self.api.update("apps/v1", "daemonsets", d)


@pytest.fixture
def env() -> Env:
    return Env()


def test_default_tolerations_and_node_affinity():
    spec = {"hostNetwork": True, "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                                                  "effect": "NoExecute", "tolerationSeconds": 5}]}
    add_daemon_tolerations(spec)
    keys = [(t["key"], t["effect"]) for t in spec["tolerations"]]
    assert ("node.kubernetes.io/network-unavailable", "NoSchedule") in keys
    assert ("node.kubernetes.io/unreachable", "NoExecute") in keys
    assert len(keys) == 7  # the existing not-ready toleration was replaced, not duplicated
    assert spec["tolerations"][0] == {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}
    aff = node_name_affinity({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Exists"}]}]}}}, "n1")
    assert aff["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] == [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]
    assert target_node({"spec": {"affinity": aff}}) == "n1"


def test_node_eligibility():
    ds = daemonset(node_selector={"role": "worker"})
    assert node_should_run_daemon_pod(node("a", {"role": "worker"}), ds) == (True, True)
    assert node_should_run_daemon_pod(node("b", {"role": "master"}), ds) == (False, False)
    no_sched = node("c", {"role": "worker"}, [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}])
    assert node_should_run_daemon_pod(no_sched, ds) == (False, True)  # running pods may stay
    no_exec = node("d", {"role": "worker"}, [{"key": "dedicated", "value": "x", "effect": "NoExecute"}])
    assert node_should_run_daemon_pod(no_exec, ds) == (False, False)
    tolerating = daemonset(node_selector={"role": "worker"},
                           tolerations=[{"key": "dedicated", "operator": "Equal", "value": "x"}])
    assert node_should_run_daemon_pod(no_exec, tolerating) == (True, True)
    # the default tolerations: a not-ready or cordoned node still runs daemon pods
    cordoned = node("e", {"role": "worker"}, [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
                                              {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}])
    assert node_should_run_daemon_pod(cordoned, ds) == (True, True)
    affinity = daemonset()
    affinity["spec"]["template"]["spec"]["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}]}}}
    assert node_should_run_daemon_pod(node("f", {"zone": "z1"}), affinity)[0]
    assert not node_should_run_daemon_pod(node("g", {"zone": "z2"}), affinity)[0]


async def test_one_pod_per_eligible_node_and_status(env: Env):
    for n in ("n1", "n2", "n3"):
        env.api.create("v1", "nodes", node(n, {"role": "worker"} if n != "n3" else {}))
    env.api.create("apps/v1", "daemonsets", daemonset(node_selector={"role": "worker"}))
    await env.settle()
    by_node = env.pods_by_node()
    assert sorted(by_node) == ["n1", "n2"] and all(len(v) == 1 for v in by_node.values())
    pod = by_node["n1"][0]
    assert not pod["spec"].get("nodeName")  # the scheduler binds it
    assert pod["metadata"]["labels"][history.REVISION_LABEL]
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
    st = env.ds()["status"]
    assert (st["desiredNumberScheduled"], st["currentNumberScheduled"], st["numberReady"],
            st["updatedNumberScheduled"], st["numberAvailable"], st["numberMisscheduled"]) == (2, 2, 2, 2, 2, 0)
    revs = env.api.list_objects("apps/v1", "controllerrevisions", NS)
    assert len(revs) == 1 and revs[0]["revision"] == 1
    assert revs[0]["metadata"]["labels"][history.REVISION_LABEL] == pod["metadata"]["labels"][history.REVISION_LABEL]
    assert revs[0]["data"]["spec"]["template"]["$patch"] == "replace"
    # a node joins the selector: a pod for it; a node leaves: its pod goes
    n3 = env.api.get_object("v1", "nodes", "", "n3")
    env.api.update("v1", "nodes", {**n3, "metadata": {**n3["metadata"], "labels": {"role": "worker"}}})
    n1 = env.api.get_object("v1", "nodes", "", "n1")
    env.api.update("v1", "nodes", {**n1, "metadata": {**n1["metadata"], "labels": {}}})
    await env.settle()
    assert sorted(env.pods_by_node()) == ["n2", "n3"]
    # a node is deleted: its unscheduled pod is deleted too
    env.api.delete("v1", "nodes", "n2", "")
    await env.settle()
    assert sorted(env.pods_by_node()) == ["n3"]
    assert env.ds()["status"]["desiredNumberScheduled"] == 1


async def test_failed_pod_is_replaced_with_backoff(env: Env):
    env.api.create("v1", "nodes", node("n1"))
    env.api.create("apps/v1", "daemonsets", daemonset())
    await env.settle()
    (pod,) = env.pods()
    env.api.update("v1", "pods", {**pod, "status": {"phase": "Failed"}}, status=True)
    await env.settle()
    (new,) = env.pods()
    assert new["metadata"]["name"] != pod["metadata"]["name"]
    assert any(e[2] == "FailedDaemonPod" for e in env.api.events)
    # failing again right away: in backoff, the failed pod stays for now
    env.api.update("v1", "pods", {**new, "status": {"phase": "Failed"}}, status=True)
    await env.settle()
    assert [p["metadata"]["name"] for p in env.pods()] == [new["metadata"]["name"]]


async def test_rolling_update_within_max_unavailable(env: Env):
    for i in range(4):
        env.api.create("v1", "nodes", node(f"n{i}"))
    env.api.create("apps/v1", "daemonsets", daemonset(max_unavailable=1))
    await env.settle()
    old_hash = env.pods()[0]["metadata"]["labels"][history.REVISION_LABEL]
    env.kubelet = False
    env.set_image("agent:2")
    await env.settle()
    # one old pod deleted, its replacement created (not yet ready): nothing else moves
    pods = env.pods()
    new = [p for p in pods if p["metadata"]["labels"][history.REVISION_LABEL] != old_hash]
    assert len(pods) == 4 and len(new) == 1
    for _ in range(4):
        make_pods_ready(env.api, NS)
        await env.settle()
    pods = env.pods()
    assert len(pods) == 4 and all(p["spec"]["containers"][0]["image"] == "agent:2" for p in pods)
    revs = sorted(r["revision"] for r in env.api.list_objects("apps/v1", "controllerrevisions", NS))
    assert revs == [1, 2]
    st = env.ds()["status"]
    assert st["updatedNumberScheduled"] == 4 and st["numberAvailable"] == 4


async def test_rolling_update_with_surge_keeps_old_pod_until_new_is_ready(env: Env):
    env.api.create("v1", "nodes", node("n1"))
    env.api.create("apps/v1", "daemonsets", daemonset(max_unavailable=0, max_surge=1))
    await env.settle()
    env.kubelet = False
    env.set_image("agent:2")
    await env.settle()
    assert len(env.pods()) == 2  # old (ready) + new (not ready)
    make_pods_ready(env.api, NS)
    await env.settle()
    (pod,) = env.pods()
    assert pod["spec"]["containers"][0]["image"] == "agent:2"


async def test_on_delete_strategy_does_not_replace_pods(env: Env):
    env.api.create("v1", "nodes", node("n1"))
    ds = daemonset()
    ds["spec"]["updateStrategy"] = {"type": "OnDelete"}
    env.api.create("apps/v1", "daemonsets", ds)
    await env.settle()
    (pod,) = env.pods()
    env.set_image("agent:2")
    await env.settle()
    assert [p["metadata"]["name"] for p in env.pods()] == [pod["metadata"]["name"]]
    assert env.ds()["status"].get("updatedNumberScheduled", 0) == 0
    env.api.delete("v1", "pods", pod["metadata"]["name"], NS)
    await env.settle()
    (new,) = env.pods()
    assert new["spec"]["containers"][0]["image"] == "agent:2"
