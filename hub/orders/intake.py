"""``order.placed``: validate, de-duplicate on the channel's order id, reserve, hand to the ERP.

Orders are taken a batch at a time (``place_many``; ``place`` is a batch of one): one
statement creates the order rows, one reads the catalog per price list, one reserves stock for
every valid order in arrival order, one publishes the stock figures that moved, and two save
the new states with their history. The same rules hold as for a single order: one order, one
reservation and one ERP sales order per channel order, ever.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from hub.db import Connection
from hub.errors import BusinessRuleViolation
from hub.handlers import Inbound
from hub.metrics import labelled
from hub.orders import requests, stockport, store
from hub.orders.context import OrderDeps
from hub.orders.messages import Outgoing
from hub.orders.store import Order
from hub.orders.validation import Catalog, validate_order
from hub.stock.reservations import ReservationRequest, ReservationResult
from routes.config import MarketConfig
from schemas.envelope import derived_id
from schemas.orders import OrderAccepted, OrderPlaced, Reason


def order_id_for(channel: str, channel_order_id: str) -> str:
    """The hub's order id: derived from the channel's, so a re-sent order maps to the same id."""
    return derived_id("order", channel, channel_order_id)


@dataclass
class _Taken:
    """One incoming order on its way through the batch."""

    index: int
    inbound: Inbound
    placed: OrderPlaced
    market: MarketConfig
    order_id: str
    order: Order | None = None


async def place(conn: Connection, deps: OrderDeps, inbound: Inbound, now: datetime) -> Outgoing:
    """Take a channel's order: one order row, one reservation, one ERP sales order, ever."""
    [out] = await place_many(conn, deps, [inbound], now)
    return out


async def place_many(
    conn: Connection, deps: OrderDeps, inbounds: Sequence[Inbound], now: datetime
) -> list[Outgoing]:
    """Take a batch of channel orders; the messages each one causes, in input order."""
    outs = [Outgoing(deps.table, deps.names, i.event, now) for i in inbounds]
    taken = [_take(deps, index, inbound) for index, inbound in enumerate(inbounds)]
    created, early = await store.insert_many(
        conn,
        [
            (t.order_id, t.placed, t.inbound.event.correlationid or t.inbound.event.id)
            for t in taken
        ],
        now,
    )
    fresh: list[_Taken] = []
    for t in taken:
        t.order = created.pop(t.order_id, None)  # a second copy in the batch is a duplicate
        if t.order is None:
            await _duplicate(conn, deps, t, now)
        else:
            fresh.append(t)
    catalogs = await _catalogs(conn, fresh)
    changes: list[tuple[Order, str, str, str | None]] = []
    valid: list[_Taken] = []
    for t in fresh:
        if t.order_id in early:
            changes.append(_cancelled_early(deps, t, outs[t.index], early[t.order_id]))
            continue
        reasons = validate_order(t.placed, t.market, catalogs[t.market.price_list])
        if reasons:
            changes.append(_reject(deps, t, outs[t.index], reasons))
        else:
            valid.append(t)
    results, moved = await stockport.reserve_many(
        conn, deps.stock, [(t.inbound.event, _request(deps, t, now)) for t in valid]
    )
    for position, envelope in moved:
        outs[valid[position].index].envelopes.append(envelope)
    for t, result in zip(valid, results, strict=True):
        changes.extend(_decide(deps, t, outs[t.index], result))
    await store.save_many(conn, changes, now)
    return outs


def _take(deps: OrderDeps, index: int, inbound: Inbound) -> _Taken:
    placed = inbound.message
    assert isinstance(placed, OrderPlaced)
    source = inbound.event.source
    if placed.channel != source:
        raise BusinessRuleViolation(
            f"channel {source!r} sent an order for channel {placed.channel!r}"
        )
    channel = deps.config.channels[source]
    if channel.market is None:
        raise BusinessRuleViolation(f"channel {source!r} has no market and cannot sell")
    market = deps.config.markets[channel.market]
    return _Taken(index, inbound, placed, market, order_id_for(source, placed.channel_order_id))


async def _duplicate(conn: Connection, deps: OrderDeps, t: _Taken, now: datetime) -> None:
    existing = await store.lock(conn, t.order_id)
    if existing is not None:
        await store.note(conn, existing, "duplicate", now, "", t.inbound.event.id)
    labelled(deps.metrics.placed, t.placed.channel, "duplicate").inc()


async def _catalogs(conn: Connection, fresh: Sequence[_Taken]) -> dict[str, Catalog]:
    """One catalog read per price list in the batch, covering all its orders' SKUs."""
    wanted: dict[str, set[str]] = {}
    for t in fresh:
        wanted.setdefault(t.market.price_list, set()).update(line.sku for line in t.placed.lines)
    return {
        price_list: await store.catalog_for(conn, sorted(skus), price_list)
        for price_list, skus in wanted.items()
    }


def _request(deps: OrderDeps, t: _Taken, now: datetime) -> ReservationRequest:
    units: Counter[str] = Counter()
    for line in t.placed.lines:
        units[line.sku] += line.quantity
    return ReservationRequest(
        reservation_id=t.order_id,
        channel=t.placed.channel,
        order_ref=t.placed.channel_order_id,
        lines=sorted(units.items()),
        allow_partial=deps.on_partial_stock(t.placed.channel) == "backorder",
        locations=deps.config.channels[t.placed.channel].stock.locations,
        max_backordered=deps.config.channels[t.placed.channel].orders.max_backordered,
        incoming_until=_incoming_until(deps, t.placed.channel, now),
    )


def _incoming_until(deps: OrderDeps, channel: str, now: datetime) -> date | None:
    """Up to when the channel sells the receipts the ERP expects (``incoming_within_days``)."""
    days = deps.config.channels[channel].stock.incoming_within_days
    return None if days is None else now.date() + timedelta(days=days)


def _decide(
    deps: OrderDeps, t: _Taken, out: Outgoing, result: ReservationResult
) -> list[tuple[Order, str, str, str | None]]:
    """Accept a reserved order (and hand it to the ERP), or reject it for stock."""
    order = t.order
    assert order is not None
    if not result.granted:
        reasons = [
            Reason(
                code="out_of_stock",
                message=f"{requested} of SKU {sku} ordered, {available} available",
                sku=sku,
            )
            for sku, (requested, available) in sorted(result.shortages.items())
        ]
        return [_reject(deps, t, out, reasons)]
    order.reservation_id = order.order_id
    order.state = "sent_to_erp"
    requests.wait_for(deps, order, "erp", out.now)
    changes: list[tuple[Order, str, str, str | None]] = [
        (order, "accepted", "stock reserved", t.inbound.event.id)
    ]
    accepted = OrderAccepted(
        order_id=order.order_id, channel=order.channel, channel_order_id=order.channel_order_id
    )
    requests.send(out, order, accepted, "order.accepted")
    if result.shortages:
        short = ", ".join(f"{sku} {a}/{r}" for sku, (r, a) in sorted(result.shortages.items()))
        requests.send(
            out, order, requests.status(order, "backordered", f"short: {short}"), "backordered"
        )
        changes.append((order, "backordered", short, None))
    requests.send(out, order, requests.salesorder_create(order, deps.config), "salesorder.create")
    labelled(deps.metrics.placed, order.channel, "accepted").inc()
    labelled(deps.metrics.transitions, order.state).inc()
    return changes


def _cancelled_early(
    deps: OrderDeps, t: _Taken, out: Outgoing, cancelled: str
) -> tuple[Order, str, str, str | None]:
    """Its cancellation overtook it: recorded as cancelled; no stock held, no ERP order."""
    order = t.order
    assert order is not None
    order.state = "cancelled"
    requests.wait_for(deps, order, None, out.now)
    detail = f"cancelled before the order arrived, by {cancelled}"
    withdrawn = requests.cancellation(order, "channel")  # only its own channel keeps one
    status = requests.status(order, "cancelled", detail, withdrawn)
    requests.send(out, order, status, "cancelled")
    labelled(deps.metrics.placed, order.channel, "cancelled").inc()
    labelled(deps.metrics.transitions, order.state).inc()
    return (order, "cancelled", detail, t.inbound.event.id)


def _reject(
    deps: OrderDeps, t: _Taken, out: Outgoing, reasons: list[Reason]
) -> tuple[Order, str, str, str | None]:
    order = t.order
    assert order is not None
    order.state = "rejected"
    requests.wait_for(deps, order, None, out.now)
    requests.send(out, order, requests.rejection(order, reasons), "order.rejected")
    labelled(deps.metrics.placed, order.channel, "rejected").inc()
    labelled(deps.metrics.transitions, order.state).inc()
    detail = "; ".join(f"{r.code}: {r.message}" for r in reasons)
    return (order, "rejected", detail, t.inbound.event.id)
