"""Peer routes (kube-proxy --route-pod-cidrs) and both uplink guards on a real kernel.

Two network namespaces stand for two nodes joined by a veth pair; node A's default route
points out of that veth (its "uplink"), node B holds a pod address. Node A gets kube-proxy's
KUBE-GUARD and the kubelet's KUBELET-GRD exactly as the daemons install them, then the router's
route to B's pod CIDR: traffic to B's pods passes both guards only while it follows that route.
Nothing leaves the two namespaces, which are removed afterwards.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest

from kube_proxy.commands import CommandResult, SystemRunner
from kube_proxy.guard import HostNetworkGuard
from kube_proxy.podroutes import PeerRoute, PodRouter
from tests.conftest import ROOT, wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("iptables"), reason="needs root, ip, iptables")

CLUSTER = "10.244.0.0/16"
A_IP, B_IP, POD_B = "10.251.77.1", "10.251.77.2", "10.244.201.5"
SERVER = (
    "import socket\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    f"s.bind(('{POD_B}', 8080)); s.listen(16); print('ready', flush=True)\n"
    "while True:\n"
    "    c, peer = s.accept(); c.sendall(('pod-b saw ' + peer[0]).encode()); c.close()\n"
)
CLIENT = (
    "import socket, sys\n"
    "try:\n"
    f"    print(socket.create_connection(('{POD_B}', 8080), timeout=1).recv(100).decode())\n"
    "except OSError as e:\n"
    "    print(type(e).__name__)\n"
)


def ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    prefix = ["ip", "netns", "exec", ns] if ns else []
    return subprocess.run([*prefix, "ip", *args], capture_output=True, text=True, check=check)


class NetnsRunner(SystemRunner):
    def __init__(self, ns: str) -> None:
        self.ns = ns

    async def run(self, argv: Sequence[str], stdin: str | None = None) -> CommandResult:
        return await super().run(["ip", "netns", "exec", self.ns, *argv], stdin)


@dataclass
class Nodes:
    a: str
    b: str
    uplink: str


@pytest.fixture
def nodes() -> Iterator[Nodes]:
    token = secrets.token_hex(3)
    a, b = f"mk8s-rta-{token}", f"mk8s-rtb-{token}"
    veth_a, veth_b = f"mkra{token}", f"mkrb{token}"
    server: subprocess.Popen[str] | None = None
    created: list[str] = []
    try:
        for ns in (a, b):
            ip("netns", "add", ns)
            created.append(ns)
            ip("link", "set", "lo", "up", ns=ns)
        ip("link", "add", veth_a, "netns", a, "type", "veth", "peer", "name", veth_b, "netns", b)
        ip("addr", "add", f"{A_IP}/24", "dev", veth_a, ns=a)
        ip("link", "set", veth_a, "up", ns=a)
        # A's uplink: without a peer route, B's pod CIDR would follow this default route
        ip("route", "add", "default", "via", "10.251.77.254", "dev", veth_a, ns=a)
        ip("addr", "add", f"{B_IP}/24", "dev", veth_b, ns=b)
        ip("link", "set", veth_b, "up", ns=b)
        ip("addr", "add", f"{POD_B}/32", "dev", "lo", ns=b)
        server = subprocess.Popen(["ip", "netns", "exec", b, sys.executable, "-c", SERVER],
                                  stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        yield Nodes(a, b, veth_a)
    finally:
        if server is not None:
            server.kill()
            server.wait()
        for ns in created:  # the veth pair, addresses, routes and rules go with the namespaces
            ip("netns", "del", ns, check=False)


def in_netns(ns: str, *argv: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, check=True,
                          cwd=ROOT).stdout


def fetch_from(ns: str) -> str:
    return in_netns(ns, sys.executable, "-c", CLIENT).strip()


def node(name: str, cidr: str, address: str) -> dict:
    return {"metadata": {"name": name}, "spec": {"podCIDR": cidr},
            "status": {"addresses": [{"type": "InternalIP", "address": address}]}}


async def test_pod_traffic_to_a_peer_passes_the_guards_only_along_its_route(nodes: Nodes) -> None:
    runner = NetnsRunner(nodes.a)
    kube_proxy_guard = HostNetworkGuard(runner, [CLUSTER, "10.96.0.0/16"], service_cidr=None, device=None,
                                        uplink=nodes.uplink, peer_exemption=True)
    await kube_proxy_guard.ensure()
    # the kubelet's chains, installed by its own code inside node A (it finds the uplink itself)
    kubelet = ("import asyncio\nfrom kubelet import network\n"
               "rules = network.desired_rules('10.244.200.0/24', '10.244.0.0/16', network.uplink_interface(), True)\n"
               "asyncio.run(network.ensure_filter_rules('mk8s-rt0', rules))\n")
    in_netns(nodes.a, sys.executable, "-c", kubelet)
    guard_chains = in_netns(nodes.a, "iptables", "-S")
    assert f"-A KUBE-GUARD -o {nodes.uplink} -m realm --realm 0xe9" in guard_chains
    assert f"-A KUBELET-GRD-mk8s-rt0 -o {nodes.uplink} -m realm --realm 0xe9" in guard_chains

    # no route yet: the default route would carry it out of the uplink, so the guards drop it
    assert dropped_by_a_guard(nodes.a)

    peers = [node("a", "10.244.200.0/24", A_IP), node("b", "10.244.201.0/24", B_IP)]

    async def local_ips() -> list[str]:
        return [A_IP]

    router = PodRouter(runner, "a", CLUSTER, lambda: peers, local_ips)
    assert await router.sync() == [PeerRoute("10.244.201.0/24", B_IP, nodes.uplink)]
    route = ip("route", "show", "10.244.201.0/24", ns=nodes.a).stdout
    assert f"via {B_IP} dev {nodes.uplink} proto 233" in route and "realm 233" in route
    # along the route both guards let it through, and B sees A's own address (no NAT)
    assert fetch_from(nodes.a) == f"pod-b saw {A_IP}"

    # the route gone behind the router's back: the exemption alone lets nothing out
    ip("route", "del", "10.244.201.0/24", ns=nodes.a)
    assert dropped_by_a_guard(nodes.a)
    await router.sync()  # put back
    wait_for(lambda: fetch_from(nodes.a) == f"pod-b saw {A_IP}", 10, 0.2, "the restored route to carry traffic")

    peers.pop()  # node b deleted: its route goes, its pods are unreachable again (not leaked)
    assert await router.sync() == []
    assert ip("route", "show", "proto", "233", ns=nodes.a).stdout.strip() == ""
    assert dropped_by_a_guard(nodes.a)


def guard_drops(ns: str) -> int:
    """Packets both guards' DROP rules have counted in node `ns`."""
    saved = in_netns(ns, "iptables-save", "-c", "-t", "filter")
    return sum(int(line[1:].split(":", 1)[0]) for line in saved.splitlines()
               if line.startswith("[") and ("-A KUBELET-GRD-" in line or "-A KUBE-GUARD " in line)
               and line.endswith("-j DROP"))


def dropped_by_a_guard(ns: str) -> bool:
    """The connection fails and a guard counted its packets (rather than them leaving)."""
    before = guard_drops(ns)
    return fetch_from(ns) == "TimeoutError" and guard_drops(ns) > before
