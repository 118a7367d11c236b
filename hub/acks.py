"""Acknowledgements coalesced: one ``basic.ack multiple`` per run of settled deliveries.

Deliveries on a channel carry increasing tags. When every delivery up to tag T is settled,
one ack with ``multiple=True`` on T settles them all: one frame (and one broker operation)
for a whole batch instead of one per message. Messages handed back with a nack, or parked and
then acked, are settled individually and just skipped over. A delivery that takes long (a
slow retry publish) must not hold back the acks behind it, or the prefetch window would fill:
settled deliveries waiting behind one older than ``stall_s`` are acked one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field

import aiormq
from aio_pika.abc import AbstractIncomingMessage


@dataclass
class _Entry:
    message: AbstractIncomingMessage
    since: float
    settled: bool = False
    ack: bool = False
    sent: asyncio.Future[None] | None = None


@dataclass
class _Lane:
    """The deliveries of one AMQP channel, in tag order."""

    pending: deque[int] = field(default_factory=deque)
    entries: dict[int, _Entry] = field(default_factory=dict)


def _channel_key(message: AbstractIncomingMessage) -> int | None:
    """Which AMQP channel a delivery came on; None once that channel is gone."""
    try:
        channel = message.channel
    except aiormq.exceptions.ChannelInvalidStateError:
        return None
    return None if channel.is_closed else id(channel)


class AckCoalescer:
    """Tracks deliveries per channel and acks settled runs with one frame each."""

    def __init__(self, stall_s: float = 0.2) -> None:
        self._lanes: dict[int, _Lane] = {}
        self._stall_s = stall_s
        self._scheduled = False
        self._flushing: set[asyncio.Task[None]] = set()
        self.frames = 0  # ack frames sent, for tests and metrics

    def received(self, message: AbstractIncomingMessage) -> None:
        """Register a delivery as it arrives (before any await), so tags stay in order."""
        tag = message.delivery_tag
        if tag is None:
            return
        key = _channel_key(message)
        if key is None:
            return
        lane = self._lanes.setdefault(key, _Lane())
        lane.pending.append(tag)
        lane.entries[tag] = _Entry(message, time.monotonic())

    async def ack(self, message: AbstractIncomingMessage) -> None:
        """Settle with an ack and wait until the coalesced frame carrying it has been sent.

        Waiting keeps shutdown honest (a handler returns only once its ack is on the wire);
        a message the coalescer does not know (no tag) is acked on its own.
        """
        entry = self._settle(message, ack=True)
        if entry is None:
            if _channel_key(message) is not None:  # a closed channel's deliveries come back
                with contextlib.suppress(ConnectionError, aiormq.exceptions.AMQPError):
                    await message.ack()
            return
        entry.sent = asyncio.get_running_loop().create_future()
        await entry.sent

    def settled_elsewhere(self, message: AbstractIncomingMessage) -> None:
        """The message was nacked on its own: only skip it when coalescing."""
        self._settle(message, ack=False)

    def _settle(self, message: AbstractIncomingMessage, ack: bool) -> _Entry | None:
        key = _channel_key(message)
        lane = self._lanes.get(key) if key is not None else None
        entry = lane.entries.get(message.delivery_tag or -1) if lane else None
        if entry is None:
            return None
        entry.settled, entry.ack = True, ack
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
            if lane.pending and _channel_key(lane.entries[lane.pending[0]].message) is None:
                del self._lanes[key]  # its unacked deliveries come back on a new channel
                for entry in lane.entries.values():
                    if entry.sent is not None and not entry.sent.done():
                        entry.sent.set_result(None)
                continue
            run: list[_Entry] = []
            while lane.pending and lane.entries[lane.pending[0]].settled:
                run.append(lane.entries.pop(lane.pending.popleft()))
            acked = [e for e in run if e.ack]
            stuck: list[_Entry] = []
            if lane.pending and now - lane.entries[lane.pending[0]].since > self._stall_s:
                for tag in [t for t in lane.pending if lane.entries[t].settled]:
                    lane.pending.remove(tag)
                    stuck.append(lane.entries.pop(tag))
            try:
                if acked:
                    self.frames += 1
                    await acked[-1].message.ack(multiple=True)
                for entry in stuck:
                    if entry.ack:
                        self.frames += 1
                        await entry.message.ack()
            except (ConnectionError, RuntimeError, aiormq.exceptions.AMQPError):
                # The channel went away: the broker redelivers what was not acked, and the
                # inbox absorbs what had already taken effect.
                self._lanes.pop(key, None)
            finally:
                for entry in (*run, *stuck):
                    if entry.sent is not None and not entry.sent.done():
                        entry.sent.set_result(None)
            if any(lane.entries[t].settled for t in lane.pending):
                self._schedule(self._stall_s)  # settled ones wait behind a slow one
