"""The benchmark's raw sender: its schedule, and the handshake both load-generator halves speak."""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

import pytest
from pamqp import commands, frame
from yarl import URL

# bench/ is a tool at the repository root, not an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench import amqp_raw
from bench.sender import Confirms, Frames, send


def _drain(sock: socket.socket, into: bytearray) -> None:
    while chunk := sock.recv(65536):
        into.extend(chunk)


def test_every_message_goes_out_in_order_on_its_schedule() -> None:
    a, b = socket.socketpair()
    got = bytearray()
    reader = threading.Thread(target=_drain, args=(b, got))
    reader.start()
    frames = [f"m{i:04d};".encode() for i in range(300)]
    start = time.monotonic() + 0.05
    b.sendall(frame.marshal(commands.Basic.Ack(delivery_tag=300, multiple=True), 1))
    confirms = Confirms()
    late = send(a, frames, start, 3000.0, Frames(a), confirms)
    finished = time.monotonic()
    assert confirms.settled(300)  # the broker's answer was read while the sends waited
    a.close()
    reader.join(timeout=5)
    b.close()
    assert bytes(got) == b"".join(frames)
    assert len(late) == 300 and min(late) >= 0
    assert finished >= start + 299 / 3000.0  # none went out before its time


def _method(value: object) -> tuple[int, bytes]:
    return amqp_raw.METHOD, frame.marshal(value, amqp_raw.CHANNEL)


def test_confirms_settle_single_and_multiple_acks_in_any_order() -> None:
    confirms = Confirms()
    confirms.take([_method(commands.Basic.Ack(delivery_tag=3))])
    confirms.take([_method(commands.Basic.Ack(delivery_tag=1))])
    assert confirms.frontier == 1 and not confirms.settled(3)
    confirms.take([_method(commands.Basic.Ack(delivery_tag=2))])
    assert confirms.frontier == 3 and confirms.settled(3)
    confirms.take([_method(commands.Basic.Ack(delivery_tag=7, multiple=True))])
    assert confirms.settled(7) and not confirms.settled(8)
    assert confirms.nacked == 0 and confirms.returned == 0


def test_confirms_count_what_the_broker_refused_or_returned() -> None:
    confirms = Confirms()
    returned = commands.Basic.Return(312, "NO_ROUTE", "x", "k")
    confirms.take(
        [
            _method(commands.Basic.Ack(delivery_tag=1)),
            _method(returned),
            (amqp_raw.HEADER, b"header"),  # the returned message's content is skipped
            _method(commands.Basic.Nack(delivery_tag=4, multiple=True)),
        ]
    )
    assert confirms.settled(4)
    assert confirms.nacked == 3  # tags 2, 3 and 4; tag 1 was acked before
    assert confirms.returned == 1
    closed = commands.Channel.Close(406, "PRECONDITION_FAILED", 60, 40)
    with pytest.raises(RuntimeError, match="PRECONDITION_FAILED"):
        confirms.take([_method(closed)])


def test_the_handshake_answers_each_step_until_the_channel_is_open() -> None:
    url = URL("amqp://bench:secret@127.0.0.1:5672/shop")
    start_ok = amqp_raw.handshake_reply(commands.Connection.Start(), url, "t")
    assert start_ok is not None
    _, _, answer = frame.unmarshal(start_ok)
    assert isinstance(answer, commands.Connection.StartOk)
    assert answer.response == "\0bench\0secret"
    tune = amqp_raw.handshake_reply(commands.Connection.Tune(2047, 131072, 60), url, "t")
    assert tune is not None
    size = amqp_raw.FRAME_HEAD.unpack_from(tune)[2] + 8
    _, _, tune_ok = frame.unmarshal(tune[:size])
    _, _, open_ = frame.unmarshal(tune[size:])
    assert isinstance(tune_ok, commands.Connection.TuneOk) and tune_ok.heartbeat == 0
    assert isinstance(open_, commands.Connection.Open) and open_.virtual_host == "shop"
    channel_open = amqp_raw.handshake_reply(commands.Connection.OpenOk(), url, "t")
    assert channel_open is not None
    assert isinstance(frame.unmarshal(channel_open)[2], commands.Channel.Open)
    assert amqp_raw.handshake_reply(commands.Channel.OpenOk(), url, "t") is None


def test_a_refusal_in_the_handshake_raises_with_the_brokers_reason() -> None:
    refused = commands.Connection.Close(reply_code=530, reply_text="NOT_ALLOWED - vhost")
    with pytest.raises(RuntimeError, match="NOT_ALLOWED"):
        amqp_raw.handshake_reply(refused, URL("amqp://127.0.0.1/"), "t")
