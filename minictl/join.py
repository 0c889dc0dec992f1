"""`minictl node join`: make this machine a worker of a running cluster, as `kubeadm join` does.

1. Discovery (kubeadm's token discovery): read `kube-public/cluster-info` anonymously over TLS
   that is not verified yet; trust its kubeconfig only if its `jws-kubeconfig-<token-id>`
   signature is the token's; pin the CA it names by the SHA-256 of its SubjectPublicKeyInfo
   (`--discovery-token-ca-cert-hash`, unless `--discovery-token-unsafe-skip-ca-verification`);
   then read cluster-info again, now verifying the apiserver with that CA, and check it is the
   same.
2. Write DATA_DIR/pki/ca.crt and the kubelet's bootstrap kubeconfig (the token), and a worker
   cluster.json; then start the node's components (containerd, kubelet, kube-proxy) exactly as
   `minictl cluster up` starts the local node's. The kubelet requests its own client certificate
   (TLS bootstrap) with the token; the control plane approves and signs it.
"""

from __future__ import annotations

import base64
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from cryptography import x509

from apimachinery.bootstraptoken import (
    CLUSTER_INFO_NAME,
    CLUSTER_INFO_NAMESPACE,
    JWS_PREFIX,
    KUBECONFIG_KEY,
    ca_cert_hash,
    detached_signature_valid,
    normalize_ca_hash,
    parse_token,
)
from certs.kubeconfig import write_kubeconfig
from certs.pki import write_file_atomic

CLUSTER_INFO_PATH = f"/api/v1/namespaces/{CLUSTER_INFO_NAMESPACE}/configmaps/{CLUSTER_INFO_NAME}"


class DiscoveryError(RuntimeError):
    """The cluster cannot be trusted or reached: the message says why and what to do."""


class RetryableDiscoveryError(DiscoveryError):
    """Not (yet) possible: the apiserver is unreachable, cluster-info or its signature missing."""


@dataclass(frozen=True)
class ClusterInfo:
    """What discovery established: the apiserver cluster-info names and the CA it is pinned to."""

    server: str
    ca_pem: bytes
    ca_hash: str


def _server_url(server: str) -> str:
    server = server.strip().rstrip("/")
    if "://" not in server:
        server = "https://" + server
    if not server.startswith("https://"):
        raise DiscoveryError(f"the apiserver address {server!r} must be https://HOST:PORT (or HOST:PORT)")
    return server


def _get_cluster_info(server: str, verify: ssl.SSLContext | bool, timeout: float) -> dict[str, Any]:
    try:
        r = httpx.get(server + CLUSTER_INFO_PATH, verify=verify, timeout=timeout,
                      headers={"Accept": "application/json", "User-Agent": "minictl-node-join"})
    except httpx.ConnectError as e:
        if isinstance(verify, ssl.SSLContext) and "CERTIFICATE_VERIFY_FAILED" in str(e):
            raise DiscoveryError(f"the apiserver at {server} does not present a certificate of the pinned CA for "
                                 f"that address: {e}") from e
        raise RetryableDiscoveryError(f"cannot reach the apiserver at {server}: {e}") from e
    except httpx.HTTPError as e:
        raise RetryableDiscoveryError(f"cannot reach the apiserver at {server}: {type(e).__name__}: {e}") from e
    if r.status_code in (401, 403):
        raise DiscoveryError(
            f"the apiserver at {server} refused an anonymous read of {CLUSTER_INFO_NAMESPACE}/{CLUSTER_INFO_NAME} "
            f"({r.status_code}): it needs --anonymous-auth and the kubeadm:bootstrap-signer-clusterinfo RoleBinding "
            "(`minictl cluster up` sets both up for new clusters)")
    if r.status_code == 404:
        raise RetryableDiscoveryError(f"{CLUSTER_INFO_NAMESPACE}/{CLUSTER_INFO_NAME} does not exist (yet) at {server}")
    if r.status_code != 200:
        raise RetryableDiscoveryError(f"reading cluster-info from {server}: HTTP {r.status_code}: {r.text[:200]}")
    try:
        return r.json()
    except ValueError as e:
        raise DiscoveryError(f"cluster-info from {server} is not JSON: {e}") from e


def parse_cluster_info_kubeconfig(content: str) -> tuple[str, bytes]:
    """(server, CA PEM) of cluster-info's kubeconfig (exactly one cluster, with its CA inline)."""
    try:
        config = yaml.safe_load(content)
        clusters = config.get("clusters") or []
    except (yaml.YAMLError, AttributeError) as e:
        raise DiscoveryError(f"the kubeconfig in cluster-info cannot be parsed: {e}") from e
    if len(clusters) != 1:
        raise DiscoveryError(f"the kubeconfig in cluster-info has {len(clusters)} clusters; want exactly one")
    cluster = clusters[0].get("cluster") or {}
    try:
        ca_pem = base64.b64decode(cluster.get("certificate-authority-data") or "", validate=True)
    except ValueError as e:
        raise DiscoveryError(f"certificate-authority-data in cluster-info is not base64: {e}") from e
    if not ca_pem:
        raise DiscoveryError("the kubeconfig in cluster-info has no certificate-authority-data")
    return str(cluster.get("server") or ""), ca_pem


def validate_cluster_info(cm: dict[str, Any], token: str, ca_hashes: Sequence[str],
                          unsafe_skip_ca_verification: bool = False) -> ClusterInfo:
    """Check cluster-info's signature with the token and its CA against the pinned hashes."""
    token_id, token_secret = parse_token(token)
    data = cm.get("data") or {}
    content = data.get(KUBECONFIG_KEY)
    if not content:
        raise DiscoveryError(f"there is no {KUBECONFIG_KEY!r} in the {CLUSTER_INFO_NAME} ConfigMap")
    signature = data.get(JWS_PREFIX + token_id)
    if not signature:
        raise RetryableDiscoveryError(
            f"there is no JWS signed token in the {CLUSTER_INFO_NAME} ConfigMap: token id {token_id!r} is invalid for "
            "this cluster or has expired (`minictl token list` on the control plane), or the controller-manager's "
            "bootstrap signer has not signed it yet")
    if not detached_signature_valid(signature, content, token_id, token_secret):
        raise DiscoveryError("the JWS signature of cluster-info does not match the token: wrong token secret, or "
                             "this is not the cluster the token is for — this apiserver is not trusted")
    server, ca_pem = parse_cluster_info_kubeconfig(content)
    try:
        cas = x509.load_pem_x509_certificates(ca_pem)
    except ValueError as e:
        raise DiscoveryError(f"the CA in cluster-info cannot be parsed: {e}") from e
    found = [ca_cert_hash(c) for c in cas]
    if not unsafe_skip_ca_verification:
        wanted = {normalize_ca_hash(h) for h in ca_hashes}
        if not wanted & set(found):
            raise DiscoveryError(
                f"the cluster CA found in cluster-info ({', '.join(found)}) matches none of the pinned public keys "
                f"({', '.join(sorted(wanted))}): refusing to join. Check --discovery-token-ca-cert-hash against "
                "`minictl token create --print-join-command` on the control plane")
    return ClusterInfo(server, ca_pem, found[0])


def discover(server: str, token: str, ca_hashes: Sequence[str], *, unsafe_skip_ca_verification: bool = False,
             timeout: float = 300.0, request_timeout: float = 10.0) -> ClusterInfo:
    """kubeadm's token discovery against `server` (retried until `timeout` while not yet possible)."""
    server = _server_url(server)
    parse_token(token)  # a malformed token fails before any network traffic
    if not ca_hashes and not unsafe_skip_ca_verification:
        raise DiscoveryError("token discovery without --discovery-token-ca-cert-hash is unsafe: pass the hash "
                             "(from `minictl token create --print-join-command`), or "
                             "--discovery-token-unsafe-skip-ca-verification to trust whatever CA the server names")
    for h in ca_hashes:
        normalize_ca_hash(h)
    deadline = time.monotonic() + timeout
    delay = 0.5
    while True:
        try:
            insecure = _get_cluster_info(server, False, request_timeout)
            info = validate_cluster_info(insecure, token, ca_hashes, unsafe_skip_ca_verification)
            # the same object again, now over TLS verified with the CA just pinned
            ctx = ssl.create_default_context(cadata=info.ca_pem.decode("ascii"))
            secure = _get_cluster_info(server, ctx, request_timeout)
            if (secure.get("data") or {}).get(KUBECONFIG_KEY) != insecure["data"][KUBECONFIG_KEY]:
                raise DiscoveryError("cluster-info read again over verified TLS differs from the first read: "
                                     "refusing to join")
            return info
        except RetryableDiscoveryError:
            if time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def write_join_files(data_dir: Path, server: str, token: str, ca_pem: bytes, bootstrap_kubeconfig: Path) -> Path:
    """DATA_DIR/pki/ca.crt and the kubelet's bootstrap kubeconfig (0600: it holds the token), with
    kubeadm's user name."""
    pki = data_dir / "pki"
    pki.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_file_atomic(pki / "ca.crt", ca_pem, 0o644)
    parse_token(token)
    bootstrap_kubeconfig.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return write_kubeconfig(bootstrap_kubeconfig, server=server, ca_cert=pki / "ca.crt",
                            user="tls-bootstrap-token-user", token=token)
