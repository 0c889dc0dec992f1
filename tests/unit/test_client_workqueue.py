"""client.workqueue: client-go's dedup/exclusivity rules, delays and rate-limiter numbers."""

from __future__ import annotations

import asyncio

import pytest

from client.workqueue import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    WorkQueue,
    default_controller_rate_limiter,
    run_workers,
)
from tests.conftest import until


async def test_add_dedups_waiting_keys() -> None:
    q: WorkQueue[str] = WorkQueue()
    for k in ("a", "b", "a", "a", "c", "b"):
        q.add(k)
    assert len(q) == 3 and q.len() == 3
    assert [await q.get() for _ in range(3)] == ["a", "b", "c"]
    assert len(q) == 0


async def test_key_added_while_processing_is_requeued_on_done_not_handed_out_twice() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    assert await q.get() == "a"
    q.add("a")
    q.add("a")
    assert len(q) == 0  # held back while a worker has it
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    assert not getter.done()
    q.done("a")
    assert await asyncio.wait_for(getter, 1) == "a"
    q.done("a")
    assert len(q) == 0  # the two re-adds collapsed into one


async def test_done_without_readd_does_not_requeue() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    await q.get()
    q.done("a")
    assert len(q) == 0


async def test_workers_never_process_a_key_concurrently() -> None:
    q: WorkQueue[str] = WorkQueue()
    active: set[str] = set()
    processed: dict[str, int] = {}
    overlaps: list[str] = []

    async def sync(key: str) -> None:
        if key in active:
            overlaps.append(key)
        active.add(key)
        await asyncio.sleep(0.001)
        if processed.get(key, 0) < 5:
            q.add(key)  # re-added while being processed
        processed[key] = processed.get(key, 0) + 1
        active.discard(key)

    for i in range(20):
        q.add(f"k{i % 4}")
    runner = asyncio.create_task(run_workers(q, sync, workers=8))
    await until(lambda: len(processed) == 4 and all(v >= 6 for v in processed.values()) and len(q) == 0
                and not active)
    q.shutdown()
    await asyncio.wait_for(runner, 2)
    assert overlaps == []
    assert processed == {f"k{i}": 6 for i in range(4)}


def test_item_exponential_backoff_numbers() -> None:
    rl = ItemExponentialFailureRateLimiter(0.005, 1000.0)
    delays = [rl.when("x") for _ in range(5)]
    assert delays == pytest.approx([0.005, 0.010, 0.020, 0.040, 0.080])
    assert rl.num_requeues("x") == 5
    assert rl.when("y") == pytest.approx(0.005)  # per item
    for _ in range(30):
        last = rl.when("x")
    assert last == 1000.0  # capped
    for _ in range(100):
        assert rl.when("x") == 1000.0  # no overflow far past the cap
    rl.forget("x")
    assert rl.num_requeues("x") == 0 and rl.when("x") == pytest.approx(0.005)


def test_bucket_rate_limiter_numbers() -> None:
    now = [0.0]
    rl = BucketRateLimiter(10.0, 100, clock=lambda: now[0])
    assert all(rl.when(i) == 0.0 for i in range(100))  # the burst
    assert rl.when("a") == pytest.approx(0.1)
    assert rl.when("b") == pytest.approx(0.2)  # reservations queue up
    now[0] = 1.0
    assert rl.when("c") == pytest.approx(0.0, abs=1e-9)  # 10 tokens refilled, 2 were owed: one is free


def test_default_controller_rate_limiter_is_max_of_both() -> None:
    rl = default_controller_rate_limiter()
    assert isinstance(rl, MaxOfRateLimiter)
    assert rl.when("k") == pytest.approx(0.005)
    assert rl.when("k") == pytest.approx(0.010)
    assert rl.num_requeues("k") == 2
    rl.forget("k")
    assert rl.num_requeues("k") == 0


async def test_add_after_earliest_wins() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add_after("a", 0.05)
    q.add_after("a", 30)  # later: ignored
    q.add_after("b", 30)
    q.add_after("b", 0.01)  # sooner: replaces
    got = {await asyncio.wait_for(q.get(), 2), await asyncio.wait_for(q.get(), 2)}
    assert got == {"a", "b"}
    assert len(q) == 0


async def test_add_rate_limited_and_forget() -> None:
    q: WorkQueue[str] = WorkQueue(ItemExponentialFailureRateLimiter(0.001, 1.0))
    q.add_rate_limited("a")
    q.add_rate_limited("a")
    assert q.num_requeues("a") == 2
    assert await asyncio.wait_for(q.get(), 2) == "a"
    q.forget("a")
    q.done("a")
    assert q.num_requeues("a") == 0


async def test_run_workers_retries_failures_then_forgets() -> None:
    q: WorkQueue[str] = WorkQueue(ItemExponentialFailureRateLimiter(0.001, 1.0))
    attempts: list[int] = []
    succeeded = asyncio.Event()

    async def sync(key: str) -> None:
        attempts.append(q.num_requeues(key))
        if len(attempts) < 3:
            raise RuntimeError("transient")
        succeeded.set()

    q.add("k")
    runner = asyncio.create_task(run_workers(q, sync, workers=2))
    await asyncio.wait_for(succeeded.wait(), 2)
    await until(lambda: q.num_requeues("k") == 0)
    q.shutdown()
    await asyncio.wait_for(runner, 2)
    assert attempts == [0, 1, 2]  # each failure counted once, then forgotten


async def test_shutdown_releases_getters_and_ignores_adds() -> None:
    q: WorkQueue[str] = WorkQueue()
    getters = [asyncio.create_task(q.get()) for _ in range(3)]
    await asyncio.sleep(0)
    q.shutdown()
    assert await asyncio.wait_for(asyncio.gather(*getters), 1) == [None, None, None]
    q.add("x")
    q.add_after("y", 0.001)
    assert len(q) == 0 and await q.get() is None and q.shutting_down


async def test_shutdown_with_drain_waits_for_processing() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    assert await q.get() == "a"
    drain = asyncio.create_task(q.shutdown_with_drain())
    await asyncio.sleep(0.01)
    assert not drain.done()
    q.done("a")
    await asyncio.wait_for(drain, 1)


async def test_cancelled_getter_passes_wakeup_on() -> None:
    q: WorkQueue[str] = WorkQueue()
    first = asyncio.create_task(q.get())
    second = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.add("a")  # wakes `first`...
    first.cancel()  # ...which is cancelled before it runs
    assert await asyncio.wait_for(second, 1) == "a"
