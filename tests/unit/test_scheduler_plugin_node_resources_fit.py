"""NodeResourcesFit: the fit filter's reasons and the LeastAllocated score."""

from __future__ import annotations

import random

import pytest

from scheduler.framework import CycleState, Handle
from scheduler.nodeinfo import NodeInfo
from scheduler.plugins.node_resources_fit import NodeResourcesFit, least_requested_score
from scheduler.podinfo import PodInfo
from scheduler.status import FitError
from tests.unit.scheduler_fakes import Cluster, make_node, make_pod

GI = 1024**3


def test_fits_when_requests_plus_used_fit_allocatable() -> None:
    c = Cluster([make_node("n", cpu="2", memory="4Gi")], [make_pod("a", cpu="1", memory="1Gi", node="n")])
    assert c.filter(make_pod("p", cpu="1", memory="3Gi"), "n") is None
    st = c.filter(make_pod("p", cpu="1500m", memory="3Gi"), "n")
    assert st is not None and st.reasons == ("Insufficient cpu",) and st.plugin == "NodeResourcesFit"


def test_all_insufficient_resources_are_reported_in_upstream_order() -> None:
    node = make_node("n", cpu="1", memory="1Gi", pods=1, extra={"ephemeral-storage": "1Gi", "example.com/gpu": "1"})
    c = Cluster([node], [make_pod("a", node="n")])
    st = c.filter(make_pod("p", cpu="2", memory="2Gi",
                           extra_requests={"ephemeral-storage": "2Gi", "example.com/gpu": "2"}), "n")
    assert st.reasons == ("Too many pods", "Insufficient cpu", "Insufficient memory",
                          "Insufficient ephemeral-storage", "Insufficient example.com/gpu")


def test_extended_resource_missing_on_node_is_insufficient_and_unknown_names_are_ignored() -> None:
    c = Cluster([make_node("n")])
    assert c.filter(make_pod("p", extra_requests={"example.com/fpga": "1"}), "n").reasons == (
        "Insufficient example.com/fpga",)
    assert c.filter(make_pod("p", extra_requests={"pods": "5"}), "n") is None  # not a schedulable resource


def test_zero_request_pod_only_needs_a_pod_slot_even_on_an_overcommitted_node() -> None:
    c = Cluster([make_node("n", cpu="1")], [make_pod("a", cpu="2", node="n")])
    assert c.filter(make_pod("p"), "n") is None


def test_init_containers_and_overhead_count_as_upstream() -> None:
    pod = make_pod("p", cpu="500m")
    pod["spec"]["initContainers"] = [{"name": "i", "image": "x", "resources": {"requests": {"cpu": "1500m"}}}]
    pod["spec"]["overhead"] = {"cpu": "250m"}
    assert PodInfo(pod).req_cpu == 1750
    c = Cluster([make_node("n", cpu="1700m")])
    assert c.filter(pod, "n").reasons == ("Insufficient cpu",)


def test_fit_error_counts_reasons_over_nodes() -> None:
    c = Cluster([make_node("a", cpu="1"), make_node("b", cpu="1"), make_node("c", cpu="8", pods=1)],
                [make_pod("x", node="c")])
    with pytest.raises(FitError) as e:
        c.schedule(make_pod("p", cpu="2"))
    assert str(e.value) == "0/3 nodes are available: 1 Too many pods, 2 Insufficient cpu."


def test_least_allocated_score_matches_upstream_formula() -> None:
    c = Cluster([make_node("empty", cpu="4", memory="8Gi"), make_node("busy", cpu="4", memory="8Gi")],
                [make_pod("x", cpu="2", memory="1Gi", node="busy")])
    s = c.scores(make_pod("p", cpu="1", memory="2Gi"))["NodeResourcesFit"]
    # empty: cpu (4000-1000)*100/4000 = 75, mem 75 → 75; busy: cpu 25, mem (8-3)/8 → 62 → (25+62)//2
    assert s == {"empty": 75, "busy": 43}


def test_least_allocated_uses_defaults_for_containers_without_requests() -> None:
    c = Cluster([make_node("n", cpu="4", memory="8Gi")])
    s = c.scores(make_pod("p"))["NodeResourcesFit"]
    # 100m and 200Mi assumed: cpu 3900*100//4000 = 97, mem (8192-200)*100//8192 = 97
    assert s == {"n": 97}
    assert least_requested_score(5, 4) == 0 and least_requested_score(1, 0) == 0


def test_fast_paths_agree_with_the_exact_per_node_path() -> None:
    rng = random.Random(7)
    nodes, pods = [], []
    for i in range(60):
        nodes.append(make_node(f"n{i}", cpu=str(rng.choice([0, 1, 2, 4])), memory=f"{rng.choice([0, 1, 2])}Gi",
                               pods=rng.choice([0, 1, 3, 110])))
        for j in range(rng.randint(0, 2)):
            pods.append(make_pod(f"p{i}-{j}", node=f"n{i}", cpu=f"{rng.randint(0, 1500)}m",
                                 memory=f"{rng.randint(0, 1500)}Mi"))
    c = Cluster(nodes, pods)
    plugin = NodeResourcesFit(Handle(c.cache))
    infos: list[NodeInfo] = c.cache.node_list()
    for _ in range(30):
        pod = PodInfo(make_pod("q", cpu=f"{rng.randint(0, 3000)}m", memory=f"{rng.randint(0, 2000)}Mi"))
        failed: dict = {}
        passed = plugin.filter_nodes(CycleState(), pod, infos, failed)
        assert [n.name for n in passed] == [n.name for n in infos if plugin.filter(CycleState(), pod, n) is None]
        assert {k: v.reasons for k, v in failed.items()} == {
            n.name: plugin.filter(CycleState(), pod, n).reasons for n in infos
            if plugin.filter(CycleState(), pod, n) is not None}
        fast = plugin.score_nodes(CycleState(), pod, infos)
        slow = []
        for n in infos:
            parts = [least_requested_score(n.nonzero_cpu + pod.nonzero_cpu, n.alloc_cpu)] if n.alloc_cpu else []
            parts += [least_requested_score(n.nonzero_mem + pod.nonzero_mem, n.alloc_mem)] if n.alloc_mem else []
            slow.append(sum(parts) // len(parts) if parts else 0)
        assert fast == slow
