"""The Retry-After a rejected request is told, per priority level (upstream's droppedRequestsTracker).

It starts at 1 s and follows the level's rejections the way TCP follows losses: doubled (up to 32 s,
at most once per current value) when the last `retry_after` seconds saw at least 3 × `retry_after`
rejections, lowered by one when they saw fewer than `retry_after`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

MAX_RETRY_AFTER = 32


class DropHistory:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.retry_after = 1
        self._history: deque[tuple[int, int]] = deque()  # (second, rejections) of past seconds
        self._second = 0
        self._count = 0
        self._raised_at = 0

    def record(self) -> int:
        """Note one rejection now; → the Retry-After (seconds) to answer it with."""
        now = int(self.clock())
        if now == self._second:
            self._count += 1
            return self.retry_after
        self._history.append((self._second, self._count))
        keep = min(2 * self.retry_after, MAX_RETRY_AFTER)
        while self._history and now - self._history[0][0] > keep:
            self._history.popleft()
        self._second, self._count = now, 1
        self._adjust(now)
        return self.retry_after

    def _adjust(self, now: int) -> None:
        window = self.retry_after
        dropped = sum(n for second, n in self._history if now - second <= window and second < now)
        if now - self._raised_at >= window and dropped >= 3 * window:
            self.retry_after = min(2 * window, MAX_RETRY_AFTER)
            self._raised_at = now
        elif dropped < window and window > 1:
            self.retry_after = window - 1
