"""The reservation rules in the database: shared kit components, all-or-none, partial, once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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


async def test_a_backorder_holds_every_line_in_full_and_a_repeat_answers_the_same(pool) -> None:
    """Units beyond the free ones are held as backordered, so a receipt goes to this order."""
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
    assert first.granted and dict(first.lines) == {"A": 3, "KIT": 2}
    assert first.shortages == {"KIT": (2, 1)}
    assert again == first
    assert await held(pool) == {"A": 7, "B": 2}  # 3 + 2 per kit; 1 per kit
    rows = await pool.fetch("SELECT sku, backordered FROM stock_reservation_lines ORDER BY sku")
    assert [tuple(r) for r in rows] == [("A", 1), ("B", 0)]  # A: 6 free, 7 held


async def test_release_gives_the_units_back_once(pool) -> None:
    async with pool.acquire() as conn:
        await reservations.reserve(
            conn, reservation_id="r3", channel="c", order_ref="o3", lines=[("B", 5)]
        )
        assert await held(pool) == {"B": 5}
        assert await reservations.release(conn, "r3") is True
        assert await reservations.release(conn, "r3") is False
    assert await held(pool) == {}


async def test_a_batch_is_served_in_order_and_a_refusal_holds_nothing(pool) -> None:
    """Within one batch each reservation sees what the earlier ones left; a copy of an id
    gets the first copy's answer, and only what was granted is held."""
    ask = reservations.ReservationRequest
    batch = [
        ask("b1", "c", "o1", [("A", 4)]),  # A: 6 -> 2 left
        ask("b2", "c", "o2", [("KIT", 1)]),  # needs A 2 + B 1: fits exactly
        ask("b3", "c", "o3", [("A", 1), ("B", 1)]),  # A is gone: refused, B stays free
        ask("b1", "c", "o1", [("A", 4)]),  # a copy: the first answer, nothing more held
        ask("b4", "c", "o4", [("B", 9)], allow_partial=True),  # 4 B left: 5 backordered
    ]
    async with pool.acquire() as conn, conn.transaction():
        results = await reservations.reserve_many(conn, batch)
    assert [r.granted for r in results] == [True, True, False, True, True]
    assert results[2].shortages == {"A": (1, 0)} and results[2].held == ()
    assert results[3] == results[0]
    assert results[1].held == ("A", "B") and dict(results[1].lines) == {"KIT": 1}
    assert dict(results[4].lines) == {"B": 9} and results[4].shortages == {"B": (9, 4)}
    assert await held(pool) == {"A": 6, "B": 10}
    async with pool.acquire() as conn:  # asked again later, every id answers as it did
        again = await reservations.reserve_many(conn, batch)
    assert again == results
    assert await held(pool) == {"A": 6, "B": 10}


async def test_a_channel_counting_some_locations_reserves_only_what_they_hold(pool) -> None:
    """A shop that ships from the main warehouse cannot take units only the store holds: it
    gets no more than its own figure shows (its locations' net less every open hold)."""
    async with pool.acquire() as conn:
        levels = [
            StockLevel(sku="C", location="main", on_hand=3, version=1),
            StockLevel(sku="C", location="store", on_hand=10, version=1),
        ]
        await ledger.apply_levels(conn, levels, datetime.now(UTC))
    ask = reservations.ReservationRequest
    main, store = ("main",), ("store",)
    batch = [
        ask("l1", "uk", "o1", [("C", 2)], locations=main),  # main: 3 -> 1 left
        ask("l2", "uk", "o2", [("C", 2)], locations=main),  # 1 left at main: refused
        ask("l3", "nl", "o3", [("C", 5)]),  # every location: 11 free -> granted
        ask("l4", "uk", "o4", [("C", 2)], locations=main, allow_partial=True),  # backordered
        ask("l5", "pos", "o5", [("KIT", 1)], locations=store),  # its parts are at main only
    ]
    async with pool.acquire() as conn, conn.transaction():
        results = await reservations.reserve_many(conn, batch)
    assert [r.granted for r in results] == [True, False, True, True, False]
    assert results[1].shortages == {"C": (2, 1)}
    assert results[3].shortages == {"C": (2, 0)}  # 3 at main - 7 held: all 2 backordered
    assert results[4].shortages == {"KIT": (1, 0)}
    assert await held(pool) == {"C": 9}
    async with pool.acquire() as conn:  # a later batch sees the holds in the database
        [later] = await reservations.reserve_many(
            conn, [ask("l6", "uk", "o6", [("C", 1)], locations=main)]
        )
        [anywhere] = await reservations.reserve_many(conn, [ask("l7", "nl", "o7", [("C", 6)])])
    assert later.shortages == {"C": (1, 0)} and not later.granted
    assert anywhere.shortages == {"C": (6, 4)} and not anywhere.granted  # 13 - 9 held
    assert await held(pool) == {"C": 9}


async def test_shipped_kit_units_end_their_components_holds_at_the_next_level_measured(
    pool,
) -> None:
    """A kit ships as its components: each one's hold ends with the first level of that SKU
    measured after the shipment; a level of the other component ends only its own, and the
    ERP naming the order in a level ends what is left of the hold."""
    t0 = datetime.now(UTC)
    async with pool.acquire() as conn:
        granted = await reservations.reserve(
            conn, reservation_id="r9", channel="c", order_ref="o9", lines=[("KIT", 2), ("A", 1)]
        )
        assert granted.granted
        await reservations.confirm(conn, "r9", "SO-9")
        await reservations.mark_shipped(conn, "r9", {"KIT": 1}, t0)
        assert await held(pool) == {"A": 5, "B": 2}
        stale = StockLevel(sku="A", location="main", on_hand=6, version=2)
        await ledger.apply_levels(conn, [stale], t0, [t0 - timedelta(seconds=1)])
        assert await held(pool) == {"A": 5, "B": 2}  # measured before the parcel left
        after = StockLevel(sku="A", location="main", on_hand=4, version=3)
        await ledger.apply_levels(
            conn, [after], t0 + timedelta(seconds=2), [t0 + timedelta(seconds=1)]
        )
        assert await held(pool) == {"A": 3, "B": 2}  # one kit's two units of A left
        counted = StockLevel(
            sku="B", location="main", on_hand=5, version=2, included_order_ids=("SO-9",)
        )
        await ledger.apply_levels(conn, [counted], t0, [t0 - timedelta(seconds=1)])
        assert await held(pool) == {"A": 3}  # the ERP counts the order for B now


async def test_a_level_long_after_the_shipment_ends_the_hold_whatever_its_clock_says(
    pool,
) -> None:
    """A source whose clock runs behind still ends the hold ten minutes after the shipment."""
    t0 = datetime.now(UTC)
    async with pool.acquire() as conn:
        await reservations.reserve(
            conn, reservation_id="r10", channel="c", order_ref="o10", lines=[("B", 2)]
        )
        await reservations.mark_shipped(conn, "r10", {"B": 2}, t0)
        behind = t0 - timedelta(hours=1)
        level = StockLevel(sku="B", location="main", on_hand=3, version=2)
        await ledger.apply_levels(conn, [level], t0 + timedelta(minutes=5), [behind])
        assert await held(pool) == {"B": 2}
        later = StockLevel(sku="B", location="main", on_hand=3, version=3)
        await ledger.apply_levels(conn, [later], t0 + timedelta(minutes=11), [behind])
        assert await held(pool) == {}


async def test_what_is_kept_after_a_cancellation_leaves_out_the_units_counted_out(pool) -> None:
    """``keep_only`` is told every unit that left; those a level already counted out are no
    longer held, so only the rest of them is kept (and a part kept at 0 simply ends)."""
    t0 = datetime.now(UTC)
    after = [t0 + timedelta(seconds=1)]
    async with pool.acquire() as conn:
        await reservations.reserve(
            conn, reservation_id="r11", channel="c", order_ref="o11", lines=[("A", 5)]
        )
        await reservations.mark_shipped(conn, "r11", {"A": 2}, t0)
        level = StockLevel(sku="A", location="main", on_hand=4, version=2)
        await ledger.apply_levels(conn, [level], t0 + timedelta(seconds=2), after)
        assert await held(pool) == {"A": 3}
        await reservations.keep_only(conn, "r11", {"A": 2})  # the rest given up: 2 left
        assert await held(pool) == {}

        await reservations.reserve(
            conn, reservation_id="r12", channel="c", order_ref="o12", lines=[("B", 3)]
        )
        await reservations.mark_shipped(conn, "r12", {"B": 1}, t0)
        level = StockLevel(sku="B", location="main", on_hand=4, version=2)
        await ledger.apply_levels(conn, [level], t0 + timedelta(seconds=2), after)
        assert await held(pool) == {"B": 2}
        await reservations.keep_only(conn, "r12", {"B": 2})  # 1 of 3 cancelled, 1 left
        assert await held(pool) == {"B": 1}
        await reservations.keep_only(conn, "r12", {"B": 0})
        assert await held(pool) == {}


async def test_units_known_to_leave_one_location_are_counted_out_by_its_level_only(pool) -> None:
    """A channel selling from one location ships from it: another location's level, even
    long after, does not end the hold; that location's own does."""
    t0 = datetime.now(UTC)
    async with pool.acquire() as conn:
        await reservations.reserve(
            conn, reservation_id="r14", channel="c", order_ref="o14", lines=[("A", 2)]
        )
        await reservations.mark_shipped(conn, "r14", {"A": 2}, t0, "main")
        store = StockLevel(sku="A", location="store", on_hand=9, version=1)
        late = t0 + timedelta(minutes=11)
        await ledger.apply_levels(conn, [store], late, [late])
        assert await held(pool) == {"A": 2}
        main = StockLevel(sku="A", location="main", on_hand=4, version=2)
        await ledger.apply_levels(conn, [main], late, [late])
        assert await held(pool) == {}


async def test_a_channel_selling_incoming_stock_may_hold_what_its_figure_counts(pool) -> None:
    """Net units at its locations plus the receipts due there, less every hold: a net below
    zero at another location does not stop it, and it holds no more than that."""
    from datetime import date

    from schemas.inventory import IncomingReceipt

    today = date(2026, 12, 2)
    due = IncomingReceipt(quantity=20, expected_date=today + timedelta(days=3))
    later = IncomingReceipt(quantity=50, expected_date=today + timedelta(days=30))
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        main = StockLevel(sku="A", location="main", on_hand=6, version=2, incoming=(due, later))
        store = StockLevel(sku="A", location="store", on_hand=0, committed=30, version=1)
        await ledger.apply_levels(conn, [main, store], now)

        def asking(rid: str, units: int) -> reservations.ReservationRequest:
            return reservations.ReservationRequest(
                rid,
                "c",
                rid,
                [("A", units)],
                allow_partial=True,
                locations=["main"],
                incoming_until=today + timedelta(days=7),
            )

        first, second, third = await reservations.reserve_many(
            conn, [asking("r15", 10), asking("r16", 17), asking("r17", 16)]
        )
    assert first.granted  # 6 + 20 due at main: 26 (the store's -30 is not main's)
    assert not second.granted  # 16 left
    assert third.granted
    assert await held(pool) == {"A": 26}
