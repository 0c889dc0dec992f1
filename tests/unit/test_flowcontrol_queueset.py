"""API Priority and Fairness: a priority level's seats and queues (apiserver/flowcontrol/queueset.py)
and the Retry-After of its rejections (apiserver/flowcontrol/retryafter.py)."""

from __future__ import annotations

import asyncio
import random

import pytest

from apiserver.flowcontrol.queueset import QueueSet, Rejected, deal, flow_hash
from apiserver.flowcontrol.retryafter import DropHistory


def test_deal_draws_distinct_cards() -> None:
    rng = random.Random(7)
    for deck, hand in ((64, 8), (128, 6), (16, 4), (5, 5), (1, 1)):
        for _ in range(200):
            cards = deal(rng.getrandbits(64), deck, hand)
            assert len(cards) == hand and len(set(cards)) == hand and all(0 <= c < deck for c in cards)


def test_deal_is_upstreams() -> None:
    # mixed radix digits of the hash, each skipping the cards drawn before it
    assert deal(0, 8, 3) == [0, 1, 2]
    assert deal(3 + 8 * 3, 8, 2) == [3, 4]  # digits 3 (radix 8), 3 (radix 7): card 3 is taken, so 4
    assert deal(3 + 8 * 2, 8, 2) == [3, 2]
    assert flow_hash("fs", "alice") == flow_hash("fs", "alice") != flow_hash("fs", "bob")


def test_seats_then_reject() -> None:
    qs = QueueSet()
    qs.configure(2)  # limitResponse Reject
    assert qs.try_start() and qs.try_start()
    assert not qs.try_start()
    with pytest.raises(Rejected) as e:
        qs.enqueue(1)
    assert e.value.reason == "concurrency-limit"
    qs.finish()
    assert qs.try_start()
    assert qs.executing == 2


def test_exempt_only_counts() -> None:
    qs = QueueSet(exempt=True)
    for _ in range(1000):
        assert qs.try_start()
    assert qs.executing == 1000


async def test_queue_full_and_dispatch_in_order() -> None:
    qs = QueueSet()
    qs.configure(1, queues=1, hand_size=1, queue_length_limit=2)
    assert qs.try_start()
    a, b = qs.enqueue(0), qs.enqueue(0)
    with pytest.raises(Rejected) as e:
        qs.enqueue(0)
    assert e.value.reason == "queue-full"
    assert not qs.try_start()  # nobody jumps the queue
    waits = [asyncio.create_task(qs.wait(w, 5)) for w in (a, b)]
    await asyncio.sleep(0)
    qs.finish()
    await asyncio.wait_for(waits[0], 1)
    assert not waits[1].done() and qs.executing == 1 and qs.waiting == 1
    qs.finish()
    await asyncio.wait_for(waits[1], 1)
    qs.finish()
    assert qs.idle


async def test_fair_across_flows() -> None:
    """A heavy flow's backlog does not keep a light flow waiting: free seats go round the queues."""
    qs = QueueSet()
    qs.configure(1, queues=64, hand_size=1, queue_length_limit=100)
    heavy, light = flow_hash("fs", "heavy"), flow_hash("fs", "light")
    assert deal(heavy, 64, 1) != deal(light, 64, 1)
    assert qs.try_start()
    order: list[str] = []

    async def run(flow: int, name: str) -> None:
        await qs.wait(qs.enqueue(flow), 5)
        order.append(name)
        qs.finish()

    tasks = [asyncio.create_task(run(heavy, f"h{i}")) for i in range(5)]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(run(light, "l0")))
    await asyncio.sleep(0)
    qs.finish()
    await asyncio.wait_for(asyncio.gather(*tasks), 2)
    assert order.index("l0") <= 1, order
    assert qs.idle


async def test_shuffle_sharding_picks_the_shortest_queue_of_the_hand() -> None:
    qs = QueueSet()
    qs.configure(1, queues=8, hand_size=2, queue_length_limit=10)
    assert qs.try_start()
    flow = flow_hash("fs", "x")
    hand = deal(flow, 8, 2)
    waiters = [qs.enqueue(flow) for _ in range(4)]
    assert sorted(w.queue for w in waiters) == sorted(hand * 2)  # alternates between the hand's two queues
    for w in waiters:
        qs._remove(w)
    assert qs.waiting == 0 and not qs._turns


async def test_time_out_and_cancel_leave_the_queue() -> None:
    qs = QueueSet()
    qs.configure(1, queues=4, hand_size=2, queue_length_limit=5)
    assert qs.try_start()
    with pytest.raises(Rejected) as e:
        await qs.wait(qs.enqueue(3), 0.01)
    assert e.value.reason == "time-out" and qs.waiting == 0
    task = asyncio.create_task(qs.wait(qs.enqueue(3), 5))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert qs.waiting == 0
    qs.finish()
    assert qs.idle


async def test_a_queued_request_whose_client_went_away_leaves_the_queue() -> None:
    qs = QueueSet()
    qs.configure(1, queues=1, hand_size=1, queue_length_limit=5)
    assert qs.try_start()
    gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(qs.wait(qs.enqueue(0), 5, gone))
    stays = asyncio.create_task(qs.wait(qs.enqueue(0), 5, asyncio.get_running_loop().create_future()))
    await asyncio.sleep(0)
    assert qs.waiting == 2
    gone.set_result(None)
    with pytest.raises(Rejected) as e:
        await asyncio.wait_for(task, 1)
    assert e.value.reason == "cancelled" and qs.waiting == 1
    qs.finish()  # the seat goes to the one still there, not to the one that left
    await asyncio.wait_for(stays, 1)
    assert qs.executing == 1 and qs.waiting == 0


async def test_a_granted_seat_of_a_cancelled_request_is_given_back() -> None:
    qs = QueueSet()
    qs.configure(1, queues=1, hand_size=1, queue_length_limit=5)
    assert qs.try_start()
    task = asyncio.create_task(qs.wait(qs.enqueue(0), 5))
    await asyncio.sleep(0)
    qs.finish()  # the seat goes to the waiter...
    task.cancel()  # ...whose client went away before it ran
    with pytest.raises(asyncio.CancelledError):
        await task
    assert qs.idle


async def test_more_seats_dispatch_waiters_at_once_and_fewer_queues_keep_them() -> None:
    qs = QueueSet()
    qs.configure(1, queues=16, hand_size=4, queue_length_limit=5)
    assert qs.try_start()
    waits = [asyncio.create_task(qs.wait(qs.enqueue(flow_hash("fs", str(i))), 5)) for i in range(3)]
    await asyncio.sleep(0)
    qs.configure(2, queues=4, hand_size=2, queue_length_limit=5)  # dealt again into 4 queues
    assert qs.executing == 2 and qs.waiting == 2
    qs.configure(4)  # now Reject: who waits is still served
    await asyncio.wait_for(asyncio.gather(*waits), 1)
    assert qs.executing == 4 and qs.waiting == 0


def test_retry_after_follows_rejections() -> None:
    t = [1000.0]
    h = DropHistory(lambda: t[0])
    assert h.record() == 1
    for _ in range(10):  # a burst in one second...
        h.record()
    t[0] += 1
    assert h.record() == 2  # ...doubles it, once per current value
    for _ in range(39):
        t[0] += 1
        for _ in range(200):
            h.record()
    assert h.retry_after == 32  # capped
    t[0] += 100
    values = []
    for _ in range(40):  # quiet: a rejection now and then brings it down, one by one
        t[0] += 40
        values.append(h.record())
    assert values[-1] == 1 and values == sorted(values, reverse=True)
