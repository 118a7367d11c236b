"""The reservation rules in the database: shared kit components, all-or-none, partial, once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub import db
from hub.stock import ledger, reservations
from schemas.catalog import ProductUpserted
from schemas.inventory import StockLevel

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(isolated):
    pool = await db.prepare(isolated.database_url, 2)
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        for sku, qty in (("A", 6), ("B", 5)):
            level = StockLevel(sku=sku, location="main", on_hand=qty, version=1)
            await ledger.apply_levels(conn, [level], now)
        kit = ProductUpserted(
            sku="KIT",
            name="kit",
            version=1,
            components=[{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 1}],
        )
        await ledger.store_products(conn, [kit])
    yield pool
    await pool.close()


async def held(pool) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT sku, sum(quantity)::int AS q FROM stock_reservation_lines WHERE active GROUP BY sku"
    )
    return {r["sku"]: r["q"] for r in rows}


async def test_all_or_none_counts_components_shared_with_plain_lines(pool) -> None:
    async with pool.acquire() as conn:
        refused = await reservations.reserve(
            conn, reservation_id="r1", channel="c", order_ref="o1", lines=[("A", 3), ("KIT", 2)]
        )
    # A: 3 go to the plain line, 3 left = 1 kit of the 2 asked; nothing is held.
    assert not refused.granted and refused.shortages == {"KIT": (2, 1)}
    assert await held(pool) == {}


async def test_partial_takes_what_there_is_and_a_repeat_answers_the_same(pool) -> None:
    async with pool.acquire() as conn:
        first = await reservations.reserve(
            conn,
            reservation_id="r2",
            channel="c",
            order_ref="o2",
            lines=[("A", 3), ("KIT", 2)],
            allow_partial=True,
        )
        again = await reservations.reserve(
            conn,
            reservation_id="r2",
            channel="c",
            order_ref="o2",
            lines=[("A", 3), ("KIT", 2)],
            allow_partial=True,
        )
    assert first.granted and dict(first.lines) == {"A": 3, "KIT": 1}
    assert first.shortages == {"KIT": (2, 1)}
    assert again == first
    assert await held(pool) == {"A": 5, "B": 1}  # 3 + 2 per kit; 1 per kit


async def test_release_gives_the_units_back_once(pool) -> None:
    async with pool.acquire() as conn:
        await reservations.reserve(
            conn, reservation_id="r3", channel="c", order_ref="o3", lines=[("B", 5)]
        )
        assert await held(pool) == {"B": 5}
        assert await reservations.release(conn, "r3") is True
        assert await reservations.release(conn, "r3") is False
    assert await held(pool) == {}
