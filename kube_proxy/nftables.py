"""The nftables proxier (upstream pkg/proxy/nftables, written anew), an alternative to the
default iptables mode for large clusters.

Everything lives in one table, `ip kube-proxy`: base chains hooked at fixed priorities,
verdict maps from (address, protocol, port) to a per-service chain (`service-ips`,
`service-nodeports`), maps sending traffic for services without endpoints to reject/drop
(`no-endpoint-services`, `no-endpoint-nodeports`), a `firewall-ips` map for
loadBalancerSourceRanges, and per service port the chains `service-`, `local-`, `external-`,
`firewall-` and per endpoint `endpoint-` (names: 8 chars of base32(sha256) + the readable
name, as upstream's hashAndTruncate). ClientIP affinity uses one dynamic timeout set per
endpoint (`affinity-`).

One deliberate difference: endpoints are chosen with a cascade of `numgen random mod k == 0`
rules (the iptables probabilities) instead of upstream's anonymous `numgen ... vmap { }`
per service. On this kernel every anonymous set makes the transaction cost grow with the
number of sets already in the table: 10 000 services took 21 s with anonymous vmaps and
1.8 s with the cascade (bench/proxy_bench.py, RESULTS.md).

Every sync is one `nft -f` transaction (atomic). A full sync rewrites every chain and map; a
partial sync rewrites only chains whose rules changed and applies map element differences.
Stale chains and sets are deleted in the same transaction. Like upstream's nftables mode,
NodePorts do not answer on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from kube_proxy.commands import CommandError, CommandRunner, Conntrack, Iptables, SystemRunner
from kube_proxy.conntrack import clean_stale_entries
from kube_proxy.guard import HostNetworkGuard, routed_service_guard
from kube_proxy.model import Endpoint, ProxyState, ServicePortInfo, UpdateResult
from kube_proxy.provider import ProxierBase, SyncResult, programming_latencies

log = logging.getLogger(__name__)

TABLE = "kube-proxy"
FAMILY = "ip"
CHAIN_NAME_BASE_MAX = 200  # upstream's chainNameBaseLengthMax (nft allows 256)

# Fixed chains: name -> base chain spec ("" for regular chains).
BASE_CHAINS = {
    "filter-prerouting": "type filter hook prerouting priority -110 ;",
    "filter-input": "type filter hook input priority -110 ;",
    "filter-forward": "type filter hook forward priority -110 ;",
    "filter-output": "type filter hook output priority -110 ;",
    "filter-output-post-dnat": "type filter hook output priority -90 ;",
    "nat-prerouting": "type nat hook prerouting priority -100 ;",
    "nat-output": "type nat hook output priority -100 ;",
    "nat-postrouting": "type nat hook postrouting priority 100 ;",
}
HELPER_CHAINS = (
    "mark-for-masquerade",
    "masquerading",
    "services",
    "service-endpoints-check",
    "nodeport-endpoints-check",
    "cluster-ips-check",
    "firewall-check",
    "reject-chain",
)
FIXED_CHAINS = (*BASE_CHAINS, *HELPER_CHAINS)
# Maps and sets: name -> type spec.
MAPS = {
    "service-ips": "type ipv4_addr . inet_proto . inet_service : verdict ; comment \"ClusterIP, ExternalIP and LoadBalancer IP traffic\" ;",
    "service-nodeports": "type inet_proto . inet_service : verdict ; comment \"NodePort traffic\" ;",
    "no-endpoint-services": "type ipv4_addr . inet_proto . inet_service : verdict ; comment \"vmap to drop or reject packets to services with no endpoints\" ;",
    "no-endpoint-nodeports": "type inet_proto . inet_service : verdict ; comment \"vmap to drop or reject packets to service nodeports with no endpoints\" ;",
    "firewall-ips": "type ipv4_addr . inet_proto . inet_service : verdict ; comment \"destinations that are subject to LoadBalancerSourceRanges\" ;",
}
SETS = {
    "cluster-ips": "type ipv4_addr ; comment \"Active ClusterIPs\" ;",
    "nodeport-ips": "type ipv4_addr ; comment \"IPs that accept NodePort traffic\" ;",
}


@lru_cache(maxsize=1 << 17)
def hash_and_truncate(name: str) -> str:
    """Upstream's hashAndTruncate: 8 chars of base32(sha256(name)) + "-" + name, capped."""
    # The first 8 base32 characters encode exactly the first 5 bytes of the digest: encoding
    # only those gives the same prefix, several times faster.
    encoded = base64.b32encode(hashlib.sha256(name.encode()).digest()[:5]).decode()
    full = encoded + "-" + name
    if len(full) > CHAIN_NAME_BASE_MAX:
        full = full[: CHAIN_NAME_BASE_MAX - 3] + "..."
    return full


def service_chain_base(svc: ServicePortInfo) -> str:
    return hash_and_truncate(f"{svc.namespace}/{svc.service}/{svc.protocol.lower()}/{svc.port_name}")


def endpoint_chain_base(svc: ServicePortInfo, ep: Endpoint) -> str:
    return hash_and_truncate(
        f"{svc.namespace}/{svc.service}/{svc.protocol.lower()}/{svc.port_name}__{ep.ip}/{ep.port}"
    )


_SERVICE_CHAIN = re.compile(r"^(service|local|external|firewall|endpoint)-[A-Z2-7]{8}-")


def is_service_chain(name: str) -> bool:
    """A per-service chain (prefix + hash), never a fixed one like service-endpoints-check."""
    return _SERVICE_CHAIN.match(name) is not None


@dataclass
class NftConfig:
    cluster_cidr: str | None = "10.244.0.0/16"
    service_cidr: str | None = "10.96.0.0/16"
    masquerade_all: bool = False
    masquerade_bit: int = 14
    # None: NodePorts on every local address except 127.0.0.0/8; else only these IPs.
    nodeport_addresses: Sequence[str] | None = None
    node_ips: Sequence[str] = ()

    @property
    def mark(self) -> str:
        return hex(1 << self.masquerade_bit)


@dataclass
class NftDesired:
    """The whole desired table, computed in Python each sync."""

    fixed_rules: dict[str, list[str]]
    chains: dict[str, list[str]]  # service/endpoint chains → rules
    affinity_sets: dict[str, int]  # set name → timeout seconds
    elements: dict[str, dict[str, str]]  # map/set → key → value ("" for sets)


@dataclass
class NftPayload:
    text: str
    rewritten_chains: int = 0
    deleted_chains: list[str] = field(default_factory=list)


class NftRuleBuilder:
    """ProxyState → NftDesired (pure), and NftDesired (+ what is applied) → an `nft -f` script."""

    def __init__(self, config: NftConfig) -> None:
        self.config = config
        self._node_ips = [ipaddress.ip_address(ip) for ip in config.node_ips]

    def fixed_rules(self) -> dict[str, list[str]]:
        cfg = self.config
        mark = cfg.mark
        rules: dict[str, list[str]] = {name: [] for name in FIXED_CHAINS}
        rules["filter-prerouting"] = ["ct state new jump firewall-check"]
        rules["filter-input"] = ["ct state new jump nodeport-endpoints-check", "ct state new jump service-endpoints-check"]
        rules["filter-forward"] = ["ct state new jump service-endpoints-check", "ct state new jump cluster-ips-check"]
        rules["filter-output"] = ["ct state new jump service-endpoints-check", "ct state new jump firewall-check"]
        rules["filter-output-post-dnat"] = ["ct state new jump cluster-ips-check"]
        rules["nat-prerouting"] = ["jump services"]
        rules["nat-output"] = ["jump services"]
        rules["nat-postrouting"] = ["jump masquerading"]
        rules["mark-for-masquerade"] = [f"meta mark set meta mark | {mark}"]
        rules["masquerading"] = [
            f"meta mark & {mark} == 0 return",
            f"meta mark set meta mark ^ {mark}",
            "masquerade fully-random",
        ]
        rules["services"] = ["ip daddr . meta l4proto . th dport vmap @service-ips"]
        if cfg.nodeport_addresses is None:
            local = "fib daddr type local ip daddr != 127.0.0.0/8"
        else:
            local = "ip daddr @nodeport-ips"
        rules["services"].append(f"{local} meta l4proto . th dport vmap @service-nodeports")
        rules["service-endpoints-check"] = [
            "ip daddr . meta l4proto . th dport vmap @no-endpoint-services",
            f"{local} meta l4proto . th dport vmap @no-endpoint-nodeports",
        ]
        rules["nodeport-endpoints-check"] = []
        rules["cluster-ips-check"] = [
            'ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"'
        ]
        if cfg.service_cidr:
            rules["cluster-ips-check"].append(
                f'ip daddr {cfg.service_cidr} drop comment "Drop traffic to unallocated ClusterIPs"'
            )
        rules["firewall-check"] = ["ip daddr . meta l4proto . th dport vmap @firewall-ips"]
        rules["reject-chain"] = ["reject"]
        return rules

    def _cascade(self, rules: list[str], targets: list[str]) -> None:
        n = len(targets)
        for i, target in enumerate(targets):
            if i < n - 1:
                rules.append(f"numgen random mod {n - i} == 0 goto {target}")
            else:
                rules.append(f"goto {target}")

    def build(self, state: ProxyState) -> NftDesired:
        cfg = self.config
        chains: dict[str, list[str]] = {}
        affinity: dict[str, int] = {}
        el: dict[str, dict[str, str]] = {name: {} for name in (*MAPS, *SETS)}
        if cfg.nodeport_addresses is not None:
            for ip in cfg.nodeport_addresses:
                if not ipaddress.ip_address(ip).is_loopback:
                    el["nodeport-ips"][ip] = ""
        cluster_cidr = cfg.cluster_cidr

        for svc in state.services.values():
            proto = svc.protocol.lower()
            cat = state.categorize(svc)
            base = service_chain_base(svc)
            svc_chain, local_chain = f"service-{base}", f"local-{base}"
            ext_chain, fw_chain = f"external-{base}", f"firewall-{base}"
            el["cluster-ips"][svc.cluster_ip] = ""

            has_any = cat.has_any
            uses_cluster = bool(cat.cluster) and svc.uses_cluster_endpoints
            uses_local = bool(cat.local) and svc.uses_local_endpoints
            internal_chain, has_internal = svc_chain, has_any
            if svc.internal_policy_local:
                internal_chain, has_internal = local_chain, has_any and bool(cat.local)
            external_policy_chain, has_external = svc_chain, has_any
            if svc.external_policy_local:
                external_policy_chain, has_external = local_chain, has_any and bool(cat.local)
            uses_ext = has_any and svc.externally_accessible
            uses_fw = has_any and bool(svc.load_balancer_ips) and bool(svc.load_balancer_source_ranges)

            no_ep = "goto reject-chain" if not has_any else "drop"
            key = f"{svc.cluster_ip} . {proto} . {svc.port}"
            if has_internal:
                el["service-ips"][key] = f"goto {internal_chain}"
            else:
                el["no-endpoint-services"][key] = no_ep
            external_targets = [*svc.external_ips, *svc.load_balancer_ips]
            for ip in external_targets:
                k = f"{ip} . {proto} . {svc.port}"
                if uses_ext:
                    el["service-ips"][k] = f"goto {ext_chain}"
                if not has_external:
                    el["no-endpoint-services"][k] = no_ep
            if uses_fw:
                for ip in svc.load_balancer_ips:
                    el["firewall-ips"][f"{ip} . {proto} . {svc.port}"] = f"goto {fw_chain}"
            if svc.node_port:
                k = f"{proto} . {svc.node_port}"
                if uses_ext:
                    el["service-nodeports"][k] = f"goto {ext_chain}"
                if not has_external:
                    el["no-endpoint-nodeports"][k] = no_ep

            if uses_ext:
                rules = chains[ext_chain] = []
                if not svc.external_policy_local:
                    rules.append("jump mark-for-masquerade")
                else:
                    if cluster_cidr:
                        rules.append(f'ip saddr {cluster_cidr} goto {svc_chain} comment "short-circuit pod traffic"')
                    rules.append('fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"')
                    rules.append(f'fib saddr type local goto {svc_chain} comment "short-circuit local traffic"')
                if has_external:
                    rules.append(f"goto {external_policy_chain}")
            if uses_fw:
                ranges = list(svc.load_balancer_source_ranges)
                # A node reaching its own LB IP loops back with that IP as the source.
                if any(ipaddress.ip_address(ip) in ipaddress.ip_network(c, strict=False)
                       for c in ranges for ip in self._node_ips):
                    ranges += list(svc.load_balancer_ips)
                chains[fw_chain] = [f"ip saddr != {{ {', '.join(ranges)} }} drop"]

            masq = ""
            if cfg.masquerade_all:
                masq = f"ip daddr {svc.cluster_ip} {proto} dport {svc.port} jump mark-for-masquerade"
            elif cluster_cidr:
                masq = (f"ip daddr {svc.cluster_ip} {proto} dport {svc.port} ip saddr != {cluster_cidr} "
                        "jump mark-for-masquerade")
            for chain, eps, used in ((svc_chain, cat.cluster, uses_cluster), (local_chain, cat.local, uses_local)):
                if not used:
                    continue
                rules = chains[chain] = []
                if masq and chain == internal_chain:
                    rules.append(masq)
                targets = [f"endpoint-{endpoint_chain_base(svc, ep)}" for ep in eps]
                if svc.session_affinity_client_ip:
                    for ep in eps:
                        ebase = endpoint_chain_base(svc, ep)
                        rules.append(f"ip saddr @affinity-{ebase} goto endpoint-{ebase}")
                self._cascade(rules, targets)

            for ep in cat.reachable:
                ebase = endpoint_chain_base(svc, ep)
                rules = chains[f"endpoint-{ebase}"] = [f"ip saddr {ep.ip} jump mark-for-masquerade"]
                if svc.session_affinity_client_ip:
                    affinity[f"affinity-{ebase}"] = svc.sticky_seconds
                    rules.append(f"update @affinity-{ebase} {{ ip saddr }}")
                rules.append(f"meta l4proto {proto} dnat to {ep.addr}")
        return NftDesired(self.fixed_rules(), chains, affinity, el)

    def payload(
        self,
        desired: NftDesired,
        full: bool,
        applied: NftDesired | None,
        existing_chains: set[str],
        existing_sets: set[str],
    ) -> NftPayload:
        """The `nft -f` script turning what is applied into `desired`. `existing_*` are the
        service chains / affinity sets in the kernel (stale ones are deleted)."""
        t = f"{FAMILY} {TABLE}"
        out = [f'add table {t} {{ comment "rules for kube-proxy" ; }}']
        if full or applied is None:
            # Maps and sets first: the fixed rules refer to them.
            for name, spec in {**MAPS, **SETS}.items():
                kind = "map" if name in MAPS else "set"
                out.append(f"add {kind} {t} {name} {{ {spec} }}")
                out.append(f"flush {kind} {t} {name}")
            for name in FIXED_CHAINS:
                spec = BASE_CHAINS.get(name)
                out.append(f"add chain {t} {name} {{ {spec} }}" if spec else f"add chain {t} {name}")
                out.append(f"flush chain {t} {name}")
            for name in FIXED_CHAINS:
                out.extend(f"add rule {t} {name} {rule}" for rule in desired.fixed_rules[name])
        for name, timeout in desired.affinity_sets.items():
            if name not in existing_sets:
                out.append(f"add set {t} {name} {{ type ipv4_addr ; flags dynamic,timeout ; timeout {timeout}s ; }}")

        rewritten = 0
        old_chains = {} if (full or applied is None) else applied.chains
        for name, rules in desired.chains.items():
            if name in old_chains and old_chains[name] == rules and name in existing_chains:
                continue
            rewritten += 1
            if name in existing_chains:
                out.append(f"flush chain {t} {name}")
            else:
                out.append(f"add chain {t} {name}")
        # Rules after every chain exists: a rule may jump to a chain declared later.
        for name, rules in desired.chains.items():
            if name in old_chains and old_chains[name] == rules and name in existing_chains:
                continue
            out.extend(f"add rule {t} {name} {rule}" for rule in rules)

        # Map and set elements: everything after a flush, else the difference.
        for name, wanted in desired.elements.items():
            kind = "map" if name in MAPS else "set"
            old = {} if (full or applied is None) else applied.elements.get(name, {})
            removed = [k for k, v in old.items() if wanted.get(k) != v]
            added = [k for k, v in wanted.items() if old.get(k) != v]
            for start in range(0, len(removed), 1000):
                out.append(f"delete element {t} {name} {{ {', '.join(removed[start:start + 1000])} }}")
            items = [f"{k} : {wanted[k]}" if kind == "map" else k for k in added]
            for start in range(0, len(items), 1000):
                out.append(f"add element {t} {name} {{ {', '.join(items[start:start + 1000])} }}")

        # Stale chains: flushed (drops their jumps) first, then deleted.
        stale = sorted(c for c in existing_chains if c not in desired.chains)
        out.extend(f"flush chain {t} {c}" for c in stale)
        out.extend(f"delete chain {t} {c}" for c in stale)
        out.extend(f"delete set {t} {s}" for s in sorted(existing_sets - set(desired.affinity_sets)))
        return NftPayload("\n".join(out) + "\n", rewritten, stale)


class Nft:
    """`nft` over a runner."""

    def __init__(self, runner: CommandRunner, binary: str = "nft") -> None:
        self.runner = runner
        self.binary = binary

    async def apply(self, script: str) -> None:
        result = await self.runner.run([self.binary, "-f", "-"], stdin=script)
        if not result.ok:
            raise CommandError(result)

    async def table_objects(self) -> tuple[set[str], set[str]] | None:
        """(chains, sets) of our table, or None when it does not exist."""
        result = await self.runner.run([self.binary, "-j", "list", "chains", FAMILY])
        if not result.ok:
            raise CommandError(result)
        chains = _names(result.stdout, "chain")
        if chains is None:
            return None
        sets_result = await self.runner.run([self.binary, "-j", "list", "sets", FAMILY])
        sets = _names(sets_result.stdout, "set") if sets_result.ok else set()
        return chains, sets or set()

    async def table_exists(self) -> bool:
        return (await self.runner.run([self.binary, "list", "chain", FAMILY, TABLE, "services"])).ok


def _names(text: str, kind: str) -> set[str] | None:
    try:
        items = json.loads(text or "{}").get("nftables", [])
    except ValueError:
        return set()
    names: set[str] = set()
    table_seen = False
    for item in items:
        obj = item.get(kind)
        if obj and obj.get("table") == TABLE and obj.get("family") == FAMILY:
            table_seen = True
            names.add(obj["name"])
    return names if table_seen else (set() if kind == "set" else None)


async def cleanup_nftables(runner: CommandRunner) -> list[str]:
    """Delete our table (nothing else of nftables is ours). Returns errors."""
    result = await runner.run(["nft", "delete", "table", FAMILY, TABLE])
    if result.ok or result.returncode == 127:  # deleted, or no nft at all: nothing can exist
        return []
    if "No such file or directory" in result.stderr:
        return []
    return [f"nft delete table: {result.stderr.strip()}"]


class NftablesProxier(ProxierBase):
    """kube-proxy's nftables mode; same handlers and loop as the other modes."""

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
        self.nft = Nft(self.runner)
        self.iptables = Iptables(self.runner, iptables_binary)  # the guard
        self.conntrack = Conntrack(self.runner)
        self.config = NftConfig(
            cluster_cidr=cluster_cidr,
            service_cidr=service_cidr,
            masquerade_all=masquerade_all,
            masquerade_bit=masquerade_bit,
            nodeport_addresses=nodeport_addresses,
            node_ips=list(node_ips),
        )
        self.builder = NftRuleBuilder(self.config)
        self.guard: HostNetworkGuard | None = None
        if guard:
            self.guard = routed_service_guard(
                self.runner, self.iptables, cluster_cidr=cluster_cidr, service_cidr=service_cidr,
                local_cidrs=local_cidrs, device=service_cidr_device, device_type=service_cidr_device_type,
                uplink=uplink,
            )
        self._applied: NftDesired | None = None
        self._chains: set[str] = set()
        self._sets: set[str] = set()
        self._pending_conntrack = UpdateResult()
        self.last_payload: NftPayload | None = None

    def generate(self) -> NftDesired:
        return self.builder.build(self.state)

    async def rules_intact(self) -> bool:
        return await self.nft.table_exists()

    async def sync_proxy_rules(self) -> SyncResult:
        if not self.initialized:
            return self._record(SyncResult(ok=True, skipped=True))
        start = time.perf_counter()
        full = self.need_full_sync
        update = self.state.apply_changes()
        self._pending_conntrack.merge(update)
        try:
            if full:
                if self.guard is not None:
                    await self.guard.ensure()
                objects = await self.nft.table_objects()
                chains, sets = objects or (set(), set())
                self._chains = {c for c in chains if is_service_chain(c)}
                self._sets = {s for s in sets if re.match(r"^affinity-[A-Z2-7]{8}-", s)}
            desired = self.builder.build(self.state)
            payload = self.builder.payload(desired, full, self._applied, self._chains, self._sets)
            restore_start = time.perf_counter()
            await self.nft.apply(payload.text)
            restore_seconds = time.perf_counter() - restore_start
        except Exception as exc:
            self.need_full_sync = True
            self._applied = None
            log.error("nftables sync failed: %s", exc)
            return self._record(
                SyncResult(ok=False, partial=not full, seconds=time.perf_counter() - start, error=str(exc))
            )
        self.need_full_sync = False
        self._applied = desired
        self._chains = set(desired.chains)
        self._sets = set(desired.affinity_sets)
        self.last_payload = payload
        pending, self._pending_conntrack = self._pending_conntrack, UpdateResult()
        await clean_stale_entries(self.conntrack, self.state.services, self._stale_flows(pending))
        return self._record(
            SyncResult(
                ok=True,
                partial=not full,
                seconds=time.perf_counter() - start,
                payload_bytes=len(payload.text),
                restore_seconds=restore_seconds,
                network_programming_seconds=programming_latencies(update.last_change_trigger_times),
            )
        )

    async def guard_counters(self) -> dict[str, int]:
        return await self.guard.counters() if self.guard is not None else {}

    async def cleanup(self) -> list[str]:
        self.stop()
        errors = await cleanup_nftables(self.runner)
        if self.guard is not None:
            try:
                await self.guard.cleanup()
            except Exception as exc:
                errors.append(f"guard: {exc}")
        self._applied = None
        self.need_full_sync = True
        return errors
