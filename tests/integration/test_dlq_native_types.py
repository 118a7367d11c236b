"""A parked native message is found by the canonical type its adapter makes of it."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from adapters.registry import KNOWN, load, native_types_for
from hub import db
from hub.dlq import store
from hub.dlq.cli import _selection
from hub.dlq.record import ParkedRecord, from_amqp
from schemas.registry import CANONICAL_TYPES

pytestmark = pytest.mark.integration


def parked(message_id: str, type_: str) -> ParkedRecord:
    return from_amqp(
        orjson.dumps({"id": message_id, "type": type_}),
        {"x-hub-error-type": "schema_violation", "x-hub-error": "bad"},
        message_id=message_id,
        message_type=type_,
        source=None,
        correlation_id=None,
        reply_to=None,
        routing_key=None,
        now=datetime.now(UTC),
    )


def test_every_native_event_names_the_canonical_type_it_becomes() -> None:
    for key in KNOWN:
        translator = load(key)
        assert translator is not None
        for event in translator.native_events():
            made = translator.canonical_types(event)
            assert made and set(made) <= set(CANONICAL_TYPES), (key, event)


async def test_message_type_finds_the_native_orders_too(isolated) -> None:
    pool = await db.prepare(isolated.database_url, 2)
    try:
        async with pool.acquire() as conn:
            for message_id, type_ in (
                ("m-1", "order.placed"),
                ("m-2", "native.shopify.orders-create"),
                ("m-3", "native.bolcom.order"),
                ("m-4", "native.shopify.orders-cancelled"),
                ("m-5", "stock.level"),
            ):
                assert await store.insert(conn, parked(message_id, type_)) is not None
            sel = _selection(None, None, None, None, "order.placed")
            assert set(sel.native_types) == set(native_types_for("order.placed"))
            found = {r["message_id"] for r in await store.select(conn, sel, None)}
            assert found == {"m-1", "m-2", "m-3"}
            native = _selection(None, None, None, None, "native.shopify.orders-cancelled")
            assert [r["message_id"] for r in await store.select(conn, native, None)] == ["m-4"]
    finally:
        await pool.close()
