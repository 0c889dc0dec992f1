"""The placement algorithm: how many nodes to look at, round-robin start, ties, nominated nodes."""

from __future__ import annotations

import collections

import pytest

from scheduler.algorithm import NoNodesAvailable, num_feasible_nodes_to_find
from scheduler.podinfo import PodInfo
from scheduler.status import FitError
from tests.unit.scheduler_fakes import Cluster, make_node, make_pod


@pytest.mark.parametrize(("percentage", "nodes", "expected"), [
    (0, 50, 50),  # below 100 nodes: all of them
    (0, 100, 100),  # 50 % of 100 is 50, but at least 100
    (0, 1000, 420),  # 50 - 1000/125 = 42 %
    (0, 5000, 500),  # 50 - 40 = 10 %
    (0, 6000, 300),  # 50 - 48 = 2 % → the 5 % floor
    (0, 100_000, 5000),
    (30, 1000, 300),
    (100, 1000, 1000),
    (1, 1000, 100),
])
def test_num_feasible_nodes_to_find(percentage: int, nodes: int, expected: int) -> None:
    assert num_feasible_nodes_to_find(percentage, nodes) == expected


def test_scan_stops_after_enough_feasible_nodes_and_resumes_round_robin() -> None:
    c = Cluster([make_node(f"n{i:03d}") for i in range(250)])  # 250 nodes → 48 % → 120
    first = c.schedule(make_pod("p"))
    assert (first.feasible_nodes, first.evaluated_nodes) == (120, 120)
    assert c.algorithm.next_start_node_index == 120
    c.schedule(make_pod("q"))
    assert c.algorithm.next_start_node_index == 240
    c.schedule(make_pod("r"))
    assert c.algorithm.next_start_node_index == 110  # wrapped around


def test_infeasible_nodes_count_as_evaluated() -> None:
    nodes = [make_node(f"n{i:03d}", cpu="1" if i % 2 else "8") for i in range(200)]  # 200 → 100 to find
    c = Cluster(nodes)
    r = c.schedule(make_pod("p", cpu="2"))
    assert r.feasible_nodes == 100 and r.evaluated_nodes == 199  # 100 fit among the first 199
    assert c.algorithm.next_start_node_index == 199


def test_ties_are_broken_at_random_among_the_best() -> None:
    c = Cluster([make_node(n) for n in "abcd"], seed=11)
    picks = collections.Counter(c.schedule(make_pod("p")).host for _ in range(200))
    assert set(picks) == set("abcd") and min(picks.values()) > 20


def test_highest_total_wins() -> None:
    c = Cluster([make_node("small", cpu="2"), make_node("big", cpu="64", memory="256Gi")])
    assert {c.schedule(make_pod("p", cpu="1")).host for _ in range(10)} == {"big"}


def test_pods_spread_over_equal_nodes_as_they_are_assumed() -> None:
    c = Cluster([make_node(n, cpu="4") for n in "abc"])
    hosts = collections.Counter(c.place(make_pod(f"p{i}", cpu="1")) for i in range(6))
    assert hosts == {"a": 2, "b": 2, "c": 2}


def test_nominated_node_is_tried_first() -> None:
    c = Cluster([make_node("a", cpu="64", memory="256Gi"), make_node("b", cpu="2")])
    r = c.schedule(make_pod("p", cpu="1", nominated_node="b"))
    assert (r.host, r.evaluated_nodes) == ("b", 1)


def test_nominated_pods_of_higher_priority_hold_their_room() -> None:
    c = Cluster([make_node("a", cpu="2"), make_node("b", cpu="2")])
    c.queue.nominator.add(PodInfo(make_pod("vip", cpu="2", priority=100)), "a")
    assert {c.schedule(make_pod("p", cpu="1", priority=0)).host for _ in range(10)} == {"b"}
    assert {c.schedule(make_pod("p", cpu="1", priority=100)).host for _ in range(10)} == {"b"}  # equal counts too
    assert "a" in {c.schedule(make_pod("p", cpu="1", priority=101)).host for _ in range(20)}


def test_no_nodes_and_fit_errors() -> None:
    with pytest.raises(NoNodesAvailable):
        Cluster().schedule(make_pod("p"))
    c = Cluster([make_node("a", cpu="1")])
    with pytest.raises(FitError) as e:
        c.schedule(make_pod("p", cpu="2"))
    assert e.value.diagnosis.unschedulable_plugins == {"NodeResourcesFit"}
