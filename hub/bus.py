"""Confirmed publishing: persistent, mandatory, unroutable = error, many in flight at once."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from pamqp.commands import Basic

from hub import wire
from hub.errors import PublishNotConfirmed


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
    # Its row's id when the handler that made it already wrote it to the outbox (in the same
    # round trip as its own last write), so the committer does not write it again.
    outbox_id: int | None = None

    def in_outbox(self, outbox_id: int) -> Envelope:
        """This message as written to the outbox under ``outbox_id`` (envelopes are frozen;
        the constructor costs 60% of ``dataclasses.replace``, per message of a batch)."""
        return Envelope(
            message_id=self.message_id,
            exchange=self.exchange,
            routing_key=self.routing_key,
            message_type=self.message_type,
            source=self.source,
            body=self.body,
            correlation_id=self.correlation_id,
            reply_to=self.reply_to,
            headers=self.headers,
            caused_at=self.caused_at,
            outbox_id=outbox_id,
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

    async def queue_depth(self, queue: str) -> int | None:
        """Messages waiting in ``queue`` (None: not connected, or no such queue)."""
        state = await self.queue_state(queue)
        return None if state is None else state[0]

    async def queue_state(self, queue: str) -> tuple[int, int] | None:
        """Messages waiting in ``queue`` and its consumers (None: not connected, or no such
        queue), asked on a channel of its own: a passive declare of a missing queue closes its
        channel."""
        if not self.connected or self._connection is None:
            return None
        try:
            async with self._connection.channel(publisher_confirms=False) as channel:
                declared = await channel.declare_queue(queue, passive=True)
        except (aiormq.exceptions.AMQPError, aio_pika.exceptions.AMQPException, OSError):
            return None
        except RuntimeError:  # the connection is reconnecting (ChannelInvalidStateError)
            return None
        result = declared.declaration_result
        if result.message_count is None or result.consumer_count is None:
            return None
        return int(result.message_count), int(result.consumer_count)

    async def publish(self, envelope: Envelope) -> None:
        """Publish one message and wait for the broker's confirm; anything else raises."""
        await self.publish_many([envelope])

    async def publish_many(self, envelopes: Sequence[Envelope]) -> None:
        """Publish all and wait for every confirm; the first failure raises."""
        for error in await self.publish_each(envelopes):
            if error is not None:
                raise error

    async def publish_each(self, envelopes: Sequence[Envelope]) -> list[PublishNotConfirmed | None]:
        """Publish all in one write; per message, None once confirmed, else why it was not.

        Straight onto the confirmed channel underneath aio-pika (``hub.wire``): this is the
        hot path of every fan-out.
        """
        if not envelopes:
            return []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        if not self.connected:  # fail now rather than wait for a reconnect inside a transaction
            why = "not connected" if self._connection is None else "reconnecting"
            return [PublishNotConfirmed(f"publisher is {why}")] * len(envelopes)
        try:
            async with asyncio.timeout_at(deadline):
                channel = await self.channel.get_underlay_channel()
                batch = await wire.send(channel, envelopes)
        except TimeoutError:
            return [PublishNotConfirmed(f"no confirm within {self._timeout_s}s")] * len(envelopes)
        except PublishNotConfirmed as exc:
            return [exc] * len(envelopes)
        except (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
            return [PublishNotConfirmed(f"publish failed: {exc!r}")] * len(envelopes)
        futures = batch.futures
        try:
            _done, pending = await asyncio.wait(futures, timeout=max(0.0, deadline - loop.time()))
            for future in pending:
                future.cancel()  # a late confirm then finds it settled and is ignored quietly
            return [
                _verdict(e, f, self._timeout_s) for e, f in zip(envelopes, futures, strict=True)
            ]
        finally:
            batch.close()


def _verdict(
    envelope: Envelope, future: asyncio.Future[object], timeout_s: float
) -> PublishNotConfirmed | None:
    """What the broker said about one publish, as the hub's error (None: confirmed)."""
    if future.cancelled():
        return PublishNotConfirmed(f"no confirm within {timeout_s}s")
    exc = future.exception()
    if isinstance(exc, aiormq.exceptions.PublishError):
        return PublishNotConfirmed(
            f"broker returned {envelope.routing_key!r} on {envelope.exchange!r}: unroutable",
            refused=True,
        )
    if isinstance(exc, ValueError):  # hub.wire could not encode it
        return PublishNotConfirmed(f"publish failed: {exc}", refused=True)
    if isinstance(exc, aiormq.exceptions.DeliveryError):
        return PublishNotConfirmed("broker did not ack: Nack")
    if exc is not None:
        return PublishNotConfirmed(f"publish failed: {exc!r}")
    result = future.result()
    if not isinstance(result, Basic.Ack):
        return PublishNotConfirmed(f"broker did not ack: {type(result).__name__}")
    return None
