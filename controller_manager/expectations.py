"""Expectations: what a controller has asked for and not yet seen in its informer.

A controller that just created 3 pods must not count the pods again (and create 3 more)
before its informer has seen them. It records "expect 3 creations"; every pod add the
informer delivers lowers the count; until it reaches 0 (or 5 minutes pass: a lost watch
event must not freeze the controller) the controller does not create or delete anything
for that key (upstream ControllerExpectations / UIDTrackingControllerExpectations).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

EXPECTATIONS_TIMEOUT = 300.0  # upstream ExpectationsTimeout: 5 minutes


@dataclass
class Expectation:
    add: int
    delete: int
    timestamp: float
    uids: set[str] = field(default_factory=set)  # keys of the pods whose deletion we wait for

    @property
    def fulfilled(self) -> bool:
        return self.add <= 0 and self.delete <= 0


class ControllerExpectations:
    """Per controller key: creations and deletions still to be observed."""

    def __init__(self, clock: Callable[[], float], timeout: float = EXPECTATIONS_TIMEOUT) -> None:
        self._clock = clock
        self._timeout = timeout
        self._store: dict[str, Expectation] = {}

    def get(self, key: str) -> Expectation | None:
        return self._store.get(key)

    def satisfied(self, key: str) -> bool:
        """True when the controller may act: nothing outstanding, expired, or never set."""
        exp = self._store.get(key)
        if exp is None:
            return True
        return exp.fulfilled or self._clock() - exp.timestamp > self._timeout

    def set(self, key: str, add: int, delete: int) -> None:
        self._store[key] = Expectation(add, delete, self._clock())

    def expect_creations(self, key: str, count: int) -> None:
        self.set(key, count, 0)

    def expect_deletions(self, key: str, pod_keys: Iterable[str]) -> None:
        """Expect these pods (by "ns/name") to go away (deletes counted once per pod)."""
        uids = set(pod_keys)
        exp = Expectation(0, len(uids), self._clock(), uids)
        self._store[key] = exp

    def lower(self, key: str, add: int = 0, delete: int = 0) -> None:
        exp = self._store.get(key)
        if exp is not None:
            exp.add -= add
            exp.delete -= delete

    def raise_(self, key: str, add: int = 0, delete: int = 0) -> None:
        exp = self._store.get(key)
        if exp is not None:
            exp.add += add
            exp.delete += delete

    def creation_observed(self, key: str) -> None:
        self.lower(key, add=1)

    def deletion_observed(self, key: str, pod_key: str | None = None) -> None:
        """A deletion was seen; with `pod_key`, only counted if it is one we expect (and only once)."""
        exp = self._store.get(key)
        if exp is None:
            return
        if pod_key is None:
            exp.delete -= 1
        elif pod_key in exp.uids:
            exp.uids.discard(pod_key)
            exp.delete -= 1

    def delete(self, key: str) -> None:
        self._store.pop(key, None)

    def __contains__(self, key: str) -> bool:
        return key in self._store
