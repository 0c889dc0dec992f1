"""Host-side safety net around the service and pod CIDRs.

* The service CIDR is routed to a local device (ifb by default: this kernel has no dummy
  links) so a packet to a service IP that no rule DNATs never follows the default route.
* KUBE-GUARD, the first rule of filter OUTPUT and FORWARD, drops packets to the guarded CIDRs
  (pod and service) that would leave through the uplink (the default route's interface),
  except with --route-pod-cidrs what a peer route sends to another node's pods (podroutes).
  Its packet counters should stay 0; counters() exposes them.
The default route itself is only read, never changed.
"""

from __future__ import annotations

import ipaddress
import logging
import shlex
from collections.abc import Sequence

from kube_proxy.commands import (
    CommandError,
    CommandRunner,
    IpCommand,
    Iptables,
    default_route_interface,
    quote_rule_token,
)
from kube_proxy.podroutes import guard_exemption_rule

log = logging.getLogger("kube-proxy.guard")

GUARD_CHAIN = "KUBE-GUARD"
GUARD_HOOK_COMMENT = "minik8s uplink guard"
GUARD_RULE_COMMENT = "minik8s: cluster traffic must not leave via the uplink"
GUARD_HOOKS = ("OUTPUT", "FORWARD")


class HostNetworkGuard:
    def __init__(
        self,
        runner: CommandRunner,
        guarded_cidrs: Sequence[str],
        service_cidr: str | None = None,
        device: str | None = "kube-svc0",
        device_type: str = "ifb",
        uplink: str | None = None,
        iptables: Iptables | None = None,
        extra_routed_cidrs: Sequence[str] = (),
        peer_exemption: bool = False,
    ) -> None:
        self.runner = runner
        self.iptables = iptables or Iptables(runner)
        self.ip = IpCommand(runner)
        # Canonical form, as `iptables -S` prints it, so ensure() can compare without rewriting.
        self.guarded_cidrs = [str(ipaddress.ip_network(c, strict=False)) for c in guarded_cidrs if c]
        self.service_cidr = service_cidr
        self.device = device
        self.device_type = device_type
        self._uplink = uplink
        # Routed to the device like the service CIDR (e.g. the LoadBalancer address pool).
        self.extra_routed_cidrs = [str(ipaddress.ip_network(c, strict=False)) for c in extra_routed_cidrs if c]
        # --route-pod-cidrs: traffic routed to a peer node's pods may leave (kube_proxy.podroutes)
        self.peer_exemption = peer_exemption

    @property
    def uplink(self) -> str | None:
        if self._uplink is None:
            self._uplink = default_route_interface(self.runner.read_file("/proc/net/route"))
        return self._uplink

    def guard_rules(self) -> list[list[str]]:
        """KUBE-GUARD rules, in the order and form `iptables -S` prints them."""
        if not self.uplink:
            return []
        exemption = [guard_exemption_rule(self.uplink)] if self.peer_exemption else []
        return exemption + [
            ["-d", cidr, "-o", self.uplink, "-m", "comment", "--comment", GUARD_RULE_COMMENT, "-j", "DROP"]
            for cidr in self.guarded_cidrs
        ]

    @staticmethod
    def hook_rule() -> list[str]:
        return ["-m", "comment", "--comment", GUARD_HOOK_COMMENT, "-j", GUARD_CHAIN]

    async def ensure(self) -> None:
        """Idempotent: route + device, guard chain (rewritten only if it differs, so counters
        survive), and hooks kept as the first rule of OUTPUT and FORWARD."""
        if self.service_cidr and self.device:
            await self.ip.ensure_link(self.device, self.device_type)
            await self.ip.replace_route(self.service_cidr, self.device)
            for cidr in self.extra_routed_cidrs:
                await self.ip.replace_route(cidr, self.device)

        desired = self.guard_rules()
        current = await self.iptables.list_rules("filter", GUARD_CHAIN)
        current_rules = [shlex.split(line)[2:] for line in (current or []) if line.startswith("-A ")]
        if current is None or current_rules != desired:
            try:
                await self._write_chain(desired)
            except CommandError as exc:
                if not self.peer_exemption:
                    raise
                # a kernel without the realm match: the guard stays whole, peer routes unusable
                log.warning("the uplink guard cannot let through routes to other nodes' pods (%s)", exc)
                self.peer_exemption = False
                await self._write_chain(self.guard_rules())

        hook = self.hook_rule()
        for chain in GUARD_HOOKS:
            rules = await self.iptables.list_rules("filter", chain) or []
            appended = [shlex.split(line)[2:] for line in rules if line.startswith("-A ")]
            if appended and appended[0] == hook and appended.count(hook) == 1:
                continue
            # Missing, duplicated or no longer first (something inserted above it): re-place it.
            await self.iptables.delete_rule("filter", chain, hook)
            await self.iptables.ensure_rule("filter", chain, hook, prepend=True)

    async def _write_chain(self, rules: list[list[str]]) -> None:
        lines = ["*filter", f":{GUARD_CHAIN} - [0:0]"]
        lines += [f"-A {GUARD_CHAIN} " + " ".join(quote_rule_token(t) for t in rule) for rule in rules]
        lines.append("COMMIT")
        await self.iptables.restore("\n".join(lines) + "\n")

    async def counters(self) -> dict[str, int]:
        """Packets dropped per guarded CIDR ({} when the chain is absent)."""
        text = await self.iptables.save("filter", counters=True)
        found: dict[str, int] = {}
        for line in text.splitlines():
            if f"-A {GUARD_CHAIN} " not in line or not line.startswith("["):
                continue
            packets = int(line[1:].split(":", 1)[0])
            tokens = shlex.split(line.split("] ", 1)[1])
            if tokens[-2:] == ["-j", "RETURN"]:
                continue  # the peer-route exemption: packets let through, not dropped
            cidr = tokens[tokens.index("-d") + 1] if "-d" in tokens else "?"
            found[cidr] = found.get(cidr, 0) + packets
        return found

    async def cleanup(self) -> None:
        for chain in GUARD_HOOKS:
            await self.iptables.delete_rule("filter", chain, self.hook_rule())
        if await self.iptables.list_rules("filter", GUARD_CHAIN) is not None:
            await self.iptables.restore(f"*filter\n:{GUARD_CHAIN} - [0:0]\n-X {GUARD_CHAIN}\nCOMMIT\n")
        if self.service_cidr and self.device:
            for cidr in self.extra_routed_cidrs:
                await self.ip.delete_route(cidr, self.device)
            await self.ip.delete_route(self.service_cidr, self.device)
            await self.ip.delete_link(self.device)


def routed_service_guard(
    runner: CommandRunner,
    iptables: Iptables,
    *,
    cluster_cidr: str | None,
    service_cidr: str | None,
    local_cidrs: Sequence[str],
    device: str | None,
    device_type: str,
    uplink: str | None,
) -> HostNetworkGuard:
    """The guard of the proxiers that route the service CIDR to a local device (iptables and
    nftables modes): cluster, service and local CIDRs (e.g. the LoadBalancer pool) are routed
    to it and kept off the uplink."""
    return HostNetworkGuard(
        runner,
        [c for c in (cluster_cidr, service_cidr, *local_cidrs) if c],
        service_cidr=service_cidr,
        device=device,
        device_type=device_type,
        uplink=uplink,
        iptables=iptables,
        extra_routed_cidrs=local_cidrs,
    )
