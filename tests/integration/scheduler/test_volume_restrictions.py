"""VolumeRestrictions and VolumeZone against a real apiserver and scheduler process: a
ReadWriteOncePod claim used by one pod at a time (preemption frees it from a lower-priority
holder), and bound volumes' zone labels against the nodes'. The test plays the PV binder."""

from __future__ import annotations

from tests.integration.scheduler.conftest import (
    MERGE,
    Env,
    SchedulerProcess,
    Storage,
    condition,
    pod_with_claim,
    wait_until,
)

RWOP = ("ReadWriteOncePod",)
ZONE = "topology.kubernetes.io/zone"
REGION = "topology.kubernetes.io/region"
RWOP_REASON = "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode"


def test_a_read_write_once_pod_claim_serves_one_pod_at_a_time(scheduler: SchedulerProcess, env: Env,
                                                               storage: Storage) -> None:
    env.node("a")
    env.node("b")
    cls = storage.storage_class("rwop", "WaitForFirstConsumer")
    storage.bound_claim("solo", cls, modes=RWOP)
    pod_with_claim(env, "first", "solo")
    env.wait_bound("first")
    pod_with_claim(env, "second", "solo")
    ev = env.wait_event("second", "FailedScheduling")
    # no node helps (the same priority: no preemption either)
    assert ev["message"] == (f"0/2 nodes are available: 2 {RWOP_REASON}. preemption: 0/2 nodes are available: "
                             "2 No preemption victims found for incoming pod."), ev["message"]
    cond = wait_until(lambda: condition(env, "second"), what="PodScheduled condition")
    assert (cond["status"], cond["reason"]) == ("False", "Unschedulable")
    # the holder goes: its deletion requeues the pod waiting for the claim
    r = env.api.delete(f"/api/v1/namespaces/{env.ns}/pods/first", params={"gracePeriodSeconds": "0"})
    assert r.status_code == 200, r.text
    assert env.wait_bound("second")["second"] in env.nodes
    # a ReadWriteOnce claim is shared freely
    storage.bound_claim("shared", cls)
    pod_with_claim(env, "r1", "shared")
    pod_with_claim(env, "r2", "shared")
    assert all(node in env.nodes for node in env.wait_bound("r1", "r2").values())


def test_a_higher_priority_pod_preempts_the_claims_holder(scheduler: SchedulerProcess, env: Env,
                                                         storage: Storage) -> None:
    with env.priority_class(1000) as pc:
        a = env.node("a")
        env.node("b")
        cls = storage.storage_class("rwop", "WaitForFirstConsumer")
        storage.bound_claim("solo", cls, node=a, modes=RWOP)
        pod_with_claim(env, "holder", "solo")
        assert env.wait_bound("holder")["holder"] == a
        env.pod("bystander", nodeSelector={"kubernetes.io/hostname": a})
        env.wait_bound("bystander")
        pod_with_claim(env, "vip", "solo", priorityClassName=pc)
        nominated = wait_until(lambda: env.get_pod("vip")["status"].get("nominatedNodeName"), what="nomination")
        assert nominated == a and env.node_of("vip") is None
        holder = wait_until(lambda: (p := env.get_pod("holder"))["metadata"].get("deletionTimestamp") and p,
                            what="the holder evicted")
        cond = next(c for c in holder["status"]["conditions"] if c["type"] == "DisruptionTarget")
        assert cond["reason"] == "PreemptionByScheduler"
        assert not env.get_pod("bystander")["metadata"].get("deletionTimestamp")  # only the holder was in the way
        # no kubelet here: finish the graceful deletion as a kubelet would
        r = env.api.delete(f"/api/v1/namespaces/{env.ns}/pods/holder", params={"gracePeriodSeconds": "0"})
        assert r.status_code == 200, r.text
        assert env.wait_bound("vip")["vip"] == a


def test_a_bound_volumes_zone_picks_the_node(scheduler: SchedulerProcess, env: Env, storage: Storage) -> None:
    env.node("a", labels={ZONE: "z1", REGION: "r"})
    b = env.node("b", labels={ZONE: "z2", REGION: "r"})
    cls = storage.storage_class("zonal", "WaitForFirstConsumer")
    storage.bound_claim("in-z2", cls, labels={ZONE: "z2"})
    pod_with_claim(env, "p", "in-z2")
    assert env.wait_bound("p")["p"] == b

    storage.bound_claim("in-z3", cls, labels={ZONE: "z1__z3", REGION: "elsewhere"})
    pod_with_claim(env, "q", "in-z3")
    ev = env.wait_event("q", "FailedScheduling")
    assert ev["message"] == ("0/2 nodes are available: 2 node(s) had no available volume zone. preemption: 0/2 nodes "
                             "are available: 2 Preemption is not helpful for scheduling."), ev["message"]
    # relabelling a node into the volume's zone and region requeues the pod
    r = env.api.patch(f"/api/v1/nodes/{b}", headers=MERGE,
                      content=f'{{"metadata":{{"labels":{{"{ZONE}":"z3","{REGION}":"elsewhere"}}}}}}')
    assert r.status_code == 200, r.text
    assert env.wait_bound("q")["q"] == b
