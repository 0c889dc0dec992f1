"""NodeName: spec.nodeName pins a pod to one node."""

from __future__ import annotations

from tests.unit.scheduler_fakes import Cluster, make_node, make_pod


def test_pod_naming_a_node_fits_only_there() -> None:
    c = Cluster([make_node("a"), make_node("b")])
    pod = make_pod("p")
    pod["spec"]["nodeName"] = "b"
    st = c.filter(pod, "a")
    assert st.reasons == ("node(s) didn't match the requested node name",) and st.plugin == "NodeName"
    assert c.filter(pod, "b") is None
    assert c.filter(make_pod("q"), "a") is None
