"""Kubelet TLS bootstrap (upstream pkg/kubelet/certificate/bootstrap) and its certificates.

`--bootstrap-kubeconfig` holds a bootstrap token. When `--kubeconfig` is missing or its client
certificate is unusable (unreadable, expired), the kubelet uses the token to request its own
client certificate — a CertificateSigningRequest for signer
`kubernetes.io/kube-apiserver-client-kubelet`, subject `O=system:nodes, CN=system:node:<name>`,
a fresh ECDSA P-256 key, usages digital signature + client auth — waits until it is approved
and signed, puts certificate and key into `<cert-dir>/kubelet-client-current.pem` and writes
`--kubeconfig` pointing at that file. The key being requested is kept in
`<cert-dir>/kubelet-client.key.tmp` until then, and the CSR has a name derived from key and
subject, so a kubelet restarted while it waits picks up the same request.

Without `--tls-cert-file`, the kubelet's HTTPS server uses `<cert-dir>/kubelet.crt|key`, a
self-signed certificate made on first start (upstream's behaviour) — or, with
`--rotate-server-certificates`, `<cert-dir>/kubelet-server-current.pem` from a
kubernetes.io/kubelet-serving request (kubelet/__main__.serving_certificate_manager).
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509

from certs.kubeconfig import KubeconfigError, load_kubeconfig
from certs.pki import write_file_atomic, write_self_signed_serving_cert
from client import APIClient, from_kubeconfig
from client.certificate import (
    KUBELET_CLIENT_SIGNER,
    CertificateStore,
    PrivateKey,
    digested_name,
    kubelet_client_usages,
    load_private_key,
    make_csr,
    new_private_key,
    node_subject,
    private_key_pem,
    request_certificate,
    split_pem,
    wait_for_certificate,
)

log = logging.getLogger("kubelet.bootstrap")

CLIENT_PAIR = "kubelet-client"
SERVER_PAIR = "kubelet-server"  # --rotate-server-certificates: <cert-dir>/kubelet-server-current.pem
TMP_KEY = "kubelet-client.key.tmp"


class BootstrapError(RuntimeError):
    """The kubelet cannot get credentials: it must not start."""


def client_config_still_valid(kubeconfig: Path, now: dt.datetime | None = None) -> tuple[bool, str]:
    """Whether `kubeconfig` exists and carries a loadable, unexpired client certificate (and why not)."""
    if not kubeconfig.exists():
        return False, f"{kubeconfig} does not exist"
    try:
        info = load_kubeconfig(kubeconfig)
    except KubeconfigError as e:
        return False, str(e)
    if not info.client_cert_pem or not info.client_key_pem:
        return False, f"{kubeconfig} has no client certificate"
    try:
        certs = x509.load_pem_x509_certificates(info.client_cert_pem)
        load_private_key(info.client_key_pem)
    except ValueError as e:
        return False, f"the client certificate of {kubeconfig} cannot be loaded: {e}"
    now = now or dt.datetime.now(dt.UTC)
    for cert in certs:
        if cert.not_valid_after_utc <= now:
            return False, f"the client certificate of {kubeconfig} expired at {cert.not_valid_after_utc.isoformat()}"
    return True, ""


def write_cert_kubeconfig(path: Path, server: str, ca_pem: bytes | None, cert_path: Path,
                          insecure: bool = False, tls_server_name: str | None = None) -> Path:
    """A kubeconfig whose user is the certificate store's current pair (by path, so a rotated
    certificate is what the next start reads): upstream's writeKubeconfigFromBootstrapping."""
    cluster: dict[str, Any] = {"server": server}
    if ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode("ascii")
    if insecure:
        cluster["insecure-skip-tls-verify"] = True
    if tls_server_name:
        cluster["tls-server-name"] = tls_server_name
    pem = str(cert_path.absolute())  # the symlink, never one dated file: a rotation is seen on restart
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "default-cluster", "cluster": cluster}],
        "users": [{"name": "default-auth", "user": {"client-certificate": pem, "client-key": pem}}],
        "contexts": [{"name": "default-context", "context": {"cluster": "default-cluster", "user": "default-auth",
                                                              "namespace": "default"}}],
        "current-context": "default-context",
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file_atomic(path, yaml.safe_dump(config, sort_keys=False).encode(), 0o600)
    return path


def _bootstrap_key(key_path: Path) -> PrivateKey:
    """The key being requested: kept across restarts until its certificate arrives."""
    key_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if key_path.exists():
        try:
            return load_private_key(key_path.read_bytes())
        except ValueError:
            log.warning("discarding the unreadable %s", key_path)
    key = new_private_key()
    write_file_atomic(key_path, private_key_pem(key), 0o600)
    return key


async def load_client_cert(kubeconfig: Path, bootstrap_kubeconfig: Path, cert_dir: Path, node_name: str, *,
                           timeout: float = 3600.0, user_agent: str = "kubelet") -> bool:
    """Make sure `kubeconfig` works, bootstrapping a client certificate if needed.

    → True if a certificate was requested now, False if the existing credentials were kept.
    Raises BootstrapError (denied, failed, timed out, bad bootstrap kubeconfig).
    """
    ok, why = client_config_still_valid(kubeconfig)
    if ok:
        log.info("using the existing client credentials in %s", kubeconfig)
        return False
    log.info("bootstrapping a client certificate: %s", why)
    try:
        boot = load_kubeconfig(bootstrap_kubeconfig)
    except KubeconfigError as e:
        raise BootstrapError(f"cannot bootstrap: {e}") from e
    store = CertificateStore(cert_dir, CLIENT_PAIR)
    current = store.load()
    if current is not None and current[0].not_valid_after_utc > dt.datetime.now(dt.UTC):
        # the kubeconfig went missing but the store still has a good pair: point at it again
        log.info("the certificate store %s has a valid certificate: rewriting %s", store.current_path, kubeconfig)
        write_cert_kubeconfig(kubeconfig, boot.server, boot.ca_pem, store.current_path,
                              boot.insecure_skip_tls_verify, boot.tls_server_name)
        return False
    key_path = cert_dir / TMP_KEY
    key = _bootstrap_key(key_path)
    cn, orgs = node_subject(node_name)
    usages = kubelet_client_usages(key)
    request = make_csr(key, cn, orgs)
    name = digested_name(key.public_key(), cn, orgs, usages)
    cfg = from_kubeconfig(bootstrap_kubeconfig, user_agent=user_agent, max_retries=5)
    try:
        async with APIClient(cfg) as api:
            name, uid = await request_certificate(api, request, key, KUBELET_CLIENT_SIGNER, usages, name=name)
            log.info("waiting for certificate signing request %s to be approved and signed", name)
            cert_pem = await wait_for_certificate(api, name, uid, timeout)
    except BootstrapError:
        raise
    except Exception as e:  # ApiError (e.g. 401: the token is wrong or expired), connection, denial
        raise BootstrapError(f"bootstrapping the client certificate failed: {e}") from e
    store.update(cert_pem, private_key_pem(key))
    key_path.unlink(missing_ok=True)
    write_cert_kubeconfig(kubeconfig, boot.server, boot.ca_pem, store.current_path,
                          boot.insecure_skip_tls_verify, boot.tls_server_name)
    cert = x509.load_pem_x509_certificate(cert_pem)
    log.info("client certificate for %s issued (valid until %s); kubeconfig written to %s",
             cn, cert.not_valid_after_utc.isoformat(), kubeconfig)
    return True


def client_pair(kubeconfig: Path) -> tuple[bytes, bytes] | None:
    """(cert PEM, key PEM) of a kubeconfig's user, if it authenticates with a certificate."""
    try:
        info = load_kubeconfig(kubeconfig)
    except KubeconfigError:
        return None
    if not info.client_cert_pem or not info.client_key_pem:
        return None
    cert = split_pem(info.client_cert_pem)[0]
    return (cert or info.client_cert_pem), (split_pem(info.client_key_pem)[1] or info.client_key_pem)


def ensure_self_signed_serving_cert(cert_dir: Path, node_name: str, addresses: list[str]) -> tuple[Path, Path]:
    """`<cert-dir>/kubelet.crt|key`: kept if present, else a self-signed certificate for the node's
    name and addresses (valid one year), as upstream's kubelet makes without --tls-cert-file."""
    crt, key_path = cert_dir / "kubelet.crt", cert_dir / "kubelet.key"
    if crt.exists() and key_path.exists():
        return crt, key_path
    now = dt.datetime.now(dt.UTC)
    write_self_signed_serving_cert(crt, key_path, f"{node_name}@{int(now.timestamp())}", [node_name, *addresses])
    log.info("no --tls-cert-file: wrote a self-signed serving certificate %s", crt)
    return crt, key_path
