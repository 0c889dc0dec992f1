"""DefaultPreemption: eligibility, candidate nodes, victim selection (PDBs), node choice, the messages."""

from __future__ import annotations

from scheduler.plugins.default_preemption import (
    Candidate,
    calculate_num_candidates,
    filter_pods_with_pdb_violation,
    pick_one_node,
)
from scheduler.podinfo import PodInfo
from tests.unit.scheduler_fakes import Cluster, make_node, make_pod, preempt, prepare


async def test_evicts_the_fewest_least_important_pods() -> None:
    early = make_pod("early", cpu="1", node="n", priority=0, start_time="2026-01-01T00:00:00Z")
    late = make_pod("late", cpu="1", node="n", priority=0, start_time="2026-01-02T00:00:00Z")
    high = make_pod("high", cpu="1", priority=100)
    c = Cluster([make_node("n", cpu="2")], [early, late])
    api, events = prepare(c, [early, late, high])
    node, st = await preempt(c, high)
    assert (node, st) == ("n", None)
    assert api.pods.deletes == [("default", "late")]  # the one started later is the less important
    patch = api.pods.patches[0]
    assert patch[1] == "late" and patch[3] == "status"
    cond = patch[2]["status"]["conditions"][0]
    assert (cond["type"], cond["reason"]) == ("DisruptionTarget", "PreemptionByScheduler")
    assert events.events == [("late", "Normal", "Preempted",
                              f"Preempted by pod {high['metadata']['uid']} on node n")]


async def test_higher_priority_pods_are_never_victims() -> None:
    peer = make_pod("peer", cpu="2", node="n", priority=100)
    c = Cluster([make_node("n", cpu="2")], [peer])
    pod = make_pod("p", cpu="1", priority=100)
    prepare(c, [peer, pod])
    node, st = await preempt(c, pod)
    assert node == "" and st.message == (
        "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.")


async def test_preemption_policy_never() -> None:
    low = make_pod("low", cpu="2", node="n")
    c = Cluster([make_node("n", cpu="2")], [low])
    pod = make_pod("p", cpu="1", priority=100, preemption_policy="Never")
    api, _ = prepare(c, [low, pod])
    node, st = await preempt(c, pod)
    assert node is None and st.message == "preemption: not eligible due to preemptionPolicy=Never."
    assert api.pods.deletes == []


async def test_unresolvable_nodes_are_not_candidates() -> None:
    low = make_pod("low", cpu="2", node="b")
    c = Cluster([make_node("a", taints=[{"key": "k", "effect": "NoSchedule"}]), make_node("b", cpu="2")], [low])
    pod = make_pod("p", cpu="1", priority=10, node_selector={"kubernetes.io/hostname": "a"})
    prepare(c, [low, pod])
    node, st = await preempt(c, pod)
    assert node == "" and st.message == (
        "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.")


async def test_a_victim_that_does_not_help_makes_the_node_no_candidate() -> None:
    low = make_pod("low", cpu="500m", node="n")
    c = Cluster([make_node("n", cpu="1")], [low])
    pod = make_pod("p", cpu="2", priority=10)
    prepare(c, [low, pod])
    node, st = await preempt(c, pod)
    assert node == "" and st.message == "preemption: 0/1 nodes are available: 1 Insufficient cpu."


async def test_nodes_without_pdb_violations_are_preferred() -> None:
    guarded = make_pod("guarded", cpu="1", node="a", labels={"app": "db"})
    free = make_pod("free", cpu="1", node="b", labels={"app": "cache"})
    c = Cluster([make_node("a", cpu="1"), make_node("b", cpu="1")], [guarded, free])
    pod = make_pod("p", cpu="1", priority=10)
    api, _ = prepare(c, [guarded, free, pod])
    c.handle.stores["pdbs"].put({"metadata": {"name": "db", "namespace": "default"},
                                 "spec": {"selector": {"matchLabels": {"app": "db"}}},
                                 "status": {"disruptionsAllowed": 0}})
    node, st = await preempt(c, pod)
    assert (node, st) == ("b", None) and api.pods.deletes == [("default", "free")]


def test_pdb_split_counts_the_budget_down() -> None:
    pods = [PodInfo(make_pod(f"p{i}", labels={"app": "db"}, node="n")) for i in range(3)]
    pdb = {"metadata": {"name": "db", "namespace": "default"}, "spec": {"selector": {"matchLabels": {"app": "db"}}},
           "status": {"disruptionsAllowed": 1}}
    violating, ok = filter_pods_with_pdb_violation(pods, [pdb])
    assert [p.name for p in ok] == ["p0"] and [p.name for p in violating] == ["p1", "p2"]
    empty = {**pdb, "spec": {"selector": {}}}
    assert filter_pods_with_pdb_violation(pods, [empty])[0] == []  # an empty selector matches nothing


def test_pick_one_node_criteria_in_order() -> None:
    def v(prio: int, start: str = "2026-01-01T00:00:00Z") -> PodInfo:
        return PodInfo(make_pod(f"v{prio}-{start}", priority=prio, start_time=start))

    assert pick_one_node([Candidate("a", [v(1)], 1), Candidate("b", [v(5)], 0)]).name == "b"  # PDB violations
    assert pick_one_node([Candidate("a", [v(5)], 0), Candidate("b", [v(3), v(3)], 0)]).name == "b"  # top priority
    assert pick_one_node([Candidate("a", [v(3), v(2)], 0), Candidate("b", [v(3), v(1)], 0)]).name == "b"  # sum
    assert pick_one_node([Candidate("a", [v(3), v(0), v(0)], 0), Candidate("b", [v(3), v(0)], 0)]).name == "b"
    early, late = "2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z"
    assert pick_one_node([Candidate("a", [v(3, early)], 0), Candidate("b", [v(3, late)], 0)]).name == "b"
    assert pick_one_node([Candidate("a", [v(3)], 0), Candidate("b", [], 0)]).name == "b"  # no victims needed


def test_number_of_candidates() -> None:
    assert calculate_num_candidates(50) == 50
    assert calculate_num_candidates(500) == 100
    assert calculate_num_candidates(5000) == 500


async def test_terminating_victims_on_the_nominated_node_make_the_pod_wait() -> None:
    dying = make_pod("dying", cpu="2", node="n", deleting=True)
    dying["status"]["conditions"] = [{"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}]
    c = Cluster([make_node("n", cpu="2")], [dying])
    pod = make_pod("p", cpu="1", priority=10, nominated_node="n")
    api, _ = prepare(c, [dying, pod])
    node, st = await preempt(c, pod)
    assert node is None and st.message == "preemption: not eligible due to a terminating pod on the nominated node."
    assert api.pods.deletes == []
