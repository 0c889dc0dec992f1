"""PodTopologySpread: hard constraints filter by skew, soft ones score, system defaults spread services."""

from __future__ import annotations

import pytest

from scheduler.status import UNSCHEDULABLE, UNSCHEDULABLE_AND_UNRESOLVABLE, FitError
from tests.unit.scheduler_fakes import Cluster, make_node, make_pod

HOST = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"


def constraint(key: str, skew: int = 1, when: str = "DoNotSchedule", **extra: object) -> dict:
    return {"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": when,
            "labelSelector": {"matchLabels": {"app": "web"}}, **extra}


def web(name: str, node: str, **kw: object) -> dict:
    return make_pod(name, labels={"app": "web"}, node=node, **kw)


def cluster(*pods: dict, extra_nodes: tuple = ()) -> Cluster:
    nodes = [make_node("a", labels={ZONE: "z1"}), make_node("b", labels={ZONE: "z1"}),
             make_node("c", labels={ZONE: "z2"}), *extra_nodes]
    return Cluster(nodes, list(pods))


def fits(c: Cluster, pod: dict, names: str = "abc") -> list[str]:
    return [n for n in names if c.filter(pod, n) is None]


def test_hostname_skew() -> None:
    c = cluster(web("w1", "a"), web("w2", "a"))
    pod = make_pod("p", labels={"app": "web"}, spread=[constraint(HOST)])
    assert fits(c, pod) == ["b", "c"]
    st = c.filter(pod, "a")
    assert st.code == UNSCHEDULABLE and st.reasons == ("node(s) didn't match pod topology spread constraints",)


def test_zone_skew_and_max_skew() -> None:
    c = cluster(web("w1", "a"), web("w2", "b"))
    assert fits(c, make_pod("p", labels={"app": "web"}, spread=[constraint(ZONE)])) == ["c"]
    assert fits(c, make_pod("p", labels={"app": "web"}, spread=[constraint(ZONE, skew=3)])) == ["a", "b", "c"]


def test_a_pod_not_matching_its_own_selector_adds_no_skew() -> None:
    c = cluster(web("w1", "a"))
    assert fits(c, make_pod("p", labels={"app": "db"}, spread=[constraint(HOST)])) == ["a", "b", "c"]


def test_node_without_the_topology_label_is_rejected_unresolvably() -> None:
    c = cluster(extra_nodes=(make_node("bare"),))
    st = c.filter(make_pod("p", labels={"app": "web"}, spread=[constraint(ZONE)]), "bare")
    assert st.code == UNSCHEDULABLE_AND_UNRESOLVABLE
    assert st.reasons == ("node(s) didn't match pod topology spread constraints (missing required label)",)


def test_min_domains_treats_the_global_minimum_as_zero() -> None:
    c = cluster(web("w1", "a"), web("w2", "c"))
    pod = make_pod("p", labels={"app": "web"}, spread=[constraint(ZONE, minDomains=3)])
    assert fits(c, pod) == []  # two zones < 3: min is 0, every zone already has 1
    assert fits(c, make_pod("p", labels={"app": "web"}, spread=[constraint(ZONE)])) == ["a", "b", "c"]


def test_node_affinity_policy_decides_which_domains_count() -> None:
    c = cluster(web("w1", "a"))
    # Honor (default): only z1 is eligible, so empty z2 does not pull the minimum down: 1 + 1 - 1 = 1
    pod = make_pod("p", labels={"app": "web"}, node_selector={ZONE: "z1"}, spread=[constraint(ZONE)])
    assert fits(c, pod, "ab") == ["a", "b"]
    # Ignore: z2 counts with 0 pods: 1 + 1 - 0 = 2 > 1
    ignore = make_pod("p", labels={"app": "web"}, node_selector={ZONE: "z1"},
                      spread=[constraint(ZONE, nodeAffinityPolicy="Ignore")])
    assert fits(c, ignore, "ab") == []


def test_match_label_keys_narrow_the_selector() -> None:
    c = cluster(make_pod("v1", labels={"app": "web", "rev": "1"}, node="a"),
                make_pod("v1b", labels={"app": "web", "rev": "1"}, node="a"))
    assert fits(c, make_pod("p", labels={"app": "web", "rev": "2"}, spread=[constraint(HOST)])) == ["b", "c"]
    pod = make_pod("p", labels={"app": "web", "rev": "2"}, spread=[constraint(HOST, matchLabelKeys=["rev"])])
    assert fits(c, pod) == ["a", "b", "c"]  # only rev=2 pods count: none yet


def test_soft_constraint_scores_fewer_matching_pods_higher() -> None:
    c = cluster(web("w1", "a"), web("w2", "a"), web("w3", "b"))
    pod = make_pod("p", labels={"app": "web"}, spread=[constraint(HOST, when="ScheduleAnyway")])
    # raw = count * ln(3 + 2) rounded: a 3, b 2, c 0 → normalized 100 * (max + min - s) / max
    assert c.scores(pod)["PodTopologySpread"] == {"a": 0, "b": 33, "c": 100}
    assert c.schedule(pod).host == "c"


def test_system_default_constraints_spread_pods_of_a_service() -> None:
    c = cluster(web("w1", "a"), web("w2", "a"), web("w3", "b"))
    assert "PodTopologySpread" not in c.scores(make_pod("p", labels={"app": "web"}))  # no owner, no service
    c.handle.stores["services"].put({"metadata": {"name": "web", "namespace": "default"},
                                     "spec": {"selector": {"app": "web"}}})
    s = c.scores(make_pod("p", labels={"app": "web"}))["PodTopologySpread"]
    assert s["c"] == 100 and s["a"] < s["b"] < s["c"]


def test_fit_error_lists_spread_reasons() -> None:
    c = Cluster([make_node("a"), make_node("b")], [web("w1", "a"), web("w2", "a"), web("w3", "b"),
                                                   web("w4", "b")])
    c.cache.add_node(make_node("x", cpu="0"))
    with pytest.raises(FitError) as e:
        c.schedule(make_pod("p", labels={"app": "web"}, cpu="1", spread=[constraint(HOST)]))
    assert str(e.value) == ("0/3 nodes are available: 1 Insufficient cpu, "
                            "2 node(s) didn't match pod topology spread constraints.")
