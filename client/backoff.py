"""Exponential backoff with jitter, for retry loops (requests, informers, leader election)."""

from __future__ import annotations

import random


class Backoff:
    """Delays `initial * factor**n`, capped at `cap`, each stretched by up to `jitter` of itself.

    `jitter=1.0` gives a delay in [d, 2d) as client-go's wait.Jitter does; `full_jitter` instead
    draws uniformly from [0, d) (AWS "full jitter"), which spreads synchronized clients best.
    """

    __slots__ = ("_current", "cap", "factor", "full_jitter", "initial", "jitter")

    def __init__(
        self, initial: float = 0.1, cap: float = 30.0, factor: float = 2.0, jitter: float = 1.0,
        full_jitter: bool = False,
    ) -> None:
        self.initial = initial
        self.cap = cap
        self.factor = factor
        self.jitter = jitter
        self.full_jitter = full_jitter
        self._current = initial

    def next(self) -> float:
        """The delay before the next attempt (grows on every call)."""
        d = self._current
        self._current = min(self.cap, d * self.factor)
        if self.full_jitter:
            return random.uniform(0, d)
        if self.jitter > 0:
            d += random.uniform(0, d * self.jitter)
        return min(d, self.cap * (1 + self.jitter))

    def reset(self) -> None:
        self._current = self.initial


def jittered(duration: float, max_factor: float) -> float:
    """client-go's wait.Jitter: `duration` plus up to `max_factor` of it."""
    return duration + random.uniform(0, duration * max_factor) if max_factor > 0 else duration
