"""The sending half of the open-loop load generator, in a process of its own, writing raw AMQP.

Sending from the benchmark's own event loop through aiormq (a future, a lock and the writer
task per write) took 12-16% of a core at 2,600 msg/s, on a box whose two cores the hub, the
broker and the database already kept 85% busy: CPU the system under test was short of. Here a
plain blocking loop does it. Every message's frames are encoded before the clock starts; at
each wake-up whatever is due goes out as one ``sendall``; the loop sleeps until the next
message is due. Nothing is awaited per message, so a late send is the box's doing, and how
late each one left is written out.

The channel is in confirm mode, and the sender ends only once the broker has confirmed every
message. Without confirms a quorum queue can drop a publish the channel still held when it
closed: 2 of about 80 latency runs lost the last 1-3 messages of the run that way (they never
reached hub.in), and the row counted them as never arrived. The broker's acks (coalesced,
``multiple``) are read while the sender waits for the next message's time.

``python -m bench.sender --plan FILE --rate R --out FILE``: the plan is an orjson list of
``[exchange, routing_key, body, key]``. It prints ``ready`` once connected with every frame
encoded, then reads ``go <start>`` (a ``time.monotonic()`` value: one clock for every process
on the machine) from stdin and sends message ``i`` at ``start + i / rate``. At the end it
closes its channel, then the connection, each waiting for the broker's CloseOk. It writes
``{"late": [seconds per message], "returned": n}`` (messages the broker could not route) to
``--out``.
"""

from __future__ import annotations

import argparse
import select
import socket
import sys
import time
from pathlib import Path

import orjson
from pamqp import commands, frame
from yarl import URL

from bench import amqp_raw
from bench.env import BROKER_URL
from hub import wire
from hub.bus import Envelope


class Frames:
    """Whole frames off a blocking socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()

    def next(self) -> tuple[int, bytes]:
        """(frame kind, the whole frame)."""
        while True:
            if len(self._buffer) >= 7:
                kind, _channel, size = amqp_raw.FRAME_HEAD.unpack_from(self._buffer)
                if len(self._buffer) >= size + 8:
                    raw = bytes(self._buffer[: size + 8])
                    del self._buffer[: size + 8]
                    return kind, raw
            self._read()

    def ready(self) -> list[tuple[int, bytes]]:
        """The whole frames already read, without waiting."""
        out: list[tuple[int, bytes]] = []
        while len(self._buffer) >= 7:
            kind, _channel, size = amqp_raw.FRAME_HEAD.unpack_from(self._buffer)
            if len(self._buffer) < size + 8:
                break
            out.append((kind, bytes(self._buffer[: size + 8])))
            del self._buffer[: size + 8]
        return out

    def wait(self, timeout: float) -> None:
        """Read what arrives within ``timeout`` (at most one read)."""
        readable, _, _ = select.select([self._sock], [], [], max(timeout, 0.0))
        if readable:
            self._read()

    def _read(self) -> None:
        data = self._sock.recv(65536)
        if not data:
            raise ConnectionError("the broker closed the connection")
        self._buffer += data


class Confirms:
    """The broker's answers to the publishes (tags 1, 2, ...): acks, nacks and returns."""

    def __init__(self) -> None:
        self.frontier = 0  # every tag up to here is settled
        self._above: set[int] = set()
        self.nacked = 0
        self.returned = 0

    def settled(self, total: int) -> bool:
        """True once all ``total`` publishes are acked or nacked."""
        return self.frontier >= total

    def take(self, frames: list[tuple[int, bytes]]) -> None:
        """Count what the method frames among ``frames`` say."""
        for kind, raw in frames:
            if kind != amqp_raw.METHOD:
                continue  # a returned message's header and body
            _, _, value = frame.unmarshal(raw)
            if isinstance(value, commands.Basic.Ack):
                self._settle(value.delivery_tag, value.multiple)
            elif isinstance(value, commands.Basic.Nack):
                self.nacked += self._settle(value.delivery_tag, value.multiple)
            elif isinstance(value, commands.Basic.Return):
                self.returned += 1
            elif isinstance(value, commands.Connection.Close | commands.Channel.Close):
                raise RuntimeError(f"broker closed the sender: {value.reply_text}")

    def _settle(self, tag: int, multiple: bool) -> int:
        """Settle ``tag`` (and all below it if ``multiple``); returns how many it settled."""
        before = self.frontier + len(self._above)
        if multiple:
            self.frontier = max(self.frontier, tag)
            self._above = {t for t in self._above if t > self.frontier}
        elif tag > self.frontier:
            self._above.add(tag)
        while self.frontier + 1 in self._above:
            self.frontier += 1
            self._above.discard(self.frontier)
        return self.frontier + len(self._above) - before


def connect(url: URL) -> tuple[socket.socket, Frames, int]:
    """A connection with channel 1 open in confirm mode; returns it with the frame size."""
    sock = socket.create_connection((url.host or "127.0.0.1", url.port or 5672), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    frames = Frames(sock)
    sock.sendall(amqp_raw.protocol_header())
    frame_max = 131072
    while True:
        _, raw = frames.next()
        _, _, value = frame.unmarshal(raw)
        if isinstance(value, commands.Connection.Tune) and value.frame_max:
            frame_max = value.frame_max
        if isinstance(value, commands.Confirm.SelectOk):
            return sock, frames, frame_max
        reply = amqp_raw.handshake_reply(value, url, "bench sender")
        if reply is None:  # the channel is open: confirms on
            reply = amqp_raw.marshal(amqp_raw.CHANNEL, commands.Confirm.Select())
        if reply:
            sock.sendall(reply)


def encode(plan: list[list[str]], frame_max: int) -> list[bytes]:
    """Each message's frames (``hub.wire``'s encoder, as the hub's own publishes)."""
    stamp = int(time.time())
    return [
        wire.encode(
            Envelope(key, exchange, routing_key, "bench.load", "bench", body.encode()),
            amqp_raw.CHANNEL,
            frame_max - 8,
            stamp,
        )
        for exchange, routing_key, body, key in plan
    ]


def send(
    sock: socket.socket,
    frames: list[bytes],
    start: float,
    rate: float,
    answers: Frames,
    confirms: Confirms,
    tick: float = 0.001,
) -> list[float]:
    """Message ``i`` at ``start + i / rate``, at most one write per ``tick``. Lateness each.

    Each loopback write costs the sender the broker's side of TCP too (35 us on the 2-core
    VM): one per message at 2,600 msg/s was a tenth of a core. A millisecond's messages go
    out together instead; each still counts from its own scheduled time.
    """
    total = len(frames)
    late: list[float] = []
    i = 0
    while i < total:
        now = time.monotonic()
        due = i
        while due < total and start + due / rate <= now:
            late.append(now - (start + due / rate))
            due += 1
        if due > i:
            sock.sendall(b"".join(frames[i:due]))
            i = due
        if i < total:  # the broker's acks are read while waiting; they do not end the wait
            wake = time.monotonic() + max(start + i / rate - time.monotonic(), tick)
            while (left := wake - time.monotonic()) > 0:
                answers.wait(left)
                confirms.take(answers.ready())
    return late


def await_confirms(answers: Frames, confirms: Confirms, total: int, timeout: float) -> None:
    """Until the broker has acked or nacked all ``total`` publishes."""
    deadline = time.monotonic() + timeout
    while not confirms.settled(total):
        left = deadline - time.monotonic()
        if left <= 0:
            unconfirmed = total - confirms.frontier
            raise TimeoutError(f"{unconfirmed} publishes unconfirmed after {timeout}s")
        answers.wait(left)
        confirms.take(answers.ready())


def close(sock: socket.socket, frames: Frames) -> None:
    """Close the channel, then the connection (every publish is confirmed by now)."""
    for request, done in (
        (amqp_raw.channel_close_frame(), commands.Channel.CloseOk),
        (amqp_raw.close_frame(), commands.Connection.CloseOk),
    ):
        sock.sendall(request)
        while True:
            kind, raw = frames.next()
            if kind != amqp_raw.METHOD:
                continue
            _, _, value = frame.unmarshal(raw)
            if isinstance(value, done):
                break
            if isinstance(value, commands.Connection.Close | commands.Channel.Close):
                raise RuntimeError(f"broker closed the sender: {value.reply_text}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=BROKER_URL)
    parser.add_argument("--plan", type=Path, required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sock, frames, frame_max = connect(URL(args.url))
    encoded = encode(orjson.loads(args.plan.read_bytes()), frame_max)
    print("ready", flush=True)
    go = sys.stdin.readline().split()
    if len(go) != 2 or go[0] != "go":
        sys.exit(f"expected 'go <start>', got {go!r}")
    confirms = Confirms()
    late = send(sock, encoded, float(go[1]), args.rate, frames, confirms)
    await_confirms(frames, confirms, len(encoded), timeout=60.0)
    close(sock, frames)
    sock.close()
    args.out.write_bytes(
        orjson.dumps({"late": late, "returned": confirms.returned, "nacked": confirms.nacked})
    )


if __name__ == "__main__":
    main()
