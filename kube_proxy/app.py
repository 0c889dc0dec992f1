"""The kube-proxy daemon: informers on Services, EndpointSlices and this Node feed a proxier
(iptables, nftables or IPVS), whose rate-limited sync loop programs the host; a health server
(port 10256) reports stale syncs as upstream's healthz does, and /metrics carries upstream's
kubeproxy_* sync and network-programming histograms.

    opts = ProxyOptions(kubeconfig="kube-proxy.kubeconfig", hostname_override="node-a")
    run_daemon("kube-proxy", lambda stop: run_proxy(opts, stop))

Stopping the daemon leaves every rule in place (traffic keeps flowing while it is down); the
next start does a full sync that rewrites the chains atomically. `cleanup(opts)` (the
`--cleanup` flag) removes everything any proxy mode created.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from apimachinery.metrics import Registry
from client import APIClient, SharedInformerFactory, deleted_object, load_config
from client.daemon import HealthServer, new_registry
from kube_proxy.commands import (
    IPTABLES_BACKENDS,
    CommandError,
    CommandRunner,
    Iptables,
    SystemRunner,
    other_iptables_backend,
)
from kube_proxy.iptables import IptablesProxier
from kube_proxy.ipvs import SCHEDULERS, IpvsProxier, check_ipvs_available
from kube_proxy.model import LABEL_HEADLESS, LABEL_SERVICE_PROXY_NAME
from kube_proxy.podroutes import PodRouter, remove_peer_routes
from kube_proxy.provider import ProxierBase, SyncResult

log = logging.getLogger("kube-proxy")

PROXY_MODES = ("iptables", "nftables", "ipvs")
DEFAULT_HEALTHZ_PORT = 10256
# Upstream's informer selector: services handled by another proxy, and headless services'
# endpoints, are never even listed.
SERVICE_SELECTOR = f"!{LABEL_SERVICE_PROXY_NAME}"
ENDPOINTSLICE_SELECTOR = f"!{LABEL_SERVICE_PROXY_NAME},!{LABEL_HEADLESS}"


class ConfigError(ValueError):
    """Bad flags; the message is meant for the user."""


@dataclass
class ProxyOptions:
    """kube-proxy's flags (names as upstream's, in snake case)."""

    kubeconfig: str | None = None
    proxy_mode: str = "iptables"
    hostname_override: str = ""
    cluster_cidr: str = "10.244.0.0/16"
    # Not an upstream flag: routed to a local device and guarded, so service traffic never
    # reaches the uplink (see kube_proxy.guard). "" turns route and guard off.
    service_cluster_ip_range: str = "10.96.0.0/16"
    # CIDRs (or "primary") whose local addresses accept NodePorts; empty: every local address.
    nodeport_addresses: list[str] = field(default_factory=list)
    masquerade_all: bool = False
    masquerade_bit: int = 14
    ipvs_scheduler: str = "rr"
    iptables_backend: str = "system"  # a key of IPTABLES_BACKENDS
    min_sync_period: float = 1.0
    sync_period: float = 30.0
    healthz_bind_address: str = f"127.0.0.1:{DEFAULT_HEALTHZ_PORT}"
    metrics_bind_address: str = ""  # "" = served by the healthz server
    kube_api_qps: float = 5.0
    kube_api_burst: int = 10
    # The address pool of the LoadBalancer controller: routed locally and guarded like the
    # service CIDR so that load-balancer IPs never leave through the uplink.
    lb_pool: list[str] = field(default_factory=list)
    service_cidr_device: str = "kube-svc0"
    guard: bool = True
    # Not an upstream flag: routes to the other nodes' pod CIDRs (kube_proxy.podroutes).
    route_pod_cidrs: bool = False

    @property
    def node_name(self) -> str:
        return (self.hostname_override or socket.gethostname()).strip().lower()

    def validate(self) -> None:
        if self.proxy_mode not in PROXY_MODES:
            raise ConfigError(f"--proxy-mode must be one of {', '.join(PROXY_MODES)}, not {self.proxy_mode!r}")
        if self.ipvs_scheduler not in SCHEDULERS:
            raise ConfigError(f"--ipvs-scheduler must be one of {', '.join(SCHEDULERS)}")
        if self.iptables_backend not in IPTABLES_BACKENDS:
            raise ConfigError(f"--iptables-backend must be one of {', '.join(sorted(IPTABLES_BACKENDS))}")
        for name, value in (("--cluster-cidr", self.cluster_cidr),
                            ("--service-cluster-ip-range", self.service_cluster_ip_range), *(
                                ("--lb-pool", c) for c in self.lb_pool)):
            if value:
                _ipv4_network(name, value)
        for value in self.nodeport_addresses:
            if value != "primary":
                _ipv4_network("--nodeport-addresses", value)
        if self.min_sync_period < 0 or self.sync_period <= 0:
            raise ConfigError("--min-sync-period must be >= 0 and --sync-period > 0")
        if self.route_pod_cidrs and not self.cluster_cidr:
            raise ConfigError("--route-pod-cidrs needs --cluster-cidr: only pod CIDRs inside it are routed")
        if not 0 <= self.masquerade_bit <= 31:
            raise ConfigError("--iptables-masquerade-bit must be within 0..31")
        for flag, value in (("--healthz-bind-address", self.healthz_bind_address),
                            ("--metrics-bind-address", self.metrics_bind_address)):
            if value:
                split_host_port(value, flag)


def _ipv4_network(flag: str, value: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError as exc:
        raise ConfigError(f"{flag}: {exc}") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise ConfigError(f"{flag}: only IPv4 is supported ({value})")
    return net


def split_host_port(value: str, flag: str = "address") -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{flag}: want host:port, got {value!r}")
    return host or "0.0.0.0", int(port)


# ---------------------------------------------------------------------------------------------
# Node addresses


def node_addresses(node: dict[str, Any] | None) -> list[str]:
    """The node's IPv4 InternalIPs, then ExternalIPs (upstream's node IP detection)."""
    found: list[str] = []
    for wanted in ("InternalIP", "ExternalIP"):
        for addr in ((node or {}).get("status") or {}).get("addresses") or []:
            ip = addr.get("address") or ""
            if addr.get("type") == wanted and ip not in found:
                with contextlib.suppress(ValueError):
                    if isinstance(ipaddress.ip_address(ip), ipaddress.IPv4Address):
                        found.append(ip)
    return found


def resolve_nodeport_addresses(
    specs: Sequence[str], node_ips: Sequence[str], local_ips: Sequence[str]
) -> list[str] | None:
    """--nodeport-addresses → the local IPs NodePorts answer on (None = every local address).

    Each spec is a CIDR selecting local addresses, or "primary" for the node's own IPs, as
    upstream. Loopback CIDRs select 127.0.0.1 (localhost NodePorts)."""
    if not specs:
        return None
    chosen: list[str] = []
    for spec in specs:
        if spec == "primary":
            candidates = list(node_ips)
        else:
            net = ipaddress.ip_network(spec, strict=False)
            candidates = [ip for ip in (*local_ips, "127.0.0.1") if ipaddress.ip_address(ip) in net]
        for ip in candidates:
            if ip not in chosen:
                chosen.append(ip)
    return chosen


async def local_ipv4_addresses(runner: CommandRunner) -> list[str]:
    result = await runner.run(["ip", "-o", "-4", "addr", "show"])
    found = []
    for line in result.stdout.splitlines():
        parts = line.split()
        if "inet" in parts:
            ip = parts[parts.index("inet") + 1].split("/")[0]
            if ip not in found:
                found.append(ip)
    return found


# ---------------------------------------------------------------------------------------------
# Health and metrics


class ProxierHealth:
    """Upstream's ProxierHealthServer logic: healthy while starting up and while no queued
    update has waited longer than `timeout` (2 × sync period) for a successful sync."""

    def __init__(self, timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self.clock = clock
        self.oldest_pending: float | None = None
        self.last_updated: float | None = None

    def queued(self) -> None:
        if self.oldest_pending is None:
            self.oldest_pending = self.clock()

    def updated(self) -> None:
        self.last_updated = self.clock()
        self.oldest_pending = None

    def healthy(self) -> bool:
        return self.oldest_pending is None or self.clock() - self.oldest_pending < self.timeout


# Upstream's buckets: sync durations exponential from 1 ms, programming latency 0.25 s steps
# up to 1 s, 1 s steps up to 5 s, then coarser.
SYNC_BUCKETS = tuple(0.001 * 2**i for i in range(15))
PROGRAMMING_BUCKETS = (0.25, 0.5, 0.75, 1, 2, 3, 4, 5, 10, 15, 20, 25, 30, 45, 60, 90, 120, 180, 240, 300)


class ProxyMetrics:
    """kubeproxy_* metrics as upstream names them, plus the split between the rule tool and Python."""

    def __init__(self, registry: Registry) -> None:
        r = registry
        self.sync_duration = r.histogram(
            "kubeproxy_sync_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds", buckets=SYNC_BUCKETS
        )
        self.full_sync_duration = r.histogram(
            "kubeproxy_sync_full_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds for full resyncs",
            buckets=SYNC_BUCKETS,
        )
        self.partial_sync_duration = r.histogram(
            "kubeproxy_sync_partial_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for partial resyncs", buckets=SYNC_BUCKETS,
        )
        self.restore_duration = r.histogram(
            "kubeproxy_sync_proxy_rules_restore_duration_seconds",
            "Seconds of each sync spent in the rule-loading tool (iptables-restore, nft, ipvsadm-restore)",
            buckets=SYNC_BUCKETS,
        )
        self.network_programming = r.histogram(
            "kubeproxy_network_programming_duration_seconds",
            "In Cluster Network Programming Latency in seconds", buckets=PROGRAMMING_BUCKETS,
        )
        self.last_sync = r.gauge(
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds", "The last time proxy rules were successfully synced"
        )
        self.last_queued = r.gauge(
            "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
            "The last time a sync of proxy rules was queued",
        )
        self.restore_failures = r.counter(
            "kubeproxy_sync_proxy_rules_iptables_restore_failures_total",
            "Cumulative proxy rules restore failures",
        )
        self.payload_bytes = r.gauge(
            "kubeproxy_sync_proxy_rules_payload_bytes", "Size of the last rule payload written, in bytes"
        )
        self.service_changes = r.counter(
            "kubeproxy_sync_proxy_rules_service_changes_total", "Cumulative proxy rules Service changes"
        )
        self.endpoint_changes = r.counter(
            "kubeproxy_sync_proxy_rules_endpoint_changes_total", "Cumulative proxy rules Endpoint changes"
        )

    def observe(self, result: SyncResult) -> None:
        if result.skipped:
            return
        if not result.ok:
            self.restore_failures.inc()
            return
        self.sync_duration.observe(result.seconds)
        (self.partial_sync_duration if result.partial else self.full_sync_duration).observe(result.seconds)
        self.restore_duration.observe(result.restore_seconds)
        for latency in result.network_programming_seconds:
            self.network_programming.observe(latency)
        self.last_sync.set(time.time())
        self.payload_bytes.set(result.payload_bytes)


# ---------------------------------------------------------------------------------------------
# Proxier construction


def build_proxier(
    opts: ProxyOptions,
    node_ips: Sequence[str],
    node_labels: dict[str, str] | None = None,
    nodeport_ips: Sequence[str] | None = None,
    runner: CommandRunner | None = None,
) -> ProxierBase:
    """The proxier for --proxy-mode (IPVS availability is checked by the caller)."""
    common: dict[str, Any] = {
        "cluster_cidr": opts.cluster_cidr or None,
        "service_cidr": opts.service_cluster_ip_range or None,
        "masquerade_all": opts.masquerade_all,
        "min_sync_period": opts.min_sync_period,
        "sync_period": opts.sync_period,
        "runner": runner,
    }
    iptables_binary = IPTABLES_BACKENDS[opts.iptables_backend]
    if opts.proxy_mode == "ipvs":
        return IpvsProxier(
            opts.node_name, node_ips, **common, scheduler=opts.ipvs_scheduler, masquerade_bit=opts.masquerade_bit,
            guard=opts.guard, node_labels=node_labels, iptables_binary=iptables_binary,
        )
    if opts.proxy_mode == "nftables":
        from kube_proxy.nftables import NftablesProxier

        return NftablesProxier(
            opts.node_name, node_ips, **common, nodeport_addresses=nodeport_ips, masquerade_bit=opts.masquerade_bit,
            service_cidr_device=opts.service_cidr_device, guard=opts.guard, node_labels=node_labels,
            local_cidrs=opts.lb_pool, iptables_binary=iptables_binary,
        )
    return IptablesProxier(
        opts.node_name, node_ips, **common, nodeport_addresses=nodeport_ips, masquerade_bit=opts.masquerade_bit,
        service_cidr_device=opts.service_cidr_device, guard=opts.guard, node_labels=node_labels,
        local_cidrs=opts.lb_pool, iptables_binary=iptables_binary,
    )


async def ensure_mode_available(opts: ProxyOptions, runner: CommandRunner | None = None) -> None:
    """Exit (SystemExit with the reason) when the chosen mode cannot work on this host."""
    if opts.proxy_mode == "ipvs":
        available = await check_ipvs_available(runner)
        if not available.ok:
            raise SystemExit(f"kube-proxy: {available.reason}")


async def cleanup(opts: ProxyOptions, runner: CommandRunner | None = None) -> list[str]:
    """--cleanup: remove what every proxy mode creates (chains, hooks, nftables table, IPVS
    virtual servers and interface, guard, service-CIDR route and device). Returns errors."""
    runner = runner or SystemRunner()
    errors: list[str] = []
    opts = ProxyOptions(**{**opts.__dict__, "proxy_mode": "iptables"})
    errors += await build_proxier(opts, [], runner=runner).cleanup()
    # rules a run with the other kernel backend left (an earlier --iptables-backend): removed too
    other = await other_iptables_backend(runner, IPTABLES_BACKENDS[opts.iptables_backend])
    if await _has_kube_chains(runner, other):
        backend = {binary: name for name, binary in IPTABLES_BACKENDS.items() if name != "system"}[other]
        other_opts = ProxyOptions(**{**opts.__dict__, "iptables_backend": backend})
        errors += await build_proxier(other_opts, [], runner=runner).cleanup()
    from kube_proxy.nftables import cleanup_nftables

    errors += await cleanup_nftables(runner)
    ipvs = build_proxier(ProxyOptions(**{**opts.__dict__, "proxy_mode": "ipvs"}), [], runner=runner)
    # Without IPVS in the kernel only the iptables part can exist; ipvsadm errors are expected.
    ipvs_errors = await ipvs.cleanup()
    errors += [e for e in ipvs_errors if not e.startswith("ipvsadm")]
    try:
        await remove_peer_routes(runner)
    except (CommandError, OSError, ValueError) as exc:
        errors.append(f"pod routes: {exc}")
    return errors


async def _has_kube_chains(runner: CommandRunner, binary: str) -> bool:
    """Whether `binary`-save lists KUBE- chains. No -t: then legacy iptables-save dumps only
    the tables that exist, loading no kernel module."""
    result = await runner.run([f"{binary}-save"])
    return result.ok and ":KUBE-" in result.stdout


async def cleanup_other_modes(opts: ProxyOptions, runner: CommandRunner) -> None:
    """At start, remove what the other modes (and the other iptables backend) left behind, as
    upstream does, keeping our own mode's rules so that traffic keeps flowing until the first
    sync replaces them."""
    ours = IPTABLES_BACKENDS[opts.iptables_backend]
    other = await other_iptables_backend(runner, ours)
    if opts.proxy_mode != "nftables":
        from kube_proxy.nftables import cleanup_nftables

        for error in await cleanup_nftables(runner):
            log.warning("cleaning up nftables leftovers: %s", error)
        if await _has_kube_chains(runner, other):
            await _remove_iptables_leftovers(Iptables(runner, other), keep_guard=False)
    else:
        # The guard (shared by every mode) stays: its counters must survive restarts.
        await _remove_iptables_leftovers(Iptables(runner, ours), keep_guard=True)
        if await _has_kube_chains(runner, other):
            await _remove_iptables_leftovers(Iptables(runner, other), keep_guard=False)


async def _remove_iptables_leftovers(iptables: Iptables, keep_guard: bool) -> None:
    from kube_proxy.chains import leftover_cleanup_payload
    from kube_proxy.guard import GUARD_CHAIN

    for table in ("nat", "filter"):
        try:
            saved = "\n".join(line for line in (await iptables.save(table)).splitlines()
                              if not (keep_guard and GUARD_CHAIN in line))
            payload = leftover_cleanup_payload(table, saved)
            if payload:
                await iptables.restore(payload)
        except Exception as exc:
            log.warning("cleaning up %s leftovers in %s: %s", iptables.binary, table, exc)


# ---------------------------------------------------------------------------------------------
# The daemon


class ProxyServer:
    """Wires informers → proxier → sync loop, with health and metrics."""

    def __init__(self, opts: ProxyOptions, api: APIClient, runner: CommandRunner | None = None,
                 registry: Registry | None = None) -> None:
        self.opts = opts
        self.api = api
        self.runner = runner or SystemRunner()
        self.registry = registry or new_registry()
        self.metrics = ProxyMetrics(self.registry)
        self.health = ProxierHealth(2 * opts.sync_period)
        self.factory = SharedInformerFactory(api)
        self.proxier: ProxierBase | None = None
        self.router: PodRouter | None = None
        self._all_nodes: Any = None  # the informer of every Node (with --route-pod-cidrs)
        self.synced = False

    # -- handlers ---------------------------------------------------------------------------
    def _queued(self) -> None:
        proxier = self.proxier
        if proxier is not None and proxier.initialized and proxier.state.has_pending_changes():
            self.health.queued()
            self.metrics.last_queued.set(time.time())

    def _on_service(self, old: dict | None, new: dict | None) -> None:
        assert self.proxier is not None
        self.metrics.service_changes.inc()
        self.proxier.on_service_update(old, new)
        self._queued()

    def _on_slice(self, old: dict | None, new: dict | None) -> None:
        assert self.proxier is not None
        self.metrics.endpoint_changes.inc()
        self.proxier.on_endpointslice_update(old, new)
        self._queued()

    def _on_node(self, node: dict | None) -> None:
        if self.proxier is not None and node is not None:
            self.proxier.on_node_labels(dict((node.get("metadata") or {}).get("labels") or {}))

    def _on_sync(self, result: SyncResult) -> None:
        self.metrics.observe(result)
        if result.ok and not result.skipped:
            self.health.updated()
            level = logging.DEBUG if result.partial else logging.INFO
            log.log(level, "synced proxy rules (%s) in %.3fs, %.3fs in the rule tool, %d bytes",
                    "partial" if result.partial else "full", result.seconds, result.restore_seconds,
                    result.payload_bytes)

    # -- lifecycle --------------------------------------------------------------------------
    async def _node_info(self) -> tuple[list[str], dict[str, str]]:
        nodes = self.factory.informer("v1", "nodes", field_selector=f"metadata.name={self.opts.node_name}")
        nodes.add_handler(self._on_node, lambda _old, new: self._on_node(new), None)
        nodes.start()
        await nodes.wait_synced()
        node = next(iter(nodes.store.list()), None)
        if node is None:
            log.warning("node %s not found: assuming 127.0.0.1 as its IP", self.opts.node_name)
            return ["127.0.0.1"], {}
        ips = node_addresses(node) or ["127.0.0.1"]
        return ips, dict((node.get("metadata") or {}).get("labels") or {})

    async def setup(self) -> ProxierBase:
        opts = self.opts
        node_ips, labels = await self._node_info()
        nodeport_ips = resolve_nodeport_addresses(
            opts.nodeport_addresses, node_ips, await local_ipv4_addresses(self.runner)
        )
        await cleanup_other_modes(opts, self.runner)
        proxier = build_proxier(opts, node_ips, labels, nodeport_ips, self.runner)
        proxier.on_sync = self._on_sync
        self.proxier = proxier
        if opts.route_pod_cidrs:
            guard = getattr(proxier, "guard", None)
            if guard is not None:
                guard.peer_exemption = True
            all_nodes = self.factory.informer("v1", "nodes")
            router = PodRouter(self.runner, opts.node_name, opts.cluster_cidr, all_nodes.store.list,
                               lambda: local_ipv4_addresses(self.runner))
            all_nodes.add_handler(lambda _obj: router.queue(), lambda _old, _new: router.queue(),
                                  lambda _obj: router.queue())
            self.router = router
            self._all_nodes = all_nodes
        log.info("kube-proxy on node %s: mode %s, node IPs %s", opts.node_name, opts.proxy_mode, node_ips)

        services = self.factory.informer("v1", "services", label_selector=SERVICE_SELECTOR)
        slices = self.factory.informer("discovery.k8s.io/v1", "endpointslices", label_selector=ENDPOINTSLICE_SELECTOR)
        svc_reg = services.add_handler(
            lambda obj: self._on_service(None, obj), self._on_service,
            lambda obj: self._on_service(deleted_object(obj), None),
        )
        slice_reg = slices.add_handler(
            lambda obj: self._on_slice(None, obj), self._on_slice,
            lambda obj: self._on_slice(deleted_object(obj), None),
        )
        self.factory.start()

        async def mark_synced() -> None:
            await svc_reg.wait_synced()
            proxier.on_services_synced()
            await slice_reg.wait_synced()
            proxier.on_endpointslices_synced()
            self.synced = True

        self._synced_task = asyncio.create_task(mark_synced(), name="kube-proxy informers synced")
        return proxier

    async def _route_pod_cidrs(self, stop: asyncio.Event) -> None:
        assert self.router is not None
        # not before every Node is known: an empty list would remove the routes pods use now
        await self._all_nodes.wait_synced()
        await self.router.run(stop)

    async def run(self, stop: asyncio.Event) -> None:
        opts = self.opts
        proxier = await self.setup()
        servers = [_health_server(opts.healthz_bind_address, self.registry)]
        servers[0].add_liveness("proxier", self.health.healthy)
        servers[0].add_readiness("informers-synced", lambda: self.synced)
        servers[0].add_readiness("synced-once", lambda: proxier.sync_count > 0)
        if opts.metrics_bind_address and opts.metrics_bind_address != opts.healthz_bind_address:
            servers.append(_health_server(opts.metrics_bind_address, self.registry))
        for server in servers:
            await server.start()
        loop = asyncio.create_task(proxier.run(), name="kube-proxy sync loop")
        routes = asyncio.create_task(self._route_pod_cidrs(stop), name="kube-proxy pod routes") if self.router else None
        try:
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({loop, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if loop.done():
                loop.result()  # a crashed sync loop is a crashed kube-proxy
        finally:
            # Rules stay in place: traffic keeps flowing while kube-proxy is down.
            proxier.stop()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(loop, 10)
            self._synced_task.cancel()
            if routes is not None:  # the routes themselves stay: pods keep reaching each other
                routes.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await routes
            await self.factory.stop()
            for server in servers:
                await server.stop()


def _health_server(address: str, registry: Registry) -> HealthServer:
    host, port = split_host_port(address)
    return HealthServer(port, registry, bind=host)


async def run_proxy(opts: ProxyOptions, stop: asyncio.Event, runner: CommandRunner | None = None) -> None:
    """The daemon's main(stop): runs until `stop` is set."""
    opts.validate()
    # The kernel check comes first: without IPVS nothing else matters.
    await ensure_mode_available(opts, runner)
    try:
        config = load_config(opts.kubeconfig, qps=opts.kube_api_qps, burst=opts.kube_api_burst,
                             user_agent="kube-proxy/minik8s")
    except Exception as exc:
        raise SystemExit(f"kube-proxy: {exc}") from None
    async with APIClient(config) as api:  # follows a renewed client certificate (a joined node's is the kubelet's)
        await ProxyServer(opts, api, runner).run(stop)


__all__ = [
    "ConfigError",
    "ProxierHealth",
    "ProxyMetrics",
    "ProxyOptions",
    "ProxyServer",
    "build_proxier",
    "cleanup",
    "node_addresses",
    "resolve_nodeport_addresses",
    "run_proxy",
]
