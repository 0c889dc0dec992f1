"""Controller-manager throughput: a Deployment of N replicas from creation to all pods bound.

    .venv/bin/python -m bench controller              # N = 100, then 1000
    .venv/bin/python -m bench.controller_bench 1000

Per case, on a fresh cluster (etcd + apiserver): 20 Node objects (Ready, 32 cpu / 256 Gi /
110 pods), the scheduler and the controller-manager as real processes with their own
identities (controller-manager.kubeconfig with --use-service-account-credentials; both with
client QPS 5000, as scheduler_perf raises it — upstream's default 20 qps would only measure
the rate limiter). Then, in the same run:
1. the apiserver's raw create rate: N pods POSTed by wrk (32 connections, a system:masters
   token), `schedulerName: none` so nothing else touches them;
2. a Deployment of N replicas with the same pod spec; a watch records when each pod appears
   and when it is bound. Reported: time from the Deployment's POST to all pods created and to
   all bound, and the ReplicaSet controller's create rate (N / first → last pod created) as a
   fraction of the raw rate.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime

import aiohttp
import httpx
import orjson

from bench.harness import BenchCluster, rss_mb
from bench.scheduler_bench import CREATE_LUA, PY_SPY, cpu_seconds, node_object
from certs import write_cluster_kubeconfigs
from minictl.components import component_env, free_port

NAMESPACE = "cm-bench"
RAW_NAMESPACE = "cm-bench-raw"
NODES = 20
QPS = 5000
CASES = (100, 1000)

POD_SPEC = {
    "automountServiceAccountToken": False,
    "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.9",
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                  "limits": {"cpu": "100m", "memory": "128Mi"}}}],
}


# where the controller-manager's time goes during a rollout (first matching frame wins)
CATEGORIES = (
    ("ReplicaSet sync (claim, rank, status)", "ReplicaSetController.sync"),
    ("pod creates (request + TLS)", "PodControl.create_pod"),
    ("event writes", "EventRecorder._run"),
    ("deployment sync", "DeploymentController.sync"),
    ("watch streams (read + JSON decode)", "Informer._run"),
    ("informer handlers", "HandlerRegistration._run"),
)


def spy_summary(path, categories, top: int = 15) -> dict:
    """Time per category and the top self-time functions, from py-spy's raw (collapsed) output."""
    own: dict[str, int] = {}
    cats: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        total += count
        frames = stack.split(";")
        own[frames[-1]] = own.get(frames[-1], 0) + count
        label = next((name for name, marker in categories if any(marker in f for f in frames)), "event loop, TLS, other")
        cats[label] = cats.get(label, 0) + count
    rows = sorted(own.items(), key=lambda kv: kv[1], reverse=True)[:top]
    return {"samples": total,
            "categories": {k: round(100 * v / total, 1) for k, v in sorted(cats.items(), key=lambda kv: -kv[1])},
            "top": [{"function": f, "pct": round(100 * c / total, 1)} for f, c in rows]}


def deployment(replicas: int) -> dict:
    labels = {"app": "cm-bench"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bench"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": POD_SPEC}}}


def raw_pod() -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "raw-", "labels": {"app": "raw"}},
            "spec": {**POD_SPEC, "schedulerName": "none"}}


class Run:
    def __init__(self, cluster: BenchCluster) -> None:
        import ssl

        self.cluster = cluster
        self.ctx = ssl.create_default_context(cafile=str(cluster.pki.ca_cert))
        self.headers = {"Authorization": f"Bearer {cluster.token}", "Content-Type": "application/json"}

    def session(self, limit: int = 64) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ctx, limit=limit), headers=self.headers)

    async def setup(self) -> None:
        base = self.cluster.url
        async with self.session() as s:
            for ns in (NAMESPACE, RAW_NAMESPACE):
                async with s.post(f"{base}/api/v1/namespaces", json={"metadata": {"name": ns}}) as r:
                    assert r.status == 201, await r.text()
                async with s.post(f"{base}/api/v1/namespaces/{ns}/serviceaccounts",
                                  json={"metadata": {"name": "default"}}) as r:
                    assert r.status in (201, 409), await r.text()
            for i in range(NODES):
                async with s.post(f"{base}/api/v1/nodes", data=orjson.dumps(node_object(i))) as r:
                    assert r.status == 201, await r.text()

    async def raw_create_rate(self, pods: int, connections: int = 32, threads: int = 2) -> dict:
        """wrk POSTs `pods` pods as fast as the apiserver takes them; rate from the 201s' times."""
        base = self.cluster.url
        script = CREATE_LUA.replace("%BODY%", orjson.dumps(raw_pod()).decode()).replace("%NS%", RAW_NAMESPACE)
        script = script.replace("%%", "%")
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            f.write(script)
        cmd = ["wrk", f"-t{threads}", f"-c{connections}", "-d600s", "-s", f.name,
               "-H", f"Authorization: Bearer {self.cluster.token}", base, "--", str(pods), str(threads)]
        async with self.session(4) as s:
            seen = await self._watch_until(s, RAW_NAMESPACE, pods, bound=False,
                                           start=lambda: asyncio.create_subprocess_exec(
                                               *cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        os.unlink(f.name)
        window = seen["last_created"] - seen["first_created"]
        return {"pods": pods, "seconds": window, "creates_per_s": (pods - 1) / window if window > 0 else 0.0,
                "wrk_cmd": " ".join(cmd[:-3]) + " -- PODS THREADS"}

    async def _watch_until(self, s: aiohttp.ClientSession, ns: str, pods: int, bound: bool, start) -> dict:
        """Start a watch, then `start()`; return the times of the first/last pod created (and bound)."""
        base = self.cluster.url
        async with s.get(f"{base}/api/v1/namespaces/{ns}/pods?limit=1") as r:
            rv = (await r.json())["metadata"]["resourceVersion"]
        created: set[str] = set()
        bound_names: set[str] = set()
        out = {"first_created": 0.0, "last_created": 0.0, "last_bound": 0.0}
        done = asyncio.Event()

        async def watch() -> None:
            url = f"{base}/api/v1/namespaces/{ns}/pods?watch=1&resourceVersion={rv}"
            async with s.get(url, timeout=aiohttp.ClientTimeout(total=None, sock_read=600)) as r:
                async for line in r.content:
                    if not line.strip():
                        continue
                    ev = orjson.loads(line)
                    obj = ev.get("object") or {}
                    name = (obj.get("metadata") or {}).get("name")
                    now = time.monotonic()
                    if ev.get("type") == "ADDED" and name not in created:
                        created.add(name)
                        out["first_created"] = out["first_created"] or now
                        out["last_created"] = now
                    if bound and (obj.get("spec") or {}).get("nodeName") and name not in bound_names:
                        bound_names.add(name)
                        out["last_bound"] = now
                    if len(created) >= pods and (not bound or len(bound_names) >= pods):
                        done.set()

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.3)
        out["started"] = time.monotonic()
        out["started_wall"] = time.time()
        proc = await start()
        try:
            await asyncio.wait_for(done.wait(), 900)
        finally:
            watcher.cancel()
            if isinstance(proc, asyncio.subprocess.Process) and proc.returncode is None:
                proc.send_signal(signal.SIGINT)
                await proc.communicate()
        out["created"] = len(created)
        out["bound"] = len(bound_names)
        return out

    async def deployment_rollout(self, replicas: int) -> dict:
        base = self.cluster.url
        async with self.session(4) as s:
            async def create() -> None:
                async with s.post(f"{base}/apis/apps/v1/namespaces/{NAMESPACE}/deployments",
                                  data=orjson.dumps(deployment(replicas))) as r:
                    assert r.status == 201, await r.text()

            seen = await self._watch_until(s, NAMESPACE, replicas, bound=True, start=create)
        t0 = seen["started"]
        window = seen["last_created"] - seen["first_created"]
        return {
            "replicas": replicas,
            "to_all_created_s": seen["last_created"] - t0,
            "to_all_bound_s": seen["last_bound"] - t0,
            "first_pod_after_s": seen["first_created"] - t0,
            "rs_creates_per_s": (replicas - 1) / window if window > 0 else 0.0,
            "posted_at": seen["started_wall"],
        }


def _start(cluster: BenchCluster, name: str, cmd: list[str]) -> subprocess.Popen:
    log = open(cluster.dir / "logs" / f"{name}.log", "ab")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=component_env(), start_new_session=True)


def _wait_ready(port: int, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready")


def apiserver_writes(cluster: BenchCluster, start: float, end: float) -> dict:
    """Writes the apiserver served during the rollout, by resource (from its audit log)."""
    httpx.get(f"{cluster.url}/version", verify=False, timeout=5)  # a request flushes the audit log
    time.sleep(1.1)
    httpx.get(f"{cluster.url}/version", verify=False, timeout=5)
    counts: dict[str, int] = {}
    for line in (cluster.dir / "logs" / "audit.log").read_bytes().splitlines():
        e = orjson.loads(line)  # an audit.k8s.io/v1 Event; one per request at its ResponseComplete stage
        if e.get("stage") != "ResponseComplete" or e.get("verb") not in ("create", "update", "patch", "delete"):
            continue
        if not start <= datetime.fromisoformat(e["requestReceivedTimestamp"]).timestamp() <= end:
            continue
        ref = e.get("objectRef") or {}
        what = ref.get("resource", "") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        counts[f"{e['verb']} {what}"] = counts.get(f"{e['verb']} {what}", 0) + 1
    counts["total"] = sum(counts.values())
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def controller_metrics(port: int) -> dict:
    """Syncs and seconds spent syncing per controller, from the controller-manager's /metrics."""
    out: dict[str, dict[str, float]] = {}
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text.splitlines():
        m = re.match(r'^controller_sync_(total|duration_seconds_sum)\{controller="([^"]+)"(?:,result="([^"]+)")?\} (\S+)$', line)
        if m:
            kind, name, result, value = m.groups()
            key = "seconds" if kind == "duration_seconds_sum" else f"syncs_{result}"
            out.setdefault(name, {})[key] = round(float(value), 3)
    return out


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_case(replicas: int, profile: bool = False) -> dict:
    with BenchCluster() as cluster:
        r = Run(cluster)
        asyncio.run(r.setup())
        kubeconfigs = write_cluster_kubeconfigs(cluster.pki, cluster.dir / "kubeconfigs", cluster.url)
        sched_port, cm_port = free_port(), free_port()
        sched = _start(cluster, "scheduler", [
            sys.executable, "-m", "scheduler", "--kubeconfig", str(kubeconfigs["scheduler"]),
            "--kube-api-qps", str(QPS), "--kube-api-burst", str(QPS), "--leader-elect=false", "--port", str(sched_port)])
        cm = _start(cluster, "controller-manager", [
            sys.executable, "-m", "controller_manager", "--kubeconfig", str(kubeconfigs["controller-manager"]),
            "--use-service-account-credentials", "--leader-elect=false", "--secure-port", str(cm_port),
            "--controllers", "replicaset-controller,deployment-controller",
            "--kube-api-qps", str(QPS), "--kube-api-burst", str(QPS), "--log-level", "warning"])
        try:
            _wait_ready(sched_port, sched, "scheduler")
            _wait_ready(cm_port, cm, "controller-manager")
            raw = asyncio.run(r.raw_create_rate(replicas))
            cpu0 = {"controller-manager": cpu_seconds(cm.pid), "scheduler": cpu_seconds(sched.pid),
                    "apiserver": cpu_seconds(cluster.pid("apiserver"))}
            spy = None
            spy_path = cluster.dir / "controller-manager.spy.txt"
            if profile and os.access(PY_SPY, os.X_OK):
                spy = subprocess.Popen([PY_SPY, "record", "--nonblocking", "-r", "200", "-f", "raw", "-o",
                                        str(spy_path), "-p", str(cm.pid)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1.0)
            rollout = asyncio.run(r.deployment_rollout(replicas))
            writes = apiserver_writes(cluster, rollout["posted_at"], rollout["posted_at"] + rollout["to_all_bound_s"])
            profile_summary = None
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(30)
                profile_summary = spy_summary(spy_path, CATEGORIES) if spy_path.exists() else None
            cpu = {k: round(cpu_seconds(p) - cpu0[k], 2) for k, p in
                   (("controller-manager", cm.pid), ("scheduler", sched.pid), ("apiserver", cluster.pid("apiserver")))}
            syncs = controller_metrics(cm_port)
            return {
                "replicas": replicas, "nodes": NODES, "raw": raw, "rollout": rollout, "syncs": syncs,
                "apiserver_writes": writes,
                "ratio": rollout["rs_creates_per_s"] / raw["creates_per_s"] if raw["creates_per_s"] else 0.0,
                "cpu_seconds_during_rollout": cpu, "cm_rss_mb": round(rss_mb(cm.pid), 1),
                "profile": profile_summary,
            }
        finally:
            _stop(cm)
            _stop(sched)


REPEATS = 3


def run(cases: tuple[int, ...] = CASES, repeats: int = REPEATS) -> dict:
    """Every case `repeats` times on fresh clusters (the machine is shared: single runs vary)."""
    return {"qps": QPS, "repeats": repeats,
            "cases": [{"replicas": n, "runs": [run_case(n) for _ in range(repeats)]} for n in cases]}


def _median(values: list[float]) -> float:
    s = sorted(values)
    return s[len(s) // 2]


def _spread(runs: list[dict], get, fmt: str) -> str:
    vals = [get(r) for r in runs]
    return f"{fmt.format(_median(vals))} [{fmt.format(min(vals))}–{fmt.format(max(vals))}]"


def report(result: dict) -> str:
    lines = [
        f"Median of {result['repeats']} runs per case (min–max in brackets); client QPS {result['qps']}.",
        "",
        "| replicas | POST → all created | POST → all bound | RS creates/s | raw creates/s (wrk c=32) | RS / raw | "
        "CPU s during rollout: cm / scheduler / apiserver |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in result["cases"]:
        runs = case["runs"]
        cpu = [_median([r["cpu_seconds_during_rollout"][k] for r in runs])
               for k in ("controller-manager", "scheduler", "apiserver")]
        lines.append(
            f"| {case['replicas']} | {_spread(runs, lambda r: r['rollout']['to_all_created_s'], '{:.2f} s')} | "
            f"{_spread(runs, lambda r: r['rollout']['to_all_bound_s'], '{:.2f} s')} | "
            f"{_spread(runs, lambda r: r['rollout']['rs_creates_per_s'], '{:.0f}')} | "
            f"{_spread(runs, lambda r: r['raw']['creates_per_s'], '{:.0f}')} | "
            f"{_spread(runs, lambda r: r['ratio'], '{:.2f}')} | {cpu[0]:.2f} / {cpu[1]:.2f} / {cpu[2]:.2f} |")
    lines += ["", "apiserver writes from the Deployment's POST to the last pod bound (median run by time to all bound):", ""]
    for case in result["cases"]:
        runs = sorted(case["runs"], key=lambda r: r["rollout"]["to_all_bound_s"])
        mid = runs[len(runs) // 2]
        w = mid["apiserver_writes"]
        per_s = w["total"] / mid["rollout"]["to_all_bound_s"]
        parts = ", ".join(f"{k} {v}" for k, v in w.items() if k != "total")
        lines.append(f"- {case['replicas']} replicas: {w['total']} writes ({per_s:.0f}/s): {parts}")
    return "\n".join(lines)


if __name__ == "__main__":
    cases = tuple(int(a) for a in sys.argv[1:] if a.isdigit()) or CASES
    res = run(cases)
    print(orjson.dumps(res, option=orjson.OPT_INDENT_2).decode())
    print(report(res))
