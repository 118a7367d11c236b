"""The order flow on the real broker and database; responders play ERP, warehouse and carrier."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub.catalog import WITHOUT_DATA, resync_catalog
from hub.settings import Settings

sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures" / "orders"))
from order_kit import World, erp_refuses, open_world, order_data, orders_config, parties

pytestmark = pytest.mark.integration


@pytest.fixture
async def world(isolated: Settings, bus: Any) -> AsyncIterator[World]:
    async with open_world(isolated, bus) as w:
        yield w


def data_of(bodies: list[dict[str, Any]], coid: str) -> list[dict[str, Any]]:
    return [b["data"] for b in bodies if b["data"].get("channel_order_id") == coid]


async def test_happy_path_from_order_to_tracking_and_invoice(world: World) -> None:
    async with parties(world) as seen:
        await world.place("bolcom", order_data("bolcom", "B-1", [("DESK-1", 2, "199.00")]))
        shop = seen["bolcom"]
        [accepted] = await shop.wait("order.accepted")
        order_id = accepted["data"]["order_id"]
        [tracking] = await shop.wait("shipment.tracking")
        assert tracking["data"]["order_id"] == order_id
        assert tracking["data"]["carrier"] == "postnl"
        assert tracking["data"]["lines"][0]["quantity"] == 2
        statuses = [b["data"]["status"] for b in await shop.wait("order.status", 2)]
        assert statuses == ["confirmed", "shipped"]
        # The warehouse gets the carrier's label to print, the ERP the shipment to invoice.
        [label] = await seen["warehouse"].wait("shipment.created")
        shipment_id = tracking["data"]["shipment_id"]
        assert label["data"]["label_url"] == f"https://labels.example/{shipment_id}.pdf"
        assert label["data"]["tracking_number"] == tracking["data"]["tracking_number"]
        [erp_copy] = await seen["erp"].wait("shipment.created")
        assert erp_copy["source"] == "hub" and erp_copy["data"] == label["data"]
        assert not shop.of("shipment.created")
        [create] = seen["erp"].of("salesorder.create")
        assert create["data"]["price_list"] == "nl-retail"
        assert create["data"]["reservation_id"] == order_id
        await world.send(
            "erp",
            "invoice.issued",
            {
                "order_id": order_id,
                "invoice_number": "INV-1",
                "issued_at": "2025-01-02T10:00:00+00:00",
                "total": {"amount": "398.00", "currency": "EUR"},
                "vat_total": {"amount": "69.07", "currency": "EUR"},
            },
        )
        [invoice] = await shop.wait("invoice.issued")
        assert invoice["data"]["invoice_number"] == "INV-1"
        assert invoice["source"] == "erp"
        assert shop.of("stock.availability"), "the reservation must move the channel's figure"
    row = await world.order("bolcom", "B-1")
    assert row is not None and row["state"] == "shipped" and row["erp_order_number"] == "SO-B-1"
    history = await world.db.fetch(
        "SELECT event FROM order_history WHERE order_id = $1 ORDER BY id", order_id
    )
    assert [h["event"] for h in history] == [
        "accepted",
        "salesorder.created",
        "pick.completed",
        "shipment.created",
        "invoice.issued",
    ]


async def test_same_channel_order_twice_is_one_order_one_reservation_one_sales_order(
    world: World,
) -> None:
    async with parties(world) as seen:
        data = order_data("bolcom", "B-DUP", [("LAMP-1", 1, "25.50")])
        await world.place("bolcom", data)
        await world.place("bolcom", data)  # a webhook retry: new message id, same channel order
        await seen["bolcom"].wait("shipment.tracking")
        await asyncio.sleep(0.5)
        assert len(data_of(seen["bolcom"].of("order.accepted"), "B-DUP")) == 1
        assert len(seen["erp"].of("salesorder.create")) == 1
    assert await world.db.fetchval("SELECT count(*) FROM orders") == 1
    assert await world.db.fetchval("SELECT count(*) FROM stock_reservations") == 1
    counter = world.hub.metrics.registry.get_sample_value(
        "hub_orders_total", {"channel": "bolcom", "outcome": "duplicate"}
    )
    assert counter == 1


async def test_erp_refusal_releases_the_stock_and_tells_the_channel(world: World) -> None:
    async with parties(world, erp=erp_refuses) as seen:
        await world.place("bolcom", order_data("bolcom", "B-REF", [("LAMP-1", 3, "25.50")]))
        [rejected] = await seen["bolcom"].wait("order.rejected")
        assert rejected["data"]["reasons"][0]["code"] == "erp_refused"
        assert rejected["data"]["lines"] == [{"line_id": "L1", "sku": "LAMP-1", "quantity": 3}]
        await world.state("bolcom", "B-REF", "rejected")
        assert await world.held("LAMP-1") == 0
        assert not seen["warehouse"].of("pick.request")


async def test_orders_show_prints_state_and_history(world: World, isolated: Settings) -> None:
    from typer.testing import CliRunner

    from hub.cli import app

    async with parties(world) as seen:
        await world.place("bolcom", order_data("bolcom", "B-SHOW", [("DESK-1", 1, "199.00")]))
        await seen["bolcom"].wait("shipment.tracking")
    await world.state("bolcom", "B-SHOW", "shipped")
    runner = CliRunner()
    env = {"HUB_DATABASE_URL": isolated.database_url}
    result = await asyncio.to_thread(
        runner.invoke, app, ["orders", "show", "bolcom", "B-SHOW"], env=env
    )
    assert result.exit_code == 0, result.output
    for text in ("shipped", "SO-B-SHOW", "DESK-1", "salesorder.created", "postnl", ".pdf"):
        assert text in result.output
    missing = await asyncio.to_thread(
        runner.invoke, app, ["orders", "show", "bolcom", "NOPE"], env=env
    )
    assert missing.exit_code == 1


def filtered_routes(data: dict[str, Any]) -> None:
    """Big orders' acceptance copied to the UK shop, NL orders' to the NL shop; lamp
    shipments shown to the warehouse."""
    data["routes"] += [
        {
            "name": "big-orders-also-to-uk",
            "types": ["order.accepted"],
            "from": ["hub"],
            "to": ["webshop-uk"],
            "filters": {"min_order_value": 300},
        },
        {
            "name": "nl-market-acceptances-to-nl-shop",
            "types": ["order.accepted"],
            "from": ["hub"],
            "to": ["webshop-nl"],
            "filters": {"markets": ["nl"]},
        },
        {
            "name": "lamp-shipments-to-warehouse",
            "types": ["shipment.request"],
            "from": ["hub"],
            "to": ["warehouse"],
            "filters": {"sku_patterns": ["LAMP-*"]},
        },
    ]


async def test_route_filters_apply_to_what_the_order_process_sends(
    isolated: Settings, bus: Any
) -> None:
    async with (
        open_world(isolated, bus, orders_config(filtered_routes)) as world,
        parties(world) as seen,
    ):
        await world.place("bolcom", order_data("bolcom", "B-BIG", [("DESK-1", 2, "199.00")]))
        await world.place("bolcom", order_data("bolcom", "B-LAMP", [("LAMP-1", 1, "25.50")]))
        await seen["bolcom"].wait("shipment.tracking", 2)
        [big] = await seen["webshop-uk"].wait("order.accepted")  # 398.00: over 300
        assert big["data"]["channel_order_id"] == "B-BIG"
        [lamp] = await seen["warehouse"].wait("shipment.request")  # the lamp's shipment only
        assert [line["sku"] for line in lamp["data"]["lines"]] == ["LAMP-1"]
        await asyncio.sleep(0.3)
        assert len(seen["webshop-uk"].of("order.accepted")) == 1
        nl = await seen["webshop-nl"].wait("order.accepted", 2)  # bol.com sells in NL
        assert {a["data"]["channel_order_id"] for a in nl} == {"B-BIG", "B-LAMP"}
        assert len(seen["warehouse"].of("shipment.request")) == 1


async def test_an_older_or_repeated_price_is_kept_nowhere_and_sent_nowhere(world: World) -> None:
    def price(version: int, amount: str) -> dict[str, Any]:
        return {
            "sku": "DESK-1",
            "price_list": "nl-retail",
            "price": {"amount": amount, "currency": "EUR"},
            "vat_rate": "0.21",
            "version": version,
        }

    async with parties(world) as seen:
        for version, amount in ((3, "189.00"), (2, "149.00"), (3, "189.00"), (4, "179.00")):
            await world.send("erp", "price.changed", price(version, amount))
        await world.until(
            "SELECT amount::text FROM catalog_prices WHERE sku = 'DESK-1'"
            " AND price_list = 'nl-retail'",
            expect="179.00",
        )
        await seen["webshop-nl"].wait("price.changed", 3 + 2)  # the seeded three, then v3, v4
        await asyncio.sleep(0.3)
        desk = [
            b["data"]["price"]["amount"]
            for b in seen["webshop-nl"].of("price.changed")
            if b["data"]["sku"] == "DESK-1"
        ]
        assert desk == ["199.00", "189.00", "179.00"]
    stale = world.hub.metrics.registry.get_sample_value(
        "hub_catalog_stale_dropped_total", {"type": "price.changed"}
    )
    assert stale == 2


async def test_a_price_in_another_currency_than_its_market_is_parked_not_shown(
    world: World,
) -> None:
    pounds = {
        "sku": "DESK-1",
        "price_list": "nl-retail",
        "price": {"amount": "170.00", "currency": "GBP"},
        "vat_rate": "0.21",
        "version": 9,
    }
    async with parties(world) as seen:
        await world.send("erp", "price.changed", pounds)
        [parked] = await world.bus.drain(world.bus.names.dead_queue, expect=1)
        assert parked.headers["x-hub-error-type"] == "business_rule"
        assert "is in GBP; market nl shows that list in EUR" in parked.headers["x-hub-error"]
        stored = await world.db.fetchval(
            "SELECT version FROM catalog_prices WHERE sku = 'DESK-1' AND price_list = 'nl-retail'"
        )
        assert stored == 1
        assert all(
            b["data"]["price"]["currency"] == "EUR" for b in seen["webshop-nl"].of("price.changed")
        )


async def test_a_catalog_resync_gives_one_channel_what_routing_would_give_it(
    world: World,
) -> None:
    """A channel added later (or one that lost its state) gets every product and price again,
    as the ERP's events, and only those routing sends it; a repeat carries the same ids."""
    async with parties(world) as seen:
        nl = seen["webshop-nl"]
        for shop in ("webshop-nl", "webshop-uk", "bolcom"):  # the seeded catalog arrived
            await seen[shop].wait("price.changed", 3)
            await seen[shop].wait("product.upserted", 3)
        before = {
            k: len(w.of("product.upserted")) + len(w.of("price.changed")) for k, w in seen.items()
        }
        sent = await resync_catalog(world.hub.settings, world.hub.config, "webshop-nl")
        assert sent == {"product.upserted": 3, "price.changed": 3}
        products = (await nl.wait("product.upserted", 6))[3:]
        prices = (await nl.wait("price.changed", 6))[3:]
        assert sorted(p["data"]["sku"] for p in products) == ["DESK-1", "LAMP-1", "LAST-1"]
        assert {p["source"] for p in products + prices} == {"erp"}
        assert {(p["data"]["price_list"], p["data"]["price"]["currency"]) for p in prices} == {
            ("nl-retail", "EUR")
        }
        desk = next(p["data"] for p in prices if p["data"]["sku"] == "DESK-1")
        assert (desk["price"]["amount"], desk["version"]) == ("199.00", 1)
        assert await resync_catalog(world.hub.settings, world.hub.config, "webshop-nl") == sent
        again = (await nl.wait("product.upserted", 9))[6:]
        assert sorted(p["id"] for p in again) == sorted(p["id"] for p in products)
        await nl.wait("price.changed", 9)
        await asyncio.sleep(0.5)  # anything sent elsewhere would have arrived by now
        after = {
            k: len(w.of("product.upserted")) + len(w.of("price.changed")) for k, w in seen.items()
        }
        assert {k: after[k] - before[k] for k in after if after[k] != before[k]} == {
            "webshop-nl": 12
        }


async def test_a_newer_price_sent_during_a_resync_reaches_the_channel_after_the_older_copy(
    world: World,
) -> None:
    """The page being resent holds its rows: the ERP's newer price waits, then follows."""
    async with parties(world) as seen:
        nl = seen["webshop-nl"]
        await nl.wait("price.changed", 3)  # the seeded catalog arrived
        newer = {
            "sku": "DESK-1",
            "price_list": "nl-retail",
            "price": {"amount": "179.00", "currency": "EUR"},
            "includes_vat": True,
            "vat_rate": "0.21",
            "version": 2,
        }
        held: list[int] = []

        async def meanwhile(page: Any) -> None:
            if page[0].TYPE == "price.changed" and not held:
                await world.send("erp", "price.changed", newer)
                await asyncio.sleep(1.0)  # long enough for the hub to try to store it
                version = await world.db.fetchval(
                    "SELECT version FROM catalog_prices"
                    " WHERE sku = 'DESK-1' AND price_list = 'nl-retail'"
                )
                held.append(version)

        sent = await resync_catalog(
            world.hub.settings, world.hub.config, "webshop-nl", on_page=meanwhile
        )
        assert sent["price.changed"] == 3
        assert held == [1]  # the newer price waited for the page
        prices = await nl.wait("price.changed", 7)
        once = list({p["id"]: p for p in prices[3:]}.values())  # hub.out is at-least-once
        desk = [p["data"]["version"] for p in once if p["data"]["sku"] == "DESK-1"]
        assert desk == [1, 2]  # the resync's copy, then the newer price


def net_shop(data: dict[str, Any]) -> None:
    data["channels"]["webshop-nl"]["prices_include_vat"] = False  # a B2B shop: prices net


async def test_a_net_shop_is_shown_and_resynced_net_prices_and_its_net_order_is_taken(
    isolated: Settings, bus: Any
) -> None:
    """The ERP's gross list reaches a shop that keeps net prices with the VAT taken off, live
    and in a resync, and an order at that net price passes the price check."""
    async with (
        open_world(isolated, bus, orders_config(net_shop)) as world,
        parties(world) as seen,
    ):
        nl, marketplace = seen["webshop-nl"], seen["bolcom"]
        live = await nl.wait("price.changed", 3)
        shown = {p["data"]["sku"]: p["data"]["price"]["amount"] for p in live}
        assert shown == {"DESK-1": "164.46", "LAMP-1": "21.07", "LAST-1": "8.26"}
        assert {p["data"]["includes_vat"] for p in live} == {False}
        gross = await marketplace.wait("price.changed", 3)
        assert {p["data"]["price"]["amount"] for p in gross} == {"199.00", "25.50", "9.99"}

        await resync_catalog(world.hub.settings, world.hub.config, "webshop-nl")
        again = (await nl.wait("price.changed", 6))[3:]
        assert {p["data"]["sku"]: p["data"]["price"]["amount"] for p in again} == shown

        order = order_data(
            "webshop-nl", "N-NET", [("DESK-1", 1, "164.46")], prices_include_vat=False
        )
        await world.place("webshop-nl", order)
        [accepted] = await nl.wait("order.accepted")
        assert accepted["data"]["channel_order_id"] == "N-NET"


async def test_a_product_kept_before_its_data_was_gets_it_from_a_repeat_without_a_send(
    world: World,
) -> None:
    """Products kept before migration 018 have no data: a resync says so, and the ERP sending
    the same version again fills it in without passing the repeat on to any channel."""
    await world.db.execute("UPDATE stock_products SET data = NULL WHERE sku = 'LAMP-1'")
    sent = await resync_catalog(world.hub.settings, world.hub.config, "webshop-nl")
    assert sent[WITHOUT_DATA] == 1 and sent["product.upserted"] == 2
    await world.send("erp", "product.upserted", {"sku": "LAMP-1", "name": "LAMP-1", "version": 1})
    await world.until(
        "SELECT data->>'name' FROM stock_products WHERE sku = 'LAMP-1'", expect="LAMP-1"
    )
    stale = world.hub.metrics.registry.get_sample_value(
        "hub_catalog_stale_dropped_total", {"type": "product.upserted"}
    )
    assert stale == 1  # filled in, not passed on
    sent = await resync_catalog(world.hub.settings, world.hub.config, "webshop-nl")
    assert sent == {"product.upserted": 3, "price.changed": 3}


def big_invoices_to_the_warehouse(data: dict[str, Any]) -> None:
    """A filtered route for a message the hub passes on as its source sent it."""
    data["routes"].append(
        {
            "name": "big-invoices",
            "types": ["invoice.issued"],
            "from": ["kind:erp"],
            "to": ["warehouse"],
            "filters": {"min_order_value": 300, "markets": ["nl"]},
        }
    )


async def test_route_filters_see_the_order_of_an_invoice_the_hub_passes_on(
    isolated: Settings, bus: Any
) -> None:
    config = orders_config(big_invoices_to_the_warehouse)
    async with open_world(isolated, bus, config) as world, parties(world) as seen:
        for coid, sku, qty, price in (
            ("B-I1", "DESK-1", 2, "199.00"),
            ("B-I2", "LAMP-1", 1, "25.50"),
        ):
            await world.place("bolcom", order_data("bolcom", coid, [(sku, qty, price)]))
            [*_, accepted] = await seen["bolcom"].wait("order.accepted", 1 if coid == "B-I1" else 2)
            await world.state("bolcom", coid, "shipped")
            await world.send(
                "erp",
                "invoice.issued",
                {
                    "order_id": accepted["data"]["order_id"],
                    "invoice_number": f"INV-{coid}",
                    "issued_at": "2025-01-02T10:00:00+00:00",
                    "total": {"amount": "10.00", "currency": "EUR"},
                    "vat_total": {"amount": "1.74", "currency": "EUR"},
                },
            )
        await seen["bolcom"].wait("invoice.issued", 2)  # both reach the order's channel
        await asyncio.sleep(0.3)
        # Only the order worth 398.00 passes the route's filter to the warehouse.
        assert [i["data"]["invoice_number"] for i in seen["warehouse"].of("invoice.issued")] == [
            "INV-B-I1"
        ]


async def test_the_warehouse_is_told_the_location_a_channel_reserved_from(world: World) -> None:
    async with parties(world, warehouse=lambda body: []) as seen:
        uk = order_data("webshop-uk", "UK-LOC", [("DESK-1", 1, "199.00")], currency="GBP")
        await world.place("webshop-uk", uk)  # webshop-uk ships from main only
        await world.place("bolcom", order_data("bolcom", "B-LOC", [("LAMP-1", 1, "25.50")]))
        picks = await seen["warehouse"].wait("pick.request", 2)
        where = {p["data"]["lines"][0]["sku"]: p["data"]["location"] for p in picks}
        assert where == {"DESK-1": "main", "LAMP-1": None}  # bol.com sells from every one


async def test_the_carrier_is_given_the_parcels_weight_from_the_products(world: World) -> None:
    await world.send(
        "erp",
        "product.upserted",
        {"sku": "LAMP-1", "name": "Lamp", "version": 2, "weight_grams": 1250},
    )
    await world.until(
        "SELECT data->>'weight_grams' FROM stock_products WHERE sku = 'LAMP-1'", expect="1250"
    )
    async with parties(world) as seen:
        await world.place("bolcom", order_data("bolcom", "B-KG", [("LAMP-1", 2, "25.50")]))
        mixed = [("LAMP-1", 1, "25.50"), ("DESK-1", 1, "199.00")]  # the desk has no weight
        await world.place("bolcom", order_data("bolcom", "B-KG2", mixed))
        requests = await seen["carrier"].wait("shipment.request", 2)
        weights = {
            r["data"]["order_id"]: [p["weight_grams"] for p in r["data"]["parcels"]]
            for r in requests
        }
        first = await world.order("bolcom", "B-KG")
        second = await world.order("bolcom", "B-KG2")
        assert first is not None and second is not None
        assert weights == {first["order_id"]: [2500], second["order_id"]: [None]}
