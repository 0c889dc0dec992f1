"""NodeUnschedulable: cordoned nodes take only pods tolerating node.kubernetes.io/unschedulable."""

from __future__ import annotations

import pytest

from scheduler.status import FitError
from tests.unit.scheduler_fakes import Cluster, make_node, make_pod


def test_cordoned_node_rejects_pods_that_do_not_tolerate_it() -> None:
    c = Cluster([make_node("a", unschedulable=True), make_node("b")])
    st = c.filter(make_pod("p"), "a")
    assert st.reasons == ("node(s) were unschedulable",) and st.plugin == "NodeUnschedulable"
    assert c.schedule(make_pod("p")).host == "b"
    tol = [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]
    assert c.filter(make_pod("p", tolerations=tol), "a") is None


def test_the_first_failing_filter_decides_the_reason() -> None:
    # cordoned and too small: NodeUnschedulable runs before NodeResourcesFit
    c = Cluster([make_node("a", unschedulable=True, cpu="1")])
    with pytest.raises(FitError) as e:
        c.schedule(make_pod("p", cpu="2"))
    assert str(e.value) == "0/1 nodes are available: 1 node(s) were unschedulable."
