"""Where the apiserver is and how to talk to it: from a kubeconfig or from inside a pod.

The TLS context is built once here; the client reuses it for every connection.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from certs.kubeconfig import KubeconfigError, default_kubeconfig_path, load_kubeconfig

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_USER_AGENT = "minik8s-client/0.1"
# client-go re-reads a projected token file once a minute (bound tokens rotate well before expiry)
TOKEN_REFRESH_SECONDS = 60.0


class StaticToken:
    """A bearer token that never changes (kubeconfig `token:`)."""

    def __init__(self, token: str) -> None:
        self._headers = {"Authorization": f"Bearer {token}"}

    def headers(self) -> dict[str, str]:
        return self._headers


class FileToken:
    """A bearer token read from a file and re-read every `refresh` seconds (it rotates)."""

    def __init__(self, path: Path | str, refresh: float = TOKEN_REFRESH_SECONDS, clock=time.monotonic) -> None:
        self.path = Path(path)
        self.refresh = refresh
        self._clock = clock
        self._read_at = -float("inf")
        self._headers: dict[str, str] = {}
        self.headers()  # fail early if the file is unreadable

    def headers(self) -> dict[str, str]:
        now = self._clock()
        if now - self._read_at >= self.refresh:
            try:
                token = self.path.read_text().strip()
            except OSError:
                if not self._headers:
                    raise
                token = ""  # keep the last good token if the file is briefly missing while rotating
            if token:
                self._headers = {"Authorization": f"Bearer {token}"}
            self._read_at = now
        return self._headers


TokenSource = StaticToken | FileToken


@dataclass
class ClientConfig:
    """Everything an APIClient needs. `qps <= 0` turns the client-side rate limit off."""

    server: str
    ssl_context: ssl.SSLContext | None = None
    token_source: TokenSource | None = None
    namespace: str = "default"
    qps: float = 5.0
    burst: int = 10
    user_agent: str = DEFAULT_USER_AGENT
    timeout: float = 30.0
    max_retries: int = 10
    max_connections: int = 100
    #: seconds an unused keep-alive connection stays open: Go's http.Transport default (90 s),
    #: under the apiserver's 120 s, so a daemon's next burst reuses its connections instead of
    #: paying a TLS handshake per request on both sides (aiohttp's default is 15 s)
    idle_connection_timeout: float = 90.0
    tls_server_name: str | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)
    #: the kubeconfig the client certificate came from: reread every `certificate_reload_interval`
    #: seconds, a changed certificate is presented on new connections (client-go's dynamic client
    #: certificates: a rotated kubelet certificate reaches every client that shares the file)
    kubeconfig_path: Path | None = None
    certificate_reload_interval: float = 300.0

    def auth_headers(self) -> dict[str, str]:
        return self.token_source.headers() if self.token_source is not None else {}

    def replace(self, **changes) -> ClientConfig:
        """A copy with some fields changed (e.g. `cfg.replace(qps=5000, burst=10000)`)."""
        return dataclasses.replace(self, **changes)


def from_kubeconfig(path: Path | str, context: str | None = None, **options) -> ClientConfig:
    """A ClientConfig for one context of a kubeconfig file; `options` set ClientConfig fields."""
    info = load_kubeconfig(path, context)
    ctx = info.ssl_context() if info.server.startswith("https:") else None
    return ClientConfig(
        server=info.server,
        ssl_context=ctx,
        token_source=StaticToken(info.token) if info.token else None,
        namespace=info.namespace,
        tls_server_name=info.tls_server_name,
        **{"kubeconfig_path": Path(path) if info.client_cert_pem else None, **options},
    )


def in_cluster_available(env: Mapping[str, str] | None = None, sa_dir: Path = SERVICE_ACCOUNT_DIR) -> bool:
    env = os.environ if env is None else env
    return bool(env.get("KUBERNETES_SERVICE_HOST") and env.get("KUBERNETES_SERVICE_PORT")) and (
        sa_dir / "token"
    ).is_file()


def in_cluster_config(
    env: Mapping[str, str] | None = None, sa_dir: Path = SERVICE_ACCOUNT_DIR, **options
) -> ClientConfig:
    """The pod's own identity: its ServiceAccount token and the cluster CA, as rest.InClusterConfig."""
    env = os.environ if env is None else env
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise KubeconfigError("not running in a cluster: KUBERNETES_SERVICE_HOST/PORT are not set")
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass  # a host name
    sa_dir = Path(sa_dir)
    ca_file = sa_dir / "ca.crt"
    try:
        ctx = ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as e:
        raise KubeconfigError(f"in-cluster CA {ca_file} cannot be loaded: {e}") from e
    try:
        token = FileToken(sa_dir / "token")
    except OSError as e:
        raise KubeconfigError(f"in-cluster token {sa_dir / 'token'} cannot be read: {e}") from e
    ns_file = sa_dir / "namespace"
    namespace = ns_file.read_text().strip() if ns_file.is_file() else "default"
    return ClientConfig(
        server=f"https://{host}:{port}", ssl_context=ctx, token_source=token, namespace=namespace or "default",
        **options,
    )


def load_config(path: Path | str | None = None, context: str | None = None, **options) -> ClientConfig:
    """The client configuration, found the way client-go's loaders find it.

    An explicit `path` wins; else `$KUBECONFIG` or a default kubeconfig file that exists;
    else the in-cluster ServiceAccount. `options` set ClientConfig fields (qps, burst, ...).
    """
    if path is not None:
        return from_kubeconfig(path, context, **options)
    default = default_kubeconfig_path()
    if os.environ.get("KUBECONFIG") or default.is_file() or not in_cluster_available():
        return from_kubeconfig(default, context, **options)
    return in_cluster_config(**options)
