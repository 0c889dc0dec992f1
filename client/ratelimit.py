"""Token bucket (QPS with a burst), as client-go's flowcontrol / golang.org/x/time/rate.

A caller reserves a token and learns how long to wait for it; the bucket may go into
debt, so waiters are served in arrival order without polling.
"""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """`qps` tokens per second, at most `burst` saved up; starts full."""

    __slots__ = ("_clock", "_last", "_tokens", "burst", "qps")

    def __init__(self, qps: float, burst: int, clock=time.monotonic) -> None:
        if qps <= 0:
            raise ValueError("qps must be positive")
        self.qps = float(qps)
        self.burst = max(1, int(burst))
        self._clock = clock
        self._tokens = float(self.burst)
        self._last = clock()

    def reserve(self) -> float:
        """Take one token; return the seconds to wait before using it (0 if one was there)."""
        now = self._clock()
        tokens = min(self.burst, self._tokens + (now - self._last) * self.qps)
        self._last = now
        tokens -= 1.0
        self._tokens = tokens
        return 0.0 if tokens >= 0 else -tokens / self.qps

    def try_take(self) -> bool:
        """Take a token only if one is available now."""
        now = self._clock()
        tokens = min(self.burst, self._tokens + (now - self._last) * self.qps)
        self._last = now
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True

    async def acquire(self) -> None:
        """Wait for a token."""
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)
