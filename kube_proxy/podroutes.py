"""Routes to other nodes' pod CIDRs (`kube-proxy --route-pod-cidrs`), as flannel's host-gw does.

Each node's pods live on its own bridge in the node's `spec.podCIDR`. For pods on different
nodes to reach each other without NAT, every node routes every other node's podCIDR via that
node's InternalIP:

    10.244.1.0/24 via 10.250.250.21 dev eth0 proto 233 realm 233

Only peers on a directly connected network get a route (no gateway in between: the packets
carry pod addresses that routers between the nodes would not know), and only podCIDRs inside
the cluster CIDR (a node object must not be able to redirect other traffic).

Both uplink guards (kube-proxy's KUBE-GUARD and the kubelet's KUBELET-GRD-*) drop traffic to
the cluster CIDR leaving through the uplink. Their one exception is `-m realm --realm 233`:
it matches only packets the kernel routed by one of these routes, so a packet to a pod CIDR
that follows the default route is still dropped, even when one of our routes went missing.
Routes are added before and removed after anything relies on them; kube-proxy leaving keeps
them (traffic goes on), `--cleanup` removes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kube_proxy.commands import CommandError, CommandRunner

log = logging.getLogger("kube-proxy.podroutes")

# Our routes' protocol number (how we find them again; unassigned in iproute2's rt_protos) and
# realm (what the guards' exception matches). 233 = 0xe9, as `iptables -S` prints realms.
ROUTE_PROTOCOL = 233
ROUTE_REALM = 233
EXEMPTION_COMMENT = "minik8s: routed to a peer node's pod CIDR"
RESYNC_SECONDS = 30.0  # puts back routes someone else removed


def guard_exemption_rule(uplink: str) -> list[str]:
    """The guards' first rule: let through what a peer route sends out of the uplink
    (in `iptables -S` form, so that chains compare equal)."""
    return ["-o", uplink, "-m", "realm", "--realm", hex(ROUTE_REALM), "-m", "comment", "--comment",
            EXEMPTION_COMMENT, "-j", "RETURN"]


@dataclass(frozen=True)
class PeerRoute:
    cidr: str
    gateway: str
    device: str


@dataclass(frozen=True)
class ConnectedNetwork:
    network: ipaddress.IPv4Network
    device: str


def node_pod_cidrs(node: dict[str, Any]) -> list[ipaddress.IPv4Network]:
    spec = node.get("spec") or {}
    found = []
    for value in spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []):
        with contextlib.suppress(ValueError):
            net = ipaddress.ip_network(value, strict=False)
            if isinstance(net, ipaddress.IPv4Network):
                found.append(net)
    return found


def node_internal_ip(node: dict[str, Any]) -> str | None:
    for addr in (node.get("status") or {}).get("addresses") or []:
        if addr.get("type") == "InternalIP":
            with contextlib.suppress(ValueError):
                if isinstance(ipaddress.ip_address(addr.get("address") or ""), ipaddress.IPv4Address):
                    return str(addr["address"])
    return None


def parse_routes(ip_json: str) -> tuple[list[ConnectedNetwork], list[PeerRoute]]:
    """`ip -j -4 route show table main` → (directly connected networks, our peer routes)."""
    connected: list[ConnectedNetwork] = []
    ours: list[PeerRoute] = []
    for route in json.loads(ip_json or "[]"):
        dst, dev = route.get("dst"), route.get("dev")
        if not dst or dst == "default" or not dev:
            continue
        try:
            net = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue
        if str(route.get("protocol")) == str(ROUTE_PROTOCOL):
            if route.get("gateway"):
                ours.append(PeerRoute(str(net), route["gateway"], dev))
        elif not route.get("gateway") and route.get("scope") == "link" and isinstance(net, ipaddress.IPv4Network):
            connected.append(ConnectedNetwork(net, dev))
    return connected, ours


def desired_routes(
    nodes: Iterable[dict[str, Any]],
    own_node: str,
    cluster_cidr: str,
    connected: Sequence[ConnectedNetwork],
    local_ips: Iterable[str],
) -> tuple[list[PeerRoute], list[str]]:
    """The peer routes this node should have, and why other nodes get none (for the log)."""
    cluster = ipaddress.ip_network(cluster_cidr, strict=False)
    local = set(local_ips)
    own_cidrs = [c for n in nodes if (n.get("metadata") or {}).get("name") == own_node for c in node_pod_cidrs(n)]
    routes: dict[str, PeerRoute] = {}
    skipped: list[str] = []
    for node in sorted(nodes, key=lambda n: (n.get("metadata") or {}).get("name") or ""):
        name = (node.get("metadata") or {}).get("name") or ""
        cidrs = node_pod_cidrs(node)
        if name == own_node or not cidrs:
            continue
        gateway = node_internal_ip(node)
        if gateway is None:
            skipped.append(f"{name}: no IPv4 InternalIP")
            continue
        if gateway in local:
            continue  # another node on this host shares our routing table: nothing to route
        gw = ipaddress.ip_address(gateway)
        on_link = [c for c in connected if gw in c.network and not c.network.overlaps(cluster)]
        if not on_link:
            skipped.append(f"{name}: InternalIP {gateway} is not on a directly connected network")
            continue
        device = max(on_link, key=lambda c: c.network.prefixlen).device
        for cidr in cidrs:
            if not cidr.subnet_of(cluster):  # type: ignore[arg-type]
                skipped.append(f"{name}: podCIDR {cidr} is outside the cluster CIDR {cluster}")
            elif any(cidr.overlaps(own) for own in own_cidrs) or str(cidr) in routes:
                skipped.append(f"{name}: podCIDR {cidr} overlaps another node's")
            elif any(cidr.overlaps(c.network) for c in connected):
                skipped.append(f"{name}: podCIDR {cidr} is a network of this host")
            else:
                routes[str(cidr)] = PeerRoute(str(cidr), gateway, device)
    return sorted(routes.values(), key=lambda r: ipaddress.ip_network(r.cidr)), skipped


async def current_routes(runner: CommandRunner) -> tuple[list[ConnectedNetwork], list[PeerRoute]]:
    result = await runner.run(["ip", "-j", "-4", "route", "show", "table", "main"])
    if not result.ok:
        raise CommandError(result)
    return parse_routes(result.stdout)


async def delete_route(runner: CommandRunner, route: PeerRoute) -> None:
    result = await runner.run(["ip", "route", "del", route.cidr, "proto", str(ROUTE_PROTOCOL)])
    if result.ok:
        log.info("removed the route to pod CIDR %s via %s", route.cidr, route.gateway)


async def remove_peer_routes(runner: CommandRunner) -> None:
    """`kube-proxy --cleanup`: every route this module made."""
    for route in (await current_routes(runner))[1]:
        await delete_route(runner, route)


class PodRouter:
    """Keeps the routing table's peer routes equal to what the Node objects say."""

    def __init__(
        self,
        runner: CommandRunner,
        own_node: str,
        cluster_cidr: str,
        nodes: Callable[[], list[dict[str, Any]]],
        local_ips: Callable[[], Awaitable[list[str]]],
    ) -> None:
        self.runner = runner
        self.own_node = own_node
        self.cluster_cidr = cluster_cidr
        self.nodes = nodes
        self.local_ips = local_ips
        self._wake = asyncio.Event()
        self._last_skipped: list[str] = []

    def queue(self) -> None:
        self._wake.set()

    async def sync(self) -> list[PeerRoute]:
        connected, have = await current_routes(self.runner)
        want, skipped = desired_routes(self.nodes(), self.own_node, self.cluster_cidr, connected,
                                       await self.local_ips())
        if skipped != self._last_skipped:
            for reason in skipped:
                log.warning("no route to the pods of node %s", reason)
            self._last_skipped = skipped
        for route in want:
            if route not in have:
                result = await self.runner.run(["ip", "route", "replace", route.cidr, "via", route.gateway, "dev",
                                                route.device, "proto", str(ROUTE_PROTOCOL), "realm", str(ROUTE_REALM)])
                if not result.ok:
                    raise CommandError(result)
                log.info("routed pod CIDR %s via %s (%s)", route.cidr, route.gateway, route.device)
        wanted = {r.cidr for r in want}
        for route in have:
            if route.cidr not in wanted:
                await delete_route(self.runner, route)
        return want

    async def run(self, stop: asyncio.Event) -> None:
        """Sync on every node change (coalesced) and every RESYNC_SECONDS."""
        while not stop.is_set():
            self._wake.clear()
            try:
                await self.sync()
            except (CommandError, OSError, ValueError) as exc:
                log.warning("syncing pod routes: %s", exc)
            waiter = asyncio.ensure_future(self._wake.wait())
            stopper = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({waiter, stopper}, timeout=RESYNC_SECONDS, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                stopper.cancel()
