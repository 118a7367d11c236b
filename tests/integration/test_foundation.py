"""The foundation on the real RabbitMQ and PostgreSQL: routing, parking, dedupe, crash recovery."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import pytest
import yaml

from hub.bus import Envelope
from hub.runtime import Hub
from hub.settings import Settings
from routes import EXAMPLE_CONFIG
from routes.config import HubConfig

pytestmark = pytest.mark.integration


def product_event(sku: str = "SKU-1", event_id: str | None = None, **data: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": "erp",
        "type": "product.upserted",
        "time": datetime.now(UTC).isoformat(),
        "subject": sku,
        "correlationid": "corr-42",
        "data": {"sku": sku, "name": "Oak desk 160", "version": 1, **data},
    }


def sales_channels(hub: Hub) -> list[str]:
    return list(hub.table.destinations("erp", "product.upserted"))


async def test_product_reaches_every_subscribing_channel(start_hub, bus) -> None:
    hub = await start_hub()
    channels = sales_channels(hub)
    assert len(channels) >= 3, channels
    event = product_event()
    await bus.publish("erp.product.upserted", event)
    for channel in channels:
        [body] = await bus.bodies(bus.names.channel_queue(channel), expect=1)
        assert body["type"] == "product.upserted"
        assert body["data"]["sku"] == "SKU-1"
        assert body["correlationid"] == "corr-42"
        assert body["causationid"] == event["id"]
        assert body["source"] == "erp"
    for other in set(hub.config.channels) - set(channels):
        assert await bus.drain(bus.names.channel_queue(other), expect=0, settle=0.2) == []


@pytest.mark.parametrize(
    ("body", "error_type", "reason"),
    [
        (b"{this is not json", "malformed", "not JSON"),
        (
            orjson.dumps({**product_event(), "type": "product.teleported"}),
            "unknown_type",
            "product.teleported",
        ),
        (orjson.dumps(product_event(sku="bad sku with spaces")), "schema_violation", "sku"),
        (orjson.dumps({**product_event(), "source": "nobody"}), "unknown_channel", "nobody"),
        (
            orjson.dumps({**product_event(), "dataschemaversion": "2.0"}),
            "schema_violation",
            "this hub reads 1.x",
        ),
        (
            orjson.dumps({**product_event(), "dataschemaversion": "v1"}),
            "schema_violation",
            "not MAJOR.MINOR",
        ),
    ],
    ids=[
        "malformed",
        "unknown-type",
        "schema-violation",
        "unknown-channel",
        "newer-major-version",
        "unreadable-version",
    ],
)
async def test_bad_input_is_parked_and_the_next_message_still_flows(
    start_hub, bus, body: bytes, error_type: str, reason: str
) -> None:
    hub = await start_hub()
    channel = sales_channels(hub)[0]
    await bus.publish("erp.product.upserted", body, message_id="bad-1")
    good = product_event(sku="SKU-GOOD")
    await bus.publish("erp.product.upserted", good)

    [parked] = await bus.drain(bus.names.dead_queue, expect=1)
    headers = parked.headers
    assert headers["x-hub-error-type"] == error_type
    assert reason in str(headers["x-hub-error"])
    assert headers["x-hub-failed-queue"] == bus.names.inbound_queue
    assert headers["x-hub-original-exchange"] == bus.names.inbound_exchange
    assert headers["x-hub-original-routing-key"] == "erp.product.upserted"
    assert headers["x-hub-attempts"] == 1
    assert "x-hub-first-failed-at" in headers and "x-hub-last-failed-at" in headers
    assert parked.body == body  # parked unchanged, so replay sends exactly what came in

    [delivered] = await bus.bodies(bus.names.channel_queue(channel), expect=1)
    assert delivered["data"]["sku"] == "SKU-GOOD"
    assert hub.metrics.parked.labels(error_type)._value.get() == 1


async def test_data_of_the_schema_version_the_hub_reads_flows(start_hub, bus) -> None:
    hub = await start_hub()
    channel = sales_channels(hub)[0]
    for version in ("1", "1.0", "1.7"):  # a later minor only adds optional fields
        event = {**product_event(sku=f"SKU-V{version}"), "dataschemaversion": version}
        await bus.publish("erp.product.upserted", orjson.dumps(event))
    delivered = await bus.bodies(bus.names.channel_queue(channel), expect=3)
    assert {d["data"]["sku"] for d in delivered} == {"SKU-V1", "SKU-V1.0", "SKU-V1.7"}
    assert await bus.drain(bus.names.dead_queue, expect=0, settle=0.2) == []


async def test_same_message_id_twice_has_its_effect_once(start_hub, bus) -> None:
    hub = await start_hub()
    channel = sales_channels(hub)[0]
    event = product_event(event_id="dup-1")
    for _ in range(3):
        await bus.publish("erp.product.upserted", event)
    got = await bus.bodies(bus.names.channel_queue(channel), expect=1, timeout=5)
    assert len(got) == 1
    await asyncio.sleep(0.3)
    assert hub.metrics.duplicates.labels(bus.names.inbound_queue)._value.get() == 2


async def test_committed_but_unpublished_messages_are_sent_after_restart(
    start_hub, bus, isolated: Settings
) -> None:
    """A crash between commit and publish leaves rows in the outbox; the relay sends them."""
    hub = await start_hub()
    channel = sales_channels(hub)[0]
    await hub.stop()
    # What a crash right after commit leaves behind: an outbox row nobody published.
    envelope = Envelope(
        message_id="crashed-1",
        exchange=bus.names.outbound_exchange,
        routing_key=f"{channel}.product.upserted",
        message_type="product.upserted",
        source="erp",
        body=orjson.dumps(product_event(event_id="crashed-1")),
    )
    conn = await asyncpg.connect(isolated.database_url)
    try:
        from hub import outbox

        await outbox.write(conn, [envelope])
        await conn.execute("UPDATE outbox SET created_at = now() - interval '1 minute'")
    finally:
        await conn.close()
    await start_hub()
    [msg] = await bus.drain(bus.names.channel_queue(channel), expect=1, timeout=10)
    assert msg.message_id == "crashed-1"
    conn = await asyncpg.connect(isolated.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 0
    finally:
        await conn.close()


async def test_a_type_routed_to_the_hub_without_a_handler_is_parked_not_dropped(
    start_hub, bus
) -> None:
    """A route's hub leg must lead somewhere: acking the message would lose it."""
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["routes"].append(
        {"name": "status-to-hub", "types": ["order.status"], "from": ["kind:erp"], "to": ["hub"]}
    )
    hub = await start_hub(HubConfig.model_validate(data, context={"env": {}}))
    status = {"order_id": "O-1", "channel": "bolcom", "channel_order_id": "B-1"}
    status["status"] = "shipped"
    event = {**product_event(), "type": "order.status", "subject": "O-1", "data": status}
    await bus.publish("erp.order.status", event)

    [parked] = await bus.drain(bus.names.dead_queue, expect=1)
    assert parked.headers["x-hub-error-type"] == "no_route"
    assert "to the hub, which has no handler for it" in parked.headers["x-hub-error"]
    assert hub.metrics.parked.labels("no_route")._value.get() == 1
