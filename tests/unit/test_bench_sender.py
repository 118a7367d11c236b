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
from bench.sender import send


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
    late = send(a, frames, start, rate=3000.0)
    finished = time.monotonic()
    a.close()
    reader.join(timeout=5)
    b.close()
    assert bytes(got) == b"".join(frames)
    assert len(late) == 300 and min(late) >= 0
    assert finished >= start + 299 / 3000.0  # none went out before its time


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
