"""Work queue with client-go semantics (util/workqueue): dedup, exclusivity, delays, rate limits.

- `add(key)`: a key waits in the queue at most once; a key added while a worker holds it
  is queued again when that worker calls `done(key)` — never handed out twice at once.
- `add_after(key, delay)`: added later; of several pending delays the earliest wins.
- `add_rate_limited(key)`: added after the rate limiter's delay for it: per-key exponential
  (5 ms doubling to 1000 s) or an overall token bucket (10 qps, burst 100), whichever is
  longer — client-go's DefaultControllerRateLimiter. `forget(key)` resets the key's count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, Protocol, TypeVar

from client.ratelimit import TokenBucket

log = logging.getLogger("client.workqueue")

T = TypeVar("T", bound=Hashable)


# -- rate limiters -----------------------------------------------------------------------

class RateLimiter(Protocol):
    def when(self, item: Hashable) -> float:
        """Seconds to wait before `item` may be processed again (counts a failure)."""
        ...

    def forget(self, item: Hashable) -> None: ...

    def num_requeues(self, item: Hashable) -> int: ...


class ItemExponentialFailureRateLimiter:
    """`base * 2**failures`, capped at `max_delay` (client-go's per-item limiter)."""

    def __init__(self, base_delay: float = 0.005, max_delay: float = 1000.0) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._failures: dict[Hashable, int] = {}

    def when(self, item: Hashable) -> float:
        exp = self._failures.get(item, 0)
        self._failures[item] = exp + 1
        if exp >= 64:  # 2**64 * base is beyond any cap; avoid a huge float
            return self.max_delay
        return min(self.base_delay * (2**exp), self.max_delay)

    def forget(self, item: Hashable) -> None:
        self._failures.pop(item, None)

    def num_requeues(self, item: Hashable) -> int:
        return self._failures.get(item, 0)


class BucketRateLimiter:
    """An overall token bucket: every item shares it; no per-item memory."""

    def __init__(self, qps: float = 10.0, burst: int = 100, clock=time.monotonic) -> None:
        self.bucket = TokenBucket(qps, burst, clock)

    def when(self, item: Hashable) -> float:
        return self.bucket.reserve()

    def forget(self, item: Hashable) -> None:
        pass

    def num_requeues(self, item: Hashable) -> int:
        return 0


class MaxOfRateLimiter:
    """The longest delay of several limiters."""

    def __init__(self, *limiters: RateLimiter) -> None:
        self.limiters = limiters

    def when(self, item: Hashable) -> float:
        return max(lim.when(item) for lim in self.limiters)

    def forget(self, item: Hashable) -> None:
        for lim in self.limiters:
            lim.forget(item)

    def num_requeues(self, item: Hashable) -> int:
        return max(lim.num_requeues(item) for lim in self.limiters)


def default_controller_rate_limiter() -> MaxOfRateLimiter:
    return MaxOfRateLimiter(ItemExponentialFailureRateLimiter(0.005, 1000.0), BucketRateLimiter(10.0, 100))


# -- the queue ---------------------------------------------------------------------------

class WorkQueue(Generic[T]):
    """Rate-limited delaying work queue of hashable keys (usually `namespace/name`)."""

    def __init__(self, rate_limiter: RateLimiter | None = None, name: str = "") -> None:
        self.name = name
        self.rate_limiter: RateLimiter = rate_limiter if rate_limiter is not None else default_controller_rate_limiter()
        self._queue: deque[T] = deque()
        self._dirty: set[T] = set()  # wants processing (queued, or re-added while processing)
        self._processing: set[T] = set()
        self._waiting: dict[T, asyncio.TimerHandle] = {}  # add_after timers, by key
        self._waiting_at: dict[T, float] = {}
        self._getters: deque[asyncio.Future[None]] = deque()
        self._shutting_down = False
        self._drain = False
        self._drained: asyncio.Event | None = None

    # -- adding ------------------------------------------------------------------------

    def add(self, key: T) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # queued again by done()
        self._queue.append(key)
        self._wake_one()

    def add_after(self, key: T, delay: float) -> None:
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        at = loop.time() + delay
        pending = self._waiting_at.get(key)
        if pending is not None:
            if pending <= at:
                return  # already due sooner
            self._waiting[key].cancel()
        self._waiting_at[key] = at
        self._waiting[key] = loop.call_at(at, self._ready, key)

    def _ready(self, key: T) -> None:
        self._waiting.pop(key, None)
        self._waiting_at.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: T) -> None:
        self.add_after(key, self.rate_limiter.when(key))

    def forget(self, key: T) -> None:
        """Stop tracking the key's failures (call after it was processed successfully)."""
        self.rate_limiter.forget(key)

    def num_requeues(self, key: T) -> int:
        return self.rate_limiter.num_requeues(key)

    # -- taking ------------------------------------------------------------------------

    async def get(self) -> T | None:
        """The next key to process (mark it `done` afterwards); None once the queue is shut down."""
        while not self._queue:
            if self._shutting_down:
                return None
            fut = asyncio.get_running_loop().create_future()
            self._getters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self._wake_one()  # woken, then cancelled: hand the wake-up on
                else:
                    with contextlib.suppress(ValueError):
                        self._getters.remove(fut)
                raise
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: T) -> None:
        """The worker finished `key`; if it was added meanwhile, it is queued again now."""
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wake_one()
        elif self._drained is not None and not self._processing:
            self._drained.set()

    def _wake_one(self) -> None:
        while self._getters:
            fut = self._getters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    # -- state -------------------------------------------------------------------------

    def __len__(self) -> int:
        """Keys waiting to be handed out (not the delayed ones, not those being processed)."""
        return len(self._queue)

    def len(self) -> int:
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def shutdown(self) -> None:
        """Stop accepting keys; waiting getters (and later ones, once it is empty) get None."""
        self._shutting_down = True
        for handle in self._waiting.values():
            handle.cancel()
        self._waiting.clear()
        self._waiting_at.clear()
        while self._getters:
            fut = self._getters.popleft()
            if not fut.done():
                fut.set_result(None)

    async def shutdown_with_drain(self) -> None:
        """Shut down, then wait until every key being processed is `done`."""
        self.shutdown()
        if self._processing:
            self._drained = asyncio.Event()
            await self._drained.wait()


async def run_workers(
    queue: WorkQueue[T], sync: Callable[[T], Awaitable[object]], workers: int = 1, name: str = ""
) -> None:
    """Process keys with `workers` concurrent workers until the queue shuts down.

    Success → `forget(key)`; an exception → logged and `add_rate_limited(key)`. A key is
    never processed by two workers at once (the queue guarantees it).
    """
    label = name or queue.name or "workqueue"

    async def worker() -> None:
        while True:
            key = await queue.get()
            if key is None:
                return
            try:
                await sync(key)
            except asyncio.CancelledError:
                queue.done(key)
                raise
            except Exception as e:
                log.warning("%s: syncing %r failed (retry %d): %s", label, key, queue.num_requeues(key) + 1, e,
                            exc_info=log.isEnabledFor(logging.DEBUG))
                queue.add_rate_limited(key)
            else:
                queue.forget(key)
            queue.done(key)

    await asyncio.gather(*(worker() for _ in range(max(1, workers))))
