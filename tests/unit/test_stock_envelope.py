"""The availability message built on the hot path is exactly what the schema accepts."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from typing import Any

import orjson
import yaml

from hub.outgoing import caused_envelope, caused_event, to_channel
from hub.stock.atp import Figure
from hub.stock.availability import StockContext, _envelope
from hub.topology import Names
from routes import EXAMPLE_CONFIG
from routes.config import HubConfig
from routes.matching import RouteTable
from schemas.envelope import CloudEvent, encode
from schemas.inventory import StockAvailability


def stock_context(**sku_maps: dict[str, str]) -> StockContext:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    for channel, sku_map in sku_maps.items():
        data["channels"][channel]["sku_map"] = sku_map
    config = HubConfig.model_validate(data, context={"env": {}})
    return StockContext(config, RouteTable.from_config(config), Names("p."))


def test_hot_path_availability_validates_against_its_schema() -> None:
    cause = CloudEvent(
        id="lvl-1",
        source="erp",
        type="stock.level",
        time=datetime(2026, 11, 27, 10, tzinfo=UTC),
        data={},
    )
    now = datetime(2026, 11, 27, 10, 0, 1, tzinfo=UTC)
    for fig in (Figure(7, None), Figure(0, date(2026, 12, 4))):
        env = _envelope(stock_context(), cause, "webshop-nl", "SKU-1", fig, 3, now)
        body = orjson.loads(env.body)
        event = CloudEvent.model_validate(body)
        message = StockAvailability.model_validate(event.data)
        assert (message.available, message.next_available_date) == (fig.available, fig.next_date)
        assert (message.channel, message.version, message.computed_at) == ("webshop-nl", 3, now)
        assert event.type == "stock.availability" and event.causationid == "lvl-1"
        assert env.routing_key == "webshop-nl.stock.availability"
        assert env.caused_at == cause.time


def test_a_channel_with_skus_of_its_own_gets_its_figure_under_its_sku() -> None:
    now = datetime(2026, 11, 27, 10, 0, 1, tzinfo=UTC)
    cause = CloudEvent(id="lvl-1", source="erp", type="stock.level", time=now, data={})
    ctx = stock_context(**{"webshop-nl": {"8712345678906": "SKU-1"}})
    mapped = _envelope(ctx, cause, "webshop-nl", "SKU-1", Figure(5), 3, now)
    plain = _envelope(stock_context(), cause, "webshop-nl", "SKU-1", Figure(5), 3, now)
    event = orjson.loads(mapped.body)
    assert event["data"]["sku"] == "8712345678906" and event["subject"] == "8712345678906"
    assert mapped.message_id == plain.message_id  # the same figure, the same id
    other = _envelope(ctx, cause, "webshop-uk", "SKU-1", Figure(5), 3, now)
    assert orjson.loads(other.body)["data"]["sku"] == "SKU-1"  # only that channel's map


def test_envelope_without_the_model_is_the_one_the_model_gives() -> None:
    """caused_envelope (the fan-out hot path) sends the bytes and properties to_channel sends."""
    names = Names("p.")
    now = datetime(2026, 11, 27, 10, 0, 1, 250_000, tzinfo=UTC)
    causes = [
        CloudEvent(id="lvl-1", source="erp", type="stock.level", time=now, data={}),
        CloudEvent(
            id="lvl-2",
            source="erp",
            type="stock.level",
            time=datetime(2026, 11, 27, 9, tzinfo=UTC),
            data={},
            correlationid="order-77",
        ),
    ]
    for cause in causes:
        data = {"channel": "webshop-nl", "sku": "SKU-1", "available": 4, "version": 2}
        fields = {"key": "availability/x", "type": "stock.availability", "subject": "SKU-1"}
        model = to_channel(
            names,
            "webshop-nl",
            caused_event(cause, None, source="hub", time=now, data=data, **fields),
            caused_at=cause.time,
        )
        direct = caused_envelope(names, "webshop-nl", cause, time=now, data=data, **fields)
        assert direct == model
        assert direct.in_outbox(9) == dataclasses.replace(model, outbox_id=9)


def test_the_wire_format_of_an_event_is_fixed() -> None:
    """Adapters parse these bytes: field order, optional fields left out, UTC as Z."""
    body = encode(
        id="e-1",
        source="hub",
        type="stock.availability",
        time=datetime(2026, 11, 27, 10, 0, 1, 250_000, tzinfo=UTC),
        data={"sku": "SKU-1", "available": 4},
        subject="SKU-1",
        causationid="lvl-1",
    )
    assert body == (
        b'{"specversion":"1.0","id":"e-1","source":"hub","type":"stock.availability",'
        b'"time":"2026-11-27T10:00:01.250000Z","datacontenttype":"application/json",'
        b'"subject":"SKU-1","causationid":"lvl-1","data":{"sku":"SKU-1","available":4}}'
    )
