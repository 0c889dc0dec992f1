"""Throughput of the shared async client (client.APIClient): GET /version at a fixed concurrency.

Targets, each in its own process so client and server do not share a core:
  (a) our apiserver's /version, authenticated with the admin client certificate
      (a throwaway etcd + apiserver in a temp dir, or --kubeconfig for a running cluster);
  (b) a trivial raw-ASGI app under uvicorn (httptools, uvloop) over TLS — the client's own ceiling.
For reference it also measures plain aiohttp (one session, no wrapper) against the same targets.

    .venv/bin/python bench/client_bench.py [--seconds 10] [--concurrency 32] [--kubeconfig PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VERSION_BODY = b'{"major":"1","minor":"30","gitVersion":"v1.30.0-bench"}'


# -- (b) the trivial server ------------------------------------------------------------

async def trivial_app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(VERSION_BODY)).encode())]})
    await send({"type": "http.response.body", "body": VERSION_BODY})


def serve_trivial(port: int, cert: str, key: str) -> None:
    import uvicorn

    uvicorn.run(trivial_app, host="127.0.0.1", port=port, http="httptools", loop="uvloop", log_level="warning",
                access_log=False, ssl_certfile=cert, ssl_keyfile=key, lifespan="off", timeout_keep_alive=120)


def wait_port(port: int, timeout: float = 20.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


# -- load generators ---------------------------------------------------------------------

async def run_load(call, seconds: float, concurrency: int) -> tuple[int, float]:
    """Call `call()` from `concurrency` tasks for `seconds` (after a short warm-up); → (count, elapsed)."""
    stop = False
    count = 0

    async def worker() -> None:
        nonlocal count
        while not stop:
            await call()
            count += 1

    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await asyncio.sleep(1.0)  # warm-up: connections open, caches warm
    start_count, start = count, time.perf_counter()
    await asyncio.sleep(seconds)
    done, elapsed = count - start_count, time.perf_counter() - start
    stop = True
    await asyncio.gather(*tasks)
    return done, elapsed


async def bench_client(cfg, seconds: float, concurrency: int) -> float:
    from client import APIClient

    async with APIClient(cfg) as api:
        await api.version()
        n, el = await run_load(lambda: api.request("GET", "/version"), seconds, concurrency)
    return n / el


async def bench_raw_aiohttp(server: str, ctx: ssl.SSLContext, seconds: float, concurrency: int) -> float:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=100)) as s:
        url = server + "/version"

        async def call() -> None:
            async with s.get(url) as r:
                await r.read()

        n, el = await run_load(call, seconds, concurrency)
    return n / el


def measure(label: str, cfg, seconds: float, concurrency: int, results: list[tuple[str, float]]) -> None:
    rate = asyncio.run(bench_client(cfg, seconds, concurrency))
    results.append((f"{label}: client.APIClient", rate))
    print(f"{label}: client.APIClient {rate:,.0f} req/s", flush=True)
    rate = asyncio.run(bench_raw_aiohttp(cfg.server, cfg.ssl_context, seconds, concurrency))
    results.append((f"{label}: plain aiohttp (reference)", rate))
    print(f"{label}: plain aiohttp {rate:,.0f} req/s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--kubeconfig", help="bench a running cluster instead of starting a throwaway one")
    ap.add_argument("--qps", type=float, default=0.0, help="client-side QPS limit (0 = off)")
    ap.add_argument("--serve-trivial", nargs=3, metavar=("PORT", "CERT", "KEY"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_trivial:
        port, cert, key = args.serve_trivial
        serve_trivial(int(port), cert, key)
        return

    from client.config import from_kubeconfig
    from minictl.components import free_port

    results: list[tuple[str, float]] = []
    tmp = Path(tempfile.mkdtemp(prefix="mk8s-clientbench-"))
    cp = None
    trivial: subprocess.Popen | None = None
    try:
        if args.kubeconfig:
            kubeconfig = Path(args.kubeconfig)
        else:
            from tests.conftest import ControlPlane

            cp = ControlPlane(tmp / "cluster").start()
            kubeconfig = cp.kubeconfig
        cfg = from_kubeconfig(kubeconfig, qps=args.qps, burst=max(1, int(args.qps * 2)))
        measure("(a) apiserver /version, x509 client cert", cfg, args.seconds, args.concurrency, results)

        from certs import ensure_pki

        pki = cp.pki if cp is not None else ensure_pki(tmp / "pki", node_names=["bench"])
        port = free_port()
        trivial = subprocess.Popen(
            [sys.executable, __file__, "--serve-trivial", str(port), str(pki.apiserver_cert), str(pki.apiserver_key)],
            start_new_session=True,
        )
        wait_port(port)
        trivial_cfg = cfg.replace(server=f"https://127.0.0.1:{port}",
                                  ssl_context=ssl.create_default_context(cafile=str(pki.ca_cert)))
        measure("(b) trivial uvicorn raw-ASGI over TLS", trivial_cfg, args.seconds, args.concurrency, results)
    finally:
        if trivial is not None:
            trivial.send_signal(signal.SIGTERM)
            try:
                trivial.wait(10)
            except subprocess.TimeoutExpired:
                trivial.kill()
                trivial.wait()
        if cp is not None:
            cp.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nGET /version, concurrency {args.concurrency}, {args.seconds:g} s per run, {os.cpu_count()} CPUs, "
          f"Python {sys.version.split()[0]}, default asyncio loop, client QPS limit "
          f"{'off' if args.qps <= 0 else args.qps}")
    print("| target | req/s |\n|---|---|")
    for label, rate in results:
        print(f"| {label} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
