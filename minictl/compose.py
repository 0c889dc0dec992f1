"""The roles of the docker compose cluster (`docker-compose.yml`): `python -m minictl.compose ROLE`.

Every service of the compose file runs the same image with one role:

    certs               one-shot: PKI and kubeconfigs into the shared /cluster volume, the
                        admin kubeconfig (server https://127.0.0.1:6443) into /out
    etcd | apiserver | controller-manager | scheduler
                        exec the component with the command `minictl cluster up` uses,
                        addressed by service name instead of loopback
    node                kind-style node: the supervisor runs containerd, kubelet, kube-proxy,
                        the DNS addon and the LoadBalancer controller; images are loaded
                        from the image; SIGTERM removes the pods and stops them all
    worker              another node (profile `multinode`): containerd, kubelet and kube-proxy;
                        kube-proxy routes the nodes' pod CIDRs to each other over the network
    registry            Debian's docker-registry on :5000 (the node pulls `registry:5000/...`)
    health ROLE         exit 0 when ROLE answers its health check (compose healthchecks)

Addresses come from the environment the compose file sets (static addresses on its own
network, so that certificates can name them): APISERVER_IP, ETCD_IP, NODE_IP, NODE_NAME;
WORKER_NODES (certs) names the other nodes that get a client certificate.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from minictl.components import ClusterConfig, apiserver_command, etcd_command, plan

CLUSTER_DIR = Path(os.environ.get("MINIK8S_CLUSTER_DIR", "/cluster"))  # the shared volume
NODE_DIR = Path(os.environ.get("MINIK8S_NODE_DIR", "/var/lib/minik8s"))  # the node's own volume
OUT_DIR = Path(os.environ.get("MINIK8S_OUT_DIR", "/out"))  # bind-mounted from the host
IMAGES_DIR = Path(os.environ.get("MINIK8S_IMAGES_DIR", "/opt/minik8s/images"))
HOST_PORT = int(os.environ.get("MINIK8S_HOST_PORT", "6443"))  # where the host reaches the apiserver
NODE_COMPONENTS = ["containerd", "kubelet", "kube-proxy", "dns", "lb-controller"]
WORKER_COMPONENTS = ["containerd", "kubelet", "kube-proxy"]
REGISTRY = "registry:5000"


def _env(name: str, default: str = "") -> str:
    value = os.environ.get(name, default)
    if not value:
        sys.exit(f"minictl.compose: set {name}")
    return value


def _exec(cmd: list[str]) -> None:
    """Replace this process: the component gets compose's signals itself."""
    sys.stdout.flush()
    os.execvp(cmd[0], cmd)


def _cluster() -> ClusterConfig:
    cfg = ClusterConfig.load(CLUSTER_DIR)
    if cfg is None:
        sys.exit(f"minictl.compose: no cluster in {CLUSTER_DIR} (the certs service writes it)")
    return cfg


def certs() -> None:
    from certs import write_kubeconfig
    from minictl.cluster import write_credentials

    cfg = ClusterConfig(
        str(CLUSTER_DIR), bind_address="0.0.0.0", advertise_address=_env("APISERVER_IP"),
        server_host="apiserver", etcd_host="etcd", node_name=_env("NODE_NAME", "node"),
    )
    workers = [n.strip() for n in os.environ.get("WORKER_NODES", "").split(",") if n.strip()]
    pki = write_credentials(cfg, extra_hosts=["apiserver", "etcd", _env("ETCD_IP")], extra_nodes=workers)
    cfg.save()
    # the host's copy reaches the apiserver through the published port
    cert, key = pki.client("admin")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = write_kubeconfig(OUT_DIR / "admin.kubeconfig", server=f"https://127.0.0.1:{HOST_PORT}",
                           ca_cert=pki.ca_cert, user="kubernetes-admin", client_cert=cert, client_key=key)
    owner = OUT_DIR.stat()
    os.chown(out, owner.st_uid, owner.st_gid)  # readable by whoever owns the host directory
    print(f"wrote {out} (server https://127.0.0.1:{HOST_PORT})", flush=True)


def etcd() -> None:
    cfg = _cluster()
    cmd = etcd_command(cfg)
    cmd[cmd.index("--listen-client-urls") + 1] = f"https://0.0.0.0:{cfg.etcd_client_port}"
    _exec(cmd)


def apiserver() -> None:
    cfg = _cluster()
    cfg.log("audit").parent.mkdir(parents=True, exist_ok=True)
    _exec(apiserver_command(cfg))


def _component(name: str) -> None:
    cfg = _cluster()
    cfg.only = [name]
    (spec,) = plan(cfg)
    _exec(spec.cmd)


def _node_config(components: list[str]) -> ClusterConfig:
    from kubelet.cri.containerd import mount_state_tmpfs, write_config
    from kubelet.launch import seed_client_certificate

    cfg = _cluster()
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    # certificates and kubeconfigs are the cluster's; containerd, kubelet state and logs the node's
    for shared in ("pki", "kubeconfigs", "admin.kubeconfig"):
        link = NODE_DIR / shared
        if not link.is_symlink():
            if link.exists():
                shutil.rmtree(link) if link.is_dir() else link.unlink()
            link.symlink_to(CLUSTER_DIR / shared)
    cfg.data_dir = str(NODE_DIR)
    cfg.node_name = _env("NODE_NAME", "node")
    cfg.advertise_address = _env("NODE_IP")
    cfg.with_node = True
    cfg.only = components
    # The node's eth0 is the compose network, not the machine's uplink: pods must reach the
    # apiserver and DNS containers through it (masqueraded below, as kind's nodes do).
    cfg.extra_kubelet_args = ["--guard-pod-egress=false"]
    cfg.save()
    mount_state_tmpfs(write_config(NODE_DIR, registry_mirrors={REGISTRY: f"http://{REGISTRY}"}))
    seed_client_certificate(cfg)
    return cfg


def _prepare_node_host(cfg: ClusterConfig) -> None:
    """What a kind node does before its kubelet: writable cgroups, pod traffic NATed out."""
    from certs import issue_kubelet_serving_cert

    issue_kubelet_serving_cert(cfg.pki, cfg.node_name, [cfg.advertise_address])
    root = Path("/sys/fs/cgroup")
    # cgroup v2: one hierarchy; v1: one mount per controller (docker mounts them read-only)
    mounts = [root] if (root / "cgroup.controllers").exists() else [
        c for c in root.iterdir() if c.is_dir() and not c.is_symlink()]
    for mount in mounts:
        subprocess.run(["mount", "-o", "remount,bind,rw", str(mount)], capture_output=True)
    rule = ["POSTROUTING", "-s", cfg.cluster_cidr, "!", "-d", cfg.cluster_cidr, "-o", "eth0",
            "-m", "comment", "--comment", "minik8s compose: pods leave the node masqueraded", "-j", "MASQUERADE"]
    if subprocess.run(["iptables", "-t", "nat", "-C", *rule], capture_output=True).returncode != 0:
        subprocess.run(["iptables", "-t", "nat", "-A", *rule], check=True)


def _load_images(cfg: ClusterConfig) -> None:
    """Load our images once containerd answers."""
    import asyncio

    from images import load_image
    from kubelet.cri.containerd import containerd_paths

    sock = containerd_paths(cfg.dir).socket
    while not sock.exists():
        time.sleep(0.2)

    archives = sorted(IMAGES_DIR.glob("*.tar"))

    async def load() -> None:
        for archive in archives:
            image = await load_image(archive, sock)
            print(f"loaded {', '.join(image.repo_tags)}", flush=True)

    for attempt in range(50):
        try:
            asyncio.run(load())
            break
        except Exception as e:  # containerd still starting
            print(f"loading images: {e} (attempt {attempt + 1})", flush=True)
            time.sleep(0.5)


def _after_start(cfg: ClusterConfig) -> None:
    """Load our images; install the DNS and storage addons once the apiserver answers."""
    from controller_manager.hostpath_provisioner import install_default_class_sync
    from dns.launch import install_addon_sync

    _load_images(cfg)
    for attempt in range(120):
        try:
            install_addon_sync(cfg.admin_kubeconfig)
            print("DNS addon installed", flush=True)
            install_default_class_sync(cfg.admin_kubeconfig, str(cfg.volumes_dir))
            print("default StorageClass installed", flush=True)
            return
        except Exception as e:
            print(f"installing the DNS and storage addons: {e} (attempt {attempt + 1})", flush=True)
            time.sleep(1)


def node() -> None:
    from minictl.supervisor import supervise

    cfg = _node_config(NODE_COMPONENTS)
    _prepare_node_host(cfg)
    threading.Thread(target=_after_start, args=(cfg,), daemon=True).start()
    # the supervisor traps SIGTERM: it removes the pods and stops every component by pid
    sys.exit(supervise(cfg))


def worker() -> None:
    from minictl.supervisor import supervise

    cfg = _node_config(WORKER_COMPONENTS)
    _prepare_node_host(cfg)
    threading.Thread(target=_load_images, args=(cfg,), daemon=True).start()
    sys.exit(supervise(cfg))


REGISTRY_CONFIG = """version: 0.1
storage:
  filesystem: {rootdirectory: /var/lib/docker-registry}
  delete: {enabled: true}
http:
  addr: :5000
"""


def registry() -> None:
    # Debian's default config asks for htpasswd credentials; a local dev registry takes none
    config = Path("/tmp/registry.yml")
    config.write_text(REGISTRY_CONFIG)
    _exec(["docker-registry", "serve", str(config)])


def _https_ok(url: str, cert: tuple[str, str] | None = None) -> bool:
    ctx = ssl.create_default_context(cafile=str(CLUSTER_DIR / "pki" / "ca.crt"))
    if cert:
        ctx.load_cert_chain(*cert)
    return httpx.get(url, verify=ctx, timeout=3).status_code == 200


def health(role: str) -> int:
    try:
        if role == "etcd":
            cfg = _cluster()
            pki = cfg.pki
            ok = _https_ok(f"https://127.0.0.1:{cfg.etcd_client_port}/health",
                           (str(pki.apiserver_etcd_client_cert), str(pki.apiserver_etcd_client_key)))
        elif role == "apiserver":
            ok = _https_ok(f"https://127.0.0.1:{_cluster().apiserver_port}/readyz")
        elif role in ("controller-manager", "scheduler", "node", "worker"):
            port = {"controller-manager": 10257, "scheduler": 10259, "node": 10248, "worker": 10248}[role]
            ok = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=3).status_code == 200
        elif role == "registry":
            ok = httpx.get("http://127.0.0.1:5000/v2/", timeout=3).status_code == 200
        else:
            print(f"unknown role {role}", file=sys.stderr)
            return 2
    except (httpx.HTTPError, OSError, ssl.SSLError) as e:
        print(f"{role}: {e}", file=sys.stderr)
        return 1
    return 0 if ok else 1


ROLES = {
    "certs": certs, "etcd": etcd, "apiserver": apiserver, "node": node, "worker": worker, "registry": registry,
    "controller-manager": lambda: _component("controller-manager"),
    "scheduler": lambda: _component("scheduler"),
}


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "health":
        return health(argv[1])
    if len(argv) != 1 or argv[0] not in ROLES:
        print(__doc__, file=sys.stderr)
        return 2
    ROLES[argv[0]]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
