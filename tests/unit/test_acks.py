"""Ack coalescing: one multiple-ack per settled run, never covering an unsettled delivery."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from hub.acks import AckCoalescer


@dataclass
class FakeChannel:
    is_closed: bool = False
    frames: list[tuple[int, bool]] = field(default_factory=list)


@dataclass
class FakeMessage:
    """The slice of aio-pika's IncomingMessage the coalescer uses; frames land on the channel."""

    channel: FakeChannel
    delivery_tag: int

    async def ack(self, multiple: bool = False) -> None:
        self.channel.frames.append((self.delivery_tag, multiple))


async def test_a_settled_run_is_acked_with_one_frame() -> None:
    channel = FakeChannel()
    acks = AckCoalescer()
    messages = [FakeMessage(channel, tag) for tag in range(1, 101)]
    for m in messages:
        acks.received(m)  # type: ignore[arg-type]
    await asyncio.gather(*(acks.ack(m) for m in reversed(messages)))  # type: ignore[arg-type]
    assert channel.frames[-1] == (100, True)
    assert len(channel.frames) < 10


async def test_an_unsettled_delivery_is_never_covered_and_does_not_stall_the_rest() -> None:
    channel = FakeChannel()
    acks = AckCoalescer(stall_s=0.05)
    slow, *rest = [FakeMessage(channel, tag) for tag in range(1, 6)]
    for m in (slow, *rest):
        acks.received(m)  # type: ignore[arg-type]
    await asyncio.wait_for(
        asyncio.gather(*(acks.ack(m) for m in rest)),  # type: ignore[arg-type]
        timeout=2,
    )
    # Tags 2..5 went out one by one after the stall, never as a multiple-ack (it would cover 1).
    assert sorted(channel.frames) == [(2, False), (3, False), (4, False), (5, False)]
    await acks.ack(slow)  # type: ignore[arg-type]
    assert channel.frames[-1] == (1, True)


async def test_nacked_delivery_is_skipped_over() -> None:
    channel = FakeChannel()
    acks = AckCoalescer()
    first, nacked, last = (FakeMessage(channel, t) for t in (1, 2, 3))
    for m in (first, nacked, last):
        acks.received(m)  # type: ignore[arg-type]
    acks.settled_elsewhere(nacked)  # type: ignore[arg-type]
    await asyncio.gather(acks.ack(first), acks.ack(last))  # type: ignore[arg-type]
    assert channel.frames == [(3, True)]


async def test_deliveries_reaching_the_handler_out_of_order_are_never_covered_early() -> None:
    channel = FakeChannel()
    acks = AckCoalescer(stall_s=0.05)
    first, second = FakeMessage(channel, 1), FakeMessage(channel, 2)
    acks.received(second)  # type: ignore[arg-type]  # tag 2 reaches the handler first
    await acks.ack(second)  # type: ignore[arg-type]
    # Tag 1 is not even registered yet: 2 may only be acked on its own, never as multiple.
    assert channel.frames == [(2, False)]
    acks.received(first)  # type: ignore[arg-type]
    await acks.ack(first)  # type: ignore[arg-type]
    assert channel.frames == [(2, False), (1, True)]


async def test_a_tag_that_never_arrives_keeps_memory_bounded(monkeypatch) -> None:
    import hub.acks

    monkeypatch.setattr(hub.acks, "MAX_TRACKED", 50)
    channel = FakeChannel()
    acks = AckCoalescer(stall_s=0.0)
    messages = [FakeMessage(channel, tag) for tag in range(2, 200)]  # tag 1 never arrives
    for m in messages:
        acks.received(m)  # type: ignore[arg-type]
    await asyncio.gather(*(acks.ack(m) for m in messages))  # type: ignore[arg-type]
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
    await asyncio.gather(*(acks.ack(m) for m in first))  # type: ignore[arg-type]
    old.is_closed = True
    new = FakeChannel()
    slow, done = FakeMessage(new, 1), FakeMessage(new, 2)
    for m in (slow, done):
        acks.received(m)  # type: ignore[arg-type]
    await acks.flush()
    assert len(acks._lanes) == 1  # the closed channel's lane is gone
    task = asyncio.ensure_future(acks.ack(done))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    assert (2, True) not in new.frames  # would cover tag 1, still being handled
    await acks.ack(slow)  # type: ignore[arg-type]
    await asyncio.wait_for(task, 2)
    assert new.frames[-1] in ((2, True), (2, False))
