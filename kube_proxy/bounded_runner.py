"""asyncio version of upstream's async.BoundedFrequencyRunner.

A function runs when asked (run()), but never more often than a token bucket allows
(burst_runs tokens, one refilled every min_interval), and at least every max_interval even
when nobody asks. retry_after() schedules an earlier retry after a failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class BoundedFrequencyRunner:
    def __init__(
        self,
        fn: Callable[[], Awaitable[object]],
        min_interval: float,
        max_interval: float,
        burst_runs: int = 2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_interval < min_interval:
            raise ValueError("max_interval must be >= min_interval")
        self._fn = fn
        self.min_interval = min_interval
        self.max_interval = max_interval
        self._burst = max(1, burst_runs)
        self._clock = clock
        self._tokens = float(self._burst)
        self._last_refill = clock()
        self._requested = False
        self._retry_at: float | None = None
        self._next_periodic = clock() + max_interval
        self._wake = asyncio.Event()
        self._stopped = False
        self.started = 0  # runs started
        self.completed = 0  # runs finished (successfully or not)
        self._done = asyncio.Condition()

    # -- requests -------------------------------------------------------------------------------
    def run(self) -> None:
        """Ask for a run as soon as the rate limit allows."""
        self._requested = True
        self._wake.set()

    def retry_after(self, interval: float) -> None:
        """Run again after `interval` unless something runs earlier."""
        at = self._clock() + interval
        if self._retry_at is None or at < self._retry_at:
            self._retry_at = at
        self._wake.set()

    async def run_and_wait(self) -> None:
        """Ask for a run and wait until a run that started after this call has finished."""
        target = self.started + 1
        self.run()
        async with self._done:
            await self._done.wait_for(lambda: self.completed >= target or self._stopped)

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    # -- the loop ---------------------------------------------------------------------------
    def _refill(self, now: float) -> None:
        if self.min_interval <= 0:
            self._tokens = float(self._burst)
            return
        self._tokens = min(float(self._burst), self._tokens + (now - self._last_refill) / self.min_interval)
        self._last_refill = now

    def _due(self, now: float) -> bool:
        return (
            self._requested
            or now >= self._next_periodic
            or (self._retry_at is not None and now >= self._retry_at)
        )

    async def loop(self) -> None:
        """Run until stop(); this is the proxier's main loop."""
        while not self._stopped:
            now = self._clock()
            self._refill(now)
            if self._due(now):
                if self._tokens < 1:
                    await self._sleep((1 - self._tokens) * self.min_interval)
                    continue
                self._tokens -= 1
                self._requested = False
                self._retry_at = None
                self.started += 1
                try:
                    await self._fn()
                except Exception:  # the runner survives a failing sync; it logs and retries
                    log.exception("bounded runner: run failed")
                finally:
                    self._next_periodic = self._clock() + self.max_interval
                    async with self._done:
                        self.completed += 1
                        self._done.notify_all()
                continue
            wake_at = self._next_periodic
            if self._retry_at is not None:
                wake_at = min(wake_at, self._retry_at)
            await self._sleep(max(0.0, wake_at - now))
        async with self._done:
            self._done.notify_all()

    async def _sleep(self, seconds: float) -> None:
        """Sleep, waking early on run()/retry_after()/stop()."""
        self._wake.clear()
        if self._requested and self._tokens >= 1:
            return
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        except TimeoutError:
            pass
