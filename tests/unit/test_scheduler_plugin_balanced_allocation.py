"""NodeResourcesBalancedAllocation: (1 - std of the cpu/memory fractions) * 100, real requests only."""

from __future__ import annotations

import random

from scheduler.framework import CycleState, Handle
from scheduler.plugins.balanced_allocation import BalancedAllocation, balanced_score
from scheduler.podinfo import PodInfo
from tests.unit.scheduler_fakes import Cluster, make_node, make_pod


def test_scores_from_the_two_fractions() -> None:
    c = Cluster([make_node("even", cpu="4", memory="8Gi"), make_node("skewed", cpu="4", memory="8Gi")],
                [make_pod("x", cpu="2", memory="1Gi", node="skewed")])
    s = c.scores(make_pod("p", cpu="1", memory="2Gi"))["NodeResourcesBalancedAllocation"]
    # even: 0.25 / 0.25 → 100; skewed: 0.75 / 0.375 → std 0.1875 → 81
    assert s == {"even": 100, "skewed": 81}


def test_no_defaults_for_missing_requests_and_fractions_capped_at_one() -> None:
    c = Cluster([make_node("n", cpu="1", memory="1Gi")], [make_pod("x", cpu="3", node="n")])
    s = c.scores(make_pod("p"))["NodeResourcesBalancedAllocation"]
    assert s == {"n": 50}  # cpu fraction 3 → 1, memory 0 → std 0.5


def test_more_than_two_resources_use_the_standard_deviation() -> None:
    assert balanced_score([0.5]) == 100
    assert balanced_score([0.0, 0.5, 1.0]) == 59  # std sqrt(1/6) = 0.408


def test_fast_path_agrees_with_the_general_formula() -> None:
    rng = random.Random(3)
    nodes = [make_node(f"n{i}", cpu=str(rng.randint(1, 8)), memory=f"{rng.randint(1, 16)}Gi") for i in range(40)]
    pods = [make_pod(f"x{i}", node=f"n{i}", cpu=f"{rng.randint(0, 9000)}m", memory=f"{rng.randint(0, 9000)}Mi")
            for i in range(40)]
    c = Cluster(nodes, pods)
    plugin = BalancedAllocation(Handle(c.cache))
    infos = c.cache.node_list()
    pod = PodInfo(make_pod("q", cpu="700m", memory="900Mi"))
    expected = [balanced_score([min((n.req_cpu + pod.req_cpu) / n.alloc_cpu, 1.0),
                                min((n.req_mem + pod.req_mem) / n.alloc_mem, 1.0)]) for n in infos]
    assert plugin.score_nodes(CycleState(), pod, infos) == expected
