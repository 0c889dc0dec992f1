"""Throughput of the shared async client (client.APIClient): GET /version at concurrency 32.

Targets, each server in its own process so client and server do not share a core:
  (a) our apiserver's /version, authenticated with the admin client certificate (x509);
  (b) a trivial raw-ASGI app under uvicorn (httptools, uvloop) over TLS — the client's ceiling.
Against each, interleaved rounds of client.APIClient and of plain aiohttp (one session, no
wrapper) as the reference, plus wrk against (b) when wrk is installed. Reported: median and
best req/s, and the client's CPU time per request (less sensitive to a busy machine).

    .venv/bin/python -m bench client                      # via the bench runner
    .venv/bin/python -m bench.client_bench [--seconds 10] [--rounds 3] [--uvloop] [--kubeconfig PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(ROOT))

VERSION_BODY = b'{"major":"1","minor":"30","gitVersion":"v1.30.0-bench"}'
TARGET_RPS = 3000


# -- (b) the trivial server --------------------------------------------------------------

async def trivial_app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(VERSION_BODY)).encode())]})
    await send({"type": "http.response.body", "body": VERSION_BODY})


def serve_trivial(port: int, cert: str, key: str) -> None:
    import uvicorn

    uvicorn.run(trivial_app, host="127.0.0.1", port=port, http="httptools", loop="uvloop", log_level="warning",
                access_log=False, ssl_certfile=cert, ssl_keyfile=key, lifespan="off", timeout_keep_alive=120)


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


# -- load generators ---------------------------------------------------------------------

async def run_load(call, seconds: float, concurrency: int) -> tuple[float, float]:
    """Call `call()` from `concurrency` tasks for `seconds` (after a warm-up) → (req/s, client CPU µs/req)."""
    stop = False
    count = 0

    async def worker() -> None:
        nonlocal count
        while not stop:
            await call()
            count += 1

    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await asyncio.sleep(1.0)  # warm-up: connections open, caches warm
    start_count, start, cpu = count, time.perf_counter(), time.process_time()
    await asyncio.sleep(seconds)
    done, elapsed, cpu_used = count - start_count, time.perf_counter() - start, time.process_time() - cpu
    stop = True
    await asyncio.gather(*tasks)
    return done / elapsed, cpu_used / max(done, 1) * 1e6


async def load_client(cfg, seconds: float, concurrency: int) -> tuple[float, float]:
    from client import APIClient

    async with APIClient(cfg) as api:
        await api.version()
        return await run_load(lambda: api.request("GET", "/version"), seconds, concurrency)


async def load_plain_aiohttp(cfg, seconds: float, concurrency: int) -> tuple[float, float]:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=cfg.ssl_context, limit=100)) as s:
        url = cfg.server + "/version"

        async def call() -> None:
            async with s.get(url) as r:
                await r.read()

        return await run_load(call, seconds, concurrency)


def run_async(coro, use_uvloop: bool):
    if use_uvloop:
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def measure(cfg, seconds: float, concurrency: int, rounds: int, use_uvloop: bool, label: str) -> dict:
    ours: list[tuple[float, float]] = []
    plain: list[tuple[float, float]] = []
    for i in range(rounds):
        ours.append(run_async(load_client(cfg, seconds, concurrency), use_uvloop))
        plain.append(run_async(load_plain_aiohttp(cfg, seconds, concurrency), use_uvloop))
        print(f"  {label} round {i + 1}: client.APIClient {ours[-1][0]:,.0f} req/s ({ours[-1][1]:.0f} µs CPU/req), "
              f"plain aiohttp {plain[-1][0]:,.0f} req/s ({plain[-1][1]:.0f} µs CPU/req)", file=sys.stderr, flush=True)
    return {"client": _summary(ours), "plain_aiohttp": _summary(plain)}


def _summary(runs: list[tuple[float, float]]) -> dict:
    rates = sorted(r for r, _ in runs)
    return {"median_rps": statistics.median(rates), "best_rps": rates[-1],
            "cpu_us_per_req": statistics.median(c for _, c in runs), "rounds": [r for r, _ in runs]}


def wrk_reference(url: str, seconds: float, concurrency: int) -> float | None:
    if not shutil.which("wrk"):
        return None
    from bench.harness import wrk

    return wrk(url, "", connections=concurrency, duration=max(1, int(seconds)), latency=False)["rps"]


# -- the benchmark -----------------------------------------------------------------------

def run(seconds: float = 10.0, concurrency: int = 32, rounds: int = 3, use_uvloop: bool = False,
        kubeconfig: str | None = None) -> dict:
    from client.config import from_kubeconfig
    from minictl.components import free_port

    result: dict = {"seconds": seconds, "concurrency": concurrency, "rounds": rounds,
                    "loop": "uvloop" if use_uvloop else "asyncio", "python": sys.version.split()[0],
                    "cpus": os.cpu_count()}
    tmp = Path(tempfile.mkdtemp(prefix="mk8s-clientbench-"))
    cluster = None
    trivial: subprocess.Popen | None = None
    try:
        if kubeconfig:
            from certs import ensure_pki

            pki = ensure_pki(tmp / "pki", node_names=["bench"])
            kc = Path(kubeconfig)
        else:
            from bench.harness import BenchCluster

            cluster = BenchCluster().start()
            pki, kc = cluster.pki, cluster.kubeconfig
        cfg = from_kubeconfig(kc, qps=0)  # the client-side rate limit off: we measure the client
        result["apiserver"] = measure(cfg, seconds, concurrency, rounds, use_uvloop, "(a) apiserver")

        port = free_port()
        trivial = subprocess.Popen(
            [sys.executable, __file__, "--serve-trivial", str(port), str(pki.apiserver_cert), str(pki.apiserver_key)],
            start_new_session=True,
        )
        wait_port(port)
        trivial_cfg = cfg.replace(server=f"https://127.0.0.1:{port}",
                                  ssl_context=ssl.create_default_context(cafile=str(pki.ca_cert)))
        result["trivial"] = measure(trivial_cfg, seconds, concurrency, rounds, use_uvloop, "(b) trivial")
        result["trivial"]["wrk_rps"] = wrk_reference(f"https://127.0.0.1:{port}/version", seconds, concurrency)
    finally:
        if trivial is not None:
            trivial.send_signal(signal.SIGTERM)
            try:
                trivial.wait(10)
            except subprocess.TimeoutExpired:
                trivial.kill()
                trivial.wait()
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    result["load_average"] = os.getloadavg()
    return result


def report(r: dict) -> str:
    load = r["load_average"]
    lines = [
        f"GET /version, concurrency {r['concurrency']}, {r['rounds']} interleaved rounds of {r['seconds']:g} s, "
        f"{r['cpus']} CPUs (load average after: {load[0]:.1f}), Python {r['python']}, {r['loop']} loop, "
        "client-side QPS limit off.",
        "",
        "| target | client | median req/s | best req/s | client CPU µs/req | target |",
        "|---|---|---|---|---|---|",
    ]
    for key, label in (("apiserver", "(a) our apiserver, x509 client cert"),
                       ("trivial", "(b) trivial uvicorn raw-ASGI, TLS")):
        t = r[key]
        c, p = t["client"], t["plain_aiohttp"]
        ok = "met" if c["median_rps"] >= TARGET_RPS else "NOT met"
        lines.append(f"| {label} | client.APIClient | **{c['median_rps']:,.0f}** | {c['best_rps']:,.0f} | "
                     f"{c['cpu_us_per_req']:.0f} | ≥ {TARGET_RPS:,} ({ok}) |")
        lines.append(f"| {label} | plain aiohttp (reference) | {p['median_rps']:,.0f} | {p['best_rps']:,.0f} | "
                     f"{p['cpu_us_per_req']:.0f} | |")
        if t.get("wrk_rps"):
            lines.append(f"| {label} | wrk (C, reference) | {t['wrk_rps']:,.0f} | | | |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds per target")
    ap.add_argument("--uvloop", action="store_true", help="run the client on uvloop instead of asyncio's loop")
    ap.add_argument("--kubeconfig", help="bench a running cluster instead of starting a throwaway one")
    ap.add_argument("--serve-trivial", nargs=3, metavar=("PORT", "CERT", "KEY"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_trivial:
        port, cert, key = args.serve_trivial
        serve_trivial(int(port), cert, key)
        return
    result = run(args.seconds, args.concurrency, args.rounds, args.uvloop, args.kubeconfig)
    print(report(result))


if __name__ == "__main__":
    main()
