"""The hub's frame reader decodes every frame exactly as pamqp does, only quicker."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import aiormq.connection
import pytest
from aiormq.exceptions import AMQPConnectionError, InvalidFrameError
from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import body, commands, frame, header, heartbeat
from pamqp.exceptions import UnmarshalingException

from hub.amqp_frames import FrameReader, install, unmarshal

short = st.text(max_size=40).filter(lambda s: len(s.encode()) <= 255)
table = st.dictionaries(
    st.text(min_size=1, max_size=10).filter(lambda s: len(s.encode()) <= 255),
    st.one_of(st.integers(-(2**31), 2**31 - 1), short, st.booleans()),
    max_size=4,
)
stamp = st.integers(0, 2**32 - 1).map(lambda s: datetime.datetime.fromtimestamp(s, tz=datetime.UTC))
properties = st.builds(
    commands.Basic.Properties,
    content_type=st.none() | short,
    content_encoding=st.none() | short,
    headers=st.none() | table,
    delivery_mode=st.none() | st.sampled_from([1, 2]),
    priority=st.none() | st.integers(0, 9),
    correlation_id=st.none() | short,
    reply_to=st.none() | short,
    expiration=st.none() | st.integers(0, 10**6).map(str),
    message_id=st.none() | short,
    timestamp=st.none() | stamp,
    message_type=st.none() | short,
    user_id=st.none() | short,
    app_id=st.none() | short,
    cluster_id=st.just(""),  # pamqp refuses any other
)
deliver = st.builds(
    commands.Basic.Deliver,
    consumer_tag=short,
    delivery_tag=st.integers(1, 2**63 - 1),
    redelivered=st.booleans(),
    exchange=st.from_regex(r"\A[a-zA-Z0-9_.:-]{0,60}\Z"),
    routing_key=short,
)
ack = st.builds(commands.Basic.Ack, delivery_tag=st.integers(0, 2**63 - 1), multiple=st.booleans())
content = st.builds(header.ContentHeader, body_size=st.integers(0, 2**40), properties=properties)
payload = st.builds(body.ContentBody, st.binary(min_size=1, max_size=300))


def fields(value: Any) -> dict[str, Any]:
    """What a pamqp frame holds (they compare by identity)."""
    out = {
        name: getattr(value, name)
        for name in dir(value)
        if not name.startswith("_") and not callable(getattr(value, name))
    }
    if "properties" in out:
        out["properties"] = fields(out["properties"])
    return out


@settings(max_examples=300, deadline=None)
@given(st.one_of(deliver, ack, content, payload), st.integers(0, 65535))
def test_hot_frames_decode_as_pamqp_decodes_them(value: Any, channel: int) -> None:
    raw = frame.marshal(value, channel)
    expected, got = frame.unmarshal(raw), unmarshal(raw)
    assert got[:2] == expected[:2]
    assert type(got[2]) is type(expected[2])
    assert fields(got[2]) == fields(expected[2])


@pytest.mark.parametrize(
    "value",
    [
        commands.Basic.ConsumeOk(consumer_tag="ctag"),
        commands.Channel.Close(reply_code=404, reply_text="NOT_FOUND", class_id=50, method_id=10),
        commands.Basic.Nack(delivery_tag=5, multiple=True, requeue=False),
        heartbeat.Heartbeat(),
    ],
)
def test_other_frames_are_left_to_pamqp(value: Any) -> None:
    raw = frame.marshal(value, 0 if isinstance(value, heartbeat.Heartbeat) else 1)
    got = unmarshal(raw)
    assert type(got[2]) is type(value)
    assert fields(got[2]) == fields(frame.unmarshal(raw)[2])


def test_an_empty_body_frame_is_refused_as_pamqp_refuses_it() -> None:
    empty = b"\x03\x00\x01\x00\x00\x00\x00\xce"  # would end a message's body early
    with pytest.raises(UnmarshalingException):
        frame.unmarshal(empty)
    with pytest.raises(UnmarshalingException):
        unmarshal(empty)


def test_a_header_with_a_second_flag_word_is_left_to_pamqp() -> None:
    props = commands.Basic.Properties(message_id="m-1")
    raw = bytearray(frame.marshal(header.ContentHeader(0, 3, props), 1))
    raw[20] |= 1  # continuation bit of the flag word: pamqp reads a second word
    raw[21:21] = b"\x00\x00"  # the (empty) second flag word
    raw[3:7] = (int.from_bytes(raw[3:7]) + 2).to_bytes(4)
    got = unmarshal(bytes(raw))[2]
    assert got.properties.message_id == "m-1"
    assert fields(got) == fields(frame.unmarshal(bytes(raw))[2])


async def _read_all(reader_class: type[aiormq.connection.FrameReceiver], data: bytes) -> list[Any]:
    stream = asyncio.StreamReader()
    stream.feed_data(data)
    stream.feed_eof()
    receiver = reader_class(stream)
    out = []
    with pytest.raises(AMQPConnectionError):
        while True:
            out.append(await receiver.get_frame())
    return out


async def test_the_reader_yields_what_aiormqs_own_yields_then_fails_alike() -> None:
    frames = [
        commands.Basic.Deliver("ctag", 7, False, "hub.in", "erp.stock.level"),
        header.ContentHeader(0, 5, commands.Basic.Properties(message_id="m-1")),
        body.ContentBody(b"hello"),
        commands.Basic.Ack(delivery_tag=9, multiple=True),
    ]
    data = b"".join(frame.marshal(f, 1) for f in frames) + b"\x01\x00"  # then a cut-off frame
    ours = await _read_all(FrameReader, data)
    theirs = await _read_all(aiormq.connection.FrameReceiver, data)
    assert [(w, c, fields(f)) for w, c, f in ours] == [(w, c, fields(f)) for w, c, f in theirs]
    assert len(ours) == len(frames)


async def test_a_frame_without_its_end_octet_is_refused() -> None:
    raw = bytearray(frame.marshal(commands.Basic.Ack(delivery_tag=1), 1))
    raw[-1] = 0
    stream = asyncio.StreamReader()
    stream.feed_data(bytes(raw))
    with pytest.raises(InvalidFrameError):
        await FrameReader(stream).get_frame()


def test_install_makes_new_connections_read_with_it() -> None:
    original = aiormq.connection.FrameReceiver
    try:
        install()
        assert aiormq.connection.FrameReceiver is FrameReader
    finally:
        aiormq.connection.FrameReceiver = original  # type: ignore[misc]
