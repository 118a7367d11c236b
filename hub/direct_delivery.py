"""hub.in's deliveries handed to the consumer in aiormq's channel reader, without a task each.

aiormq runs every consumer callback in a task of its own, registered in two future stores with
a done callback each: without them the hub's stock maximum rose 9-16% (3,370-4,077 to
3,907-4,432 levels/s in three alternating pairs, bench/findings.md). The hub's consumer takes
a delivery synchronously and settles it later (``hub.consumer``), so it needs no task:
``install`` replaces aiormq's delivery step (pinned to 7.2 in pyproject, like
``hub.amqp_frames``) so that a ``Direct`` consumer is called right there; any other consumer
gets aiormq's task as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import aiormq.channel
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

log = logging.getLogger(__name__)


class Direct:
    """A consumer that takes each delivery at once and never awaits (see the module)."""

    def __init__(self, take: Callable[[DeliveredMessage], None]) -> None:
        self.take = take

    async def __call__(self, message: DeliveredMessage) -> None:
        """aiormq's way, should ``install`` not be in place."""
        self.take(message)


async def _on_deliver_frame(self: Any, frame: Basic.Deliver) -> None:
    """aiormq's ``Channel._on_deliver_frame``, calling a ``Direct`` consumer in place."""
    header = await self._Channel__get_content_header()
    message = await self._read_content(frame, header)
    if frame.consumer_tag is None:
        log.warning("Frame %r has no consumer tag", frame)
        return
    consumer = self.consumers.get(frame.consumer_tag)
    direct = getattr(consumer, "__wrapped__", None)  # basic_consume wraps what it is given
    if isinstance(direct, Direct):
        try:
            direct.take(message)
        except Exception:  # the reader must go on reading whatever one delivery did
            log.exception("taking a delivery failed")
    elif consumer is not None:
        task = self.create_task(consumer(message))
        task.add_done_callback(self._on_consumer_done)


def install() -> None:
    """Deliver to ``Direct`` consumers in place on every aiormq channel."""
    aiormq.channel.Channel._on_deliver_frame = _on_deliver_frame  # type: ignore[method-assign]
