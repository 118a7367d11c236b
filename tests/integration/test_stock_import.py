"""Spreadsheet import and resync on the real broker and database."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.stock.service import import_file, resync
from routes.loader import load_config

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parents[1] / "fixtures" / "stock"
CONFIG = load_config(FIXTURES / "hub.yaml")
SALES = ("webshop-nl", "webshop-uk", "bolcom")


async def ledger(hub) -> dict[tuple[str, str], int]:
    async with hub.pool.acquire() as conn:
        rows = await conn.fetch("SELECT sku, location, on_hand FROM stock_ledger")
    return {(r["sku"], r["location"]): r["on_hand"] for r in rows}


async def test_bad_spreadsheet_is_rejected_and_changes_nothing(start_hub, bus, isolated):
    hub = await start_hub(CONFIG)
    result = await import_file(isolated, CONFIG, FIXTURES / "bad.csv")
    assert result.published == 0
    assert [e.line for e in result.errors] == [3, 4, 5, 6, 7]
    await asyncio.sleep(0.5)
    assert await ledger(hub) == {}
    for channel in SALES:
        assert await bus.drain(bus.names.channel_queue(channel), expect=0, settle=0.1) == []


async def test_good_spreadsheet_reaches_ledger_and_channels_once(start_hub, bus, isolated):
    hub = await start_hub(CONFIG)
    for _ in range(2):  # the same file twice: effect once
        result = await import_file(isolated, CONFIG, FIXTURES / "good.csv")
        assert result.errors == () and result.published == 3
    nl = await bus.bodies(bus.names.channel_queue("webshop-nl"), expect=3)
    latest = {b["data"]["sku"]: b["data"] for b in sorted(nl, key=lambda b: b["data"]["version"])}
    assert {sku: d["available"] for sku, d in latest.items()} == {"DESK-1": 13, "CHAIR-1": 0}
    assert latest["CHAIR-1"]["next_available_date"] == "2030-01-15"
    assert await ledger(hub) == {
        ("DESK-1", "main"): 12,
        ("DESK-1", "store"): 3,
        ("CHAIR-1", "main"): 0,
    }

    sent = await resync(isolated, CONFIG, "bolcom")
    assert sent == {"bolcom": 2}
    bol = [b["data"] for b in await bus.bodies(bus.names.channel_queue("bolcom"), expect=5)]
    resent = [d for d in bol if d["sku"] == "DESK-1"][-1]
    assert resent["available"] == 4  # (15 - 3) * 40% = 4.8 -> 4, sent again with a new version
    assert resent["version"] == max(d["version"] for d in bol if d["sku"] == "DESK-1")
    uk = await bus.bodies(bus.names.channel_queue("webshop-uk"), expect=2)
    assert uk and all(b["causationid"].startswith("stock-import-") for b in uk)  # no resync


async def test_a_file_without_versions_corrects_stock_without_freezing_it_against_the_erp(
    start_hub, bus, isolated, tmp_path
):
    hub = await start_hub(CONFIG)
    level = {"sku": "DESK-1", "location": "main", "on_hand": 20, "version": 1_700_000_000}
    await bus.publish("erp.stock.level", _event("erp", level))  # versions in seconds, as Odoo's
    await _until_on_hand(hub, 20)

    count = tmp_path / "stock-count.csv"
    count.write_text("sku,location,on_hand\nDESK-1,main,17\n")
    result = await import_file(isolated, CONFIG, count)
    assert result.errors == () and result.published == 1
    await _until_on_hand(hub, 17)  # the count applies now ...

    later = {**level, "on_hand": 16, "version": 1_700_000_060}
    await bus.publish("erp.stock.level", _event("erp", later))
    await _until_on_hand(hub, 16)  # ... and the ERP's next change still does


def _event(source: str, data: dict) -> dict:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": source,
        "type": "stock.level",
        "time": datetime.now(UTC).isoformat(),
        "data": data,
    }


async def _until_on_hand(hub, expected: int) -> None:
    for _ in range(200):
        if (await ledger(hub)).get(("DESK-1", "main")) == expected:
            return
        await asyncio.sleep(0.05)
    assert (await ledger(hub)).get(("DESK-1", "main")) == expected


async def test_a_file_measured_before_a_shipment_does_not_end_the_hold_on_its_units(
    start_hub, isolated, tmp_path
):
    """A stock file says when its figures were true (``--measured-at``): one measured before
    units shipped still counts them, so their hold stays until a later file counts them out."""
    from datetime import timedelta

    from hub.stock import reservations

    hub = await start_hub(CONFIG)
    first = tmp_path / "first.csv"
    first.write_text("sku,location,on_hand,version\nDESK-1,main,12,1\n")
    assert (await import_file(isolated, CONFIG, first)).published == 1
    await _until(hub, "SELECT count(*) FROM stock_ledger", 1)
    early = tmp_path / "early.csv"
    early.write_text("sku,location,on_hand,version\nDESK-1,main,12,2\n")
    shipped_at = datetime.now(UTC)
    async with hub.pool.acquire() as conn:
        await reservations.reserve(
            conn, reservation_id="r1", channel="webshop-nl", order_ref="o1", lines=[("DESK-1", 2)]
        )
        await reservations.mark_shipped(conn, "r1", {"DESK-1": 2}, shipped_at)
    held = "SELECT coalesce(sum(quantity), 0) FROM stock_reservation_lines WHERE active"
    before = shipped_at - timedelta(hours=1)
    assert await hub.pool.fetchval(held) == 2
    assert (await import_file(isolated, CONFIG, early, measured_at=before)).published == 1
    await _until(hub, "SELECT version FROM stock_ledger", 2)
    assert await hub.pool.fetchval(held) == 2
    later = tmp_path / "later.csv"
    later.write_text("sku,location,on_hand,version\nDESK-1,main,10,3\n")
    assert (await import_file(isolated, CONFIG, later)).published == 1
    await _until(hub, held, 0)


async def _until(hub, query: str, expect: int) -> None:
    for _ in range(100):
        if await hub.pool.fetchval(query) == expect:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{query} never gave {expect}")
