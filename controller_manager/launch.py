"""How `minictl cluster up` starts the controller-manager for a ClusterConfig."""

from __future__ import annotations

import sys

from minictl.components import ClusterConfig


def controller_manager_command(cfg: ClusterConfig) -> list[str]:
    pki = cfg.pki
    return [
        sys.executable, "-m", "controller_manager",
        "--kubeconfig", str(cfg.dir / "kubeconfigs" / "controller-manager.kubeconfig"),
        "--leader-elect",
        "--bind-address", "127.0.0.1",
        "--secure-port", "10257",
        # as kubeadm runs it: the bootstrap signer signs kube-public/cluster-info for `node join`,
        # the token cleaner removes expired bootstrap tokens
        "--controllers", "*,bootstrapsigner,tokencleaner",
        "--cluster-cidr", cfg.cluster_cidr,
        "--allocate-node-cidrs",
        "--use-service-account-credentials",
        "--service-cluster-ip-range", cfg.service_cidr,
        "--service-account-private-key-file", str(pki.sa_key),
        "--root-ca-file", str(pki.ca_cert),
        # CertificateSigningRequests of the kubernetes.io signers are issued by the cluster CA
        "--cluster-signing-cert-file", str(pki.ca_cert),
        "--cluster-signing-key-file", str(pki.ca_key),
        # a local cluster: the apiserver is next door, upstream's 20 qps would only slow it down
        "--kube-api-qps", "200",
        "--kube-api-burst", "400",
    ]
