"""The hub's own AMQP encoding of a publish is byte-equal to pamqp's (what aiormq would send)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pamqp import frame as amqp_frame
from pamqp.body import ContentBody
from pamqp.commands import Basic
from pamqp.header import ContentHeader

from hub import wire
from hub.bus import Envelope
from schemas.envelope import CONTENT_TYPE

short = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60)
names = st.from_regex(r"[a-z][a-z0-9.\-]{0,40}", fullmatch=True)
header_values = st.one_of(
    st.text(max_size=30), st.integers(-(2**31), 2**31 - 1), st.booleans(), st.lists(names)
)

envelopes = st.builds(
    Envelope,
    message_id=short,
    exchange=names,
    routing_key=names,
    message_type=names,
    source=names,
    body=st.binary(max_size=3000),
    correlation_id=st.none() | short,
    reply_to=st.none() | short,
    headers=st.dictionaries(names, header_values, max_size=3),
)


def pamqp_encoding(env: Envelope, channel: int, max_body: int, ts: int) -> bytes:
    props = Basic.Properties(
        content_type=CONTENT_TYPE,
        delivery_mode=2,
        message_id=env.message_id,
        message_type=env.message_type,
        app_id=env.source,
        correlation_id=env.correlation_id,
        reply_to=env.reply_to,
        timestamp=datetime.fromtimestamp(ts, UTC),
        headers=dict(env.headers) or None,
    )
    frames = [
        Basic.Publish(exchange=env.exchange, routing_key=env.routing_key, mandatory=True),
        ContentHeader(0, len(env.body), props),
        *(ContentBody(env.body[i : i + max_body]) for i in range(0, len(env.body), max_body)),
    ]
    return b"".join(amqp_frame.marshal(f, channel) for f in frames)


@given(env=envelopes, channel=st.integers(1, 2047), ts=st.integers(0, 2**37))
def test_encoding_matches_pamqp(env: Envelope, channel: int, ts: int) -> None:
    assert wire.encode(env, channel, 1000, ts) == pamqp_encoding(env, channel, 1000, ts)


def test_a_property_over_255_bytes_is_refused() -> None:
    env = Envelope("x" * 256, "hub.out", "a.b", "t", "hub", b"{}")
    with pytest.raises(ValueError, match="255 bytes"):
        wire.encode(env, 1, 1000, 0)
