"""How `minictl cluster up` starts kube-proxy and the LoadBalancer controller.

    write_cluster_kubeconfigs(cfg.pki, cfg.dir / "kubeconfigs", cfg.server_url)  # kube-proxy.kubeconfig
    write_lb_controller_kubeconfig(cfg)                    # kubeconfigs/lb-controller.kubeconfig
    kube_proxy_command(cfg), lb_controller_command(cfg)

kube-proxy needs root (iptables, routes); both are long-running processes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from kube_proxy.lbcontroller import DEFAULT_POOL
from minictl.components import ClusterConfig, write_identity_kubeconfig

# The service controller's identity upstream (bound to system:controller:service-controller
# by the bootstrap policy).
LB_CONTROLLER_USER = "system:serviceaccount:kube-system:service-controller"
LB_CONTROLLER_GROUPS = ("system:serviceaccounts", "system:serviceaccounts:kube-system")


KUBECONFIG_DIR = "kubeconfigs"  # under the data dir, as kubelet.launch expects its own


def kube_proxy_kubeconfig(cfg: ClusterConfig) -> Path:
    """Where certs.write_cluster_kubeconfigs(cfg.pki, cfg.dir / "kubeconfigs", ...) puts kube-proxy's.

    On a joined node (no CA key to mint an identity) kube-proxy uses the kubelet's bootstrapped
    kubeconfig: the node's certificate, which `minik8s:node-proxier` lets read what kube-proxy needs."""
    if cfg.is_worker:
        from kubelet.launch import worker_kubeconfig_path

        return worker_kubeconfig_path(cfg)
    return cfg.dir / KUBECONFIG_DIR / "kube-proxy.kubeconfig"


def lb_controller_kubeconfig(cfg: ClusterConfig) -> Path:
    return cfg.dir / KUBECONFIG_DIR / "lb-controller.kubeconfig"


def kube_proxy_command(cfg: ClusterConfig, lb_pool: str = DEFAULT_POOL) -> list[str]:
    return [
        sys.executable, "-m", "kube_proxy",
        "--kubeconfig", str(kube_proxy_kubeconfig(cfg)),
        "--hostname-override", cfg.node_name,
        "--cluster-cidr", cfg.cluster_cidr,
        "--service-cluster-ip-range", cfg.service_cidr,
        "--lb-pool", lb_pool,
        "--route-pod-cidrs",  # pods on other nodes (joined VMs, compose's second node) are reachable
    ]


def write_lb_controller_kubeconfig(cfg: ClusterConfig) -> Path:
    """Issue (or keep) the LB controller's client certificate and write its kubeconfig."""
    return write_identity_kubeconfig(cfg, lb_controller_kubeconfig(cfg).name, "lb-controller",
                                     LB_CONTROLLER_USER, tuple(LB_CONTROLLER_GROUPS))


def lb_controller_command(cfg: ClusterConfig, lb_pool: str = DEFAULT_POOL) -> list[str]:
    return [
        sys.executable, "-m", "kube_proxy.lbcontroller",
        "--kubeconfig", str(lb_controller_kubeconfig(cfg)),
        "--lb-pool", lb_pool,
    ]
