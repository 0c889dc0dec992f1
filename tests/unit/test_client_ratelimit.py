"""client.ratelimit.TokenBucket (QPS + burst, reservations) and client.backoff."""

from __future__ import annotations

import pytest

from client.backoff import Backoff, jittered
from client.ratelimit import TokenBucket


def test_burst_then_qps_spacing() -> None:
    now = [0.0]
    b = TokenBucket(5.0, 10, clock=lambda: now[0])
    assert [b.reserve() for _ in range(10)] == [0.0] * 10
    # the next ones are spaced 1/qps apart, in reservation order
    assert [b.reserve() for _ in range(3)] == pytest.approx([0.2, 0.4, 0.6])
    now[0] = 0.6
    assert b.reserve() == pytest.approx(0.2)


def test_refill_is_capped_at_burst() -> None:
    now = [0.0]
    b = TokenBucket(100.0, 3, clock=lambda: now[0])
    for _ in range(3):
        b.reserve()
    now[0] = 1000.0  # a long idle time saves up only `burst` tokens
    assert [b.reserve() for _ in range(3)] == [0.0] * 3
    assert b.reserve() == pytest.approx(0.01)


def test_try_take_never_goes_into_debt() -> None:
    now = [0.0]
    b = TokenBucket(1.0, 1, clock=lambda: now[0])
    assert b.try_take() and not b.try_take()
    now[0] = 0.5
    assert not b.try_take()
    now[0] = 1.0
    assert b.try_take()


def test_invalid_qps() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0, 1)


async def test_acquire_waits_for_its_token() -> None:
    import asyncio

    b = TokenBucket(50.0, 1)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(3):
        await b.acquire()
    assert loop.time() - start >= 0.039  # two tokens at 50/s


def test_backoff_grows_caps_and_resets() -> None:
    b = Backoff(initial=1.0, cap=4.0, factor=2.0, jitter=0.0)
    assert [b.next() for _ in range(4)] == [1.0, 2.0, 4.0, 4.0]
    b.reset()
    assert b.next() == 1.0
    j = Backoff(initial=1.0, cap=8.0, jitter=1.0)
    for base in (1.0, 2.0, 4.0):
        d = j.next()
        assert base <= d <= 2 * base
    full = Backoff(initial=1.0, cap=8.0, full_jitter=True)
    assert all(0 <= full.next() <= 8.0 for _ in range(10))
    assert 2.0 <= jittered(2.0, 1.2) <= 4.4
