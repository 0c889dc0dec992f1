"""Priority preemption through the API: PriorityClass, graceful eviction, nominatedNodeName."""

from __future__ import annotations

from tests.integration.scheduler.conftest import Env, SchedulerProcess, wait_until


def test_high_priority_pod_preempts_lower_priority_pods(scheduler: SchedulerProcess, env: Env) -> None:
    with env.priority_class(1000) as pc:
        node = env.node("n", cpu="2")
        env.pod("low-1", cpu="1")
        env.pod("low-2", cpu="1")
        env.wait_bound("low-1", "low-2")
        env.pod("vip", cpu="1", priorityClassName=pc)
        assert env.get_pod("vip")["spec"]["priority"] == 1000  # set by the Priority admission plugin
        nominated = wait_until(lambda: env.get_pod("vip")["status"].get("nominatedNodeName"), what="nomination")
        assert nominated == node and env.node_of("vip") is None
        victims = wait_until(lambda: [n for n in ("low-1", "low-2")
                                      if env.get_pod(n)["metadata"].get("deletionTimestamp")], what="a victim")
        assert len(victims) == 1  # one pod is enough
        victim = env.get_pod(victims[0])
        cond = next(c for c in victim["status"]["conditions"] if c["type"] == "DisruptionTarget")
        assert cond["reason"] == "PreemptionByScheduler"
        ev = env.wait_event(victims[0], "Preempted")
        assert ev["message"] == f"Preempted by pod {env.get_pod('vip')['metadata']['uid']} on node {node}"
        # no kubelet here: finish the graceful deletion as a kubelet would
        r = env.api.delete(f"/api/v1/namespaces/{env.ns}/pods/{victims[0]}", params={"gracePeriodSeconds": "0"})
        assert r.status_code == 200, r.text
        assert env.wait_bound("vip")["vip"] == node
        survivor = ({"low-1", "low-2"} - set(victims)).pop()
        assert env.node_of(survivor) == node and not env.get_pod(survivor)["metadata"].get("deletionTimestamp")


def test_preemption_policy_never_only_waits(scheduler: SchedulerProcess, env: Env) -> None:
    env.node("n", cpu="1")
    env.pod("low", cpu="1")
    env.wait_bound("low")
    env.pod("polite", cpu="1", priority=None, preemptionPolicy="Never")
    ev = env.wait_event("polite", "FailedScheduling")
    # same priority as "low" (0): no victims possible whatever the policy; the policy is checked first
    assert ev["message"] == ("0/1 nodes are available: 1 Insufficient cpu. "
                             "preemption: not eligible due to preemptionPolicy=Never.")
    assert not env.get_pod("low")["metadata"].get("deletionTimestamp")
