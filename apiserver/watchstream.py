"""A watch response written straight from the watch cache's fan-out to the connection.

With many watchers, relaying each event through a queue, a task wake-up, an async generator
and the ASGI `send` of every watcher costs more than the writes themselves. This response
starts and ends like any other (ASGI `http.response.start`, then the final empty body that
closes the chunked encoding), but in between the cache calls `deliver` for each event, which
frames it as an HTTP chunk and writes it to the connection's transport at once. A client
that doesn't keep up (its transport buffer over LIMIT) is ended, as upstream does; it resumes
from its last resourceVersion.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from typing import Any

from apiserver.watchcache import CacheEvent, WatchCache, Watcher

#: bytes a client may have unread before its watch is ended
LIMIT = 16 * 1024 * 1024
BOOKMARK_EVERY = 60.0
#: a watch with a deadline gets a bookmark this long before it ends (upstream's cacheWatcher)
BOOKMARK_BEFORE_TIMEOUT = 2.0


def next_bookmark_at(now: float, deadline: float) -> float:
    """When a watch that asked for bookmarks gets its next one: every minute, and once shortly
    before its timeout so that a short watch learns the latest resourceVersion (inf: none)."""
    at = min(now + BOOKMARK_EVERY, deadline - BOOKMARK_BEFORE_TIMEOUT)
    return at if at > now else math.inf


class DirectWatchResponse:
    status = 200
    body = b""  # (for the pipeline's content negotiation, which leaves it alone)

    def __init__(
        self,
        transport: Any,
        receive: Any,
        cache: WatchCache,
        watcher: Watcher,
        line: Callable[[CacheEvent], bytes],
        bookmark: Callable[[int, dict[str, str] | None], bytes],
        timeout: float,
        initial_end: bool,
        content_type: bytes,
    ) -> None:
        self.transport = transport
        self.receive = receive
        self.cache = cache
        self.watcher = watcher
        self.line = line
        self.bookmark = bookmark
        self.timeout = timeout
        self.initial_end = initial_end
        self.content_type = content_type
        self.extra_headers: list[tuple[bytes, bytes]] = []

    def _write(self, data: bytes) -> None:
        t = self.transport
        if t.is_closing():
            self.watcher.close()
            return
        t.write(b"%x\r\n%b\r\n" % (len(data), data))
        if t.get_write_buffer_size() > LIMIT:
            self.watcher.close()

    def deliver(self, ev: CacheEvent) -> None:
        w = self.watcher
        if ev.revision > w.last_revision:
            w.last_revision = ev.revision
        self._write(self.line(ev))

    async def __call__(self, send: Any) -> None:
        await send({
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", self.content_type), (b"cache-control", b"no-cache, private"),
                        (b"transfer-encoding", b"chunked"), *self.extra_headers],
        })
        w = self.watcher
        # What the cache queued before we took over (the initial state, the replay), in order,
        # then the hand-over to direct delivery — with no await in between, so nothing slips.
        while not w.queue.empty():
            ev = w.queue.get_nowait()
            if ev is None:
                break
            self.deliver(ev)
        if not w.closed:
            w.sink = self.deliver
        if self.initial_end and not w.closed:
            self._write(self.bookmark(w.last_revision, {"k8s.io/initial-events-end": "true"}))
        disconnected = asyncio.Event()

        async def wait_disconnect() -> None:
            while (await self.receive())["type"] != "http.disconnect":
                pass
            disconnected.set()
            w.close()

        watching = asyncio.create_task(wait_disconnect())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        next_bookmark = next_bookmark_at(loop.time(), deadline)
        try:
            while not w.closed:
                now = loop.time()
                if now >= deadline:
                    break
                wait = min(deadline, next_bookmark) - now if w.bookmarks else deadline - now
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(wait, 0.01)):
                        await w.ended.wait()
                if w.bookmarks and not w.closed and loop.time() >= next_bookmark:
                    next_bookmark = next_bookmark_at(loop.time(), deadline)
                    w.last_revision = max(self.cache.safe_revision, w.last_revision)
                    self._write(self.bookmark(w.last_revision, None))
                    self.cache.request_progress()
        finally:
            self.cache.unwatch(w)
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching
        if not disconnected.is_set() and not self.transport.is_closing():
            with contextlib.suppress(Exception):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
