"""A channel on an adapter of the merchant's own, named by its path: its orders come in."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from hub.settings import Settings

sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures" / "orders"))
sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures" / "plugins"))
from order_kit import open_world, orders_config, parties, silent

pytestmark = pytest.mark.integration


def acme_uk(data: dict[str, Any]) -> None:
    data["channels"]["webshop-uk"]["adapter"] = "acme_adapter:TRANSLATOR"


async def test_an_order_read_by_a_plugin_adapter_is_taken(isolated: Settings, bus: Any) -> None:
    async with (
        open_world(isolated, bus, orders_config(acme_uk)) as world,
        parties(world, warehouse=silent) as seen,
    ):
        export = {
            "number": "ACME-1",
            "placed": "2026-12-02T08:00:00Z",
            "currency": "GBP",
            "lines": [{"sku": "DESK-1", "qty": 1, "price": "199.00"}],
        }
        await world.send("webshop-uk", "native.acme.order", export)
        [accepted] = await seen["webshop-uk"].wait("order.accepted")
        assert accepted["data"]["channel_order_id"] == "ACME-1"
        await seen["warehouse"].wait("pick.request")
        # Its native types are named after the translator, not the path.
        await world.send("webshop-uk", "native.acme_adapter:TRANSLATOR.order", export)
        [parked] = await bus.drain(bus.names.dead_queue, expect=1)
        assert parked.headers["x-hub-error-type"] == "malformed"  # not a type name at all
