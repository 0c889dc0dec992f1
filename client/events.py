"""Recording core/v1 Events about objects, as client-go's tools/record does.

`event()` never blocks and never raises: it queues the event (a bounded queue; when full
the event is dropped with a log line) and a background task writes it, after the three
steps of client-go's EventCorrelator:

* aggregation: once 10 events about one object that differ only in their message come
  within 10 minutes, further ones become a single "(combined from similar events): …" Event;
* counting: identical events (same object, type, reason and message) within 10 minutes are
  folded into one, the existing Event's `count` and `lastTimestamp` PATCHed;
* spam filter: a source may write 25 events about one object, then one per 5 minutes
  (a token bucket per object) — a crash-looping pod cannot flood the API.

Names are `<object-name>.<hex nanoseconds>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from client.errors import APIConnectionError, ApiError, is_already_exists, is_not_found
from client.ratelimit import TokenBucket

if TYPE_CHECKING:
    from client.rest import APIClient

log = logging.getLogger("client.events")

NORMAL = "Normal"
WARNING = "Warning"

AGGREGATE_WINDOW = 600.0  # seconds: client-go's 10 minutes
CACHE_SIZE = 4096  # client-go's maxLruCacheEntries
QUEUE_SIZE = 1000  # client-go's watch broadcaster queue length
AGGREGATE_MAX_EVENTS = 10  # distinct messages per object and reason before they are combined
COMBINED_PREFIX = "(combined from similar events): "
SPAM_BURST = 25  # events per source and object ...
SPAM_QPS = 1.0 / 300.0  # ... then one per 5 minutes
WRITE_ATTEMPTS = 3


@dataclass(slots=True)
class _Seen:
    name: str
    namespace: str
    count: int
    first_timestamp: str
    last_seen: float


@dataclass(slots=True)
class _Similar:
    messages: set[str]
    last_seen: float


@dataclass(slots=True)
class _Pending:
    reference: dict[str, Any]
    type: str
    reason: str
    message: str
    action: str | None
    timestamp: str
    when: float
    name_ns: int


def object_reference(obj: Mapping[str, Any]) -> dict[str, Any]:
    """An ObjectReference to `obj` (an object, or already a reference with kind/name)."""
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):  # already a reference
        return {k: v for k, v in obj.items() if v not in (None, "")}
    ref = {
        "kind": obj.get("kind"),
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "apiVersion": obj.get("apiVersion"),
        "resourceVersion": meta.get("resourceVersion"),
    }
    return {k: v for k, v in ref.items() if v not in (None, "")}


def _remember(cache: OrderedDict, key: tuple[str, ...], value: Any) -> None:
    """Put `key` as the most recent entry of an LRU cache of CACHE_SIZE entries."""
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > CACHE_SIZE:
        cache.popitem(last=False)


def _timestamp(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    """Record Events for `component` (e.g. "default-scheduler") running on `host`."""

    def __init__(
        self,
        client: APIClient,
        component: str,
        host: str | None = None,
        *,
        queue_size: int = QUEUE_SIZE,
        clock=time.monotonic,
    ) -> None:
        self.events = client.resource("v1", "events")
        self.component = component
        self.host = host
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=queue_size)
        self._seen: OrderedDict[tuple[str, ...], _Seen] = OrderedDict()
        self._similar: OrderedDict[tuple[str, ...], _Similar] = OrderedDict()
        self._spam: OrderedDict[tuple[str, ...], TokenBucket] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self._clock = clock
        self._idle: asyncio.Event | None = None
        self._max_defer = 0.0
        #: Events dropped (queue full, no event loop, or the API kept failing).
        self.dropped = 0
        #: Events the spam filter held back (too many about one object).
        self.filtered = 0

    # -- the caller's side -------------------------------------------------------------

    def event(
        self, obj: Mapping[str, Any], type: str, reason: str, message: str, action: str | None = None
    ) -> None:
        """Queue an Event about `obj`. Never blocks, never raises."""
        if type not in (NORMAL, WARNING):
            log.error("unsupported event type %r (reason %s) dropped", type, reason)
            return
        try:
            ref = object_reference(obj)
            if not ref.get("name"):
                raise ValueError("the object has no name")
            now = time.time()
            pending = _Pending(ref, type, reason, message, action, _timestamp(now), self._clock(), time.time_ns())
            self._ensure_worker()
            self._queue.put_nowait(pending)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("event queue full; dropping event %s %s for %s", type, reason, obj.get("metadata", obj))
        except Exception as e:  # no loop, bad object: an event is never worth failing the caller for
            self.dropped += 1
            log.warning("cannot record event %s %s: %s", type, reason, e)

    def defer_while_busy(self, idle: asyncio.Event, max_delay: float) -> None:
        """Hold writes while `idle` is clear, each event at most `max_delay` seconds after it was
        recorded: a component whose own work and the API's compete for the same CPUs (the kubelet
        starting pods) writes its Events after that work instead of in the middle of it."""
        self._idle = idle
        self._max_defer = max_delay

    def eventf(self, obj: Mapping[str, Any], type: str, reason: str, fmt: str, *args: Any) -> None:
        self.event(obj, type, reason, fmt % args if args else fmt)

    def _ensure_worker(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"events {self.component}")

    async def flush(self) -> None:
        """Wait until everything queued so far has been written (or given up on)."""
        await self._queue.join()

    async def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (for at most `timeout`), then stop."""
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._queue.join()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- the writer --------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            pending = await self._queue.get()
            try:
                await self._wait_idle(pending)
                await self._record(pending)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.dropped += 1
                log.warning("event %s %s for %s not written: %s", pending.type, pending.reason,
                            pending.reference.get("name"), e)
            finally:
                self._queue.task_done()

    async def _wait_idle(self, p: _Pending) -> None:
        if self._idle is None or self._idle.is_set():
            return
        remaining = p.when + self._max_defer - self._clock()
        if remaining > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), remaining)

    def _object_key(self, p: _Pending) -> tuple[str, ...]:
        ref = p.reference
        return (self.component, self.host or "", ref.get("kind", ""), ref.get("namespace", ""), ref.get("name", ""),
                ref.get("uid", ""), ref.get("apiVersion", ""))

    def _key(self, p: _Pending) -> tuple[str, ...]:
        return (*self._object_key(p), p.reference.get("fieldPath", ""), p.type, p.reason, p.message)

    def _aggregate(self, p: _Pending) -> tuple[str, ...]:
        """Count `p` among its similar events (same object, type and reason); past the limit its
        message becomes the combined one. Returns the key `p` is counted under."""
        similar_key = (*self._object_key(p), p.type, p.reason)
        similar = self._similar.get(similar_key)
        if similar is None or p.when - similar.last_seen > AGGREGATE_WINDOW:
            similar = _Similar(set(), p.when)
        similar.messages.add(p.message)
        similar.last_seen = p.when
        _remember(self._similar, similar_key, similar)
        if len(similar.messages) < AGGREGATE_MAX_EVENTS:
            return self._key(p)
        similar.messages.pop()  # the set stays at the limit
        p.message = COMBINED_PREFIX + p.message
        return similar_key

    def _spam_allows(self, p: _Pending) -> bool:
        key = self._object_key(p)
        bucket = self._spam.get(key)
        if bucket is None:
            bucket = TokenBucket(SPAM_QPS, SPAM_BURST, clock=self._clock)
        _remember(self._spam, key, bucket)
        return bucket.try_take()

    async def _record(self, p: _Pending) -> None:
        key = self._aggregate(p)
        seen = self._seen.get(key)
        if seen is not None and p.when - seen.last_seen > AGGREGATE_WINDOW:
            seen = None
        if not self._spam_allows(p):
            if seen is not None:  # as client-go's logger: the count goes on; the next write carries it
                seen.count, seen.last_seen = seen.count + 1, p.when
            self.filtered += 1
            log.debug("event %s %s for %s held back by the spam filter", p.type, p.reason, p.reference.get("name"))
            return
        if seen is not None:
            self._seen.move_to_end(key)
            count = seen.count + 1
            patch = {"count": count, "lastTimestamp": p.timestamp, "message": p.message}
            try:
                await self._retrying(lambda: self.events.patch(seen.name, patch, seen.namespace, "strategic"))
                seen.count, seen.last_seen = count, p.when
                return
            except ApiError as e:
                if not is_not_found(e):
                    raise
                # the Event was deleted meanwhile: write it afresh, keeping the count
                body = self._new_event(p, count, seen.first_timestamp)
        else:
            body = self._new_event(p, 1, p.timestamp)
        ns = body["metadata"]["namespace"]
        try:
            await self._retrying(lambda: self.events.create(body, ns))
        except ApiError as e:
            if not is_already_exists(e):
                raise
        _remember(self._seen, key, _Seen(body["metadata"]["name"], ns, body["count"], body["firstTimestamp"], p.when))

    def _new_event(self, p: _Pending, count: int, first_timestamp: str) -> dict[str, Any]:
        ref = p.reference
        source: dict[str, str] = {"component": self.component}
        if self.host:
            source["host"] = self.host
        event: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{ref['name']}.{p.name_ns:x}",
                # events about cluster-scoped objects live in "default", as upstream's recorder puts them
                "namespace": ref.get("namespace") or "default",
            },
            "involvedObject": ref,
            "reason": p.reason,
            "message": p.message,
            "source": source,
            "firstTimestamp": first_timestamp,
            "lastTimestamp": p.timestamp,
            "count": count,
            "type": p.type,
            "eventTime": None,
            "reportingComponent": self.component,
            "reportingInstance": self.host or "",
        }
        if p.action:
            event["action"] = p.action
        return event

    async def _retrying(self, call: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        """Run a write, retrying a few times when the server is unreachable or failing."""
        attempt = 0
        while True:
            try:
                return await call()
            except (APIConnectionError, ApiError) as e:
                retriable = isinstance(e, APIConnectionError) or e.code >= 500 or e.code == 429
                attempt += 1
                if not retriable or attempt >= WRITE_ATTEMPTS:
                    raise
            await asyncio.sleep(0.5 * 2 ** (attempt - 1))
