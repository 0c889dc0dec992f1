"""Kubelet benchmark: pod startup latency (create → Running seen by a watch, image present) for one
pod and for a burst of 30 on one node, the CRI-only floor from the same run (RunPodSandbox +
CreateContainer + StartContainer straight against containerd), and the kubelet's RSS and CPU
with 30 idle pods.

    .venv/bin/python -m bench kubelet          (needs root, containerd, runc (and crun), the CNI plugins)
    KBENCH_OCI_RUNTIME=runc ...                 (the node's default OCI runtime: auto, crun or runc)

Everything runs on a private etcd + apiserver, a private containerd (own bridge and subnet) and
the kubelet as a real process; all of it is removed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.harness import BenchCluster, percentile, rss_mb
from certs import write_cluster_kubeconfigs
from client import APIClient, from_kubeconfig
from images import build_images, load_image
from kubelet import network
from kubelet.cri import CRIClient, pb
from kubelet.cri.containerd import (
    default_oci_runtime,
    runtime_handlers,
    shim_pids,
    start_containerd,
    unmount_under,
    wait_ready,
)
from minictl.components import component_env, free_port

NODE = "benchnode"
BUSYBOX = "localhost/minik8s/busybox:latest"
BURST = 30
SINGLE_ROUNDS = 10
IDLE_SECONDS = 30
SLOT_SWEEP = (2, 3, 4, 6)
RUNTIME_PAIRS = 3  # interleaved bursts per OCI runtime
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _free_subnet() -> ipaddress.IPv4Network:
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    for third in range(240, 250):
        net = ipaddress.ip_network(f"10.244.{third}.0/24")
        if str(net) not in routes:
            return net
    raise RuntimeError("no free /24 in 10.244.240-249 for the benchmark")


def _machine_cpu() -> float:
    """Busy CPU seconds of the whole machine so far (all cores; idle and iowait excluded)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


async def _settle(node: Node, timeout: float = 60.0) -> None:
    """Wait until the node is quiet: no pod sandboxes left in containerd and the machine below 15 %
    busy over half a second. The previous phase's teardown (the kernel destroys network namespaces
    in the background) must not be measured as the next phase's startup latency."""
    deadline = time.monotonic() + timeout
    async with CRIClient(node.containerd.paths.endpoint) as cri:
        while time.monotonic() < deadline:
            before, t0 = _machine_cpu(), time.monotonic()
            await asyncio.sleep(0.5)
            busy = (_machine_cpu() - before) / ((time.monotonic() - t0) * (os.cpu_count() or 1))
            if busy < 0.15 and not await cri.list_pod_sandbox():
                return
    raise RuntimeError(f"the node did not settle within {timeout:.0f} s")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Node:
    """containerd + kubelet for one benchmark run."""

    def __init__(self, cluster: BenchCluster) -> None:
        self.cluster = cluster
        self.dir = Path(tempfile.mkdtemp(prefix="mk8s-kbench-"))
        token = secrets.token_hex(3)
        self.bridge = f"mk8sb{token}"[:15]
        self.cgroup_root = f"mk8sb-{token}"
        self.subnet = _free_subnet()
        self.containerd = None
        self.kubelet: subprocess.Popen | None = None
        self.port = free_port()

    async def start(self) -> None:
        # KBENCH_OCI_RUNTIME=runc|crun compares the runtimes (default: what a node picks)
        self.containerd = start_containerd(self.dir, oci_runtime=os.environ.get("KBENCH_OCI_RUNTIME", "auto"))
        await wait_ready(self.containerd.socket, 30, process=self.containerd)
        for built in build_images(self.dir / "images"):
            await load_image(built.archive, self.containerd.socket)
        self._spawn_kubelet()

    def _spawn_kubelet(self) -> None:
        assert self.containerd is not None
        kubeconfigs = write_cluster_kubeconfigs(self.cluster.pki, self.dir / "kubeconfigs", self.cluster.url)
        cert, key = self.cluster.pki.kubelet_serving(NODE)
        cmd = [
            str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "python"), "-m", "kubelet",
            "--kubeconfig", str(kubeconfigs[f"kubelet-{NODE}"]),
            "--hostname-override", NODE, "--node-ip", "127.0.0.1",
            "--root-dir", str(self.dir / "kubelet"),
            "--container-runtime-endpoint", self.containerd.paths.endpoint,
            "--address", "127.0.0.1", "--port", str(self.port), "--healthz-port", str(free_port()),
            "--tls-cert-file", str(cert), "--tls-private-key-file", str(key),
            "--client-ca-file", str(self.cluster.pki.ca_cert),
            "--cni-conf-dir", str(self.containerd.paths.cni_conf_dir),
            "--cni-bridge", self.bridge, "--cni-network-name", self.cgroup_root,
            "--pod-cidr", str(self.subnet), "--cluster-dns", "10.96.0.10",
            "--cgroup-root", f"/{self.cgroup_root}",
            "--eviction-hard", "memory.available<50Mi",
            "--log-level", "info",
            *os.environ.get("KBENCH_KUBELET_ARGS", "").split(),
        ]
        env = component_env()
        env["PATH"] = env.get("PATH", "") + ":" + SYSTEM_PATH
        log = open(self.dir / "kubelet.log", "ab")  # the child keeps it open
        self.kubelet = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    async def stop(self) -> None:
        if self.kubelet is not None and self.kubelet.poll() is None:
            self.kubelet.send_signal(signal.SIGTERM)
            try:
                self.kubelet.wait(20)
            except subprocess.TimeoutExpired:
                self.kubelet.kill()
                self.kubelet.wait()
        if self.containerd is not None:
            with contextlib.suppress(Exception):
                async with CRIClient(self.containerd.paths.endpoint, timeout=30) as cri:
                    for c in await cri.list_containers():
                        with contextlib.suppress(Exception):
                            await cri.stop_container(c.id, 0)
                        with contextlib.suppress(Exception):
                            await cri.remove_container(c.id)
                    for s in await cri.list_pod_sandbox():
                        with contextlib.suppress(Exception):
                            await cri.stop_pod_sandbox(s.id)
                            await cri.remove_pod_sandbox(s.id)
            leftover = shim_pids(self.containerd.paths)
            self.containerd.stop()
            for pid in leftover:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        await network.cleanup_filter_rules(self.bridge)
        await network.delete_bridge(self.bridge)
        self._cleanup_host()

    def _cleanup_host(self) -> None:
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            top = hierarchy / self.cgroup_root
            if top.is_dir():
                for directory, _, _ in sorted(os.walk(top), key=lambda w: w[0].count("/"), reverse=True):
                    with contextlib.suppress(OSError):
                        os.rmdir(directory)
        results = Path("/var/lib/cni/results")
        if results.is_dir():
            for cached in results.glob(f"{self.cgroup_root}-*"):
                cached.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            unmount_under(self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)


def _pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {
            "nodeName": NODE, "terminationGracePeriodSeconds": 2, "automountServiceAccountToken": True,
            "containers": [{"name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                            "command": ["sleep", "3600"]}],
        },
    }


async def _startup_latencies(api: APIClient, ns: str, names: list[str], concurrent: bool) -> list[float]:
    """Create the pods; seconds from each create request to the watch event showing it Running."""
    pods = api.resource("v1", "pods")
    listed = await pods.list(ns)
    sent: dict[str, float] = {}
    running: dict[str, float] = {}
    done = asyncio.Event()

    async def watch() -> None:
        async for ev in pods.watch(ns, resource_version=listed["metadata"]["resourceVersion"]):
            obj = ev["object"]
            name = obj["metadata"]["name"]
            if (obj.get("status") or {}).get("phase") == "Running" and name in sent and name not in running:
                running[name] = time.monotonic()
                if len(running) == len(names):
                    done.set()
                    return

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.2)

    async def create(name: str) -> None:
        sent[name] = time.monotonic()
        await pods.create(_pod(name), ns)

    if concurrent:
        # one warm connection per create, as client-go's multiplexed HTTP/2 connection would give:
        # the measure is the node's startup latency (upstream's SLI starts at the pod's creation),
        # not this HTTP/1.1 client's TLS handshakes
        await asyncio.gather(*(pods.list(ns, limit=1) for _ in names))
        await asyncio.gather(*(create(n) for n in names))
    else:
        for n in names:
            await create(n)
    try:
        await asyncio.wait_for(done.wait(), 120)
    except TimeoutError:
        stuck = [n for n in names if n not in running]
        events = (await api.resource("v1", "events").list(ns))["items"]
        detail = [f"{e['involvedObject']['name']}: {e['reason']}: {e['message']}" for e in events
                  if e["involvedObject"]["name"] in stuck][:10]
        raise RuntimeError(f"pods not Running after 120 s: {stuck[:5]}; events: {detail}") from None
    finally:
        watcher.cancel()
        with contextlib.suppress(BaseException):
            await watcher
    return [running[n] - sent[n] for n in names]


async def _delete_all(api: APIClient, ns: str) -> None:
    pods = api.resource("v1", "pods")
    await pods.delete_collection(ns)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if not (await pods.list(ns))["items"]:
            return
        await asyncio.sleep(0.3)
    raise RuntimeError("pods were not deleted within 120 s")


def _sandbox_config(node: Node, name: str) -> pb.PodSandboxConfig:
    uid = str(uuid.uuid4())
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace="cri-bench"),
        hostname=name,
        log_directory=str(node.dir / "cri-logs" / uid),
        labels={"bench": "cri"},
        linux=pb.LinuxPodSandboxConfig(
            cgroup_parent=f"/{node.cgroup_root}/cri/pod{uid}",
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.POD, pid=pb.CONTAINER, ipc=pb.POD)),
        ),
    )


async def _cri_floor(node: Node, count: int, concurrent: bool, parallel: int = 0, handler: str = "",
                     cpu: list[float] | None = None) -> list[float]:
    """RunPodSandbox + CreateContainer + StartContainer, per pod, straight against containerd;
    with `parallel`, at most that many pods at a time (as the kubelet's start slots); `handler`:
    the CRI runtime handler (the OCI runtime; "" the default). `cpu` gets the machine's busy CPU
    seconds of the starts (not of the removal after them)."""
    slots = asyncio.Semaphore(parallel) if parallel else contextlib.nullcontext()
    async with CRIClient(node.containerd.paths.endpoint) as cri:
        image = (await cri.image_status(BUSYBOX)).id

        async def one(i: int, t0: float) -> float:
            async with slots:
                return await start(i, t0)

        async def start(i: int, t0: float) -> float:
            config = _sandbox_config(node, f"cri-{i}")
            sandbox = await cri.run_pod_sandbox(config, runtime_handler=handler)
            container = await cri.create_container(sandbox, pb.ContainerConfig(
                metadata=pb.ContainerMetadata(name="main"), image=pb.ImageSpec(image=image),
                command=["sleep", "3600"], log_path="main/0.log"), config)
            await cri.start_container(container)
            return time.monotonic() - t0

        machine_before = _machine_cpu()
        if concurrent:
            t0 = time.monotonic()
            latencies = list(await asyncio.gather(*(one(i, t0) for i in range(count))))
        else:
            latencies = [await one(i, time.monotonic()) for i in range(count)]
        if cpu is not None:
            cpu.append(_machine_cpu() - machine_before)
        for s in await cri.list_pod_sandbox(pb.PodSandboxFilter(label_selector={"bench": "cri"})):
            for c in await cri.list_containers(pb.ContainerFilter(pod_sandbox_id=s.id)):
                await cri.stop_container(c.id, 0)
                await cri.remove_container(c.id)
            await cri.stop_pod_sandbox(s.id)
            await cri.remove_pod_sandbox(s.id)
        return latencies


def _kubelet_requests(audit: Path, offset: int, pods: int) -> dict[str, float]:
    """The kubelet's API requests during the burst, per pod, by verb and resource (audit log)."""
    counts: dict[str, int] = {}
    try:
        with audit.open("rb") as f:
            f.seek(offset)
            for line in f:
                entry = json.loads(line)  # an audit.k8s.io/v1 Event
                if (entry.get("stage") != "ResponseComplete"
                        or not entry.get("user", {}).get("username", "").startswith("system:node:")):
                    continue
                ref = entry.get("objectRef") or {}
                key = f"{entry.get('verb')} {ref.get('resource')}" + (
                    f"/{ref['subresource']}" if ref.get("subresource") else "")
                counts[key] = counts.get(key, 0) + 1
    except OSError:
        return {}
    return {k: round(v / pods, 2) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])}


def _summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_s": round(percentile(values, 50), 3), "p99_s": round(percentile(values, 99), 3),
            "max_s": round(max(values), 3) if values else 0.0}


async def _run() -> dict[str, Any]:
    result: dict[str, Any] = {}
    with BenchCluster() as cluster:
        node = Node(cluster)
        try:
            await node.start()
            cfg = from_kubeconfig(cluster.kubeconfig, qps=0)
            async with APIClient(cfg) as api:
                deadline = time.monotonic() + 60
                while True:
                    with contextlib.suppress(Exception):
                        got = await api.resource("v1", "nodes").get(NODE)
                        conds = {c["type"]: c["status"] for c in got["status"]["conditions"]}
                        if conds.get("Ready") == "True":
                            break
                    if time.monotonic() > deadline or node.kubelet.poll() is not None:
                        raise RuntimeError(f"the kubelet did not get Ready; see {node.dir}/kubelet.log")
                    await asyncio.sleep(0.2)
                ns = "kbench"
                # what the controller-manager would add to the namespace (it does not run here)
                await api.resource("v1", "namespaces").create({"metadata": {"name": ns}})
                with contextlib.suppress(Exception):
                    await api.resource("v1", "serviceaccounts").create({"metadata": {"name": "default"}}, ns)
                with contextlib.suppress(Exception):
                    await api.resource("v1", "configmaps").create({
                        "metadata": {"name": "kube-root-ca.crt"},
                        "data": {"ca.crt": cluster.pki.ca_cert.read_text()}}, ns)
                # warm-up: first sandbox on the bridge, first image use
                await _startup_latencies(api, ns, ["warmup"], False)
                await _delete_all(api, ns)

                result["oci_runtime"] = default_oci_runtime(node.containerd.paths)
                await _settle(node)
                result["cri_single"] = _summary(await _cri_floor(node, SINGLE_ROUNDS, False))
                await _settle(node)
                result["cri_burst"] = _summary(await _cri_floor(node, BURST, True))
                # the runtime alone at every sensible number of start slots (the kubelet's default is
                # 2 × CPUs): the best p50 any kubelet could reach on this machine
                result["cri_burst_slots"] = {}
                for k in SLOT_SWEEP:
                    await _settle(node)
                    result["cri_burst_slots"][str(k)] = _summary(await _cri_floor(node, BURST, True, k))

                # the OCI runtimes against each other: the same burst (the kubelet's slots) with each
                # handler in turn, interleaved, so that the machine's drift hits both alike
                handlers = runtime_handlers(node.containerd.paths)
                if len(handlers) > 1:
                    runs: dict[str, list[dict[str, float]]] = {h: [] for h in handlers}
                    slots = 2 * (os.cpu_count() or 1)
                    for r in range(RUNTIME_PAIRS):
                        for handler in handlers if r % 2 == 0 else handlers[::-1]:
                            await _settle(node)
                            cpu: list[float] = []
                            latencies = await _cri_floor(node, BURST, True, slots, handler, cpu)
                            runs[handler].append({"p50_s": percentile(latencies, 50), "cpu_s_per_pod": cpu[0] / BURST})
                    result["cri_burst_by_runtime"] = {
                        h: {"bursts": len(v),
                            "p50_s_median": round(statistics.median(x["p50_s"] for x in v), 3),
                            "machine_cpu_ms_per_pod_median": round(
                                1000 * statistics.median(x["cpu_s_per_pod"] for x in v), 1)}
                        for h, v in runs.items()}

                await _settle(node)
                singles = []
                for i in range(SINGLE_ROUNDS):
                    singles += await _startup_latencies(api, ns, [f"single-{i}"], False)
                result["kubelet_single"] = _summary(singles)
                await _delete_all(api, ns)

                await _settle(node)
                audit = cluster.dir / "logs" / "audit.log"
                audit_offset = audit.stat().st_size if audit.exists() else 0
                pids = {"kubelet": node.kubelet.pid, "apiserver": cluster.procs["apiserver"].pid,
                        "etcd": cluster.procs["etcd"].pid, "containerd": node.containerd.pid}
                cpu_before, machine_before = {k: _cpu_seconds(p) for k, p in pids.items()}, _machine_cpu()
                burst = await _startup_latencies(api, ns, [f"burst-{i}" for i in range(BURST)], True)
                machine = _machine_cpu() - machine_before
                result["kubelet_burst"] = _summary(burst)
                # CPU the burst cost, per started pod: what each part takes from the runtime's share
                per_pod = {k: (_cpu_seconds(p) - cpu_before[k]) / BURST for k, p in pids.items()}
                per_pod["machine"] = machine / BURST
                result["burst_cpu_ms_per_pod"] = {k: round(v * 1000, 1) for k, v in per_pod.items()}
                await asyncio.sleep(2)
                result["kubelet_api_requests_per_pod_started"] = _kubelet_requests(audit, audit_offset, BURST)

                await asyncio.sleep(10)  # let the burst settle (status writes, first probes, GC)
                pid = node.kubelet.pid
                cpu0, t0 = _cpu_seconds(pid), time.monotonic()
                await asyncio.sleep(IDLE_SECONDS)
                cpu1, t1 = _cpu_seconds(pid), time.monotonic()
                result["idle_30_pods"] = {
                    "rss_mb": round(rss_mb(pid), 1),
                    "cpu_percent_of_one_core": round(100 * (cpu1 - cpu0) / (t1 - t0), 2),
                    "seconds": IDLE_SECONDS,
                }
                await _delete_all(api, ns)
        finally:
            out = Path(__file__).parent / "out"
            out.mkdir(exist_ok=True)
            with contextlib.suppress(OSError):
                shutil.copy(node.dir / "kubelet.log", out / "kubelet_bench.kubelet.log")
            await node.stop()
    return result


def run() -> dict[str, Any]:
    if os.geteuid() != 0:
        raise RuntimeError("the kubelet benchmark needs root (containerd, runc, CNI)")
    return asyncio.run(_run())


def report(r: dict[str, Any]) -> str:
    def row(label: str, key: str, target: str = "") -> str:
        s = r[key]
        return f"| {label} | {s['n']} | {s['p50_s'] * 1000:.0f} | {s['p99_s'] * 1000:.0f} | {target} |"

    def mark(k: str) -> str:
        return " (the kubelet's default start slots)" if int(k) == 2 * (os.cpu_count() or 1) else ""

    idle = r["idle_30_pods"]
    return "\n".join([
        "| measure | pods | p50 ms | p99 ms | target |",
        "|---|---|---|---|---|",
        row("kubelet: 1 pod at a time, create → Running (watch)", "kubelet_single", "p50 ≤ 800, p99 ≤ 2000"),
        row(f"kubelet: burst of {BURST}, create → Running (watch)", "kubelet_burst", "p50 ≤ 800, p99 ≤ 2000"),
        row("CRI floor: 1 pod at a time (sandbox + container start)", "cri_single"),
        row(f"CRI floor: burst of {BURST} in parallel", "cri_burst"),
        *(f"| CRI floor: burst of {BURST}, {k} at a time{mark(k)} | {s['n']} | {s['p50_s'] * 1000:.0f} | "
          f"{s['p99_s'] * 1000:.0f} | |" for k, s in r["cri_burst_slots"].items()),
        "",
        "CPU per pod during the burst (ms): " + ", ".join(f"{k} {v}" for k, v in r["burst_cpu_ms_per_pod"].items())
        + " (machine: every process; the runtime's shims, the OCI runtime and CNI plugins are the rest).",
        "",
        f"OCI runtime: {r.get('oci_runtime', 'runc')}." + "".join(
            f" CRI floor, burst of {BURST} with the kubelet's slots, {h}: p50 {v['p50_s_median'] * 1000:.0f} ms, "
            f"machine CPU {v['machine_cpu_ms_per_pod_median']} ms per pod (medians of {v['bursts']} interleaved bursts)."
            for h, v in (r.get("cri_burst_by_runtime") or {}).items()),
        "",
        f"Kubelet with {BURST} idle pods: RSS {idle['rss_mb']} MB, CPU {idle['cpu_percent_of_one_core']}% of one core "
        f"(over {idle['seconds']} s).",
    ])


if __name__ == "__main__":
    out = run()
    print(json.dumps(out, indent=2))
    print(report(out))
