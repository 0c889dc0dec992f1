"""The IPVS proxier (upstream pkg/proxy/ipvs/proxier.go, written anew).

Virtual servers per service IP:port (cluster IP, external IPs, load-balancer IPs, and every
node IP for NodePorts) with the configured scheduler; one real server per endpoint; service
addresses bound to a local interface (kube-ipvs0; its link type is configurable because this
kernel has no dummy links: "ifb" works the same for this purpose). IPVS changes are applied as
one `ipvsadm-restore` input computed as a diff against `ipvsadm -Ln`.

iptables is used only for masquerading, NodePort marking, source-range firewalling and access
filtering. Upstream matches ipsets there; ipset is not installed on these machines, so the
same matches are written as one plain rule per entry (same chains, same order).

This kernel has no IPVS at all: check_ipvs_available() reports that, and callers should exit
naming iptables mode as the fallback.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from kube_proxy.chains import (
    KUBE_FORWARD,
    KUBE_IPVS_FILTER,
    KUBE_IPVS_OUT_FILTER,
    KUBE_LOAD_BALANCER,
    KUBE_MARK_MASQ,
    KUBE_NODE_PORT,
    KUBE_POSTROUTING,
    KUBE_PROXY_FIREWALL,
    KUBE_SERVICES,
    KUBE_SOURCE_RANGES_FIREWALL,
    JumpChain,
    cleanup_leftovers,
)
from kube_proxy.commands import CommandError, CommandRunner, Conntrack, IpCommand, Iptables, SystemRunner
from kube_proxy.conntrack import clean_stale_entries
from kube_proxy.guard import HostNetworkGuard
from kube_proxy.model import Endpoint, ProxyState, UpdateResult
from kube_proxy.provider import ProxierBase, SyncResult, programming_latencies

log = logging.getLogger(__name__)

SCHEDULERS = ("rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh")
DEFAULT_INTERFACE = "kube-ipvs0"
PROTOCOL_FLAGS = {"TCP": "-t", "UDP": "-u", "SCTP": "--sctp-service"}
IPVS_SYSCTLS = (
    ("net.ipv4.vs.conntrack", "1"),  # let iptables (masquerade) see IPVS-forwarded packets
    ("net.ipv4.vs.expire_nodest_conn", "1"),
    ("net.ipv4.vs.expire_quiescent_template", "1"),
)

IPVS_JUMP_CHAINS = (
    JumpChain("nat", "OUTPUT", KUBE_SERVICES, "kubernetes service portals"),
    JumpChain("nat", "PREROUTING", KUBE_SERVICES, "kubernetes service portals"),
    JumpChain("nat", "POSTROUTING", KUBE_POSTROUTING, "kubernetes postrouting rules"),
    JumpChain("filter", "FORWARD", KUBE_FORWARD, "kubernetes forwarding rules"),
    JumpChain("filter", "INPUT", KUBE_NODE_PORT, "kubernetes health check rules"),
    JumpChain("filter", "INPUT", KUBE_PROXY_FIREWALL, "kube-proxy firewall rules"),
    JumpChain("filter", "FORWARD", KUBE_PROXY_FIREWALL, "kube-proxy firewall rules"),
    JumpChain("filter", "INPUT", KUBE_IPVS_FILTER, "kubernetes ipvs access filter"),
    JumpChain("filter", "OUTPUT", KUBE_IPVS_OUT_FILTER, "kubernetes ipvs access filter"),
)


# ---------------------------------------------------------------------------------------------
# Availability


@dataclass
class IpvsAvailability:
    ok: bool
    reason: str = ""


async def check_ipvs_available(
    runner: CommandRunner | None = None, proc_path: str = "/proc/net/ip_vs"
) -> IpvsAvailability:
    """Detect kernel IPVS support: /proc/net/ip_vs must exist and `ipvsadm -Ln` must work.
    On failure the reason names iptables mode as the fallback."""
    runner = runner or SystemRunner()
    fallback = "; IPVS proxy mode cannot run here, use --proxy-mode=iptables"
    result = await runner.run(["ipvsadm", "-Ln"])
    if result.returncode == 127:
        return IpvsAvailability(False, "ipvsadm is not installed (apt-get install ipvsadm)" + fallback)
    text = (result.stderr + result.stdout).strip()
    if not result.ok:
        if "Protocol not available" in text:
            return IpvsAvailability(
                False, "the kernel has no IPVS support (ipvsadm: Protocol not available)" + fallback
            )
        return IpvsAvailability(False, f"ipvsadm -Ln failed: {text}" + fallback)
    if runner.read_file(proc_path) is None:
        return IpvsAvailability(False, f"{proc_path} is missing: the kernel has no IPVS support" + fallback)
    return IpvsAvailability(True)


# ---------------------------------------------------------------------------------------------
# IPVS state and ipvsadm-restore input

VsKey = tuple[str, str, int]  # (protocol, address, port)
RsKey = tuple[str, int]  # (address, port)


@dataclass
class VirtualServer:
    protocol: str  # "TCP" | "UDP" | "SCTP"
    address: str
    port: int
    scheduler: str = "rr"
    persistent: int = 0  # seconds of ClientIP affinity; 0 = none
    real_servers: dict[RsKey, int] = field(default_factory=dict)  # (ip, port) -> weight

    @property
    def key(self) -> VsKey:
        return (self.protocol, self.address, self.port)

    def spec(self) -> str:
        return f"{PROTOCOL_FLAGS[self.protocol]} {self.address}:{self.port}"

    def options(self) -> str:
        return f"-s {self.scheduler}" + (f" -p {self.persistent}" if self.persistent else "")


@dataclass
class RealServerConns:
    weight: int
    active: int
    inactive: int


def parse_ipvsadm_list(
    text: str,
) -> tuple[dict[VsKey, VirtualServer], dict[tuple[VsKey, RsKey], RealServerConns]]:
    """Parse `ipvsadm -Ln`: virtual servers with their real servers, and per real server the
    weight and connection counts (for graceful termination)."""
    services: dict[VsKey, VirtualServer] = {}
    conns: dict[tuple[VsKey, RsKey], RealServerConns] = {}
    current: VirtualServer | None = None
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] in ("TCP", "UDP", "SCTP") and len(parts) >= 3:
            address, _, port = parts[1].rpartition(":")
            persistent = 0
            if "persistent" in parts:
                persistent = int(parts[parts.index("persistent") + 1])
            current = VirtualServer(parts[0], address, int(port), parts[2], persistent)
            services[current.key] = current
        elif parts[0] == "->" and current is not None and len(parts) >= 6 and parts[1][0].isdigit():
            address, _, port = parts[1].rpartition(":")
            rs = (address, int(port))
            weight, active, inactive = int(parts[3]), int(parts[4]), int(parts[5])
            current.real_servers[rs] = weight
            conns[(current.key, rs)] = RealServerConns(weight, active, inactive)
    return services, conns


def ipvsadm_restore_payload(
    desired: dict[VsKey, VirtualServer],
    current: dict[VsKey, VirtualServer],
    conns: dict[tuple[VsKey, RsKey], RealServerConns] | None = None,
) -> tuple[str, set[tuple[VsKey, RsKey]]]:
    """ipvsadm-restore input that turns `current` into `desired`.

    Removed TCP real servers that still have connections are not deleted but set to weight 0
    (upstream's graceful termination); they are returned so the caller can retry later.
    UDP/SCTP real servers go at once (expire_nodest_conn drops their flows)."""
    conns = conns or {}
    lines: list[str] = []
    draining: set[tuple[VsKey, RsKey]] = set()
    for key, vs in sorted(current.items()):
        if key not in desired:
            lines.append(f"-D {vs.spec()}")
            continue
        want = desired[key]
        for rs, weight in sorted(vs.real_servers.items()):
            if rs in want.real_servers:
                continue
            c = conns.get((key, rs))
            if vs.protocol == "TCP" and c is not None and c.active + c.inactive > 0:
                draining.add((key, rs))
                if weight != 0:
                    lines.append(f"-e {vs.spec()} -r {rs[0]}:{rs[1]} -m -w 0")
            else:
                lines.append(f"-d {vs.spec()} -r {rs[0]}:{rs[1]}")
    for key, vs in sorted(desired.items()):
        have = current.get(key)
        if have is None:
            lines.append(f"-A {vs.spec()} {vs.options()}")
        elif (have.scheduler, have.persistent) != (vs.scheduler, vs.persistent):
            lines.append(f"-E {vs.spec()} {vs.options()}")
        existing = have.real_servers if have is not None else {}
        for rs, weight in sorted(vs.real_servers.items()):
            if rs not in existing:
                lines.append(f"-a {vs.spec()} -r {rs[0]}:{rs[1]} -m -w {weight}")
            elif existing[rs] != weight:
                lines.append(f"-e {vs.spec()} -r {rs[0]}:{rs[1]} -m -w {weight}")
    return ("\n".join(lines) + "\n") if lines else "", draining


# ---------------------------------------------------------------------------------------------
# Desired state


@dataclass
class IpvsConfig:
    cluster_cidr: str | None = "10.244.0.0/16"
    masquerade_all: bool = False
    masquerade_bit: int = 14
    scheduler: str = "rr"
    node_ips: Sequence[str] = ()
    forward_pod_cidr: bool = True

    @property
    def masquerade_mark(self) -> str:
        return hex(1 << self.masquerade_bit)


@dataclass
class IpvsDesired:
    virtual_servers: dict[VsKey, VirtualServer]
    bind_addresses: set[str]
    iptables_payload: str


def _rule(chain: str, *parts: str) -> str:
    return " ".join(("-A", chain, *[p for p in parts if p]))


class IpvsRuleBuilder:
    """Turns a ProxyState into IPVS virtual servers, addresses to bind and the iptables
    payload. Pure: no I/O."""

    def __init__(self, config: IpvsConfig) -> None:
        if config.scheduler not in SCHEDULERS:
            raise ValueError(f"unknown IPVS scheduler {config.scheduler!r}; one of {', '.join(SCHEDULERS)}")
        self.config = config
        self._node_ips = [ip for ip in config.node_ips if not ipaddress.ip_address(ip).is_loopback]

    def _vs(
        self, protocol: str, address: str, port: int, persistent: int, eps: list[Endpoint]
    ) -> VirtualServer:
        vs = VirtualServer(protocol, address, port, self.config.scheduler, persistent)
        vs.real_servers = {(ep.ip, ep.port): 1 for ep in eps}
        return vs

    def build(self, state: ProxyState) -> IpvsDesired:
        cfg = self.config
        mark = cfg.masquerade_mark
        cidr = cfg.cluster_cidr
        services: dict[VsKey, VirtualServer] = {}
        bind: set[str] = set()
        node_ips = set(self._node_ips)

        svc_rules: list[str] = [_rule(KUBE_SERVICES, "-s 127.0.0.0/8", "-j RETURN")]
        ext_rules: list[str] = []
        lb_rules: list[str] = []
        accept_rules: list[str] = []
        np_local: list[str] = []
        np_masq: list[str] = []
        loopback: list[str] = []
        fw_jumps: list[str] = []
        source_ranges: list[str] = []
        out_filter: list[str] = []
        ipvs_filter: list[str] = []
        health: list[str] = []

        for svc in state.services.values():
            proto = svc.protocol.lower()
            name = svc.name
            match = f"-p {proto} -m {proto}"
            dport = f"--dport {svc.port}"
            cat = state.categorize(svc)
            persistent = svc.sticky_seconds if svc.session_affinity_client_ip else 0

            # Hairpin: a local endpoint reaching its own service is masqueraded (KUBE-LOOP-BACK).
            for ep in state.endpoints.get(svc.key, []):
                if ep.is_local:
                    loopback.append(
                        _rule(
                            KUBE_POSTROUTING,
                            f"-s {ep.ip} -d {ep.ip}",
                            f"{match} --dport {ep.port}",
                            "-j MASQUERADE",
                        )
                    )

            # Internal (cluster IP) traffic: Local policy uses local endpoints, falling back to
            # all of them (upstream: pods may still reach the service, pull 97081).
            internal = cat.local if svc.internal_policy_local and cat.local else cat.cluster
            external = cat.local if svc.external_policy_local and cat.local else cat.cluster

            vs = self._vs(svc.protocol, svc.cluster_ip, svc.port, persistent, internal)
            services[vs.key] = vs
            bind.add(svc.cluster_ip)
            comment = f'-m comment --comment "{name} cluster IP"'
            if cfg.masquerade_all:
                svc_rules.append(
                    _rule(
                        KUBE_SERVICES, comment, f"-d {svc.cluster_ip}", match, dport, f"-j {KUBE_MARK_MASQ}"
                    )
                )
            elif cidr:
                svc_rules.append(
                    _rule(
                        KUBE_SERVICES,
                        comment,
                        f"-d {svc.cluster_ip}",
                        match,
                        dport,
                        f"! -s {cidr}",
                        f"-j {KUBE_MARK_MASQ}",
                    )
                )
            else:
                # No way to tell pods from others: masquerade node traffic sourced from a VIP.
                svc_rules.append(
                    _rule(
                        KUBE_SERVICES, comment, f"-s {svc.cluster_ip}", match, dport, f"-j {KUBE_MARK_MASQ}"
                    )
                )
            accept_rules.append(_rule(KUBE_SERVICES, f"-d {svc.cluster_ip}", match, dport, "-j ACCEPT"))
            ipvs_filter.append(_rule(KUBE_IPVS_FILTER, f"-d {svc.cluster_ip}", match, dport, "-j RETURN"))

            for ip in svc.external_ips:
                vs = self._vs(svc.protocol, ip, svc.port, persistent, external)
                services[vs.key] = vs
                if ip not in node_ips:  # never take over an address another interface owns
                    bind.add(ip)
                head = (f'-m comment --comment "{name} external IP"', f"-d {ip}", match, dport)
                if not svc.external_policy_local:
                    ext_rules.append(_rule(KUBE_SERVICES, *head, f"-j {KUBE_MARK_MASQ}"))
                ext_rules.append(
                    _rule(
                        KUBE_SERVICES,
                        *head,
                        "-m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL",
                        "-j ACCEPT",
                    )
                )
                ext_rules.append(_rule(KUBE_SERVICES, *head, "-m addrtype --dst-type LOCAL", "-j ACCEPT"))
                ipvs_filter.append(_rule(KUBE_IPVS_FILTER, f"-d {ip}", match, dport, "-j RETURN"))

            for ip in svc.load_balancer_ips:
                vs = self._vs(svc.protocol, ip, svc.port, persistent, external)
                services[vs.key] = vs
                if ip not in node_ips:
                    bind.add(ip)
                lb_match = (f"-d {ip}", match, dport)
                svc_rules.append(
                    _rule(
                        KUBE_SERVICES,
                        f'-m comment --comment "{name} loadbalancer IP"',
                        *lb_match,
                        f"-j {KUBE_LOAD_BALANCER}",
                    )
                )
                if svc.external_policy_local:
                    lb_rules.append(_rule(KUBE_LOAD_BALANCER, *lb_match, "-j RETURN"))
                accept_rules.append(_rule(KUBE_SERVICES, *lb_match, "-j ACCEPT"))
                ipvs_filter.append(_rule(KUBE_IPVS_FILTER, *lb_match, "-j RETURN"))
                if svc.load_balancer_source_ranges:
                    fw_jumps.append(
                        _rule(KUBE_PROXY_FIREWALL, *lb_match, f"-j {KUBE_SOURCE_RANGES_FIREWALL}")
                    )
                    allow_from_node = False
                    for source in svc.load_balancer_source_ranges:
                        source_ranges.append(
                            _rule(KUBE_SOURCE_RANGES_FIREWALL, *lb_match, f"-s {source}", "-j RETURN")
                        )
                        net = ipaddress.ip_network(source, strict=False)
                        if any(ipaddress.ip_address(n) in net for n in self._node_ips):
                            allow_from_node = True
                    if allow_from_node:
                        source_ranges.append(
                            _rule(KUBE_SOURCE_RANGES_FIREWALL, *lb_match, f"-s {ip}", "-j RETURN")
                        )
                    else:
                        # The node itself is not allowed: block node → LB IP (both ends are the LB IP).
                        out_filter.append(
                            _rule(
                                KUBE_IPVS_OUT_FILTER,
                                f"-s {ip}",
                                f"-m ipvs --vaddr {ip} --vproto {proto} --vport {svc.port}",
                                "-j DROP",
                            )
                        )

            if svc.node_port and self._node_ips:
                for ip in self._node_ips:
                    vs = self._vs(svc.protocol, ip, svc.node_port, persistent, external)
                    services[vs.key] = vs
                np = f"-p {proto} -m {proto} --dport {svc.node_port}"
                if svc.external_policy_local:
                    np_local.append(_rule(KUBE_NODE_PORT, np, "-j RETURN"))
                np_masq.append(_rule(KUBE_NODE_PORT, np, f"-j {KUBE_MARK_MASQ}"))

            if svc.health_check_node_port:
                hc = f"-p tcp -m tcp --dport {svc.health_check_node_port}"
                health.append(
                    _rule(
                        KUBE_NODE_PORT,
                        f'-m comment --comment "{name} health check node port"',
                        hc,
                        "-j ACCEPT",
                    )
                )
                ipvs_filter.append(_rule(KUBE_IPVS_FILTER, hc, "-j RETURN"))

        # Anything else to a bound service address (e.g. an unserved port) is rejected.
        for ip in sorted(bind):
            ipvs_filter.append(_rule(KUBE_IPVS_FILTER, "-m conntrack --ctstate NEW", f"-d {ip}", "-j REJECT"))

        nat = ["*nat"]
        nat += [
            f":{c} - [0:0]"
            for c in (KUBE_SERVICES, KUBE_POSTROUTING, KUBE_NODE_PORT, KUBE_LOAD_BALANCER, KUBE_MARK_MASQ)
        ]
        nat += loopback
        nat += svc_rules
        nat += ext_rules
        nat += np_local  # Local NodePorts must RETURN before the masquerade rules
        nat += np_masq
        nat += lb_rules
        nat.append(_rule(KUBE_SERVICES, "-m addrtype --dst-type LOCAL", f"-j {KUBE_NODE_PORT}"))
        nat.append(_rule(KUBE_LOAD_BALANCER, f"-j {KUBE_MARK_MASQ}"))
        nat += accept_rules  # accept IPVS traffic: must be last in KUBE-SERVICES
        nat += [
            _rule(KUBE_POSTROUTING, f"-m mark ! --mark {mark}/{mark}", "-j RETURN"),
            _rule(KUBE_POSTROUTING, f"-j MARK --xor-mark {mark}"),
            _rule(
                KUBE_POSTROUTING,
                '-m comment --comment "kubernetes service traffic requiring SNAT"',
                "-j MASQUERADE --random-fully",
            ),
            _rule(KUBE_MARK_MASQ, f"-j MARK --or-mark {mark}"),
            "COMMIT",
        ]

        filt = ["*filter"]
        filt += [
            f":{c} - [0:0]"
            for c in (
                KUBE_FORWARD,
                KUBE_NODE_PORT,
                KUBE_PROXY_FIREWALL,
                KUBE_SOURCE_RANGES_FIREWALL,
                KUBE_IPVS_FILTER,
                KUBE_IPVS_OUT_FILTER,
            )
        ]
        filt += fw_jumps
        filt += source_ranges
        filt.append(_rule(KUBE_SOURCE_RANGES_FIREWALL, "-j DROP"))
        filt += out_filter
        filt += [
            _rule(
                KUBE_FORWARD,
                '-m comment --comment "kubernetes forwarding rules"',
                f"-m mark --mark {mark}/{mark}",
                "-j ACCEPT",
            ),
            _rule(
                KUBE_FORWARD,
                '-m comment --comment "kubernetes forwarding conntrack rule"',
                "-m conntrack --ctstate RELATED,ESTABLISHED",
                "-j ACCEPT",
            ),
        ]
        if cfg.forward_pod_cidr and cidr:
            filt.append(
                _rule(
                    KUBE_FORWARD,
                    '-m comment --comment "kubernetes forwarding pod source rule"',
                    f"-s {cidr}",
                    "-j ACCEPT",
                )
            )
            filt.append(
                _rule(
                    KUBE_FORWARD,
                    '-m comment --comment "kubernetes forwarding pod destination rule"',
                    f"-d {cidr}",
                    "-j ACCEPT",
                )
            )
        filt += health
        filt += ipvs_filter
        filt.append("COMMIT")
        return IpvsDesired(services, bind, "\n".join(nat + filt) + "\n")


# ---------------------------------------------------------------------------------------------
# The proxier


class IpvsProxier(ProxierBase):
    """kube-proxy's IPVS mode. Same handlers as IptablesProxier; every sync is a full one."""

    def __init__(
        self,
        node_name: str,
        node_ips: Sequence[str],
        cluster_cidr: str | None = "10.244.0.0/16",
        service_cidr: str | None = "10.96.0.0/16",
        masquerade_all: bool = False,
        min_sync_period: float = 1.0,
        sync_period: float = 30.0,
        runner: CommandRunner | None = None,
        *,
        scheduler: str = "rr",
        interface: str = DEFAULT_INTERFACE,
        interface_type: str = "dummy",
        masquerade_bit: int = 14,
        set_ip_forward: bool = True,
        guard: bool = True,
        uplink: str | None = None,
        node_labels: dict[str, str] | None = None,
        iptables_binary: str = "iptables",
    ) -> None:
        super().__init__(node_name, min_sync_period, sync_period, node_labels)
        self.runner = runner or SystemRunner()
        self.iptables = Iptables(self.runner, iptables_binary)
        self.conntrack = Conntrack(self.runner)
        self.ip = IpCommand(self.runner)
        self.interface = interface
        self.interface_type = interface_type
        self.set_ip_forward = set_ip_forward
        self.builder = IpvsRuleBuilder(
            IpvsConfig(
                cluster_cidr=cluster_cidr,
                masquerade_all=masquerade_all,
                masquerade_bit=masquerade_bit,
                scheduler=scheduler,
                node_ips=list(node_ips),
            )
        )
        # Service IPs are local addresses on the IPVS interface, so no service-CIDR route is
        # needed; the uplink guard still applies.
        self.guard = (
            HostNetworkGuard(
                self.runner,
                [c for c in (cluster_cidr, service_cidr) if c],
                service_cidr=None,
                device=None,
                uplink=uplink,
                iptables=self.iptables,
            )
            if guard
            else None
        )
        self._pending_conntrack = UpdateResult()
        self.draining: set[tuple[VsKey, RsKey]] = set()
        self.last_desired: IpvsDesired | None = None
        self.last_ipvs_payload = ""

    async def _setup_host(self) -> None:
        for name, value in IPVS_SYSCTLS + ((("net.ipv4.ip_forward", "1"),) if self.set_ip_forward else ()):
            if self.runner.read_sysctl(name) != value:
                self.runner.write_sysctl(name, value)  # fails (and the sync with it) without IPVS
        await self.ip.ensure_link(self.interface, self.interface_type)
        for jump in IPVS_JUMP_CHAINS:
            await self.iptables.ensure_chain(jump.table, jump.dst)
            await self.iptables.ensure_rule(jump.table, jump.src, jump.rule(), prepend=True)
        if self.guard is not None:
            await self.guard.ensure()

    def generate(self) -> IpvsDesired:
        return self.builder.build(self.state)

    async def sync_proxy_rules(self) -> SyncResult:
        if not self.initialized:
            return self._record(SyncResult(ok=True, skipped=True))
        start = time.perf_counter()
        update = self.state.apply_changes()
        self._pending_conntrack.merge(update)
        restore_seconds = 0.0
        try:
            if self.need_full_sync:
                await self._setup_host()
            desired = self.builder.build(self.state)
            listing = await self.runner.run(["ipvsadm", "-Ln"])
            if not listing.ok:
                raise CommandError(listing)
            current, conns = parse_ipvsadm_list(listing.stdout)
            payload, self.draining = ipvsadm_restore_payload(desired.virtual_servers, current, conns)
            restore_start = time.perf_counter()
            if payload:
                result = await self.runner.run(["ipvsadm-restore"], stdin=payload)
                if not result.ok:
                    raise CommandError(result)
            bound = await self.ip.addresses(self.interface)
            for ip in sorted(desired.bind_addresses - bound):
                await self.ip.add_address(ip, self.interface)
            await self.iptables.restore(desired.iptables_payload)
            restore_seconds = time.perf_counter() - restore_start
            for ip in sorted(bound - desired.bind_addresses):
                await self.ip.delete_address(ip, self.interface)
        except Exception as exc:
            self.need_full_sync = True
            log.error("ipvs sync failed: %s", exc)
            return self._record(SyncResult(ok=False, seconds=time.perf_counter() - start, error=str(exc)))
        self.need_full_sync = False
        self.last_desired = desired
        self.last_ipvs_payload = payload
        pending, self._pending_conntrack = self._pending_conntrack, UpdateResult()
        await clean_stale_entries(self.conntrack, self.state.services, self._stale_flows(pending))
        if self.draining:
            # Come back to delete drained real servers (upstream checks about every minute).
            self._runner.retry_after(min(60.0, self.sync_period))
        return self._record(
            SyncResult(
                ok=True,
                seconds=time.perf_counter() - start,
                payload_bytes=len(desired.iptables_payload) + len(payload),
                restore_seconds=restore_seconds,
                network_programming_seconds=programming_latencies(update.last_change_trigger_times),
            )
        )

    async def cleanup(self) -> list[str]:
        """Flush IPVS virtual servers this proxier manages, delete the interface, chains, hooks."""
        self.stop()
        errors: list[str] = []
        listing = await self.runner.run(["ipvsadm", "-Ln"])
        if listing.ok:
            current, _ = parse_ipvsadm_list(listing.stdout)
            if current:
                payload = "".join(f"-D {vs.spec()}\n" for vs in current.values())
                result = await self.runner.run(["ipvsadm-restore"], stdin=payload)
                if not result.ok:
                    errors.append(f"ipvsadm: {result.stderr.strip()}")
        try:
            await self.ip.delete_link(self.interface)
        except Exception as exc:
            errors.append(f"link: {exc}")
        errors += await cleanup_leftovers(self.iptables)
        if self.guard is not None:
            try:
                await self.guard.cleanup()
            except Exception as exc:
                errors.append(f"guard: {exc}")
        self.need_full_sync = True
        return errors
