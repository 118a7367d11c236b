"""The benchmark's raw receiver reads the ids out of content headers as pamqp writes them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pamqp import frame, header
from pamqp.commands import Basic

# bench/ is a tool at the repository root, not an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.receiver import read_ids


def header_payload(properties: Basic.Properties, body_size: int) -> bytes:
    raw = frame.marshal(header.ContentHeader(0, body_size, properties), 1)
    return raw[7:-1]  # the frame's payload, without its head and end octet


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        (Basic.Properties(), (None, None)),
        (Basic.Properties(message_id="m-1"), (None, "m-1")),
        (Basic.Properties(correlation_id="c-1"), ("c-1", None)),
        (
            Basic.Properties(
                content_type="application/json",
                content_encoding="utf-8",
                headers={"x-hub-attempts": 2, "nested": {"a": "b"}, "list": [1, "two"]},
                delivery_mode=2,
                priority=3,
                correlation_id="corr-é",
                reply_to="hub.rpc",
                expiration="60000",
                message_id="msg-42",
                timestamp=None,
                message_type="stock.availability",
                app_id="hub",
            ),
            ("corr-é", "msg-42"),
        ),
        (
            Basic.Properties(headers={}, reply_to="r", expiration="1", message_id="only-mid"),
            (None, "only-mid"),
        ),
    ],
)
def test_ids_are_read_past_every_property_before_them(properties, expected) -> None:
    correlation_id, message_id, size = read_ids(header_payload(properties, 1234))
    assert (correlation_id, message_id) == expected
    assert size == 1234
