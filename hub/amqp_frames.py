"""Reading AMQP frames cheaply: every message the hub takes is three frames aiormq decodes.

aiormq reads each frame with three awaited reads into a BytesIO, then pamqp decodes it
generically, field by field, and validates the result; a delivery (method, content header and
body frame) cost about 14 us of decoding alone, and the whole read path about as much of the
hub's CPU as its batch transactions (bench/findings.md). ``FrameReader.get_frame`` reads a
frame in two reads, and ``unmarshal`` decodes the frames a busy hub receives by the thousand
(``Basic.Deliver``, ``Basic.Ack``, content headers and bodies) straight into the same pamqp
objects, leaving every other frame to pamqp. ``install`` puts the reader in place of aiormq's
(pinned to 7.2 in pyproject: the reader's contract is ``FrameReceiver.get_frame``); tests hold
the decoding equal to pamqp's for generated frames.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import aiormq.connection
import pamqp.frame
from aiormq.exceptions import AMQPConnectionError, InvalidFrameError, ProtocolSyntaxError
from pamqp import body, commands, decode, header
from pamqp.exceptions import PAMQPException

_HEAD = struct.Struct(">BHI")
_CLASS_METHOD = struct.Struct(">HH")
_DELIVERY_TAG = struct.Struct(">q")  # signed, as pamqp reads it
_HEADER_HEAD = struct.Struct(">HHQH")
_METHOD, _HEADER, _BODY, _END = 1, 2, 3, 0xCE
_DELIVER, _ACK = (60, 60), (60, 80)
_PROPERTIES = commands.Basic.Properties
_SHORT_STRINGS = frozenset(
    (
        "content_type",
        "content_encoding",
        "correlation_id",
        "reply_to",
        "expiration",
        "message_id",
        "message_type",
        "user_id",
        "app_id",
        "cluster_id",
    )
)
_FIELDS = tuple((name, _PROPERTIES.flags[name]) for name in _PROPERTIES.__slots__)


def _short(data: bytes, at: int) -> tuple[str, int]:
    end = at + 1 + data[at]
    return data[at + 1 : end].decode(), end


def _deliver(payload: bytes) -> commands.Basic.Deliver:
    consumer_tag, at = _short(payload, 4)
    (delivery_tag,) = _DELIVERY_TAG.unpack_from(payload, at)
    redelivered = bool(payload[at + 8] & 1)
    exchange, at = _short(payload, at + 9)
    routing_key, _ = _short(payload, at)
    frame = commands.Basic.Deliver.__new__(commands.Basic.Deliver)
    frame.consumer_tag = consumer_tag
    frame.delivery_tag = delivery_tag
    frame.redelivered = redelivered
    frame.exchange = exchange
    frame.routing_key = routing_key
    return frame


def _ack(payload: bytes) -> commands.Basic.Ack:
    (delivery_tag,) = _DELIVERY_TAG.unpack_from(payload, 4)
    frame = commands.Basic.Ack.__new__(commands.Basic.Ack)
    frame.delivery_tag = delivery_tag
    frame.multiple = bool(payload[12] & 1)
    return frame


def _content_header(payload: bytes) -> header.ContentHeader | None:
    """None when the header needs pamqp (a second flag word)."""
    class_id, weight, body_size, flags = _HEADER_HEAD.unpack_from(payload)
    if flags & 1:
        return None
    props = _PROPERTIES.__new__(_PROPERTIES)
    at = 14
    for name, flag in _FIELDS:
        value: Any = None
        if flags & flag:
            if name in _SHORT_STRINGS:
                value, at = _short(payload, at)
            elif name == "headers":
                used, value = decode.field_table(payload[at:])
                at += used
            elif name == "timestamp":
                used, value = decode.timestamp(payload[at : at + 8])
                at += used
            else:  # delivery_mode, priority: octets
                value = payload[at]
                at += 1
        elif name == "cluster_id":
            value = ""  # pamqp's default
        setattr(props, name, value)
    frame = header.ContentHeader.__new__(header.ContentHeader)
    frame.class_id, frame.weight, frame.body_size, frame.properties = (
        class_id,
        weight,
        body_size,
        props,
    )
    return frame


def unmarshal(data: bytes) -> tuple[int, int, Any]:
    """``pamqp.frame.unmarshal`` for one whole frame, quicker for the frames that come often."""
    if len(data) >= 8:
        kind, channel, size = _HEAD.unpack_from(data)
        if len(data) == size + 8 and data[-1] == _END:
            payload = data[7:-1]
            decoded: Any = None
            try:
                if kind == _BODY and size:  # an empty body frame is pamqp's to refuse
                    decoded = body.ContentBody(payload)
                elif kind == _METHOD and size >= 4:
                    method = _CLASS_METHOD.unpack_from(payload)
                    if method == _DELIVER:
                        decoded = _deliver(payload)
                    elif method == _ACK:
                        decoded = _ack(payload)
                elif kind == _HEADER and size >= 14:
                    decoded = _content_header(payload)
            except (IndexError, UnicodeDecodeError, struct.error, ValueError):
                decoded = None  # let pamqp decide what is wrong with it
            if decoded is not None:
                return size + 8, channel, decoded
    return pamqp.frame.unmarshal(data)


class FrameReader(aiormq.connection.FrameReceiver):
    """aiormq's frame receiver: each frame in two reads, decoded by ``unmarshal``."""

    async def get_frame(self) -> Any:
        """The next frame from the broker; the errors aiormq's own reader raises."""
        if self.reader.at_eof():
            del self.reader
            raise StopAsyncIteration
        async with self.lock:
            try:
                head = await self.reader.readexactly(7)
                if not self.started and head.startswith(b"AMQP"):
                    raise ProtocolSyntaxError("Unexpected AMQP protocol header")
                self.started = True
                size = _HEAD.unpack(head)[2]
                rest = await self.reader.readexactly(size + 1)
            except asyncio.IncompleteReadError as e:
                raise AMQPConnectionError(
                    "Server connection unexpectedly closed. "
                    f"Read {len(e.partial)} bytes but {e.expected} bytes expected"
                ) from e
            except ConnectionError as e:  # refused, reset and the rest
                raise AMQPConnectionError(f"Server connection error: {e!r}") from e
            except OSError as e:
                raise AMQPConnectionError(f"Server communication error: {e!r}") from e
        try:
            return unmarshal(head + rest)
        except PAMQPException as e:
            raise InvalidFrameError(str(e)) from e


def install() -> None:
    """Read every aiormq connection opened from now on with ``FrameReader``."""
    aiormq.connection.FrameReceiver = FrameReader  # type: ignore[misc]
