"""Per-key exponential back-off (upstream's flowcontrol.Backoff) for restarts and image pulls.

Times are wall-clock seconds, because the events they are compared with (a container's
finishedAt) come from the runtime. CrashLoopBackOff as upstream: the first restart is
immediate, then 10 s, 20 s, ... up to 5 min; an entry whose last failure came more than
2 × max (10 min) after the previous one starts over at the initial delay.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Entry:
    delay: float
    last_update: float


class Backoff:
    def __init__(self, initial: float = 10.0, maximum: float = 300.0, clock: Callable[[], float] = time.time) -> None:
        self.initial = initial
        self.maximum = maximum
        self.clock = clock
        self._entries: dict[str, _Entry] = {}

    def delay(self, key: str) -> float:
        entry = self._entries.get(key)
        return entry.delay if entry is not None else 0.0

    def remaining(self, key: str, event_time: float) -> float:
        """Seconds still to wait after the failure at `event_time` (0: not in back-off)."""
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        return max(0.0, entry.delay - (self.clock() - event_time))

    def remaining_since_last(self, key: str) -> float:
        """Seconds still to wait after the failure `next` last recorded (0: not in back-off)."""
        entry = self._entries.get(key)
        return 0.0 if entry is None else self.remaining(key, entry.last_update)

    def next(self, key: str, event_time: float) -> float:
        """Record a retry after the failure at `event_time`; returns the delay for the next one."""
        now = self.clock()
        entry = self._entries.get(key)
        if entry is None or event_time - entry.last_update > 2 * self.maximum:
            self._entries[key] = _Entry(self.initial, now)
            return self.initial
        entry.delay = min(entry.delay * 2, self.maximum)
        entry.last_update = now
        return entry.delay

    def reset(self, key: str) -> None:
        self._entries.pop(key, None)

    def forget_prefix(self, prefix: str) -> None:
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]

    def gc(self) -> None:
        """Drop entries idle long enough that they would start over anyway."""
        now = self.clock()
        for key in [k for k, e in self._entries.items() if now - e.last_update > 2 * self.maximum]:
            del self._entries[key]
