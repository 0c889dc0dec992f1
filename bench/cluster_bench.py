"""Local cluster benchmarks (issue 9): cold `minictl cluster up` to node Ready, and the control
plane's idle memory.

    sudo .venv/bin/python -m bench cluster
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.harness import rss_mb
from minictl.cluster import component_pid
from minictl.components import ClusterConfig, free_port

ROOT = Path(__file__).resolve().parent.parent
MINICTL = str(ROOT / ".venv" / "bin" / "minictl")
CONTROL_PLANE = ("apiserver", "scheduler", "controller-manager")


def _up(d: Path, *extra: str) -> float:
    started = time.monotonic()
    r = subprocess.run([MINICTL, "cluster", "up", "--data-dir", str(d), *extra], capture_output=True, text=True, timeout=300)
    elapsed = time.monotonic() - started
    if r.returncode != 0:
        raise RuntimeError(f"cluster up failed:\n{r.stdout}\n{r.stderr}")
    m = re.search(r"cluster up in ([\d.]+)s", r.stdout)
    return float(m.group(1)) if m else elapsed


def _down(d: Path, purge: bool = False) -> None:
    subprocess.run([MINICTL, "cluster", "down", "--data-dir", str(d), *(["--purge"] if purge else [])],
                   capture_output=True, timeout=300)


def run(rounds: int = 3, idle_seconds: float = 30.0) -> dict:
    if os.geteuid() != 0:
        return {"skipped": "a node needs root"}
    cold, warm = [], []
    rss: dict[str, float] = {}
    for i in range(rounds):
        d = Path(tempfile.mkdtemp(prefix="mk8s-bench-up-"))
        ports = ["--apiserver-port", str(free_port()), "--etcd-client-port", str(free_port()),
                 "--etcd-peer-port", str(free_port())]
        try:
            cold.append(_up(d, *ports))  # from nothing: PKI, images, etcd, every component
            if i == 0:
                time.sleep(idle_seconds)
                cfg = ClusterConfig.load(d)
                assert cfg is not None
                for name in CONTROL_PLANE:
                    pid = component_pid(cfg, name)
                    rss[name] = rss_mb(pid) if pid else float("nan")
            _down(d)
            warm.append(_up(d))  # the same cluster again (`up` after `down`)
        finally:
            _down(d, purge=True)
            shutil.rmtree(d, ignore_errors=True)
    return {"cold_up_s": sorted(cold), "warm_up_s": sorted(warm), "idle_rss_mb": rss,
            "control_plane_rss_mb": sum(rss.values())}


def report(r: dict) -> str:
    if "skipped" in r:
        return f"skipped: {r['skipped']}"
    cold, warm = r["cold_up_s"], r["warm_up_s"]
    med = lambda xs: xs[len(xs) // 2]  # noqa: E731
    rss = r["idle_rss_mb"]
    return "\n".join([
        "| measure | result | target |",
        "|---|---|---|",
        f"| cold `cluster up` to node Ready, median (rounds: {', '.join(f'{x:.1f}' for x in cold)}) | **{med(cold):.1f} s** | ≤ 10 s (kind ~33 s, k3d ~20 s) |",
        f"| `cluster up` after `down`, median | {med(warm):.1f} s | |",
        f"| idle RSS: apiserver / scheduler / controller-manager | {rss['apiserver']:.0f} / {rss['scheduler']:.0f} / {rss['controller-manager']:.0f} MB | |",
        f"| idle RSS, control plane together | **{r['control_plane_rss_mb']:.0f} MB** | ≤ 300 MB (upstream apiserver alone ~230 MB) |",
    ])
