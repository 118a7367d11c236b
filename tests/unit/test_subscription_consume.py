"""Consuming hub.in again after a reopen is serialised, once per channel, and undone by a stop."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiormq.abc import DeliveredMessage

from hub.subscription import InboundSubscription


class Underlay:
    """The slice of an aiormq channel ``_consume`` uses; ``basic_consume`` waits for ``gate``."""

    def __init__(self) -> None:
        self.consumers: dict[str, Any] = {}
        self.on_consumer_cancel_callbacks: set[Any] = set()
        self.consumed: list[str] = []
        self.cancelled: list[str] = []
        self.gate = asyncio.Event()

    async def basic_consume(self, queue: str, consumer: Any, no_ack: bool = False) -> Any:
        await self.gate.wait()
        tag = f"ctag-{len(self.consumed) + 1}"
        self.consumed.append(queue)
        self.consumers[tag] = consumer
        return SimpleNamespace(consumer_tag=tag)

    async def basic_cancel(self, tag: str) -> None:
        self.cancelled.append(tag)
        self.consumers.pop(tag, None)


class RobustChannel:
    def __init__(self, underlay: Underlay) -> None:
        self.underlay = underlay

    async def get_underlay_channel(self) -> Underlay:
        return self.underlay


class Deliveries:
    def __call__(self, message: DeliveredMessage, /) -> None:
        raise AssertionError("no delivery expected")

    async def drained(self) -> None:
        return None


def subscription(underlay: Underlay) -> InboundSubscription:
    sub = InboundSubscription(
        "amqp://127.0.0.1/", "t.hub.in", {}, 8, Deliveries(), name="t", reconnect_interval_s=1
    )
    sub._channel = RobustChannel(underlay)  # type: ignore[assignment]
    return sub


async def test_a_stop_while_consuming_again_cancels_what_that_started() -> None:
    underlay = Underlay()
    sub = subscription(underlay)
    reopen = asyncio.create_task(sub._consume())
    await asyncio.sleep(0.01)  # the reopen waits in basic_consume
    sub._stopping = True  # what stop() sets first
    underlay.gate.set()
    await asyncio.wait_for(reopen, 2)
    assert underlay.consumed == ["t.hub.in"]
    assert underlay.cancelled == ["ctag-1"]
    assert underlay.consumers == {}


async def test_a_reopen_and_a_broker_cancel_racing_consume_once() -> None:
    underlay = Underlay()
    sub = subscription(underlay)
    both = asyncio.gather(sub._consume(), sub._consume())
    await asyncio.sleep(0.01)
    underlay.gate.set()
    await asyncio.wait_for(both, 2)
    assert underlay.consumed == ["t.hub.in"]  # the second found it consuming already
    assert list(underlay.consumers) == ["ctag-1"] and underlay.cancelled == []


async def test_after_a_stop_nothing_consumes_again() -> None:
    underlay = Underlay()
    underlay.gate.set()
    sub = subscription(underlay)
    sub._stopping = True
    await sub._consume()
    assert underlay.consumed == []
