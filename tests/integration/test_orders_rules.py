"""Order intake rules on the real broker and database: each rejection, parking, and the race."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.settings import Settings
from hub.stock.receipts_clock import ReceiptsClock

sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures" / "orders"))
from order_kit import (
    ADDRESS_GB,
    ADDRESS_NL,
    World,
    open_world,
    order_data,
    orders_config,
    parties,
    silent,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def world(isolated: Settings, bus: Any) -> AsyncIterator[World]:
    async with open_world(isolated, bus) as w:
        yield w


@pytest.mark.parametrize(
    ("lines", "extra", "code"),
    [
        ([("NOPE-1", 1, "1.00")], {}, "unknown_sku"),
        ([("DESK-1", 10_000, "199.00")], {}, "invalid_quantity"),
        ([("DESK-1", 1, "149.00")], {}, "price_mismatch"),
        ([("DESK-1", 1, "199.00")], {"currency": "USD"}, "currency_mismatch"),
        ([("DESK-1", 1, "199.00")], {"vat_rate": "0.09"}, "vat_mismatch"),
        (
            [("DESK-1", 1, "199.00")],
            {"address": {**ADDRESS_NL, "postal_code": ""}},
            "address_incomplete",
        ),
        ([("LAMP-1", 4, "25.50")], {}, "out_of_stock"),
    ],
)
async def test_each_rule_rejects_with_its_reason_and_reserves_nothing(
    world: World, lines: list[tuple[str, int, str]], extra: dict[str, Any], code: str
) -> None:
    vat = extra.pop("vat_rate", None)
    data = order_data("bolcom", f"B-{code}", lines, **extra)
    if vat is not None:
        data["lines"][0]["vat_rate"] = vat
    async with parties(world) as seen:
        await world.place("bolcom", data)
        [rejected] = await seen["bolcom"].wait("order.rejected")
        reasons = rejected["data"]["reasons"]
        assert code in {r["code"] for r in reasons}, reasons
        assert all(r["message"] for r in reasons)
        await asyncio.sleep(0.3)
        assert not seen["erp"].of("salesorder.create")
    assert await world.db.fetchval("SELECT count(*) FROM stock_reservation_lines") == 0
    await world.state("bolcom", f"B-{code}", "rejected")


async def test_a_zero_quantity_fails_the_schema_and_is_parked_with_the_reason(
    world: World,
) -> None:
    data = order_data("bolcom", "B-ZERO", [("DESK-1", 0, "199.00")])
    await world.place("bolcom", data)
    [parked] = await world.bus.drain(world.bus.names.dead_queue, expect=1)
    assert parked.headers["x-hub-error-type"] == "schema_violation"
    assert "quantity" in str(parked.headers["x-hub-error"])
    assert await world.order("bolcom", "B-ZERO") is None


async def test_an_order_for_another_channel_is_parked(world: World) -> None:
    await world.place("bolcom", order_data("webshop-nl", "SPOOF", [("DESK-1", 1, "199.00")]))
    [parked] = await world.bus.drain(world.bus.names.dead_queue, expect=1)
    assert parked.headers["x-hub-error-type"] == "business_rule"
    assert await world.db.fetchval("SELECT count(*) FROM orders") == 0


async def test_backorder_channel_accepts_a_partly_available_order(world: World) -> None:
    async with parties(world) as seen:
        data = order_data("webshop-nl", "W-BACK", [("LAMP-1", 5, "25.50")])
        await world.place("webshop-nl", data)
        shop = seen["webshop-nl"]
        await shop.wait("order.accepted")
        [status] = [
            b for b in await shop.wait("order.status") if b["data"]["status"] != "confirmed"
        ]
        assert status["data"]["status"] == "backordered"
        assert "LAMP-1" in status["data"]["detail"]
        assert await world.held("LAMP-1") == 5  # 3 in stock and 2 backordered


async def test_two_channels_racing_for_the_last_unit_one_wins(world: World) -> None:
    async with parties(world) as seen:
        nl = order_data("bolcom", "RACE-NL", [("LAST-1", 1, "9.99")])
        uk = order_data(
            "webshop-uk", "RACE-UK", [("LAST-1", 1, "9.99")], currency="GBP", address=ADDRESS_GB
        )
        await asyncio.gather(world.place("bolcom", nl), world.place("webshop-uk", uk))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        answers: list[dict[str, Any]] = []
        while loop.time() < deadline and len(answers) < 2:
            answers = [
                b
                for shop in ("bolcom", "webshop-uk")
                for b in seen[shop].bodies
                if b["type"] in {"order.accepted", "order.rejected"}
            ]
            await asyncio.sleep(0.05)
        assert sorted(b["type"] for b in answers) == ["order.accepted", "order.rejected"]
        [rejected] = [b for b in answers if b["type"] == "order.rejected"]
        assert rejected["data"]["reasons"][0]["code"] == "out_of_stock"
        assert await world.held("LAST-1") == 1  # never more held than the one on hand
        figures = [
            b["data"]["available"]
            for shop in ("bolcom", "webshop-uk", "webshop-nl")
            for b in seen[shop].of("stock.availability")
        ]
        assert all(f >= 0 for f in figures)


async def test_a_backorder_keeps_the_units_that_arrive_before_the_erp_counts_it(
    world: World,
) -> None:
    """Units the backorder waits for must not go on sale elsewhere when they arrive, and the
    units it holds beyond the stock are a promise, not an oversell."""
    async with parties(world, erp=silent) as seen:  # the ERP has not counted the order yet
        await world.place("webshop-nl", order_data("webshop-nl", "W-B1", [("LAMP-1", 5, "25.50")]))
        await seen["webshop-nl"].wait("order.accepted")
        assert await world.held("LAMP-1") == 5  # 3 in stock, 2 to come
        await world.place("bolcom", order_data("bolcom", "B-LAST", [("LAST-1", 1, "9.99")]))
        await seen["bolcom"].wait("order.accepted")
        # Nothing left of LAST-1: the backorder channel still takes the order, for later.
        await world.place("webshop-nl", order_data("webshop-nl", "W-B2", [("LAST-1", 2, "9.99")]))
        await seen["webshop-nl"].wait("order.accepted", 2)
        assert await world.held("LAST-1") == 3
        for version, on_hand in ((2, 3), (3, 10)):  # a level as it was, then a receipt of 7
            level = {"sku": "LAMP-1", "location": "main", "on_hand": on_hand, "version": version}
            await world.send("erp", "stock.level", level)
        await world.until("SELECT on_hand FROM stock_ledger WHERE sku = 'LAMP-1'", expect=10)
        # 10 on hand, 5 held for W-B1: a marketplace order for 6 is short, for 5 it fits.
        await world.place("bolcom", order_data("bolcom", "B-L6", [("LAMP-1", 6, "25.50")]))
        [rejected] = await seen["bolcom"].wait("order.rejected")
        assert "6 of SKU LAMP-1 ordered, 5 available" in rejected["data"]["reasons"][0]["message"]
        await world.place("bolcom", order_data("bolcom", "B-L5", [("LAMP-1", 5, "25.50")]))
        await seen["bolcom"].wait("order.accepted", 2)
        assert await world.held("LAMP-1") == 10
    assert world.hub.metrics.registry.get_sample_value("hub_oversell_total") == 0


async def test_a_backorder_the_erp_has_taken_over_is_not_an_oversell(world: World) -> None:
    """Once the ERP counts the backorder its committed units take the net below zero: that is
    the ERP's backorder now, with nothing of the hub's held above the stock."""
    async with parties(world) as seen:  # the ERP creates the sales order
        await world.place("webshop-nl", order_data("webshop-nl", "W-B3", [("LAMP-1", 5, "25.50")]))
        [accepted] = await seen["webshop-nl"].wait("order.accepted")
        await seen["warehouse"].wait("pick.request")  # the ERP's number is recorded
        assert await world.held("LAMP-1") == 5
        level = {
            "sku": "LAMP-1",
            "location": "main",
            "on_hand": 3,
            "committed": 5,
            "version": 2,
            "included_order_ids": ["SO-W-B3"],
        }
        await world.send("erp", "stock.level", level)
        await world.until("SELECT committed FROM stock_ledger WHERE sku = 'LAMP-1'", expect=5)
        assert await world.held("LAMP-1") == 0  # handed over in the same transaction
        assert accepted["data"]["channel_order_id"] == "W-B3"
    assert world.hub.metrics.registry.get_sample_value("hub_oversell_total") == 0


async def test_backordered_units_that_stock_arrived_for_count_when_the_stock_drops_again(
    world: World,
) -> None:
    """Once a receipt covers a backorder, its units are held stock like any other: the ERP
    selling them elsewhere before it counts the order is an oversell, and is counted."""

    def backordered() -> Any:
        return world.db.fetchval(
            "SELECT sum(backordered) FROM stock_reservation_lines WHERE sku = 'LAMP-1' AND active"
        )

    async with parties(world, erp=silent) as seen:  # the ERP has not counted the order yet
        await world.place("webshop-nl", order_data("webshop-nl", "W-B4", [("LAMP-1", 5, "25.50")]))
        await seen["webshop-nl"].wait("order.accepted")
        assert await backordered() == 2  # 3 in stock, 2 to come
        for version, on_hand in ((2, 4), (3, 10)):  # one unit arrives, then a receipt of 6
            level = {"sku": "LAMP-1", "location": "main", "on_hand": on_hand, "version": version}
            await world.send("erp", "stock.level", level)
            await world.until(
                "SELECT on_hand FROM stock_ledger WHERE sku = 'LAMP-1'", expect=on_hand
            )
            await world.until(
                "SELECT sum(backordered) FROM stock_reservation_lines WHERE sku = 'LAMP-1'",
                expect=1 if on_hand == 4 else 0,
            )
        oversold = world.hub.metrics.registry.get_sample_value("hub_oversell_total")
        assert oversold == 0
        level = {"sku": "LAMP-1", "location": "main", "on_hand": 3, "version": 4}
        await world.send("erp", "stock.level", level)  # sold elsewhere: 5 held, 3 left
        await world.until("SELECT on_hand FROM stock_ledger WHERE sku = 'LAMP-1'", expect=3)
        for _ in range(100):
            if world.hub.metrics.registry.get_sample_value("hub_oversell_total"):
                break
            await asyncio.sleep(0.05)
    assert world.hub.metrics.registry.get_sample_value("hub_oversell_total") == 1


def backorders_up_to_two(data: dict[str, Any]) -> None:
    data["channels"]["webshop-nl"]["orders"]["max_backordered"] = 2


async def test_a_backorder_beyond_the_channels_limit_is_refused(
    isolated: Settings, bus: Any
) -> None:
    """The shop takes a backorder only while at most 2 lamps are promised beyond the 3 in
    stock, its own open backorders and those the ERP has taken over alike."""
    async with (
        open_world(isolated, bus, orders_config(backorders_up_to_two)) as world,
        parties(world, warehouse=silent) as seen,
    ):
        shop = seen["webshop-nl"]
        await world.place("webshop-nl", order_data("webshop-nl", "W-B1", [("LAMP-1", 4, "25.50")]))
        await world.state("webshop-nl", "W-B1", "picking")  # 1 beyond the stock
        await world.place("webshop-nl", order_data("webshop-nl", "W-B2", [("LAMP-1", 2, "25.50")]))
        [refused] = await shop.wait("order.rejected")
        assert refused["data"]["channel_order_id"] == "W-B2"  # 2 more would make 3 beyond
        assert refused["data"]["reasons"][0]["code"] == "out_of_stock"
        await world.place("webshop-nl", order_data("webshop-nl", "W-B3", [("LAMP-1", 1, "25.50")]))
        await world.state("webshop-nl", "W-B3", "picking")  # 2 beyond: the limit
        assert await world.held("LAMP-1") == 5
        # bol.com does not backorder at all: nothing is left for it.
        await world.place("bolcom", order_data("bolcom", "B-B4", [("LAMP-1", 1, "25.50")]))
        await world.state("bolcom", "B-B4", "rejected")
        # The ERP takes W-B1 over (its 4 committed against 3 on hand): its unit beyond the
        # stock is the ERP's promise now, and still counts against the limit.
        level = {
            "sku": "LAMP-1",
            "location": "main",
            "on_hand": 3,
            "committed": 4,
            "version": 2,
            "included_order_ids": ["SO-W-B1"],
        }
        await world.send("erp", "stock.level", level)
        await world.until("SELECT committed FROM stock_ledger WHERE sku = 'LAMP-1'", expect=4)
        assert await world.held("LAMP-1") == 1  # W-B3's, beyond the stock
        await world.place("webshop-nl", order_data("webshop-nl", "W-B5", [("LAMP-1", 1, "25.50")]))
        refusals = await shop.wait("order.rejected", 2)
        assert refusals[1]["data"]["channel_order_id"] == "W-B5"


def sells_incoming_within_a_week(data: dict[str, Any]) -> None:
    data["channels"]["webshop-nl"]["stock"]["incoming_within_days"] = 7


async def test_a_channel_selling_incoming_stock_takes_backorders_up_to_what_is_coming(
    isolated: Settings, bus: Any
) -> None:
    """webshop-nl sells the receipts the ERP expects within a week: it is shown them, takes
    backorders for them and no further, and a receipt coming within the week as days pass
    is shown then (the receipts clock)."""
    async with (
        open_world(isolated, bus, orders_config(sells_incoming_within_a_week)) as world,
        parties(world, warehouse=silent) as seen,
    ):
        today = world.clock.now.date()
        shown = (
            "SELECT available FROM stock_published WHERE channel = 'webshop-nl' AND sku = 'LAMP-1'"
        )
        level = {
            "sku": "LAMP-1",
            "location": "main",
            "on_hand": 3,
            "version": 2,
            "incoming": [
                {"quantity": 4, "expected_date": (today + timedelta(days=3)).isoformat()},
                {"quantity": 10, "expected_date": (today + timedelta(days=30)).isoformat()},
            ],
        }
        await world.send("erp", "stock.level", level)
        await world.until(shown, expect=3 - 2 + 4)  # on hand less the shop's buffer of 2, +4

        shop = seen["webshop-nl"]
        await world.place("webshop-nl", order_data("webshop-nl", "W-I1", [("LAMP-1", 6, "25.50")]))
        await world.state("webshop-nl", "W-I1", "picking")  # 3 beyond the stock, 4 coming
        await world.until(shown, expect=0)
        await world.place("webshop-nl", order_data("webshop-nl", "W-I2", [("LAMP-1", 2, "25.50")]))
        [refused] = await shop.wait("order.rejected")
        assert refused["data"]["channel_order_id"] == "W-I2"  # 5 beyond: more than is coming
        assert refused["data"]["reasons"][0]["code"] == "out_of_stock"
        assert await world.held("LAMP-1") == 6

        world.clock.advance(timedelta(days=25).total_seconds())  # the 10 are a week away now
        await ReceiptsClock(world.hub).tick()
        await world.until(shown, expect=3 - 6 - 2 + 4 + 10)
        await world.place("webshop-nl", order_data("webshop-nl", "W-I3", [("LAMP-1", 2, "25.50")]))
        await world.state("webshop-nl", "W-I3", "picking")
