"""Pod networking on the node: the CNI config (bridge + host-local for the node's podCIDR) and
the two filter rules pods need here.

* `KUBELET-FWD-<bridge>` accepts forwarded traffic from and to the node's pod CIDR: Docker
  sets the FORWARD policy to DROP, and with br_netfilter even pod↔pod traffic on the bridge
  passes FORWARD.
* `KUBELET-GRD-<bridge>`, hooked first into FORWARD and OUTPUT, drops packets to the cluster
  CIDR that would leave through the uplink (the default route's interface) and, unless
  disabled, pod-sourced packets leaving through it: pods' traffic stays on this machine —
  except what kube-proxy's routes to other nodes' pod CIDRs carry (kube_proxy.podroutes).

The default route is only read, never changed. containerd picks the conflist up by itself
(NetworkReady flips true once it appears).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

# the uplink guard must pick the same interface as kube-proxy's, and quote rules the same way
from kube_proxy.commands import default_route_interface, quote_rule_token
from kube_proxy.podroutes import guard_exemption_rule

log = logging.getLogger("kubelet.network")

CONFLIST_NAME = "10-minik8s.conflist"
IPTABLES = "iptables"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def conflist(network: str, bridge: str, pod_cidr: str, ipam_dir: str | os.PathLike[str]) -> dict:
    """The CNI network config: bridge + host-local (+ portmap for hostPorts)."""
    return {
        "cniVersion": "1.0.0",
        "name": network,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": True,
                "hairpinMode": True,
                "ipMasq": False,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": str(ipaddress.ip_network(pod_cidr, strict=False))}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(ipam_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def write_cni_config(
    conf_dir: str | os.PathLike[str], network: str, bridge: str, pod_cidr: str, ipam_dir: str | os.PathLike[str]
) -> bool:
    """Write the conflist atomically; True if it changed."""
    directory = Path(conf_dir)
    directory.mkdir(parents=True, exist_ok=True)
    data = json.dumps(conflist(network, bridge, pod_cidr, ipam_dir), indent=2) + "\n"
    path = directory / CONFLIST_NAME
    try:
        if path.read_text() == data:
            return False
    except OSError:
        pass
    tmp = directory / f".{CONFLIST_NAME}.tmp"
    tmp.write_text(data)
    os.replace(tmp, path)
    return True


def chain_names(bridge: str) -> tuple[str, str]:
    """(forward-accept chain, guard chain), derived from the bridge so nodes on one host differ."""
    return f"KUBELET-FWD-{bridge}"[:28], f"KUBELET-GRD-{bridge}"[:28]


@dataclass
class FilterRules:
    """The desired content of our two chains."""

    forward: list[list[str]]
    guard: list[list[str]]


def desired_rules(pod_cidr: str, cluster_cidr: str, uplink: str | None, guard_pod_egress: bool,
                  peer_exemption: bool = True) -> FilterRules:
    """Our two chains' rules. `peer_exemption`: the guard first lets through what kube-proxy's
    peer routes (`--route-pod-cidrs`) send to other nodes' pods; it needs the kernel's realm match."""
    pod = str(ipaddress.ip_network(pod_cidr, strict=False))
    forward = [
        ["-s", pod, "-m", "comment", "--comment", "minik8s: pods of this node", "-j", "ACCEPT"],
        ["-d", pod, "-m", "comment", "--comment", "minik8s: pods of this node", "-j", "ACCEPT"],
    ]
    guard: list[list[str]] = []
    if uplink:
        if peer_exemption:
            guard.append(guard_exemption_rule(uplink))
        cluster = str(ipaddress.ip_network(cluster_cidr or pod_cidr, strict=False))
        guard.append(["-d", cluster, "-o", uplink, "-m", "comment", "--comment",
                      "minik8s: cluster traffic must not leave via the uplink", "-j", "DROP"])
        if guard_pod_egress:
            guard.append(["-s", pod, "-o", uplink, "-m", "comment", "--comment",
                          "minik8s: pod traffic must not leave via the uplink", "-j", "DROP"])
    return FilterRules(forward, guard)


async def _run(*argv: str, stdin: str | None = None, check: bool = True) -> tuple[int, str]:
    env = {**os.environ, "PATH": f"{os.environ.get('PATH', '')}:{SYSTEM_PATH}"}
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    out, _ = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin is not None else None), 30)
    text = out.decode(errors="replace")
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {text.strip()}")
    return proc.returncode or 0, text


def _rule_line(chain: str, rule: list[str]) -> str:
    return f"-A {chain} " + " ".join(quote_rule_token(t) for t in rule)


async def _chain_rules(chain: str) -> list[list[str]] | None:
    rc, out = await _run(IPTABLES, "-w", "-t", "filter", "-S", chain, check=False)
    if rc != 0:
        return None
    return [shlex.split(line)[2:] for line in out.splitlines() if line.startswith(f"-A {chain} ")]


async def _ensure_jump(hook: str, chain: str, position: int) -> None:
    jump = ["-j", chain]
    rules = await _chain_rules(hook) or []
    if rules.count(jump) == 1 and len(rules) > position - 1 and rules[position - 1] == jump:
        return
    for _ in range(100):  # remove duplicates / a misplaced hook
        if (await _run(IPTABLES, "-w", "-t", "filter", "-D", hook, *jump, check=False))[0] != 0:
            break
    remaining = len(await _chain_rules(hook) or [])
    await _run(IPTABLES, "-w", "-t", "filter", "-I", hook, str(min(position, remaining + 1)), *jump)


async def ensure_filter_rules(bridge: str, rules: FilterRules) -> None:
    """Make our chains hold exactly `rules` and hook them in (guard first, then the accept)."""
    fwd_chain, guard_chain = chain_names(bridge)
    lines = []
    for chain, wanted in ((fwd_chain, rules.forward), (guard_chain, rules.guard)):
        if await _chain_rules(chain) != wanted:
            lines.append(f":{chain} - [0:0]")
            lines += [_rule_line(chain, r) for r in wanted]
    if lines:
        await _run("iptables-restore", "-w", "--noflush", stdin="*filter\n" + "\n".join(lines) + "\nCOMMIT\n")
    await _ensure_jump("FORWARD", guard_chain, 1)
    await _ensure_jump("FORWARD", fwd_chain, 2)
    await _ensure_jump("OUTPUT", guard_chain, 1)


async def cleanup_filter_rules(bridge: str) -> None:
    """Remove our hooks and chains (for `cluster down` and tests)."""
    fwd_chain, guard_chain = chain_names(bridge)
    for hook, chain in (("FORWARD", guard_chain), ("FORWARD", fwd_chain), ("OUTPUT", guard_chain)):
        for _ in range(100):
            if (await _run(IPTABLES, "-w", "-t", "filter", "-D", hook, "-j", chain, check=False))[0] != 0:
                break
    for chain in (fwd_chain, guard_chain):
        await _run(IPTABLES, "-w", "-t", "filter", "-F", chain, check=False)
        await _run(IPTABLES, "-w", "-t", "filter", "-X", chain, check=False)


async def delete_bridge(bridge: str) -> None:
    """The bridge plugin never deletes its bridge: remove it when the node goes away."""
    await _run("ip", "link", "del", "dev", bridge, check=False)


def uplink_interface() -> str | None:
    try:
        return default_route_interface(Path("/proc/net/route").read_text())
    except OSError:
        return None
