"""Acknowledgements coalesced: one ``basic.ack multiple`` per run of settled deliveries.

Deliveries on a channel carry tags 1, 2, 3, ... When every delivery up to tag T is settled,
one ack with ``multiple=True`` on T settles them all: one frame (and one broker operation)
for a batch instead of one per message. The frontier only moves over tags that are known and
settled, in tag order: deliveries can reach the handler out of order, and a multiple ack must
never cover one still being handled. Messages nacked on their own are passed over. A delivery
that takes long (a slow retry publish) must not hold back those behind it, or the prefetch
window would fill: settled deliveries waiting longer than ``stall_s`` are acked one by one.

Settling is a plain call (no task or future per message: the hub settles a whole batch at
once); ``drained`` waits until every delivery received has been settled and its frame sent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiormq
from aiormq.abc import AbstractChannel, DeliveredMessage

MAX_TRACKED = 10_000  # entries per channel before already-acked ones are forgotten


@dataclass
class _Entry:
    settled_at: float | None = None
    ack: bool = False
    acked_alone: bool = False
    done: bool = False  # settled and, if acked, its frame sent


@dataclass
class _Lane:
    """The deliveries of one AMQP channel not yet passed by the ack frontier.

    The lane holds its channel, so the channel's id (the lane's key) cannot be reused by a
    later channel while the lane exists; the lane goes once its channel is closed.
    """

    channel: AbstractChannel
    frontier: int = 0  # every tag up to here is settled and its ack (if any) sent
    entries: dict[int, _Entry] = field(default_factory=dict)


def _channel_of(message: DeliveredMessage) -> AbstractChannel | None:
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
        # The next flush, if one is due, and when (kept here: an event loop may hand back a
        # plain Handle without ``when()`` for a time already passed, as uvloop does).
        self._timer: asyncio.Handle | None = None
        self._timer_due = 0.0
        self._flush_lock = asyncio.Lock()
        self._flushing: set[asyncio.Task[None]] = set()
        self._open = 0  # deliveries received and not yet done
        self._idle = asyncio.Event()
        self._idle.set()
        self.frames = 0  # ack frames sent, for tests and metrics

    def received(self, message: DeliveredMessage) -> None:
        """Register a delivery as soon as the hub sees it."""
        channel = _channel_of(message)
        if channel is None or message.delivery_tag is None:
            return
        lane = self._lanes.get(id(channel))
        if lane is None or lane.channel is not channel:
            lane = self._lanes[id(channel)] = _Lane(channel)
        lane.entries[message.delivery_tag] = _Entry()
        self._open += 1
        self._idle.clear()

    def settle(self, message: DeliveredMessage, ack: bool = True) -> None:
        """Settle with an ack (sent coalesced, soon), or as nacked on its own (``ack=False``).

        A delivery the coalescer does not know (no tag, or its channel is gone) is acked on
        its own if its channel is still open; a closed channel's deliveries come back anyway.
        """
        channel = _channel_of(message)
        lane = self._lanes.get(id(channel)) if channel is not None else None
        if lane is not None and lane.channel is not channel:
            lane = None
        tag = message.delivery_tag
        entry = lane.entries.get(tag) if lane is not None and tag is not None else None
        if entry is None:
            if ack and channel is not None and tag is not None:
                self._spawn(self._ack_alone(channel, tag))
            elif channel is None and self._lanes:
                self._schedule(0)  # its channel closed: the flush drops that channel's lane
            return
        entry.settled_at, entry.ack = time.monotonic(), ack
        if not ack:
            self._finish(entry)  # no frame of its own: the frontier passes over it
        self._schedule(0)

    async def drained(self) -> None:
        """Wait until every delivery received is settled and its ack frame sent."""
        await self._idle.wait()

    async def _ack_alone(self, channel: AbstractChannel, tag: int) -> None:
        try:
            self.frames += 1
            await channel.basic_ack(tag)
        except (ConnectionError, RuntimeError, aiormq.exceptions.AMQPError):
            pass  # the channel went away: the broker redelivers, the inbox absorbs it

    def _finish(self, entry: _Entry) -> None:
        if not entry.done:
            entry.done = True
            self._open -= 1
            if not self._open:
                self._idle.set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    def _schedule(self, delay: float) -> None:
        """Flush after ``delay``, or sooner if a flush is already due sooner.

        A flush already due later (the stall timer, waiting on a slow delivery) must not hold
        back one asked for now: once the slow delivery settles, the run behind it goes at once.
        """
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        if self._timer is not None:
            if self._timer_due <= due:
                return
            self._timer.cancel()
        self._timer, self._timer_due = loop.call_at(due, self._start_flush), due

    def _start_flush(self) -> None:
        self._timer = None
        self._spawn(self.flush())

    async def flush(self) -> None:
        """Send the frames for everything settled so far, one flush at a time.

        Two at once could interleave: one acking stuck tags alone while the other's
        multiple-ack already covered them, and the broker closes a channel on an ack for an
        unknown tag.
        """
        async with self._flush_lock:
            await self._flush()

    async def _flush(self) -> None:
        now = time.monotonic()
        for key, lane in list(self._lanes.items()):
            if lane.channel.is_closed:
                del self._lanes[key]  # its unacked deliveries come back on a new channel
                for gone in lane.entries.values():
                    self._finish(gone)
                continue
            run: list[tuple[int, _Entry]] = []
            while (head := lane.entries.get(lane.frontier + 1)) and head.settled_at:
                run.append((lane.frontier + 1, lane.entries.pop(lane.frontier + 1)))
                lane.frontier += 1
            last = next((t for t, e in reversed(run) if e.ack and not e.acked_alone), None)
            stuck = [
                (t, e)
                for t, e in lane.entries.items()
                if e.settled_at
                and e.ack
                and not e.acked_alone
                and now - e.settled_at > self._stall_s
            ]
            for _, entry in stuck:
                entry.acked_alone = True  # the frontier will pass it later without a frame
            try:
                if last is not None:
                    self.frames += 1
                    await lane.channel.basic_ack(last, multiple=True)
                for tag, _ in stuck:
                    self.frames += 1
                    await lane.channel.basic_ack(tag)
            except (ConnectionError, RuntimeError, aiormq.exceptions.AMQPError):
                # The channel went away: the broker redelivers what was not acked, and the
                # inbox absorbs what had already taken effect.
                self._lanes.pop(key, None)
                for gone in lane.entries.values():
                    self._finish(gone)
            finally:
                for _, entry in (*run, *stuck):
                    self._finish(entry)
            if len(lane.entries) > MAX_TRACKED:
                # A tag that never reached the handler holds the frontier for good: forget
                # what is already acked, so memory stays bounded (acks go one by one from here).
                for tag in [t for t, e in lane.entries.items() if e.acked_alone]:
                    del lane.entries[tag]
            if any(e.settled_at and not e.acked_alone for e in lane.entries.values()):
                self._schedule(self._stall_s)  # settled ones wait behind a slow one
