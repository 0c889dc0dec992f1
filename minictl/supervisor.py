"""The cluster supervisor: one detached process per data dir that runs the components.

It starts each component in order, restarts one that exits (with backoff), and on
SIGTERM stops them in reverse order — always by the pids it holds. `minictl cluster up`
starts it; `minictl cluster down` signals it. State is visible in DIR/run/:
`supervisor.pid` and `<component>.pid` / `<component>.state`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click

from minictl.components import ClusterConfig, component_env, plan
from minictl.node import clean_host, remove_pods
from minictl.prereqs import SYSTEM_PATH


@dataclass
class Running:
    name: str
    cmd: list[str]
    proc: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0
    stop_grace: float = 10.0


def run_dir(cfg: ClusterConfig) -> Path:
    return cfg.dir / "run"


def write_state(cfg: ClusterConfig, name: str, state: str, pid: int | None) -> None:
    d = run_dir(cfg)
    (d / f"{name}.state").write_text(state)
    pidfile = d / f"{name}.pid"
    if pid:
        pidfile.write_text(str(pid))
    else:
        with contextlib.suppress(FileNotFoundError):
            pidfile.unlink()


def supervise(cfg: ClusterConfig) -> int:
    d = run_dir(cfg)
    d.mkdir(parents=True, exist_ok=True)
    (cfg.dir / "logs").mkdir(parents=True, exist_ok=True)
    (d / "supervisor.pid").write_text(str(os.getpid()))
    stopping = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    components = [Running(c.name, c.cmd, stop_grace=c.stop_grace) for c in plan(cfg)]
    env = component_env()
    env["PATH"] = env.get("PATH", "") + ":" + SYSTEM_PATH  # containerd, runc, iptables, ...
    try:
        while not stopping:
            now = time.monotonic()
            for c in components:
                if c.proc is not None and c.proc.poll() is not None:
                    code = c.proc.returncode
                    c.restarts += 1
                    delay = min(2 ** min(c.restarts, 6) * 0.25, 10.0)
                    c.next_start = now + delay
                    _log(cfg, f"{c.name} exited with {code}; restarting in {delay:.1f}s (restart {c.restarts})")
                    write_state(cfg, c.name, f"restarting after exit {code}", None)
                    c.proc = None
                if c.proc is None and now >= c.next_start:
                    log = open(cfg.log(c.name), "ab")
                    c.proc = subprocess.Popen(
                        c.cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=cfg.dir
                    )
                    log.close()
                    write_state(cfg, c.name, "running", c.proc.pid)
                    _log(cfg, f"started {c.name} (pid {c.proc.pid})")
            time.sleep(0.1)
    finally:
        for c in reversed(components):
            if c.name == "containerd" and c.proc is not None and c.proc.poll() is None:
                # the kubelet is stopped: remove its pods while containerd can still do it
                try:
                    _log(cfg, f"removed {asyncio.run(remove_pods(cfg))} pod sandboxes")
                except Exception as e:
                    _log(cfg, f"removing pod sandboxes failed: {e}")
            if c.proc is not None and c.proc.poll() is None:
                c.proc.send_signal(signal.SIGTERM)
                try:
                    c.proc.wait(c.stop_grace)
                except subprocess.TimeoutExpired:
                    c.proc.kill()
                    c.proc.wait()
            write_state(cfg, c.name, "stopped", None)
            _log(cfg, f"stopped {c.name}")
        if cfg.with_node:
            for problem in asyncio.run(clean_host(cfg)):
                _log(cfg, f"cleanup: {problem}")
            _log(cfg, "node cleaned up")
        with contextlib.suppress(FileNotFoundError):
            (d / "supervisor.pid").unlink()
    return 0


def _log(cfg: ClusterConfig, msg: str) -> None:
    with open(cfg.log("supervisor"), "a") as f:
        f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {msg}\n")


@click.command()
@click.option("--data-dir", required=True, type=click.Path(file_okay=False))
def main(data_dir: str) -> None:
    """Run and supervise the components of the cluster in DATA_DIR (started by `minictl cluster up`)."""
    cfg = ClusterConfig.load(data_dir)
    if cfg is None:
        raise click.ClickException(f"{data_dir} holds no cluster (no cluster.json)")
    sys.exit(supervise(cfg))


if __name__ == "__main__":
    main()
