"""kube-proxy --route-pod-cidrs: which peer routes a node wants, how they are kept, and the
guards' exemption (kube_proxy.podroutes, kube_proxy.guard, kubelet.network)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from kube_proxy.app import ConfigError, ProxyOptions
from kube_proxy.commands import CommandResult
from kube_proxy.fake import FakeRunner
from kube_proxy.guard import HostNetworkGuard
from kube_proxy.podroutes import (
    ROUTE_PROTOCOL,
    ConnectedNetwork,
    PeerRoute,
    PodRouter,
    desired_routes,
    guard_exemption_rule,
    parse_routes,
    remove_peer_routes,
)

CLUSTER = "10.244.0.0/16"


def node(name: str, cidr: str | None, ip: str | None, *, external: str | None = None) -> dict:
    addresses = [{"type": "InternalIP", "address": ip}] if ip else []
    if external:
        addresses.append({"type": "ExternalIP", "address": external})
    spec = {"podCIDR": cidr, "podCIDRs": [cidr]} if cidr else {}
    return {"metadata": {"name": name}, "spec": spec, "status": {"addresses": addresses}}


def connected(*pairs: tuple[str, str]) -> list[ConnectedNetwork]:
    import ipaddress

    return [ConnectedNetwork(ipaddress.ip_network(net), dev) for net, dev in pairs]


LAN = connected(("10.250.250.0/24", "eth0"), ("10.250.0.0/16", "eth1"), ("10.244.0.0/24", "cni0"))


def test_peers_on_a_connected_network_are_routed_via_their_internal_ip():
    nodes = [node("a", "10.244.0.0/24", "10.250.250.20"), node("b", "10.244.1.0/24", "10.250.250.21"),
             node("c", "10.244.2.0/24", "10.250.9.9")]
    routes, skipped = desired_routes(nodes, "a", CLUSTER, LAN, ["10.250.250.20", "127.0.0.1"])
    # the longest matching prefix picks the device
    assert routes == [PeerRoute("10.244.1.0/24", "10.250.250.21", "eth0"),
                      PeerRoute("10.244.2.0/24", "10.250.9.9", "eth1")]
    assert skipped == []


@pytest.mark.parametrize(
    ("peer", "reason"),
    [
        (node("b", "10.244.1.0/24", "192.0.2.7"), "b: InternalIP 192.0.2.7 is not on a directly connected network"),
        (node("b", "10.244.1.0/24", None, external="10.250.250.21"), "b: no IPv4 InternalIP"),
        (node("b", "10.9.0.0/24", "10.250.250.21"), "b: podCIDR 10.9.0.0/24 is outside the cluster CIDR 10.244.0.0/16"),
        (node("b", "0.0.0.0/0", "10.250.250.21"), "b: podCIDR 0.0.0.0/0 is outside the cluster CIDR 10.244.0.0/16"),
        (node("b", "10.244.0.128/25", "10.250.250.21"), "b: podCIDR 10.244.0.128/25 overlaps another node's"),
    ],
)
def test_peers_that_get_no_route_say_why(peer, reason):
    routes, skipped = desired_routes([node("a", "10.244.0.0/24", "10.250.250.20"), peer], "a", CLUSTER,
                                     LAN, ["10.250.250.20"])
    assert routes == [] and skipped == [reason]


def test_nodes_without_a_cidr_on_this_host_or_itself_are_left_alone():
    nodes = [node("a", "10.244.0.0/24", "10.250.250.20"), node("fresh", None, "10.250.250.30"),
             node("same-host", "10.244.5.0/24", "10.250.250.20")]
    assert desired_routes(nodes, "a", CLUSTER, LAN, ["10.250.250.20"]) == ([], [])


def test_a_pod_cidr_this_host_already_routes_locally_is_not_taken_over():
    lan = connected(("10.250.250.0/24", "eth0"), ("10.244.7.0/24", "cni1"))
    routes, skipped = desired_routes([node("b", "10.244.7.0/24", "10.250.250.21")], "a", CLUSTER, lan, [])
    assert routes == [] and skipped == ["b: podCIDR 10.244.7.0/24 is a network of this host"]


def test_a_gateway_inside_the_cluster_cidr_is_not_on_link():
    # the bridge's own network must never carry node traffic
    routes, skipped = desired_routes([node("b", "10.244.1.0/24", "10.244.0.9")], "a", CLUSTER, LAN, [])
    assert routes == [] and "not on a directly connected network" in skipped[0]


ROUTES_JSON = json.dumps([
    {"dst": "default", "gateway": "10.250.250.1", "dev": "eth0", "flags": []},
    {"dst": "10.250.250.0/24", "dev": "eth0", "protocol": "kernel", "scope": "link", "prefsrc": "10.250.250.20",
     "flags": []},
    {"dst": "10.244.0.0/24", "dev": "cni0", "protocol": "kernel", "scope": "link", "flags": []},
    {"dst": "10.244.1.0/24", "gateway": "10.250.250.21", "dev": "eth0", "protocol": str(ROUTE_PROTOCOL),
     "flow": {"to": "233"}, "flags": []},
    {"dst": "10.96.0.0/16", "dev": "kube-svc0", "scope": "link", "flags": []},
    {"dst": "172.16.0.0/12", "gateway": "10.250.250.1", "dev": "eth0", "protocol": "static", "flags": []},
])


def test_parse_routes_finds_connected_networks_and_ours():
    nets, ours = parse_routes(ROUTES_JSON)
    assert [(str(c.network), c.device) for c in nets] == [
        ("10.250.250.0/24", "eth0"), ("10.244.0.0/24", "cni0"), ("10.96.0.0/16", "kube-svc0")]
    assert ours == [PeerRoute("10.244.1.0/24", "10.250.250.21", "eth0")]
    assert parse_routes("") == ([], [])


class RouteRunner:
    """`ip` with a routing table in memory: enough for PodRouter."""

    def __init__(self, table: list[dict]) -> None:
        self.table = table
        self.calls: list[list[str]] = []

    async def run(self, argv: Sequence[str], stdin: str | None = None) -> CommandResult:
        argv = list(argv)
        self.calls.append(argv)
        if argv[1:3] == ["-j", "-4"]:
            return CommandResult(argv, 0, json.dumps(self.table))
        if argv[1:3] == ["route", "replace"]:
            dst = argv[3]
            self.table = [r for r in self.table if r.get("dst") != dst]
            self.table.append({"dst": dst, "gateway": argv[argv.index("via") + 1], "dev": argv[argv.index("dev") + 1],
                               "protocol": argv[argv.index("proto") + 1], "flags": []})
            return CommandResult(argv, 0)
        if argv[1:3] == ["route", "del"]:
            before = len(self.table)
            self.table = [r for r in self.table if not (r.get("dst") == argv[3]
                                                        and r.get("protocol") == argv[argv.index("proto") + 1])]
            return CommandResult(argv, 0 if len(self.table) < before else 2, "", "RTNETLINK answers: No such process")
        return CommandResult(argv, 1, "", "unexpected")


async def _ips() -> list[str]:
    return ["10.250.250.20"]


async def test_router_adds_missing_routes_keeps_good_ones_and_removes_stale_ones():
    runner = RouteRunner(json.loads(ROUTES_JSON))
    nodes = [node("a", "10.244.0.0/24", "10.250.250.20"), node("c", "10.244.2.0/24", "10.250.250.22")]
    router = PodRouter(runner, "a", CLUSTER, lambda: nodes, _ips)  # b (10.244.1.0/24) is gone
    assert await router.sync() == [PeerRoute("10.244.2.0/24", "10.250.250.22", "eth0")]
    changes = [c for c in runner.calls if c[1] == "route"]
    assert changes == [
        ["ip", "route", "replace", "10.244.2.0/24", "via", "10.250.250.22", "dev", "eth0", "proto", "233", "realm", "233"],
        ["ip", "route", "del", "10.244.1.0/24", "proto", "233"],
    ]
    runner.calls.clear()
    await router.sync()  # nothing to do the second time
    assert [c for c in runner.calls if c[1] == "route"] == []
    # someone else's static route and the default route were never touched
    assert {r["dst"] for r in runner.table} >= {"default", "172.16.0.0/12"}
    nodes[1]["status"]["addresses"][0]["address"] = "10.250.250.23"  # the peer moved: replaced
    await router.sync()
    assert [c[3:6] for c in runner.calls if c[1] == "route"] == [["10.244.2.0/24", "via", "10.250.250.23"]]
    await remove_peer_routes(runner)  # kube-proxy --cleanup
    assert not [r for r in runner.table if r.get("protocol") == "233"]


def test_route_pod_cidrs_needs_the_cluster_cidr():
    with pytest.raises(ConfigError, match="--route-pod-cidrs needs --cluster-cidr"):
        ProxyOptions(route_pod_cidrs=True, cluster_cidr="").validate()
    ProxyOptions(route_pod_cidrs=True).validate()


def test_exemption_is_the_guards_first_rule_in_iptables_save_form():
    rule = guard_exemption_rule("eth0")
    assert rule[:5] == ["-o", "eth0", "-m", "realm", "--realm"] and rule[5] == "0xe9" and rule[-2:] == ["-j", "RETURN"]
    guard = HostNetworkGuard(FakeRunner(), ["10.244.0.0/16"], service_cidr=None, device=None, uplink="eth0",
                             peer_exemption=True)
    rules = guard.guard_rules()
    assert rules[0] == rule and rules[1][-1] == "DROP"
    guard.peer_exemption = False
    assert all(r[-1] == "DROP" for r in guard.guard_rules())


class RealmlessRunner(FakeRunner):
    """iptables-restore of a kernel without the realm match."""

    async def run(self, argv: Sequence[str], stdin: str | None = None) -> CommandResult:
        if argv[0].endswith("-restore") and stdin and "realm" in stdin:
            return CommandResult(list(argv), 2, "", "iptables-restore: Couldn't load match `realm'")
        return await super().run(argv, stdin)


async def test_a_kernel_without_the_realm_match_keeps_the_whole_guard():
    runner = RealmlessRunner()
    guard = HostNetworkGuard(runner, ["10.244.0.0/16"], service_cidr=None, device=None, uplink="eth0",
                             peer_exemption=True)
    await guard.ensure()
    assert guard.peer_exemption is False
    assert runner.rules("filter", "KUBE-GUARD") == [
        '-d 10.244.0.0/16 -o eth0 -m comment --comment "minik8s: cluster traffic must not leave via the uplink" '
        "-j DROP"]


async def test_guard_counters_count_drops_not_the_exemption():
    runner = FakeRunner()
    guard = HostNetworkGuard(runner, ["10.244.0.0/16"], service_cidr=None, device=None, uplink="eth0",
                             peer_exemption=True)

    async def save(table: str, counters: bool = False) -> str:
        return ("*filter\n"
                "[7:700] -A KUBE-GUARD -o eth0 -m realm --realm 0xe9 -m comment --comment x -j RETURN\n"
                "[2:200] -A KUBE-GUARD -d 10.244.0.0/16 -o eth0 -m comment --comment y -j DROP\nCOMMIT\n")

    guard.iptables.save = save  # type: ignore[method-assign]
    assert await guard.counters() == {"10.244.0.0/16": 2}


def test_kubelet_guard_starts_with_the_same_exemption():
    from kubelet import network

    rules = network.desired_rules("10.244.3.0/24", CLUSTER, "eth0", True)
    assert rules.guard[0] == guard_exemption_rule("eth0")
    assert [r[-1] for r in rules.guard[1:]] == ["DROP", "DROP"]
    assert [r[-1] for r in network.desired_rules("10.244.3.0/24", CLUSTER, "eth0", True, False).guard] == [
        "DROP", "DROP"]


async def test_kube_proxy_routes_only_once_every_node_is_known():
    """A restarted kube-proxy must not sync against an empty node list: it would remove the
    routes pods use until the informer catches up."""
    import asyncio

    from kube_proxy.app import ProxyServer

    server = ProxyServer(ProxyOptions(route_pod_cidrs=True), api=None, runner=FakeRunner())  # type: ignore[arg-type]
    synced, runs = asyncio.Event(), []

    class Nodes:
        async def wait_synced(self) -> None:
            await synced.wait()

    class Router:
        async def run(self, stop: asyncio.Event) -> None:
            runs.append(stop)

    server._all_nodes, server.router = Nodes(), Router()  # type: ignore[assignment]
    stop = asyncio.Event()
    task = asyncio.create_task(server._route_pod_cidrs(stop))
    await asyncio.sleep(0)
    assert runs == [] and not task.done()
    synced.set()
    await asyncio.wait_for(task, 5)
    assert runs == [stop]
