"""A channel that lists products under SKUs of its own: renamed at the edge, both ways."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aio_pika
import orjson
import pytest
import yaml
from typer.testing import CliRunner

from hub.catalog import find_sku_clashes
from hub.cli import app
from hub.settings import Settings
from hub.stock.rpc import AvailabilityRpc
from routes import EXAMPLE_CONFIG

sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures" / "orders"))
from order_kit import Watcher, World, event, open_world, order_data, orders_config, parties

pytestmark = pytest.mark.integration

EAN = "8712345678906"  # bol.com lists DESK-1 under its EAN


def bolcom_lists_by_ean(data: dict[str, Any]) -> None:
    data["channels"]["bolcom"]["sku_map"] = {EAN: "DESK-1"}


@pytest.fixture
async def world(isolated: Settings, bus: Any) -> AsyncIterator[World]:
    services = (AvailabilityRpc.for_hub,)
    async with open_world(isolated, bus, orders_config(bolcom_lists_by_ean), services) as w:
        yield w


def skus_of(bodies: list[dict[str, Any]]) -> set[str]:
    return {b["data"]["sku"] for b in bodies}


async def test_stock_and_products_reach_the_channel_under_its_own_sku(world: World) -> None:
    async with parties(world) as seen:
        await world.send(
            "erp", "stock.level", {"sku": "DESK-1", "location": "main", "on_hand": 50, "version": 2}
        )
        await world.send("erp", "product.upserted", {"sku": "DESK-1", "name": "Desk", "version": 2})
        bol, nl = seen["bolcom"], seen["webshop-nl"]  # (50 - 3) x 40% and 50 - 2
        [figure] = await found(bol, "stock.availability", lambda d: d["available"] == 18)
        assert figure["data"]["sku"] == EAN and figure["subject"] == EAN
        [shop_figure] = await found(nl, "stock.availability", lambda d: d["available"] == 48)
        assert shop_figure["data"]["sku"] == "DESK-1"
        [product] = await found(bol, "product.upserted", lambda d: d["version"] == 2)
        assert product["data"]["sku"] == EAN
        [shop_product] = await found(nl, "product.upserted", lambda d: d["version"] == 2)
        assert shop_product["data"]["sku"] == "DESK-1"
        # Nothing about DESK-1 reached bol.com under the ERP's SKU (seeded prices included).
        for type_ in ("stock.availability", "product.upserted", "price.changed"):
            assert "DESK-1" not in skus_of(bol.of(type_)), type_
        assert EAN in skus_of(bol.of("price.changed"))


async def found(
    watcher: Watcher, type_: str, where: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """The messages of a type whose data fits, once at least one has arrived."""
    for count in range(1, 30):
        fits = [b for b in await watcher.wait(type_, count) if where(b["data"])]
        if fits:
            return fits
    raise AssertionError(f"no fitting {type_}")


async def test_an_order_in_the_channels_skus_reaches_the_erp_in_the_erps(world: World) -> None:
    async with parties(world) as seen:
        await world.place("bolcom", order_data("bolcom", "B-EAN", [(EAN, 2, "199.00")]))
        [accepted] = await seen["bolcom"].wait("order.accepted")
        [create] = await seen["erp"].wait("salesorder.create")
        assert [line["sku"] for line in create["data"]["lines"]] == ["DESK-1"]
        assert await world.held("DESK-1") == 2
        [pick] = await seen["warehouse"].wait("pick.request")
        assert pick["data"]["lines"][0]["sku"] == "DESK-1"
        [tracking] = await seen["bolcom"].wait("shipment.tracking")
        assert tracking["data"]["lines"][0]["sku"] == EAN  # told back in its own words
        assert accepted["data"]["order_id"] == create["data"]["order_id"]


async def test_an_availability_query_is_asked_and_answered_in_the_channels_skus(
    world: World,
) -> None:
    await world.send(
        "erp", "stock.level", {"sku": "DESK-1", "location": "main", "on_hand": 50, "version": 2}
    )
    await world.until("SELECT on_hand FROM stock_ledger WHERE sku = 'DESK-1'", expect=50)
    bus = world.bus
    assert bus.channel is not None
    callback = await bus.channel.declare_queue(exclusive=True, auto_delete=True)
    query = event("bolcom", "availability.query", {"channel": "bolcom", "skus": [EAN, "LAMP-1"]})
    await bus.channel.default_exchange.publish(
        aio_pika.Message(query, reply_to=callback.name, correlation_id="q-ean"),
        routing_key=bus.names.rpc_queue,
    )
    async with callback.iterator(timeout=10) as answers:
        async for msg in answers:
            answer = orjson.loads(msg.body)
            break
    desk, lamp = answer["data"]["items"]
    assert desk["sku"] == EAN and desk["available"] == 18  # (50 - 3) x 40%
    assert lamp["sku"] == "LAMP-1"


async def test_an_erp_sku_a_channel_uses_for_another_product_is_kept_from_it(
    world: World, isolated: Settings, tmp_path: Path
) -> None:
    """The ERP also sells a product under the SKU bol.com calls DESK-1: told of it, bol.com
    would change DESK-1's listing. It reaches the other channels; the operator is told."""
    async with parties(world) as seen:
        await world.send(
            "erp", "stock.level", {"sku": EAN, "location": "main", "on_hand": 9, "version": 1}
        )
        await world.send("erp", "product.upserted", {"sku": EAN, "name": "Other", "version": 1})
        nl = seen["webshop-nl"]
        await found(nl, "product.upserted", lambda d: d["sku"] == EAN)
        await found(nl, "stock.availability", lambda d: d["sku"] == EAN and d["available"] == 7)
        # What bol.com got of DESK-1 (seeded) it still has; nothing of the other product.
        await asyncio.sleep(0.5)
        bol = seen["bolcom"]
        assert not [b for b in bol.of("product.upserted") if b["data"]["name"] == "Other"]
        assert not [b for b in bol.of("stock.availability") if b["data"]["available"] in (7, 2)]
        assert await find_sku_clashes(world.hub.settings, world.hub.config) == [("bolcom", EAN)]
        config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
        bolcom_lists_by_ean(config)
        path = tmp_path / "hub.yaml"
        path.write_text(yaml.safe_dump(config))
        env = {"HUB_DATABASE_URL": isolated.database_url, "HUB_CONFIG_PATH": str(path)}
        checked = await asyncio.to_thread(CliRunner().invoke, app, ["catalog", "check"], env=env)
        assert checked.exit_code == 1
        assert f"bolcom: the ERP's SKU '{EAN}'" in checked.output
        assert "1 SKU clash(es)" in checked.output
