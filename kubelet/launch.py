"""How `minictl cluster up` starts the kubelet of the local node for a ClusterConfig.

The cluster's own containerd must run first (kubelet.cri.containerd.start_containerd with the
same data dir): the kubelet talks to its socket and writes the CNI config into its conf_dir.
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

from kubelet.cri.containerd import containerd_paths
from minictl.components import ClusterConfig


def cluster_dns_ip(service_cidr: str) -> str:
    """The tenth address of the service CIDR (10.96.0.10), upstream's kube-dns convention."""
    return str(ipaddress.ip_network(service_cidr, strict=False)[10])


def bootstrap_kubeconfig_path(cfg: ClusterConfig) -> Path:
    """A joined node's bootstrap kubeconfig (the token), written by `minictl node join`."""
    return cfg.dir / "kubeconfigs" / "bootstrap-kubelet.kubeconfig"


def worker_kubeconfig_path(cfg: ClusterConfig) -> Path:
    """A joined node's kubelet kubeconfig, written by the kubelet once its certificate is issued."""
    return cfg.dir / "kubeconfigs" / "kubelet.kubeconfig"


def kubelet_cert_dir(cfg: ClusterConfig) -> Path:
    """The kubelet's certificate directory (its default <root-dir>/pki): the client certificate
    store (kubelet-client-current.pem) and, on a joined node, its self-signed kubelet.crt."""
    return cfg.dir / "kubelet" / "pki"


def seed_client_certificate(cfg: ClusterConfig) -> bool:
    """kubeadm's kubelet-finalize: put the node's client pair from the PKI into the kubelet's
    certificate store, unless the store already holds a valid pair issued by the cluster's CA.

    The kubelet replaces a pair that is not in its store at once (upstream's forceRotation); a
    seeded store spares the first start that certificate request. → True if the store was seeded.
    """
    import datetime as dt

    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    from client.certificate import CertificateStore
    from kubelet.bootstrap import CLIENT_PAIR

    pki = cfg.pki
    store = CertificateStore(kubelet_cert_dir(cfg), CLIENT_PAIR)
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    current = store.load()
    if current is not None and current[0].not_valid_after_utc > dt.datetime.now(dt.UTC):
        try:
            current[0].verify_directly_issued_by(ca)
            return False
        except (ValueError, TypeError, InvalidSignature):
            pass  # from an earlier PKI (`cluster up --reset`): the apiserver no longer trusts it
    cert, key = pki.client(f"node-{cfg.node_name}")
    store.update(cert.read_bytes(), key.read_bytes())
    return True


def kubelet_command(
    cfg: ClusterConfig,
    *,
    node_name: str | None = None,
    port: int = 10250,
    healthz_port: int = 10248,
    pod_cidr: str = "",
    bridge: str = "mk8s0",
    extra_args: list[str] | None = None,
) -> list[str]:
    node = node_name or cfg.node_name
    pki = cfg.pki
    # the address the apiserver reaches this kubelet at (and the pods' hostIP)
    node_ip = cfg.advertise_address if cfg.advertise_address not in ("", "0.0.0.0") else "127.0.0.1"
    paths = containerd_paths(cfg.dir)
    if cfg.is_worker:
        # a joined node: no CA key here. The kubelet bootstraps its client certificate with the
        # token (TLS bootstrap) and requests its serving certificate (kubeadm's serverTLSBootstrap)
        credentials = [
            "--bootstrap-kubeconfig", str(bootstrap_kubeconfig_path(cfg)),
            "--kubeconfig", str(worker_kubeconfig_path(cfg)),
            "--rotate-server-certificates", "true",
        ]
    else:
        cert, key = pki.kubelet_serving(node)
        credentials = [
            "--kubeconfig", str(cfg.dir / "kubeconfigs" / f"kubelet-{node}.kubeconfig"),
            "--tls-cert-file", str(cert),
            "--tls-private-key-file", str(key),
        ]
    cmd = [
        sys.executable, "-m", "kubelet",
        *credentials,
        "--cert-dir", str(kubelet_cert_dir(cfg)),
        "--rotate-certificates", "true",  # kubeadm's rotateCertificates: true (upstream's default is false)
        "--hostname-override", node,
        "--node-ip", node_ip,
        "--root-dir", str(cfg.dir / "kubelet"),
        "--container-runtime-endpoint", paths.endpoint,
        "--address", node_ip,
        "--port", str(port),
        "--healthz-port", str(healthz_port),
        "--client-ca-file", str(pki.ca_cert),
        "--cni-conf-dir", str(paths.cni_conf_dir),
        "--cni-bridge", bridge,
        "--cluster-cidr", cfg.cluster_cidr,
        "--cluster-dns", cluster_dns_ip(cfg.service_cidr),
        "--cluster-domain", "cluster.local",
        # one cgroup subtree per node, so a second cluster on this host never touches ours
        "--cgroup-root", f"/minik8s-{node}",
    ]
    if pod_cidr:
        cmd += ["--pod-cidr", pod_cidr]
    return cmd + list(extra_args or [])


def apiserver_kubelet_client_args(cfg: ClusterConfig) -> list[str]:
    """The apiserver flags that let it reach kubelets (pods/log, exec, attach, portforward).

    With --kubelet-certificate-authority (which kubeadm leaves out): every kubelet minictl starts
    serves with a certificate of the cluster's CA — issued by minictl, or for a joined node
    requested by the kubelet itself (--rotate-server-certificates) and approved by the
    controller-manager's kubelet-serving-approver.
    """
    pki = cfg.pki
    return [
        "--kubelet-client-certificate", str(pki.apiserver_kubelet_client_cert),
        "--kubelet-client-key", str(pki.apiserver_kubelet_client_key),
        "--kubelet-certificate-authority", str(pki.ca_cert),
    ]
