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

from certs import issue_client_cert, write_kubeconfig
from client import APIClient, load_config
from dns.addon import CLUSTER_DNS_IP, DNS_GROUPS, DNS_USER, install_addon
from minictl.components import ClusterConfig


def dns_kubeconfig(cfg: ClusterConfig) -> Path:
    return cfg.dir / "kubeconfigs" / "dns.kubeconfig"  # beside the other components' kubeconfigs


def write_dns_kubeconfig(cfg: ClusterConfig) -> Path:
    """Issue (or keep) the DNS process's client certificate; write its kubeconfig."""
    cert, key = issue_client_cert(cfg.pki, "coredns", DNS_USER, DNS_GROUPS)
    dns_kubeconfig(cfg).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return write_kubeconfig(dns_kubeconfig(cfg), server=cfg.server_url, ca_cert=cfg.pki.ca_cert, user=DNS_USER,
                            client_cert=cert, client_key=key)


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
