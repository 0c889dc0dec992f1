"""Cluster PKI (CA, serving and client certificates, ServiceAccount keys) and kubeconfig files."""

from certs.kubeconfig import (
    KubeconfigError,
    KubeconfigInfo,
    default_kubeconfig_path,
    load_kubeconfig,
    write_cluster_kubeconfigs,
    write_kubeconfig,
)
from certs.pki import (
    PKI,
    PKIError,
    certificate_identity,
    check_expiry,
    ensure_pki,
    host_ipv4_addresses,
    issue_client_cert,
    issue_kubelet_serving_cert,
    rotate,
)

__all__ = [
    "PKI",
    "KubeconfigError",
    "KubeconfigInfo",
    "PKIError",
    "certificate_identity",
    "check_expiry",
    "default_kubeconfig_path",
    "ensure_pki",
    "host_ipv4_addresses",
    "issue_client_cert",
    "issue_kubelet_serving_cert",
    "load_kubeconfig",
    "rotate",
    "write_cluster_kubeconfigs",
    "write_kubeconfig",
]
