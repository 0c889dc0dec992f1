"""Shared benchmark plumbing: a private cluster, wrk runs, process RSS, percentiles."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from certs import ensure_pki, write_kubeconfig
from minictl.components import ClusterConfig, apiserver_command, component_env, etcd_command, free_port


def machine_facts() -> str:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, kernel {os.uname().release}"


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


class BenchCluster:
    """etcd + apiserver for benchmarks: a bearer token for wrk, and a plain-HTTP etcd listener
    on loopback so raw etcd puts can be measured by the same tool in the same run."""

    def __init__(self, extra_apiserver_args: list[str] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mk8s-bench-"))
        self.cfg = ClusterConfig(
            str(self.dir), apiserver_port=free_port(), etcd_client_port=free_port(), etcd_peer_port=free_port(),
            node_name="benchnode",
        )
        self.etcd_http_port = free_port()
        self.token = secrets.token_hex(16)
        tokens = self.dir / "tokens.csv"
        tokens.write_text(f'{self.token},bench-admin,bench-admin-uid,"system:masters"\n')
        self.cfg.extra_apiserver_args = ["--token-auth-file", str(tokens), *(extra_apiserver_args or [])]
        self.cfg.save()
        (self.dir / "logs").mkdir()
        self.pki = ensure_pki(self.dir / "pki", node_names=["benchnode"])
        cert, key = self.pki.client("admin")
        self.kubeconfig = write_kubeconfig(
            self.cfg.admin_kubeconfig, server=self.cfg.server_url, ca_cert=self.pki.ca_cert,
            user="kubernetes-admin", client_cert=cert, client_key=key,
        )
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def url(self) -> str:
        return self.cfg.server_url

    @property
    def etcd_http(self) -> str:
        return f"http://127.0.0.1:{self.etcd_http_port}"

    def start(self) -> BenchCluster:
        cmd = etcd_command(self.cfg)
        i = cmd.index("--listen-client-urls")
        cmd[i + 1] = f"{cmd[i + 1]},{self.etcd_http}"
        self._spawn("etcd", cmd)
        cmd = apiserver_command(self.cfg)
        if "--disable-admission-plugins" not in cmd:
            # the benches make Nodes by hand and run no node lifecycle controller to lift the
            # not-ready taint new Nodes get (as upstream's scheduler_perf)
            cmd += ["--disable-admission-plugins", "TaintNodesByCondition"]
        self._spawn("apiserver", cmd)
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", verify=ctx, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"apiserver not ready; see {self.dir}/logs")

    def _spawn(self, name: str, cmd: list[str]) -> None:
        log = open(self.dir / "logs" / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=component_env(),
                                            start_new_session=True)

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=ssl.create_default_context(cafile=str(self.pki.ca_cert)),
                            headers={"Authorization": f"Bearer {self.token}"}, timeout=30)

    def stop(self) -> None:
        for name in ("apiserver", "etcd"):
            p = self.procs.pop(name, None)
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> BenchCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()  # e.g. etcd lost a port race: leave no apiserver behind
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wrk(url: str, script: str, *, connections: int, duration: int, threads: int = 2,
        headers: dict[str, str] | None = None, latency: bool = True) -> dict:
    """Run wrk with a Lua script; → {"rps", "p50_ms", "p99_ms", "requests", "errors", "raw"}."""
    if not shutil.which("wrk"):
        raise RuntimeError("wrk is not installed: apt-get install -y wrk")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
        path = f.name
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "-s", path]
    if latency:
        cmd.append("--latency")
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    cmd.append(url)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    os.unlink(path)
    res: dict = {"raw": out, "cmd": " ".join([*cmd[:-1], "-s", "<script>", url])}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"(\d+) requests in", out)
    res["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["errors"] = int(m.group(1)) if m else 0
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(rf"\s{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)", out)
        if m:
            v = float(m.group(1))
            res[key] = v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v
    return res
