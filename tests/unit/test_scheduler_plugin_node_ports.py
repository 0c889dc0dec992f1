"""NodePorts: host ports must be free; 0.0.0.0 conflicts with any address on the same protocol/port."""

from __future__ import annotations

from tests.unit.scheduler_fakes import Cluster, make_node, make_pod

REASON = "node(s) didn't have free ports for the requested pod ports"


def port(p: int, ip: str | None = None, proto: str | None = None) -> dict:
    d: dict = {"containerPort": 80, "hostPort": p}
    if ip:
        d["hostIP"] = ip
    if proto:
        d["protocol"] = proto
    return d


def test_host_port_conflicts() -> None:
    c = Cluster([make_node("n")], [make_pod("a", node="n", ports=[port(8080, "10.0.0.1")]),
                                   make_pod("b", node="n", ports=[port(9090)])])
    cases = [
        ([port(8080, "10.0.0.1")], False),
        ([port(8080, "10.0.0.2")], True),  # another address
        ([port(8080)], False),  # 0.0.0.0 conflicts with 10.0.0.1:8080
        ([port(8080, "10.0.0.1", "UDP")], True),  # another protocol
        ([port(9090, "10.0.0.3")], False),  # 9090 is taken on 0.0.0.0
        ([port(7070)], True),
    ]
    for ports, fits in cases:
        st = c.filter(make_pod("p", ports=ports), "n")
        assert (st is None) is fits, ports
        if st is not None:
            assert st.reasons == (REASON,) and st.plugin == "NodePorts"


def test_ports_are_freed_when_the_pod_goes() -> None:
    holder = make_pod("a", node="n", ports=[port(8080)])
    c = Cluster([make_node("n")], [holder])
    assert c.filter(make_pod("p", ports=[port(8080)]), "n") is not None
    c.cache.remove_pod(holder)
    assert c.filter(make_pod("p", ports=[port(8080)]), "n") is None
