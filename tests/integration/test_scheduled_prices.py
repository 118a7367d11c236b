"""Prices the ERP sets ahead start on their day: not shown early, not checked early."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from hub.orders.price_schedule import release_once
from hub.router import Router
from hub.settings import Settings

sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures" / "orders"))
from order_kit import World, open_world, order_data, parties, silent

pytestmark = pytest.mark.integration

HOUR = 3600.0


@pytest.fixture
async def world(isolated: Settings, bus: Any) -> AsyncIterator[World]:
    async with open_world(isolated, bus) as w:
        yield w


def price(amount: str, version: int, valid_from: datetime | None = None) -> dict[str, Any]:
    return {
        "sku": "DESK-1",
        "price_list": "nl-retail",
        "price": {"amount": amount, "currency": "EUR"},
        "vat_rate": "0.21",
        "version": version,
        "valid_from": valid_from.isoformat() if valid_from else None,
    }


async def in_force(world: World) -> tuple[Decimal, int]:
    row = await world.db.fetchrow(
        "SELECT amount, version FROM catalog_prices"
        " WHERE sku = 'DESK-1' AND price_list = 'nl-retail'"
    )
    assert row is not None
    return row["amount"], row["version"]


async def release(world: World) -> int:
    hub = world.hub
    return await release_once(hub, Router(hub.table, hub.names, hub.config), world.clock.now)


def counted(world: World, what: str) -> float:
    return (
        world.hub.metrics.registry.get_sample_value("hub_price_schedule_total", {"what": what}) or 0
    )


async def test_a_price_set_ahead_is_kept_until_it_starts_then_shown_and_checked(
    world: World,
) -> None:
    async with parties(world, warehouse=silent) as seen:
        shop = seen["webshop-nl"]
        await shop.wait("price.changed", 3)  # the seeded catalog
        start = world.clock.now + timedelta(hours=2)
        await world.send("erp", "price.changed", price("149.00", 2, start))
        await world.until("SELECT count(*) FROM catalog_prices_scheduled", expect=1)
        assert counted(world, "scheduled") == 1
        assert await in_force(world) == (Decimal("199.00"), 1)
        assert await release(world) == 0  # not yet

        # Before it starts, an order at the sale price is refused: the list price is in force.
        await world.place(
            "webshop-nl", order_data("webshop-nl", "N-EARLY", [("DESK-1", 1, "149.00")])
        )
        [rejected] = await shop.wait("order.rejected")
        assert rejected["data"]["reasons"][0]["code"] == "price_mismatch"
        assert len(shop.of("price.changed")) == 3  # no channel was shown it early

        world.clock.advance(2 * HOUR + 1)
        assert await release(world) == 1
        assert counted(world, "released") == 1
        assert await in_force(world) == (Decimal("149.00"), 2)
        [shown] = (await shop.wait("price.changed", 4))[3:]
        assert shown["data"]["price"]["amount"] == "149.00"
        assert shown["source"] == "erp"  # the ERP's event, as it sent it
        await seen["bolcom"].wait("price.changed", 4)
        assert not seen["webshop-uk"].of("price.changed")[3:]  # another list's channel
        await world.place(
            "webshop-nl", order_data("webshop-nl", "N-SALE", [("DESK-1", 1, "149.00")])
        )
        [accepted] = await shop.wait("order.accepted")
        assert accepted["data"]["channel_order_id"] == "N-SALE"
        assert await world.db.fetchval("SELECT count(*) FROM catalog_prices_scheduled") == 0


async def test_a_newer_price_supersedes_one_set_ahead_and_a_stale_one_is_not_kept(
    world: World,
) -> None:
    """The latest version wins, as for every price: the regular price changed after a
    promotion was set ahead supersedes it, until the ERP sends the promotion again."""
    promo_starts = world.clock.now + timedelta(days=2)
    await world.send("erp", "price.changed", price("149.00", 2, promo_starts))
    await world.until("SELECT count(*) FROM catalog_prices_scheduled", expect=1)
    await world.send("erp", "price.changed", price("209.00", 3))  # the regular price, now
    await world.until(
        "SELECT version FROM catalog_prices WHERE sku = 'DESK-1' AND price_list = 'nl-retail'",
        expect=3,
    )
    # Set ahead again under an older version than the price in force: not kept.
    await world.send("erp", "price.changed", price("139.00", 3, promo_starts))
    await world.counted("hub_catalog_stale_dropped_total", {"type": "price.changed"}, 1)
    assert await world.db.fetchval("SELECT count(*) FROM catalog_prices_scheduled") == 1
    # The promotion sent again, newer: it starts on its day.
    await world.send("erp", "price.changed", price("149.00", 4, promo_starts))
    await world.until("SELECT count(*) FROM catalog_prices_scheduled", expect=2)
    world.clock.advance(2 * 24 * HOUR)
    assert await release(world) == 2
    assert counted(world, "superseded") == 1 and counted(world, "released") == 1
    assert await in_force(world) == (Decimal("149.00"), 4)


async def test_a_scheduled_price_that_cannot_be_read_is_parked_and_the_rest_released(
    world: World,
) -> None:
    starts = world.clock.now + timedelta(hours=1)
    await world.send("erp", "price.changed", price("149.00", 2, starts))
    lamp = {**price("19.00", 2, starts), "sku": "LAMP-1"}
    await world.send("erp", "price.changed", lamp)
    await world.until("SELECT count(*) FROM catalog_prices_scheduled", expect=2)
    await world.db.execute(
        "UPDATE catalog_prices_scheduled SET event = '{\"not\": \"an event\"}' WHERE sku = 'DESK-1'"
    )
    world.clock.advance(HOUR + 1)
    assert await release(world) == 2
    assert counted(world, "parked") == 1 and counted(world, "released") == 1
    [parked] = await world.bus.drain(world.bus.names.dead_queue, expect=1)
    assert parked.headers["x-hub-error-type"] == "schema_violation"
    assert "no longer valid" in parked.headers["x-hub-error"]
    assert parked.headers["x-hub-original-exchange"] == world.bus.names.inbound_exchange
    assert parked.routing_key == parked.headers["x-hub-original-routing-key"]
    assert parked.routing_key.endswith("price.changed")
    stored = orjson.loads(parked.body)  # kept as it was stored, under an id of its own
    assert stored == {"not": "an event", "id": parked.message_id}
    lamp_price = await world.db.fetchval(
        "SELECT amount FROM catalog_prices WHERE sku = 'LAMP-1' AND price_list = 'nl-retail'"
    )
    assert lamp_price == Decimal("19.00")
    assert await in_force(world) == (Decimal("199.00"), 1)
    assert await world.db.fetchval("SELECT count(*) FROM catalog_prices_scheduled") == 0


async def test_a_due_price_released_late_after_a_newer_price_is_superseded(
    world: World,
) -> None:
    """The hub was down when the sale should have started; meanwhile the ERP sent a newer
    price: the sale, released late, must not overwrite it."""
    async with parties(world) as seen:
        shop = seen["webshop-nl"]
        await shop.wait("price.changed", 3)
        await world.send(
            "erp", "price.changed", price("149.00", 2, world.clock.now + timedelta(hours=1))
        )
        await world.until("SELECT count(*) FROM catalog_prices_scheduled", expect=1)
        world.clock.advance(2 * HOUR)
        await world.send("erp", "price.changed", price("179.00", 5))
        await shop.wait("price.changed", 4)
        assert await release(world) == 1
        assert counted(world, "superseded") == 1
        assert await in_force(world) == (Decimal("179.00"), 5)
        assert [p["data"]["price"]["amount"] for p in shop.of("price.changed")[3:]] == ["179.00"]


async def test_a_running_hub_releases_a_price_when_it_starts(start_hub, bus) -> None:
    await start_hub(price_schedule_interval_s=0.2)
    starts = datetime.now(UTC) + timedelta(seconds=1.5)
    await bus.publish(
        "erp.price.changed",
        {
            "specversion": "1.0",
            "id": "sale-1",
            "source": "erp",
            "type": "price.changed",
            "time": datetime.now(UTC).isoformat(),
            "data": price("149.00", 2, starts),
        },
    )
    [shown] = await bus.bodies(bus.names.channel_queue("webshop-nl"), expect=1, timeout=15)
    assert shown["source"] == "erp" and shown["data"]["price"]["amount"] == "149.00"
    assert datetime.now(UTC) >= starts  # not before its time


async def test_a_parked_scheduled_price_resubmitted_corrected_comes_into_force(
    world: World, isolated: Settings, tmp_path: Path
) -> None:
    """Its data no longer reads (a schema changed since): parked under an id of its own, so
    the corrected copy is not taken for the event the hub once scheduled."""
    starts = world.clock.now + timedelta(hours=1)
    await world.send("erp", "price.changed", price("149.00", 2, starts))
    await world.until("SELECT count(*) FROM catalog_prices_scheduled", expect=1)
    await world.db.execute(
        "UPDATE catalog_prices_scheduled SET event = jsonb_set(event, '{data,price}', '\"149\"')"
    )
    world.clock.advance(HOUR + 1)
    assert await release(world) == 1 and counted(world, "parked") == 1
    env = {
        **os.environ,
        "HUB_DATABASE_URL": isolated.database_url,
        "HUB_BROKER_URL": isolated.broker_url,
        "HUB_NAME_PREFIX": isolated.name_prefix,
        "HUB_CONFIG_PATH": str(isolated.config_path),
    }
    fixed = tmp_path / "data.json"
    fixed.write_bytes(orjson.dumps(price("149.00", 2, starts)))
    hub_bin = str(Path(sys.executable).parent / "hub")
    for args in (["sweep"], ["resubmit", "1", "--data", str(fixed)]):
        done = await asyncio.to_thread(
            subprocess.run, [hub_bin, "dlq", *args], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr
    await world.until(
        "SELECT version FROM catalog_prices WHERE sku = 'DESK-1' AND price_list = 'nl-retail'",
        expect=2,
    )
    assert await in_force(world) == (Decimal("149.00"), 2)
