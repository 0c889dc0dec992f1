"""InterPodAffinity: required (anti-)affinity filter, existing pods' anti-affinity, preferred scores."""

from __future__ import annotations

import pytest

from scheduler.status import UNSCHEDULABLE, UNSCHEDULABLE_AND_UNRESOLVABLE, FitError
from tests.unit.scheduler_fakes import Cluster, make_node, make_pod

HOST = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"


def term(labels: dict, key: str, **extra: object) -> dict:
    return {"labelSelector": {"matchLabels": labels}, "topologyKey": key, **extra}


def pod_affinity(*terms: dict, anti: bool = False, preferred: bool = False) -> dict:
    kind = "podAntiAffinity" if anti else "podAffinity"
    if preferred:
        return {kind: {"preferredDuringSchedulingIgnoredDuringExecution": list(terms)}}
    return {kind: {"requiredDuringSchedulingIgnoredDuringExecution": list(terms)}}


def cluster(*pods: dict) -> Cluster:
    return Cluster([make_node("a", labels={ZONE: "z1"}), make_node("b", labels={ZONE: "z1"}),
                    make_node("c", labels={ZONE: "z2"})], list(pods))


def fits(c: Cluster, pod: dict) -> list[str]:
    return [n for n in "abc" if c.filter(pod, n) is None]


def test_required_affinity_needs_a_matching_pod_in_the_domain() -> None:
    c = cluster(make_pod("db", labels={"app": "db"}, node="a"))
    pod = make_pod("p", affinity=pod_affinity(term({"app": "db"}, ZONE)))
    assert fits(c, pod) == ["a", "b"]
    st = c.filter(pod, "c")
    assert st.code == UNSCHEDULABLE_AND_UNRESOLVABLE and st.reasons == ("node(s) didn't match pod affinity rules",)
    assert fits(c, make_pod("p", affinity=pod_affinity(term({"app": "db"}, HOST)))) == ["a"]


def test_required_anti_affinity_keeps_pods_apart() -> None:
    c = cluster(make_pod("web1", labels={"app": "web"}, node="a"))
    pod = make_pod("p", labels={"app": "web"}, affinity=pod_affinity(term({"app": "web"}, HOST), anti=True))
    assert fits(c, pod) == ["b", "c"]
    st = c.filter(pod, "a")
    assert st.code == UNSCHEDULABLE and st.reasons == ("node(s) didn't match pod anti-affinity rules",)


def test_existing_pods_anti_affinity_is_honoured() -> None:
    guard = make_pod("guard", node="a", affinity=pod_affinity(term({"app": "web"}, ZONE), anti=True))
    c = cluster(guard)
    assert fits(c, make_pod("p", labels={"app": "web"})) == ["c"]
    assert c.filter(make_pod("p", labels={"app": "web"}), "b").reasons == (
        "node(s) didn't satisfy existing pods anti-affinity rules",)
    assert fits(c, make_pod("q", labels={"app": "other"})) == ["a", "b", "c"]


def test_first_pod_of_a_self_affine_group_may_go_anywhere() -> None:
    c = cluster()
    pod = make_pod("p", labels={"app": "web"}, affinity=pod_affinity(term({"app": "web"}, ZONE)))
    assert fits(c, pod) == ["a", "b", "c"]
    other = make_pod("p", labels={"app": "x"}, affinity=pod_affinity(term({"app": "web"}, ZONE)))
    assert fits(c, other) == []  # it does not match its own term


def test_namespaces_of_terms() -> None:
    c = cluster(make_pod("db", "team-b", labels={"app": "db"}, node="a"))
    own_ns = make_pod("p", affinity=pod_affinity(term({"app": "db"}, HOST)))
    assert fits(c, own_ns) == []  # the db pod lives in another namespace
    listed = make_pod("p", affinity=pod_affinity(term({"app": "db"}, HOST, namespaces=["team-b"])))
    assert fits(c, listed) == ["a"]
    any_ns = make_pod("p", affinity=pod_affinity(term({"app": "db"}, HOST, namespaceSelector={})))
    assert fits(c, any_ns) == ["a"]
    c.handle.stores["namespaces"].put({"metadata": {"name": "team-b", "labels": {"team": "b"}}})
    by_label = make_pod("p", affinity=pod_affinity(
        term({"app": "db"}, HOST, namespaceSelector={"matchLabels": {"team": "b"}})))
    assert fits(c, by_label) == ["a"]


def test_fit_error_message_for_anti_affinity() -> None:
    c = Cluster([make_node("a"), make_node("b")],
                [make_pod("w1", labels={"app": "web"}, node="a"), make_pod("w2", labels={"app": "web"}, node="b")])
    with pytest.raises(FitError) as e:
        c.schedule(make_pod("p", labels={"app": "web"}, affinity=pod_affinity(term({"app": "web"}, HOST), anti=True)))
    assert str(e.value) == "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules."


def test_preferred_affinity_scores_by_domain_then_normalizes_min_max() -> None:
    c = cluster(make_pod("db", labels={"app": "db"}, node="a"))
    pref = pod_affinity({"weight": 50, "podAffinityTerm": term({"app": "db"}, ZONE)}, preferred=True)
    assert c.scores(make_pod("p", affinity=pref))["InterPodAffinity"] == {"a": 100, "b": 100, "c": 0}
    anti = pod_affinity({"weight": 50, "podAffinityTerm": term({"app": "db"}, HOST)}, anti=True, preferred=True)
    assert c.scores(make_pod("p", affinity=anti))["InterPodAffinity"] == {"a": 0, "b": 100, "c": 100}


def test_existing_pods_terms_score_the_incoming_pod() -> None:
    hard = make_pod("x", node="c", affinity=pod_affinity(term({"app": "web"}, ZONE)))
    soft_anti = make_pod("y", node="a", affinity=pod_affinity(
        {"weight": 10, "podAffinityTerm": term({"app": "web"}, HOST)}, anti=True, preferred=True))
    c = cluster(hard, soft_anti)
    # c: +1 (existing required affinity, hard weight 1); a: -10; b: 0 → min -10, max 1
    assert c.scores(make_pod("p", labels={"app": "web"}))["InterPodAffinity"] == {"a": 0, "b": 90, "c": 100}


def test_no_terms_anywhere_skips_the_plugin() -> None:
    c = cluster(make_pod("db", labels={"app": "db"}, node="a"))
    assert "InterPodAffinity" not in c.scores(make_pod("p"))
