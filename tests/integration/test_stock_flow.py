"""Stock on the real RabbitMQ and PostgreSQL: levels, stale versions, reservations, RPC."""

from __future__ import annotations

import asyncio
import socket
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import orjson
import pytest

from hub.runtime import Hub
from hub.stock import reservations
from routes.config import HubConfig
from routes.loader import load_config

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).parents[1] / "fixtures" / "stock" / "hub.yaml"
SALES = ("webshop-nl", "webshop-uk", "bolcom")


@pytest.fixture(scope="module")
def stock_config() -> HubConfig:
    return load_config(CONFIG)


def event(type_: str, data: dict[str, Any], source: str = "erp", **extra: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": extra.pop("id", str(uuid.uuid4())),
        "source": source,
        "type": type_,
        "time": datetime.now(UTC).isoformat(),
        "data": data,
        **extra,
    }


def level(sku: str, on_hand: int, version: int, location: str = "main", **more: Any) -> dict:
    return event(
        "stock.level",
        {"sku": sku, "location": location, "on_hand": on_hand, "version": version, **more},
    )


def product(sku: str, version: int = 1, **more: Any) -> dict[str, Any]:
    return event("product.upserted", {"sku": sku, "name": sku, "version": version, **more})


async def figures(bus, expect: dict[str, int], timeout: float = 10) -> dict[str, list[dict]]:
    got = {}
    for channel, n in expect.items():
        bodies = await bus.bodies(bus.names.channel_queue(channel), expect=n, timeout=timeout)
        got[channel] = [b["data"] for b in bodies if b["type"] == "stock.availability"]
    return got


async def test_level_reaches_each_channel_with_its_own_figure(start_hub, bus, stock_config):
    hub = await start_hub(stock_config)
    await bus.publish("erp.stock.level", level("DESK-1", 1000, 1))
    first = await figures(bus, dict.fromkeys(SALES, 1))
    assert first["webshop-nl"][0]["available"] == 998  # buffer 2
    assert first["webshop-uk"][0]["available"] == 200  # (1000-5)*60% capped at 200
    assert first["bolcom"][0]["available"] == 50  # capped at 50
    assert first["webshop-nl"][0]["version"] == 1

    await bus.publish("erp.stock.level", level("DESK-1", 1001, 2))
    second = await figures(bus, {"webshop-nl": 1, "webshop-uk": 0, "bolcom": 0})
    assert [d["available"] for d in second["webshop-nl"]] == [999]
    assert second["webshop-nl"][0]["version"] == 2
    assert second["webshop-uk"] == [] and second["bolcom"] == []
    for other in ("erp", "warehouse", "carrier"):
        assert await bus.drain(bus.names.channel_queue(other), expect=0, settle=0.1) == []
    assert hub.metrics.stale_stock._value.get() == 0


async def test_stale_and_equal_versions_are_dropped_and_counted(start_hub, bus, stock_config):
    hub = await start_hub(stock_config)
    await bus.publish("erp.stock.level", level("LAMP-1", 10, 5))
    await figures(bus, dict.fromkeys(SALES, 1))
    await bus.publish("erp.stock.level", level("LAMP-1", 99, 4))  # older
    await bus.publish("erp.stock.level", level("LAMP-1", 77, 5))  # equal
    got = await figures(bus, dict.fromkeys(SALES, 0), timeout=2)
    assert all(v == [] for v in got.values())
    for _ in range(50):
        if hub.metrics.stale_stock._value.get() == 2:
            break
        await asyncio.sleep(0.05)
    assert hub.metrics.stale_stock._value.get() == 2
    async with hub.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT on_hand, version FROM stock_ledger WHERE sku='LAMP-1'")
    assert (row["on_hand"], row["version"]) == (10, 5)


async def test_a_channel_may_not_report_stock(start_hub, bus, stock_config):
    await start_hub(stock_config)
    await bus.publish("webshop-nl.stock.level", {**level("X-1", 5, 1), "source": "webshop-nl"})
    [parked] = await bus.drain(bus.names.dead_queue, expect=1)
    assert parked.headers["x-hub-error-type"] == "no_route"


async def _race_once(hub: Hub, sku: str, requests: int = 60) -> int:
    async def one(i: int) -> bool:
        async with hub.pool.acquire() as conn, conn.transaction():
            result = await reservations.reserve(
                conn,
                reservation_id=f"{sku}-r{i}",
                channel=SALES[i % 3],
                order_ref=f"o{i}",
                lines=[(sku, 1)],
            )
            return result.granted

    granted = await asyncio.gather(*(one(i) for i in range(requests)))
    return sum(granted)


async def test_race_for_ten_units_grants_exactly_ten(start_hub, stock_config, isolated):
    hub = await start_hub(stock_config, db_pool_max=40)
    for round_ in range(20):
        sku = f"RACE-{round_}"
        async with hub.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO stock_ledger (sku, location, on_hand, version) VALUES"
                " ($1, 'main', 6, 1), ($1, 'store', 4, 1)",
                sku,
            )
        assert await _race_once(hub, sku) == 10, f"round {round_}"
        async with hub.pool.acquire() as conn:
            held = await conn.fetchval(
                "SELECT sum(quantity) FROM stock_reservation_lines WHERE sku = $1 AND active", sku
            )
        assert held == 10


async def test_redelivered_reservation_has_its_effect_once(start_hub, bus, stock_config):
    hub = await start_hub(stock_config)
    await bus.publish("erp.stock.level", level("CHAIR-1", 10, 1))
    await figures(bus, dict.fromkeys(SALES, 1))
    cmd = event(
        "stock.reserve",
        {
            "reservation_id": "res-1",
            "channel": "webshop-nl",
            "order_ref": "NL-1001",
            "lines": [{"sku": "CHAIR-1", "quantity": 3}],
        },
        source="webshop-nl",
        id="reserve-1",
    )
    await bus.publish("webshop-nl.stock.reserve", cmd)
    await bus.publish("webshop-nl.stock.reserve", cmd)  # redelivered
    again = {**cmd, "id": "reserve-1-retry"}  # the same reservation asked again, new message
    await bus.publish("webshop-nl.stock.reserve", again)
    bodies = await bus.bodies(bus.names.channel_queue("webshop-nl"), expect=3)
    answers = [b for b in bodies if b["type"] == "stock.reserved"]
    avail = [b["data"]["available"] for b in bodies if b["type"] == "stock.availability"]
    assert len(answers) == 2 and {a["data"]["reservation_id"] for a in answers} == {"res-1"}
    assert avail == [5]  # 10 - 3 held - buffer 2, published once
    async with hub.pool.acquire() as conn:
        held = await conn.fetchval("SELECT sum(quantity) FROM stock_reservation_lines")
    assert held == 3


async def test_refused_reservation_says_which_sku_is_short(start_hub, bus, stock_config):
    await start_hub(stock_config)
    await bus.publish("erp.stock.level", level("SOFA-1", 2, 1))
    await figures(bus, dict.fromkeys(SALES, 1))
    cmd = event(
        "stock.reserve",
        {
            "reservation_id": "res-2",
            "channel": "bolcom",
            "order_ref": "B-1",
            "lines": [{"sku": "SOFA-1", "quantity": 1}, {"sku": "GHOST-1", "quantity": 2}],
        },
        source="bolcom",
    )
    await bus.publish("bolcom.stock.reserve", cmd)
    bodies = await bus.bodies(bus.names.channel_queue("bolcom"), expect=1)
    [refused] = [b for b in bodies if b["type"] == "stock.reservation_refused"]
    assert refused["data"]["shortages"] == [{"sku": "GHOST-1", "requested": 2, "available": 0}]


async def test_hand_over_to_the_erp_never_double_counts(start_hub, bus, stock_config):
    hub = await start_hub(stock_config)
    await bus.publish("erp.stock.level", level("TABLE-1", 10, 1))
    await figures(bus, dict.fromkeys(SALES, 1))
    async with hub.pool.acquire() as conn, conn.transaction():
        assert (
            await reservations.reserve(
                conn,
                reservation_id="r-ho",
                channel="webshop-nl",
                order_ref="o",
                lines=[("TABLE-1", 3)],
            )
        ).granted
        assert await reservations.confirm(conn, "r-ho", "SO-77")
    # The ERP commits another order first: both count (hub hold 3 + ERP committed 2).
    await bus.publish("erp.stock.level", level("TABLE-1", 10, 2, committed=2))
    [nl] = (await figures(bus, {"webshop-nl": 1}))["webshop-nl"]
    assert nl["available"] == 10 - 2 - 3 - 2
    # Now the ERP counts SO-77 too: the hub's hold goes, the figure stays put.
    await bus.publish(
        "erp.stock.level", level("TABLE-1", 10, 3, committed=5, included_order_ids=["SO-77"])
    )
    got = await figures(bus, {"webshop-nl": 0}, timeout=2)
    assert got["webshop-nl"] == []
    async with hub.pool.acquire() as conn:
        active = await conn.fetchval("SELECT count(*) FROM stock_reservation_lines WHERE active")
        assert active == 0
        assert not await reservations.release(conn, "unknown")


async def test_available_from_is_the_first_receipt_that_leaves_units_to_sell(
    start_hub, bus, stock_config
):
    await start_hub(stock_config)
    small, large = (date.today() + timedelta(days=d) for d in (5, 12))
    incoming = [
        {"quantity": 3, "expected_date": small.isoformat()},  # the buffer takes 2, 1 shows as 0
        {"quantity": 10, "expected_date": large.isoformat()},
    ]
    await bus.publish("erp.product.upserted", product("VASE-1"))
    await bus.publish("erp.stock.level", level("VASE-1", 0, 1, incoming=incoming))
    [nl] = (await figures(bus, {"webshop-nl": 2}))["webshop-nl"]
    assert nl["available"] == 0
    assert nl["next_available_date"] == large.isoformat()


async def test_query_answers_with_alternatives_for_a_sold_out_sku(start_hub, bus, stock_config):
    hub = await start_hub(stock_config)
    soon = date.today() + timedelta(days=10)
    for sku, qty in (("MUG-RED", 0), ("MUG-BLUE", 30), ("MUG-GREEN", 8), ("MUG-GREY", 0)):
        await bus.publish("erp.product.upserted", product(sku, substitution_group="mugs"))
        incoming = [{"quantity": 20, "expected_date": soon.isoformat()}] if sku == "MUG-RED" else []
        await bus.publish("erp.stock.level", level(sku, qty, 1, incoming=incoming))
    await figures(bus, {"webshop-nl": 8}, timeout=10)  # 4 products + 4 availabilities

    assert bus.channel is not None
    callback = await bus.channel.declare_queue(exclusive=True, auto_delete=True)
    query = event(
        "availability.query",
        {"channel": "webshop-nl", "skus": ["MUG-RED", "MUG-BLUE"]},
        source="webshop-nl",
    )
    started = asyncio.get_running_loop().time()
    default = bus.channel.default_exchange
    await default.publish(
        aio_pika.Message(orjson.dumps(query), reply_to=callback.name, correlation_id="q-1"),
        routing_key=bus.names.rpc_queue,
    )
    msg = None
    for _ in range(200):
        msg = await callback.get(no_ack=True, fail=False)
        if msg:
            break
        await asyncio.sleep(0.02)
    assert msg is not None, "no answer"
    elapsed = asyncio.get_running_loop().time() - started
    assert msg.correlation_id == "q-1"
    answer = orjson.loads(msg.body)
    assert answer["type"] == "availability.answer"
    red, blue = answer["data"]["items"]
    assert red["available"] == 0
    assert red["next_available_date"] == soon.isoformat()
    assert red["promised_delivery_date"] == (soon + timedelta(days=1)).isoformat()
    assert red["alternatives"] == [
        {"sku": "MUG-BLUE", "available": 28},
        {"sku": "MUG-GREEN", "available": 6},
    ]
    assert blue["available"] == 28 and blue["alternatives"] == []
    assert blue["promised_delivery_date"] == (date.today() + timedelta(days=1)).isoformat()
    assert elapsed < 2
    assert hub.metrics.parked.labels("business_rule")._value.get() == 0


async def test_a_query_that_cannot_be_read_is_parked_unanswered_and_the_next_is_answered(
    start_hub, bus, stock_config
):
    await start_hub(stock_config)
    assert bus.channel is not None
    callback = await bus.channel.declare_queue(exclusive=True, auto_delete=True)
    default = bus.channel.default_exchange
    bad = event("availability.query", {"channel": "nowhere", "skus": ["X"]}, source="webshop-nl")
    good = event(
        "availability.query", {"channel": "webshop-nl", "skus": ["X"]}, source="webshop-nl"
    )
    for body, cid in ((bad, "q-bad"), (b"not json", "q-junk"), (good, "q-good")):
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        await default.publish(
            aio_pika.Message(data, reply_to=callback.name, correlation_id=cid),
            routing_key=bus.names.rpc_queue,
        )
    answers = []
    for _ in range(200):
        msg = await callback.get(no_ack=True, fail=False)
        if msg:
            answers.append(msg)
        if answers:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)
    while msg := await callback.get(no_ack=True, fail=False):
        answers.append(msg)
    assert [m.correlation_id for m in answers] == ["q-good"]
    item = orjson.loads(answers[0].body)["data"]["items"][0]
    assert item["sku"] == "X" and item["available"] == 0
    parked = await bus.drain(bus.names.dead_queue, expect=2, timeout=10)
    assert sorted(m.correlation_id for m in parked) == ["q-bad", "q-junk"]


async def test_only_the_channel_that_reserved_may_release(start_hub, bus, stock_config):
    """A channel reserves in its own name only, and another cannot give its units back."""
    hub = await start_hub(stock_config)
    await bus.publish("erp.stock.level", level("BED-1", 10, 1))
    await figures(bus, dict.fromkeys(SALES, 1))
    mine = {"reservation_id": "res-own", "order_ref": "NL-7"}
    lines = [{"sku": "BED-1", "quantity": 2}]
    reserve = {**mine, "channel": "webshop-nl", "lines": lines}
    posing = {**reserve, "reservation_id": "res-posing", "channel": "webshop-nl"}
    release = {"reservation_id": "res-own", "reason": "buyer left"}
    await bus.publish("webshop-nl.stock.reserve", event("stock.reserve", reserve, "webshop-nl"))
    answers = await bus.bodies(bus.names.channel_queue("webshop-nl"), expect=2)
    assert "stock.reserved" in {b["type"] for b in answers}  # and availability went down
    await bus.publish("bolcom.stock.reserve", event("stock.reserve", posing, "bolcom"))
    taken = {**reserve, "channel": "bolcom", "lines": [{"sku": "BED-1", "quantity": 9}]}
    await bus.publish("bolcom.stock.reserve", event("stock.reserve", taken, "bolcom"))
    await bus.publish("bolcom.stock.release", event("stock.release", release, "bolcom"))
    dead = await bus.drain(bus.names.dead_queue, expect=3)
    parked = sorted(m.headers["x-hub-error"] for m in dead)
    assert parked == [
        "'bolcom' cannot release reservation 'res-own': 'webshop-nl' made it",
        "'bolcom' cannot reserve for channel 'webshop-nl'",
        "reservation id 'res-own' is taken by channel 'webshop-nl'",
    ]
    async with hub.pool.acquire() as conn:
        assert await conn.fetchval("SELECT sum(quantity) FROM stock_reservation_lines") == 2
    await bus.publish("webshop-nl.stock.release", event("stock.release", release, "webshop-nl"))
    held = "SELECT coalesce(sum(quantity), 0) FROM stock_reservation_lines WHERE active"
    for _ in range(100):
        async with hub.pool.acquire() as conn:
            if await conn.fetchval(held) == 0:
                break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the owner's release did not give the units back")


async def test_an_older_or_repeated_product_version_reaches_no_channel(
    start_hub, bus, stock_config
):
    """A late retry of an old ERP push must not put old product data back on the shops."""
    hub = await start_hub(stock_config)

    def product(version: int) -> dict[str, Any]:
        data = {"sku": "LAMP-9", "name": f"Lamp v{version}", "version": version}
        return event("product.upserted", data, id=f"p-{uuid.uuid4().hex}")

    await bus.publish("erp.product.upserted", product(2))
    [first] = await bus.bodies(bus.names.channel_queue("webshop-nl"), expect=1)
    for version in (1, 2, 3):  # older, repeated, newer
        await bus.publish("erp.product.upserted", product(version))
    seen = await bus.bodies(bus.names.channel_queue("webshop-nl"), expect=1, timeout=5)
    assert [b["data"]["name"] for b in (first, *seen)] == ["Lamp v2", "Lamp v3"]
    stale = hub.metrics.registry.get_sample_value(
        "hub_catalog_stale_dropped_total", {"type": "product.upserted"}
    )
    assert stale == 2


async def test_a_deactivated_product_is_shown_as_none_until_it_is_active_again(
    start_hub, bus, stock_config
):
    """Its orders are refused as unknown SKUs: listing it in stock would only sell what is
    then cancelled."""
    await start_hub(stock_config)
    await bus.publish("erp.product.upserted", product("DESK-1", version=1))
    await bus.publish("erp.stock.level", level("DESK-1", 10, 1))

    def shown(bodies: list[dict]) -> list[int]:
        return [b["data"]["available"] for b in bodies if b["type"] == "stock.availability"]

    nl = bus.names.channel_queue("webshop-nl")
    assert shown(await bus.bodies(nl, expect=2)) == [8]  # the product, then its figure
    await bus.publish("erp.product.upserted", product("DESK-1", version=2, active=False))
    assert shown(await bus.bodies(nl, expect=2)) == [0]
    await bus.publish("erp.stock.level", level("DESK-1", 12, 2))  # still none to sell
    await bus.publish("erp.product.upserted", product("DESK-1", version=3, active=True))
    assert shown(await bus.bodies(nl, expect=2)) == [10]


async def test_the_same_query_is_answered_over_http_for_a_shop_without_an_adapter_process(
    start_hub, bus, stock_config
):
    port = _free_port()
    await start_hub(stock_config, http_port=port)
    soon = date.today() + timedelta(days=10)
    for sku, qty in (("MUG-RED", 0), ("MUG-BLUE", 30)):
        await bus.publish("erp.product.upserted", product(sku, substitution_group="mugs"))
        incoming = [{"quantity": 20, "expected_date": soon.isoformat()}] if sku == "MUG-RED" else []
        await bus.publish("erp.stock.level", level(sku, qty, 1, incoming=incoming))
    await figures(bus, {"webshop-nl": 4}, timeout=10)
    url = f"http://127.0.0.1:{port}/availability"
    async with httpx.AsyncClient(timeout=5) as client:
        found = await client.get(
            f"{url}/webshop-nl", params=[("sku", "MUG-RED"), ("sku", "MUG-BLUE")]
        )
        unknown = await client.get(f"{url}/nowhere", params={"sku": "MUG-RED"})
        empty = await client.get(f"{url}/webshop-nl")
    assert found.status_code == 200
    red, blue = found.json()["items"]
    assert red["sku"] == "MUG-RED" and red["available"] == 0
    assert red["next_available_date"] == soon.isoformat()
    assert red["alternatives"] == [{"sku": "MUG-BLUE", "available": 28}]
    assert blue["available"] == 28
    assert unknown.status_code == 404 and "nowhere" in unknown.json()["error"]
    assert empty.status_code == 400 and "skus" in empty.json()["error"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
