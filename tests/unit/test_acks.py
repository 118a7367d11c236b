"""Ack coalescing: one multiple-ack per settled run, never covering an unsettled delivery."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from amqp_fakes import FakeChannel

from hub.acks import AckCoalescer


@dataclass
class FakeMessage:
    """The slice of aiormq's DeliveredMessage the coalescer uses."""

    channel: FakeChannel
    delivery_tag: int


def settle(acks: AckCoalescer, *messages: FakeMessage, ack: bool = True) -> None:
    for m in messages:
        acks.settle(m, ack=ack)  # type: ignore[arg-type]


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Wait for what the coalescer does in its own time (it flushes on the loop)."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - the coalescer has no event to wait on
            await asyncio.sleep(0.005)


async def test_a_settled_run_is_acked_with_one_frame() -> None:
    channel = FakeChannel()
    acks = AckCoalescer()
    messages = [FakeMessage(channel, tag) for tag in range(1, 101)]
    for m in messages:
        acks.received(m)  # type: ignore[arg-type]
    settle(acks, *reversed(messages))
    await asyncio.wait_for(acks.drained(), 2)
    assert channel.frames == [(100, True)]


async def test_an_unsettled_delivery_is_never_covered_and_does_not_stall_the_rest() -> None:
    channel = FakeChannel()
    acks = AckCoalescer(stall_s=0.05)
    slow, *rest = [FakeMessage(channel, tag) for tag in range(1, 6)]
    for m in (slow, *rest):
        acks.received(m)  # type: ignore[arg-type]
    settle(acks, *rest)
    await until(lambda: len(channel.frames) == 4)
    # Tags 2..5 went out one by one after the stall, never as a multiple-ack (it would cover 1).
    assert sorted(channel.frames) == [(2, False), (3, False), (4, False), (5, False)]
    drained = asyncio.ensure_future(acks.drained())
    await asyncio.sleep(0.02)
    assert not drained.done()  # tag 1 is still being handled
    settle(acks, slow)
    await asyncio.wait_for(drained, 2)
    assert channel.frames[-1] == (1, True)


async def test_nacked_delivery_is_skipped_over() -> None:
    channel = FakeChannel()
    acks = AckCoalescer()
    first, nacked, last = (FakeMessage(channel, t) for t in (1, 2, 3))
    for m in (first, nacked, last):
        acks.received(m)  # type: ignore[arg-type]
    settle(acks, nacked, ack=False)
    settle(acks, first, last)
    await asyncio.wait_for(acks.drained(), 2)
    assert channel.frames == [(3, True)]


async def test_deliveries_reaching_the_handler_out_of_order_are_never_covered_early() -> None:
    channel = FakeChannel()
    acks = AckCoalescer(stall_s=0.05)
    first, second = FakeMessage(channel, 1), FakeMessage(channel, 2)
    acks.received(second)  # type: ignore[arg-type]  # tag 2 reaches the handler first
    settle(acks, second)
    await asyncio.wait_for(acks.drained(), 2)
    # Tag 1 is not even registered yet: 2 may only be acked on its own, never as multiple.
    assert channel.frames == [(2, False)]
    acks.received(first)  # type: ignore[arg-type]
    settle(acks, first)
    await asyncio.wait_for(acks.drained(), 2)
    assert channel.frames == [(2, False), (1, True)]


async def test_a_delivery_it_never_saw_is_acked_on_its_own() -> None:
    channel = FakeChannel()
    acks = AckCoalescer()
    settle(acks, FakeMessage(channel, 7))
    await until(lambda: bool(channel.frames))
    assert channel.frames == [(7, False)]


async def test_a_tag_that_never_arrives_keeps_memory_bounded(monkeypatch) -> None:
    import hub.acks

    monkeypatch.setattr(hub.acks, "MAX_TRACKED", 50)
    channel = FakeChannel()
    acks = AckCoalescer(stall_s=0.0)
    messages = [FakeMessage(channel, tag) for tag in range(2, 200)]  # tag 1 never arrives
    for m in messages:
        acks.received(m)  # type: ignore[arg-type]
    settle(acks, *messages)
    await asyncio.wait_for(acks.drained(), 2)
    await acks.flush()
    assert sorted(tag for tag, multiple in channel.frames) == list(range(2, 200))
    assert not any(multiple for _, multiple in channel.frames)  # tag 1 is never covered
    assert sum(len(lane.entries) for lane in acks._lanes.values()) <= 50


async def test_a_new_channel_starts_its_own_frontier_and_closed_lanes_are_dropped() -> None:
    """After a reconnect tags restart at 1 on a new channel: an ack there must never be a
    multiple-ack reaching past what the new channel has settled (the old frontier was 50)."""
    acks = AckCoalescer()
    old = FakeChannel()
    first = [FakeMessage(old, tag) for tag in range(1, 51)]
    for m in first:
        acks.received(m)  # type: ignore[arg-type]
    settle(acks, *first)
    await asyncio.wait_for(acks.drained(), 2)
    old.is_closed = True
    new = FakeChannel()
    slow, done = FakeMessage(new, 1), FakeMessage(new, 2)
    for m in (slow, done):
        acks.received(m)  # type: ignore[arg-type]
    await acks.flush()
    assert len(acks._lanes) == 1  # the closed channel's lane is gone
    settle(acks, done)
    await asyncio.sleep(0.05)
    assert (2, True) not in new.frames  # would cover tag 1, still being handled
    settle(acks, slow)
    await asyncio.wait_for(acks.drained(), 2)
    assert new.frames[-1] in ((2, True), (2, False))


async def test_a_closed_channel_does_not_keep_drained_waiting() -> None:
    """Deliveries of a channel that closed come back from the broker: nothing to wait for."""
    channel = FakeChannel()
    acks = AckCoalescer()
    pending = [FakeMessage(channel, tag) for tag in (1, 2)]
    for m in pending:
        acks.received(m)  # type: ignore[arg-type]
    channel.is_closed = True
    settle(acks, pending[0])  # its outcome comes after the channel closed
    await asyncio.wait_for(acks.drained(), 2)
    assert channel.frames == []


async def test_a_run_freed_by_its_slow_head_goes_at_once_not_at_the_stall_timer() -> None:
    """Batches that finish out of order: the later one waits behind the earlier (a stall timer
    is set); once the earlier settles, both go in one frame straight away. Waiting for the
    timer held acks back long enough to fill the prefetch window."""
    channel = FakeChannel()
    acks = AckCoalescer(stall_s=5.0)
    first, second = FakeMessage(channel, 1), FakeMessage(channel, 2)
    for m in (first, second):
        acks.received(m)  # type: ignore[arg-type]
    settle(acks, second)
    await asyncio.sleep(0.05)  # its flush ran and set the 5 s stall timer
    assert channel.frames == []
    settle(acks, first)
    await asyncio.wait_for(acks.drained(), 1)
    assert channel.frames == [(2, True)]


async def test_flushes_do_not_rely_on_the_loops_timer_handles(monkeypatch) -> None:
    """uvloop answers ``call_at`` for a time already passed with a plain Handle, which has no
    ``when()``: every settle raised there, and the hub logged a traceback per message."""
    loop = asyncio.get_running_loop()
    plain_call_at = loop.call_at

    def call_at(when: float, callback, *args, **kwargs):  # type: ignore[no-untyped-def]
        if when <= loop.time():
            return loop.call_soon(callback, *args, **kwargs)  # a Handle, as uvloop's
        return plain_call_at(when, callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_at", call_at)
    channel = FakeChannel()
    acks = AckCoalescer(stall_s=5.0)
    first, second = FakeMessage(channel, 1), FakeMessage(channel, 2)
    for m in (first, second):
        acks.received(m)  # type: ignore[arg-type]
    settle(acks, first)
    settle(acks, second)  # a flush is already due: the coalescer compares its due time
    await asyncio.wait_for(acks.drained(), 1)
    assert channel.frames == [(2, True)] or channel.frames == [(1, True), (2, True)]


@dataclass
class SlowChannel(FakeChannel):
    """Each ack frame takes a while to go out, as on a busy socket."""

    async def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        await asyncio.sleep(0.02)
        self.frames.append((delivery_tag, multiple))


async def test_no_ack_goes_out_for_a_tag_a_multiple_ack_already_covered() -> None:
    """A flush still sending stuck tags one by one, and a settle that frees the run: a second
    flush must not send a multiple-ack over tags the first is about to ack alone (the broker
    closes the channel on an unknown tag)."""
    channel = SlowChannel()
    acks = AckCoalescer(stall_s=0.01)
    messages = [FakeMessage(channel, tag) for tag in range(1, 7)]
    for m in messages:
        acks.received(m)  # type: ignore[arg-type]
    settle(acks, *messages[1:4])  # 2, 3, 4 wait behind 1
    await until(lambda: bool(channel.frames))  # the stall flush is sending them one by one
    settle(acks, messages[4], messages[0])  # 5, then the head
    settle(acks, messages[5])
    await asyncio.wait_for(acks.drained(), 2)
    await asyncio.sleep(0.1)  # any flush still sending has sent by now
    covered = 0
    for tag, multiple in channel.frames:
        assert tag > covered, channel.frames
        if multiple:
            covered = tag
    assert covered == 6, channel.frames
