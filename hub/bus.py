"""Confirmed publishing: persistent, mandatory, unroutable = error, many in flight at once."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from pamqp.commands import Basic

from hub.errors import PublishNotConfirmed
from schemas.envelope import CONTENT_TYPE


@dataclass(frozen=True)
class Envelope:
    """A message ready for the broker: where it goes and the bytes with their AMQP properties."""

    message_id: str
    exchange: str
    routing_key: str
    message_type: str
    source: str
    body: bytes
    correlation_id: str | None = None
    reply_to: str | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)
    # When the change this message reports happened (the cause's event time): the committer
    # measures stock propagation from it. Not stored in the outbox.
    caused_at: datetime | None = None

    def properties(self) -> Basic.Properties:
        """The AMQP properties alone, for the publisher's direct path."""
        return Basic.Properties(
            content_type=CONTENT_TYPE,
            delivery_mode=2,
            message_id=self.message_id,
            message_type=self.message_type,
            app_id=self.source,
            correlation_id=self.correlation_id,
            reply_to=self.reply_to,
            timestamp=datetime.now(UTC),
            headers=dict(self.headers) or None,
        )


class Publisher:
    """Publishes on its own connection (so broker flow control never stalls consumers)."""

    def __init__(self, url: str, timeout_s: float, name: str = "commerce-hub publisher") -> None:
        self._url = url
        self._name = name
        self._timeout_s = timeout_s
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None

    async def start(self) -> None:
        """Connect with publisher confirms; returned (unroutable) messages raise."""
        self._connection = await aio_pika.connect_robust(
            self._url, client_properties={"connection_name": self._name}
        )
        self._channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )

    async def stop(self) -> None:
        """Close the connection; in-flight publishes fail and their messages stay unacked."""
        if self._connection is not None:
            await self._connection.close()
        self._connection = None
        self._channel = None

    @property
    def connected(self) -> bool:
        """True while the publishing connection is open (False while it reconnects)."""
        c = self._connection
        return c is not None and not c.is_closed and c.connected.is_set()

    @property
    def channel(self) -> AbstractChannel:
        """The confirmed channel, for declaring topology."""
        if self._channel is None:
            raise PublishNotConfirmed("publisher is not connected")
        return self._channel

    async def publish(self, envelope: Envelope) -> None:
        """Publish one message and wait for the broker's confirm; anything else raises.

        Straight onto the confirmed channel underneath aio-pika (no Message object per
        publish): this is the hot path of every fan-out.
        """
        try:
            channel = await self.channel.get_underlay_channel()
            confirmation = await channel.basic_publish(
                envelope.body,
                exchange=envelope.exchange,
                routing_key=envelope.routing_key,
                properties=envelope.properties(),
                mandatory=True,
                timeout=self._timeout_s,
            )
        except aiormq.exceptions.DeliveryError as exc:
            raise PublishNotConfirmed(
                f"broker returned {envelope.routing_key!r} on {envelope.exchange!r}: unroutable"
            ) from exc
        except TimeoutError as exc:
            raise PublishNotConfirmed(f"no confirm within {self._timeout_s}s") from exc
        except (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
            raise PublishNotConfirmed(f"publish failed: {exc!r}") from exc
        if not isinstance(confirmation, Basic.Ack):
            raise PublishNotConfirmed(f"broker did not ack: {type(confirmation).__name__}")

    async def publish_many(self, envelopes: Sequence[Envelope]) -> None:
        """Publish all concurrently and wait for every confirm; the first failure raises."""
        if not envelopes:
            return
        if len(envelopes) == 1:
            await self.publish(envelopes[0])
            return
        results = await asyncio.gather(
            *(self.publish(e) for e in envelopes), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                if isinstance(result, PublishNotConfirmed):
                    raise result
                raise PublishNotConfirmed(f"publish failed: {result!r}") from result
