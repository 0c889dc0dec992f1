"""Node IPAM: every node gets a pod CIDR (upstream pkg/controller/nodeipam, RangeAllocator).

Runs with --allocate-node-cidrs. A node that registers without spec.podCIDR is given the
next free /--node-cidr-mask-size (default /24) of --cluster-cidr (default 10.244.0.0/16;
one range per IP family when the flag lists several), written as spec.podCIDR and
spec.podCIDRs. The set of used ranges is rebuilt from the existing nodes before anything
is allocated (a restarted controller never hands out a range twice), ranges overlapping
--service-cluster-ip-range are never used, and a deleted node's range is released. When the
cluster CIDR is exhausted the node gets an event CIDRNotAvailable.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from apimachinery.meta import split_key
from client import ApiError, deleted_object, is_not_found
from controller_manager.base import Controller, ControllerContext, register

Obj = dict[str, Any]

DEFAULT_CLUSTER_CIDR = "10.244.0.0/16"
DEFAULT_IPV6_MASK = 64

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class CIDRSet:
    """The /mask subnets of one cluster CIDR, handed out round-robin (upstream cidrset)."""

    def __init__(self, cluster_cidr: Network, mask: int) -> None:
        if mask < cluster_cidr.prefixlen:
            raise ValueError(f"node CIDR mask /{mask} is larger than the cluster CIDR {cluster_cidr}")
        if mask - cluster_cidr.prefixlen > 24:
            raise ValueError(f"cluster CIDR {cluster_cidr} with mask /{mask} has too many subnets")
        self.cidr = cluster_cidr
        self.mask = mask
        self.size = 2 ** (mask - cluster_cidr.prefixlen)
        self.step = 2 ** (cluster_cidr.max_prefixlen - mask)
        self.used: set[int] = set()
        self._next = 0

    def _index(self, subnet: Network) -> int:
        return (int(subnet.network_address) - int(self.cidr.network_address)) // self.step

    def _subnet(self, index: int) -> Network:
        base = int(self.cidr.network_address) + index * self.step
        return ipaddress.ip_network((base, self.mask))

    def subnets_overlapping(self, net: Network) -> list[int]:
        if net.version != self.cidr.version or not net.overlaps(self.cidr):
            return []
        lo = max(int(net.network_address), int(self.cidr.network_address))
        hi = min(int(net.broadcast_address), int(self.cidr.broadcast_address))
        first = (lo - int(self.cidr.network_address)) // self.step
        last = (hi - int(self.cidr.network_address)) // self.step
        return list(range(first, last + 1))

    def occupy(self, net: Network) -> None:
        self.used.update(self.subnets_overlapping(net))

    def release(self, net: Network) -> None:
        if net.prefixlen == self.mask and net.subnet_of(self.cidr):  # type: ignore[arg-type]
            self.used.discard(self._index(net))

    def allocate(self) -> Network | None:
        for i in range(self.size):
            candidate = (self._next + i) % self.size
            if candidate not in self.used:
                self.used.add(candidate)
                self._next = (candidate + 1) % self.size
                return self._subnet(candidate)
        return None

    def contains(self, net: Network) -> bool:
        return net.version == self.cidr.version and net.subnet_of(self.cidr)  # type: ignore[arg-type]


def node_cidrs(node: Obj) -> list[str]:
    spec = node.get("spec") or {}
    cidrs = list(spec.get("podCIDRs") or [])
    if not cidrs and spec.get("podCIDR"):
        cidrs = [spec["podCIDR"]]
    return cidrs


@register
class NodeIpamController(Controller):
    name = "node-ipam-controller"
    aliases = ("nodeipam",)
    service_account = "node-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.enabled = self.options.allocate_node_cidrs
        self.sets: list[CIDRSet] = []
        if self.enabled:
            mask = self.options.node_cidr_mask_size
            for text in (self.options.cluster_cidr or DEFAULT_CLUSTER_CIDR).split(","):
                net = ipaddress.ip_network(text.strip(), strict=False)
                self.sets.append(CIDRSet(net, mask if net.version == 4 else max(mask, DEFAULT_IPV6_MASK)))
            for text in (self.options.service_cluster_ip_range or "").split(","):
                if text.strip():
                    svc = ipaddress.ip_network(text.strip(), strict=False)
                    for s in self.sets:
                        s.occupy(svc)
        self.nodes = self.informer("v1", "nodes")
        self.nodes.add_handler(self._node_changed, lambda old, new: self._node_changed(new), self._node_deleted)
        self.nodes_api = self.client.resource("v1", "nodes")
        self._occupied_at_start = False
        #: node name → the ranges we gave it (to release them when it goes)
        self.allocated: dict[str, list[Network]] = {}

    def _node_changed(self, node: Obj) -> None:
        if self.enabled and not node_cidrs(node):
            self.enqueue(node)

    def _node_deleted(self, item: Any) -> None:
        node = deleted_object(item)
        for text in node_cidrs(node):
            self._release(text)
        self.allocated.pop(node["metadata"]["name"], None)

    def _release(self, text: str) -> None:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            return
        for s in self.sets:
            if s.contains(net):
                s.release(net)

    def occupy_existing(self) -> None:
        """Mark every range an existing node holds as used (once, before the first allocation)."""
        for node in self.nodes.store.list():
            for text in node_cidrs(node):
                try:
                    net = ipaddress.ip_network(text, strict=False)
                except ValueError:
                    self.log.warning("node %s has an invalid pod CIDR %r", node["metadata"]["name"], text)
                    continue
                for s in self.sets:
                    if s.contains(net):
                        s.occupy(net)
        self._occupied_at_start = True

    async def sync(self, key: str) -> None:
        if not self.enabled:
            return
        if not self._occupied_at_start:
            self.occupy_existing()
        _, name = split_key(key)
        node = self.nodes.store.get(name)
        if node is None or node_cidrs(node):
            return
        pending = self.allocated.get(name)
        if pending is None:
            pending = []
            for s in self.sets:
                net = s.allocate()
                if net is None:
                    for s2, got in zip(self.sets, pending, strict=False):
                        s2.release(got)
                    self.recorder.event(node, "Normal", "CIDRNotAvailable",
                                        f"Node {name} status is now: CIDRNotAvailable")
                    raise RuntimeError(f"no pod CIDR left in {[str(x.cidr) for x in self.sets]} for node {name}")
                pending.append(net)
            self.allocated[name] = pending
        cidrs = [str(n) for n in pending]
        try:
            latest = await self.nodes_api.get(name)
        except ApiError as e:
            if is_not_found(e):
                self._forget(name)
                return
            raise
        if node_cidrs(latest):
            if node_cidrs(latest) != cidrs:  # someone else set it: give ours back, keep theirs
                self._forget(name)
                for text in node_cidrs(latest):
                    self._occupy_text(text)
            return
        patch = {"metadata": {"resourceVersion": latest["metadata"]["resourceVersion"]},
                 "spec": {"podCIDR": cidrs[0], "podCIDRs": cidrs}}
        await self.nodes_api.patch(name, patch, patch_type="merge")
        self.log.info("node %s: allocated pod CIDRs %s", name, cidrs)

    def _forget(self, name: str) -> None:
        for net in self.allocated.pop(name, []):
            for s in self.sets:
                if s.contains(net):
                    s.release(net)

    def _occupy_text(self, text: str) -> None:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            return
        for s in self.sets:
            if s.contains(net):
                s.occupy(net)
