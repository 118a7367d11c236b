"""Acknowledgements coalesced: one ``basic.ack multiple`` per run of settled deliveries.

Deliveries on a channel carry tags 1, 2, 3, ... When every delivery up to tag T is settled,
one ack with ``multiple=True`` on T settles them all: one frame (and one broker operation)
for a batch instead of one per message. The frontier only moves over tags that are known and
settled, in tag order: deliveries can reach the handler out of order, and a multiple ack must
never cover one still being handled. Messages nacked on their own are passed over. A delivery
that takes long (a slow retry publish) must not hold back those behind it, or the prefetch
window would fill: settled deliveries waiting longer than ``stall_s`` are acked one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import aiormq
from aio_pika.abc import AbstractIncomingMessage

MAX_TRACKED = 10_000  # entries per channel before already-acked ones are forgotten


@dataclass
class _Entry:
    message: AbstractIncomingMessage
    settled_at: float | None = None
    ack: bool = False
    acked_alone: bool = False
    sent: asyncio.Future[None] | None = None

    def release(self) -> None:
        """Let the handler waiting on this ack return."""
        if self.sent is not None and not self.sent.done():
            self.sent.set_result(None)


@dataclass
class _Lane:
    """The deliveries of one AMQP channel not yet passed by the ack frontier.

    The lane holds its channel, so the channel's id (the lane's key) cannot be reused by a
    later channel while the lane exists; the lane goes once its channel is closed.
    """

    channel: aiormq.abc.AbstractChannel
    frontier: int = 0  # every tag up to here is settled and its ack (if any) sent
    entries: dict[int, _Entry] = field(default_factory=dict)


def _channel_of(message: AbstractIncomingMessage) -> aiormq.abc.AbstractChannel | None:
    """The AMQP channel a delivery came on; None once that channel is gone."""
    try:
        channel = message.channel
    except aiormq.exceptions.ChannelInvalidStateError:
        return None
    return None if channel.is_closed else channel


class AckCoalescer:
    """Tracks deliveries per channel and acks settled runs with one frame each."""

    def __init__(self, stall_s: float = 0.2) -> None:
        self._lanes: dict[int, _Lane] = {}
        self._stall_s = stall_s
        self._scheduled = False
        self._flushing: set[asyncio.Task[None]] = set()
        self.frames = 0  # ack frames sent, for tests and metrics

    def received(self, message: AbstractIncomingMessage) -> None:
        """Register a delivery as soon as the handler sees it."""
        channel = _channel_of(message)
        if channel is None or message.delivery_tag is None:
            return
        lane = self._lanes.get(id(channel))
        if lane is None or lane.channel is not channel:
            lane = self._lanes[id(channel)] = _Lane(channel)
        lane.entries[message.delivery_tag] = _Entry(message)

    async def ack(self, message: AbstractIncomingMessage) -> None:
        """Settle with an ack and wait until the frame carrying it has been sent.

        Waiting keeps shutdown honest (a handler returns only once its ack is on the wire);
        a message the coalescer does not know (no tag) is acked on its own.
        """
        entry = self._settle(message, ack=True)
        if entry is None:
            if _channel_of(message) is not None:  # a closed channel's deliveries come back
                with contextlib.suppress(ConnectionError, aiormq.exceptions.AMQPError):
                    await message.ack()
            return
        entry.sent = asyncio.get_running_loop().create_future()
        await entry.sent

    def settled_elsewhere(self, message: AbstractIncomingMessage) -> None:
        """The message was nacked on its own: the frontier passes over it."""
        self._settle(message, ack=False)

    def _settle(self, message: AbstractIncomingMessage, ack: bool) -> _Entry | None:
        channel = _channel_of(message)
        lane = self._lanes.get(id(channel)) if channel is not None else None
        if lane is not None and lane.channel is not channel:
            lane = None
        entry = lane.entries.get(message.delivery_tag or -1) if lane else None
        if entry is None:
            return None
        entry.settled_at, entry.ack = time.monotonic(), ack
        self._schedule(0)
        return entry

    def _schedule(self, delay: float) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_later(delay, self._start_flush)

    def _start_flush(self) -> None:
        self._scheduled = False
        task = asyncio.ensure_future(self.flush())
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def flush(self) -> None:
        """Send the frames for everything settled so far."""
        now = time.monotonic()
        for key, lane in list(self._lanes.items()):
            if lane.channel.is_closed:
                del self._lanes[key]  # its unacked deliveries come back on a new channel
                for gone in lane.entries.values():
                    gone.release()
                continue
            run: list[_Entry] = []
            while (head := lane.entries.get(lane.frontier + 1)) and head.settled_at:
                run.append(lane.entries.pop(lane.frontier + 1))
                lane.frontier += 1
            last = next((e for e in reversed(run) if e.ack and not e.acked_alone), None)
            stuck = [
                e
                for e in lane.entries.values()
                if e.settled_at
                and e.ack
                and not e.acked_alone
                and now - e.settled_at > self._stall_s
            ]
            for entry in stuck:
                entry.acked_alone = True  # the frontier will pass it later without a frame
            try:
                if last is not None:
                    self.frames += 1
                    await last.message.ack(multiple=True)
                for entry in stuck:
                    self.frames += 1
                    await entry.message.ack()
            except (ConnectionError, RuntimeError, aiormq.exceptions.AMQPError):
                # The channel went away: the broker redelivers what was not acked, and the
                # inbox absorbs what had already taken effect.
                self._lanes.pop(key, None)
            finally:
                for entry in (*run, *stuck):
                    entry.release()
            if len(lane.entries) > MAX_TRACKED:
                # A tag that never reached the handler holds the frontier for good: forget
                # what is already acked, so memory stays bounded (acks go one by one from here).
                for tag in [t for t, e in lane.entries.items() if e.acked_alone]:
                    del lane.entries[tag]
            if any(e.settled_at and not e.acked_alone for e in lane.entries.values()):
                self._schedule(self._stall_s)  # settled ones wait behind a slow one
