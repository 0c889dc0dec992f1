"""Informers: a local, indexed copy of a resource kept current by list + watch.

Upstream's Reflector + DeltaFIFO + sharedIndexInformer, in one loop:
- list (first from the watch cache, `resourceVersion=0`; paged when the server pages),
  then watch from the list's resourceVersion with bookmarks;
- when a watch ends (its timeout: normal) or the connection breaks, watch again from
  the last resourceVersion seen (events or bookmarks), with jittered backoff on errors;
- on 410 Expired (an HTTP 410 or a watch ERROR event) re-list with a consistent read and
  diff the result against the store: adds, updates (only where the resourceVersion
  changed) and deletes (as DeletedFinalStateUnknown tombstones) — so handlers see every
  change once, never twice, across reconnects.

Handlers run in their own task per registration, in event order, so a slow handler
does not hold up the watch or the other handlers. They may be plain or async functions.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from apimachinery.meta import key_of
from client.backoff import Backoff
from client.errors import ApiError, is_gone
from client.resource import Selector, format_selector
from client.store import DeletedFinalStateUnknown, IndexFunc, Obj, Store

if TYPE_CHECKING:
    from client.rest import APIClient

log = logging.getLogger("client.informer")

AddHandler = Callable[[Obj], "Awaitable[None] | None"]
UpdateHandler = Callable[[Obj, Obj], "Awaitable[None] | None"]
DeleteHandler = Callable[["Obj | DeletedFinalStateUnknown"], "Awaitable[None] | None"]

# client-go's reflector: watches last 5–10 minutes, backoff 800 ms doubling to 30 s
MIN_WATCH_TIMEOUT = 300


def _rv(obj: Obj) -> str:
    return (obj.get("metadata") or {}).get("resourceVersion") or ""


class HandlerRegistration:
    """One add_handler call: its own queue and task; `has_synced` once it has seen the initial list."""

    def __init__(self, on_add: AddHandler | None, on_update: UpdateHandler | None,
                 on_delete: DeleteHandler | None) -> None:
        self.on_add = on_add
        self.on_update = on_update
        self.on_delete = on_delete
        self._queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._enqueued = 0
        self._handled = 0
        self._sync_target: int | None = None  # notifications that make up the initial list
        self._synced = asyncio.Event()

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    def _mark_sync_point(self) -> None:
        self._sync_target = self._enqueued
        self._check_synced()

    def _check_synced(self) -> None:
        if self._sync_target is not None and self._handled >= self._sync_target:
            self._synced.set()

    def _notify(self, item: tuple[Any, ...]) -> None:
        self._enqueued += 1
        self._queue.put_nowait(item)

    def _start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="informer handler")

    async def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        queue = self._queue
        while True:
            item = await queue.get()
            kind = item[0]
            try:
                if kind == "add":
                    fn: Callable[..., Any] | None = self.on_add
                elif kind == "update":
                    fn = self.on_update
                else:
                    fn = self.on_delete
                if fn is not None:
                    result = fn(*item[1:])
                    if inspect.isawaitable(result):
                        await result
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("informer handler failed on %s", kind)
            self._handled += 1
            if not self._synced.is_set():
                self._check_synced()


class Informer:
    """List+watch one resource into `store`, calling registered handlers on every change."""

    def __init__(
        self,
        client: APIClient,
        api_version: str,
        plural: str,
        namespace: str | None = None,
        label_selector: Selector = None,
        field_selector: Selector = None,
        resync_period: float = 0.0,
        *,
        backoff_initial: float = 0.8,
        backoff_max: float = 30.0,
        page_size: int = 500,
    ) -> None:
        self.client = client
        self.api_version = api_version
        self.plural = plural
        self.namespace = namespace
        self.label_selector = format_selector(label_selector)
        self.field_selector = format_selector(field_selector)
        self.resync_period = resync_period
        self.page_size = page_size
        self.store = Store()
        self.resource = client.resource(api_version, plural)
        self._backoff = Backoff(initial=backoff_initial, cap=backoff_max, factor=2.0, jitter=1.0)
        self._handlers: list[HandlerRegistration] = []
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._resync_task: asyncio.Task[None] | None = None
        self._started = False
        #: The resourceVersion the store is current to (the last list, event or bookmark).
        self.last_resource_version = ""
        #: How many lists were done (1 after the initial sync; more after 410s).
        self.list_count = 0
        self.watch_count = 0

    def __repr__(self) -> str:
        return f"Informer({self.api_version}/{self.plural}, namespace={self.namespace!r})"

    # -- handlers & indexes ------------------------------------------------------------

    def add_handler(
        self,
        on_add: AddHandler | None = None,
        on_update: UpdateHandler | None = None,
        on_delete: DeleteHandler | None = None,
    ) -> HandlerRegistration:
        """Register handlers. Added after the informer synced, they first get the current objects as adds."""
        reg = HandlerRegistration(on_add, on_update, on_delete)
        if self._synced.is_set():
            for obj in self.store.list():
                reg._notify(("add", obj))
            reg._mark_sync_point()
        self._handlers.append(reg)
        if self._started:
            reg._start()
        return reg

    async def remove_handler(self, reg: HandlerRegistration) -> None:
        if reg in self._handlers:
            self._handlers.remove(reg)
        await reg._stop()

    def add_index(self, name: str, fn: IndexFunc) -> None:
        self.store.add_index(name, fn)

    def _emit(self, item: tuple[Any, ...]) -> None:
        for reg in self._handlers:
            reg._notify(item)

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def has_synced(self) -> bool:
        """The initial list is in the store."""
        return self._synced.is_set()

    async def wait_synced(self, timeout: float | None = None) -> bool:
        """Wait for the initial list; False if `timeout` passed first."""
        try:
            async with asyncio.timeout(timeout):
                await self._synced.wait()
        except TimeoutError:
            return False
        return True

    def start(self) -> None:
        """Start listing and watching in the background (idempotent)."""
        if self._started:
            return
        self._started = True
        for reg in self._handlers:
            reg._start()
        self._task = asyncio.create_task(self._run(), name=f"informer {self.api_version}/{self.plural}")
        if self.resync_period > 0:
            self._resync_task = asyncio.create_task(self._resync_loop(), name="informer resync")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, self._resync_task) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._task = self._resync_task = None
        for reg in self._handlers:
            await reg._stop()
        self._started = False

    # -- the reflector -----------------------------------------------------------------

    async def _run(self) -> None:
        need_list = True
        relist_rv = "0"  # the first list may come from the watch cache
        backoff = self._backoff
        expired_in_a_row = 0
        while True:
            try:
                if need_list:
                    await self._list(relist_rv)
                    need_list = False
                started = time.monotonic()
                events = await self._watch()
                expired_in_a_row = 0
                # The server ended the watch (timeoutSeconds): resume at once, unless it
                # ended suspiciously fast with nothing in it.
                if events or time.monotonic() - started > 1.0:
                    backoff.reset()
                    continue
                delay = backoff.next()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if is_gone(e):
                    log.info("%r: resourceVersion %s expired (%s); re-listing", self, self.last_resource_version, e)
                    need_list = True
                    relist_rv = ""  # a consistent read: never go back in time
                    expired_in_a_row += 1
                    if expired_in_a_row == 1:
                        continue  # the normal case: re-list at once
                    delay = backoff.next()  # expiring again right away: do not spin
                    await asyncio.sleep(delay)
                    continue
                if isinstance(e, (ApiError, ValueError)):
                    # the server refused the list/watch, or sent garbage: start over from a list
                    need_list = True
                    relist_rv = self.last_resource_version or ""
                delay = backoff.next()
                log.warning("%r: %s; retrying in %.1fs", self, e, delay)
            await asyncio.sleep(delay)

    async def _list(self, resource_version: str) -> None:
        listed = await self.resource.list_all(
            self.namespace, self.label_selector, self.field_selector, self.page_size, resource_version
        )
        self.list_count += 1
        items = listed.get("items") or []
        kind = (listed.get("kind") or "").removesuffix("List")
        api_version = listed.get("apiVersion") or self.api_version
        self._replace(items, kind, api_version)
        self.last_resource_version = (listed.get("metadata") or {}).get("resourceVersion") or ""
        if not self._synced.is_set():
            self._synced.set()
            for reg in self._handlers:
                reg._mark_sync_point()

    def _replace(self, items: list[Obj], kind: str, api_version: str) -> None:
        """Make the store equal to a fresh list, telling handlers what changed."""
        store = self.store
        seen: set[str] = set()
        for obj in items:
            if kind and "kind" not in obj:  # list items may come without their type
                obj["kind"] = kind
                obj["apiVersion"] = api_version
            key = key_of(obj)
            seen.add(key)
            old = store.get(key)
            if old is None:
                store.put(obj)
                self._emit(("add", obj))
            elif _rv(old) != _rv(obj):
                store.put(obj)
                self._emit(("update", old, obj))
        for key in store.keys():
            if key not in seen:
                old = store.delete(key)
                if old is not None:
                    self._emit(("delete", DeletedFinalStateUnknown(key, old)))

    async def _watch(self) -> int:
        """One watch from `last_resource_version` until the server ends it; returns the events seen."""
        self.watch_count += 1
        timeout = random.randint(MIN_WATCH_TIMEOUT, 2 * MIN_WATCH_TIMEOUT)
        count = 0
        store = self.store
        stream = self.resource.watch(
            self.namespace, self.last_resource_version, self.label_selector, self.field_selector,
            allow_bookmarks=True, timeout_seconds=timeout,
        )
        async with aclosing(stream) as events:
            async for ev in events:
                etype = ev["type"]
                obj = ev["object"]
                rv = _rv(obj)
                if etype == "BOOKMARK":
                    if rv:
                        self.last_resource_version = rv
                    continue
                count += 1
                key = key_of(obj)
                old = store.get(key)
                if etype == "DELETED":
                    if old is not None:
                        store.delete(key)
                        self._emit(("delete", obj))
                elif old is None:
                    store.put(obj)
                    self._emit(("add", obj))
                elif _rv(old) != rv:
                    store.put(obj)
                    self._emit(("update", old, obj))
                # else: the same version again (a replay): nothing changed
                if rv:
                    self.last_resource_version = rv
        return count

    async def _resync_loop(self) -> None:
        """Every resync_period, hand every cached object to on_update(obj, obj) (client-go resync)."""
        while True:
            await asyncio.sleep(self.resync_period)
            if self._synced.is_set():
                for obj in self.store.list():
                    self._emit(("update", obj, obj))


class SharedInformerFactory:
    """One informer per (api_version, plural, namespace, selectors), shared by every caller."""

    def __init__(self, client: APIClient, resync_period: float = 0.0, namespace: str | None = None) -> None:
        self.client = client
        self.resync_period = resync_period
        self.namespace = namespace
        self._informers: dict[tuple[str, str, str | None, str | None, str | None], Informer] = {}
        self._started = False

    def informer(
        self,
        api_version: str,
        plural: str,
        namespace: str | None = None,
        label_selector: Selector = None,
        field_selector: Selector = None,
    ) -> Informer:
        ns = namespace if namespace is not None else self.namespace
        key = (api_version, plural, ns, format_selector(label_selector), format_selector(field_selector))
        inf = self._informers.get(key)
        if inf is None:
            inf = Informer(self.client, api_version, plural, ns, key[3], key[4], self.resync_period)
            self._informers[key] = inf
        return inf

    @property
    def informers(self) -> list[Informer]:
        return list(self._informers.values())

    def start(self) -> None:
        """Start every informer not yet started (call again after asking for new ones)."""
        self._started = True
        for inf in self._informers.values():
            inf.start()

    async def wait_for_cache_sync(self, timeout: float | None = None) -> bool:
        """Wait until every started informer has synced; False if `timeout` passed first."""
        started = [inf for inf in self._informers.values() if inf._started]
        try:
            async with asyncio.timeout(timeout):
                await asyncio.gather(*(inf._synced.wait() for inf in started))
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        await asyncio.gather(*(inf.stop() for inf in self._informers.values()))
        self._started = False
