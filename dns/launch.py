"""How `minictl cluster up` starts the cluster DNS.

    install_addon_sync(cfg.admin_kubeconfig)      # once the apiserver is ready (admin)
    write_dns_kubeconfig(cfg)                     # kubeconfigs/dns.kubeconfig (kube-system/coredns)
    dns_command(cfg)                              # long-running; needs root for port 53

The process serves on the gateway of the node's podCIDR (the CNI bridge address), port 53,
and publishes that address as the kube-dns Service's endpoint (10.96.0.10 → kube-proxy DNAT).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from client import APIClient, load_config
from dns.addon import CLUSTER_DNS_IP, DNS_GROUPS, DNS_USER, install_addon
from minictl.components import ClusterConfig, write_identity_kubeconfig


def dns_kubeconfig(cfg: ClusterConfig) -> Path:
    return cfg.dir / "kubeconfigs" / "dns.kubeconfig"  # beside the other components' kubeconfigs


def write_dns_kubeconfig(cfg: ClusterConfig) -> Path:
    """Issue (or keep) the DNS process's client certificate; write its kubeconfig."""
    return write_identity_kubeconfig(cfg, dns_kubeconfig(cfg).name, "coredns", DNS_USER, tuple(DNS_GROUPS))


def install_addon_sync(admin_kubeconfig: str | Path, cluster_ip: str = CLUSTER_DNS_IP) -> list[str]:
    async def run() -> list[str]:
        async with APIClient(load_config(admin_kubeconfig)) as api:
            return await install_addon(api, cluster_ip)

    return asyncio.run(run())


def dns_command(cfg: ClusterConfig) -> list[str]:
    return [
        sys.executable, "-m", "dns",
        "--kubeconfig", str(dns_kubeconfig(cfg)),
        "--node-name", cfg.node_name,
        "--endpoint-address", "auto",
    ]
