"""The proxier's view of Services and EndpointSlices, with change tracking.

Mirrors upstream pkg/proxy (serviceport.go, servicechangetracker.go, endpointslicecache.go,
endpoints.go, topology.go): Service objects become one ServicePortInfo per port, EndpointSlices
become sorted Endpoint lists per service port, and every update is accumulated per service so a
sync knows which services changed (partial syncs) and which UDP flows went stale (conntrack).
Only IPv4 is handled, as in a single-stack IPv4 proxier.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# (namespace, service name, port name, protocol) — upstream's ServicePortName.
SvcPortKey = tuple[str, str, str, str]
# (namespace, service name) — upstream's NamespacedName.
ServiceName = tuple[str, str]

LABEL_SERVICE_NAME = "kubernetes.io/service-name"
LABEL_SERVICE_PROXY_NAME = "service.kubernetes.io/service-proxy-name"
LABEL_HEADLESS = "service.kubernetes.io/headless"
LABEL_TOPOLOGY_ZONE = "topology.kubernetes.io/zone"
# Set by the EndpointSlice controller: when the change that produced this version happened.
ANNOTATION_LAST_CHANGE_TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
DEFAULT_STICKY_SECONDS = 10800  # upstream's DefaultClientIPServiceAffinitySeconds


def service_port_name(namespace: str, name: str, port_name: str) -> str:
    """Upstream ServicePortName.String(): "ns/name:port", or "ns/name" for an unnamed port."""
    base = f"{namespace}/{name}"
    return f"{base}:{port_name}" if port_name else base


def last_change_trigger_time(obj: dict[str, Any] | None) -> float | None:
    """The slice's last-change-trigger-time annotation (RFC 3339) as epoch seconds, or None."""
    value = ((obj or {}).get("metadata") or {}).get("annotations", {}).get(ANNOTATION_LAST_CHANGE_TRIGGER_TIME)
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except (ValueError, TypeError):
        return None


def _is_ipv4(value: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(value), ipaddress.IPv4Address)
    except ValueError:
        return False


def _is_ipv4_cidr(value: str) -> bool:
    try:
        return isinstance(ipaddress.ip_network(value, strict=False), ipaddress.IPv4Network)
    except ValueError:
        return False


@dataclass(slots=True)
class ServicePortInfo:
    """One port of one Service, as the proxier sees it (upstream BaseServicePortInfo)."""

    namespace: str
    service: str
    port_name: str
    protocol: str  # "TCP" | "UDP" | "SCTP"
    cluster_ip: str
    port: int
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    load_balancer_source_ranges: tuple[str, ...] = ()
    session_affinity_client_ip: bool = False
    sticky_seconds: int = 0
    external_policy_local: bool = False
    internal_policy_local: bool = False
    health_check_node_port: int = 0
    name: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        self.name = service_port_name(self.namespace, self.service, self.port_name)

    @property
    def key(self) -> SvcPortKey:
        return (self.namespace, self.service, self.port_name, self.protocol)

    @property
    def externally_accessible(self) -> bool:
        return self.node_port != 0 or bool(self.load_balancer_ips) or bool(self.external_ips)

    @property
    def uses_cluster_endpoints(self) -> bool:
        # Even with externalTrafficPolicy=Local, cluster endpoints are needed to short-circuit
        # traffic from inside the cluster.
        return not self.internal_policy_local or self.externally_accessible

    @property
    def uses_local_endpoints(self) -> bool:
        return self.internal_policy_local or (self.external_policy_local and self.externally_accessible)


@dataclass(slots=True)
class Endpoint:
    """One endpoint of one service port (upstream BaseEndpointInfo)."""

    ip: str
    port: int
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node_name: str = ""
    zone: str = ""
    is_local: bool = False
    zone_hints: frozenset[str] = frozenset()
    addr: str = field(init=False, compare=False)  # "ip:port", upstream's Endpoint.String()

    def __post_init__(self) -> None:
        self.addr = f"{self.ip}:{self.port}"


# ---------------------------------------------------------------------------------------------
# Service → ServicePortInfo


def _externally_accessible_service(spec: dict[str, Any]) -> bool:
    svc_type = spec.get("type") or "ClusterIP"
    return svc_type in ("LoadBalancer", "NodePort") or (
        svc_type == "ClusterIP" and bool(spec.get("externalIPs"))
    )


def service_cluster_ipv4(service: dict[str, Any]) -> str:
    """The Service's IPv4 cluster IP, or "" when the proxier must skip it (headless, ExternalName)."""
    meta = service.get("metadata") or {}
    spec = service.get("spec") or {}
    if LABEL_SERVICE_PROXY_NAME in (meta.get("labels") or {}):
        return ""  # handled by another proxy, as upstream's informer label selector excludes it
    if (spec.get("type") or "ClusterIP") == "ExternalName":
        return ""
    candidates = list(spec.get("clusterIPs") or [])
    if spec.get("clusterIP"):
        candidates.append(spec["clusterIP"])
    for ip in candidates:
        if ip and ip != "None" and _is_ipv4(ip):
            return ip
    return ""


def service_to_ports(service: dict[str, Any] | None) -> dict[SvcPortKey, ServicePortInfo]:
    """Upstream serviceToServiceMap: one ServicePortInfo per port of a proxied Service."""
    if not service:
        return {}
    cluster_ip = service_cluster_ipv4(service)
    if not cluster_ip:
        return {}
    meta = service.get("metadata") or {}
    spec = service.get("spec") or {}
    status = service.get("status") or {}
    namespace = meta.get("namespace") or "default"
    name = meta.get("name") or ""

    accessible = _externally_accessible_service(spec)
    external_local = accessible and spec.get("externalTrafficPolicy") == "Local"
    internal_local = spec.get("internalTrafficPolicy") == "Local"
    affinity = spec.get("sessionAffinity") == "ClientIP"
    sticky = 0
    if affinity:
        cfg = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
        sticky = int(cfg.get("timeoutSeconds") or DEFAULT_STICKY_SECONDS)
    health_check = 0
    if (spec.get("type") == "LoadBalancer") and external_local:
        health_check = int(spec.get("healthCheckNodePort") or 0)

    external_ips = tuple(ip for ip in (spec.get("externalIPs") or []) if _is_ipv4(ip))
    source_ranges = tuple(
        r.strip() for r in (spec.get("loadBalancerSourceRanges") or []) if _is_ipv4_cidr(r.strip())
    )
    lb_ips = []
    for ingress in (status.get("loadBalancer") or {}).get("ingress") or []:
        ip = ingress.get("ip") or ""
        # ipMode "Proxy" load balancers deliver to the node themselves; no VIP rule wanted.
        if ip and _is_ipv4(ip) and ingress.get("ipMode", "VIP") != "Proxy":
            lb_ips.append(ip)

    ports: dict[SvcPortKey, ServicePortInfo] = {}
    for port in spec.get("ports") or []:
        info = ServicePortInfo(
            namespace=namespace,
            service=name,
            port_name=port.get("name") or "",
            protocol=(port.get("protocol") or "TCP").upper(),
            cluster_ip=cluster_ip,
            port=int(port.get("port") or 0),
            node_port=int(port.get("nodePort") or 0),
            external_ips=external_ips,
            load_balancer_ips=tuple(lb_ips),
            load_balancer_source_ranges=source_ranges,
            session_affinity_client_ip=affinity,
            sticky_seconds=sticky,
            external_policy_local=external_local,
            internal_policy_local=internal_local,
            health_check_node_port=health_check,
        )
        ports[info.key] = info
    return ports


# ---------------------------------------------------------------------------------------------
# EndpointSlice parsing

# A parsed slice: ([(svc port key, target port)], [(ip, ready, serving, terminating, node, zone, hints)])
_ParsedEndpoint = tuple[str, bool, bool, bool, str, str, frozenset[str]]
_ParsedSlice = tuple[tuple[tuple[SvcPortKey, int], ...], tuple[_ParsedEndpoint, ...]]


def endpointslice_keys(slice_obj: dict[str, Any]) -> tuple[ServiceName, str] | None:
    """(service, slice name) for a slice the proxier handles, else None."""
    meta = slice_obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    service = labels.get(LABEL_SERVICE_NAME)
    if not service or not meta.get("name"):
        return None
    if LABEL_SERVICE_PROXY_NAME in labels or LABEL_HEADLESS in labels:
        return None
    if (slice_obj.get("addressType") or "IPv4") != "IPv4":
        return None
    return (meta.get("namespace") or "default", service), meta["name"]


def _parse_slice(service: ServiceName, slice_obj: dict[str, Any]) -> _ParsedSlice:
    ports: list[tuple[SvcPortKey, int]] = []
    for port in slice_obj.get("ports") or []:
        number = int(port.get("port") or 0)
        if number <= 0:
            continue  # upstream ignores nil/0 ports
        name = port.get("name") or ""
        protocol = (port.get("protocol") or "TCP").upper()
        ports.append(((service[0], service[1], name, protocol), number))
    endpoints: list[_ParsedEndpoint] = []
    for ep in slice_obj.get("endpoints") or []:
        addresses = ep.get("addresses") or []
        if not addresses or not _is_ipv4(addresses[0]):
            continue
        cond = ep.get("conditions") or {}
        # Upstream: nil ready/serving mean true, nil terminating means false.
        ready = cond.get("ready") is not False
        serving = cond.get("serving") is not False
        terminating = cond.get("terminating") is True
        hints = frozenset(
            z.get("name", "") for z in ((ep.get("hints") or {}).get("forZones") or []) if z.get("name")
        )
        endpoints.append(
            (addresses[0], ready, serving, terminating, ep.get("nodeName") or "", ep.get("zone") or "", hints)
        )
    return tuple(ports), tuple(endpoints)


def _endpoints_from_slices(
    slices: dict[str, _ParsedSlice], node_name: str
) -> dict[SvcPortKey, list[Endpoint]]:
    by_port: dict[SvcPortKey, dict[str, Endpoint]] = {}
    for slice_name in sorted(slices):
        ports, endpoints = slices[slice_name]
        for key, number in ports:
            bucket = by_port.setdefault(key, {})
            for ip, ready, serving, terminating, node, zone, hints in endpoints:
                ep = Endpoint(
                    ip=ip,
                    port=number,
                    ready=ready,
                    serving=serving,
                    terminating=terminating,
                    node_name=node,
                    zone=zone,
                    is_local=bool(node_name) and node == node_name,
                    zone_hints=hints,
                )
                # Same IP in two slices: prefer the non-terminating one (pod IP reuse).
                if ep.addr not in bucket or not terminating:
                    bucket[ep.addr] = ep
    return {key: sorted(eps.values(), key=lambda e: e.addr) for key, eps in by_port.items() if eps}


# ---------------------------------------------------------------------------------------------
# Change tracking


@dataclass
class UpdateResult:
    """What one apply_changes() found; drives partial syncs and conntrack cleanup."""

    updated_services: set[ServiceName] = field(default_factory=set)
    deleted_udp_cluster_ips: set[str] = field(default_factory=set)
    # (service port key, endpoint "ip:port") of UDP endpoints traffic may no longer go to.
    deleted_udp_endpoints: list[tuple[SvcPortKey, str]] = field(default_factory=list)
    # UDP service ports that went from 0 to >0 serving endpoints.
    newly_active_udp_services: list[SvcPortKey] = field(default_factory=list)
    # Epoch seconds of the EndpointSlice changes applied (network programming latency).
    last_change_trigger_times: dict[ServiceName, list[float]] = field(default_factory=dict)

    def merge(self, other: UpdateResult) -> None:
        self.updated_services |= other.updated_services
        self.deleted_udp_cluster_ips |= other.deleted_udp_cluster_ips
        self.deleted_udp_endpoints.extend(other.deleted_udp_endpoints)
        self.newly_active_udp_services.extend(other.newly_active_udp_services)
        for name, times in other.last_change_trigger_times.items():
            self.last_change_trigger_times.setdefault(name, []).extend(times)


@dataclass
class Categorized:
    cluster: list[Endpoint]
    local: list[Endpoint]
    reachable: list[Endpoint]
    has_any: bool


class ProxyState:
    """Services and endpoints as applied, plus the changes pending since the last apply."""

    def __init__(self, node_name: str, node_labels: dict[str, str] | None = None) -> None:
        self.node_name = node_name
        self.node_labels: dict[str, str] = dict(node_labels or {})
        self.services: dict[SvcPortKey, ServicePortInfo] = {}
        self.endpoints: dict[SvcPortKey, list[Endpoint]] = {}
        # service → (ports before the first pending change, ports now)
        self._service_changes: dict[ServiceName, tuple[dict, dict]] = {}
        self._service_ports: dict[ServiceName, dict[SvcPortKey, ServicePortInfo]] = {}
        # service → slice name → parsed slice (applied), and pending edits (None = removed)
        self._slices: dict[ServiceName, dict[str, _ParsedSlice]] = {}
        self._pending_slices: dict[ServiceName, dict[str, _ParsedSlice | None]] = {}
        # objects last seen, for replace_* (relist) style updates
        self._service_objs: dict[ServiceName, dict[str, Any]] = {}
        self._slice_objs: dict[tuple[str, str], dict[str, Any]] = {}
        # Upstream's lastChangeTriggerTimes: per service, the trigger times of pending slice
        # changes; times from before this tracker existed are ignored (they measure nothing).
        self._trigger_times: dict[ServiceName, list[float]] = {}
        self._tracker_start = time.time()

    # -- services ---------------------------------------------------------------------------
    def on_service_update(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> bool:
        """Record an add (None, svc), update (old, new) or delete (svc, None). True if a change is pending."""
        obj = new if new is not None else old
        if obj is None:
            return False
        meta = obj.get("metadata") or {}
        name: ServiceName = (meta.get("namespace") or "default", meta.get("name") or "")
        if new is None:
            self._service_objs.pop(name, None)
        else:
            self._service_objs[name] = new
        current = service_to_ports(new)
        if name in self._service_changes:
            previous = self._service_changes[name][0]
        else:
            previous = self._service_ports.get(name, {})
        if previous == current:
            self._service_changes.pop(name, None)
        else:
            self._service_changes[name] = (previous, current)
        if current:
            self._service_ports[name] = current
        else:
            self._service_ports.pop(name, None)
        return bool(self._service_changes)

    def replace_services(self, services: list[dict[str, Any]]) -> bool:
        """Set the full list of Services (after a relist): missing ones count as deleted."""
        seen = set()
        for svc in services:
            meta = svc.get("metadata") or {}
            name = (meta.get("namespace") or "default", meta.get("name") or "")
            seen.add(name)
            self.on_service_update(self._service_objs.get(name), svc)
        for name in [n for n in self._service_objs if n not in seen]:
            self.on_service_update(self._service_objs[name], None)
        return self.has_pending_changes()

    # -- endpoint slices --------------------------------------------------------------------
    def on_endpointslice_update(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> bool:
        """Record an add, update or delete of an EndpointSlice. True if a change is pending."""
        old_keys = endpointslice_keys(old) if old is not None else None
        new_keys = endpointslice_keys(new) if new is not None else None
        if old_keys is not None and old_keys != new_keys:
            self._slice_change(old_keys[0], old_keys[1], None)
            self._slice_objs.pop((old_keys[0][0], old_keys[1]), None)
            # A deletion's annotation dates from the slice's last update, not from this change.
            self._trigger_times.pop(old_keys[0], None)
        if new_keys is not None:
            self._slice_change(new_keys[0], new_keys[1], _parse_slice(new_keys[0], new))
            self._slice_objs[(new_keys[0][0], new_keys[1])] = new
            if new_keys[0] in self._pending_slices:
                trigger = last_change_trigger_time(new)
                if trigger is not None and trigger > self._tracker_start:
                    self._trigger_times.setdefault(new_keys[0], []).append(trigger)
        elif new is not None:
            # The slice exists but is no longer ours (e.g. relabelled headless): drop any copy.
            meta = new.get("metadata") or {}
            stale = self._slice_objs.pop((meta.get("namespace") or "default", meta.get("name") or ""), None)
            if stale is not None and (keys := endpointslice_keys(stale)) is not None:
                self._slice_change(keys[0], keys[1], None)
        return self.has_pending_changes()

    def replace_endpointslices(self, slices: list[dict[str, Any]]) -> bool:
        """Set the full list of EndpointSlices (after a relist): missing ones count as deleted."""
        seen = set()
        for slc in slices:
            meta = slc.get("metadata") or {}
            key = (meta.get("namespace") or "default", meta.get("name") or "")
            seen.add(key)
            self.on_endpointslice_update(self._slice_objs.get(key), slc)
        for key in [k for k in self._slice_objs if k not in seen]:
            self.on_endpointslice_update(self._slice_objs[key], None)
        return self.has_pending_changes()

    def _slice_change(self, service: ServiceName, slice_name: str, parsed: _ParsedSlice | None) -> None:
        pending = self._pending_slices.get(service, {})
        applied = self._slices.get(service, {}).get(slice_name)
        if parsed == applied:
            # Back to what is applied: nothing left to do for this slice.
            if slice_name in pending:
                del pending[slice_name]
                if not pending:
                    del self._pending_slices[service]
                    self._trigger_times.pop(service, None)
            return
        self._pending_slices.setdefault(service, {})[slice_name] = parsed

    # -- applying ---------------------------------------------------------------------------
    def has_pending_changes(self) -> bool:
        return bool(self._service_changes) or bool(self._pending_slices)

    def pending_services(self) -> set[ServiceName]:
        return set(self._service_changes) | set(self._pending_slices)

    def apply_changes(self) -> UpdateResult:
        """Apply pending changes to services/endpoints; report what changed."""
        result = UpdateResult()
        for name, (previous, current) in self._service_changes.items():
            result.updated_services.add(name)
            for key, info in previous.items():
                self.services.pop(key, None)
                if key not in current and info.protocol == "UDP":
                    result.deleted_udp_cluster_ips.add(info.cluster_ip)
            self.services.update(current)
        self._service_changes = {}

        for name, edits in self._pending_slices.items():
            applied = self._slices.setdefault(name, {})
            previous_eps = _endpoints_from_slices(applied, self.node_name)
            for slice_name, parsed in edits.items():
                if parsed is None:
                    applied.pop(slice_name, None)
                else:
                    applied[slice_name] = parsed
            if not applied:
                del self._slices[name]
            current_eps = _endpoints_from_slices(applied, self.node_name)
            triggers = self._trigger_times.pop(name, None)
            if current_eps == previous_eps:
                continue
            if triggers:
                result.last_change_trigger_times[name] = triggers
            result.updated_services.add(name)
            for key in previous_eps:
                if key not in current_eps:
                    self.endpoints.pop(key, None)
            self.endpoints.update(current_eps)
            _detect_stale_udp(previous_eps, current_eps, result)
        self._pending_slices = {}
        return result

    def relabel_node(self, labels: dict[str, str]) -> bool:
        """Update this node's labels (zone for topology hints); True if they changed."""
        if labels == self.node_labels:
            return False
        self.node_labels = dict(labels)
        return True

    # -- endpoint selection -----------------------------------------------------------------
    def categorize(self, svc: ServicePortInfo) -> Categorized:
        return categorize_endpoints(
            self.endpoints.get(svc.key, []), svc, self.node_labels.get(LABEL_TOPOLOGY_ZONE, "")
        )


def _detect_stale_udp(
    previous: dict[SvcPortKey, list[Endpoint]],
    current: dict[SvcPortKey, list[Endpoint]],
    result: UpdateResult,
) -> None:
    """Upstream detectStaleConntrackEntries, for one service's endpoints."""
    for key, eps in previous.items():
        if key[3] != "UDP":
            continue
        now = {ep.addr: ep.serving for ep in current.get(key, [])}
        for ep in eps:
            # A non-serving endpoint never got traffic, so it has no flows to clear.
            if ep.serving and now.get(ep.addr) is not True:
                result.deleted_udp_endpoints.append((key, ep.addr))
    for key, eps in current.items():
        if key[3] != "UDP":
            continue
        if any(ep.serving for ep in eps) and not any(ep.serving for ep in previous.get(key, [])):
            result.newly_active_udp_services.append(key)


def _topology_zone(endpoints: list[Endpoint], zone: str) -> bool:
    """Upstream topologyModeFromHints (zones only): use hints iff every ready endpoint has
    zone hints and at least one is hinted for this node's zone."""
    if not zone:
        return False
    has_for_zone = False
    for ep in endpoints:
        if not ep.ready:
            continue
        if not ep.zone_hints:
            return False
        if zone in ep.zone_hints:
            has_for_zone = True
    return has_for_zone


def categorize_endpoints(endpoints: list[Endpoint], svc: ServicePortInfo, zone: str = "") -> Categorized:
    """Upstream CategorizeEndpoints: ready endpoints, else serving+terminating ones (separately
    for Cluster and Local policy); Local policy keeps only this node's endpoints."""
    cluster: list[Endpoint] = []
    local: list[Endpoint] = []
    has_any = False
    use_zone = False
    if svc.uses_cluster_endpoints:
        use_zone = _topology_zone(endpoints, zone)
        if use_zone:
            cluster = [ep for ep in endpoints if ep.ready and zone in ep.zone_hints]
        else:
            cluster = [ep for ep in endpoints if ep.ready]
        if not cluster:
            cluster = [ep for ep in endpoints if ep.serving and ep.terminating]
        has_any = bool(cluster)

    if not svc.uses_local_endpoints:
        return Categorized(cluster, [], cluster, has_any)

    local_ready = local_terminating = False
    for ep in endpoints:
        if ep.ready:
            has_any = True
            local_ready = local_ready or ep.is_local
        elif ep.serving and ep.terminating:
            has_any = True
            local_terminating = local_terminating or ep.is_local
    use_terminating = False
    if local_ready:
        local = [ep for ep in endpoints if ep.is_local and ep.ready]
    elif local_terminating:
        use_terminating = True
        local = [ep for ep in endpoints if ep.is_local and ep.serving and ep.terminating]

    if not svc.uses_cluster_endpoints:
        return Categorized([], local, local, has_any)
    if not use_zone and not use_terminating:
        # cluster then holds every ready endpoint, a superset of the local ones.
        return Categorized(cluster, local, cluster, has_any)
    merged = {ep.addr: ep for ep in cluster}
    for ep in local:
        merged[ep.addr] = ep
    return Categorized(cluster, local, sorted(merged.values(), key=lambda e: e.addr), has_any)
