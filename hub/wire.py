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
import struct
import time
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol

import aiormq
from aiormq.abc import ChannelFrame
from pamqp import encode as amqp_encode
from pamqp import frame as amqp_frame
from pamqp.commands import Basic

from schemas.envelope import CONTENT_TYPE


class Outgoing(Protocol):
    """What the wire needs of a message (``hub.bus.Envelope`` has it)."""

    @property
    def message_id(self) -> str: ...  # noqa: D102 - field
    @property
    def exchange(self) -> str: ...  # noqa: D102 - field
    @property
    def routing_key(self) -> str: ...  # noqa: D102 - field
    @property
    def message_type(self) -> str: ...  # noqa: D102 - field
    @property
    def source(self) -> str: ...  # noqa: D102 - field
    @property
    def body(self) -> bytes: ...  # noqa: D102 - field
    @property
    def correlation_id(self) -> str | None: ...  # noqa: D102 - field
    @property
    def reply_to(self) -> str | None: ...  # noqa: D102 - field
    @property
    def headers(self) -> Mapping[str, Any]: ...  # noqa: D102 - field


_FRAME_HEADER, _FRAME_BODY, _FRAME_END = 2, 3, b"\xce"  # method frames come from pamqp
_BASIC_CLASS = 60
# Basic property flags (AMQP 0-9-1, 4.2.6.1): the ones the hub sets.
_CONTENT_TYPE, _HEADERS, _DELIVERY_MODE = 0x8000, 0x2000, 0x1000
_CORRELATION_ID, _REPLY_TO, _MESSAGE_ID = 0x0400, 0x0200, 0x0080
_TIMESTAMP, _TYPE, _APP_ID = 0x0040, 0x0020, 0x0008
_FRAME_HEAD = struct.Struct(">BHI")
_HEADER_HEAD = struct.Struct(">HHQH")


def _short(value: str) -> bytes:
    raw = value.encode()
    if len(raw) > 255:
        raise ValueError(f"AMQP short string over 255 bytes: {value[:40]!r}...")
    return bytes((len(raw),)) + raw


_CONTENT_TYPE_VALUE = _short(CONTENT_TYPE)


def _frame(kind: int, channel_number: int, payload: bytes) -> bytes:
    return b"".join((_FRAME_HEAD.pack(kind, channel_number, len(payload)), payload, _FRAME_END))


@lru_cache(maxsize=4096)
def _method_frame(channel_number: int, exchange: str, routing_key: str) -> bytes:
    """A mandatory basic.publish frame: the same few destinations recur, so encode each once."""
    publish = Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=True)
    return amqp_frame.marshal(publish, channel_number)


def header_frame(message: Outgoing, channel_number: int, timestamp: int) -> bytes:
    """The content header: persistent, the hub's content type, ids, type, source and headers.

    Encoded directly (pamqp's generic property encoder costs more than the rest of a publish);
    a property test holds it byte-equal to pamqp's encoding.
    """
    flags = _CONTENT_TYPE | _DELIVERY_MODE | _MESSAGE_ID | _TIMESTAMP | _TYPE | _APP_ID
    parts = [_CONTENT_TYPE_VALUE]
    if message.headers:
        flags |= _HEADERS
        parts.append(amqp_encode.field_table(dict(message.headers)))
    parts.append(b"\x02")  # delivery mode: persistent
    if message.correlation_id:
        flags |= _CORRELATION_ID
        parts.append(_short(message.correlation_id))
    if message.reply_to:
        flags |= _REPLY_TO
        parts.append(_short(message.reply_to))
    parts.append(_short(message.message_id))
    parts.append(timestamp.to_bytes(8, "big"))
    parts.append(_short(message.message_type))
    parts.append(_short(message.source))
    head = _HEADER_HEAD.pack(_BASIC_CLASS, 0, len(message.body), flags)
    return _frame(_FRAME_HEADER, channel_number, head + b"".join(parts))


def encode(message: Outgoing, channel_number: int, max_body_frame: int, timestamp: int) -> bytes:
    """Method, header and body frames of one message."""
    body = message.body
    parts = [
        _method_frame(channel_number, message.exchange, message.routing_key),
        header_frame(message, channel_number, timestamp),
    ]
    for start in range(0, len(body), max_body_frame):
        parts.append(_frame(_FRAME_BODY, channel_number, body[start : start + max_body_frame]))
    return b"".join(parts)


class Batch:
    """The publishes of one ``send``: a future per message, settled by aiormq's reader.

    The futures are plain loop futures; one guard future per batch sits in aiormq's future
    store instead, so that closing the channel or connection (which rejects the store) fails
    every message of the batch, at a fraction of the cost of registering each one there. A
    message that could not be encoded has its future failed at once and no delivery tag.
    """

    def __init__(self, channel: aiormq.Channel, messages: Sequence[Outgoing]) -> None:
        self._channel = channel
        self._messages = messages
        self.tags: list[int | None] = [None] * len(messages)
        loop = asyncio.get_running_loop()
        self.futures: list[asyncio.Future[object]] = [loop.create_future() for _ in messages]
        self._guard = channel.create_future()
        self._guard.add_done_callback(self._fail_all)

    def _fail_all(self, guard: asyncio.Future[object]) -> None:
        error = (
            aiormq.exceptions.ChannelInvalidStateError("publish batch abandoned")
            if guard.cancelled()
            else guard.exception()
        )
        if error is None:  # closed normally by ``close``
            return
        for future in self.futures:
            if not future.done():
                future.set_exception(error)
                future.exception()  # retrieved: the caller may be gone by now

    def close(self) -> None:
        """Release the guard and drop the message-id index entries of this batch (aiormq keeps
        them for returns); an entry a later publish of the same id has taken over stays."""
        if not self._guard.done():
            self._guard.set_result(None)
        index = self._channel.message_id_delivery_tag
        for tag, message in zip(self.tags, self._messages, strict=True):
            if tag is not None and index.get(message.message_id) == tag:
                del index[message.message_id]
        for future in self.futures:
            if future.done() and not future.cancelled():
                future.exception()  # a nack or return nobody read must not be logged as lost


def _encode_each(
    messages: Sequence[Outgoing], channel: aiormq.Channel, batch: Batch
) -> list[bytes | None]:
    """Each message's frames; one AMQP cannot carry fails alone (its future says why)."""
    now = int(time.time())
    out: list[bytes | None] = []
    for message, future in zip(messages, batch.futures, strict=True):
        try:
            out.append(encode(message, channel.number, channel.max_content_size, now))
        except (ValueError, TypeError, OverflowError, struct.error) as exc:
            future.set_exception(ValueError(f"cannot be encoded for AMQP: {exc}"))
            out.append(None)
    return out


async def send(channel: aiormq.abc.AbstractChannel, messages: Sequence[Outgoing]) -> Batch:
    """Write all messages at once; the batch's futures settle with the broker's answers.

    The futures fail (as aiormq's own would) on a nack, a return (unroutable) or channel loss.
    Call ``Batch.close`` once done with them. Raises ``ChannelInvalidStateError`` when the
    connection is lost before the frames are written.
    """
    ch = channel
    if not isinstance(ch, aiormq.Channel) or not ch.publisher_confirms:
        raise RuntimeError("batch publishing needs an aiormq channel with publisher confirms")
    async with ch.lock:
        batch = Batch(ch, messages)
        encoded = _encode_each(messages, ch, batch)
        first = ch.delivery_tag
        written: asyncio.Future[object] | None = None
        try:
            payload = []
            for i, (message, frames) in enumerate(zip(messages, encoded, strict=True)):
                if frames is None:
                    continue
                ch.delivery_tag += 1
                batch.tags[i] = ch.delivery_tag
                ch.confirmations[ch.delivery_tag] = batch.futures[i]
                ch.message_id_delivery_tag[message.message_id] = ch.delivery_tag
                payload.append(frames)
            if not payload:
                batch.close()
                return batch
            written = ch.create_future()
            await ch.write_queue.put(
                ChannelFrame(payload=b"".join(payload), should_close=False, drain_future=written)
            )
        except BaseException:
            # Nothing reached the writer: give the delivery tags back while holding the lock.
            for tag in range(first + 1, ch.delivery_tag + 1):
                ch.confirmations.pop(tag, None)
            ch.delivery_tag = first
            if written is not None:
                written.cancel()
            for future in batch.futures:
                future.cancel()
            batch.close()
            raise
        try:
            await written
        except asyncio.CancelledError as exc:
            batch.close()
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this task is being cancelled
            # aiormq rejects its futures with CancelledError when it gives up on a stuck
            # connection; that is a lost connection here, not a cancellation of the caller.
            raise aiormq.exceptions.ChannelInvalidStateError("connection lost") from exc
        except BaseException:
            batch.close()
            raise
    return batch
