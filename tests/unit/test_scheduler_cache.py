"""The scheduler cache: assumed pods, confirmations, forgets, node order by zone, image spread."""

from __future__ import annotations

import pytest

from scheduler.cache import SchedulerCache
from scheduler.podinfo import PodInfo
from tests.unit.scheduler_fakes import make_node, make_pod

ZONE = "topology.kubernetes.io/zone"


def test_assume_then_confirm_counts_the_pod_once() -> None:
    c = SchedulerCache()
    c.add_node(make_node("n", cpu="4"))
    pod = make_pod("p", cpu="1", memory="1Gi")
    assumed = PodInfo(pod).with_node("n")
    c.assume_pod(assumed)
    ni = c.get("n")
    assert (ni.req_cpu, ni.req_mem, ni.free_cpu, len(ni.pods)) == (1000, 1024**3, 3000, 1)
    assert c.is_assumed(assumed.uid)
    with pytest.raises(ValueError):
        c.assume_pod(assumed)
    c.add_pod({**pod, "spec": {**pod["spec"], "nodeName": "n"}})  # the informer delivers the bound pod
    assert not c.is_assumed(assumed.uid) and (ni.req_cpu, len(ni.pods)) == (1000, 1)


def test_forget_undoes_an_assumption() -> None:
    c = SchedulerCache()
    c.add_node(make_node("n", cpu="4"))
    assumed = PodInfo(make_pod("p", cpu="1")).with_node("n")
    c.assume_pod(assumed)
    c.forget_pod(assumed)
    ni = c.get("n")
    assert (ni.req_cpu, ni.nonzero_cpu, ni.free_cpu, len(ni.pods)) == (0, 0, 4000, 0)
    assert c.num_pods == 0 and not c.is_assumed(assumed.uid)


def test_pod_update_and_delete_change_the_accounting() -> None:
    c = SchedulerCache()
    c.add_node(make_node("n"))
    old = make_pod("p", cpu="1", node="n", uid="u1")
    c.add_pod(old)
    new = make_pod("p", cpu="2", node="n", uid="u1")
    c.update_pod(old, new)
    assert c.get("n").req_cpu == 2000
    c.remove_pod(new)
    assert c.get("n").req_cpu == 0 and c.num_pods == 0


def test_pods_may_arrive_before_their_node_and_a_node_may_leave_before_its_pods() -> None:
    c = SchedulerCache()
    pod = make_pod("p", cpu="1", node="late")
    c.add_pod(pod)
    assert c.get("late") is None and c.num_nodes == 0
    c.add_node(make_node("late"))
    assert c.get("late").req_cpu == 1000 and c.num_nodes == 1
    c.remove_node(make_node("late"))
    assert c.num_nodes == 0 and c.num_pods == 1
    c.remove_pod(pod)
    assert "late" not in c.nodes


def test_nodes_are_listed_round_robin_over_zones() -> None:
    c = SchedulerCache()
    for name, zone in (("a1", "z1"), ("a2", "z1"), ("a3", "z1"), ("b1", "z2"), ("c1", "z3"), ("c2", "z3")):
        c.add_node(make_node(name, labels={ZONE: zone}))
    assert [n.name for n in c.node_list()] == ["a1", "b1", "c1", "a2", "c2", "a3"]
    c.remove_node(make_node("b1"))
    c.add_node(make_node("a2", labels={ZONE: "z3"}))  # moved zones
    assert [n.name for n in c.node_list()] == ["a1", "c1", "a3", "c2", "a2"]


def test_image_spread_and_affinity_bookkeeping() -> None:
    c = SchedulerCache()
    img = {"names": ["app:1"], "sizeBytes": 10}
    c.add_node(make_node("a", images=[img]))
    c.add_node(make_node("b", images=[img]))
    assert c.image_spread("app:1") == 2
    c.update_node(make_node("b"))
    assert c.image_spread("app:1") == 1
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"x": "y"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    p = make_pod("p", node="a", affinity=anti)
    c.add_pod(p)
    assert c.has_required_anti_affinity_pods and [n.name for n in c.nodes_with_affinity_pods()] == ["a"]
    c.remove_pod(p)
    assert not c.has_required_anti_affinity_pods and not c.has_affinity_pods


def test_a_bound_pod_that_differs_from_the_assumed_one_replaces_it() -> None:
    c = SchedulerCache()
    c.add_node(make_node("n", cpu="4"))
    pod = make_pod("p", cpu="1")
    c.assume_pod(PodInfo(pod).with_node("n"))
    changed = make_pod("p", cpu="2", node="n", uid=pod["metadata"]["uid"])
    c.add_pod(changed)
    assert c.get("n").req_cpu == 2000 and c.num_pods == 1 and not c.is_assumed(pod["metadata"]["uid"])
