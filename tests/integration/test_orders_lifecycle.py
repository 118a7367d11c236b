"""Cancellations, returns and durable timeouts of orders, with a clock the test moves."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.db import migrate
from hub.orders.cli import load_order
from hub.orders.timeouts import sweep_once
from hub.settings import Settings

sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures" / "orders"))
from order_kit import (
    STOCK,
    World,
    carrier_ships,
    open_world,
    order_data,
    orders_config,
    parties,
    silent,
    warehouse_picks,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def world(isolated: Settings, bus: Any) -> AsyncIterator[World]:
    async with open_world(isolated, bus) as w:
        yield w


def cancel(coid: str, by: str = "channel", channel: str = "bolcom") -> dict[str, Any]:
    return {
        "channel": channel,
        "channel_order_id": coid,
        "reason": "buyer changed mind",
        "cancelled_by": by,
    }


async def test_cancel_before_shipment_releases_stock_and_informs_erp_and_warehouse(
    world: World,
) -> None:
    async with parties(world, carrier=silent) as seen:
        await world.place("bolcom", order_data("bolcom", "B-C1", [("LAMP-1", 2, "25.50")]))
        await seen["carrier"].wait("shipment.request")  # picked, not shipped
        assert await world.held("LAMP-1") == 2
        await world.send("bolcom", "order.cancelled", cancel("B-C1"))
        [erp_cancel] = await seen["erp"].wait("salesorder.cancel")
        assert erp_cancel["data"]["erp_order_number"] == "SO-B-C1"
        await seen["warehouse"].wait("pick.cancel")
        told = await seen["bolcom"].wait("order.status", 2)
        assert told[-1]["data"]["status"] == "cancelled"
        assert told[-1]["dataschemaversion"] == "1.1"  # stamped by the hub: cancelled is new
        assert erp_cancel["dataschemaversion"] == "1.0"  # the whole order: as 1.0 reads it
        assert told[-1]["data"]["cancelled"] == {
            "by": "channel",
            "whole_order": True,
            "lines": [{"line_id": "L1", "sku": "LAMP-1", "quantity": 2}],
        }
        await world.state("bolcom", "B-C1", "cancelled")
        assert await world.held("LAMP-1") == 0
        assert erp_cancel["data"]["lines"] == []  # the whole order
        # The packed parcel's label is dropped at the carrier; one it makes all the same is
        # cancelled again, and nothing is shipped, printed or asked back.
        [request] = seen["carrier"].of("shipment.request")
        [dropped] = await seen["carrier"].wait("shipment.cancel")
        assert dropped["data"]["shipment_id"] == request["data"]["shipment_id"]
        [(_, created)] = carrier_ships(request)
        await world.send("carrier", "shipment.created", created)
        await seen["carrier"].wait("shipment.cancel", 2)
        await world.state("bolcom", "B-C1", "cancelled")
        assert not seen["erp"].of("return.requested")


async def test_cancel_by_the_erp_releases_stock_and_tells_the_channel(world: World) -> None:
    async with parties(world, warehouse=silent) as seen:
        await world.place("bolcom", order_data("bolcom", "B-C2", [("DESK-1", 1, "199.00")]))
        await seen["warehouse"].wait("pick.request")
        await world.send("erp", "order.cancelled", cancel("B-C2", by="erp"))
        await world.state("bolcom", "B-C2", "cancelled")
        await seen["warehouse"].wait("pick.cancel")
        assert not seen["erp"].of("salesorder.cancel")  # the ERP cancelled it itself
        assert await world.held("DESK-1") == 0
        told = await seen["bolcom"].wait("order.status", 2)  # confirmed, cancelled
        assert told[-1]["data"]["cancelled"]["by"] == "erp"  # so the channel cancels it too


async def test_cancel_after_shipment_becomes_a_return_then_return_received(
    world: World,
) -> None:
    async with parties(world) as seen:
        await world.place("bolcom", order_data("bolcom", "B-R1", [("DESK-1", 1, "199.00")]))
        [accepted] = await seen["bolcom"].wait("order.accepted")
        await seen["bolcom"].wait("shipment.tracking")
        await world.send("bolcom", "order.cancelled", cancel("B-R1"))
        [ret] = await seen["erp"].wait("return.requested")
        assert ret["data"]["lines"] == [{"sku": "DESK-1", "quantity": 1, "line_id": "L1"}]
        await seen["warehouse"].wait("return.requested")
        assert not seen["erp"].of("salesorder.cancel")
        await world.state("bolcom", "B-R1", "return_requested")
        received = {
            "order_id": accepted["data"]["order_id"],
            "return_id": ret["data"]["return_id"],
            "lines": [{"sku": "DESK-1", "quantity": 1, "condition": "sellable"}],
        }
        await world.send("warehouse", "return.received", received)
        await seen["erp"].wait("return.received")
        await seen["bolcom"].wait("return.received")
        await world.state("bolcom", "B-R1", "returned")
        last = (await seen["bolcom"].wait("order.status", 3))[-1]
        assert last["data"]["status"] == "returned"


def erp_stalls(data: dict[str, Any]) -> None:
    data["channels"]["erp"].setdefault("orders", {})["on_timeout"] = "stall"


@pytest.fixture
async def patient_world(isolated: Settings, bus: Any) -> AsyncIterator[World]:
    """A world whose ERP rules keep an unanswered order waiting instead of rejecting it."""
    async with open_world(isolated, bus, orders_config(erp_stalls)) as w:
        yield w


async def run_out_of_retries(world: World, seconds: float, retries: int, request: Any) -> None:
    """Move the clock past each deadline; every sweep acts on the one order."""
    for attempt in range(1, retries + 1):
        world.clock.advance(seconds + 1)
        assert await sweep_once(world.hub, world.clock.now) == 1
        await request(attempt + 1)
    world.clock.advance(seconds + 1)
    assert await sweep_once(world.hub, world.clock.now) == 1


async def test_silent_erp_is_asked_again_then_the_order_is_rejected_and_its_stock_released(
    world: World,
) -> None:
    rules = world.hub.config.channels["erp"].orders
    assert rules.on_timeout == "reject"  # the default
    async with parties(world, erp=silent) as seen:
        await world.place("bolcom", order_data("bolcom", "B-T2", [("DESK-1", 2, "199.00")]))
        [create] = await seen["erp"].wait("salesorder.create")
        assert await world.held("DESK-1") == 2

        async def asked_again(count: int) -> None:
            await seen["erp"].wait("salesorder.create", count)

        await run_out_of_retries(world, rules.erp_timeout_seconds, rules.max_retries, asked_again)
        [rejected] = await seen["bolcom"].wait("order.rejected")
        [reason] = rejected["data"]["reasons"]
        assert reason["code"] == "timeout" and "erp" in reason["message"]
        await world.state("bolcom", "B-T2", "rejected")
        assert await world.held("DESK-1") == 0
        [withdrawn] = await seen["erp"].wait("salesorder.cancel")
        assert withdrawn["data"]["erp_order_number"] is None
        assert not seen["warehouse"].of("pick.cancel")  # never asked to pick
        row = await world.order("bolcom", "B-T2")
        assert row is not None and row["awaiting"] is None and row["deadline"] is None
        world.clock.advance(10 * rules.erp_timeout_seconds)
        assert await sweep_once(world.hub, world.clock.now) == 0
        # The ERP creates it after all: the hub withdraws that sales order, nothing moves on.
        order_id = create["data"]["order_id"]
        await world.send(
            "erp", "salesorder.created", {"order_id": order_id, "erp_order_number": "SO-LATE2"}
        )
        cancels = await seen["erp"].wait("salesorder.cancel", 2)
        assert cancels[-1]["data"]["erp_order_number"] == "SO-LATE2"
        assert not seen["warehouse"].of("pick.request")
        await world.state("bolcom", "B-T2", "rejected")


async def test_silent_warehouse_gets_the_order_rejected_and_withdrawn_everywhere(
    world: World,
) -> None:
    rules = world.hub.config.channels["warehouse"].orders
    async with parties(world, warehouse=silent) as seen:
        await world.place("bolcom", order_data("bolcom", "B-T3", [("LAMP-1", 3, "25.50")]))
        await seen["warehouse"].wait("pick.request")
        assert await world.held("LAMP-1") == 3

        async def asked_again(count: int) -> None:
            await seen["warehouse"].wait("pick.request", count)

        await run_out_of_retries(
            world, rules.warehouse_timeout_seconds, rules.max_retries, asked_again
        )
        [rejected] = await seen["bolcom"].wait("order.rejected")
        assert rejected["data"]["reasons"][0]["code"] == "timeout"
        await world.state("bolcom", "B-T3", "rejected")
        assert await world.held("LAMP-1") == 0
        [erp_cancel] = await seen["erp"].wait("salesorder.cancel")
        assert erp_cancel["data"]["erp_order_number"] == "SO-B-T3"
        [pick_cancel] = await seen["warehouse"].wait("pick.cancel")
        assert "warehouse" in pick_cancel["data"]["reason"]


async def test_a_silent_carrier_stalls_the_order_since_its_goods_are_packed(world: World) -> None:
    rules = world.hub.config.channels["carrier"].orders
    assert rules.on_timeout == "reject"

    def picks_in_three_boxes(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        return [(t, {**d, "parcels": 3}) for t, d in warehouse_picks(body)]

    async with parties(world, warehouse=picks_in_three_boxes, carrier=silent) as seen:
        await world.place("bolcom", order_data("bolcom", "B-T4", [("LAMP-1", 1, "25.50")]))
        await seen["carrier"].wait("shipment.request")

        async def asked_again(count: int) -> None:
            await seen["carrier"].wait("shipment.request", count)

        await run_out_of_retries(
            world, rules.warehouse_timeout_seconds, rules.max_retries, asked_again
        )
        await world.state("bolcom", "B-T4", "stalled")
        asked = seen["carrier"].of("shipment.request")
        assert [len(a["data"]["parcels"]) for a in asked] == [3] * len(asked)  # resent alike
        statuses = [b["data"]["status"] for b in seen["bolcom"].of("order.status")]
        assert statuses[-1] == "stalled"
        assert not seen["bolcom"].of("order.rejected")
        assert not seen["erp"].of("salesorder.cancel")
        assert await world.held("LAMP-1") == 1  # packed goods stay reserved


async def test_silent_erp_is_asked_again_then_the_order_stalls_when_so_configured(
    patient_world: World,
) -> None:
    world = patient_world
    rules = world.hub.config.channels["erp"].orders
    assert rules.on_timeout == "stall"
    async with parties(world, erp=silent) as seen:
        await world.place("bolcom", order_data("bolcom", "B-T1", [("DESK-1", 1, "199.00")]))
        await seen["erp"].wait("salesorder.create")
        assert await sweep_once(world.hub, world.clock.now) == 0  # not overdue yet
        for attempt in range(1, rules.max_retries + 1):
            world.clock.advance(rules.erp_timeout_seconds + 1)
            assert await sweep_once(world.hub, world.clock.now) == 1
            creates = await seen["erp"].wait("salesorder.create", attempt + 1)
            assert len({c["id"] for c in creates}) == attempt + 1  # each re-send is a new id
        world.clock.advance(rules.erp_timeout_seconds + 1)
        assert await sweep_once(world.hub, world.clock.now) == 1
        [stalled] = [
            b for b in await seen["bolcom"].wait("order.status") if b["data"]["status"] == "stalled"
        ]
        assert "erp" in stalled["data"]["detail"]
        await world.state("bolcom", "B-T1", "stalled")
        world.clock.advance(10 * rules.erp_timeout_seconds)
        assert await sweep_once(world.hub, world.clock.now) == 0  # an alert, not a retry storm
        # A late answer resumes the order.
        order_id = creates[0]["data"]["order_id"]
        await world.send(
            "erp", "salesorder.created", {"order_id": order_id, "erp_order_number": "SO-LATE"}
        )
        await seen["warehouse"].wait("pick.request")
        await world.state("bolcom", "B-T1", "shipped")  # the warehouse and carrier answer
        row = await world.order("bolcom", "B-T1")
        assert row is not None and row["erp_order_number"] == "SO-LATE"


def picks_one_unit(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    if body["type"] != "pick.request":
        return []
    data = body["data"]
    lines = [{**line, "quantity": 1} for line in data["lines"]]
    return [("pick.completed", {"order_id": data["order_id"], "lines": lines})]


async def test_a_short_pick_ships_partially_and_the_rest_follows(world: World) -> None:
    async with parties(world, warehouse=picks_one_unit) as seen:
        await world.place("bolcom", order_data("bolcom", "B-P1", [("DESK-1", 3, "199.00")]))
        shop = seen["bolcom"]
        [first] = await shop.wait("shipment.tracking")
        assert first["data"]["lines"][0]["quantity"] == 1
        await world.state("bolcom", "B-P1", "partially_shipped")
        partial = [b for b in shop.of("order.status") if b["data"]["status"] != "confirmed"]
        assert partial[-1]["data"]["status"] == "partially_shipped"
        # The warehouse is asked again for what is left when its answer is overdue.
        world.clock.advance(
            world.hub.config.channels["warehouse"].orders.warehouse_timeout_seconds + 1
        )
        assert await sweep_once(world.hub, world.clock.now) == 1
        [_, again] = await seen["warehouse"].wait("pick.request", 2)
        assert again["data"]["lines"][0]["quantity"] == 2
        await shop.wait("shipment.tracking", 2)
        await world.send(
            "warehouse",
            "pick.completed",
            {
                "order_id": first["data"]["order_id"],
                "lines": [{"line_id": "L1", "sku": "DESK-1", "quantity": 1}],
            },
        )
        trackings = await shop.wait("shipment.tracking", 3)
        assert len({t["data"]["shipment_id"] for t in trackings}) == 3
        await world.state("bolcom", "B-P1", "shipped")
        row = await world.order("bolcom", "B-P1")
        assert row is not None and row["awaiting"] is None and row["deadline"] is None


async def test_a_shipped_orders_hold_ends_with_the_first_level_measured_after_it_left(
    world: World,
) -> None:
    """The ERP names no orders in its levels (as Odoo's quants, a warehouse or a file feed do
    not): the hold on shipped units ends once a level measured after the shipment counts them
    out of on hand, so the channels see them gone once, not twice. (Before, the hold never
    ended and each sale lowered every channel's figure for good.)"""
    desk = STOCK["DESK-1"]
    shown = "SELECT available FROM stock_published WHERE channel = 'bolcom' AND sku = 'DESK-1'"
    async with parties(world) as seen:
        await world.place("bolcom", order_data("bolcom", "B-H1", [("DESK-1", 2, "199.00")]))
        await seen["bolcom"].wait("shipment.tracking")
        await world.state("bolcom", "B-H1", "shipped")
        assert await world.held("DESK-1") == 2
        while_held = await world.db.fetchval(shown)

        # Measured before the parcel left, arriving after: the units are still in on hand.
        before = datetime.now(UTC) - timedelta(minutes=1)
        level = {"sku": "DESK-1", "location": "main", "on_hand": desk, "version": 2}
        await world.send("erp", "stock.level", level, at=before)
        await world.until("SELECT version FROM stock_ledger WHERE sku = 'DESK-1'", expect=2)
        assert await world.held("DESK-1") == 2

        world.clock.advance(1)  # the hub's clock moves on past the shipment
        await world.send("erp", "stock.level", {**level, "on_hand": desk - 2, "version": 3})
        await world.until("SELECT version FROM stock_ledger WHERE sku = 'DESK-1'", expect=3)
        assert await world.held("DESK-1") == 0
        assert await world.db.fetchval(shown) == while_held  # the two units gone once


async def test_a_partly_shipped_orders_hold_keeps_the_units_still_to_ship(world: World) -> None:
    async with parties(world, warehouse=picks_one_unit) as seen:
        await world.place("bolcom", order_data("bolcom", "B-H2", [("DESK-1", 3, "199.00")]))
        await seen["bolcom"].wait("shipment.tracking")
        await world.state("bolcom", "B-H2", "partially_shipped")
        level = {"sku": "DESK-1", "location": "main", "on_hand": STOCK["DESK-1"] - 1}
        world.clock.advance(1)
        await world.send("erp", "stock.level", {**level, "version": 2})
        await world.until("SELECT version FROM stock_ledger WHERE sku = 'DESK-1'", expect=2)
        assert await world.held("DESK-1") == 2  # one unit left, two are still to ship


def return_request(coid: str, lines: list[dict[str, Any]], rid: str = "RMA-1") -> dict[str, Any]:
    return {"channel": "bolcom", "channel_order_id": coid, "return_id": rid, "lines": lines}


async def parked(world: World, count: int) -> list[Any]:
    return list(await world.bus.drain(world.bus.names.dead_queue, expect=count))


async def test_a_return_the_buyer_asks_on_the_channel_reaches_the_erp_and_the_warehouse(
    world: World,
) -> None:
    async with parties(world) as seen:
        await world.place("bolcom", order_data("bolcom", "B-R2", [("DESK-1", 2, "199.00")]))
        [accepted] = await seen["bolcom"].wait("order.accepted")
        await seen["bolcom"].wait("shipment.tracking")
        await world.state("bolcom", "B-R2", "shipped")
        # More than was shipped, and a line the order does not have: refused, parked.
        too_many = [{"sku": "DESK-1", "quantity": 3}]
        await world.send("bolcom", "return.requested", return_request("B-R2", too_many, "X"))
        wrong_line = [{"sku": "DESK-1", "quantity": 1, "line_id": "L9"}]
        await world.send("bolcom", "return.requested", return_request("B-R2", wrong_line, "Y"))
        errors = sorted(m.headers["x-hub-error"] for m in await parked(world, 2))
        assert "3 unit(s) of DESK-1 asked back, 2 shipped" in errors[0]
        assert "has no line 'L9'" in errors[1]
        await world.state("bolcom", "B-R2", "shipped")

        one = [{"sku": "DESK-1", "quantity": 1, "line_id": "L1"}]
        await world.send("bolcom", "return.requested", return_request("B-R2", one))
        for party in ("erp", "warehouse"):
            [ret] = await seen[party].wait("return.requested")
            assert ret["data"]["return_id"] == "RMA-1"
            assert ret["data"]["order_id"] == accepted["data"]["order_id"]
            assert ret["data"]["lines"] == one
        await world.state("bolcom", "B-R2", "return_requested")
        statuses = await seen["bolcom"].wait("order.status", 3)
        assert "return RMA-1 requested on the channel" in statuses[-1]["data"]["detail"]
        # Asked again: noted, nothing sent twice.
        await world.send("bolcom", "return.requested", return_request("B-R2", one))
        await world.ignored("return.requested", 1)
        assert len(seen["erp"].of("return.requested")) == 1


async def test_a_return_naming_only_order_lines_reaches_the_erp_with_their_skus(
    world: World,
) -> None:
    """Shopify's returns name the order line, not the SKU: the hub fills it in."""
    async with parties(world) as seen:
        lines = [("DESK-1", 1, "199.00"), ("LAMP-1", 2, "25.50")]
        await world.place("bolcom", order_data("bolcom", "B-R4", lines))
        await seen["bolcom"].wait("shipment.tracking")
        await world.state("bolcom", "B-R4", "shipped")
        unknown = [{"line_id": "L9", "quantity": 1}]
        await world.send("bolcom", "return.requested", return_request("B-R4", unknown, "X"))
        [refused] = await parked(world, 1)
        assert "order" in refused.headers["x-hub-error"]
        assert "has no line 'L9'" in refused.headers["x-hub-error"]
        by_line = [{"line_id": "L2", "quantity": 2}, {"line_id": "L1", "quantity": 1}]
        await world.send("bolcom", "return.requested", return_request("B-R4", by_line))
        for party in ("erp", "warehouse"):
            [ret] = await seen[party].wait("return.requested")
            assert ret["data"]["lines"] == [
                {"sku": "LAMP-1", "quantity": 2, "line_id": "L2"},
                {"sku": "DESK-1", "quantity": 1, "line_id": "L1"},
            ]
            assert ret["dataschemaversion"] == "1.0"  # every line names its SKU again
        await world.state("bolcom", "B-R4", "return_requested")


async def test_a_return_naming_eans_reaches_the_erp_with_the_skus_that_carry_them(
    world: World,
) -> None:
    """bol.com's returns name the product's EAN: the ERP's product data says whose it is."""
    async with parties(world) as seen:
        desk = {"sku": "DESK-1", "name": "Desk", "gtin": "8712345678906", "version": 2}
        await world.send("erp", "product.upserted", desk)
        lamp = {"sku": "LAMP-1", "name": "Lamp", "gtin": "012345678905", "version": 2}  # UPC-A
        await world.send("erp", "product.upserted", lamp)
        lines = [("DESK-1", 2, "199.00"), ("LAMP-1", 1, "25.50")]
        await world.place("bolcom", order_data("bolcom", "B-R5", lines))
        await seen["bolcom"].wait("shipment.tracking")
        await world.state("bolcom", "B-R5", "shipped")
        unknown = [{"gtin": "4006381333931", "quantity": 1}]
        await world.send("bolcom", "return.requested", return_request("B-R5", unknown, "X"))
        [refused] = await parked(world, 1)
        assert (
            "none carry EAN 4006381333931 in the ERP's product data"
            in refused.headers["x-hub-error"]
        )
        by_ean = [
            {"gtin": "8712345678906", "quantity": 1},
            {"gtin": "0012345678905", "quantity": 1},  # the same UPC as an EAN-13
        ]
        await world.send("bolcom", "return.requested", return_request("B-R5", by_ean))
        for party in ("erp", "warehouse"):
            [ret] = await seen[party].wait("return.requested")
            assert ret["data"]["lines"] == [
                {"sku": "DESK-1", "quantity": 1, "line_id": "L1"},
                {"sku": "LAMP-1", "quantity": 1, "line_id": "L2"},
            ]
            assert ret["dataschemaversion"] == "1.0"
        await world.state("bolcom", "B-R5", "return_requested")


async def test_a_return_before_shipment_or_from_another_channel_is_parked(world: World) -> None:
    async with parties(world, warehouse=silent) as seen:
        await world.place("bolcom", order_data("bolcom", "B-R3", [("LAMP-1", 1, "25.50")]))
        await seen["warehouse"].wait("pick.request")
        line = [{"sku": "LAMP-1", "quantity": 1}]
        await world.send("bolcom", "return.requested", return_request("B-R3", line))
        await world.send("webshop-nl", "return.requested", return_request("B-R3", line))
        errors = sorted(m.headers["x-hub-error"] for m in await parked(world, 2))
        assert "cannot request a return of an order of 'bolcom'" in errors[0]
        assert "has not shipped" in errors[1] and "cancel it instead" in errors[1]
        assert not seen["erp"].of("return.requested")


async def test_the_carriers_later_tracking_reaches_the_channel_once(world: World) -> None:
    async with parties(world) as seen:
        await world.place("bolcom", order_data("bolcom", "B-S1", [("DESK-1", 1, "199.00")]))
        [first] = await seen["bolcom"].wait("shipment.tracking")
        update = {**first["data"], "tracking_number": "JVGL-NEW-1", "tracking_url": None}
        for _ in range(2):  # the carrier repeats itself: the channel hears it once
            await world.send("carrier", "shipment.tracking", update)
        tracked = await seen["bolcom"].wait("shipment.tracking", 2)
        assert tracked[1]["data"]["tracking_number"] == "JVGL-NEW-1"
        # The channel is told which number it replaces, so it updates that shipment.
        assert tracked[0]["data"]["replaces_tracking_number"] is None
        assert tracked[0]["dataschemaversion"] == "1.0"
        assert tracked[1]["data"]["replaces_tracking_number"] == first["data"]["tracking_number"]
        assert tracked[1]["dataschemaversion"] == "1.1"
        await world.until(
            "SELECT tracking_number FROM order_shipments WHERE shipment_id = $1",
            first["data"]["shipment_id"],
            expect="JVGL-NEW-1",
        )
        await world.ignored("shipment.tracking", 1)
        assert len(seen["bolcom"].of("shipment.tracking")) == 2
        stray = {**update, "shipment_id": "S9-nothing"}
        await world.send("carrier", "shipment.tracking", stray)
        [refused] = await parked(world, 1)
        assert "has no shipped parcel 'S9-nothing'" in refused.headers["x-hub-error"]


def ships_without_a_label(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(t, {**d, "label_url": None}) for t, d in carrier_ships(body)]


async def test_a_label_the_carrier_makes_later_reaches_the_warehouse_once(world: World) -> None:
    async with parties(world, carrier=ships_without_a_label) as seen:
        await world.place("bolcom", order_data("bolcom", "B-L1", [("LAMP-1", 1, "25.50")]))
        [booked] = await seen["warehouse"].wait("shipment.created")
        assert booked["data"]["label_url"] is None
        data = {**booked["data"], "label_url": "https://labels.example/late.pdf"}
        await world.send("carrier", "shipment.created", data)
        await world.send("carrier", "shipment.created", data)  # said twice: sent on once
        [_, labelled] = await seen["warehouse"].wait("shipment.created", 2)
        assert labelled["data"]["label_url"] == "https://labels.example/late.pdf"
        row = await world.order("bolcom", "B-L1")
        assert row is not None
        label = await world.db.fetchval(
            "SELECT label_url FROM order_shipments WHERE order_id = $1", row["order_id"]
        )
        assert label == "https://labels.example/late.pdf"
        await asyncio.sleep(0.5)
        assert len(seen["warehouse"].of("shipment.created")) == 2
        assert len(seen["bolcom"].of("shipment.tracking")) == 1  # the buyer is not told again
        assert len(seen["erp"].of("shipment.created")) == 1  # the ERP had the shipment already


async def test_a_channel_cannot_drive_another_partys_steps_or_release_an_orders_stock(
    world: World,
) -> None:
    """Only the senders a route names may answer for the ERP, warehouse or carrier; an order's
    reservation is released by cancelling the order, never by stock.release."""
    async with parties(world, warehouse=silent) as seen:
        await world.place("bolcom", order_data("bolcom", "B-G1", [("LAMP-1", 2, "25.50")]))
        [accepted] = await seen["bolcom"].wait("order.accepted")
        await seen["warehouse"].wait("pick.request")
        order_id = accepted["data"]["order_id"]
        refused = {"order_id": order_id, "reason": "no"}
        await world.send("webshop-nl", "salesorder.refused", refused)
        await world.send("bolcom", "stock.release", {"reservation_id": order_id, "reason": "x"})
        errors = sorted(
            (m.headers["x-hub-error-type"], m.headers["x-hub-error"])
            for m in await parked(world, 2)
        )
        assert errors[0][0] == "business_rule" and "an order holds it" in errors[0][1]
        assert errors[1] == (
            "no_route",
            "no route takes 'salesorder.refused' from 'webshop-nl' to the hub",
        )
        await world.state("bolcom", "B-G1", "picking")
        assert await world.held("LAMP-1") == 2
        assert not seen["bolcom"].of("order.rejected")


WOO_ORDER = json.loads(
    (Path(__file__).parents[2] / "adapters/fixtures/woocommerce/order-created.json").read_text()
)


def woocommerce_uk(data: dict[str, Any]) -> None:
    data["channels"]["webshop-uk"]["adapter"] = "woocommerce"


async def test_a_woocommerce_update_cancels_only_when_the_shop_cancelled(
    isolated: Settings, bus: Any
) -> None:
    async with (
        open_world(isolated, bus, orders_config(woocommerce_uk)) as world,
        parties(world, warehouse=silent) as seen,
    ):
        lines = [("DESK-1", 1, "199.00")]
        await world.place("webshop-uk", order_data("webshop-uk", "7001", lines, currency="GBP"))
        await seen["warehouse"].wait("pick.request")
        update = {**WOO_ORDER, "id": 7001, "status": "processing"}  # the hub's own echo
        await world.send("webshop-uk", "native.woocommerce.order-updated", update)
        await world.until("SELECT count(*) FROM order_history WHERE event = 'duplicate'", expect=1)
        completed = {**update, "status": "completed"}  # nothing for the hub
        await world.send("webshop-uk", "native.woocommerce.order-updated", completed)
        ignored = {"source": "webshop-uk", "type": "native.woocommerce.order-updated"}
        await world.counted("hub_native_ignored_total", ignored, 1)
        await world.state("webshop-uk", "7001", "picking")

        await world.send(
            "webshop-uk", "native.woocommerce.order-updated", {**update, "status": "cancelled"}
        )
        await world.state("webshop-uk", "7001", "cancelled")
        [erp_cancel] = await seen["erp"].wait("salesorder.cancel")
        assert erp_cancel["data"]["reason"] == "cancelled in WooCommerce"
        await seen["warehouse"].wait("pick.cancel")
        assert await world.held("DESK-1") == 0
        assert await bus.drain(bus.names.dead_queue, expect=0) == []  # nothing parked


async def test_an_unpaid_woocommerce_order_is_taken_when_the_shop_says_it_is_paid(
    isolated: Settings, bus: Any
) -> None:
    async with (
        open_world(isolated, bus, orders_config(woocommerce_uk)) as world,
        parties(world, warehouse=silent),
    ):
        pending = {**WOO_ORDER, "id": 7002, "status": "pending"}
        await world.send("webshop-uk", "native.woocommerce.order-created", pending)
        ignored = {"source": "webshop-uk", "type": "native.woocommerce.order-created"}
        await world.counted("hub_native_ignored_total", ignored, 1)
        assert await world.order("webshop-uk", "7002") is None
        paid = {**pending, "status": "processing"}
        await world.send("webshop-uk", "native.woocommerce.order-updated", paid)
        await world.until(
            "SELECT count(*) FROM orders WHERE channel = 'webshop-uk'"
            " AND channel_order_id = '7002'",
            expect=1,
        )
        assert await bus.drain(bus.names.dead_queue, expect=0) == []


async def test_cancelling_a_partly_shipped_order_withdraws_the_rest_and_returns_what_shipped(
    world: World,
) -> None:
    async with parties(world, warehouse=picks_one_unit) as seen:
        await world.place("bolcom", order_data("bolcom", "B-PC1", [("DESK-1", 3, "199.00")]))
        await seen["bolcom"].wait("shipment.tracking")
        await world.state("bolcom", "B-PC1", "partially_shipped")
        assert await world.held("DESK-1") == 3  # the ERP has not counted the order yet
        await world.send("bolcom", "order.cancelled", cancel("B-PC1"))
        rest = [{"line_id": "L1", "sku": "DESK-1", "quantity": 2}]  # the 2 units not packed
        [erp_cancel] = await seen["erp"].wait("salesorder.cancel")
        assert "the rest of order" in erp_cancel["data"]["reason"]
        assert erp_cancel["data"]["lines"] == rest
        assert erp_cancel["dataschemaversion"] == "2.0"  # a part: a 1.x reader must not act
        [pick_cancel] = await seen["warehouse"].wait("pick.cancel")
        assert pick_cancel["data"]["lines"] == rest
        for party in ("erp", "warehouse"):
            [ret] = await seen[party].wait("return.requested")
            assert ret["data"]["lines"] == [{"sku": "DESK-1", "quantity": 1, "line_id": "L1"}]
        await world.state("bolcom", "B-PC1", "return_requested")
        assert await world.held("DESK-1") == 1  # the shipped unit, until the ERP counts it
        statuses = await seen["bolcom"].wait("order.status", 3)  # confirmed, partial, this
        assert statuses[-1]["data"]["status"] == "cancelled"
        assert "becomes return R-" in statuses[-1]["data"]["detail"]
        withdrawn = {"by": "channel", "whole_order": False, "lines": rest}
        assert statuses[-1]["data"]["cancelled"] == withdrawn
        row = await world.order("bolcom", "B-PC1")
        assert row is not None and row["awaiting"] is None and row["deadline"] is None
        # Cancelled again: noted, nothing sent twice.
        await world.send("bolcom", "order.cancelled", cancel("B-PC1"))
        await world.ignored("order.cancelled", 1)
        assert len(seen["erp"].of("return.requested")) == 1
        assert len(seen["erp"].of("salesorder.cancel")) == 1


def ships_the_first_parcel_only(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    if body["type"] == "shipment.request" and not body["data"]["shipment_id"].startswith("S1-"):
        return []
    return carrier_ships(body)


async def test_cancelling_a_partly_shipped_order_drops_its_parcel_waiting_for_a_label(
    world: World,
) -> None:
    async with parties(
        world, warehouse=picks_one_unit, carrier=ships_the_first_parcel_only
    ) as seen:
        await world.place("bolcom", order_data("bolcom", "B-PC2", [("DESK-1", 3, "199.00")]))
        [first] = await seen["bolcom"].wait("shipment.tracking")
        await world.state("bolcom", "B-PC2", "partially_shipped")
        order_id = first["data"]["order_id"]
        one = [{"line_id": "L1", "sku": "DESK-1", "quantity": 1}]
        await world.send("warehouse", "pick.completed", {"order_id": order_id, "lines": one})
        [_, waiting] = await seen["carrier"].wait("shipment.request", 2)
        await world.send("bolcom", "order.cancelled", cancel("B-PC2"))
        [dropped] = await seen["carrier"].wait("shipment.cancel")
        assert dropped["data"]["shipment_id"] == waiting["data"]["shipment_id"]
        assert dropped["data"]["lines"] == one
        # The packed unit that will not ship is withdrawn with the one never packed.
        rest = [{"line_id": "L1", "sku": "DESK-1", "quantity": 2}]
        [erp_cancel] = await seen["erp"].wait("salesorder.cancel")
        assert erp_cancel["data"]["lines"] == rest
        [pick_cancel] = await seen["warehouse"].wait("pick.cancel")
        assert pick_cancel["data"]["lines"] == rest
        [ret] = await seen["erp"].wait("return.requested")
        assert ret["data"]["lines"] == [{"sku": "DESK-1", "quantity": 1, "line_id": "L1"}]
        await world.state("bolcom", "B-PC2", "return_requested")
        assert await world.held("DESK-1") == 1  # only the unit that left
        statuses = await seen["bolcom"].wait("order.status", 3)
        assert statuses[-1]["data"]["cancelled"]["lines"] == rest
        await world.until(
            "SELECT status FROM order_shipments WHERE shipment_id = $1",
            waiting["data"]["shipment_id"],
            expect="cancelled",
        )
        # Labelled anyway: cancelled again, and it is not asked back as a return.
        label = {**dropped["data"], "carrier": "postnl", "tracking_number": "3SLATE2"}
        del label["reason"]
        await world.send("carrier", "shipment.created", label)
        drops = await seen["carrier"].wait("shipment.cancel", 2)
        assert "labelled after order" in drops[1]["data"]["reason"]
        await asyncio.sleep(0.5)
        assert len(seen["erp"].of("return.requested")) == 1
        assert len(seen["bolcom"].of("shipment.tracking")) == 1


async def test_a_return_of_the_shipped_part_lets_the_rest_ship_and_counts_what_came_back(
    world: World,
) -> None:
    async with parties(world, warehouse=picks_one_unit) as seen:
        await world.place("bolcom", order_data("bolcom", "B-PR1", [("DESK-1", 2, "199.00")]))
        [first] = await seen["bolcom"].wait("shipment.tracking")
        order_id = first["data"]["order_id"]
        await world.state("bolcom", "B-PR1", "partially_shipped")
        one = [{"sku": "DESK-1", "quantity": 1, "line_id": "L1"}]
        await world.send("bolcom", "return.requested", return_request("B-PR1", one, "RMA-P"))
        [ret] = await seen["erp"].wait("return.requested")
        assert ret["data"]["return_id"] == "RMA-P"
        await world.until(
            "SELECT count(*) FROM order_history WHERE event = 'return.requested'", expect=1
        )
        row = await world.order("bolcom", "B-PR1")
        assert row is not None
        assert (row["state"], row["awaiting"]) == ("partially_shipped", "warehouse")
        # The unit already asked back cannot be asked back again under another id.
        await world.send("bolcom", "return.requested", return_request("B-PR1", one, "RMA-Q"))
        [error] = [m.headers["x-hub-error"] for m in await parked(world, 1)]
        assert "1 unit(s) of DESK-1 asked back, 1 shipped, 1 of them in earlier returns" in error
        # The rest ships as if nothing happened, then the first return arrives.
        done = {"order_id": order_id, "lines": one}
        await world.send("warehouse", "pick.completed", done)
        await seen["bolcom"].wait("shipment.tracking", 2)
        await world.state("bolcom", "B-PR1", "shipped")
        received = {
            "order_id": order_id,
            "return_id": "RMA-P",
            "lines": [{"sku": "DESK-1", "quantity": 1, "condition": "sellable"}],
        }
        await world.send("warehouse", "return.received", received)
        # One of the two shipped units is back: the order is still shipped, not returned.
        await world.until(
            "SELECT count(*) FROM order_history WHERE event = 'return.received'", expect=1
        )
        await world.state("bolcom", "B-PR1", "shipped")
        told = (await seen["bolcom"].wait("order.status", 5))[-1]["data"]
        assert told["status"] == "shipped"
        assert told["detail"] == "return RMA-P: 1 unit(s) received; 1 of 2 shipped unit(s) back"
        # The same receipt again (another message id) counts once.
        await world.send("warehouse", "return.received", received)
        await world.until(
            "SELECT count(*) FROM order_history WHERE event = 'return.received'", expect=2
        )
        await world.state("bolcom", "B-PR1", "shipped")
        # A second return for the unit shipped later is a return of its own.
        await world.send("bolcom", "return.requested", return_request("B-PR1", one, "RMA-Q"))
        returns = await seen["erp"].wait("return.requested", 2)
        assert [r["data"]["return_id"] for r in returns] == ["RMA-P", "RMA-Q"]
        await world.state("bolcom", "B-PR1", "return_requested")
        # Once it is back too, every shipped unit is: the order is returned.
        await world.send("warehouse", "return.received", {**received, "return_id": "RMA-Q"})
        await world.state("bolcom", "B-PR1", "returned")
        told = (await seen["bolcom"].wait("order.status", 8))[-1]["data"]
        assert (told["status"], told["detail"]) == ("returned", "return RMA-Q: 1 unit(s) received")


async def test_migration_016_counts_returns_taken_before_it_as_every_shipped_unit(
    world: World,
) -> None:
    """Before 016 an order took one return and ignored the rest: after it, such an order has
    nothing left to ask back, so no unit can be returned (and refunded) twice."""
    async with parties(world) as seen:
        await world.place("bolcom", order_data("bolcom", "B-M1", [("DESK-1", 2, "199.00")]))
        await seen["bolcom"].wait("shipment.tracking")
        one = [{"sku": "DESK-1", "quantity": 1, "line_id": "L1"}]
        await world.send("bolcom", "return.requested", return_request("B-M1", one, "RMA-OLD"))
        await world.state("bolcom", "B-M1", "return_requested")
        await world.db.execute("DROP TABLE order_returns")
        await world.db.execute("DELETE FROM schema_migrations WHERE name = '016_order_returns.sql'")
        assert await migrate(world.db) == ["016_order_returns.sql"]
        rows = await world.db.fetch("SELECT return_id, sku, quantity FROM order_returns")
        assert [tuple(r) for r in rows] == [("before-016", "DESK-1", 2)]
        await world.send("bolcom", "return.requested", return_request("B-M1", one, "RMA-NEW"))
        [error] = [m.headers["x-hub-error"] for m in await parked(world, 1)]
        assert "1 unit(s) of DESK-1 asked back, 2 shipped, 2 of them in earlier returns" in error


async def test_migration_025_counts_the_returns_of_returned_orders_as_back(world: World) -> None:
    """An order returned before 025 had what its returns asked back received; one still
    awaiting its return has nothing back, so its receipt still decides."""
    async with parties(world) as seen:
        for coid in ("B-M2", "B-M3"):
            await world.place("bolcom", order_data("bolcom", coid, [("DESK-1", 2, "199.00")]))
        await seen["bolcom"].wait("shipment.tracking", 2)
        one = [{"sku": "DESK-1", "quantity": 1, "line_id": "L1"}]
        for coid in ("B-M2", "B-M3"):
            await world.send("bolcom", "return.requested", return_request(coid, one, f"R{coid}"))
            await world.state("bolcom", coid, "return_requested")
        await world.db.execute(
            "UPDATE orders SET state = 'returned' WHERE channel_order_id = 'B-M2'"
        )
        await world.db.execute("DROP TABLE order_returns_received")
        name = "025_order_returns_received.sql"
        await world.db.execute("DELETE FROM schema_migrations WHERE name = $1", name)
        assert await migrate(world.db) == [name]
        rows = await world.db.fetch("SELECT return_id, sku, quantity FROM order_returns_received")
        assert [tuple(r) for r in rows] == [("RB-M2", "DESK-1", 1)]


async def test_a_cancellation_that_overtakes_its_order_cancels_it_on_arrival(
    world: World,
) -> None:
    """Webhooks arrive unordered: a cancellation before its order must not let it ship."""
    async with parties(world) as seen:
        await world.send("bolcom", "order.cancelled", cancel("B-E1"))
        await world.until("SELECT count(*) FROM early_cancellations", expect=1)
        shown = await load_order(world.hub.settings.database_url, "bolcom", "B-E1")
        assert shown["cancelled_first"]["reason"] == "buyer changed mind"
        kept = world.hub.metrics.registry.get_sample_value(
            "hub_order_transitions_total", {"state": "cancelled_before_arrival"}
        )
        assert kept == 1
        await world.place("bolcom", order_data("bolcom", "B-E1", [("LAMP-1", 1, "25.50")]))
        await world.state("bolcom", "B-E1", "cancelled")
        [status] = await seen["bolcom"].wait("order.status")
        assert status["data"]["status"] == "cancelled"
        assert "cancelled before the order arrived, by channel: buyer" in status["data"]["detail"]
        assert status["data"]["cancelled"]["by"] == "channel"
        await world.place("bolcom", order_data("bolcom", "B-E1", [("LAMP-1", 1, "25.50")]))
        await world.until(  # sent again: a duplicate, still cancelled
            "SELECT count(*) FROM order_history WHERE event = 'duplicate'", expect=1
        )
        await world.place("bolcom", order_data("bolcom", "B-E2", [("LAMP-1", 1, "25.50")]))
        await seen["erp"].wait("salesorder.create")  # the next order goes its way
        creates = seen["erp"].of("salesorder.create")
        assert [c["data"]["channel_order_id"] for c in creates] == ["B-E2"]
        assert not [b for b in seen["bolcom"].of("order.accepted") if "B-E1" in str(b)]
        assert await world.held("LAMP-1") == 1  # B-E2 holds its unit; B-E1 holds none
        assert await world.db.fetchval("SELECT count(*) FROM early_cancellations") == 0
        placed = world.hub.metrics.registry.get_sample_value(
            "hub_orders_total", {"channel": "bolcom", "outcome": "cancelled"}
        )
        assert placed == 1


async def test_the_erp_cannot_cancel_an_order_the_hub_never_had(world: World) -> None:
    async with parties(world):
        await world.send("erp", "order.cancelled", cancel("B-E3", by="erp"))
        [error] = [m.headers["x-hub-error"] for m in await parked(world, 1)]
        assert "no order 'B-E3' from channel 'bolcom'" in error
        assert await world.db.fetchval("SELECT count(*) FROM early_cancellations") == 0


def audit_everything(data: dict[str, Any]) -> None:
    """A catch-all route to a channel: it must not open the hub's own steps to any sender."""
    data["routes"].append(
        {"name": "audit", "types": ["salesorder.*"], "from": ["*"], "to": ["warehouse"]}
    )


async def test_a_catch_all_route_to_a_channel_does_not_let_a_shop_answer_for_the_erp(
    isolated: Settings, bus: Any
) -> None:
    config = orders_config(audit_everything)
    async with open_world(isolated, bus, config) as world, parties(world, warehouse=silent) as seen:
        await world.place("bolcom", order_data("bolcom", "B-G2", [("LAMP-1", 1, "25.50")]))
        [accepted] = await seen["bolcom"].wait("order.accepted")
        await seen["warehouse"].wait("pick.request")
        refused = {"order_id": accepted["data"]["order_id"], "reason": "no"}
        await world.send("webshop-nl", "salesorder.refused", refused)
        [parked_one] = await parked(world, 1)
        assert parked_one.headers["x-hub-error"] == (
            "no route takes 'salesorder.refused' from 'webshop-nl' to the hub"
        )
        await world.state("bolcom", "B-G2", "picking")


async def test_goods_back_for_an_order_that_never_shipped_are_noted_only(world: World) -> None:
    async with parties(world, warehouse=silent) as seen:
        await world.place("bolcom", order_data("bolcom", "B-NS1", [("DESK-1", 1, "199.00")]))
        [accepted] = await seen["bolcom"].wait("order.accepted")
        await world.state("bolcom", "B-NS1", "picking")  # the ERP confirmed it first
        await world.send("bolcom", "order.cancelled", cancel("B-NS1"))
        await world.state("bolcom", "B-NS1", "cancelled")
        told = len(await seen["bolcom"].wait("order.status", 2))  # confirmed, cancelled
        received = {
            "order_id": accepted["data"]["order_id"],
            "return_id": "RMA-NS",
            "lines": [{"sku": "DESK-1", "quantity": 1, "condition": "sellable"}],
        }
        await world.send("warehouse", "return.received", received)
        await seen["erp"].wait("return.received")  # the ERP books the goods
        await world.until(
            "SELECT count(*) FROM order_history WHERE event = 'return.received'", expect=1
        )
        await world.state("bolcom", "B-NS1", "cancelled")
        assert len(seen["bolcom"].of("order.status")) == told  # the channel is told nothing


async def test_a_buyer_cancelling_some_items_withdraws_them_and_the_rest_ships(
    world: World,
) -> None:
    lines = [("DESK-1", 1, "199.00"), ("LAMP-1", 2, "25.50")]
    async with parties(world, warehouse=silent) as seen:
        await world.place("bolcom", order_data("bolcom", "B-PX", lines))
        [pick] = await seen["warehouse"].wait("pick.request")
        assert (await world.held("DESK-1"), await world.held("LAMP-1")) == (1, 2)
        lamps = [{"line_id": "L2", "sku": "LAMP-1", "quantity": 2}]
        part = {**cancel("B-PX"), "lines": lamps}
        await world.send("bolcom", "order.cancelled", part)
        [erp_cancel] = await seen["erp"].wait("salesorder.cancel")
        assert erp_cancel["data"]["lines"] == lamps
        assert erp_cancel["dataschemaversion"] == "2.0"
        [pick_cancel] = await seen["warehouse"].wait("pick.cancel")
        assert pick_cancel["data"]["lines"] == lamps
        assert (await world.held("DESK-1"), await world.held("LAMP-1")) == (1, 0)
        told = [b["data"] for b in await seen["bolcom"].wait("order.status", 2)]
        assert told[-1]["status"] == "picking"
        assert told[-1]["cancelled"] == {"by": "channel", "whole_order": False, "lines": lamps}
        await world.state("bolcom", "B-PX", "picking")
        # The same request polled again is a repeat; the rest is picked and ships on its own.
        await world.send("bolcom", "order.cancelled", part)
        await world.ignored("order.cancelled", 1)
        desk = [{"line_id": "L1", "sku": "DESK-1", "quantity": 1}]
        order_id = pick["data"]["order_id"]
        await world.send("warehouse", "pick.completed", {"order_id": order_id, "lines": desk})
        [tracking] = await seen["bolcom"].wait("shipment.tracking")
        assert tracking["data"]["lines"] == desk
        await world.state("bolcom", "B-PX", "shipped")
        # A shipped order's items are no longer for cancelling: noted, nothing sent.
        await world.send("bolcom", "order.cancelled", {**cancel("B-PX"), "lines": desk})
        await world.ignored("order.cancelled", 2)
        assert len(seen["erp"].of("salesorder.cancel")) == 1


async def test_packed_units_cannot_be_cancelled_as_items(world: World) -> None:
    async with parties(world, carrier=silent) as seen:
        lines = [("DESK-1", 1, "199.00"), ("LAMP-1", 1, "25.50")]
        await world.place("bolcom", order_data("bolcom", "B-PK", lines))
        await seen["carrier"].wait("shipment.request")  # packed, waiting for its label
        lamp = [{"line_id": "L2", "sku": "LAMP-1", "quantity": 1}]
        await world.send("bolcom", "order.cancelled", {**cancel("B-PK"), "lines": lamp})
        [refused] = await parked(world, 1)
        assert "1 more unit(s) of line L2 asked, 0 not packed yet" in refused.headers["x-hub-error"]
        assert await world.held("LAMP-1") == 1


async def test_items_cancelled_before_the_erp_has_the_order_reach_it_with_its_number(
    world: World,
) -> None:
    """Lines are running totals: a poll that repeats an item and adds another withdraws only
    the new one; the ERP hears of both once it has made the sales order; cancelling what is
    left cancels the order."""
    lines = [("DESK-1", 1, "199.00"), ("LAMP-1", 2, "25.50"), ("LAST-1", 1, "9.99")]
    async with parties(world, erp=silent, warehouse=silent) as seen:
        await world.place("bolcom", order_data("bolcom", "B-PE", lines))
        [create] = await seen["erp"].wait("salesorder.create")
        lamps = {"line_id": "L2", "sku": "LAMP-1", "quantity": 2}
        last = {"line_id": "L3", "sku": "LAST-1", "quantity": 1}
        await world.send("bolcom", "order.cancelled", {**cancel("B-PE"), "lines": [lamps]})
        await world.send("bolcom", "order.cancelled", {**cancel("B-PE"), "lines": [lamps, last]})
        await world.until(
            "SELECT withdrawn FROM orders WHERE channel_order_id = 'B-PE'",
            expect='{"L2": 2, "L3": 1}',
        )
        assert (await world.held("LAMP-1"), await world.held("LAST-1")) == (0, 0)
        assert not seen["erp"].of("salesorder.cancel")  # it has no sales order to cancel yet

        order_id = create["data"]["order_id"]
        await world.send(
            "erp", "salesorder.created", {"order_id": order_id, "erp_order_number": "SO-PE"}
        )
        [pick] = await seen["warehouse"].wait("pick.request")
        assert pick["data"]["lines"] == [{"line_id": "L1", "sku": "DESK-1", "quantity": 1}]
        [withdrawn] = await seen["erp"].wait("salesorder.cancel")
        assert withdrawn["data"]["erp_order_number"] == "SO-PE"
        assert withdrawn["data"]["lines"] == [lamps, last]

        desk = {"line_id": "L1", "sku": "DESK-1", "quantity": 1}
        everything = {**cancel("B-PE"), "lines": [desk, lamps, last]}
        await world.send("bolcom", "order.cancelled", everything)
        await world.state("bolcom", "B-PE", "cancelled")
        assert await world.held("DESK-1") == 0
        told = [b["data"] for b in seen["bolcom"].of("order.status")]
        assert told[-1]["cancelled"] == {"by": "channel", "whole_order": True, "lines": [desk]}


async def test_cancelling_a_packed_order_drops_the_parcel_waiting_for_its_label(
    world: World,
) -> None:
    async with parties(world, carrier=silent) as seen:
        await world.place("bolcom", order_data("bolcom", "B-SC9", [("LAMP-1", 1, "25.50")]))
        [asked] = await seen["carrier"].wait("shipment.request")
        await world.send("bolcom", "order.cancelled", cancel("B-SC9"))
        await world.state("bolcom", "B-SC9", "cancelled")
        [dropped] = await seen["carrier"].wait("shipment.cancel")
        assert dropped["data"]["shipment_id"] == asked["data"]["shipment_id"]
        assert dropped["data"]["lines"] == asked["data"]["lines"]  # routed as the request was
        assert "buyer changed mind" in dropped["data"]["reason"]
        await world.until(
            "SELECT status FROM order_shipments WHERE shipment_id = $1",
            asked["data"]["shipment_id"],
            expect="cancelled",
        )
        assert await world.held("LAMP-1") == 0
        # The carrier labelled it anyway: that label is cancelled too; nothing ships.
        label = {
            "order_id": asked["data"]["order_id"],
            "shipment_id": asked["data"]["shipment_id"],
            "carrier": "postnl",
            "tracking_number": "3SLATE",
            "lines": asked["data"]["lines"],
        }
        await world.send("carrier", "shipment.created", label)
        drops = await seen["carrier"].wait("shipment.cancel", 2)
        assert "labelled after order" in drops[1]["data"]["reason"]
        await world.state("bolcom", "B-SC9", "cancelled")
        assert not seen["bolcom"].of("shipment.tracking")
        assert not seen["warehouse"].of("shipment.created")  # no label to print


async def test_the_erp_is_not_told_of_items_it_withdrew_itself_before_its_sales_order(
    world: World,
) -> None:
    lines = [("DESK-1", 1, "199.00"), ("LAMP-1", 2, "25.50")]
    async with parties(world, erp=silent, warehouse=silent) as seen:
        await world.place("bolcom", order_data("bolcom", "B-EW", lines))
        [create] = await seen["erp"].wait("salesorder.create")
        lamps = {"line_id": "L2", "sku": "LAMP-1", "quantity": 2}
        by_erp = {**cancel("B-EW", by="erp"), "lines": [lamps]}
        await world.send("erp", "order.cancelled", by_erp)
        await world.until(
            "SELECT withdrawn FROM orders WHERE channel_order_id = 'B-EW'", expect='{"L2": 2}'
        )
        order_id = create["data"]["order_id"]
        await world.send(
            "erp", "salesorder.created", {"order_id": order_id, "erp_order_number": "SO-EW"}
        )
        [pick] = await seen["warehouse"].wait("pick.request")
        assert pick["data"]["lines"] == [{"line_id": "L1", "sku": "DESK-1", "quantity": 1}]
        await asyncio.sleep(0.3)
        assert not seen["erp"].of("salesorder.cancel")  # it withdrew them itself
