"""TaintToleration: toleration matching, the filter's reason, PreferNoSchedule scoring."""

from __future__ import annotations

import pytest

from apimachinery.taints import tolerates
from tests.unit.scheduler_fakes import Cluster, make_node, make_pod


def taint(key: str, value: str = "", effect: str = "NoSchedule") -> dict:
    return {"key": key, "value": value, "effect": effect}


@pytest.mark.parametrize(("toleration", "ok"), [
    ({"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}, True),
    ({"key": "k", "value": "v"}, True),  # empty operator means Equal, empty effect means every effect
    ({"key": "k", "value": "other"}, False),
    ({"key": "k", "operator": "Exists"}, True),
    ({"operator": "Exists"}, True),  # empty key with Exists tolerates everything
    ({"key": "k", "operator": "Exists", "effect": "NoExecute"}, False),
    ({"key": "other", "operator": "Exists"}, False),
    ({"key": "k", "operator": "Bogus", "value": "v"}, False),
])
def test_toleration_matching(toleration: dict, ok: bool) -> None:
    assert tolerates(toleration, taint("k", "v")) is ok


def test_untolerated_no_schedule_and_no_execute_taints_reject() -> None:
    c = Cluster([make_node("a", taints=[taint("dedicated", "infra")]),
                 make_node("b", taints=[taint("gone", effect="NoExecute")]),
                 make_node("c", taints=[taint("soft", effect="PreferNoSchedule")])])
    st = c.filter(make_pod("p"), "a")
    assert st.reasons == ("node(s) had untolerated taint {dedicated: infra}",) and st.plugin == "TaintToleration"
    assert c.filter(make_pod("p"), "b").reasons == ("node(s) had untolerated taint {gone: }",)
    assert c.filter(make_pod("p"), "c") is None
    tol = [{"key": "dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"}]
    assert c.filter(make_pod("p", tolerations=tol), "a") is None


def test_first_untolerated_taint_in_node_order_is_reported() -> None:
    c = Cluster([make_node("a", taints=[taint("x", "1"), taint("y", "2")])])
    tol = [{"key": "x", "operator": "Exists"}]
    assert c.filter(make_pod("p", tolerations=tol), "a").reasons == ("node(s) had untolerated taint {y: 2}",)


def test_prefer_no_schedule_taints_lower_the_score_reversed() -> None:
    soft = [taint("s1", effect="PreferNoSchedule"), taint("s2", effect="PreferNoSchedule")]
    c = Cluster([make_node("clean"), make_node("one", taints=soft[:1]), make_node("two", taints=soft)])
    assert c.scores(make_pod("p"))["TaintToleration"] == {"clean": 100, "one": 50, "two": 0}
    tol = [{"key": "s1", "operator": "Exists", "effect": "PreferNoSchedule"}]
    assert c.scores(make_pod("p", tolerations=tol))["TaintToleration"] == {"clean": 100, "one": 100, "two": 0}
    # a NoSchedule-only toleration does not count for PreferNoSchedule taints
    tol = [{"key": "s1", "operator": "Exists", "effect": "NoSchedule"}]
    assert c.scores(make_pod("p", tolerations=tol))["TaintToleration"]["one"] == 50


def test_without_any_prefer_no_schedule_taint_every_node_scores_the_maximum() -> None:
    c = Cluster([make_node("a"), make_node("b", taints=[taint("hard")])])
    assert c.scores(make_pod("p", tolerations=[{"operator": "Exists"}]))["TaintToleration"] == {"a": 100, "b": 100}
