"""The scheduler against a real apiserver + etcd: Node objects only, no kubelet."""

from __future__ import annotations

import collections

from tests.integration.scheduler.conftest import Env, SchedulerProcess, wait_until

ZONE = "topology.kubernetes.io/zone"


def test_resource_fit_and_a_pending_pod_scheduled_when_a_node_appears(scheduler: SchedulerProcess, env: Env) -> None:
    a, b = env.node("a", cpu="2"), env.node("b", cpu="2")
    env.pod("p1", cpu="1500m")
    env.pod("p2", cpu="1500m")
    placed = env.wait_bound("p1", "p2")
    assert sorted(placed.values()) == [a, b]  # one per node: they do not fit together
    env.pod("p3", cpu="1500m")
    ev = env.wait_event("p3", "FailedScheduling")
    assert ev["type"] == "Warning" and ev["source"]["component"] == env.scheduler_name
    assert ev["message"] == ("0/2 nodes are available: 2 Insufficient cpu. "
                             "preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.")
    cond = wait_until(lambda: next((c for c in env.get_pod("p3")["status"].get("conditions") or ()
                                    if c["type"] == "PodScheduled"), None), what="PodScheduled condition")
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "Unschedulable", ev["message"])
    c = env.node("c", cpu="4")
    assert env.wait_bound("p3")["p3"] == c
    scheduled = env.wait_event("p3", "Scheduled")
    assert scheduled["message"] == f"Successfully assigned {env.ns}/p3 to {c}"
    p3 = env.get_pod("p3")
    assert next(x for x in p3["status"]["conditions"] if x["type"] == "PodScheduled")["status"] == "True"


def test_taints_and_tolerations(scheduler: SchedulerProcess, env: Env) -> None:
    tainted = env.node("tainted", labels={"pool": "gpu"}, taints=[{"key": "gpu", "value": "true", "effect": "NoSchedule"}])
    plain = env.node("plain")
    env.pod("untolerating")
    assert env.wait_bound("untolerating")["untolerating"] == plain
    tol = [{"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}]
    env.pod("tolerating", nodeSelector={"pool": "gpu"}, tolerations=tol)
    assert env.wait_bound("tolerating")["tolerating"] == tainted
    env.pod("wants-gpu", nodeSelector={"pool": "gpu"})
    ev = env.wait_event("wants-gpu", "FailedScheduling")
    assert ev["message"].startswith(
        "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) had untolerated taint {gpu: true}. preemption: 0/2 nodes are available: "
        "2 Preemption is not helpful for scheduling.")


def test_node_affinity(scheduler: SchedulerProcess, env: Env) -> None:
    env.node("z1", labels={ZONE: "z1", "disk": "hdd"})
    ssd = env.node("z2", labels={ZONE: "z2", "disk": "ssd"})
    affinity = {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": ZONE, "operator": "In", "values": ["z1", "z2"]}]}]},
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}],
    }}
    env.pod("prefers-ssd", affinity=affinity)
    assert env.wait_bound("prefers-ssd")["prefers-ssd"] == ssd
    never = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "disk", "operator": "DoesNotExist"}]}]}}}
    env.pod("no-disk-label", affinity=never)
    assert "2 node(s) didn't match Pod's node affinity/selector" in env.wait_event("no-disk-label",
                                                                                   "FailedScheduling")["message"]


def test_pod_affinity_and_anti_affinity(scheduler: SchedulerProcess, env: Env) -> None:
    nodes = [env.node(f"n{i}") for i in range(3)]
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    for i in range(3):
        env.pod(f"web-{i}", labels={"app": "web"}, affinity=anti)
    placed = env.wait_bound("web-0", "web-1", "web-2")
    assert sorted(placed.values()) == sorted(nodes)  # one per node
    env.pod("web-3", labels={"app": "web"}, affinity=anti)
    assert "3 node(s) didn't match pod anti-affinity rules" in env.wait_event("web-3", "FailedScheduling")["message"]
    near = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"},
    ]}}
    env.pod("sidecar", labels={"app": "side"}, affinity=near)
    assert env.wait_bound("sidecar")["sidecar"] in nodes


def test_topology_spread(scheduler: SchedulerProcess, env: Env) -> None:
    env.node("a1", labels={ZONE: "za"})
    env.node("a2", labels={ZONE: "za"})
    env.node("b1", labels={ZONE: "zb"})
    spread = [{"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app": "spread"}}}]
    names = [f"s{i}" for i in range(4)]
    for n in names:
        env.pod(n, labels={"app": "spread"}, topologySpreadConstraints=spread)
        env.wait_bound(n)  # one at a time: each sees the previous ones
    zones = collections.Counter("zb" if env.node_of(n).endswith("b1") else "za" for n in names)
    assert zones == {"za": 2, "zb": 2}


def test_pods_of_other_schedulers_are_ignored(scheduler: SchedulerProcess, env: Env) -> None:
    env.node("n")
    env.pod("foreign", scheduler_name="someone-else")
    env.pod("ours")
    env.wait_bound("ours")
    assert env.node_of("foreign") is None and env.events("foreign") == []


def test_health_and_metrics(scheduler: SchedulerProcess, env: Env) -> None:
    env.node("n")
    env.pod("m")
    env.wait_bound("m")
    assert scheduler.get("/healthz").text == "ok"
    assert "[+]informers-synced ok" in scheduler.get("/readyz?verbose").text
    wait_until(lambda: scheduler.metric('scheduler_schedule_attempts_total{result="scheduled"') >= 1,
               what="scheduled attempts counted")
    text = scheduler.get("/metrics").text
    for name in ("scheduler_scheduling_attempt_duration_seconds_bucket", 'scheduler_pending_pods{queue="active"}',
                 'scheduler_pending_pods{queue="unschedulable"}', "scheduler_preemption_attempts_total",
                 'scheduler_scheduler_cache_size{type="nodes"}', "process_resident_memory_bytes"):
        assert name in text, name
