"""The iptables proxier (upstream pkg/proxy/iptables/proxier.go, written anew).

Each sync writes the whole desired nat + filter state as ONE `iptables-restore --noflush`
payload: the top-level chains (KUBE-SERVICES, KUBE-NODEPORTS, ...) are rewritten every time;
the per-service chains (KUBE-SVC-/SVL-/EXT-/FW-/SEP-) are rewritten only for services that
changed unless a full sync is due; chains no longer used are flushed and deleted (-X) in the
same transaction. The hooks from the built-in chains are installed separately with
`iptables -I` (only on full syncs), never inside the restore payload.

Full syncs happen at start, after a failed sync, on node label changes, and when the
KUBE-PROXY-CANARY chains vanish (someone flushed the tables; checked every sync_period), as
upstream does since 1.28: with iptables-nft a full restore of 10k services takes minutes.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from kube_proxy.chains import (
    KUBE_EXTERNAL_SERVICES,
    KUBE_FIREWALL,
    KUBE_FORWARD,
    KUBE_MARK_MASQ,
    KUBE_NODEPORTS,
    KUBE_POSTROUTING,
    KUBE_PROXY_CANARY,
    KUBE_PROXY_FIREWALL,
    KUBE_SERVICES,
    NEW_ONLY,
    JumpChain,
    cleanup_leftovers,
    endpoint_chain_name,
    is_service_chain,
    service_chain_names,
)
from kube_proxy.commands import CommandRunner, Conntrack, Iptables, SystemRunner, chains_in_save
from kube_proxy.conntrack import clean_stale_entries
from kube_proxy.guard import HostNetworkGuard, routed_service_guard
from kube_proxy.model import Endpoint, ProxyState, ServiceName, ServicePortInfo, UpdateResult
from kube_proxy.provider import ProxierBase, SyncResult, programming_latencies

log = logging.getLogger(__name__)

# Above this many endpoints, per-endpoint comments are dropped to keep the payload small.
LARGE_CLUSTER_ENDPOINTS = 1000

CANARY_TABLES = ("nat", "filter")
SYSCTL_ROUTE_LOCALNET = "net.ipv4.conf.all.route_localnet"
SYSCTL_TCP_BE_LIBERAL = "net.netfilter.nf_conntrack_tcp_be_liberal"

JUMP_CHAINS = (
    JumpChain(
        "filter", "INPUT", KUBE_EXTERNAL_SERVICES, "kubernetes externally-visible service portals", NEW_ONLY
    ),
    JumpChain(
        "filter", "FORWARD", KUBE_EXTERNAL_SERVICES, "kubernetes externally-visible service portals", NEW_ONLY
    ),
    JumpChain("filter", "INPUT", KUBE_NODEPORTS, "kubernetes health check service ports"),
    JumpChain("filter", "FORWARD", KUBE_SERVICES, "kubernetes service portals", NEW_ONLY),
    JumpChain("filter", "OUTPUT", KUBE_SERVICES, "kubernetes service portals", NEW_ONLY),
    JumpChain("filter", "FORWARD", KUBE_FORWARD, "kubernetes forwarding rules"),
    JumpChain("filter", "INPUT", KUBE_PROXY_FIREWALL, "kubernetes load balancer firewall", NEW_ONLY),
    JumpChain("filter", "OUTPUT", KUBE_PROXY_FIREWALL, "kubernetes load balancer firewall", NEW_ONLY),
    JumpChain("filter", "FORWARD", KUBE_PROXY_FIREWALL, "kubernetes load balancer firewall", NEW_ONLY),
    JumpChain("nat", "OUTPUT", KUBE_SERVICES, "kubernetes service portals"),
    JumpChain("nat", "PREROUTING", KUBE_SERVICES, "kubernetes service portals"),
    JumpChain("nat", "POSTROUTING", KUBE_POSTROUTING, "kubernetes postrouting rules"),
)
# The localnet guard the kubelet also installs upstream; needed once route_localnet=1.
LOCALNET_JUMP_CHAINS = (
    JumpChain("filter", "INPUT", KUBE_FIREWALL, ""),
    JumpChain("filter", "OUTPUT", KUBE_FIREWALL, ""),
)


@dataclass
class IptablesConfig:
    cluster_cidr: str | None = "10.244.0.0/16"
    masquerade_all: bool = False
    masquerade_bit: int = 14
    localhost_nodeports: bool = True
    # None: NodePorts on every local address (upstream's default); else only these IPs.
    nodeport_addresses: Sequence[str] | None = None
    node_ips: Sequence[str] = ()
    conntrack_tcp_liberal: bool = False
    # Accept forwarded pod-CIDR traffic both ways (Docker sets FORWARD to DROP).
    forward_pod_cidr: bool = True

    @property
    def masquerade_mark(self) -> str:
        return hex(1 << self.masquerade_bit)


@dataclass
class GeneratedRules:
    payload: str
    active_nat_chains: set[str]
    filter_rules: int = 0
    nat_rules: int = 0
    nat_chains: int = 0
    skipped_services: int = 0
    deleted_chains: list[str] = field(default_factory=list)


class _Discard:
    """A list stand-in that drops what a partial sync does not rewrite."""

    __slots__ = ()

    def append(self, _line: str) -> None:
        pass


_DISCARD = _Discard()


class IptablesRuleBuilder:
    """Turns a ProxyState into the iptables-restore payload. Pure: no I/O."""

    def __init__(self, config: IptablesConfig) -> None:
        self.config = config
        self._probabilities = ["<bad>"]
        self._node_ips = [ipaddress.ip_address(ip) for ip in config.node_ips]

    def probability(self, n: int) -> str:
        """1/n formatted as upstream (10 decimals); cached since formatting floats is slow."""
        probs = self._probabilities
        while len(probs) <= n:
            probs.append(f"{1.0 / len(probs):0.10f}")
        return probs[n]

    def build(
        self,
        state: ProxyState,
        partial: bool = False,
        changed: set[ServiceName] | None = None,
        stale_candidates: Iterable[str] = (),
    ) -> GeneratedRules:
        cfg = self.config
        mark = cfg.masquerade_mark
        cluster_cidr = cfg.cluster_cidr
        changed = changed or set()

        filter_chains = [
            f":{KUBE_SERVICES} - [0:0]",
            f":{KUBE_EXTERNAL_SERVICES} - [0:0]",
            f":{KUBE_FORWARD} - [0:0]",
            f":{KUBE_NODEPORTS} - [0:0]",
            f":{KUBE_PROXY_FIREWALL} - [0:0]",
        ]
        filter_rules: list[str] = []
        nat_chains = [
            f":{KUBE_SERVICES} - [0:0]",
            f":{KUBE_NODEPORTS} - [0:0]",
            f":{KUBE_POSTROUTING} - [0:0]",
            f":{KUBE_MARK_MASQ} - [0:0]",
        ]
        nat_rules = [
            f"-A {KUBE_POSTROUTING} -m mark ! --mark {mark}/{mark} -j RETURN",
            # Clear the mark so a packet re-traversing the stack is not masqueraded twice.
            f"-A {KUBE_POSTROUTING} -j MARK --xor-mark {mark}",
            f'-A {KUBE_POSTROUTING} -m comment --comment "kubernetes service traffic requiring SNAT" '
            "-j MASQUERADE --random-fully",
            f"-A {KUBE_MARK_MASQ} -j MARK --or-mark {mark}",
        ]
        if cfg.localhost_nodeports:
            # route_localnet=1 lets 127.0.0.1 NodePorts work; this closes the hole it opens
            # (https://issues.k8s.io/90259).
            filter_chains.append(f":{KUBE_FIREWALL} - [0:0]")
            filter_rules.append(
                f'-A {KUBE_FIREWALL} -m comment --comment "block incoming localnet connections" '
                "-d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"
            )

        active: set[str] = set()
        total_endpoints = sum(len(state.endpoints.get(key, ())) for key in state.services)
        large = total_endpoints > LARGE_CLUSTER_ENDPOINTS
        skipped = 0

        for key, svc in state.services.items():
            proto = svc.protocol.lower()
            name = svc.name
            cat = state.categorize(svc)
            has_any = cat.has_any
            svc_chain, svl_chain, ext_chain, fw_chain = service_chain_names(name, proto)

            uses_cluster = bool(cat.cluster) and svc.uses_cluster_endpoints
            uses_local = bool(cat.local) and svc.uses_local_endpoints

            internal_chain = svc_chain
            has_internal = has_any
            if svc.internal_policy_local:
                internal_chain = svl_chain
                if not cat.local:
                    has_internal = False
            external_policy_chain = svc_chain
            has_external = has_any
            if svc.external_policy_local:
                external_policy_chain = svl_chain
                if not cat.local:
                    has_external = False
            # The EXT chain also carries the short-circuit rules for in-cluster sources, so it
            # exists whenever the service has endpoints anywhere.
            uses_ext = has_any and svc.externally_accessible
            uses_fw = has_any and bool(svc.load_balancer_ips) and bool(svc.load_balancer_source_ranges)
            lb_chain = fw_chain if uses_fw else ext_chain

            int_target = ext_target = int_comment = ext_comment = ""
            if not has_any:
                int_target = ext_target = "REJECT"
                int_comment = ext_comment = f'"{name} has no endpoints"'
            else:
                if not has_internal:
                    int_target = "DROP"
                    int_comment = f'"{name} has no local endpoints"'
                if not has_external:
                    ext_target = "DROP"
                    ext_comment = f'"{name} has no local endpoints"'

            match = f"-m {proto} -p {proto}"
            dport = f"--dport {svc.port}"

            # Capture the cluster IP.
            if has_internal:
                nat_rules.append(
                    f'-A {KUBE_SERVICES} -m comment --comment "{name} cluster IP" {match} '
                    f"-d {svc.cluster_ip} {dport} -j {internal_chain}"
                )
            else:
                filter_rules.append(
                    f"-A {KUBE_SERVICES} -m comment --comment {int_comment} {match} "
                    f"-d {svc.cluster_ip} {dport} -j {int_target}"
                )
            # Capture external IPs.
            for ip in svc.external_ips:
                if has_any:
                    nat_rules.append(
                        f'-A {KUBE_SERVICES} -m comment --comment "{name} external IP" {match} '
                        f"-d {ip} {dport} -j {ext_chain}"
                    )
                if not has_external:
                    filter_rules.append(
                        f"-A {KUBE_EXTERNAL_SERVICES} -m comment --comment {ext_comment} {match} "
                        f"-d {ip} {dport} -j {ext_target}"
                    )
            # Capture load-balancer ingress IPs.
            for ip in svc.load_balancer_ips:
                if has_any:
                    nat_rules.append(
                        f'-A {KUBE_SERVICES} -m comment --comment "{name} loadbalancer IP" {match} '
                        f"-d {ip} {dport} -j {lb_chain}"
                    )
                if uses_fw:
                    filter_rules.append(
                        f'-A {KUBE_PROXY_FIREWALL} -m comment --comment "{name} traffic not accepted by {fw_chain}" '
                        f"{match} -d {ip} {dport} -j DROP"
                    )
            if not has_external:
                for ip in svc.load_balancer_ips:
                    filter_rules.append(
                        f"-A {KUBE_EXTERNAL_SERVICES} -m comment --comment {ext_comment} {match} "
                        f"-d {ip} {dport} -j {ext_target}"
                    )
            # Capture node ports.
            if svc.node_port:
                if has_any:
                    nat_rules.append(
                        f"-A {KUBE_NODEPORTS} -m comment --comment {name} {match} "
                        f"--dport {svc.node_port} -j {ext_chain}"
                    )
                if not has_external:
                    filter_rules.append(
                        f"-A {KUBE_EXTERNAL_SERVICES} -m comment --comment {ext_comment} "
                        f"-m addrtype --dst-type LOCAL {match} --dport {svc.node_port} -j {ext_target}"
                    )
            if svc.health_check_node_port:
                filter_rules.append(
                    f'-A {KUBE_NODEPORTS} -m comment --comment "{name} health check node port" '
                    f"-m tcp -p tcp --dport {svc.health_check_node_port} -j ACCEPT"
                )

            # The per-service chains: skipped (but still tracked as active) when a partial
            # sync finds this service unchanged.
            out_chains: list[str] | _Discard = nat_chains
            out_rules: list[str] | _Discard = nat_rules
            if partial and (key[0], key[1]) not in changed:
                out_chains = out_rules = _DISCARD
                skipped += 1

            if has_internal:
                args = f'-m comment --comment "{name} cluster IP" {match} -d {svc.cluster_ip} {dport}'
                if cfg.masquerade_all:
                    out_rules.append(f"-A {internal_chain} {args} -j {KUBE_MARK_MASQ}")
                elif cluster_cidr:
                    # Masquerade off-cluster sources: the reply may otherwise bypass this node.
                    out_rules.append(f"-A {internal_chain} {args} ! -s {cluster_cidr} -j {KUBE_MARK_MASQ}")

            if uses_ext:
                out_chains.append(f":{ext_chain} - [0:0]")
                active.add(ext_chain)
                if not svc.external_policy_local:
                    out_rules.append(
                        f'-A {ext_chain} -m comment --comment "masquerade traffic for {name} external destinations" '
                        f"-j {KUBE_MARK_MASQ}"
                    )
                else:
                    if cluster_cidr:
                        out_rules.append(
                            f'-A {ext_chain} -m comment --comment "pod traffic for {name} external destinations" '
                            f"-s {cluster_cidr} -j {svc_chain}"
                        )
                    out_rules.append(
                        f'-A {ext_chain} -m comment --comment "masquerade LOCAL traffic for {name} external destinations" '
                        f"-m addrtype --src-type LOCAL -j {KUBE_MARK_MASQ}"
                    )
                    out_rules.append(
                        f'-A {ext_chain} -m comment --comment "route LOCAL traffic for {name} external destinations" '
                        f"-m addrtype --src-type LOCAL -j {svc_chain}"
                    )
                if has_external:
                    out_rules.append(f"-A {ext_chain} -j {external_policy_chain}")

            if uses_fw:
                out_chains.append(f":{fw_chain} - [0:0]")
                active.add(fw_chain)
                head = f'-A {fw_chain} -m comment --comment "{name} loadbalancer IP"'
                allow_from_node = False
                for cidr in svc.load_balancer_source_ranges:
                    out_rules.append(f"{head} -s {cidr} -j {ext_chain}")
                    net = ipaddress.ip_network(cidr, strict=False)
                    if any(ip in net for ip in self._node_ips):
                        allow_from_node = True
                # A node reaching a VIP-like LB IP that is local loops back with the LB IP as source.
                if allow_from_node:
                    for ip in svc.load_balancer_ips:
                        out_rules.append(f"{head} -s {ip} -j {ext_chain}")
                out_rules.append(
                    f'-A {fw_chain} -m comment --comment "other traffic to {name} will be dropped by {KUBE_PROXY_FIREWALL}"'
                )

            if uses_cluster:
                out_chains.append(f":{svc_chain} - [0:0]")
                active.add(svc_chain)
                self._endpoint_jumps(out_rules, svc, svc_chain, cat.cluster, proto, large)
            if uses_local:
                out_chains.append(f":{svl_chain} - [0:0]")
                active.add(svl_chain)
                self._endpoint_jumps(out_rules, svc, svl_chain, cat.local, proto, large)

            comment = "" if large else f" -m comment --comment {name}"
            recent = ""
            for ep in cat.reachable:
                sep = endpoint_chain_name(name, proto, ep.addr)
                out_chains.append(f":{sep} - [0:0]")
                active.add(sep)
                # Hairpin: an endpoint reaching its own service must be masqueraded.
                out_rules.append(f"-A {sep}{comment} -s {ep.ip} -j {KUBE_MARK_MASQ}")
                if svc.session_affinity_client_ip:
                    recent = f" -m recent --name {sep} --set"
                out_rules.append(f"-A {sep}{comment}{recent} {match} -j DNAT --to-destination {ep.addr}")

        # Delete chains no longer in use: a chain line flushes it, then -X removes it.
        deleted = sorted(c for c in set(stale_candidates) - active if is_service_chain(c))
        for chain in deleted:
            nat_chains.append(f":{chain} - [0:0]")
            nat_rules.append(f"-X {chain}")

        # The NodePort dispatch must be the last rule of KUBE-SERVICES.
        np_comment = '"kubernetes service nodeports; NOTE: this must be the last rule in this chain"'
        if cfg.nodeport_addresses is None:
            local_only = "" if cfg.localhost_nodeports else " ! -d 127.0.0.0/8"
            nat_rules.append(
                f"-A {KUBE_SERVICES} -m comment --comment {np_comment} -m addrtype --dst-type LOCAL{local_only} "
                f"-j {KUBE_NODEPORTS}"
            )
        else:
            for ip in cfg.nodeport_addresses:
                if ipaddress.ip_address(ip).is_loopback and not cfg.localhost_nodeports:
                    continue
                nat_rules.append(
                    f"-A {KUBE_SERVICES} -m comment --comment {np_comment} -d {ip} -j {KUBE_NODEPORTS}"
                )

        if not cfg.conntrack_tcp_liberal:
            # INVALID packets would otherwise reach pods un-NATed and reset connections.
            filter_rules.append(f"-A {KUBE_FORWARD} -m conntrack --ctstate INVALID -j DROP")
        filter_rules.append(
            f'-A {KUBE_FORWARD} -m comment --comment "kubernetes forwarding rules" -m mark --mark {mark}/{mark} -j ACCEPT'
        )
        filter_rules.append(
            f'-A {KUBE_FORWARD} -m comment --comment "kubernetes forwarding conntrack rule" '
            "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
        )
        if cfg.forward_pod_cidr and cluster_cidr:
            # KUBE-FORWARD runs before the FORWARD hooks to KUBE-SERVICES and
            # KUBE-EXTERNAL-SERVICES: without these two jumps the pod ACCEPTs below would let pod
            # traffic to a service without endpoints through (blackholed, not rejected).
            # (Only when those chains have rules: an empty chain needs no detour.)
            if any(rule.startswith(f"-A {KUBE_SERVICES} ") for rule in filter_rules):
                filter_rules.append(
                    f"-A {KUBE_FORWARD} -m conntrack --ctstate NEW -m comment "
                    f'--comment "service portals before pod accepts" -j {KUBE_SERVICES}'
                )
            if any(rule.startswith(f"-A {KUBE_EXTERNAL_SERVICES} ") for rule in filter_rules):
                filter_rules.append(
                    f"-A {KUBE_FORWARD} -m conntrack --ctstate NEW -m comment "
                    f'--comment "externally-visible service portals before pod accepts" -j {KUBE_EXTERNAL_SERVICES}'
                )
            filter_rules.append(
                f'-A {KUBE_FORWARD} -m comment --comment "kubernetes forwarding pod source rule" -s {cluster_cidr} -j ACCEPT'
            )
            filter_rules.append(
                f'-A {KUBE_FORWARD} -m comment --comment "kubernetes forwarding pod destination rule" '
                f"-d {cluster_cidr} -j ACCEPT"
            )

        parts = [
            "*filter",
            *filter_chains,
            *filter_rules,
            "COMMIT",
            "*nat",
            *nat_chains,
            *nat_rules,
            "COMMIT",
            "",
        ]
        return GeneratedRules(
            payload="\n".join(parts),
            active_nat_chains=active,
            filter_rules=len(filter_rules),
            nat_rules=len(nat_rules),
            nat_chains=len(nat_chains),
            skipped_services=skipped,
            deleted_chains=deleted,
        )

    def _endpoint_jumps(
        self,
        rules: list[str] | _Discard,
        svc: ServicePortInfo,
        chain: str,
        eps: list[Endpoint],
        proto: str,
        large: bool,
    ) -> None:
        name = svc.name
        if svc.session_affinity_client_ip:
            # Sticky clients first: a recent source goes back to the endpoint it used.
            for ep in eps:
                sep = endpoint_chain_name(name, proto, ep.addr)
                comment = "" if large else f' -m comment --comment "{name} -> {ep.addr}"'
                rules.append(
                    f"-A {chain}{comment} -m recent --name {sep} --rcheck --seconds {svc.sticky_seconds} --reap -j {sep}"
                )
        n = len(eps)
        for i, ep in enumerate(eps):
            sep = endpoint_chain_name(name, proto, ep.addr)
            comment = "" if large else f' -m comment --comment "{name} -> {ep.addr}"'
            if i < n - 1:
                # Each rule matches with 1/(remaining endpoints): uniform over all of them.
                rules.append(
                    f"-A {chain}{comment} -m statistic --mode random --probability {self.probability(n - i)} -j {sep}"
                )
            else:
                rules.append(f"-A {chain}{comment} -j {sep}")


class IptablesProxier(ProxierBase):
    """kube-proxy's iptables mode. Feed it Service/EndpointSlice dicts through the on_*
    handlers (or set_state), then run() it, or call sync()/sync_proxy_rules() directly."""

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
        localhost_nodeports: bool = True,
        nodeport_addresses: Sequence[str] | None = None,
        masquerade_bit: int = 14,
        service_cidr_device: str | None = "kube-svc0",
        service_cidr_device_type: str = "ifb",
        guard: bool = True,
        uplink: str | None = None,
        node_labels: dict[str, str] | None = None,
        local_cidrs: Sequence[str] = (),
        iptables_binary: str = "iptables",
    ) -> None:
        super().__init__(node_name, min_sync_period, sync_period, node_labels)
        self.runner = runner or SystemRunner()
        self.iptables = Iptables(self.runner, iptables_binary)
        self.conntrack = Conntrack(self.runner)
        self.node_ips = list(node_ips)
        self.cluster_cidr = cluster_cidr
        self.service_cidr = service_cidr
        self.config = IptablesConfig(
            cluster_cidr=cluster_cidr,
            masquerade_all=masquerade_all,
            masquerade_bit=masquerade_bit,
            localhost_nodeports=localhost_nodeports,
            nodeport_addresses=nodeport_addresses,
            node_ips=self.node_ips,
        )
        self.builder = IptablesRuleBuilder(self.config)
        self.guard: HostNetworkGuard | None = None
        if guard:
            self.guard = routed_service_guard(
                self.runner, self.iptables, cluster_cidr=cluster_cidr, service_cidr=service_cidr,
                local_cidrs=local_cidrs, device=service_cidr_device, device_type=service_cidr_device_type,
                uplink=uplink,
            )
        self._active_nat_chains: set[str] = set()
        self._pending_conntrack = UpdateResult()
        self._saved_route_localnet: str | None = None
        self.last_rules: GeneratedRules | None = None

    def jump_chains(self) -> tuple[JumpChain, ...]:
        return JUMP_CHAINS + (LOCALNET_JUMP_CHAINS if self.config.localhost_nodeports else ())

    async def _setup_host(self) -> None:
        """Full-sync-only setup: sysctls, hooks from the built-in chains, the guard."""
        if self.config.localhost_nodeports:
            current = self.runner.read_sysctl(SYSCTL_ROUTE_LOCALNET)
            if current is not None and current != "1":
                if self._saved_route_localnet is None:
                    self._saved_route_localnet = current
                self.runner.write_sysctl(SYSCTL_ROUTE_LOCALNET, "1")
        liberal = self.runner.read_sysctl(SYSCTL_TCP_BE_LIBERAL)
        self.config.conntrack_tcp_liberal = liberal not in (None, "0")
        for jump in self.jump_chains():
            await self.iptables.ensure_chain(jump.table, jump.dst)
            await self.iptables.ensure_rule(jump.table, jump.src, jump.rule(), prepend=True)
        for table in CANARY_TABLES:
            await self.iptables.ensure_chain(table, KUBE_PROXY_CANARY)
        if self.guard is not None:
            await self.guard.ensure()  # last: its hooks must stay first

    async def rules_intact(self) -> bool:
        for table in CANARY_TABLES:
            if await self.iptables.list_rules(table, KUBE_PROXY_CANARY) is None:
                return False
        return True

    def generate(
        self,
        partial: bool = False,
        changed: set[ServiceName] | None = None,
        stale_candidates: Iterable[str] = (),
    ) -> GeneratedRules:
        """Build the restore payload for the current state (no I/O; for tests and benchmarks)."""
        return self.builder.build(self.state, partial, changed, stale_candidates)

    async def sync_proxy_rules(self) -> SyncResult:
        if not self.initialized:
            return self._record(SyncResult(ok=True, skipped=True))
        start = time.perf_counter()
        partial = not self.need_full_sync
        update = self.state.apply_changes()
        self._pending_conntrack.merge(update)
        try:
            if partial:
                candidates = set(self._active_nat_chains)
            else:
                await self._setup_host()
                candidates = chains_in_save(await self.iptables.save("nat"))
            rules = self.builder.build(self.state, partial, update.updated_services, candidates)
            restore_start = time.perf_counter()
            await self.iptables.restore(rules.payload)
            restore_seconds = time.perf_counter() - restore_start
        except Exception as exc:
            # The applied changes are gone from the trackers: only a full sync is safe now.
            self.need_full_sync = True
            log.error("iptables sync failed: %s", exc)
            return self._record(
                SyncResult(ok=False, partial=partial, seconds=time.perf_counter() - start, error=str(exc))
            )
        self.need_full_sync = False
        self._active_nat_chains = rules.active_nat_chains
        self.last_rules = rules
        pending, self._pending_conntrack = self._pending_conntrack, UpdateResult()
        await clean_stale_entries(self.conntrack, self.state.services, self._stale_flows(pending))
        return self._record(
            SyncResult(
                ok=True,
                partial=partial,
                seconds=time.perf_counter() - start,
                payload_bytes=len(rules.payload),
                restore_seconds=restore_seconds,
                network_programming_seconds=programming_latencies(update.last_change_trigger_times),
            )
        )

    async def guard_counters(self) -> dict[str, int]:
        return await self.guard.counters() if self.guard is not None else {}

    async def cleanup(self) -> list[str]:
        """Remove everything this proxier created: hooks, chains (both modes' names), the guard,
        the service-CIDR route and device; restore route_localnet. Returns errors, if any."""
        self.stop()
        errors = await cleanup_leftovers(self.iptables)
        if self.guard is not None:
            try:
                await self.guard.cleanup()
            except Exception as exc:
                errors.append(f"guard: {exc}")
        if self._saved_route_localnet is not None:
            self.runner.write_sysctl(SYSCTL_ROUTE_LOCALNET, self._saved_route_localnet)
            self._saved_route_localnet = None
        self._active_nat_chains = set()
        self.need_full_sync = True
        return errors
