"""kube-proxy benchmarks (issue 8): network programming latency and full-sync time.

    .venv/bin/python -m bench proxy                       # everything (root: real iptables/nft)
    .venv/bin/python -m bench.proxy_bench --only latency  # one part: latency | full | python

1. **Network programming latency** at 1000 services × 2 endpoints: a real apiserver, the
   kube-proxy daemon's own pipeline (ProxyServer: informers → proxier → rate-limited sync
   loop, default min-sync-period 1 s) in this process against the real kernel, and paced
   changes written through the API: endpoint changes (one endpoint of a slice replaced) and
   Service changes (new Services with endpoints). Latency = from just before the API write
   to the end of the sync that made the rule live (the on_sync hook, after the restore
   returned). kube-proxy's own kubeproxy_network_programming_duration_seconds (from the
   slices' last-change-trigger-time) is reported next to it.
2. **Full sync** of 10 000 services × 2 endpoints (no API: the state is set directly):
   payload size, Python time (state → payload) and time in the rule tool
   (iptables-restore / nft -f), for a first full sync, a partial sync of one changed
   service, and a full resync over existing rules — iptables and nftables modes.

Refuses to run (reports why) without root, or when a kube-proxy owns the host's rules.
Everything created is removed at the end (proxier.cleanup()).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import random
import shutil
import subprocess
import sys
import time
from typing import Any

from bench.harness import BenchCluster, percentile

SERVICE_CIDR = "10.96.0.0/16"
DEVICE = "mk8sbench0"
LATENCY_SERVICES = 1000
FULL_SERVICES = 10000
ENDPOINT_CHANGES = 60
SERVICE_CHANGES = 30
PACE = (1.0, 1.6)  # seconds between changes (uniform): each change gets its own paced sync


def _sh(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def refuse_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (real iptables-restore / nft)"
    for tool in ("iptables-restore", "iptables-save", "nft", "ip", "conntrack"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if _sh("iptables", "-w", "5", "-t", "nat", "-S", "KUBE-SERVICES").returncode == 0:
        return "a kube-proxy owns the KUBE-* chains on this host"
    if _sh("nft", "list", "table", "ip", "kube-proxy").returncode == 0:
        return "a kube-proxy owns the nftables table ip kube-proxy"
    if SERVICE_CIDR in _sh("ip", "route", "show").stdout:
        return f"{SERVICE_CIDR} is already routed here"
    return None


def service_ip(i: int) -> str:
    return f"10.96.{1 + i // 250}.{1 + i % 250}"


def endpoint_ip(i: int, j: int) -> str:
    return f"10.{244 + j}.{i // 250}.{1 + i % 250}"


def service_obj(i: int, namespace: str = "bench") -> dict:
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc-{i}", "namespace": namespace},
        "spec": {"type": "ClusterIP", "clusterIP": service_ip(i), "clusterIPs": [service_ip(i)],
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
    }


def make_objects(n: int, endpoints: int = 2, namespace: str = "bench") -> tuple[list[dict], list[dict]]:
    services = [service_obj(i, namespace) for i in range(n)]
    slices = [endpoint_slice(namespace, f"svc-{i}", [endpoint_ip(i, j) for j in range(endpoints)]) for i in range(n)]
    return services, slices


def endpoint_slice(namespace: str, service: str, ips: list[str], stamp: str | None = None) -> dict:
    meta: dict[str, Any] = {"name": f"{service}-bench", "namespace": namespace,
                            "labels": {"kubernetes.io/service-name": service}}
    if stamp:
        meta["annotations"] = {"endpoints.kubernetes.io/last-change-trigger-time": stamp}
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": meta, "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def _stamp() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": percentile(values, 50), "p90": percentile(values, 90),
            "p99": percentile(values, 99), "max": max(values) if values else float("nan")}


# ---------------------------------------------------------------------------------------------
# Full sync at 10 000 services


def _proxier(mode: str):
    from kube_proxy.iptables import IptablesProxier
    from kube_proxy.nftables import NftablesProxier

    if mode == "nftables":
        return NftablesProxier("benchnode", ["127.0.0.1"], service_cidr=SERVICE_CIDR, min_sync_period=0,
                               service_cidr_device=DEVICE)
    # "iptables-legacy": --iptables-backend legacy
    binary = "iptables-legacy" if mode == "iptables-legacy" else "iptables"
    return IptablesProxier("benchnode", ["127.0.0.1"], service_cidr=SERVICE_CIDR, min_sync_period=0,
                           service_cidr_device=DEVICE, iptables_binary=binary)


async def full_sync(mode: str, n: int = FULL_SERVICES) -> dict[str, Any]:
    services, slices = make_objects(n)
    proxier = _proxier(mode)
    out: dict[str, Any] = {"services": n, "endpoints": 2 * n}
    try:
        proxier.set_state(services, slices)  # pending changes: applied inside the first sync
        for label in ("first_full", "partial_one_service", "full_resync"):
            if label == "partial_one_service":
                changed = endpoint_slice("bench", "svc-7", [endpoint_ip(7, 0), "10.250.0.7"])
                proxier.on_endpointslice_update(slices[7], changed)
            elif label == "full_resync":
                proxier.need_full_sync = True
            result = await proxier.sync_proxy_rules()
            if not result.ok:
                raise RuntimeError(f"{mode} {label}: {result.error}")
            out[label] = {"total_s": result.seconds, "restore_s": result.restore_seconds,
                          "python_s": result.seconds - result.restore_seconds,
                          "payload_bytes": result.payload_bytes, "partial": result.partial}
    finally:
        started = time.perf_counter()
        errors = await proxier.cleanup()
        out["cleanup_s"] = time.perf_counter() - started
        if errors:
            out["cleanup_errors"] = errors
    return out


# ---------------------------------------------------------------------------------------------
# Network programming latency through the API


async def latency(mode: str, n: int = LATENCY_SERVICES) -> dict[str, Any]:
    from certs import write_cluster_kubeconfigs
    from client import APIClient, load_config
    from kube_proxy.app import ProxyOptions, ProxyServer
    from minictl.components import free_port

    with BenchCluster() as cluster:
        kubeconfigs = write_cluster_kubeconfigs(cluster.pki, cluster.dir, cluster.url)
        admin_cfg = load_config(cluster.kubeconfig, qps=0)
        async with APIClient(admin_cfg) as admin:
            await admin.resource("v1", "namespaces").create(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}})
            svcs = admin.resource("v1", "services")
            eps = admin.resource("discovery.k8s.io/v1", "endpointslices")
            services, slices = make_objects(n)
            sem = asyncio.Semaphore(16)

            async def create(resource, obj):
                async with sem:
                    await resource.create(obj, "bench")

            started = time.monotonic()
            await asyncio.gather(*(create(svcs, s) for s in services))
            await asyncio.gather(*(create(eps, s) for s in slices))
            populate_s = time.monotonic() - started

            opts = ProxyOptions(kubeconfig=str(kubeconfigs["kube-proxy"]), proxy_mode=mode,
                                hostname_override="benchnode", service_cluster_ip_range=SERVICE_CIDR,
                                service_cidr_device=DEVICE, healthz_bind_address=f"127.0.0.1:{free_port()}")
            pending: dict[str, tuple[float, Any]] = {}  # what → (write time, predicate on the proxier)
            samples: dict[str, list[float]] = {"endpoint": [], "service": []}
            syncs: list[Any] = []
            async with APIClient(load_config(opts.kubeconfig, qps=opts.kube_api_qps,
                                             burst=opts.kube_api_burst)) as api:
                server = ProxyServer(opts, api)
                original = server._on_sync

                def on_sync(result):
                    original(result)
                    if not result.ok or result.skipped:
                        return
                    syncs.append(result)
                    now = time.monotonic()
                    for key, (written, live) in list(pending.items()):
                        if live(server.proxier):
                            samples[key.split(":")[0]].append(now - written)
                            del pending[key]

                server._on_sync = on_sync
                stop = asyncio.Event()
                task = asyncio.create_task(server.run(stop))
                try:
                    await _wait(lambda: server.proxier is not None and server.proxier.sync_count > 0, 600)
                    initial = syncs[0] if syncs else None
                    rng = random.Random(8)
                    for k in range(ENDPOINT_CHANGES):
                        i = rng.randrange(n)
                        new_ip = f"10.250.{k // 250}.{1 + k % 250}"
                        current = await eps.get(f"svc-{i}-bench", "bench")
                        current["endpoints"][1]["addresses"] = [new_ip]
                        current["metadata"].setdefault("annotations", {})[
                            "endpoints.kubernetes.io/last-change-trigger-time"] = _stamp()
                        key = ("bench", f"svc-{i}", "http", "TCP")
                        pending[f"endpoint:{k}"] = (time.monotonic(), lambda p, key=key, ip=new_ip: any(
                            e.ip == ip for e in p.state.endpoints.get(key, ())))
                        await eps.update(current, "bench")
                        await asyncio.sleep(rng.uniform(*PACE))
                    for k in range(SERVICE_CHANGES):
                        i = n + k
                        svc = service_obj(i)
                        slc = endpoint_slice("bench", f"svc-{i}", [endpoint_ip(i, 0), endpoint_ip(i, 1)])
                        key = ("bench", f"svc-{i}", "http", "TCP")
                        pending[f"service:{k}"] = (time.monotonic(), lambda p, key=key: key in p.state.services
                                                   and key in p.state.endpoints)
                        await svcs.create(svc, "bench")
                        await eps.create(slc, "bench")
                        await asyncio.sleep(rng.uniform(*PACE))
                    await _wait(lambda: not pending, 30)
                    metric = server.metrics.network_programming
                finally:
                    stop.set()
                    await asyncio.wait_for(task, 60)
                    if server.proxier is not None:
                        await server.proxier.cleanup()
            partial = [s for s in syncs[1:] if s.partial]
            result = {
                "services": n, "populate_s": populate_s,
                "initial_full_sync_s": initial.seconds if initial else None,
                "endpoint_change": _summary(samples["endpoint"]),
                "service_change": _summary(samples["service"]),
                "kube_proxy_metric_count": metric.count(),
                "kube_proxy_metric_mean": (metric.series[()][-2] / metric.count()) if metric.count() else None,
                "partial_syncs": _summary([s.seconds for s in partial]),
                "partial_restore": _summary([s.restore_seconds for s in partial]),
                "missed": sorted(pending),
            }
            return result


async def _wait(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not reached")
        await asyncio.sleep(0.02)


# ---------------------------------------------------------------------------------------------
# Python-only: payload generation without the kernel


def python_only(n: int = FULL_SERVICES) -> dict[str, Any]:
    from kube_proxy.fake import FakeRunner
    from kube_proxy.iptables import IptablesProxier
    from kube_proxy.nftables import NftablesProxier

    services, slices = make_objects(n)
    out = {}
    for mode, cls in (("iptables", IptablesProxier), ("nftables", NftablesProxier)):
        p = cls("benchnode", ["127.0.0.1"], runner=FakeRunner(), min_sync_period=0)
        started = time.perf_counter()
        p.set_state(services, slices)
        p.state.apply_changes()
        state_s = time.perf_counter() - started
        started = time.perf_counter()
        if mode == "iptables":
            size = len(p.generate().payload)
        else:
            desired = p.generate()
            size = len(p.builder.payload(desired, True, None, set(), set()).text)
        out[mode] = {"state_s": state_s, "generate_s": time.perf_counter() - started, "payload_bytes": size}
    return out


def run(only: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if only in (None, "python"):
        out["python"] = python_only()
    reason = refuse_reason()
    if reason:
        out["skipped"] = reason
        return out
    if only in (None, "full"):
        out["full_sync"] = {mode: asyncio.run(full_sync(mode))
                            for mode in ("nftables", "iptables-legacy", "iptables")}
    if only in (None, "latency"):
        out["latency"] = {mode: asyncio.run(latency(mode)) for mode in ("iptables", "nftables")}
    return out


def _ms(v: float | None) -> str:
    return "–" if v is None else f"{v * 1000:,.0f} ms" if v < 10 else f"{v:,.1f} s"


def report(r: dict[str, Any]) -> str:
    lines = []
    if "latency" in r:
        lines += ["| network programming latency, 1000 services × 2 endpoints | p50 | p90 | p99 | max | n |",
                  "|---|---|---|---|---|---|"]
        for mode, m in r["latency"].items():
            for what in ("endpoint_change", "service_change"):
                s = m[what]
                lines.append(f"| {mode}: {what.replace('_', ' ')} (API write → rule live) | {_ms(s['p50'])} | "
                             f"{_ms(s['p90'])} | {_ms(s['p99'])} | {_ms(s['max'])} | {s['n']} |")
            ps, pr = m["partial_syncs"], m["partial_restore"]
            lines.append(f"| {mode}: partial sync (of which in the rule tool) | {_ms(ps['p50'])} ({_ms(pr['p50'])}) | "
                         f"| {_ms(ps['p99'])} ({_ms(pr['p99'])}) | {_ms(ps['max'])} | {ps['n']} |")
        lines.append("")
    if "full_sync" in r:
        lines += ["| 10 000 services × 2 endpoints | total | in the rule tool | Python | payload |",
                  "|---|---|---|---|---|"]
        for mode, m in r["full_sync"].items():
            for label in ("first_full", "partial_one_service", "full_resync"):
                s = m[label]
                lines.append(f"| {mode}: {label.replace('_', ' ')} | {_ms(s['total_s'])} | {_ms(s['restore_s'])} | "
                             f"{_ms(s['python_s'])} | {s['payload_bytes'] / 2**20:.1f} MiB |")
            lines.append(f"| {mode}: cleanup (--cleanup path) | {_ms(m['cleanup_s'])} | | | |")
        lines.append("")
    if "python" in r:
        lines += ["| payload generation only, 10 000 services | state | generate | payload |", "|---|---|---|---|"]
        for mode, m in r["python"].items():
            lines.append(f"| {mode} | {_ms(m['state_s'])} | {_ms(m['generate_s'])} | "
                         f"{m['payload_bytes'] / 2**20:.1f} MiB |")
    if "skipped" in r:
        lines.append(f"\nkernel parts skipped: {r['skipped']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["latency", "full", "python"])
    args = parser.parse_args()
    result = run(args.only)
    print(json.dumps(result, indent=2, default=str), file=sys.stderr)
    print(report(result))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
