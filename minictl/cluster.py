"""`minictl cluster up | down | status`: the local cluster's lifecycle."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import ipaddress
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import httpx

from certs import PKI, check_expiry, ensure_pki, write_cluster_kubeconfigs
from minictl.components import ClusterConfig, ComponentSpec, component_env, plan
from minictl.node import clean_host, remove_pods
from minictl.prereqs import check
from minictl.progress import Progress

DEFAULT_DATA_DIR = Path(os.environ.get("MINIK8S_DATA_DIR", Path.home() / ".minik8s" / "default"))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/stat") as f:
            if f.read().split(")")[-1].split()[0] == "Z":
                return False
    return True


def supervisor_pid(cfg: ClusterConfig) -> int | None:
    return component_pid(cfg, "supervisor")


def component_pid(cfg: ClusterConfig, name: str) -> int | None:
    try:
        pid = int((cfg.dir / "run" / f"{name}.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def _ssl(cfg: ClusterConfig) -> ssl.SSLContext:
    if cfg.is_worker:  # no admin here: the kubelet's own (bootstrapped) certificate
        from kubelet.launch import kubelet_cert_dir

        pem = kubelet_cert_dir(cfg) / "kubelet-client-current.pem"
        files = (str(cfg.pki.ca_cert), str(pem), str(pem))
        return _admin_context(*files, tuple(os.stat(f).st_mtime_ns for f in files))
    cert, key = cfg.pki.client("admin")
    files = (str(cfg.pki.ca_cert), str(cert), str(key))
    # keyed on the files' mtimes too: `--reset` and `certs rotate` rewrite them in place
    return _admin_context(*files, tuple(os.stat(f).st_mtime_ns for f in files))


@functools.cache  # `up` probes several components every 0.1 s: read the keys once per version
def _admin_context(ca: str, cert: str, key: str, _mtimes: tuple[int, ...]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca)
    ctx.load_cert_chain(cert, key)
    return ctx


def probe(cfg: ClusterConfig, path: str, timeout: float = 2.0) -> tuple[bool, str]:
    """Check a health spec: "api:<path>" (admin credentials), an http(s) URL, or "unix:<socket>"."""
    if path.startswith("unix:"):
        return Path(path[5:]).exists(), "no socket yet"
    url = cfg.server_url + path[4:] if path.startswith("api:") else path
    if not url.startswith("http"):
        url = cfg.server_url + path
    try:
        verify: ssl.SSLContext | bool = _ssl(cfg) if url.startswith(cfg.server_url) else True
        r = httpx.get(url, verify=verify, timeout=timeout)
        return r.status_code == 200, r.text.strip().splitlines()[-1] if r.text.strip() else str(r.status_code)
    except httpx.HTTPError as e:
        return False, type(e).__name__


def write_credentials(cfg: ClusterConfig, extra_hosts: Sequence[str] = (), extra_nodes: Sequence[str] = ()) -> PKI:
    """The PKI (existing keys kept) with the serving certificates naming the cluster's addresses
    and `extra_hosts`, every component's kubeconfig, and the admin's at cfg.admin_kubeconfig;
    kubelet credentials for cfg.node_name and `extra_nodes`."""
    from dns.launch import write_dns_kubeconfig
    from kube_proxy.launch import write_lb_controller_kubeconfig

    hosts = [] if cfg.bind_address in ("0.0.0.0", "127.0.0.1") else [cfg.bind_address]
    if cfg.advertise_address not in ("127.0.0.1", "0.0.0.0"):
        hosts.append(cfg.advertise_address)
    pki = ensure_pki(cfg.dir / "pki", hosts=[*hosts, *extra_hosts], node_names=[cfg.node_name, *extra_nodes])
    out = write_cluster_kubeconfigs(pki, cfg.dir / "kubeconfigs", cfg.server_url)
    shutil.copyfile(out["admin"], cfg.admin_kubeconfig)
    os.chmod(cfg.admin_kubeconfig, 0o600)
    write_lb_controller_kubeconfig(cfg)
    write_dns_kubeconfig(cfg)
    return pki


def prepare(cfg: ClusterConfig) -> None:
    """Credentials and (for a node) containerd's config (idempotent: existing keys are kept).
    A joined worker has its credentials from `minictl node join` (and its kubelet's bootstrap)."""
    pki = None if cfg.is_worker else write_credentials(cfg)
    if cfg.with_node:
        from kubelet.cri.containerd import mount_state_tmpfs, write_config
        from kubelet.launch import seed_client_certificate

        try:
            mount_state_tmpfs(write_config(cfg.dir, oci_runtime=cfg.oci_runtime))
        except RuntimeError as e:  # --oci-runtime crun where crun cannot run
            raise click.ClickException(str(e)) from None
        if not cfg.is_worker:
            seed_client_certificate(cfg)
    for msg in check_expiry(pki) if pki is not None else ():
        click.echo(f"warning: {msg}", err=True)


def _primary_address() -> str:
    """The host's first non-loopback IPv4 address: what pods reach the apiserver at."""
    from certs import host_ipv4_addresses

    addrs = [a for a in host_ipv4_addresses() if not a.startswith(("127.", "10.244.", "172.17."))]
    return addrs[0] if addrs else "127.0.0.1"


def new_config(data_dir: Path, node: bool | None, **overrides: Any) -> ClusterConfig:
    with_node = (os.geteuid() == 0) if node is None else node
    overrides.setdefault("anonymous_auth", True)  # kubeadm's default: `node join` reads cluster-info
    cfg = ClusterConfig(str(data_dir), with_node=with_node, **{k: v for k, v in overrides.items() if v is not None})
    if with_node and "advertise_address" not in overrides:
        # pods reach the `kubernetes` service's endpoint: it must be an address they can route to
        cfg.bind_address = "0.0.0.0"
        cfg.advertise_address = _primary_address()
    return cfg


def _runtime_note(cfg: ClusterConfig, component: str) -> str:
    if component != "containerd":
        return ""
    from kubelet.cri.containerd import containerd_paths, default_oci_runtime

    runtime = default_oci_runtime(containerd_paths(cfg.dir))
    return f", OCI runtime {runtime}" if runtime else ""


def _kubernetes_service_answers(cfg: ClusterConfig) -> tuple[bool, str]:
    """The `kubernetes` service (10.96.0.1:443) answers through kube-proxy's rules."""
    ip = str(ipaddress.ip_network(cfg.service_cidr)[1])
    try:
        r = httpx.get(f"https://{ip}/readyz", verify=_ssl(cfg), timeout=2)
        return r.status_code == 200, str(r.status_code)
    except httpx.HTTPError as e:
        return False, type(e).__name__


def _node_ready(cfg: ClusterConfig) -> tuple[bool, str]:
    try:
        r = httpx.get(f"{cfg.server_url}/api/v1/nodes/{cfg.node_name}", verify=_ssl(cfg), timeout=2)
    except httpx.HTTPError as e:
        return False, type(e).__name__
    except OSError:  # (ssl.SSLError is one) e.g. a worker's kubelet-client-current.pem not there yet
        return False, "no client certificate yet (the kubelet's TLS bootstrap)"
    if r.status_code != 200:
        return False, "not registered"
    for c in (r.json().get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True", c.get("reason") or c.get("status")
    return False, "no Ready condition yet"


async def _load_images(cfg: ClusterConfig) -> list[str]:
    from images import build_images, load_image
    from kubelet.cri.containerd import containerd_paths

    socket = containerd_paths(cfg.dir).socket
    refs = []
    for image in await asyncio.to_thread(build_images, cfg.dir / "images"):
        await load_image(image.archive, socket)
        refs.append(image.ref)
    return refs


def _setup_node_joining(cfg: ClusterConfig) -> str:
    from minictl.kubeadm import setup_node_joining_sync

    setup_node_joining_sync(cfg.admin_kubeconfig, cfg.public_server_url, cfg.pki.ca_cert)
    return f"cluster-info ({cfg.public_server_url}) and the node bootstrap RBAC"


def join_hint(cfg: ClusterConfig) -> str:
    data_dir = "" if cfg.dir == DEFAULT_DATA_DIR.expanduser().resolve() else f" --data-dir {cfg.dir}"
    return ("To add a node (another Linux machine, as root), print its join command with:\n"
            f"  minictl token create --print-join-command{data_dir}\n")


def up(data_dir: Path, reset: bool, timeout: float, node: bool | None = None, *, config: ClusterConfig | None = None,
       **overrides: Any) -> ClusterConfig:
    """Start (or resume) the cluster in `data_dir`; `config` is a new one to create there
    (`minictl node join` passes a worker's)."""
    data_dir = data_dir.expanduser().resolve()
    if reset and data_dir.exists():
        down(data_dir, purge=True, quiet=True)
    cfg = ClusterConfig.load(data_dir)
    if cfg is None:
        cfg = config if config is not None else new_config(data_dir, node, **overrides)
    if supervisor_pid(cfg):
        ok, _ = probe(cfg, "api:/readyz")
        click.echo(f"cluster in {data_dir} is already running" + ("" if ok else " (not ready yet)"))
        return cfg
    report = check(cfg.with_node)
    if not report.ok:
        lines = [*report.problems]
        if report.missing_packages:
            lines.append(f"missing packages; as root run:\n  {report.install_command()}")
        raise click.ClickException("prerequisites:\n" + "\n".join(lines))
    cfg.save()
    progress = Progress(sys.stdout)
    started = time.monotonic()
    progress.step("pki", "generating certificates and kubeconfigs")
    prepare(cfg)
    progress.done("pki", "ready")
    (cfg.dir / "logs").mkdir(parents=True, exist_ok=True)
    (cfg.dir / "run").mkdir(parents=True, exist_ok=True)
    log = open(cfg.log("supervisor"), "ab")
    subprocess.Popen(
        [sys.executable, "-m", "minictl.supervisor", "--data-dir", str(cfg.dir)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        env=component_env(), start_new_session=True, cwd=cfg.dir,
    )
    log.close()
    components = plan(cfg)
    steps: dict[str, Any] = {c.name: c for c in components}
    # steps beyond "the process is healthy", run once their precondition is
    if not cfg.is_worker:
        steps["join-setup"] = "after:apiserver"
    if cfg.with_node:
        steps["images"] = "after:containerd"
        if not cfg.is_worker:
            steps["dns-addon"] = "after:apiserver"
            steps["storage-addon"] = "after:apiserver"
        steps["node"] = "check"
        if not cfg.is_worker:
            steps["kubernetes-service"] = "check"
    for name in steps:
        progress.step(name, "starting" if name in {c.name for c in components} else "waiting")
    done: set[str] = set()
    image_job: concurrent.futures.Future | None = None
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    deadline = time.monotonic() + timeout
    try:
        while len(done) < len(steps) and time.monotonic() < deadline:
            for name, c in steps.items():
                if name in done:
                    continue
                if isinstance(c, ComponentSpec):
                    pid = component_pid(cfg, name)
                    if pid is None:
                        continue
                    if c.health:
                        ok, detail = probe(cfg, c.health)
                        if not ok:
                            progress.update(name, f"waiting ({detail})")
                            continue
                    progress.done(name, f"running (pid {pid}{_runtime_note(cfg, name)})")
                    done.add(name)
                elif name == "images" and "containerd" in done:
                    if image_job is None:
                        image_job = pool.submit(asyncio.run, _load_images(cfg))
                    if image_job.done():
                        progress.done(name, "loaded " + ", ".join(image_job.result()))
                        done.add(name)
                elif name == "join-setup" and "apiserver" in done:
                    progress.done(name, _setup_node_joining(cfg))
                    done.add(name)
                elif name == "dns-addon" and "apiserver" in done:
                    from dns.launch import install_addon_sync

                    install_addon_sync(cfg.admin_kubeconfig)
                    progress.done(name, "kube-dns service at 10.96.0.10")
                    done.add(name)
                elif name == "storage-addon" and "apiserver" in done:
                    from controller_manager.hostpath_provisioner import (
                        DEFAULT_CLASS_NAME,
                        install_default_class_sync,
                    )

                    install_default_class_sync(cfg.admin_kubeconfig, str(cfg.volumes_dir))
                    progress.done(name, f"default StorageClass {DEFAULT_CLASS_NAME} (volumes in {cfg.volumes_dir})")
                    done.add(name)
                elif name == "node" and "kubelet" in done:
                    ok, detail = _node_ready(cfg)
                    if ok:
                        progress.done(name, f"{cfg.node_name} Ready")
                        done.add(name)
                    else:
                        progress.update(name, f"waiting ({detail})")
                elif name == "kubernetes-service" and "kube-proxy" in done:
                    ok, detail = _kubernetes_service_answers(cfg)
                    if ok:
                        progress.done(name, "answers at 10.96.0.1:443")
                        done.add(name)
                    else:
                        progress.update(name, f"waiting ({detail})")
            time.sleep(0.1)
    finally:
        pool.shutdown(wait=True)
    pending = [n for n in steps if n not in done]
    if pending:
        for name in pending:
            progress.fail(name, f"not up after {timeout:.0f}s; see {cfg.log(name)}")
        raise click.ClickException("the cluster did not come up")
    if cfg.is_worker:
        progress.finish(f"node {cfg.node_name} joined in {time.monotonic() - started:.1f}s")
        click.echo(f"\nThis node has joined the cluster at {cfg.server_url}.\n"
                   "Run `minictl get nodes` on the control plane to see it.\n")
        return cfg
    progress.finish(f"cluster up in {time.monotonic() - started:.1f}s")
    click.echo(
        f"\nTo use it:\n  export KUBECONFIG={cfg.admin_kubeconfig}\n  minictl get nodes\n"
        "  kubectl get pods -A\n\n" + join_hint(cfg)
    )
    return cfg


def down(data_dir: Path, purge: bool, quiet: bool = False, timeout: float = 60) -> None:
    data_dir = data_dir.expanduser().resolve()
    cfg = ClusterConfig.load(data_dir)
    if cfg is None:
        if not quiet:
            click.echo(f"no cluster in {data_dir}")
        return
    pid = supervisor_pid(cfg)
    if pid:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _pid_alive(pid):
            raise click.ClickException(f"supervisor (pid {pid}) did not stop within {timeout:.0f}s")
        if not quiet:
            click.echo(f"cluster in {data_dir} stopped")
    elif not quiet:
        click.echo(f"cluster in {data_dir} is not running")
    # components whose supervisor died uncleanly: stop them by their recorded pids, then clean up
    leftovers = [(c.name, component_pid(cfg, c.name)) for c in reversed(plan(cfg))]
    for name, cpid in leftovers:
        if cpid:
            if name == "containerd":
                with contextlib.suppress(Exception):
                    asyncio.run(remove_pods(cfg))
            os.kill(cpid, signal.SIGTERM)
            _wait_gone(cpid, 15)
    if cfg.with_node and any(pid for _, pid in leftovers):
        for problem in asyncio.run(clean_host(cfg)):
            click.echo(f"cleanup: {problem}", err=True)
    if purge:
        shutil.rmtree(data_dir, ignore_errors=True)
        if not quiet:
            click.echo(f"removed {data_dir}")


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


def status(data_dir: Path) -> int:
    cfg = ClusterConfig.load(data_dir.expanduser().resolve())
    if cfg is None:
        click.echo(f"no cluster in {data_dir}")
        return 1
    sup = supervisor_pid(cfg)
    click.echo(f"data dir:   {cfg.dir}\nserver:     {cfg.server_url}\nsupervisor: {f'running (pid {sup})' if sup else 'stopped'}")
    healthy = bool(sup)
    for c in plan(cfg):
        pid = component_pid(cfg, c.name)
        state = f"running (pid {pid})" if pid else "stopped"
        if pid and c.health:
            ok, detail = probe(cfg, c.health)
            state += f", {c.health.rsplit('/', 1)[-1] if '/' in c.health else 'health'} {'ok' if ok else detail}"
            healthy &= ok
        healthy &= pid is not None
        click.echo(f"{c.name:<20}{state}")
    if cfg.with_node and healthy:
        ok, detail = _node_ready(cfg)
        click.echo(f"{'node ' + cfg.node_name:<20}{'Ready' if ok else 'not ready: ' + str(detail)}")
        healthy &= ok
    return 0 if healthy else 1
