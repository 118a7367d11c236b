"""Many publishes as one write: AMQP frames for a batch of messages, sent under one channel lock.

aiormq's ``basic_publish`` costs a lock round, two futures, a timeout scope and a trip through
the writer task per message; fan-out publishes thousands per second, so the hub encodes a
whole batch itself, registers one confirmation per delivery tag exactly as aiormq does (so
aiormq's reader settles acks, nacks, returns and channel loss as usual), and hands the writer
one payload. This leans on aiormq's channel fields (pinned to 7.2 in pyproject); the
integration tests publish through it on the real broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import lru_cache
from typing import Protocol

import aiormq
from aiormq.abc import ChannelFrame
from pamqp import frame as amqp_frame
from pamqp.body import ContentBody
from pamqp.commands import Basic
from pamqp.header import ContentHeader


class Outgoing(Protocol):
    """What the wire needs of a message (``hub.bus.Envelope`` has it)."""

    @property
    def message_id(self) -> str: ...  # noqa: D102 - field
    @property
    def exchange(self) -> str: ...  # noqa: D102 - field
    @property
    def routing_key(self) -> str: ...  # noqa: D102 - field
    @property
    def body(self) -> bytes: ...  # noqa: D102 - field

    def properties(self) -> Basic.Properties:
        """The message's AMQP properties."""
        ...


@lru_cache(maxsize=4096)
def _method_frame(channel_number: int, exchange: str, routing_key: str) -> bytes:
    """A mandatory basic.publish frame: the same few destinations recur, so encode each once."""
    publish = Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=True)
    return amqp_frame.marshal(publish, channel_number)


def encode(message: Outgoing, channel_number: int, max_body_frame: int) -> bytes:
    """Method, header and body frames of one message."""
    body = message.body
    header = ContentHeader(0, len(body), message.properties())
    parts = [
        _method_frame(channel_number, message.exchange, message.routing_key),
        amqp_frame.marshal(header, channel_number),
    ]
    for start in range(0, len(body), max_body_frame):
        chunk = ContentBody(body[start : start + max_body_frame])
        parts.append(amqp_frame.marshal(chunk, channel_number))
    return b"".join(parts)


async def send(
    channel: aiormq.abc.AbstractChannel, messages: Sequence[Outgoing]
) -> tuple[int, list[asyncio.Future[object]]]:
    """Write all messages at once; one future per message settles with the broker's answer.

    The futures fail (as aiormq's own would) on a nack, a return (unroutable) or channel loss.
    Message ``i`` has delivery tag ``first + 1 + i``, where ``first`` is returned too.
    """
    ch = channel
    if not isinstance(ch, aiormq.Channel) or not ch.publisher_confirms:
        raise RuntimeError("batch publishing needs an aiormq channel with publisher confirms")
    async with ch.lock:
        first_tag = ch.delivery_tag
        futures: list[asyncio.Future[object]] = []
        payload: list[bytes] = []
        try:
            for message in messages:
                ch.delivery_tag += 1
                future = ch.create_future()
                ch.confirmations[ch.delivery_tag] = future
                ch.message_id_delivery_tag[message.message_id] = ch.delivery_tag
                futures.append(future)
                payload.append(encode(message, ch.number, ch.max_content_size))
            written = ch.create_future()
            await ch.write_queue.put(
                ChannelFrame(payload=b"".join(payload), should_close=False, drain_future=written)
            )
        except BaseException:
            # Nothing reached the writer: give the delivery tags back while holding the lock.
            for tag in range(first_tag + 1, ch.delivery_tag + 1):
                ch.confirmations.pop(tag, None)
            for tag, message in enumerate(messages, start=first_tag + 1):
                if ch.message_id_delivery_tag.get(message.message_id) == tag:
                    del ch.message_id_delivery_tag[message.message_id]
            ch.delivery_tag = first_tag
            for future in futures:
                future.cancel()
            raise
        await written
    return first_tag, futures


def forget(channel: aiormq.abc.AbstractChannel, messages: Sequence[Outgoing], first: int) -> None:
    """Drop the message-id index entries of settled publishes (aiormq keeps them for returns);
    an entry a later publish of the same id has taken over stays."""
    if isinstance(channel, aiormq.Channel):
        index = channel.message_id_delivery_tag
        for tag, message in enumerate(messages, start=first + 1):
            if index.get(message.message_id) == tag:
                del index[message.message_id]
