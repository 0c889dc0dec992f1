"""What every minik8s daemon shares: health/metrics endpoints, signal handling, leader election.

    async def run(stop: asyncio.Event) -> None: ...
    run_daemon("scheduler", run, log_level="info")

`HealthServer` serves `/healthz`, `/livez`, `/readyz` (named checks, `?verbose` lists them) and
`/metrics` (Prometheus text) on a plain-HTTP port bound to loopback by default, like upstream's
components' secure ports but without TLS: they expose no data beyond health and counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Awaitable, Callable

from aiohttp import web

from apimachinery import health
from apimachinery.logs import setup_logging
from apimachinery.metrics import Registry, process_metrics
from certs.kubeconfig import KubeconfigError

log = logging.getLogger("daemon")

Check = Callable[[], bool]


class HealthServer:
    def __init__(self, port: int, registry: Registry | None = None, bind: str = "127.0.0.1") -> None:
        self.port = port
        self.bind = bind
        self.registry = registry or Registry()
        self.live: dict[str, Check] = {}
        self.ready: dict[str, Check] = {}
        self._runner: web.AppRunner | None = None

    def add_liveness(self, name: str, check: Check) -> None:
        self.live[name] = check

    def add_readiness(self, name: str, check: Check) -> None:
        self.ready[name] = check

    @staticmethod
    def _results(checks: dict[str, Check]) -> dict[str, bool]:
        results = {}
        for name, check in checks.items():
            try:
                results[name] = bool(check())
            except Exception:
                results[name] = False
        return results

    def _report(self, checks: dict[str, Check], req: web.Request, what: str) -> web.Response:
        status, body = health.report(what, self._results(checks), "verbose" in req.query, req.query.getall("exclude", []))
        return web.Response(text=body, status=status)

    def _single(self, checks: dict[str, Check], req: web.Request) -> web.Response:
        answer = health.single(self._results(checks), req.match_info["name"])
        if answer is None:
            return web.Response(text="404 page not found\n", status=404)
        return web.Response(text=answer[1], status=answer[0])

    async def start(self) -> None:
        app = web.Application()

        async def healthz(req: web.Request) -> web.Response:
            return self._report(self.live, req, "livez" if req.path.startswith("/livez") else "healthz")

        async def readyz(req: web.Request) -> web.Response:
            return self._report({**self.live, **self.ready}, req, "readyz")

        async def live_check(req: web.Request) -> web.Response:
            return self._single(self.live, req)

        async def ready_check(req: web.Request) -> web.Response:
            return self._single({**self.live, **self.ready}, req)

        async def metrics(req: web.Request) -> web.Response:
            return web.Response(text=self.registry.render(), content_type="text/plain")

        app.router.add_get("/healthz", healthz)
        app.router.add_get("/livez", healthz)
        app.router.add_get("/readyz", readyz)
        app.router.add_get("/healthz/{name:.+}", live_check)
        app.router.add_get("/livez/{name:.+}", live_check)
        app.router.add_get("/readyz/{name:.+}", ready_check)
        app.router.add_get("/metrics", metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.bind, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def new_registry() -> Registry:
    r = Registry()
    process_metrics(r)
    return r


# A daemon's caches (informer stores, watch caches) are a heap of small long-lived objects.
# CPython's default collector re-scans all of it every time a quarter of it has been replaced,
# which costs a large share of CPU and stalls requests for milliseconds. Once the caches are
# loaded they are frozen out of the collector, the young generations collect less often, and
# full collections (only cyclic garbage needs them; plain dicts go by reference counting) run
# on a timer instead.
GC_THRESHOLDS = (50_000, 20, 1_000_000)
GC_FULL_EVERY = 300.0


def tune_gc() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def collect_periodically(stop: asyncio.Event, every: float = GC_FULL_EVERY) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
        if not stop.is_set():
            gc.collect()


def run_daemon(component: str, main: Callable[[asyncio.Event], Awaitable[None]], log_level: str = "info") -> None:
    """Run `main(stop)` on uvloop until it returns or SIGTERM/SIGINT sets `stop` (then give it 10 s)."""
    setup_logging(component, log_level)

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        task = asyncio.create_task(main(stop))
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            stopper.cancel()
            task.result()
            return
        log.info("%s: stopping", component)
        try:
            await asyncio.wait_for(task, 10)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    try:
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
            asyncio.run(runner())
        else:
            uvloop.run(runner())
    except KubeconfigError as e:  # a missing or broken kubeconfig: one line, not a traceback
        log.error("%s: %s", component, e)
        raise SystemExit(1) from None


async def run_with_leader_election(
    client: object,
    component: str,
    identity: str,
    work: Callable[[asyncio.Event], Awaitable[None]],
    stop: asyncio.Event,
    namespace: str = "kube-system",
    lease_duration: float = 15.0,
    renew_deadline: float = 10.0,
    retry_period: float = 2.0,
) -> None:
    """Run `work(leading_stop)` only while holding the `component` Lease in kube-system.

    Losing the lease stops the work; the process then exits so that a supervisor restarts it
    fresh (upstream's components also exit when they lose leadership).
    """
    from client.leaderelection import LeaderElector

    elector = LeaderElector(client, namespace, component, identity, lease_duration, renew_deadline, retry_period)
    lost = asyncio.Event()

    async def lead(leading_stop: asyncio.Event) -> None:
        log.info("%s: became leader as %s", component, identity)
        await work(leading_stop)

    async def on_stopped() -> None:
        log.warning("%s: leadership lost", component)
        lost.set()

    runner = asyncio.create_task(elector.run(lead, on_stopped))
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if not runner.done():
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    stopper.cancel()
    if lost.is_set() and not stop.is_set():
        raise SystemExit(f"{component}: lost leadership")
