"""What every controller of the controller-manager is built on.

A controller is a class in its own module, registered by name:

    from controller_manager.base import Controller, ControllerContext, register

    @register
    class WidgetController(Controller):
        name = "widget-controller"          # upstream's name (--controllers accepts it)
        aliases = ("widget",)              # upstream's older short names, also accepted
        workers_option = "concurrent_widget_syncs"   # ControllerManagerOptions field (None: 1 worker)
        service_account = "widget-controller"        # kube-system SA it writes as (upstream's)

        def __init__(self, ctx: ControllerContext) -> None:
            super().__init__(ctx)
            self.widgets = self.watch("example.io/v1", "widgets")   # shared informer, enqueues on change
            self.pods = self.informer("v1", "pods")                 # shared informer, no handlers
            self.pods.add_handler(self.on_pod_add, self.on_pod_update, self.on_pod_delete)

        async def sync(self, key: str) -> None:   # "ns/name"; raise to retry with backoff
            ...

and its module is listed in `manager.CONTROLLER_MODULES`. The manager builds every enabled
controller (informers are requested in `__init__`), starts the shared informers, and calls
`run(workers, stop)`: wait for this controller's informers to sync, then run `workers`
workers over `self.queue` (and the coroutines `background(stop)` returns) until `stop`.

Everything a controller needs comes through `ControllerContext`: the API clients (the
controller-manager's own for informers; `self.client`, the controller's own ServiceAccount
identity with --use-service-account-credentials, for everything else), the
shared informer factory, an event recorder per controller (`ctx.recorder(name)`), the
options (flags), a metrics registry and a clock (replaced by a fake one in unit tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from apimachinery.meta import key_of
from apimachinery.metrics import Registry
from client import (
    APIClient,
    EventRecorder,
    Informer,
    SharedInformerFactory,
    WorkQueue,
    deleted_object,
    is_not_found,
    run_workers,
)
from client.store import IndexFunc

if TYPE_CHECKING:
    from controller_manager.clientbuilder import ClientBuilder

log = logging.getLogger("controller_manager")

Obj = dict[str, Any]


# -- time --------------------------------------------------------------------------------

class Clock:
    """Wall-clock time for controllers (timestamps, deadlines); unit tests use FakeClock."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock(Clock):
    """A clock that only moves when told to."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self._now = start or dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        self._mono = 1000.0

    def now(self) -> dt.datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def step(self, seconds: float) -> None:
        self._now += dt.timedelta(seconds=seconds)
        self._mono += seconds

    def set(self, t: dt.datetime) -> None:
        self._mono += (t - self._now).total_seconds()
        self._now = t


# -- options -----------------------------------------------------------------------------

@dataclass
class ControllerManagerOptions:
    """The controller-manager's flags (upstream names with `_`); defaults are upstream's."""

    # workload controllers
    concurrent_replicaset_syncs: int = 5
    concurrent_rc_syncs: int = 5
    concurrent_deployment_syncs: int = 5
    concurrent_daemonset_syncs: int = 2
    concurrent_statefulset_syncs: int = 5
    concurrent_job_syncs: int = 5
    concurrent_cron_job_syncs: int = 5
    concurrent_ttl_after_finished_syncs: int = 5
    # infrastructure controllers
    concurrent_endpoint_syncs: int = 5
    concurrent_service_endpoint_syncs: int = 5
    concurrent_namespace_syncs: int = 10
    concurrent_serviceaccount_token_syncs: int = 5
    concurrent_gc_syncs: int = 20
    enable_garbage_collector: bool = True
    endpoint_updates_batch_period: float = 0.0
    endpointslice_updates_batch_period: float = 0.0
    max_endpoints_per_slice: int = 100
    namespace_sync_period: float = 300.0
    terminated_pod_gc_threshold: int = 12500
    node_monitor_period: float = 5.0
    node_monitor_grace_period: float = 40.0
    node_startup_grace_period: float = 60.0
    pod_eviction_timeout: float = 300.0
    node_eviction_rate: float = 0.1
    secondary_node_eviction_rate: float = 0.01
    large_cluster_size_threshold: int = 50
    unhealthy_zone_threshold: float = 0.55
    allocate_node_cidrs: bool = False
    cluster_cidr: str = ""
    node_cidr_mask_size: int = 24
    service_cluster_ip_range: str = ""
    service_account_private_key_file: str = ""
    root_ca_file: str = ""
    use_service_account_credentials: bool = False
    # certificate signing requests (csrsigning): one CA for every signer, or one per signer
    cluster_signing_cert_file: str = ""
    cluster_signing_key_file: str = ""
    cluster_signing_duration: float = 365 * 24 * 3600.0
    cluster_signing_kubelet_serving_cert_file: str = ""
    cluster_signing_kubelet_serving_key_file: str = ""
    cluster_signing_kubelet_client_cert_file: str = ""
    cluster_signing_kubelet_client_key_file: str = ""
    cluster_signing_kube_apiserver_client_cert_file: str = ""
    cluster_signing_kube_apiserver_client_key_file: str = ""
    cluster_signing_legacy_unknown_cert_file: str = ""
    cluster_signing_legacy_unknown_key_file: str = ""
    # horizontal pod autoscaler (durations in seconds)
    concurrent_horizontal_pod_autoscaler_syncs: int = 5
    horizontal_pod_autoscaler_sync_period: float = 15.0
    horizontal_pod_autoscaler_tolerance: float = 0.1
    horizontal_pod_autoscaler_downscale_stabilization: float = 300.0
    horizontal_pod_autoscaler_cpu_initialization_period: float = 300.0
    horizontal_pod_autoscaler_initial_readiness_delay: float = 30.0
    #: anything else a controller wants to read without a dedicated field (flag name → value)
    extra: dict[str, Any] = field(default_factory=dict)


# -- the shared context ------------------------------------------------------------------

class ControllerContext:
    """What the manager hands every controller (one instance shared by all of them)."""

    def __init__(
        self,
        client: APIClient,
        informers: SharedInformerFactory,
        options: ControllerManagerOptions | None = None,
        registry: Registry | None = None,
        clock: Clock | None = None,
        host: str | None = None,
        recorder_factory: Callable[[str], EventRecorder] | None = None,
        clients: ClientBuilder | None = None,
    ) -> None:
        #: the controller-manager's own client (informers use it: it may list/watch everything)
        self.client = client
        self.clients = clients
        self.informers = informers
        self.options = options or ControllerManagerOptions()
        self.registry = registry or Registry()
        self.clock = clock or Clock()
        self.host = host
        self._recorder_factory = recorder_factory
        self._recorders: dict[str, EventRecorder] = {}
        self.sync_total = self.registry.counter(
            "controller_sync_total", "Syncs by controller and result (success, error).", ("controller", "result"))
        self.sync_duration = self.registry.histogram(
            "controller_sync_duration_seconds", "How long one sync(key) took.", ("controller",))
        self.queue_depth = self.registry.gauge(
            "workqueue_depth", "Keys waiting in a controller's workqueue.", ("name",))

    def client_for(self, service_account: str | None) -> APIClient:
        """The client a controller writes with: its own ServiceAccount's, when those are in use."""
        if self.clients is None:
            return self.client
        return self.clients.get(service_account)

    def recorder(self, component: str, client: APIClient | None = None) -> EventRecorder:
        """The event recorder for `component` (events' source, e.g. "replicaset-controller")."""
        rec = self._recorders.get(component)
        if rec is None:
            if self._recorder_factory is not None:
                rec = self._recorder_factory(component)
            else:
                rec = EventRecorder(client or self.client, component, self.host)
            self._recorders[component] = rec
        return rec

    async def close(self) -> None:
        for rec in self._recorders.values():
            with contextlib.suppress(Exception):
                await rec.close(timeout=2.0)
        if self.clients is not None:
            await self.clients.close()


def add_index_once(informer: Informer, name: str, fn: IndexFunc) -> None:
    """Add an index to a shared informer's store unless another controller already did."""
    with contextlib.suppress(ValueError):
        informer.add_index(name, fn)


async def remove_finalizer(resource: Any, obj: Obj, finalizer: str) -> None:
    """Update `obj` (conditional on its resourceVersion) without `finalizer`; gone already is fine."""
    updated = {**obj, "metadata": {**obj["metadata"],
                                   "finalizers": [f for f in obj["metadata"].get("finalizers") or [] if f != finalizer]}}
    try:
        await resource.update(updated)
    except Exception as e:
        if not is_not_found(e):
            raise


# -- the controller ----------------------------------------------------------------------

class Controller:
    """Base of every controller: informers → `self.queue` of "ns/name" keys → `sync(key)`."""

    #: upstream's controller name, e.g. "replicaset-controller" (also its events' source)
    name: ClassVar[str] = ""
    #: its events' source when upstream's differs from `name` (e.g. "replication-controller")
    event_source: ClassVar[str] = ""
    #: other names --controllers accepts, e.g. ("replicaset",)
    aliases: ClassVar[tuple[str, ...]] = ()
    #: enabled by "*" (upstream disables a few by default, e.g. bootstrapsigner)
    enabled_by_default: ClassVar[bool] = True
    #: ControllerManagerOptions field giving the number of workers (None: 1)
    workers_option: ClassVar[str | None] = None
    #: kube-system ServiceAccount it acts as with --use-service-account-credentials (upstream's
    #: names: "replicaset-controller", "daemon-set-controller", "generic-garbage-collector", ...)
    service_account: ClassVar[str | None] = None

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        #: this controller's client for reads and writes (its own identity); informers use ctx.client
        self.client = ctx.client_for(self.service_account)
        self.options = ctx.options
        self.clock = ctx.clock
        self.log = logging.getLogger(f"controller_manager.{self.name}")
        self.recorder = ctx.recorder(self.event_source or self.name, self.client)
        self.queue: WorkQueue[str] = WorkQueue(name=self.name)
        self._informers: list[Informer] = []

    # -- informers ---------------------------------------------------------------------

    def informer(self, api_version: str, plural: str, **kw: Any) -> Informer:
        """A shared informer this controller waits for before its workers start."""
        inf = self.ctx.informers.informer(api_version, plural, **kw)
        if inf not in self._informers:
            self._informers.append(inf)
        return inf

    def watch(self, api_version: str, plural: str, **kw: Any) -> Informer:
        """A shared informer whose adds/updates/deletes enqueue the object's own key."""
        inf = self.informer(api_version, plural, **kw)
        inf.add_handler(self.enqueue, lambda old, new: self.enqueue(new), self.enqueue_deleted)
        return inf

    @property
    def informers_synced(self) -> bool:
        return all(inf.has_synced for inf in self._informers)

    # -- the queue ---------------------------------------------------------------------

    def enqueue(self, obj: Obj) -> None:
        self.queue.add(key_of(obj))

    def enqueue_deleted(self, obj: Any) -> None:
        self.queue.add(key_of(deleted_object(obj)))

    def enqueue_after(self, obj: Obj | str, delay: float) -> None:
        self.queue.add_after(obj if isinstance(obj, str) else key_of(obj), delay)

    # -- running -----------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        """Make the world match the object `key` ("ns/name"); raise to be retried with backoff."""
        raise NotImplementedError

    def background(self, stop: asyncio.Event) -> Iterable[Coroutine[Any, Any, None]]:
        """Extra loops to run next to the workers (periodic resyncs, monitors); none by default."""
        return ()

    async def _timed_sync(self, key: str) -> None:
        start = time.monotonic()
        self.ctx.queue_depth.set(len(self.queue), self.name)
        try:
            await self.sync(key)
        except Exception:
            self.ctx.sync_total.inc(self.name, "error")
            raise
        finally:
            self.ctx.sync_duration.observe(time.monotonic() - start, self.name)
        self.ctx.sync_total.inc(self.name, "success")

    async def wait_for_sync(self, stop: asyncio.Event) -> bool:
        """Wait until this controller's informers have synced (False if stopped first)."""
        waiter = asyncio.ensure_future(asyncio.gather(*(inf.wait_synced() for inf in self._informers)))
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (waiter, stopper):
                if not t.done():
                    t.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await t
        return not stop.is_set()

    async def run(self, workers: int, stop: asyncio.Event) -> None:
        """Wait for the caches, then process keys with `workers` workers until `stop` is set."""
        self.log.info("starting %s", self.name)
        if not await self.wait_for_sync(stop):
            return
        self.log.info("%s: caches synced; %d workers", self.name, workers)
        tasks = [asyncio.create_task(run_workers(self.queue, self._timed_sync, workers, self.name),
                                     name=f"{self.name} workers")]
        tasks += [asyncio.create_task(c, name=f"{self.name} loop") for c in self.background(stop)]
        try:
            await stop.wait()
        finally:
            self.queue.shutdown()
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            self.log.info("stopped %s", self.name)


# -- the registry ------------------------------------------------------------------------

#: every known controller by its name (filled by @register as the modules are imported)
CONTROLLERS: dict[str, type[Controller]] = {}


def register(cls: type[Controller]) -> type[Controller]:
    """Class decorator: make a controller known to the manager under `cls.name`."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    existing = CONTROLLERS.get(cls.name)
    if existing is not None and existing is not cls:
        raise ValueError(f"controller name {cls.name!r} registered twice ({existing.__name__}, {cls.__name__})")
    CONTROLLERS[cls.name] = cls
    return cls


async def periodic(interval: float, fn: Callable[[], Any], stop: asyncio.Event) -> None:
    """Call `fn` (plain or async) every `interval` seconds until `stop` (for `background`)."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval):
                await stop.wait()
        if stop.is_set():
            return
        try:
            result = fn()
            if asyncio.iscoroutine(result):
                await result
        except Exception:
            log.exception("periodic %s failed", getattr(fn, "__name__", fn))
