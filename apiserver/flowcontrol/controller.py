"""The APF filter and the configuration it works from (upstream's apf_controller and
WithPriorityAndFairness, k8s.io/apiserver 1.31).

The configuration is rebuilt from the FlowSchema and PriorityLevelConfiguration watch caches whenever
they change (the mandatory objects are imagined while missing): the server's concurrency limit
(`--max-requests-inflight` + `--max-mutating-requests-inflight`) is divided among the priority
levels in proportion to their nominalConcurrencyShares, ceil(limit × shares / sum), at least one
seat each; lendablePercent and borrowingLimitPercent are kept on the objects but seats are not lent
(no borrowing between levels). FlowSchemas whose level does not exist are skipped, and their
`Dangling` condition says so.

`admit` runs for every request between authentication and authorization, as upstream's filter
chain: it classifies the request, waits for a seat of its level (or rejects it: a 429 with
Retry-After) and returns the `Seat` to release once the request is served. Long-running requests
other than watches take no seat; a watch holds one while it is set up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import orjson

from apimachinery import errors
from apimachinery.meta import now
from apimachinery.validation import go_quote
from apiserver.authn import UserInfo
from apiserver.flowcontrol import config
from apiserver.flowcontrol.match import Classifier, Schema, compile_schema, matching_order
from apiserver.flowcontrol.queueset import QueueSet, Rejected, flow_hash
from apiserver.flowcontrol.retryafter import DropHistory
from apiserver.managedfields import REQUEST_MANAGER
from apiserver.requestinfo import RequestInfo, is_long_running

if TYPE_CHECKING:
    from apiserver.server import APIServer

log = logging.getLogger("apiserver.flowcontrol")

Obj = dict[str, Any]
#: how long a request may wait in a queue: a quarter of upstream's default request timeout (60 s)
WAIT_LIMIT = 15.0
#: verbs upstream counts as read-only (apiserver_current_inflight_requests' request_kind)
READ_ONLY_VERBS = frozenset({"get", "list", "watch"})
FIELD_MANAGER = "api-priority-and-fairness-config-consumer-v1"
#: upstream's 429 body (http.Error's plain text, not a Status)
TOO_MANY_REQUESTS = b"Too many requests, please try again later.\n"
_FS_HEADER = b"X-Kubernetes-Pf-Flowschema-Uid"  # Go's canonical form of upstream's header names
_PL_HEADER = b"X-Kubernetes-Pf-Prioritylevel-Uid"


class TooManyRequests(Exception):
    """A rejected request: answer 429 with these headers."""

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        super().__init__("too many requests")
        self.headers = headers


class Level:
    """A priority level in effect: its object's UID, its seats and queues, its rejection history."""

    __slots__ = ("drops", "name", "nominal", "queues", "uid")

    def __init__(self, name: str, exempt: bool) -> None:
        self.name = name
        self.uid = ""
        self.nominal = 0
        self.queues = QueueSet(exempt)
        self.drops = DropHistory()


class Seat:
    """What an admitted request holds until it is served; `headers` go on its response."""

    __slots__ = ("_held", "_owner", "headers", "kind", "labels", "queues")

    def __init__(self, owner: Any, queues: QueueSet | None, labels: tuple[str, str], kind: str,
                 headers: list[tuple[bytes, bytes]]) -> None:
        self._owner = owner
        self.queues = queues
        self.labels = labels
        self.kind = kind
        self.headers = headers
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._owner.finished(self)


def request_kind(info: RequestInfo) -> str:
    return "readOnly" if info.verb in READ_ONLY_VERBS else "mutating"


def _spec_shares(spec: Obj) -> tuple[bool, int, tuple[int, int, int]] | None:
    """(exempt?, nominalConcurrencyShares, (queues, handSize, queueLengthLimit)) of a level's spec;
    None for one the filter cannot use (upstream ignores such an object)."""
    ltype = spec.get("type")
    if ltype == "Exempt":
        shares = (spec.get("exempt") or {}).get("nominalConcurrencyShares") or 0
        return True, shares, (0, 0, 0)
    limited = spec.get("limited")
    if ltype != "Limited" or not isinstance(limited, dict):
        return None
    response = limited.get("limitResponse") or {}
    queuing = response.get("queuing")
    if response.get("type") == "Queue" and isinstance(queuing, dict):
        shape = (queuing.get("queues") or 0, queuing.get("handSize") or 0, queuing.get("queueLengthLimit") or 0)
        if min(shape) <= 0:
            return None
    elif response.get("type") == "Reject":
        shape = (0, 0, 0)
    else:
        return None
    return False, limited.get("nominalConcurrencyShares") or 0, shape


def nominal_seats(server_seats: int, shares: dict[str, int]) -> dict[str, int]:
    """Each level's share of the server's seats, upstream's NominalCL: ceil(seats × NCS / ΣNCS)."""
    total = sum(shares.values())
    return {name: math.ceil(server_seats * n / total) if total else server_seats for name, n in shares.items()}


def dangling_condition(level: str, found: bool) -> Obj:
    """upstream's Dangling condition of a FlowSchema (without its transition time)."""
    if found:
        return {"type": "Dangling", "status": "False", "reason": "Found",
                "message": f"This FlowSchema references the PriorityLevelConfiguration object named {go_quote(level)} "
                           "and it exists"}
    return {"type": "Dangling", "status": "True", "reason": "NotFound",
            "message": f"This FlowSchema references the PriorityLevelConfiguration object named {go_quote(level)} "
                       "but there is no such object"}


class FlowControl:
    def __init__(self, server: APIServer, server_seats: int) -> None:
        self.server = server
        self.server_seats = max(1, server_seats)
        self.wait_limit = WAIT_LIMIT
        self._fs_cache = server.cache_for(config.GROUP, "flowschemas")
        self._pl_cache = server.cache_for(config.GROUP, "prioritylevelconfigurations")
        self._fs_seen: Any = None
        self._pl_seen: Any = None
        self._dirty = True
        self._refresh_scheduled = False
        self.levels: dict[str, Level] = {}
        self._classifier = Classifier([])
        self._catch_all: Schema | None = None
        self._headers: dict[str, list[tuple[bytes, bytes]]] = {}
        self._statuses: dict[str, Obj] = {}  # FlowSchema name → the Dangling condition it should have
        self._status_wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        for cache in (self._fs_cache, self._pl_cache):
            cache.listeners.append(self._changed)
        self._metrics()
        self._rebuild()

    # -- metrics (upstream's apiserver_flowcontrol_*) --------------------------------------------

    def _metrics(self) -> None:
        m = self.server.metrics
        labels = ("priority_level", "flow_schema")
        self.rejected = m.counter("apiserver_flowcontrol_rejected_requests_total",
                                  "Number of requests rejected by API Priority and Fairness subsystem",
                                  (*labels, "reason"))
        self.dispatched = m.counter("apiserver_flowcontrol_dispatched_requests_total",
                                    "Number of requests executed by API Priority and Fairness subsystem", labels)
        self.inqueue: dict[tuple[str, str], int] = {}
        self.executing: dict[tuple[str, str], int] = {}
        m.gauge("apiserver_flowcontrol_current_inqueue_requests",
                "Number of requests currently pending in queues of the API Priority and Fairness subsystem",
                labels, fn=lambda: dict(self.inqueue))
        m.gauge("apiserver_flowcontrol_current_executing_requests",
                "Number of requests in initial (for a WATCH) or any (for a non-WATCH) execution stage in the API "
                "Priority and Fairness subsystem", labels, fn=lambda: dict(self.executing))
        m.gauge("apiserver_flowcontrol_current_executing_seats",
                "Concurrency (number of seats) occupied by the currently executing (initial stage for a WATCH, any "
                "stage otherwise) requests in the API Priority and Fairness subsystem", labels,
                fn=lambda: dict(self.executing))  # one seat per request here
        m.gauge("apiserver_flowcontrol_nominal_limit_seats",
                "Nominal number of execution seats configured for each priority level", ("priority_level",),
                fn=lambda: {(n,): lv.nominal for n, lv in self.levels.items()})
        m.gauge("apiserver_flowcontrol_current_limit_seats",
                "current derived number of execution seats available to each priority level", ("priority_level",),
                fn=lambda: {(n,): lv.nominal for n, lv in self.levels.items() if not lv.queues.exempt})
        self.wait_seconds = m.histogram(
            "apiserver_flowcontrol_request_wait_duration_seconds", "Length of time a request spent waiting in its queue",
            (*labels, "execute"), buckets=(0, 0.005, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30))

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._write_statuses(), name="flowcontrol status")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    # -- the request path -----------------------------------------------------------------------

    async def admit(self, user: UserInfo, info: RequestInfo,
                    gone: Callable[[], Coroutine[Any, Any, None]] | None = None) -> Seat | None:
        """Classify the request and wait for its seat (raises TooManyRequests); None for a
        long-running request, which APF leaves alone. `gone()` returns once the client went
        away: a queued request is then dropped."""
        if is_long_running(info) and info.verb != "watch":
            return None
        if self._dirty or self._fs_cache.objects is not self._fs_seen or self._pl_cache.objects is not self._pl_seen:
            self._rebuild()
        schema = self._classifier.classify(user, info) or self._catch_all
        assert schema is not None  # the mandatory catch-all matches everybody
        level = self.levels[schema.level]
        queues = level.queues
        labels = (level.name, schema.name)
        headers = self._headers[schema.name]
        if queues.try_start():
            self.wait_seconds.observe(0.0, *labels, "true")
        else:
            await self._wait(queues, level, schema, labels, headers, user, info, gone)
        self.dispatched.inc(*labels)
        self.executing[labels] = self.executing.get(labels, 0) + 1
        kind = request_kind(info)
        self.server.inflight[kind] += 1
        return Seat(self, queues, labels, kind, headers)

    async def _wait(self, queues: QueueSet, level: Level, schema: Schema, labels: tuple[str, str],
                    headers: list[tuple[bytes, bytes]], user: UserInfo, info: RequestInfo,
                    gone: Callable[[], Coroutine[Any, Any, None]] | None) -> None:
        started = time.monotonic()
        reason = "cancelled"
        watcher: asyncio.Task[None] | None = None
        try:
            flow = flow_hash(schema.name, schema.distinguish(user, info)) if len(queues.queues) > 1 else 0
            waiter = queues.enqueue(flow)
            self.inqueue[labels] = self.inqueue.get(labels, 0) + 1
            watcher = asyncio.ensure_future(gone()) if gone is not None else None
            try:
                await queues.wait(waiter, self.wait_limit, watcher)
            finally:
                self.inqueue[labels] -= 1
                if watcher is not None and not watcher.done():
                    watcher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watcher  # (a body read it was in the middle of goes on in the handler)
                elif watcher is not None and not watcher.cancelled():
                    watcher.exception()  # whatever ended it, the client counts as gone
            reason = ""
        except Rejected as e:
            reason = e.reason
            retry_after = level.drops.record()
            raise TooManyRequests([(b"retry-after", str(retry_after).encode()), *headers]) from None
        finally:
            self.wait_seconds.observe(time.monotonic() - started, *labels, "false" if reason else "true")
            if reason:
                self.rejected.inc(*labels, reason)

    def finished(self, seat: Seat) -> None:
        assert seat.queues is not None
        seat.queues.finish()
        self.executing[seat.labels] -= 1
        self.server.inflight[seat.kind] -= 1

    # -- the configuration ----------------------------------------------------------------------

    def _changed(self, ev: Any) -> None:
        self._dirty = True
        if not self._refresh_scheduled:
            self._refresh_scheduled = True
            asyncio.get_running_loop().call_soon(self._refresh)

    def _refresh(self) -> None:
        self._refresh_scheduled = False
        if self._dirty:
            self._rebuild()

    def _rebuild(self) -> None:
        self._dirty = False
        self._fs_seen, self._pl_seen = self._fs_cache.objects, self._pl_cache.objects
        usable: dict[str, tuple[Obj, bool, int, tuple[int, int, int]]] = {}
        for e in self._pl_seen.values():
            pl = orjson.loads(e.data)
            shares = _spec_shares(pl.get("spec") or {})
            if shares is None or shares[0] != (e.name == config.EXEMPT):
                log.warning("ignoring PriorityLevelConfiguration %s: its spec is broken", e.name)
                continue
            usable[e.name] = (pl, *shares)
        for pl in config.MANDATORY_PRIORITY_LEVELS:  # imagined while missing (or broken), as upstream
            usable.setdefault(pl["metadata"]["name"], (pl, *_spec_shares(pl["spec"])))  # type: ignore[misc]
        seats = nominal_seats(self.server_seats, {name: shares for name, (_, _, shares, _) in usable.items()})
        levels: dict[str, Level] = {}
        for name, (pl, exempt, _, (queues, hand_size, length_limit)) in usable.items():
            level = self.levels.get(name)
            if level is None or level.queues.exempt != exempt:
                level = Level(name, exempt)
            level.uid = (pl.get("metadata") or {}).get("uid", "")
            level.nominal = seats[name]
            if not exempt:  # a level without shares still gets a seat (upstream's would only borrow)
                level.queues.configure(max(1, level.nominal), queues, hand_size, length_limit)
            levels[name] = level
        self.levels = levels
        self._compile_schemas()

    def _compile_schemas(self) -> None:
        schemas: list[Schema] = []
        statuses: dict[str, Obj] = {}
        for e in self._fs_seen.values():
            fs = orjson.loads(e.data)
            level = ((fs.get("spec") or {}).get("priorityLevelConfiguration") or {}).get("name", "")
            found = level in self.levels
            wanted = dangling_condition(level, found)
            current = next((c for c in (fs.get("status") or {}).get("conditions") or []
                            if isinstance(c, dict) and c.get("type") == "Dangling"), {})
            if any(current.get(k) != wanted[k] for k in ("status", "reason", "message")):
                statuses[e.name] = {**wanted, "uid": (fs.get("metadata") or {}).get("uid", "")}
            if found:
                schemas.append(compile_schema(fs))
        schemas.sort(key=matching_order)
        names = {s.name for s in schemas}
        exempt_fs, catch_all_fs = (compile_schema(o) for o in config.MANDATORY_FLOW_SCHEMAS)
        if exempt_fs.name not in names:  # imagined in their places, as upstream
            schemas.insert(0, exempt_fs)
        if catch_all_fs.name not in names:
            schemas.append(catch_all_fs)
        self._catch_all = next(s for s in schemas if s.name == config.CATCH_ALL)
        self._headers = {s.name: [(_FS_HEADER, s.uid.encode()), (_PL_HEADER, self.levels[s.level].uid.encode())]
                         for s in schemas}
        self._classifier = Classifier(schemas)
        self._statuses = statuses
        if statuses:
            self._status_wake.set()

    # -- FlowSchema status --------------------------------------------------------------------

    async def _write_statuses(self) -> None:
        """Give FlowSchemas the Dangling condition the configuration found for them."""
        from apiserver.bootstrap import SYSTEM_USER

        REQUEST_MANAGER.set(FIELD_MANAGER)
        res = self.server.resource(config.GROUP, "flowschemas")
        while True:
            await self._status_wake.wait()
            self._status_wake.clear()
            for name, wanted in list(self._statuses.items()):
                uid = wanted.pop("uid")
                cond = {**wanted, "lastTransitionTime": now()}

                async def mutate(old: Obj, uid: str = uid, cond: Obj = cond) -> Obj:
                    if (old.get("metadata") or {}).get("uid") != uid:  # replaced meanwhile: its own turn comes
                        raise errors.conflict("flowschemas", old["metadata"]["name"], "replaced", config.GROUP)
                    status = old.get("status") or {}
                    conds = [c for c in status.get("conditions") or [] if c.get("type") != "Dangling"]
                    return {**old, "metadata": {k: v for k, v in old["metadata"].items() if k != "resourceVersion"},
                            "status": {**status, "conditions": [*conds, cond]}}

                try:
                    await self.server.api.update_object(res, "", name, mutate, "", SYSTEM_USER, False, {}, "status")
                except errors.StatusError as e:
                    if e.code not in (404, 409):
                        log.warning("setting the Dangling condition of FlowSchema %s: %s", name, e)
                        self._dirty = True  # worked out (and tried) again with the next configuration
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("setting the Dangling condition of FlowSchema %s", name)
                    self._dirty = True
            await asyncio.sleep(0.05)  # a burst of changes makes one round of writes
