"""The per-channel token bucket on a fake clock: burst, sustained rate, pauses, fairness."""

from __future__ import annotations

import asyncio

import pytest

from hub.delivery.bucket import TokenBucket


class FakeTime:
    """A clock that moves only when the bucket sleeps, so figures are exact."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def bucket(rate: float, burst: int, t: FakeTime) -> TokenBucket:
    return TokenBucket(rate, burst, clock=t.clock, sleep=t.sleep)


async def times_of(b: TokenBucket, t: FakeTime, n: int) -> list[float]:
    out = []
    for _ in range(n):
        await b.acquire()
        out.append(round(t.now, 6))
    return out


async def test_a_burst_goes_at_once_then_the_sustained_rate():
    t = FakeTime()
    got = await times_of(bucket(10, 5, t), t, 20)
    assert got[:5] == [0.0] * 5
    assert got[5:8] == [0.1, 0.2, 0.3]
    assert got[-1] == pytest.approx(1.5)  # (20 - 5) / 10 per second


async def test_no_window_holds_more_than_burst_plus_rate_times_its_length():
    t = FakeTime()
    got = await times_of(bucket(4, 3, t), t, 40)
    for i, start in enumerate(got):
        in_one_second = [x for x in got[i:] if x < start + 1.0 - 1e-9]
        assert len(in_one_second) <= 3 + 4


async def test_tokens_refill_while_idle_but_never_beyond_the_burst():
    t = FakeTime()
    b = bucket(10, 5, t)
    await times_of(b, t, 5)
    t.now += 60.0  # a quiet minute
    got = await times_of(b, t, 7)
    assert got[:5] == [60.0] * 5
    assert got[5:] == [60.1, 60.2]


async def test_pause_stops_everything_then_restarts_without_a_burst():
    t = FakeTime()
    b = bucket(10, 5, t)
    b.pause(2.0)
    assert b.paused_for == pytest.approx(2.0)
    got = await times_of(b, t, 3)
    assert got == [2.1, 2.2, 2.3]
    assert b.paused_for == 0.0


async def test_a_shorter_pause_does_not_cut_a_longer_one():
    t = FakeTime()
    b = bucket(10, 5, t)
    b.pause(3.0)
    b.pause(1.0)
    assert (await times_of(b, t, 1))[0] >= 3.0


async def test_waiters_are_served_in_arrival_order():
    t = FakeTime()
    b = bucket(1, 1, t)
    order: list[int] = []

    async def one(i: int) -> None:
        await b.acquire()
        order.append(i)

    await asyncio.gather(*(one(i) for i in range(5)))
    assert order == [0, 1, 2, 3, 4]
    assert t.now == pytest.approx(4.0)


def test_a_bucket_needs_a_positive_rate_and_burst():
    with pytest.raises(ValueError):
        TokenBucket(0, 1)
    with pytest.raises(ValueError):
        TokenBucket(1, 0)
