"""metrics.k8s.io/v1beta1: NodeMetrics and PodMetrics (what `kubectl top` reads), served by the
apiserver itself from the kubelets' /stats/summary — the job metrics-server does upstream.

Read-only virtual resources: nothing is stored in etcd. As metrics-server (pkg/scraper, pkg/storage):

* **Scraping.** A background task asks every Ready node's kubelet for `/stats/summary` every
  `--metric-resolution` (default 15 s), all nodes at once, each request bounded by a timeout
  (metrics-server's `--kubelet-request-timeout`, 10 s, or less for a short resolution), over the
  apiserver's kubelet-client connection (apiserver.podproxy). A node that fails, and its pods, drop
  out at the next tick: each tick's batch replaces the last one.
* **Points.** Per node and per container: start time, the kubelet's measurement time (`cpu.time`),
  cumulative CPU (`usageCoreNanoSeconds`) and working set bytes. A point with zero CPU or memory is
  incomplete; a pod with an incomplete container is left out whole (a pod without metrics beats a
  pod with zeros, for autoscalers).
* **Rates.** The last two points of each node and container are kept; CPU usage is the cumulative
  difference over their time difference (the `window`), memory the last working set. A container
  that restarted between them (start time after the older point's) has no previous point yet; a
  fresh container (started 10 s to one resolution ago) uses its start as the previous point, with
  zero CPU. Objects without two points are left out of lists, and a get answers 404.
* **Start.** The scraper starts with the first metrics request rather than with the apiserver:
  clusters that never ask for metrics (and tests with thousands of fake nodes) never scrape, and
  the apiserver's own start is unchanged. Being lazy, it takes a second, priming scrape one second
  after the first (kubelet timestamps have whole seconds, so a whole-second gap keeps the window
  exact), and that first request waits (at most FIRST_REQUEST_WAIT) until both are in: `kubectl top`
  answers on first use instead of after one resolution. From then on it scrapes at the resolution.

Shapes are upstream's (k8s.io/metrics pkg/apis/metrics/v1beta1): cpu in the canonical Quantity of
nano-cores ("12345678n", "12m", "1"), memory as a BinarySI Quantity of bytes ("12345Ki"), `window`
a Go duration, `metadata` the node's or pod's name, namespace and labels with a creationTimestamp
of now. Lists accept label selectors and the `metadata.name` / `metadata.namespace` field
selectors, as upstream (which filters the nodes and pods first, then looks their metrics up).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from apimachinery import errors
from apimachinery.duration import format_duration
from apimachinery.meta import format_time, parse_time
from apimachinery.meta import now as meta_now
from apimachinery.quantity import BINARY_SI, DECIMAL_SI, format_quantity, parse_quantity
from apiserver.http import Response, raw_json
from apiserver.registry.base import Strategy
from apiserver.tables import output_form_of
from apiserver.watchcache import Filter

if TYPE_CHECKING:
    from apiserver.authn import UserInfo
    from apiserver.http import Request
    from apiserver.requestinfo import RequestInfo
    from apiserver.resources import Resource
    from apiserver.server import APIServer

log = logging.getLogger("apiserver.metricsapi")

GROUP = "metrics.k8s.io"
DEFAULT_RESOLUTION = 15.0
#: metrics-server's --kubelet-request-timeout default; never more than 90 % of the resolution
KUBELET_REQUEST_TIMEOUT = 10.0
#: a container younger than this has too short a history for a rate from its start time
FRESH_CONTAINER_MIN = 10.0
#: the lazily started scraper's second scrape, this long after its first (a whole number of seconds)
PRIMING_DELAY = 1.0
#: how long the first metrics request waits for the scraper's first two scrapes
FIRST_REQUEST_WAIT = 5.0
_NS = 1_000_000_000


# --- points and the summary ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Point:
    """One measurement of a node or container (times in nanoseconds since the epoch)."""

    start: int  # when it started: its cumulative CPU was 0 then
    timestamp: int  # when the kubelet measured
    cpu: int  # cumulative CPU, core-nanoseconds
    memory: int  # working set, bytes


PodRef = tuple[str, str]  # (namespace, name)


@dataclass
class Batch:
    """What one scrape of every node found."""

    nodes: dict[str, Point] = field(default_factory=dict)
    pods: dict[PodRef, dict[str, Point]] = field(default_factory=dict)

    def add(self, other: Batch) -> None:
        for name, point in other.nodes.items():
            self.nodes.setdefault(name, point)
        for ref, containers in other.pods.items():
            if ref in self.pods:
                log.warning("pod %s/%s reported by two nodes; keeping the first", *ref)
                continue
            self.pods[ref] = containers


def _nanos(value: Any) -> int | None:
    """An RFC 3339 time → nanoseconds since the epoch (None when absent or malformed)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = parse_time(value)
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    delta = t - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86400 + delta.seconds) * _NS + delta.microseconds * 1000


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _point(stats: dict[str, Any]) -> Point | None:
    """A node's or container's summary stats → a complete point, or None (metrics-server's decode:
    a start time and cpu.time are required, and neither CPU nor memory may be zero)."""
    cpu = stats.get("cpu") if isinstance(stats.get("cpu"), dict) else {}
    memory = stats.get("memory") if isinstance(stats.get("memory"), dict) else {}
    start, timestamp = _nanos(stats.get("startTime")), _nanos(cpu.get("time"))
    used, working_set = _int(cpu.get("usageCoreNanoSeconds")), _int(memory.get("workingSetBytes"))
    if start is None or timestamp is None or not used or not working_set:
        return None
    return Point(start, timestamp, used, working_set)


def decode_summary(node_name: str, summary: Any) -> Batch:
    """One kubelet's /stats/summary → its node's point and its pods' container points."""
    batch = Batch()
    if not isinstance(summary, dict):
        return batch
    node = summary.get("node")
    point = _point(node) if isinstance(node, dict) else None
    if point is not None:
        batch.nodes[node_name] = point
    for pod in summary.get("pods") or []:
        if not isinstance(pod, dict) or not isinstance(pod.get("podRef"), dict):
            continue
        ref = (str(pod["podRef"].get("namespace") or ""), str(pod["podRef"].get("name") or ""))
        containers: dict[str, Point] | None = {}
        for c in pod.get("containers") or []:
            point = _point(c) if isinstance(c, dict) else None
            if point is None:
                containers = None  # a pod with partial results is left out whole
                break
            containers.setdefault(str(c.get("name") or ""), point)
        if containers and ref not in batch.pods:
            batch.pods[ref] = containers
    return batch


# --- usage and its formatting -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Usage:
    cpu: int  # nano-cores
    memory: int  # bytes
    timestamp: int  # of the newer point, ns since the epoch
    window: int  # ns between the two points


def usage(last: Point, prev: Point) -> Usage | None:
    """The rate between two points (None when they cannot be compared: a restart in between)."""
    window = last.timestamp - prev.timestamp
    if last.start < prev.start or last.cpu < prev.cpu or window <= 0:
        return None
    return Usage((last.cpu - prev.cpu) * _NS // window, last.memory, last.timestamp, window)


def cpu_quantity(nano_cores: int) -> str:
    """A CPU rate as metrics-server writes it: the canonical Quantity of nano-cores."""
    return format_quantity(Decimal(nano_cores).scaleb(-9), DECIMAL_SI)


def memory_quantity(nbytes: int) -> str:
    """A working set as metrics-server writes it: a BinarySI Quantity ("12345Ki")."""
    return format_quantity(Decimal(nbytes), BINARY_SI)


def _time(nanos: int) -> str:
    return format_time(dt.datetime.fromtimestamp(nanos // _NS, dt.UTC))


def _usage_list(u: Usage) -> dict[str, str]:
    return {"cpu": cpu_quantity(u.cpu), "memory": memory_quantity(u.memory)}


# --- the store ----------------------------------------------------------------------------------


class MetricsStore:
    """The last two points of every node and container (metrics-server's pkg/storage)."""

    def __init__(self, resolution: float) -> None:
        self.resolution = int(resolution * _NS)
        self.nodes_last: dict[str, Point] = {}
        self.nodes_prev: dict[str, Point] = {}
        self.pods_last: dict[PodRef, dict[str, Point]] = {}
        self.pods_prev: dict[PodRef, dict[str, Point]] = {}

    @staticmethod
    def _previous(new: Point, last: Point | None, prev: Point | None) -> Point | None:
        """The point a new one is compared with: the stored last one when it is older, else the
        stored previous one when that is (the same point scraped twice changes nothing)."""
        if last is not None and new.timestamp > last.timestamp:
            return last
        if last is not None and prev is not None and prev.timestamp < new.timestamp:
            return prev
        return None

    def store(self, batch: Batch) -> None:
        nodes_prev: dict[str, Point] = {}
        for name, point in batch.nodes.items():
            previous = self._previous(point, self.nodes_last.get(name), self.nodes_prev.get(name))
            if previous is not None:
                nodes_prev[name] = previous
        pods_prev: dict[PodRef, dict[str, Point]] = {}
        for ref, containers in batch.pods.items():
            old_last, old_prev = self.pods_last.get(ref, {}), self.pods_prev.get(ref, {})
            prev: dict[str, Point] = {}
            for name, point in containers.items():
                age = point.timestamp - point.start
                last = old_last.get(name)
                if 0 < age < self.resolution and age >= FRESH_CONTAINER_MIN * _NS:
                    # fresh: no earlier point could be older than its start
                    prev[name] = Point(point.start, point.start, 0, point.memory)
                elif last is not None and point.start <= last.timestamp:  # not restarted since
                    # (`<=`: kubelet times have whole seconds, and a container started in the
                    # second of its first point is the same container at the next)
                    previous = self._previous(point, last, old_prev.get(name))
                    if previous is not None:
                        prev[name] = previous
            if prev:
                pods_prev[ref] = prev
        self.nodes_last, self.nodes_prev = dict(batch.nodes), nodes_prev
        self.pods_last, self.pods_prev = dict(batch.pods), pods_prev

    def node_metrics(self, name: str, labels: dict[str, str] | None) -> dict[str, Any] | None:
        last, prev = self.nodes_last.get(name), self.nodes_prev.get(name)
        if last is None or prev is None:
            return None
        u = usage(last, prev)
        if u is None:
            log.debug("skipping node %s: its CPU or start time went back", name)
            return None
        meta: dict[str, Any] = {"name": name, "creationTimestamp": meta_now()}
        if labels:
            meta["labels"] = labels
        return {"metadata": meta, "timestamp": _time(u.timestamp), "window": format_duration(u.window),
                "usage": _usage_list(u)}

    def pod_metrics(self, ns: str, name: str, labels: dict[str, str] | None) -> dict[str, Any] | None:
        last, prev = self.pods_last.get((ns, name)), self.pods_prev.get((ns, name))
        if last is None or prev is None:
            return None
        containers = []
        earliest: Usage | None = None
        for cname, point in last.items():
            before = prev.get(cname)
            if before is None:
                return None  # every container needs two points
            u = usage(point, before)
            if u is None:
                log.debug("skipping container %s of pod %s/%s: its CPU or start time went back", cname, ns, name)
                continue
            containers.append({"name": cname, "usage": _usage_list(u)})
            if earliest is None or u.timestamp < earliest.timestamp:
                earliest = u
        if earliest is None:
            return None
        meta: dict[str, Any] = {"name": name, "namespace": ns, "creationTimestamp": meta_now()}
        if labels:
            meta["labels"] = labels
        return {"metadata": meta, "timestamp": _time(earliest.timestamp), "window": format_duration(earliest.window),
                "containers": containers}


# --- the scraper --------------------------------------------------------------------------------


def _ready(node: dict[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions if isinstance(c, dict))


class Scraper:
    """Scrapes the kubelets of one apiserver into its MetricsStore, from the first request on."""

    def __init__(self, server: APIServer) -> None:
        self.server = server
        self.resolution = float(getattr(server.opts, "metric_resolution", 0) or DEFAULT_RESOLUTION)
        self.timeout = min(KUBELET_REQUEST_TIMEOUT, 0.9 * self.resolution)
        self.store = MetricsStore(self.resolution)
        self.primed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.failing: set[str] = set()

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.create_task(self._run(), name="metrics-scraper")
            # stopped (cancelled and awaited) with the apiserver's other background tasks
            self.server._tasks.append(self.task)

    async def wait_primed(self) -> None:
        self.start()
        if not self.primed.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.primed.wait(), FIRST_REQUEST_WAIT)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        due = [began]
        if PRIMING_DELAY < self.resolution:
            due.append(began + PRIMING_DELAY)
        tick = 0
        while True:
            try:
                self.store.store(await self.scrape())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scraping the kubelets failed")
            if len(due) > 1:
                due.pop(0)
            else:
                self.primed.set()
                # the next tick of the resolution's grid (missed ones are skipped)
                tick = max(tick + 1, int((loop.time() - began) // self.resolution) + 1)
                due = [began + tick * self.resolution]
            await asyncio.sleep(max(0.0, due[0] - loop.time()))

    async def scrape(self) -> Batch:
        """Every Ready node's summary, at once; a node that fails or times out is left out."""
        cache = self.server.cache_for("", "nodes")
        nodes = [orjson.loads(e.data) for e in cache.list(Filter())] if cache.ready.is_set() else []
        ready = [n for n in nodes if _ready(n)]
        batch = Batch()
        for one in await asyncio.gather(*(self._scrape_node(n["metadata"]["name"]) for n in ready)):
            batch.add(one)
        return batch

    async def _scrape_node(self, name: str) -> Batch:
        try:
            async with asyncio.timeout(self.timeout):
                summary = await self._summary(name)
        except (TimeoutError, OSError, aiohttp.ClientError, errors.StatusError, ValueError) as e:
            if name not in self.failing:
                self.failing.add(name)
                reason = f"no answer within {self.timeout:g}s" if isinstance(e, TimeoutError) else str(e)
                log.warning("cannot scrape node %s: %s", name, reason)
            return Batch()
        if name in self.failing:
            self.failing.discard(name)
            log.info("scraping node %s again", name)
        return decode_summary(name, summary)

    async def _summary(self, name: str) -> Any:
        proxy = self.server.podproxy
        # podproxy finds a pod's kubelet from its node: the same lookup, for the node itself
        base = await proxy.kubelet_base({"metadata": {"name": ""}, "spec": {"nodeName": name}})
        async with proxy.session().get(f"{base}/stats/summary") as resp:
            body = await resp.read()
            if resp.status != 200:
                raise ValueError(f"/stats/summary answered {resp.status}: {body[:200].decode(errors='replace')}")
        return orjson.loads(body)


# --- the API ------------------------------------------------------------------------------------

NAME_COLUMN = ("Name", "string", "name", 0, "Name of the resource")
#: metrics-server's table: the name, each resource of the usage (sorted), the window
METRICS_COLUMNS = [NAME_COLUMN, ("cpu", "string", "quantity", 0, ""), ("memory", "string", "quantity", 0, ""),
                   ("Window", "string", "duration", 0, "")]


def _pod_usage_cells(pod: dict[str, Any]) -> list[str]:
    totals = {"cpu": Decimal(0), "memory": Decimal(0)}
    for c in pod.get("containers") or []:
        for resource, q in (c.get("usage") or {}).items():
            if resource in totals:
                totals[resource] += parse_quantity(q)
    return [format_quantity(totals["cpu"], DECIMAL_SI), format_quantity(totals["memory"], BINARY_SI)]


class MetricsStrategy(Strategy):
    """get and list only, answered from the scraper's store (no storage, no watch cache)."""

    virtual = True
    #: the core/v1 resource whose objects the metrics are of, and the Status kind of a missing one
    source = ""
    source_kind = ""

    def lookup(self, store: MetricsStore, ns: str, name: str, labels: dict[str, str]) -> dict[str, Any] | None:
        raise NotImplementedError

    def cells(self, obj: dict[str, Any]) -> list[Any]:
        raise NotImplementedError

    def table_printer(self) -> tuple[list[tuple], Any]:
        def row(obj: dict[str, Any], now: dt.datetime) -> list[Any]:
            return [obj["metadata"].get("name", ""), *self.cells(obj), obj.get("window", "")]

        return METRICS_COLUMNS, row

    async def serve(self, server: APIServer, req: Request, info: RequestInfo, res: Resource, ns: str,
                    user: UserInfo) -> Response:
        if info.subresource or info.verb not in ("get", "list"):
            raise errors.method_not_allowed("the server does not allow this method on the requested resource")
        flt = Filter(ns or None, info.name or None)
        if info.verb == "list":
            from apiserver.handler import _selectors, validate_list_options  # (handler imports the table)

            q = req.query
            ls, fs = _selectors(q)
            for f in fs.fields() if fs is not None else ():
                if f not in ("metadata.name", "metadata.namespace"):
                    raise errors.bad_request(f'"{f}" is not a known field selector: only "metadata.name", '
                                             '"metadata.namespace"')
            validate_list_options(q, watch=False)
            flt = Filter(ns or None, fs.exact_value("metadata.name") if fs else None, ls, fs)
        cache = server.cache_for("", self.source)
        await cache._wait_ready(3.0)
        entries = cache.list(flt)
        if info.verb == "get" and not entries:
            raise errors.not_found(self.source_kind, info.name)  # the lister's answer, as upstream
        scraper = server.metrics_scraper
        await scraper.wait_primed()
        found = [m for e in entries if (m := self.lookup(scraper.store, e.namespace, e.name, e.labels)) is not None]
        found.sort(key=lambda m: (m["metadata"].get("namespace", ""), m["metadata"]["name"]))
        if info.verb == "get":
            if not found:
                missing = f"{ns}/{info.name}" if res.namespaced else info.name
                raise errors.not_found(res.kind.lower(), missing, GROUP)
            obj = {"kind": res.kind, "apiVersion": res.api_version, **found[0]}
            return await server.render(req, res, orjson.dumps(obj), single=True)
        items = [orjson.dumps(m) for m in found]
        if output_form_of(req) is not None:
            return await server.render_list(req, res, items, "", "")
        head = orjson.dumps({"kind": res.list_kind, "apiVersion": res.api_version, "metadata": {}})
        return raw_json(head[:-1] + b',"items":[' + b",".join(items) + b"]}")


class NodeMetricsStrategy(MetricsStrategy):
    source = "nodes"
    source_kind = "node"  # client-go's NodeLister says `node "x" not found`

    def lookup(self, store: MetricsStore, ns: str, name: str, labels: dict[str, str]) -> dict[str, Any] | None:
        return store.node_metrics(name, labels)

    def cells(self, obj: dict[str, Any]) -> list[Any]:
        u = obj.get("usage") or {}
        return [u.get("cpu", ""), u.get("memory", "")]


class PodMetricsStrategy(MetricsStrategy):
    source = "pods"
    source_kind = "pods"

    def lookup(self, store: MetricsStore, ns: str, name: str, labels: dict[str, str]) -> dict[str, Any] | None:
        return store.pod_metrics(ns, name, labels)

    def cells(self, obj: dict[str, Any]) -> list[Any]:
        return _pod_usage_cells(obj)
