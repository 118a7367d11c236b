"""The ATP rules as pure functions: buffer, share, cap, floor, kits, locations, dates."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.stock.atp import (
    Figure,
    Receipt,
    SkuStock,
    atp,
    figure,
    kit_atp,
    least_shown,
    next_date,
    pooled,
    present,
    promised_delivery,
)
from routes.config import StockRules

TODAY = date(2025, 3, 10)


def rules(**kw: object) -> StockRules:
    return StockRules.model_validate(kw)


def stock(
    reserved: int = 0, receipts: tuple[tuple[str, date], ...] = (), qty: int = 100, **locs: int
) -> SkuStock:
    return SkuStock(dict(locs), reserved, tuple(Receipt(loc, d, qty) for loc, d in receipts))


@pytest.mark.parametrize(
    ("kw", "units", "shown"),
    [
        ({}, 7, 7),
        ({}, 0, 0),
        ({"share_percent": 50}, 7, 3),  # rounded down
        ({"share_percent": 0}, 100, 0),
        ({"share_percent": 100}, 9, 9),
        ({"share_percent": Decimal("33.3")}, 10, 3),
        ({"max_listed": 5}, 7, 5),
        ({"max_listed": 0}, 7, 0),
        ({"zero_at_or_below": 1}, 1, 0),
        ({"zero_at_or_below": 1}, 2, 2),
        ({"share_percent": 50, "max_listed": 3, "zero_at_or_below": 3}, 100, 0),  # cap then floor
        ({"share_percent": 40, "max_listed": 50, "zero_at_or_below": 2}, 17, 6),
    ],
)
def test_presentation_rules_apply_share_then_cap_then_floor(kw, units, shown) -> None:
    assert present(rules(**kw), units) == shown


def test_buffer_and_reservations_come_off_and_never_go_below_zero() -> None:
    r = rules(safety_buffer=2)
    assert atp(r, stock(main=10)) == 8
    assert atp(r, stock(reserved=3, main=10)) == 5
    assert atp(r, stock(reserved=9, main=10)) == 0
    assert atp(r, stock(main=1)) == 0
    assert atp(rules(), stock(main=-4)) == 0  # ERP committed more than on hand


def test_locations_limit_what_a_channel_counts() -> None:
    s = stock(main=10, store=5)
    assert pooled(rules(), s) == 15
    assert pooled(rules(locations=["main"]), s) == 10
    assert pooled(rules(locations=["elsewhere"]), s) == 0
    assert atp(rules(locations=["store"], safety_buffer=1), s) == 4


def test_kits_are_the_minimum_of_component_stock_per_kit() -> None:
    stocks = {"LEG": stock(main=9), "TOP": stock(main=2)}
    assert kit_atp(rules(), {"LEG": 4, "TOP": 1}, stocks) == 2
    assert kit_atp(rules(), {"LEG": 4}, stocks) == 2
    assert kit_atp(rules(safety_buffer=1), {"LEG": 4, "TOP": 1}, stocks) == 1  # per component
    assert kit_atp(rules(), {"LEG": 4, "BOLT": 1}, stocks) == 0  # unknown component
    assert kit_atp(rules(), {}, stocks) == 0


def test_kit_figure_applies_share_to_the_kit_and_dates_from_the_short_component() -> None:
    soon, later = TODAY + timedelta(days=3), TODAY + timedelta(days=9)
    stocks = {
        "LEG": stock(main=40, receipts=(("main", soon),)),
        "TOP": stock(main=10),
    }
    assert figure(rules(share_percent=50), "DESK", stocks, TODAY, {"LEG": 4, "TOP": 1}) == Figure(5)
    short = {
        "LEG": stock(main=3, receipts=(("main", soon),)),
        "TOP": stock(main=0, receipts=(("main", later),)),
    }
    assert figure(rules(), "DESK", short, TODAY, {"LEG": 4, "TOP": 1}) == Figure(0, later)
    no_date = {"LEG": stock(main=3), "TOP": stock(main=5)}
    assert figure(rules(), "DESK", no_date, TODAY, {"LEG": 4, "TOP": 1}) == Figure(0, None)


def test_next_date_is_the_earliest_receipt_at_the_channel_locations_never_past() -> None:
    s = stock(receipts=(("main", TODAY + timedelta(days=5)), ("store", TODAY + timedelta(days=2))))
    assert next_date(rules(), s, TODAY) == TODAY + timedelta(days=2)
    assert next_date(rules(locations=["main"]), s, TODAY) == TODAY + timedelta(days=5)
    overdue = stock(receipts=(("main", TODAY - timedelta(days=4)),))
    assert next_date(rules(), overdue, TODAY) == TODAY
    assert next_date(rules(), stock(), TODAY) is None


def test_plain_figure_gives_a_date_only_when_nothing_is_shown() -> None:
    due = TODAY + timedelta(days=4)
    assert figure(rules(), "A", {"A": stock(main=3, receipts=(("main", due),))}, TODAY) == Figure(3)
    assert figure(
        rules(zero_at_or_below=3), "A", {"A": stock(main=3, receipts=(("main", due),))}, TODAY
    ) == Figure(0, due)
    assert figure(rules(), "MISSING", {}, TODAY) == Figure(0)


def test_promised_delivery_adds_the_market_lead_time() -> None:
    assert promised_delivery(Figure(2), TODAY, 3) == TODAY + timedelta(days=3)
    due = TODAY + timedelta(days=10)
    assert promised_delivery(Figure(0, due), TODAY, 1) == due + timedelta(days=1)
    assert promised_delivery(Figure(0), TODAY, 1) is None


@given(
    main=st.integers(0, 500),
    store=st.integers(0, 500),
    reserved=st.integers(0, 600),
    buffer=st.integers(0, 20),
    share=st.one_of(st.none(), st.integers(0, 100)),
    cap=st.one_of(st.none(), st.integers(0, 300)),
    floor=st.integers(0, 5),
    only_main=st.booleans(),
)
def test_agrees_with_the_config_documented_rule(
    main, store, reserved, buffer, share, cap, floor, only_main
) -> None:
    r = rules(
        safety_buffer=buffer,
        share_percent=share,
        max_listed=cap,
        zero_at_or_below=floor,
        locations=["main"] if only_main else None,
    )
    on_hand = {"main": main, "store": store}
    ours = figure(r, "A", {"A": SkuStock(on_hand, reserved)}, TODAY).available
    assert ours == r.listed_quantity(on_hand, reserved)
    assert 0 <= ours <= max(main + store, 0)


def test_next_date_is_the_first_receipt_that_covers_what_is_promised() -> None:
    first, second, third = (TODAY + timedelta(days=d) for d in (3, 10, 20))
    receipts = (Receipt("main", second, 6), Receipt("main", first, 4), Receipt("main", third, 50))
    backordered = SkuStock({"main": 0}, 8, receipts)  # 8 units held by open reservations
    # 4 arrive first (8 still owed), 6 more leave 2 over: the second receipt's date.
    assert next_date(rules(), backordered, TODAY) == second
    assert figure(rules(), "A", {"A": backordered}, TODAY) == Figure(0, second)
    # With a buffer of 2 nothing is left after the second either: the third.
    assert next_date(rules(safety_buffer=2), backordered, TODAY) == third
    # A floor counts too: 2 left over is not enough to show when 2 or fewer shows as 0.
    assert next_date(rules(zero_at_or_below=2), backordered, TODAY) == third
    # Receipts that never cover the backorders give no date.
    too_few = SkuStock({"main": 0}, 80, receipts)
    assert next_date(rules(), too_few, TODAY) is None
    # Oversold stock (net below zero) is covered first as well.
    oversold = SkuStock({"main": -4}, 0, receipts)
    assert next_date(rules(), oversold, TODAY) == second
    # A kit component needs the kit's quantity, not merely one unit.
    assert next_date(rules(), SkuStock({"main": 0}, 0, receipts), TODAY, need=5) == second


@given(
    share=st.one_of(st.none(), st.decimals(min_value=1, max_value=100, places=1)),
    cap=st.one_of(st.none(), st.integers(min_value=0, max_value=60)),
    floor=st.integers(min_value=0, max_value=30),
)
def test_least_shown_is_the_smallest_atp_the_channel_shows(
    share: Decimal | None, cap: int | None, floor: int
) -> None:
    r = rules(share_percent=share, max_listed=cap, zero_at_or_below=floor)
    # With a share of at least 1% the answer, if any, is at most (floor + 1) x 100 = 3,100.
    shown = [n for n in range(0, 3200) if present(r, n) > 0]
    assert least_shown(r) == (shown[0] if shown else None)


def test_least_shown_with_tiny_or_no_share() -> None:
    assert least_shown(rules(share_percent=Decimal("0.1"), zero_at_or_below=4)) == 5000
    assert present(rules(share_percent=Decimal("0.1"), zero_at_or_below=4), 4999) == 0
    assert least_shown(rules(share_percent=Decimal("0"))) is None


def test_a_kit_date_is_when_every_component_covers_the_fewest_kits_shown() -> None:
    soon, later = TODAY + timedelta(days=5), TODAY + timedelta(days=30)
    marketplace = rules(share_percent=40, zero_at_or_below=2)  # shows 3 kits from 8 units
    parts = {"A": SkuStock({"main": 0}, 0, (Receipt("main", soon, 1), Receipt("main", later, 7)))}
    # One unit would make one kit, which this channel shows as 0: the date is when 8 are in.
    assert figure(marketplace, "KIT", parts, TODAY, {"A": 1}) == Figure(0, later)
    assert figure(rules(), "KIT", parts, TODAY, {"A": 1}) == Figure(0, soon)
    # Held at 0 by the rules alone (2 on hand make no shown kit): the receipt still dates it.
    held = {"A": SkuStock({"main": 2}, 0, (Receipt("main", later, 10),))}
    assert figure(marketplace, "KIT", held, TODAY, {"A": 1}) == Figure(0, later)


def test_a_channel_selling_incoming_stock_counts_receipts_due_within_its_window() -> None:
    """Pipe17's ATP: on hand - committed + future - future committed - buffer, where the
    future is what the ERP expects at the channel's locations within its window."""
    soon, later = TODAY + timedelta(days=3), TODAY + timedelta(days=20)
    s = SkuStock(
        {"main": 2, "store": 5},
        reserved=4,  # 2 in stock and 2 backordered beyond it
        receipts=(Receipt("main", soon, 6), Receipt("main", later, 50), Receipt("store", soon, 9)),
    )
    sells = rules(incoming_within_days=7, locations=["main"], safety_buffer=1)
    assert atp(sells, s, TODAY) == 2 - 4 - 1 + 6  # the store's and the later receipt not
    assert atp(sells, s) == 0  # without a date, on hand only
    assert atp(rules(locations=["main"]), s, TODAY) == 0  # a channel not selling incoming
    assert figure(sells, "A", {"A": s}, TODAY) == Figure(3, soon)  # all of it still to come
    on_the_day = rules(incoming_within_days=0, locations=["main"])
    assert atp(on_the_day, s, soon) == 2 - 4 + 6  # due today counts
    assert atp(on_the_day, s, TODAY) == 0


def test_a_kit_of_incoming_components_is_sold_as_far_as_both_come() -> None:
    s_a = SkuStock({"main": 0}, receipts=(Receipt("main", TODAY + timedelta(days=2), 4),))
    s_b = SkuStock({"main": 1}, receipts=(Receipt("main", TODAY + timedelta(days=9), 10),))
    sells = rules(incoming_within_days=5)
    stocks = {"A": s_a, "B": s_b}
    assert kit_atp(sells, {"A": 2, "B": 1}, stocks, TODAY) == 1  # B: 1 now, its 10 too late
    assert figure(sells, "KIT", stocks, TODAY, {"A": 2, "B": 1}) == Figure(1)
    nine_days_on = TODAY + timedelta(days=4)
    assert figure(sells, "KIT", stocks, nine_days_on, {"A": 2, "B": 1}) == Figure(2)


def test_units_shown_only_from_a_receipt_come_with_its_date_and_are_promised_from_it() -> None:
    due = TODAY + timedelta(days=3)
    s = SkuStock({"main": 0}, receipts=(Receipt("main", due, 5),))
    fig = figure(rules(incoming_within_days=7), "A", {"A": s}, TODAY)
    assert fig == Figure(5, due)
    assert promised_delivery(fig, TODAY, 1) == due + timedelta(days=1)
    in_stock = SkuStock({"main": 2}, receipts=(Receipt("main", due, 5),))
    assert figure(rules(incoming_within_days=7), "A", {"A": in_stock}, TODAY) == Figure(7)
