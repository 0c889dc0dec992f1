"""One priority level's seats and queues (upstream's fairqueuing/queueset, simplified).

A request takes one seat while it executes. When every seat is taken, a request of a level with
`limitResponse: Queue` is shuffle-sharded to a queue — its flow's hash deals a hand of `handSize`
queues and it joins the shortest — and waits there; a full queue, a `Reject` level, or a wait longer
than the limit rejects it. Freed seats go to the queues' heads in round robin (fair queuing across
queues; upstream's virtual-time scheduling and per-request seat estimates are left out). The exempt
level only counts.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque


class Rejected(Exception):
    """A request the level will not run; `reason` is upstream's rejection label."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "queue-full", "concurrency-limit", "time-out" or "cancelled"


def flow_hash(schema: str, distinguisher: str) -> int:
    """The flow's 64-bit hash, upstream's: SHA-256 of `schema \\0 distinguisher`, first 8 bytes LE."""
    digest = hashlib.sha256(schema.encode() + b"\0" + distinguisher.encode()).digest()
    return int.from_bytes(digest[:8], "little")


def deal(hash_value: int, deck_size: int, hand_size: int) -> list[int]:
    """Shuffle sharding: `hand_size` distinct cards of `deck_size`, drawn from the hash's digits
    in mixed radix (deck_size, deck_size-1, ...), each skipping the cards already drawn."""
    remainders = []
    for i in range(hand_size):
        hash_value, r = divmod(hash_value, deck_size - i)
        remainders.append(r)
    hand = []
    for i, card in enumerate(remainders):
        for drawn in reversed(remainders[:i]):
            if card >= drawn:
                card += 1
        hand.append(card)
    return hand


class Waiter:
    __slots__ = ("flow", "future", "queue")

    def __init__(self, future: asyncio.Future[None], queue: int, flow: int) -> None:
        self.future = future
        self.queue = queue
        self.flow = flow


class QueueSet:
    def __init__(self, exempt: bool = False) -> None:
        self.exempt = exempt
        self.seats = 1
        self.executing = 0
        self.waiting = 0
        self.reject = True  # limitResponse Reject: no queuing
        self.hand_size = 0
        self.queue_length_limit = 0
        self.queues: list[deque[Waiter]] = []
        #: indexes of the non-empty queues, in the order they get the next free seat
        self._turns: deque[int] = deque()
        self._enqueues = 0

    def configure(self, seats: int, queues: int = 0, hand_size: int = 0, queue_length_limit: int = 0) -> None:
        """Apply a (new) configuration: `queues` 0 means Reject. Waiting requests stay queued (dealt
        again when the number of queues changes) and get the new seats at once."""
        self.seats = max(1, seats)
        self.reject = queues <= 0
        self.hand_size, self.queue_length_limit = hand_size, queue_length_limit
        if not self.reject and queues != len(self.queues):
            waiting = [w for q in self.queues for w in q]
            self.queues = [deque() for _ in range(queues)]
            self._turns.clear()
            self.waiting = 0
            for w in waiting:
                w.queue = self._pick(w.flow)
                self._append(w)
        self._dispatch()

    # -- the request's side ---------------------------------------------------------------------

    def try_start(self) -> bool:
        """Take a seat at once if one is free and nobody waits for it."""
        if self.exempt or (not self.waiting and self.executing < self.seats):
            self.executing += 1
            return True
        return False

    def enqueue(self, flow: int) -> Waiter:
        """Queue a request of the flow with hash `flow` (raises Rejected)."""
        if self.reject:
            raise Rejected("concurrency-limit")
        index = self._pick(flow)
        if len(self.queues[index]) >= self.queue_length_limit:
            raise Rejected("queue-full")
        w = Waiter(asyncio.get_running_loop().create_future(), index, flow)
        self._append(w)
        return w

    async def wait(self, w: Waiter, limit: float, gone: asyncio.Future[None] | None = None) -> None:
        """Wait for the queued request's seat, at most `limit` seconds (raises Rejected); `gone`
        completes when the client goes away: its request leaves the queue (upstream's
        "cancelled")."""
        try:
            async with asyncio.timeout(limit):
                if gone is None:
                    await asyncio.shield(w.future)
                else:
                    await asyncio.wait((w.future, gone), return_when=asyncio.FIRST_COMPLETED)
                    if not w.future.done():
                        self._remove(w)
                        raise Rejected("cancelled")
        except TimeoutError:
            if not w.future.done():  # (a seat granted as the time ran out is taken)
                self._remove(w)
                raise Rejected("time-out") from None
        except asyncio.CancelledError:  # the client went away
            if w.future.done():
                self.finish()
            else:
                self._remove(w)
            raise

    def finish(self) -> None:
        """A request's seat is free again."""
        self.executing -= 1
        if self.waiting:
            self._dispatch()

    @property
    def idle(self) -> bool:
        return not self.executing and not self.waiting

    # -- queues ---------------------------------------------------------------------------------

    def _pick(self, flow: int) -> int:
        """The shortest queue of the flow's hand (ties: the hand's order, rotated per request)."""
        hand = deal(flow, len(self.queues), min(self.hand_size, len(self.queues)))
        offset = self._enqueues % len(hand)
        self._enqueues += 1
        best, shortest = hand[offset], len(self.queues[hand[offset]])
        for i in range(1, len(hand)):
            index = hand[(offset + i) % len(hand)]
            if len(self.queues[index]) < shortest:
                best, shortest = index, len(self.queues[index])
        return best

    def _append(self, w: Waiter) -> None:
        q = self.queues[w.queue]
        q.append(w)
        self.waiting += 1
        if len(q) == 1:
            self._turns.append(w.queue)

    def _remove(self, w: Waiter) -> None:
        q = self.queues[w.queue] if w.queue < len(self.queues) else None
        if q is None or w not in q:
            return
        q.remove(w)
        self.waiting -= 1
        if not q:
            self._turns.remove(w.queue)

    def _dispatch(self) -> None:
        while self._turns and (self.exempt or self.executing < self.seats):
            index = self._turns.popleft()
            q = self.queues[index]
            w = q.popleft()
            if q:
                self._turns.append(index)
            self.waiting -= 1
            self.executing += 1
            w.future.set_result(None)
