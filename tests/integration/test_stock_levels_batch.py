"""Levels applied a batch at a time give what applying them one by one, in order, would give."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from hub import db
from hub.stock import ledger, reservations
from schemas.inventory import IncomingReceipt, StockLevel

pytestmark = pytest.mark.integration

SKUS = ("A", "B", "C")
LOCATIONS = ("main", "back")
ORDERS = tuple(f"E{n}" for n in range(1, 9))
TODAY = date(2026, 11, 27)


@dataclass
class Model:
    """The rules, one level at a time: what the set-based function must agree with."""

    rows: dict[tuple[str, str], StockLevel] = field(default_factory=dict)
    handed: set[tuple[str, str]] = field(default_factory=set)  # (sku, ERP order number)

    def apply(self, level: StockLevel) -> bool:
        key = (level.sku, level.location)
        stored = self.rows.get(key)
        if stored is not None and level.version <= stored.version:
            return False
        self.rows[key] = level
        self.handed.update((level.sku, number) for number in level.included_order_ids)
        return True

    def receipts(self) -> set[tuple[str, str, date, int]]:
        due: dict[tuple[str, str, date], int] = {}
        for (sku, location), level in self.rows.items():
            for receipt in level.incoming:
                k = (sku, location, receipt.expected_date)
                due[k] = due.get(k, 0) + receipt.quantity
        return {(*k, q) for k, q in due.items()}


def random_level(rng: random.Random, round_no: int) -> StockLevel:
    return StockLevel(
        sku=rng.choice(SKUS),
        location=rng.choice(LOCATIONS),
        on_hand=rng.randint(0, 50),
        committed=rng.randint(0, 5),
        # Rising with the round, with overlap: most levels apply, some (also within a batch)
        # arrive after a newer one and are stale.
        version=max(0, 3 * round_no + rng.randint(-4, 4)),
        included_order_ids=tuple(rng.sample(ORDERS, rng.randint(0, 1))),
        incoming=tuple(
            IncomingReceipt(
                expected_date=TODAY + timedelta(days=rng.randint(1, 3)),
                quantity=rng.randint(1, 9),
            )
            for _ in range(rng.randint(0, 3))  # two on one date add up
        ),
    )


@pytest.fixture
async def pool(isolated):
    pool = await db.prepare(isolated.database_url, 2)
    yield pool
    await pool.close()


async def active_lines(pool) -> set[tuple[str, str]]:
    """Lines still holding units; a line handed over must say when."""
    rows = await pool.fetch(
        "SELECT l.sku, r.erp_order_number, l.active, l.handed_over_at"
        " FROM stock_reservation_lines l JOIN stock_reservations r USING (reservation_id)"
    )
    assert all((r["handed_over_at"] is None) == r["active"] for r in rows)
    return {(r["sku"], r["erp_order_number"]) for r in rows if r["active"]}


@pytest.mark.parametrize("seed", range(6))
async def test_a_batch_agrees_with_applying_its_levels_one_by_one(pool, seed: int) -> None:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        # Units on hand to hold, then one confirmed reservation per ERP order on every SKU.
        await ledger.apply_levels(
            conn, [StockLevel(sku=s, location="main", on_hand=100, version=0) for s in SKUS], now
        )
        for number in ORDERS:
            rid = f"r-{number}"
            lines = [(s, 1) for s in SKUS]
            await reservations.reserve(
                conn, reservation_id=rid, channel="c", order_ref=number, lines=lines
            )
            assert await reservations.confirm(conn, rid, number)
    model = Model()
    for s in SKUS:
        model.apply(StockLevel(sku=s, location="main", on_hand=100, version=0))
    every_line = {(s, n) for s in SKUS for n in ORDERS}
    assert await active_lines(pool) == every_line

    applied_count = stale_count = 0
    for round_no in range(20):
        batch = [random_level(rng, round_no) for _ in range(rng.randint(1, 8))]
        async with pool.acquire() as conn, conn.transaction():
            if round_no % 2:  # the stock handler's call: the same, and the snapshot with it
                applied, snap = await ledger.apply_levels_and_snapshot(conn, batch, now)
                changed = {lv.sku for lv, ok in zip(batch, applied, strict=True) if ok}
                assert snap == (await ledger.snapshot(conn, changed) if changed else None)
            else:
                applied = await ledger.apply_levels(conn, batch, now)
        assert applied == [model.apply(level) for level in batch]
        applied_count += applied.count(True)
        stale_count += applied.count(False)

        rows = await pool.fetch(
            "SELECT sku, location, on_hand, committed, version, included_order_ids"
            " FROM stock_ledger"
        )
        assert {
            (r["sku"], r["location"]): (
                r["on_hand"],
                r["committed"],
                r["version"],
                tuple(r["included_order_ids"]),
            )
            for r in rows
        } == {
            key: (lv.on_hand, lv.committed, lv.version, lv.included_order_ids)
            for key, lv in model.rows.items()
        }
        receipts = await pool.fetch(
            "SELECT sku, location, expected_date, quantity FROM stock_incoming"
        )
        assert {tuple(r) for r in receipts} == model.receipts()
        assert await active_lines(pool) == every_line - model.handed
    assert applied_count and stale_count  # both paths were taken


async def test_an_empty_batch_and_an_all_stale_batch_change_nothing(pool) -> None:
    now = datetime.now(UTC)
    level = StockLevel(sku="A", location="main", on_hand=7, version=5)
    async with pool.acquire() as conn:
        assert await ledger.apply_levels(conn, [], now) == []
        assert await ledger.apply_levels(conn, [level], now) == [True]
        stale = [level.model_copy(update={"on_hand": 1, "version": v}) for v in (5, 3)]
        assert await ledger.apply_levels(conn, stale, now) == [False, False]
        assert await ledger.apply_levels_and_snapshot(conn, stale, now) == ([False, False], None)
        assert await ledger.apply_levels_and_snapshot(conn, [], now) == ([], None)
    assert await pool.fetchval("SELECT on_hand FROM stock_ledger WHERE sku = 'A'") == 7


async def test_per_batch_reads_probe_keys_even_when_planned_on_an_empty_ledger(isolated) -> None:
    """PL/pgSQL keeps the plan it made from the statistics of an empty ledger; that plan must
    still look each key up rather than scan a table that has grown since (auto_explain shows
    the plans of the statements inside the functions)."""
    now = datetime.now(UTC)
    pool = await db.prepare(isolated.database_url, 1)  # migrated
    await pool.close()
    conn = await asyncpg.connect(isolated.database_url)  # its own: the log settings die with it
    try:
        for k in range(8):  # past the five calls after which PL/pgSQL keeps a generic plan
            levels = [
                StockLevel(sku=f"S{k}-{j}", location="main", on_hand=1, version=1) for j in range(3)
            ]
            async with conn.transaction():
                await ledger.apply_levels(conn, levels, now)
                await ledger.snapshot(conn, [lv.sku for lv in levels])
        await conn.execute(  # grows with no ANALYZE, as in the first minutes of a big import
            "INSERT INTO stock_ledger (sku, location, on_hand, committed, version, updated_at)"
            " SELECT 'G-' || i, 'main', 1, 0, 1, now() FROM generate_series(1, 5000) AS i;"
            "INSERT INTO stock_published (channel, sku, available, version, published_at)"
            " SELECT 'c', 'G-' || i, 1, 1, now() FROM generate_series(1, 5000) AS i"
        )
        plans: list[str] = []
        conn.add_log_listener(lambda _c, message: plans.append(message.message))
        await conn.execute(
            "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0;"
            " SET auto_explain.log_nested_statements = on; SET client_min_messages = log"
        )
        levels = [StockLevel(sku=f"G-{j}", location="main", on_hand=2, version=2) for j in range(3)]
        async with conn.transaction():
            assert await ledger.apply_levels(conn, levels, now) == [True] * 3
            snap = await ledger.snapshot(conn, [lv.sku for lv in levels])
    finally:
        await conn.close()
    assert {s: sum(st.net_by_location.values()) for s, st in snap.stocks.items()} == {
        "G-0": 2,
        "G-1": 2,
        "G-2": 2,
    }
    inner = [p for p in plans if "stock_ledger" in p or "stock_published" in p]
    assert inner, "auto_explain showed no plans"
    assert not [p for p in inner if "Seq Scan on stock_" in p]


async def test_per_batch_functions_keep_one_plan_per_statement(isolated) -> None:
    """Planning every statement again on every call doubled a small batch's stock call
    (bench/findings.md): the functions of the serial stage keep their generic plans, and
    the test above holds those plans to index lookups."""
    pool = await db.prepare(isolated.database_url, 1)  # migrated
    try:
        rows = await pool.fetch(
            "SELECT proname, coalesce(proconfig, '{}') AS config FROM pg_proc"
            " WHERE pronamespace = 'public'::regnamespace AND prolang ="
            " (SELECT oid FROM pg_language WHERE lanname = 'plpgsql')"
        )
    finally:
        await pool.close()
    per_batch = {
        r["proname"]: r["config"] for r in rows if r["proname"].startswith(("stock_", "hub_"))
    }
    assert set(per_batch) >= {
        "hub_lock_keys",
        "stock_lock",
        "stock_apply_levels",
        "stock_apply_levels_snapshot",
        "stock_snapshot",
        "stock_reserve_prepare",
    }
    assert {
        name
        for name, config in per_batch.items()
        if "plan_cache_mode=force_generic_plan" not in config
    } == set()
