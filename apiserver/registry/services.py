"""ClusterIP and NodePort allocation for Services.

Each allocated IP or port is an etcd key (`/registry/ranges/serviceips/<ip>`,
`/registry/ranges/servicenodeports/<port>`) created in the same transaction as the
Service, with a must-not-exist compare: two concurrent creates can never get the same
address, even across apiservers. An in-memory view of what is used (fed by the services
watch cache) only picks candidates; etcd decides.
"""

from __future__ import annotations

import ipaddress
import random
from typing import Any

import orjson

from apimachinery import errors
from apimachinery.errors import field_cause
from apiserver.storage import SideEffect

IP_PREFIX = b"/registry/ranges/serviceips/"
PORT_PREFIX = b"/registry/ranges/servicenodeports/"


class Allocator:
    """Candidate picking for one range (service IPs or node ports)."""

    def __init__(self, values: range, prefix: bytes, render: Any) -> None:
        self.values = values
        self.prefix = prefix
        self.render = render
        self.used: set[int] = set()
        self.pending: set[int] = set()

    def key(self, v: int) -> bytes:
        return self.prefix + str(self.render(v)).encode()

    def taken(self, v: int) -> bool:
        return v in self.used or v in self.pending

    def pick(self) -> int:
        free = len(self.values) - len(self.used) - len(self.pending)
        if free <= 0:
            raise errors.StatusError(500, "InternalError", f"range is full: no free values in {self.describe()}")
        for _ in range(64):
            v = self.values[random.randrange(len(self.values))]
            if not self.taken(v):
                self.pending.add(v)
                return v
        for v in self.values:  # nearly full: scan
            if not self.taken(v):
                self.pending.add(v)
                return v
        raise errors.StatusError(500, "InternalError", f"range is full: no free values in {self.describe()}")

    def describe(self) -> str:
        return f"{self.render(self.values[0])}-{self.render(self.values[-1])}"


class ServiceAllocators:
    def __init__(self, cidr: str, node_ports: str) -> None:
        net = ipaddress.ip_network(cidr)
        self.network = net
        base = int(net.network_address)
        # skip the network address and the broadcast address
        self.ips = Allocator(range(base + 1, base + net.num_addresses - 1), IP_PREFIX, lambda v: ipaddress.ip_address(v))
        lo, _, hi = node_ports.partition("-")
        self.ports = Allocator(range(int(lo), int(hi) + 1), PORT_PREFIX, lambda v: v)
        self.synced = False

    def ip_int(self, ip: str) -> int | None:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        return int(addr) if addr in self.network else None

    def observe(self, svc: dict[str, Any] | None, add: bool) -> None:
        if not svc:
            return
        ip, ports = held_by(svc)
        target_ips = self.ips.used
        if ip:
            v = self.ip_int(ip)
            if v is not None:
                (target_ips.add if add else target_ips.discard)(v)
        for p in ports:
            (self.ports.used.add if add else self.ports.used.discard)(p)

    def sync(self, cache: Any) -> None:
        """Seed the used sets from the services cache and follow its events from now on."""
        if self.synced:
            return
        for e in cache.objects.values():
            self.observe(orjson.loads(e.data), True)

        def on_event(ev: Any) -> None:
            if ev.prev is not None:
                self.observe(orjson.loads(ev.prev.data), False)
            if ev.type != "DELETED":
                self.observe(orjson.loads(ev.entry.data), True)

        cache.listeners.append(on_event)
        self.synced = True


# -- type-dependent fields ----------------------------------------------------------------
#
# A Service's `type` decides which of its fields mean anything. When an update changes the
# type, upstream (registry/core/service/strategy.go, PrepareForUpdate) drops the fields the
# new type has no use for, but only those the client left as they were: a client that sends
# `{"spec":{"type":"ClusterIP"}}` means "stop being a NodePort", not "keep nodePort 30080 on a
# ClusterIP service". A value the client did change stays and fails validation, as upstream.


def needs_cluster_ip(spec: dict[str, Any]) -> bool:
    return spec.get("type", "ClusterIP") != "ExternalName"


def needs_node_ports(spec: dict[str, Any]) -> bool:
    return spec.get("type") in ("NodePort", "LoadBalancer")


def needs_health_check_node_port(spec: dict[str, Any]) -> bool:
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def externally_accessible(spec: dict[str, Any]) -> bool:
    """Where externalTrafficPolicy means something (upstream's ExternallyAccessible)."""
    if needs_node_ports(spec):
        return True
    return spec.get("type", "ClusterIP") == "ClusterIP" and bool(spec.get("externalIPs"))


def _node_port_set(spec: dict[str, Any]) -> set[Any]:
    return {p["nodePort"] for p in spec.get("ports") or [] if isinstance(p, dict) and p.get("nodePort")}


def _nothing_if_empty(v: Any) -> Any:
    """Absent, "" and [] are the same "not set" (Go's zero values); False is a value."""
    return None if v is None or v == "" or v == [] or v == {} else v


def patch_allocated_values(new: dict[str, Any], old: dict[str, Any]) -> None:
    """Keep the allocated ClusterIP a client left out of an update (upstream's
    patchAllocatedValues): a PUT without spec.clusterIP means "keep it", and validation must
    not read it as a change. (Left-out nodePorts are refilled by `allocate`.)"""
    ns, os_ = new.get("spec"), old.get("spec")
    if not isinstance(ns, dict) or not isinstance(os_, dict):
        return
    if not (needs_cluster_ip(ns) and needs_cluster_ip(os_)):
        return
    if not ns.get("clusterIP") and os_.get("clusterIP"):
        ns["clusterIP"] = os_["clusterIP"]
    if not ns.get("clusterIPs") and os_.get("clusterIPs") and ns.get("clusterIP") == os_.get("clusterIP"):
        ns["clusterIPs"] = list(os_["clusterIPs"])


def drop_type_dependent_fields(new: dict[str, Any], old: dict[str, Any]) -> None:
    """Drop, before validation, what the new type cannot carry and the client did not change.

    Upstream drops a field when the old type needed it and the new one does not; here the
    rule is "the new type does not need it and it is as stored", which is the same for
    anything upstream could have stored and also heals objects our older code stored with
    such leftovers (e.g. ipFamilies on an ExternalName service), which would otherwise fail
    validation on every later update. Released node ports and IPs are freed by `allocate`.
    """
    ns, os_ = new.get("spec"), old.get("spec")
    if not isinstance(ns, dict) or not isinstance(os_, dict):
        return

    def unchanged(field: str) -> bool:
        return field in ns and _nothing_if_empty(ns[field]) == _nothing_if_empty(os_.get(field))

    if not needs_cluster_ip(ns):
        # ExternalName: no IPs. Cleared values need no dropping either; only a new value stays.
        if all(ns.get(f) in (None, "", [], os_.get(f)) for f in ("clusterIP", "clusterIPs")):
            ns.pop("clusterIP", None)
            ns.pop("clusterIPs", None)
        # upstream keeps internalTrafficPolicy stored but hides it on read for ExternalName
        for f in ("ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy"):
            if unchanged(f):
                ns.pop(f)

    if not needs_node_ports(ns):
        new_ports = _node_port_set(ns)
        # any node port not held before is a request, and stays to be refused by validation
        if new_ports and new_ports <= _node_port_set(os_):
            for p in ns.get("ports") or []:
                if isinstance(p, dict):
                    p.pop("nodePort", None)

    if not needs_health_check_node_port(ns) and unchanged("healthCheckNodePort"):
        ns.pop("healthCheckNodePort")

    if ns.get("type") != "LoadBalancer":
        for f in ("allocateLoadBalancerNodePorts", "loadBalancerClass"):
            if unchanged(f):
                ns.pop(f)
        # load-balancer status means nothing once the service is no longer one
        status = new.get("status")
        if isinstance(status, dict) and status.get("loadBalancer"):
            status["loadBalancer"] = {}

    if not externally_accessible(ns) and unchanged("externalTrafficPolicy"):
        ns.pop("externalTrafficPolicy")


def held_by(svc: dict[str, Any]) -> tuple[str | None, list[int]]:
    """The ClusterIP and node ports a stored service holds."""
    spec = svc.get("spec") or {}
    ip = spec.get("clusterIP")
    if ip in (None, "", "None") or spec.get("type") == "ExternalName":
        ip = None
    ports = sorted({p["nodePort"] for p in spec.get("ports") or [] if isinstance(p, dict) and p.get("nodePort")})
    return ip, ports


def _owner(obj: dict[str, Any]) -> bytes:
    m = obj["metadata"]
    return f"{m.get('namespace')}/{m.get('name')}".encode()


class ServiceAllocations:
    """Strategy mixin: allocate and release a Service's ClusterIP and node ports."""

    async def allocate(self, server: Any, res: Any, obj: dict[str, Any], old: dict[str, Any] | None, dry_run: bool) -> list[SideEffect]:
        alloc: ServiceAllocators = server.service_allocators
        await server.cache_for("", "services")._wait_ready(3.0)
        alloc.sync(server.cache_for("", "services"))
        spec = obj.get("spec") or {}
        name = obj["metadata"].get("name", "")
        owner = _owner(obj)
        side: list[SideEffect] = []
        old_ip, old_ports = held_by(old) if old else (None, [])

        # ClusterIP
        t = spec.get("type", "ClusterIP")
        if t == "ExternalName":
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        elif old_ip and spec.get("clusterIP") in (None, "", old_ip):
            spec["clusterIP"] = old_ip
            spec["clusterIPs"] = [old_ip]
        elif spec.get("clusterIP") == "None":
            spec["clusterIPs"] = ["None"]
        else:
            want = spec.get("clusterIP") or ((spec.get("clusterIPs") or [None])[0])
            if want:
                v = alloc.ip_int(want)
                if v is None:
                    raise errors.invalid(
                        "Service", name,
                        [field_cause("spec.clusterIPs", f'Invalid value: ["{want}"]: failed to allocate IP {want}: '
                                     f"the provided IP ({want}) is not in the valid range. The range of valid IPs is {alloc.network}")],
                    )
                if await _taken(server, alloc.ips, v):
                    raise _ip_taken(name, want)
                alloc.ips.pending.add(v)
            else:
                v = alloc.ips.pick()
                want = str(alloc.ips.render(v))
            spec["clusterIP"] = want
            spec["clusterIPs"] = [want]
            side.append(SideEffect(alloc.ips.key(v), owner, must_not_exist=True))
        if old_ip and spec.get("clusterIP") != old_ip:
            v = alloc.ip_int(old_ip)
            if v is not None:
                side.append(SideEffect(alloc.ips.key(v), None))

        # NodePorts
        wanted_ports: set[int] = set()
        if t in ("NodePort", "LoadBalancer"):
            old_by_port = {}
            for p in ((old or {}).get("spec") or {}).get("ports") or []:
                if isinstance(p, dict) and p.get("nodePort"):
                    old_by_port[(p.get("port"), p.get("protocol", "TCP"))] = p["nodePort"]
            for i, p in enumerate(spec.get("ports") or []):
                if not isinstance(p, dict):
                    continue
                if t == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is False and not p.get("nodePort"):
                    continue
                np = p.get("nodePort") or old_by_port.get((p.get("port"), p.get("protocol", "TCP")))
                if np in wanted_ports:  # the same port for another protocol of this service
                    p["nodePort"] = np
                    continue
                if np:
                    if np not in alloc.ports.values:
                        raise errors.invalid(
                            "Service", name,
                            [field_cause(f"spec.ports[{i}].nodePort", f"Invalid value: {np}: provided port is not in the "
                                         f"valid range. The range of valid ports is {alloc.ports.describe()}")],
                        )
                    if np not in old_ports:
                        if await _taken(server, alloc.ports, np):
                            raise _port_taken(name, i, np)
                        alloc.ports.pending.add(np)
                        side.append(SideEffect(alloc.ports.key(np), owner, must_not_exist=True))
                else:
                    np = alloc.ports.pick()
                    side.append(SideEffect(alloc.ports.key(np), owner, must_not_exist=True))
                p["nodePort"] = np
                wanted_ports.add(np)
        else:
            for p in spec.get("ports") or []:
                if isinstance(p, dict):
                    p.pop("nodePort", None)
        for np in old_ports:
            if np not in wanted_ports:
                side.append(SideEffect(alloc.ports.key(np), None))
        return side

    async def release(self, server: Any, side: list[SideEffect], committed: bool) -> None:
        """Drop the in-memory reservations behind `side` (kept as used if the write committed)."""
        alloc: ServiceAllocators = server.service_allocators
        for s in side:
            if not s.must_not_exist:
                continue
            value = s.key.rsplit(b"/", 1)[1].decode()
            a = alloc.ips if s.key.startswith(IP_PREFIX) else alloc.ports
            v = alloc.ip_int(value) if a is alloc.ips else int(value)
            if v is None:
                continue
            a.pending.discard(v)
            if committed:
                a.used.add(v)

    async def on_side_key_taken(self, server: Any, key: bytes, obj: dict[str, Any]) -> None:
        alloc: ServiceAllocators = server.service_allocators
        name = obj["metadata"].get("name", "")
        value = key.rsplit(b"/", 1)[1].decode()
        if key.startswith(IP_PREFIX):
            v = alloc.ip_int(value)
            if v is not None:
                alloc.ips.used.add(v)
            raise _ip_taken(name, value)
        alloc.ports.used.add(int(value))
        raise _port_taken(name, 0, int(value))

    async def release_side_effects(self, server: Any, res: Any, obj: dict[str, Any]) -> list[SideEffect]:
        alloc: ServiceAllocators = server.service_allocators
        ip, ports = held_by(obj)
        side = []
        if ip:
            v = alloc.ip_int(ip)
            if v is not None:
                side.append(SideEffect(alloc.ips.key(v), None))
        side += [SideEffect(alloc.ports.key(p), None) for p in ports]
        return side


async def _taken(server: Any, a: Allocator, v: int) -> bool:
    """Is the requested value `v` held? The in-memory view learns of releases from the watch
    cache, so a value freed by a write that just returned (a delete, or a NodePort service
    turned ClusterIP) may still look used: catch the cache up with etcd before refusing.
    No await follows the final check, so the caller can reserve `v` right after."""
    if v in a.pending:
        return True  # reserved by a write in flight
    if v not in a.used:
        return False
    await server.cache_for("", "services").sync_with_store()
    return a.taken(v)


def _ip_taken(name: str, ip: str) -> errors.StatusError:
    return errors.invalid(
        "Service", name,
        [field_cause("spec.clusterIPs", f'Invalid value: ["{ip}"]: failed to allocate IP {ip}: provided IP is already allocated')],
    )


def _port_taken(name: str, i: int, port: int) -> errors.StatusError:
    return errors.invalid(
        "Service", name, [field_cause(f"spec.ports[{i}].nodePort", f"Invalid value: {port}: provided port is already allocated")]
    )
