"""`minictl cluster up | down | status`: the local cluster's lifecycle."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import click
import httpx

from certs import check_expiry, ensure_pki, write_cluster_kubeconfigs
from minictl.components import ClusterConfig, component_env, plan
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
    p = cfg.dir / "run" / "supervisor.pid"
    try:
        pid = int(p.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def component_pid(cfg: ClusterConfig, name: str) -> int | None:
    try:
        pid = int((cfg.dir / "run" / f"{name}.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def _ssl(cfg: ClusterConfig) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cfg.pki.ca_cert))
    cert, key = cfg.pki.client("admin")
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def probe(cfg: ClusterConfig, path: str, timeout: float = 2.0) -> tuple[bool, str]:
    try:
        r = httpx.get(cfg.server_url + path, verify=_ssl(cfg), timeout=timeout)
        return r.status_code == 200, r.text.strip().splitlines()[-1] if r.text.strip() else str(r.status_code)
    except httpx.HTTPError as e:
        return False, type(e).__name__


def prepare(cfg: ClusterConfig) -> None:
    """PKI and kubeconfigs (idempotent: existing keys are kept)."""
    hosts = [] if cfg.bind_address in ("0.0.0.0", "127.0.0.1") else [cfg.bind_address]
    pki = ensure_pki(cfg.dir / "pki", hosts=hosts, node_names=[cfg.node_name])
    out = write_cluster_kubeconfigs(pki, cfg.dir / "kubeconfigs", cfg.server_url)
    shutil.copyfile(out["admin"], cfg.admin_kubeconfig)
    os.chmod(cfg.admin_kubeconfig, 0o600)
    for msg in check_expiry(pki):
        click.echo(f"warning: {msg}", err=True)


def up(data_dir: Path, reset: bool, timeout: float, **overrides) -> ClusterConfig:
    data_dir = data_dir.expanduser().resolve()
    if reset and data_dir.exists():
        down(data_dir, purge=True, quiet=True)
    cfg = ClusterConfig.load(data_dir)
    if cfg is None:
        cfg = ClusterConfig(str(data_dir), **{k: v for k, v in overrides.items() if v is not None})
        cfg.save()
    if supervisor_pid(cfg):
        ok, _ = probe(cfg, "/readyz")
        click.echo(f"cluster in {data_dir} is already running" + ("" if ok else " (not ready yet)"))
        return cfg
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
    for c in components:
        progress.step(c.name, "starting")
    deadline = time.monotonic() + timeout
    pending = {c.name: c for c in components}
    while pending and time.monotonic() < deadline:
        for name, c in list(pending.items()):
            pid = component_pid(cfg, name)
            if pid is None:
                continue
            if c.health:
                ok, detail = probe(cfg, c.health)
                if not ok:
                    progress.update(name, f"waiting ({detail})")
                    continue
            progress.done(name, f"running (pid {pid})")
            del pending[name]
        time.sleep(0.1)
    if pending:
        for name in pending:
            progress.fail(name, f"not up after {timeout:.0f}s; see {cfg.log(name)}")
        raise click.ClickException("the cluster did not come up")
    progress.finish(f"cluster up in {time.monotonic() - started:.1f}s")
    click.echo(
        f"\nTo use it:\n  export KUBECONFIG={cfg.admin_kubeconfig}\n  minictl get namespaces\n"
        "  kubectl get pods -A\n"
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
    # components whose supervisor died uncleanly: stop them by their recorded pids
    for c in plan(cfg):
        cpid = component_pid(cfg, c.name)
        if cpid:
            os.kill(cpid, signal.SIGTERM)
    if purge:
        shutil.rmtree(data_dir, ignore_errors=True)
        if not quiet:
            click.echo(f"removed {data_dir}")


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
            ok, detail = probe(cfg, "/healthz" if c.health == "/readyz" else c.health)
            ready, rdetail = probe(cfg, c.health)
            state += f", healthz {'ok' if ok else detail}, readyz {'ok' if ready else rdetail}"
            healthy &= ok and ready
        healthy &= pid is not None
        click.echo(f"{c.name:<12}{state}")
    return 0 if healthy else 1
