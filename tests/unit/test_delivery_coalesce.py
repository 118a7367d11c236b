"""The delivery backlog: newest version per SKU, one SKU in flight, arrival order otherwise."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from hub.delivery.coalesce import Backlog, Item, turn_key
from schemas.envelope import CloudEvent, new_event

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def figure(sku: str, version: int, available: int = 1, seconds: float = 0) -> CloudEvent:
    data = {
        "channel": "webshop-nl",
        "sku": sku,
        "available": available,
        "computed_at": (T0 + timedelta(seconds=seconds)).isoformat(),
        "version": version,
    }
    return new_event(source="hub", type="stock.availability", data=data, subject=sku)


def item(event: CloudEvent) -> Item:
    it = Item(cast(Any, None), event, received=0.0)
    found = turn_key(event)
    if found is not None:
        it.key, it.order = found
    return it


def other(n: int) -> Item:
    return item(new_event(source="hub", type="order.status", data={"n": n}))


def take_all(b: Backlog) -> list[Item]:
    out = []
    while (it := b.take()) is not None:
        out.append(it)
    return out


def test_a_newer_figure_replaces_the_waiting_one_in_its_place():
    b = Backlog(coalesce=True)
    a1, x, a2 = item(figure("A", 1)), other(1), item(figure("A", 2))
    assert b.add(a1) == [] and b.add(x) == []
    assert b.add(a2) == [a1]
    assert take_all(b) == [a2, x]


def test_an_older_arrival_is_dropped_itself():
    b = Backlog(coalesce=True)
    new, old = item(figure("A", 5)), item(figure("A", 4))
    b.add(new)
    assert b.add(old) == [old]
    assert take_all(b) == [new]


def test_computed_at_breaks_a_tie_in_version_and_equal_keeps_the_later_delivery():
    b = Backlog(coalesce=True)
    early, late = item(figure("A", 3, seconds=0)), item(figure("A", 3, seconds=1))
    b.add(late)
    assert b.add(early) == [early]
    again = item(figure("A", 3, seconds=1))  # a redelivery of the same figure
    assert b.add(again) == [late]
    assert take_all(b) == [again]


def test_one_figure_per_sku_in_flight_and_older_ones_never_overtake():
    b = Backlog(coalesce=True)
    a1, b1 = item(figure("A", 1)), item(figure("B", 1))
    b.add(a1)
    assert b.take() is a1
    a0 = item(figure("A", 0))
    assert b.add(a0) == [a0]  # older than the one in flight
    a2, a3 = item(figure("A", 2)), item(figure("A", 3))
    b.add(a2)
    b.add(b1)
    assert b.take() is b1  # A waits for its figure in flight
    assert b.take() is None
    assert b.superseded(a1)
    assert b.add(a3) == [a2]
    b.done(a1)
    assert b.take() is a3
    assert len(b) == 0 and b.in_flight == 2


def test_without_coalescing_every_figure_goes_in_order_one_at_a_time():
    b = Backlog(coalesce=False)
    figures = [item(figure("A", v)) for v in (1, 2, 3)]
    for f in figures:
        assert b.add(f) == []
    sent = []
    while len(sent) < 3:
        it = b.take()
        assert it is not None and b.take() is None
        assert not b.superseded(it)
        sent.append(it)
        b.done(it)
    assert sent == figures


def test_messages_other_than_stock_figures_are_never_dropped_or_held_back():
    b = Backlog(coalesce=True)
    xs = [other(i) for i in range(5)]
    for x in xs:
        assert b.add(x) == []
    assert b.take() is xs[0]
    assert take_all(b) == xs[1:]  # none waits for another


async def test_wait_ready_wakes_on_an_arrival_and_on_a_sku_coming_free():
    b = Backlog(coalesce=True)
    waiter = asyncio.create_task(b.wait_ready())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    a1 = item(figure("A", 1))
    b.add(a1)
    await asyncio.wait_for(waiter, 1)
    assert b.take() is a1
    b.add(item(figure("A", 2)))
    waiter = asyncio.create_task(b.wait_ready())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    b.done(a1)
    await asyncio.wait_for(waiter, 1)


def test_turn_key_reads_sku_and_newness_and_ignores_everything_else():
    assert turn_key(figure("A", 7, seconds=2)) == (
        ("stock.availability", "A"),
        (7, (T0 + timedelta(seconds=2)).timestamp()),
    )
    assert turn_key(other(1).event) is None
    bad = figure("A", 1).model_copy(update={"data": {"sku": "A", "version": "7"}})
    assert turn_key(bad) is None
    no_time = figure("A", 1).model_copy(update={"data": {"sku": "A", "version": 2}})
    assert turn_key(no_time) == (("stock.availability", "A"), (2, 0.0))
    assert turn_key(product("A", 3).event) == (("product.upserted", "A"), (3, 0.0))
    assert turn_key(price("A", 4, "eu").event) == (("price.changed", "A", "eu"), (4, 0.0))
    no_list = price("A", 4, "eu").event.model_copy(update={"data": {"sku": "A", "version": 4}})
    assert turn_key(no_list) is None


def test_clear_empties_the_line():
    b = Backlog(coalesce=True)
    b.add(item(figure("A", 1)))
    b.add(other(1))
    assert len(b.clear()) == 2 and len(b) == 0


def test_a_late_figure_no_newer_than_the_delivered_one_is_dropped():
    b = Backlog(coalesce=True)
    a5 = item(figure("A", 5))
    b.add(a5)
    assert b.take() is a5
    b.done(a5, delivered=True)
    late, dup, newer = item(figure("A", 4)), item(figure("A", 5)), item(figure("A", 6))
    assert b.add(late) == [late]
    assert b.add(dup) == [dup]  # at-least-once: the same figure again
    assert b.add(newer) == []
    b.done(b.take() or newer)  # parked or handed back: not delivered, not remembered
    again = item(figure("A", 6))
    assert b.add(again) == []


def test_the_memory_of_delivered_figures_is_bounded_and_off_without_coalescing():
    b = Backlog(coalesce=True, remember=2)
    for sku in ("A", "B", "C"):
        f = item(figure(sku, 1))
        b.add(f)
        b.done(b.take() or f, delivered=True)
    assert b.add(item(figure("A", 1))) == []  # forgotten: the oldest of three
    assert b.add(stale := item(figure("C", 1))) == [stale]
    plain = Backlog(coalesce=False)
    f = item(figure("A", 1))
    plain.add(f)
    plain.done(plain.take() or f, delivered=True)
    assert plain.add(item(figure("A", 1))) == []


def product(sku: str, version: int) -> Item:
    data = {"sku": sku, "name": f"Product {sku}", "version": version}
    return item(new_event(source="erp", type="product.upserted", data=data))


def price(sku: str, version: int, price_list: str = "nl-retail") -> Item:
    data = {
        "sku": sku,
        "price_list": price_list,
        "price": {"amount": "10.00", "currency": "EUR"},
        "vat_rate": "0.21",
        "version": version,
    }
    return item(new_event(source="erp", type="price.changed", data=data))


def test_a_sku_and_price_list_has_one_price_in_flight_and_the_newest_waiting_goes_next():
    b = Backlog(coalesce=False)  # coalesce_stock off: prices are still kept in order
    p1, p2, p3 = price("A", 1), price("A", 2), price("A", 3)
    other_list = price("A", 1, "be-retail")
    b.add(p1)
    assert b.take() is p1
    assert b.add(p2) == [] and b.add(other_list) == []
    assert b.take() is other_list  # another list is another price
    assert b.take() is None  # A's next price waits for the one in flight (a retry, say)
    assert b.add(p3) == [p2]
    assert b.superseded(p1)  # its retry is wasted: end it
    b.done(p1)
    assert b.take() is p3


def test_a_product_version_older_than_the_delivered_one_is_dropped_an_equal_one_is_resent():
    b = Backlog(coalesce=False)
    v2 = product("A", 2)
    b.add(v2)
    assert b.take() is v2
    b.done(v2, delivered=True)
    late, resync = product("A", 1), product("A", 2)
    assert b.add(late) == [late]  # a late copy of an older version would undo the newer one
    assert b.add(resync) == []  # hub catalog resync sends the delivered version again
    assert b.take() is resync


def test_a_product_and_its_stock_and_price_do_not_wait_for_each_other():
    b = Backlog(coalesce=True)
    a_product, a_price, a_figure = product("A", 1), price("A", 1), item(figure("A", 1))
    for it in (a_product, a_price, a_figure):
        assert b.add(it) == []
    assert take_all(b) == [a_product, a_price, a_figure]


def test_a_large_catalog_does_not_push_out_the_memory_of_delivered_stock_figures():
    b = Backlog(coalesce=True, remember=2)
    a = item(figure("A", 5))
    b.add(a)
    b.done(b.take() or a, delivered=True)
    for n in range(3):  # more catalog versions delivered than remembered
        p = product(f"P{n}", 1)
        b.add(p)
        b.done(b.take() or p, delivered=True)
    assert b.add(late := item(figure("A", 5))) == [late]  # still known as delivered
