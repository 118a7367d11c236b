"""The receiving half of the open-loop load generator, in a process of its own, reading raw AMQP.

Sending on a schedule and timing arrivals in one event loop made each half wait for the
other: at 2,250 msg/s the sends spent 70% of the run awaiting aiormq while deliveries were
being read, and went out up to 165 ms behind schedule. Here deliveries are read by their own
process and stamped with ``time.monotonic()`` (one clock for every process on the machine)
as soon as their bytes arrive.

The receiver shares two cores with what it measures, so it does as little as it can per
delivery: with aiormq (three parsed frames, a message object and a task per delivery) it took
a sixth of a core at 2,800 msg/s, CPU the broker and the hub were short of. It speaks the AMQP
handshake with pamqp, then consumes with ``no_ack`` and reads each delivery's content header
by hand for the two ids it needs, skipping everything else by its length; the body is only
read when a delivery carries neither id.

``python -m bench.receiver --queue Q --expect N --out FILE``: prints ``ready`` once consuming,
stops after N distinct deliveries (a re-publish counts once) or on SIGTERM, then writes one
JSON list per delivery to FILE:
``[correlation_id, message_id, body_key, monotonic_time]`` (``body_key`` only when the
delivery carries neither id).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import struct
import sys
import time
from pathlib import Path

import orjson
from pamqp import commands, frame
from yarl import URL

from bench import amqp_raw
from bench.amqp_raw import BODY, FRAME_HEAD, HEADER, METHOD
from bench.env import BROKER_URL

Arrival = tuple[str | None, str | None, str | None, float]

_ENDS = {  # method frames after which nothing more arrives
    struct.pack(">HH", 10, 50),  # Connection.Close
    struct.pack(">HH", 20, 40),  # Channel.Close
    struct.pack(">HH", 60, 30),  # Basic.Cancel
}
_FLAG_SKIP = (  # the Basic properties before message-id, in wire order: (flag, kind)
    (0x8000, "short"),  # content-type
    (0x4000, "short"),  # content-encoding
    (0x2000, "table"),  # headers
    (0x1000, 1),  # delivery-mode
    (0x0800, 1),  # priority
)
_CORRELATION_ID, _REPLY_TO, _EXPIRATION, _MESSAGE_ID = 0x0400, 0x0200, 0x0100, 0x0080


def body_key(body: bytes) -> str | None:
    """The id a delivery without AMQP ids names in its body."""
    doc = orjson.loads(body)
    key = doc.get("correlationid") or doc.get("causationid") or doc.get("id")
    return str(key) if key is not None else None


def read_ids(payload: bytes) -> tuple[str | None, str | None, int]:
    """(correlation id, message id, body size) from a Basic content header frame's payload."""
    body_size = int.from_bytes(payload[4:12])
    flags = int.from_bytes(payload[12:14])
    at = 14
    for flag, kind in _FLAG_SKIP:
        if flags & flag:
            if kind == "short":
                at += 1 + payload[at]
            elif kind == "table":
                at += 4 + int.from_bytes(payload[at : at + 4])
            else:
                at += int(kind)
    correlation_id = message_id = None
    if flags & _CORRELATION_ID:
        n = payload[at]
        correlation_id = payload[at + 1 : at + 1 + n].decode()
        at += 1 + n
    for flag in (_REPLY_TO, _EXPIRATION):
        if flags & flag:
            at += 1 + payload[at]
    if flags & _MESSAGE_ID:
        n = payload[at]
        message_id = payload[at + 1 : at + 1 + n].decode()
    return correlation_id, message_id, body_size


class RawConsumer(asyncio.Protocol):
    """One AMQP connection and channel consuming one queue with no_ack; records arrivals."""

    def __init__(self, url: URL, queue: str, expect: int) -> None:
        self._url, self._queue, self._expect = url, queue, expect
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._ready = False
        self._pending: tuple[str | None, str | None, int, bytearray] | None = None
        self.consuming: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.done = asyncio.Event()
        self.got: list[Arrival] = []
        self._distinct: set[tuple[str | None, str | None, str | None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(amqp_raw.protocol_header())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.consuming.done():
            self.consuming.set_exception(exc or ConnectionError("broker closed the connection"))
        self.done.set()

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self._buffer += data
        buf, at, end = self._buffer, 0, len(self._buffer)
        while end - at >= 8:
            kind, _channel, size = FRAME_HEAD.unpack_from(buf, at)
            if end - at < size + 8:
                break
            payload = bytes(buf[at + 7 : at + 7 + size])
            if self._ready:
                self._on_frame(kind, payload, now)
            else:
                self._handshake(bytes(buf[at : at + size + 8]))
            at += size + 8
        del self._buffer[:at]

    def _handshake(self, raw: bytes) -> None:
        _, _, value = frame.unmarshal(raw)
        if isinstance(value, commands.Basic.ConsumeOk):
            self._ready = True
            self.consuming.set_result(None)
            return
        try:
            reply = amqp_raw.handshake_reply(value, self._url, "bench receiver")
        except RuntimeError as exc:
            self.consuming.set_exception(exc)
            self.done.set()
            return
        assert self._transport is not None
        if reply is None:  # the channel is open
            reply = amqp_raw.marshal(
                amqp_raw.CHANNEL, commands.Basic.Consume(queue=self._queue, no_ack=True)
            )
        self._transport.write(reply)

    def _on_frame(self, kind: int, payload: bytes, now: float) -> None:
        if kind == HEADER:
            correlation_id, message_id, size = read_ids(payload)
            if correlation_id or message_id or not size:
                self._arrived(correlation_id, message_id, None, now)
            else:  # neither id: the body names it
                self._pending = (correlation_id, message_id, size, bytearray())
        elif kind == BODY and self._pending is not None:
            self._pending[3].extend(payload)
            if len(self._pending[3]) >= self._pending[2]:
                body = bytes(self._pending[3])
                self._pending = None
                self._arrived(None, None, body_key(body), now)
        elif kind == METHOD and payload[:4] in _ENDS:
            self.done.set()

    def _arrived(
        self, correlation_id: str | None, message_id: str | None, key: str | None, now: float
    ) -> None:
        ids = (correlation_id, message_id, key)
        self.got.append((*ids, now))
        self._distinct.add(ids)
        if len(self._distinct) >= self._expect:
            self.done.set()

    def close(self) -> None:
        """Close the channel's connection politely, without waiting for the broker's answer."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(amqp_raw.close_frame())
            self._transport.close()


async def receive(url: str, queue: str, expect: int) -> list[Arrival]:
    """Consume ``queue`` until ``expect`` distinct deliveries arrived or SIGTERM/SIGINT."""
    address = URL(url)
    loop = asyncio.get_running_loop()
    _, consumer = await loop.create_connection(
        lambda: RawConsumer(address, queue, expect),
        address.host or "127.0.0.1",
        address.port or 5672,
    )
    await asyncio.wait_for(consumer.consuming, timeout=30)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, consumer.done.set)
    print("ready", flush=True)
    await consumer.done.wait()
    consumer.close()
    return consumer.got


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=BROKER_URL)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    got = asyncio.run(receive(args.url, args.queue, args.expect))
    args.out.write_bytes(orjson.dumps(got))
    sys.exit(0)


if __name__ == "__main__":
    main()
