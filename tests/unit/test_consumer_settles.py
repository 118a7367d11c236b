"""Every delivery the consumer takes is settled, even when routing fails unexpectedly."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiormq.abc import DeliveredMessage
from amqp_fakes import FakeChannel
from pamqp.commands import Basic
from pamqp.header import ContentHeader

from hub.bus import Envelope, Publisher
from hub.consumer import InboundConsumer
from hub.errors import SchemaViolation, TransientError
from hub.faults import FaultHandler
from hub.metrics import Metrics
from hub.topology import Names


class RecordingPublisher(Publisher):
    """The real Publisher's port, recording instead of sending."""

    def __init__(self) -> None:
        super().__init__("amqp://unused", 1.0)
        self.sent: list[Envelope] = []

    async def publish(self, envelope: Envelope) -> None:
        self.sent.append(envelope)


@dataclass
class Valid:
    """Stands in for the validator: every body is a valid product."""

    inbound: Any

    def validate(self, body: bytes, routing_key: str, reply_to: str | None = None) -> Any:
        return self.inbound


class BrokenRouter:
    def hands_to_hub(self, source: str, type: str) -> bool:
        return False

    def envelopes(self, inbound: Any) -> list[Envelope]:
        raise TypeError("a bug in routing")


class Event:
    id = "e-1"
    source = "erp"
    type = "product.upserted"


class Inbound:
    event = Event()


async def test_an_unexpected_routing_error_is_retried_and_the_delivery_acked() -> None:
    channel = FakeChannel()
    publisher = RecordingPublisher()
    metrics = Metrics()
    consumer = InboundConsumer(
        Valid(Inbound()),  # type: ignore[arg-type]
        BrokenRouter(),  # type: ignore[arg-type]
        {},
        None,  # type: ignore[arg-type]  # never reached
        FaultHandler(publisher, Names("t."), metrics),
        metrics,
        "t.hub.in",
    )
    delivery = DeliveredMessage(
        delivery=Basic.Deliver(
            consumer_tag="c", delivery_tag=1, routing_key="erp.product.upserted"
        ),
        header=ContentHeader(properties=Basic.Properties(message_id="m-1")),
        body=b"{}",
        channel=channel,  # type: ignore[arg-type]
    )
    consumer(delivery)
    await asyncio.wait_for(consumer.drained(), 2)
    assert [e.headers["x-hub-error-type"] for e in publisher.sent] == [TransientError.error_type]
    assert publisher.sent[0].exchange == Names("t.").retry_queue(1)
    assert channel.frames == [(1, True)]


class UnconfirmedPublisher(RecordingPublisher):
    """The broker never confirms what the hub publishes (parking and retrying included)."""

    async def publish(self, envelope: Envelope) -> None:
        raise TransientError("no confirm from the broker")


class Invalid:
    """Every body fails its schema: the message is to be parked."""

    def validate(self, body: bytes, routing_key: str, reply_to: str | None = None) -> Any:
        raise SchemaViolation("not a product")


def _unparkable(channel: FakeChannel) -> tuple[InboundConsumer, DeliveredMessage]:
    metrics = Metrics()
    consumer = InboundConsumer(
        Invalid(),  # type: ignore[arg-type]
        BrokenRouter(),  # type: ignore[arg-type]  # never reached
        {},
        None,  # type: ignore[arg-type]  # never reached
        FaultHandler(UnconfirmedPublisher(), Names("t."), metrics),
        metrics,
        "t.hub.in",
    )
    delivery = DeliveredMessage(
        delivery=Basic.Deliver(consumer_tag="c", delivery_tag=7, routing_key="erp.product.x"),
        header=ContentHeader(properties=Basic.Properties(message_id="m-7")),
        body=b"{}",
        channel=channel,  # type: ignore[arg-type]
    )
    return consumer, delivery


async def test_a_message_that_cannot_be_parked_goes_back_to_the_broker_unacked() -> None:
    channel = FakeChannel()
    consumer, delivery = _unparkable(channel)
    consumer(delivery)
    await asyncio.wait_for(consumer.drained(), 2)
    assert channel.nacks == [(7, True)]  # requeued: the broker delivers it again later
    assert channel.frames == []  # and never acked, alone or by a later multiple ack
    assert not channel.is_closed


async def test_when_the_requeue_fails_too_the_channel_is_closed_so_no_ack_can_cover_it() -> None:
    channel = FakeChannel(nack_fails=True)
    consumer, delivery = _unparkable(channel)
    consumer(delivery)
    await asyncio.wait_for(consumer.drained(), 2)
    assert channel.nacks == []
    assert channel.frames == []
    assert channel.is_closed  # closing hands every unacked delivery back to the broker
