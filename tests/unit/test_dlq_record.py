"""What a parked message is filed under: its type, from the best source there is."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from hub.dlq.record import from_amqp, replay_headers

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
TYPED = ("p.hub.in", "p.hub.out")


def parked_by_hub(exchange: str, key: str) -> dict[str, Any]:
    return {
        "x-hub-error-type": "malformed",
        "x-hub-error": "body is not JSON",
        "x-hub-original-exchange": exchange,
        "x-hub-original-routing-key": key,
    }


def filed_type(body: bytes, headers: dict[str, Any], amqp_type: str | None = None) -> str | None:
    record = from_amqp(
        body,
        headers,
        message_id="m-1",
        message_type=amqp_type,
        source=None,
        correlation_id=None,
        reply_to=None,
        routing_key=None,
        now=NOW,
        typed_exchanges=TYPED,
    )
    return record.message_type


def test_the_amqp_type_then_the_events_own_then_the_routing_key() -> None:
    event = orjson.dumps({"id": "e-1", "type": "order.placed"})
    on_hub_in = parked_by_hub("p.hub.in", "webshop-nl.native.shopify.orders-create")
    assert filed_type(event, on_hub_in, "stock.level") == "stock.level"
    assert filed_type(event, on_hub_in) == "order.placed"
    assert filed_type(b"{not json", on_hub_in) == "native.shopify.orders-create"
    on_hub_out = parked_by_hub("p.hub.out", "bolcom.stock.availability")
    assert filed_type(b"{not json", on_hub_out) == "stock.availability"


def test_a_key_that_names_no_type_gives_none() -> None:
    # An unreadable query dead-lettered from hub.rpc: its key is the queue's name.
    death = {"x-death": [{"reason": "rejected", "queue": "p.hub.rpc", "exchange": ""}]}
    record = from_amqp(
        b"\x00garbage",
        death,
        message_id=None,
        message_type=None,
        source=None,
        correlation_id=None,
        reply_to=None,
        routing_key="p.hub.rpc",
        now=NOW,
        typed_exchanges=TYPED,
    )
    assert record.message_type is None
    assert record.error_type == "broker_rejected"


def test_a_copy_that_failed_in_one_channels_queue_goes_back_to_that_channel_only() -> None:
    # Published once to webshop-nl with webshop-uk in CC; webshop-uk's adapter rejected it.
    headers = {
        "CC": ["webshop-uk.product.upserted"],
        "x-death": [
            {
                "reason": "rejected",
                "queue": "p.hub.out.webshop-uk",
                "exchange": "p.hub.out",
                "routing-keys": ["webshop-nl.product.upserted", "webshop-uk.product.upserted"],
            }
        ],
    }
    record = from_amqp(
        orjson.dumps({"id": "e-1", "type": "product.upserted"}),
        headers,
        message_id="e-1",
        message_type=None,
        source="erp",
        correlation_id=None,
        reply_to=None,
        routing_key="webshop-nl.product.upserted",
        now=NOW,
        typed_exchanges=TYPED,
        channel_queue_prefix="p.hub.out.",
    )
    assert record.channel == "webshop-uk"
    assert record.original_routing_key == "webshop-uk.product.upserted"
    assert record.original_exchange == "p.hub.out"
    assert "CC" not in replay_headers(record.headers, 7)
    assert replay_headers(record.headers, 7)["x-hub-replay-of"] == 7
