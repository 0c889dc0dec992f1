"""apiserver benchmarks (foundation issue): create throughput vs raw etcd, write latency,
watch delivery latency, RSS.

    .venv/bin/python -m bench apiserver
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
import time

import aiohttp
import httpx

from bench.harness import BenchCluster, percentile, rss_mb, wrk

VALUE = "x" * 1000  # ~1 KiB objects, as the anchor measurement

CREATE_LUA = f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"generateName":"bench-"}},"data":{{"v":"{VALUE}"}}}}'
"""

# etcd's JSON gateway wants base64 keys and values; keys must differ per request.
ETCD_PUT_LUA = r"""
local b='ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
local function enc(data)
  return ((data:gsub('.', function(x)
    local r,b='',x:byte()
    for i=8,1,-1 do r=r..(b%%2^i-b%%2^(i-1)>0 and '1' or '0') end
    return r;
  end)..'0000'):gsub('%%d%%d%%d?%%d?%%d?%%d?', function(x)
    if (#x < 6) then return '' end
    local c=0
    for i=1,6 do c=c+(x:sub(i,i)=='1' and 2^(6-i) or 0) end
    return b:sub(c+1,c+1)
  end)..({ '', '==', '=' })[#data%%3+1])
end
local value = enc(string.rep("x", 1000))
local counter = 0
local prefix = ""
function setup(thread) end
function init(args) prefix = tostring(math.random(1, 1000000000)) end
function request()
  counter = counter + 1
  local key = enc("/bench/" .. prefix .. "-" .. counter)
  return wrk.format("POST", "/v3/kv/put", {["Content-Type"]="application/json"},
                    '{"key":"' .. key .. '","value":"' .. value .. '"}')
end
""".replace("%%", "%")

PACED_CREATE_LUA = CREATE_LUA + "\nfunction delay() return 50 end\n"  # one request per 50 ms = 20/s

PACED_PATCH_LUA = """
wrk.method = "PATCH"
wrk.headers["Content-Type"] = "application/merge-patch+json"
local n = 0
function request()
  n = n + 1
  return wrk.format(nil, nil, nil, '{"data":{"n":"' .. n .. '"}}')
end
function delay() return 50 end
"""


def throughput(cluster: BenchCluster, duration: int = 10) -> dict:
    auth = {"Authorization": f"Bearer {cluster.token}"}
    etcd = wrk(cluster.etcd_http, ETCD_PUT_LUA, connections=32, duration=duration)
    api = wrk(f"{cluster.url}/api/v1/namespaces/default/configmaps", CREATE_LUA, connections=32,
              duration=duration, headers=auth)
    return {
        "etcd_puts_per_s": etcd["rps"],
        "api_creates_per_s": api["rps"],
        "ratio": api["rps"] / etcd["rps"] if etcd["rps"] else 0.0,
        "api_errors": api["errors"],
        "etcd_cmd": etcd["cmd"],
        "api_cmd": api["cmd"],
    }


def latency(cluster: BenchCluster, duration: int = 15) -> dict:
    auth = {"Authorization": f"Bearer {cluster.token}"}
    with cluster.client() as c:
        c.post("/api/v1/namespaces/default/configmaps",
               json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "lat"}, "data": {"v": VALUE}})
    create = wrk(f"{cluster.url}/api/v1/namespaces/default/configmaps", PACED_CREATE_LUA, connections=1,
                 threads=1, duration=duration, headers=auth)
    update = wrk(f"{cluster.url}/api/v1/namespaces/default/configmaps/lat", PACED_PATCH_LUA, connections=1,
                 threads=1, duration=duration, headers=auth)
    fsync = _histogram_quantiles(httpx.get(f"{cluster.etcd_http}/metrics", timeout=10).text,
                                 "etcd_disk_wal_fsync_duration_seconds", (50, 99))
    return {
        "create_p50_ms": create.get("p50_ms"), "create_p99_ms": create.get("p99_ms"), "create_rps": create["rps"],
        "update_p50_ms": update.get("p50_ms"), "update_p99_ms": update.get("p99_ms"), "update_rps": update["rps"],
        # every write waits for one fsync of etcd's WAL: the disk's part of the latency above
        "wal_fsync_p50_ms": fsync[50], "wal_fsync_p99_ms": fsync[99],
        "cmd": create["cmd"],
    }


def _histogram_quantiles(metrics: str, name: str, percents: tuple[int, ...]) -> dict[int, str]:
    """Quantiles of a Prometheus histogram in ms, as the bucket they fall in ("≤ 2", "> 16")."""
    buckets: list[tuple[float, float]] = []
    for line in metrics.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(bound), float(line.rsplit(" ", 1)[1])))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0.0
    finite = [(b, n) for b, n in buckets if b != float("inf")]
    out: dict[int, str] = {}
    for p in percents:
        bound = next((b for b, n in finite if n >= total * p / 100), None)
        out[p] = "?" if not total else f"≤ {bound * 1000:g}" if bound is not None else f"> {finite[-1][0] * 1000:g}"
    return out


WRITER = r"""
import json, ssl, sys, time, urllib.request
url, token, cafile, objects, rate = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
import http.client
host, port = url.split("//")[1].split("/")[0].split(":")
conn = http.client.HTTPSConnection(host, int(port), context=ssl.create_default_context(cafile=cafile))
path = "/" + url.split("//")[1].split("/", 1)[1]
next_t = time.perf_counter()
for i in range(objects):
    name = f"w{i:04d}"
    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": "x" * 100}})
    conn.request("POST", path, body, {"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    print(name, time.perf_counter(), flush=True)  # CLOCK_MONOTONIC: comparable across processes
    next_t += 1 / rate
    time.sleep(max(0.0, next_t - time.perf_counter()))
"""


async def _watch_latency(cluster: BenchCluster, watchers: int = 100, objects: int = 100, rate: float = 20.0) -> dict:
    """Watchers in this process; the writer in its own, so that its response times are not
    delayed behind this process's watch processing (one event loop would order them)."""
    ctx = ssl.create_default_context(cafile=str(cluster.pki.ca_cert))
    headers = {"Authorization": f"Bearer {cluster.token}"}
    ns = "watchbench"
    received: dict[str, list[float]] = {}
    conn = aiohttp.TCPConnector(ssl=ctx, limit=0)
    async with aiohttp.ClientSession(connector=conn, headers=headers) as s:
        base = cluster.url
        await s.post(f"{base}/api/v1/namespaces",
                     json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        async with s.get(f"{base}/api/v1/namespaces/{ns}/configmaps") as r:
            rv = (await r.json())["metadata"]["resourceVersion"]
        ready = asyncio.Event()
        started = 0

        async def watcher() -> None:
            nonlocal started
            url = f"{base}/api/v1/namespaces/{ns}/configmaps?watch=1&resourceVersion={rv}"
            async with s.get(url, timeout=aiohttp.ClientTimeout(total=None, sock_read=120)) as r:
                started += 1
                if started == watchers:
                    ready.set()
                seen = 0
                async for line in r.content:
                    t = time.perf_counter()
                    if not line.strip():
                        continue
                    # find the name without a full decode: the client should measure the server
                    i = line.find(b'"name":"') + 8
                    name = line[i:line.find(b'"', i)].decode()
                    received.setdefault(name, []).append(t)
                    seen += 1
                    if seen == objects:
                        return

        tasks = [asyncio.create_task(watcher()) for _ in range(watchers)]
        await asyncio.wait_for(ready.wait(), 30)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", WRITER, f"{base}/api/v1/namespaces/{ns}/configmaps", cluster.token,
            str(cluster.pki.ca_cert), str(objects), str(rate), stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    responded = {name: float(t) for name, t in (line.split() for line in out.decode().splitlines())}
    lat = [max(0.0, t - responded[n]) * 1000 for n, ts in received.items() for t in ts]
    return {"watchers": watchers, "events": len(lat), "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99)}


def watch_latency(cluster: BenchCluster) -> dict:
    return asyncio.run(_watch_latency(cluster))


async def _fill(cluster: BenchCluster, n: int) -> None:
    ctx = ssl.create_default_context(cafile=str(cluster.pki.ca_cert))
    conn = aiohttp.TCPConnector(ssl=ctx, limit=32)
    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "fill-"},
                       "data": {"v": VALUE}}).encode()
    async with aiohttp.ClientSession(connector=conn, headers={"Authorization": f"Bearer {cluster.token}",
                                                              "Content-Type": "application/json"}) as s:
        sem = asyncio.Semaphore(32)

        async def one() -> None:
            async with sem, s.post(f"{cluster.url}/api/v1/namespaces/fill/configmaps", data=body) as r:
                assert r.status == 201, await r.text()

        async with s.post(f"{cluster.url}/api/v1/namespaces",
                          json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fill"}}):
            pass
        await asyncio.gather(*(one() for _ in range(n)))


def memory(cluster: BenchCluster, objects: int = 10_000) -> dict:
    pid = cluster.pid("apiserver")
    idle = rss_mb(pid)
    asyncio.run(_fill(cluster, objects))
    time.sleep(1)
    return {"rss_idle_mb": idle, f"rss_after_{objects}_mb": rss_mb(pid)}


ROUNDS = 3


def _median_round(fn, key: str, rounds: int = ROUNDS) -> dict:
    """Run `fn(cluster)` on a fresh cluster `rounds` times; keep the round with the median `key`.

    This VM's disk and CPU vary run to run (raw etcd puts alone swing 2x), so one round says
    little; every round's figure is kept in `rounds`.
    """
    results = []
    for _ in range(rounds):
        with BenchCluster() as cluster:
            results.append(fn(cluster))
    ordered = sorted(results, key=lambda r: r[key])
    median = dict(ordered[len(ordered) // 2])
    median["rounds"] = [r[key] for r in results]
    for other in ("update_p99_ms",):  # a second figure of the same rounds: its own median
        if other in median:
            values = sorted(r[other] for r in results)
            median[other], median[other.replace("_ms", "_rounds")] = values[len(values) // 2], [
                r[other] for r in results]
    return median


def run() -> dict:
    results: dict = {}
    with BenchCluster() as cluster:
        time.sleep(1)  # let start-up settle before the idle reading
        results["memory"] = memory(cluster)
    results["throughput"] = _median_round(throughput, "ratio")
    results["latency"] = _median_round(latency, "create_p99_ms")
    results["watch"] = _median_round(watch_latency, "p99_ms")
    return results


def report(r: dict) -> str:
    t, lat, w, m = r["throughput"], r["latency"], r["watch"], r["memory"]
    return "\n".join([
        "| measure | result | target (upstream on this machine) |",
        "|---|---|---|",
        f"| creates/s through the API (c=32, 1 KiB) | {t['api_creates_per_s']:.0f} | |",
        f"| raw etcd puts/s (c=32, 1 KiB, same run) | {t['etcd_puts_per_s']:.0f} | |",
        f"| ratio (median of {len(t['rounds'])} rounds: {', '.join(f'{x:.2f}' for x in t['rounds'])}) | **{t['ratio']:.2f}** | ≥ 0.30 (upstream 0.25–0.27) |",
        f"| create latency @20/s, p50 / p99 (p99 of rounds: {', '.join(f'{x:.1f}' for x in lat['rounds'])}) | {lat['create_p50_ms']:.2f} / **{lat['create_p99_ms']:.2f} ms** | p99 ≤ 6 ms (upstream 3.2–3.8 / 5.9–6.1) |",
        f"| update latency @20/s, p50 / p99 (p99 of rounds: {', '.join(f'{x:.1f}' for x in lat.get('update_p99_rounds', []))}) "
        f"| {lat['update_p50_ms']:.2f} / **{lat['update_p99_ms']:.2f} ms** | p99 ≤ 6 ms |",
        f"| etcd WAL fsync during those writes, p50 / p99 (bucket bounds, etcd's own histogram) "
        f"| {lat['wal_fsync_p50_ms']} / {lat['wal_fsync_p99_ms']} ms | |",
        f"| watch delivery, {w['watchers']} watchers, p50 / p99 (p99 of rounds: {', '.join(f'{x:.1f}' for x in w['rounds'])}) | {w['p50_ms']:.2f} / **{w['p99_ms']:.2f} ms** | p99 ≤ 8 ms (upstream 1.4 / 7.7–8.5) |",
        f"| apiserver RSS idle / after 10k objects | {m['rss_idle_mb']:.0f} / {m['rss_after_10000_mb']:.0f} MB | (upstream idle ~230 MB) |",
    ])
