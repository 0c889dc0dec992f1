"""Chain names shared by the iptables and IPVS proxiers, their hashing, and leftover cleanup."""

from __future__ import annotations

import base64
import hashlib
import shlex
from dataclasses import dataclass
from functools import lru_cache

from kube_proxy.commands import Iptables, chains_in_save, quote_rule_token

KUBE_SERVICES = "KUBE-SERVICES"
KUBE_EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
KUBE_NODEPORTS = "KUBE-NODEPORTS"
KUBE_POSTROUTING = "KUBE-POSTROUTING"
KUBE_MARK_MASQ = "KUBE-MARK-MASQ"
KUBE_FORWARD = "KUBE-FORWARD"
KUBE_PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
KUBE_FIREWALL = "KUBE-FIREWALL"  # upstream shares it with the kubelet (localnet guard)
# IPVS mode
KUBE_NODE_PORT = "KUBE-NODE-PORT"
KUBE_LOAD_BALANCER = "KUBE-LOAD-BALANCER"
KUBE_SOURCE_RANGES_FIREWALL = "KUBE-SOURCE-RANGES-FIREWALL"
KUBE_IPVS_FILTER = "KUBE-IPVS-FILTER"
KUBE_IPVS_OUT_FILTER = "KUBE-IPVS-OUT-FILTER"
KUBE_GUARD = "KUBE-GUARD"
# Empty chains whose disappearance means someone flushed the tables (upstream's canary).
KUBE_PROXY_CANARY = "KUBE-PROXY-CANARY"

SVC_PREFIX = "KUBE-SVC-"
SVL_PREFIX = "KUBE-SVL-"
EXT_PREFIX = "KUBE-EXT-"
FW_PREFIX = "KUBE-FW-"
SEP_PREFIX = "KUBE-SEP-"
SERVICE_CHAIN_PREFIXES = (SVC_PREFIX, SVL_PREFIX, EXT_PREFIX, FW_PREFIX, SEP_PREFIX)

# Every fixed chain either proxier mode may create; cleanup removes all of them.
FIXED_CHAINS = {
    "nat": (
        KUBE_SERVICES,
        KUBE_NODEPORTS,
        KUBE_POSTROUTING,
        KUBE_MARK_MASQ,
        KUBE_NODE_PORT,
        KUBE_LOAD_BALANCER,
        KUBE_PROXY_CANARY,
    ),
    "filter": (
        KUBE_SERVICES,
        KUBE_EXTERNAL_SERVICES,
        KUBE_NODEPORTS,
        KUBE_FORWARD,
        KUBE_PROXY_FIREWALL,
        KUBE_FIREWALL,
        KUBE_NODE_PORT,
        KUBE_SOURCE_RANGES_FIREWALL,
        KUBE_IPVS_FILTER,
        KUBE_IPVS_OUT_FILTER,
        KUBE_GUARD,
        KUBE_PROXY_CANARY,
    ),
}

NEW_ONLY = ("-m", "conntrack", "--ctstate", "NEW")


@dataclass(frozen=True)
class JumpChain:
    """A rule in a built-in chain that hands packets to one of ours (installed with -I)."""

    table: str
    src: str
    dst: str
    comment: str
    extra: tuple[str, ...] = ()

    def rule(self) -> list[str]:
        args = list(self.extra)
        if self.comment:
            args += ["-m", "comment", "--comment", self.comment]
        return [*args, "-j", self.dst]


def is_service_chain(name: str) -> bool:
    return name.startswith(SERVICE_CHAIN_PREFIXES)


@lru_cache(maxsize=1 << 17)
def _hash16(text: str) -> str:
    # 16 base32 characters encode exactly the first 10 bytes of the digest (same prefix as
    # encoding all of it, without the cost of Python's base32 on 32 bytes).
    return base64.b32encode(hashlib.sha256(text.encode()).digest()[:10]).decode()


@lru_cache(maxsize=1 << 16)
def service_chain_names(service_port_name: str, protocol: str) -> tuple[str, str, str, str]:
    """(KUBE-SVC-, KUBE-SVL-, KUBE-EXT-, KUBE-FW-) names: base32(sha256(name + protocol))[:16],
    protocol lower-case, as upstream's portProtoHash."""
    h = _hash16(service_port_name + protocol)
    return SVC_PREFIX + h, SVL_PREFIX + h, EXT_PREFIX + h, FW_PREFIX + h


def endpoint_chain_name(service_port_name: str, protocol: str, endpoint: str) -> str:
    """KUBE-SEP- name: base32(sha256(name + protocol + "ip:port"))[:16]."""
    return SEP_PREFIX + _hash16(service_port_name + protocol + endpoint)


def _rule_target(tokens: list[str]) -> str | None:
    for flag in ("-j", "-g"):
        if flag in tokens:
            i = tokens.index(flag)
            return tokens[i + 1] if i + 1 < len(tokens) else None
    return None


def leftover_cleanup_payload(table: str, saved: str) -> str | None:
    """An iptables-restore --noflush payload that removes every kube-proxy chain in `table`
    (fixed names and hashed service chains) and every other rule jumping to one (the hooks).
    None when there is nothing to remove."""
    existing = chains_in_save(saved)
    ours = [c for c in existing if c in FIXED_CHAINS.get(table, ()) or is_service_chain(c)]
    if not ours:
        return None
    ours_set = set(ours)
    lines = [f"*{table}"]
    lines += [f":{c} - [0:0]" for c in sorted(ours)]
    for line in saved.splitlines():
        if line.startswith("["):  # counters
            line = line.split("] ", 1)[1]
        if not line.startswith("-A "):
            continue
        tokens = shlex.split(line)
        if tokens[1] not in ours_set and _rule_target(tokens) in ours_set:
            lines.append("-D " + " ".join(quote_rule_token(t) for t in tokens[1:]))
    lines += [f"-X {c}" for c in sorted(ours)]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


async def cleanup_leftovers(iptables: Iptables) -> list[str]:
    """Remove all kube-proxy chains and hooks (both modes) from nat and filter.
    Returns error messages (empty on success)."""
    errors = []
    for table in ("nat", "filter"):
        try:
            payload = leftover_cleanup_payload(table, await iptables.save(table))
            if payload:
                await iptables.restore(payload)
        except Exception as exc:  # keep going: clean as much as possible
            errors.append(f"{table}: {exc}")
    return errors
