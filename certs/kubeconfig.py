"""Kubeconfig files: write them for the cluster's identities, read them into a TLS setup.

The format is upstream's ``clientcmd/api/v1`` Config (``apiVersion: v1, kind: Config``) so
that kubectl and the kubernetes Python client use our files as-is.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from certs.pki import PKI, certificate_identity, write_file_atomic

DEFAULT_CLUSTER_NAME = "minik8s"
# The admin kubeconfig of the default local cluster (see ARCHITECTURE.md, "Contracts").
MINIK8S_DEFAULT_KUBECONFIG = Path("~/.minik8s/default/admin.kubeconfig")
KUBE_DEFAULT_KUBECONFIG = Path("~/.kube/config")


class KubeconfigError(ValueError):
    """A kubeconfig that is missing, malformed or lacks what was asked for."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def write_kubeconfig(
    path: Path,
    *,
    server: str,
    ca_cert: Path,
    user: str,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    token: str | None = None,
    cluster_name: str = DEFAULT_CLUSTER_NAME,
    context_name: str | None = None,
    namespace: str | None = None,
    embed: bool = True,
) -> Path:
    """Write a one-cluster, one-user, one-context kubeconfig (mode 0600) and return its path.

    With ``embed`` the CA, certificate and key are inlined (``*-data``, base64) so the file
    works wherever it is copied; otherwise it refers to their absolute paths.
    """
    if (client_cert is None) != (client_key is None):
        raise ValueError("client_cert and client_key go together")
    path = Path(path)
    context_name = context_name or f"{user}@{cluster_name}"
    cluster: dict[str, str] = {"server": server}
    user_entry: dict[str, str] = {}
    if embed:
        cluster["certificate-authority-data"] = _b64(Path(ca_cert).read_bytes())
        if client_cert is not None and client_key is not None:
            user_entry["client-certificate-data"] = _b64(Path(client_cert).read_bytes())
            user_entry["client-key-data"] = _b64(Path(client_key).read_bytes())
    else:
        cluster["certificate-authority"] = str(Path(ca_cert).resolve())
        if client_cert is not None and client_key is not None:
            user_entry["client-certificate"] = str(Path(client_cert).resolve())
            user_entry["client-key"] = str(Path(client_key).resolve())
    if token is not None:
        user_entry["token"] = token
    context: dict[str, str] = {"cluster": cluster_name, "user": user}
    if namespace:
        context["namespace"] = namespace
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": cluster}],
        "users": [{"name": user, "user": user_entry}],
        "contexts": [{"name": context_name, "context": context}],
        "current-context": context_name,
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file_atomic(path, yaml.safe_dump(config, sort_keys=False).encode(), 0o600)
    return path


def write_cluster_kubeconfigs(pki: PKI, out_dir: Path, server: str) -> dict[str, Path]:
    """Kubeconfigs of the cluster's own identities, embedded, in ``out_dir``.

    Keys of the result: "admin", "scheduler", "controller-manager", "kube-proxy" and
    "kubelet-<node>" for every node with a client certificate in the PKI.
    """
    out_dir = Path(out_dir)
    # A new directory is private; an existing one (maybe the data dir) keeps its mode: the
    # files themselves are 0600.
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    identities = {
        "admin": "admin",
        "scheduler": "kube-scheduler",
        "controller-manager": "kube-controller-manager",
        "kube-proxy": "kube-proxy",
    }
    identities.update({f"kubelet-{node}": f"node-{node}" for node in pki.node_names})
    written = {}
    for file_name, cert_name in identities.items():
        cert, key = pki.client(cert_name)
        user, _groups = certificate_identity(cert)
        written[file_name] = write_kubeconfig(
            out_dir / f"{file_name}.kubeconfig",
            server=server,
            ca_cert=pki.ca_cert,
            user=user,
            client_cert=cert,
            client_key=key,
        )
    return written


@dataclass(frozen=True)
class KubeconfigInfo:
    """What a client needs from one context of a kubeconfig."""

    path: Path
    context: str
    cluster: str
    user: str
    server: str
    namespace: str = "default"
    ca_pem: bytes | None = None
    client_cert_pem: bytes | None = None
    client_key_pem: bytes | None = None
    token: str | None = None
    insecure_skip_tls_verify: bool = False
    tls_server_name: str | None = None

    def ssl_context(self) -> ssl.SSLContext:
        """A client SSLContext: trusts the kubeconfig's CA (or the system's), presents the client cert."""
        cadata = self.ca_pem.decode("ascii") if self.ca_pem else None
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=cadata)
        if self.insecure_skip_tls_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.client_cert_pem and self.client_key_pem:
            load_cert_chain(ctx, self.client_cert_pem, self.client_key_pem)
        return ctx

    def auth_headers(self) -> dict[str, str]:
        """HTTP headers carrying the bearer token, if the user has one."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def load_cert_chain(ctx: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """ssl only loads a key pair from a path: hand it one that never reaches a disk if possible."""
    data = cert_pem.rstrip(b"\n") + b"\n" + key_pem
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("kubeconfig-client-cert", os.MFD_CLOEXEC)
        try:
            _write_all(fd, data)
            ctx.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    fd, name = tempfile.mkstemp(prefix="kubeconfig-client-", suffix=".pem")  # created 0600
    try:
        _write_all(fd, data)
        os.close(fd)
        fd = -1
        ctx.load_cert_chain(name)
    finally:
        if fd >= 0:
            os.close(fd)
        os.unlink(name)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _named(entries: object, name: str, kind: str, path: Path) -> dict:
    for entry in entries or []:  # type: ignore[attr-defined]
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry.get(kind) or {}
    raise KubeconfigError(f"{path}: no {kind} named {name!r}")


def _file_or_data(entry: dict, key: str, base: Path) -> bytes | None:
    """``<key>-data`` (base64) wins over ``<key>`` (a path, relative to the kubeconfig's directory)."""
    data = entry.get(f"{key}-data")
    if data:
        try:
            return base64.b64decode(data, validate=True)
        except ValueError as e:
            raise KubeconfigError(f"{key}-data is not valid base64: {e}") from e
    file_name = entry.get(key)
    if file_name:
        file_path = (base / Path(file_name).expanduser()).resolve()
        try:
            return file_path.read_bytes()
        except OSError as e:
            raise KubeconfigError(f"{key} {file_path} cannot be read: {e}") from e
    return None


def load_kubeconfig(path: Path | str, context: str | None = None) -> KubeconfigInfo:
    """Parse ``context`` (default: current-context) of a kubeconfig file."""
    path = Path(path).expanduser()
    try:
        config = yaml.safe_load(path.read_text())
    except OSError as e:
        raise KubeconfigError(f"kubeconfig {path} cannot be read: {e}") from e
    except yaml.YAMLError as e:
        raise KubeconfigError(f"kubeconfig {path} is not valid YAML: {e}") from e
    if not isinstance(config, dict):
        raise KubeconfigError(f"kubeconfig {path} is not a Config object")
    context = context or config.get("current-context")
    if not context:
        raise KubeconfigError(f"kubeconfig {path} has no current-context; name a context")
    ctx = _named(config.get("contexts"), context, "context", path)
    cluster_name, user_name = ctx.get("cluster"), ctx.get("user", "")
    if not cluster_name:
        raise KubeconfigError(f"{path}: context {context!r} names no cluster")
    cluster = _named(config.get("clusters"), cluster_name, "cluster", path)
    user = _named(config.get("users"), user_name, "user", path) if user_name else {}
    server = cluster.get("server")
    if not server:
        raise KubeconfigError(f"{path}: cluster {cluster_name!r} has no server")
    base = path.resolve().parent
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token_path = base / Path(user["tokenFile"]).expanduser()
        try:
            token = token_path.read_text().strip()
        except OSError as e:
            raise KubeconfigError(f"tokenFile {token_path} cannot be read: {e}") from e
    return KubeconfigInfo(
        path=path,
        context=context,
        cluster=cluster_name,
        user=user_name,
        server=str(server).rstrip("/"),
        namespace=ctx.get("namespace") or "default",
        ca_pem=_file_or_data(cluster, "certificate-authority", base),
        client_cert_pem=_file_or_data(user, "client-certificate", base),
        client_key_pem=_file_or_data(user, "client-key", base),
        token=token or None,
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify", False)),
        tls_server_name=cluster.get("tls-server-name") or None,
    )


def default_kubeconfig_path() -> Path:
    """The kubeconfig to use when none is named.

    The first existing file of ``$KUBECONFIG`` (a ``:``-separated list); then the default
    local cluster's ``~/.minik8s/default/admin.kubeconfig``; then ``~/.kube/config``. If none
    exists, the first candidate is returned so that the error names where we looked.
    """
    candidates = [Path(p).expanduser() for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    if candidates:
        return next((p for p in candidates if p.is_file()), candidates[0])
    for candidate in (MINIK8S_DEFAULT_KUBECONFIG.expanduser(), KUBE_DEFAULT_KUBECONFIG.expanduser()):
        if candidate.is_file():
            return candidate
    return MINIK8S_DEFAULT_KUBECONFIG.expanduser()
