"""Operators see stock propagation: ERP event time to channel publish, per channel."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

pytestmark = pytest.mark.integration


def _count(hub, channel: str) -> float:
    for metric in hub.metrics.stock_propagation_seconds.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count") and sample.labels.get("channel") == channel:
                return sample.value
    return 0.0


async def test_each_published_figure_is_measured_for_its_channel(start_hub, bus) -> None:
    hub = await start_hub()
    channels = hub.table.destinations("hub", "stock.availability", skus=("PROP-1",))
    assert channels
    await bus.publish(
        "erp.stock.level",
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "erp",
            "type": "stock.level",
            "time": datetime.now(UTC).isoformat(),
            "data": {"sku": "PROP-1", "location": "main", "on_hand": 40, "version": 1},
        },
    )
    for channel in channels:
        got = await bus.bodies(bus.names.channel_queue(channel), expect=1)
        assert got and got[0]["type"] == "stock.availability"
    for channel in channels:
        assert _count(hub, channel) == 1


def _event(source: str, type_: str, data: dict) -> dict:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": source,
        "type": type_,
        "time": datetime.now(UTC).isoformat(),
        "data": data,
    }


async def test_an_erp_level_below_the_held_units_is_counted_as_oversold(start_hub, bus) -> None:
    hub = await start_hub()
    level = {"sku": "OVER-1", "location": "main", "on_hand": 10, "version": 1}
    await bus.publish("erp.stock.level", _event("erp", "stock.level", level))
    reserve = {
        "reservation_id": "R-OVER",
        "channel": "webshop-nl",
        "order_ref": "NL-1",
        "lines": [{"sku": "OVER-1", "quantity": 8}],
    }
    await bus.publish("webshop-nl.stock.reserve", _event("webshop-nl", "stock.reserve", reserve))
    answers = await bus.bodies(bus.names.channel_queue("webshop-nl"), expect=3)
    assert "stock.reserved" in {a["type"] for a in answers}
    assert hub.metrics.oversell._value.get() == 0
    # The ERP sold 5 elsewhere: 8 promised, 5 on hand.
    await bus.publish(
        "erp.stock.level", _event("erp", "stock.level", {**level, "on_hand": 5, "version": 2})
    )
    await bus.drain(bus.names.channel_queue("webshop-nl"), expect=0, settle=1.0)
    assert hub.metrics.oversell._value.get() == 1
