"""NodeAffinity: nodeSelector, required terms (operators, matchFields, ORed terms), preferred scores."""

from __future__ import annotations

import pytest

from scheduler.status import FitError
from tests.unit.scheduler_fakes import Cluster, make_node, make_pod

REASON = "node(s) didn't match Pod's node affinity/selector"


def required(*terms: dict) -> dict:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


def expr(key: str, op: str, *values: str) -> dict:
    e = {"key": key, "operator": op}
    if values:
        e["values"] = list(values)
    return e


@pytest.fixture
def cluster() -> Cluster:
    return Cluster([
        make_node("a", labels={"zone": "z1", "disk": "ssd", "cores": "8"}),
        make_node("b", labels={"zone": "z2", "cores": "2"}),
        make_node("c", labels={"zone": "z3"}),
    ])


def matching(c: Cluster, pod: dict) -> list[str]:
    return [n for n in ("a", "b", "c") if c.filter(pod, n) is None]


def test_node_selector_must_match_all_labels(cluster: Cluster) -> None:
    assert matching(cluster, make_pod("p", node_selector={"zone": "z1", "disk": "ssd"})) == ["a"]
    assert matching(cluster, make_pod("p", node_selector={"zone": "z2", "disk": "ssd"})) == []
    st = cluster.filter(make_pod("p", node_selector={"zone": "z9"}), "a")
    assert st.reasons == (REASON,) and st.plugin == "NodeAffinity"


@pytest.mark.parametrize(("e", "expected"), [
    (expr("zone", "In", "z1", "z2"), ["a", "b"]),
    (expr("zone", "NotIn", "z1"), ["b", "c"]),
    (expr("disk", "NotIn", "ssd"), ["b", "c"]),  # a missing label satisfies NotIn
    (expr("disk", "Exists"), ["a"]),
    (expr("disk", "DoesNotExist"), ["b", "c"]),
    (expr("cores", "Gt", "4"), ["a"]),
    (expr("cores", "Lt", "4"), ["b"]),  # c has no label: Lt does not match
])
def test_match_expression_operators(cluster: Cluster, e: dict, expected: list[str]) -> None:
    assert matching(cluster, make_pod("p", affinity=required({"matchExpressions": [e]}))) == expected


def test_terms_are_ored_and_expressions_anded(cluster: Cluster) -> None:
    pod = make_pod("p", affinity=required(
        {"matchExpressions": [expr("zone", "In", "z1"), expr("disk", "DoesNotExist")]},  # matches nothing
        {"matchExpressions": [expr("zone", "In", "z3")]}))
    assert matching(cluster, pod) == ["c"]


def test_node_selector_and_affinity_are_anded(cluster: Cluster) -> None:
    pod = make_pod("p", node_selector={"zone": "z2"},
                   affinity=required({"matchExpressions": [expr("zone", "In", "z1", "z2")]}))
    assert matching(cluster, pod) == ["b"]


def test_match_fields_metadata_name(cluster: Cluster) -> None:
    pod = make_pod("p", affinity=required({"matchFields": [expr("metadata.name", "In", "b")]}))
    assert matching(cluster, pod) == ["b"]
    pod = make_pod("p", affinity=required({"matchFields": [expr("metadata.name", "NotIn", "b")]}))
    assert matching(cluster, pod) == ["a", "c"]


def test_empty_and_invalid_terms_match_nothing_but_valid_ones_still_count(cluster: Cluster) -> None:
    assert matching(cluster, make_pod("p", affinity=required({}))) == []
    bad = {"matchExpressions": [expr("cores", "Gt", "many")]}
    assert matching(cluster, make_pod("p", affinity=required(bad))) == []
    assert matching(cluster, make_pod("p", affinity=required(bad, {"matchExpressions": [expr("zone", "In", "z2")]}))) \
        == ["b"]


def test_prefilter_restricts_to_named_nodes_and_reports_conflicts(cluster: Cluster) -> None:
    pod = make_pod("p", affinity=required({"matchFields": [expr("metadata.name", "In", "c")]}))
    r = cluster.schedule(pod)
    assert r.host == "c" and r.evaluated_nodes == 1
    conflict = make_pod("p", affinity=required({"matchFields": [expr("metadata.name", "In", "a"),
                                                                 expr("metadata.name", "In", "b")]}))
    with pytest.raises(FitError) as e:
        cluster.schedule(conflict)
    assert str(e.value) == "0/3 nodes are available: pod affinity terms conflict."


def test_no_fit_message_counts_every_node(cluster: Cluster) -> None:
    with pytest.raises(FitError) as e:
        cluster.schedule(make_pod("p", node_selector={"zone": "nowhere"}))
    assert str(e.value) == f"0/3 nodes are available: 3 {REASON}."


def test_preferred_terms_add_their_weights_then_normalize(cluster: Cluster) -> None:
    pod = make_pod("p", affinity={"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 10, "preference": {"matchExpressions": [expr("zone", "In", "z1", "z2")]}},
        {"weight": 30, "preference": {"matchExpressions": [expr("disk", "Exists")]}},
        {"weight": 0, "preference": {"matchExpressions": [expr("zone", "In", "z3")]}},
    ]}})
    s = cluster.scores(pod)["NodeAffinity"]
    assert s == {"a": 100, "b": 25, "c": 0}  # raw 40 / 10 / 0, scaled by the maximum
    assert cluster.schedule(pod).host == "a"


def test_no_preferred_terms_skips_scoring(cluster: Cluster) -> None:
    assert "NodeAffinity" not in cluster.scores(make_pod("p"))
