"""``order.placed``: validate, de-duplicate on the channel's order id, reserve, hand to the ERP."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from hub.db import Connection
from hub.errors import BusinessRuleViolation
from hub.handlers import Inbound
from hub.orders import requests, stockport, store
from hub.orders.context import OrderDeps
from hub.orders.messages import Outgoing
from hub.orders.store import Order
from hub.orders.validation import validate_order
from schemas.envelope import derived_id
from schemas.orders import OrderAccepted, OrderPlaced, OrderRejected, Reason


def order_id_for(channel: str, channel_order_id: str) -> str:
    """The hub's order id: derived from the channel's, so a re-sent order maps to the same id."""
    return derived_id("order", channel, channel_order_id)


async def place(conn: Connection, deps: OrderDeps, inbound: Inbound, now: datetime) -> Outgoing:
    """Take a channel's order: one order row, one reservation, one ERP sales order, ever."""
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
    out = Outgoing(deps.table, deps.names, inbound.event, now)
    order_id = order_id_for(source, placed.channel_order_id)
    correlation = inbound.event.correlationid or inbound.event.id
    if not await store.insert_new(conn, order_id, placed, correlation, now):
        existing = await store.lock(conn, order_id)
        if existing is not None:
            await store.note(conn, existing, "duplicate", now, "", inbound.event.id)
        deps.metrics.placed.labels(source, "duplicate").inc()
        return out
    order = await store.lock(conn, order_id)
    assert order is not None
    skus = sorted({line.sku for line in placed.lines})
    catalog = await store.catalog_for(conn, skus, market.price_list)
    reasons = validate_order(placed, market, catalog)
    if reasons:
        return await _reject(conn, deps, order, out, reasons, inbound, now)
    return await _reserve(conn, deps, order, out, inbound, now)


async def _reserve(
    conn: Connection,
    deps: OrderDeps,
    order: Order,
    out: Outgoing,
    inbound: Inbound,
    now: datetime,
) -> Outgoing:
    units: Counter[str] = Counter()
    for line in order.placed.lines:
        units[line.sku] += line.quantity
    backorder = deps.on_partial_stock(order.channel) == "backorder"
    result, changed = await stockport.reserve(
        conn,
        deps.stock,
        inbound.event,
        reservation_id=order.order_id,
        channel=order.channel,
        order_ref=order.channel_order_id,
        lines=sorted(units.items()),
        allow_partial=backorder,
    )
    out.extend(changed)
    if not result.granted:
        reasons = [
            Reason(
                code="out_of_stock",
                message=f"{requested} of SKU {sku} ordered, {available} available",
                sku=sku,
            )
            for sku, (requested, available) in sorted(result.shortages.items())
        ]
        return await _reject(conn, deps, order, out, reasons, inbound, now)
    order.reservation_id = order.order_id
    order.state = "sent_to_erp"
    requests.wait_for(deps, order, "erp", now)
    await store.save(conn, order, now)
    await store.note(conn, order, "accepted", now, "stock reserved", inbound.event.id)
    accepted = OrderAccepted(
        order_id=order.order_id, channel=order.channel, channel_order_id=order.channel_order_id
    )
    requests.send(out, order, accepted, "order.accepted")
    if result.shortages:
        short = ", ".join(f"{sku} {a}/{r}" for sku, (r, a) in sorted(result.shortages.items()))
        requests.send(
            out, order, requests.status(order, "backordered", f"short: {short}"), "backordered"
        )
        await store.note(conn, order, "backordered", now, short)
    requests.send(out, order, requests.salesorder_create(order, deps.config), "salesorder.create")
    deps.metrics.placed.labels(order.channel, "accepted").inc()
    deps.metrics.transitions.labels(order.state).inc()
    return out


async def _reject(
    conn: Connection,
    deps: OrderDeps,
    order: Order,
    out: Outgoing,
    reasons: list[Reason],
    inbound: Inbound,
    now: datetime,
) -> Outgoing:
    order.state = "rejected"
    requests.wait_for(deps, order, None, now)
    await store.save(conn, order, now)
    detail = "; ".join(f"{r.code}: {r.message}" for r in reasons)
    await store.note(conn, order, "rejected", now, detail, inbound.event.id)
    rejected = OrderRejected(
        channel=order.channel,
        channel_order_id=order.channel_order_id,
        order_id=order.order_id,
        reasons=tuple(reasons),
    )
    requests.send(out, order, rejected, "order.rejected")
    deps.metrics.placed.labels(order.channel, "rejected").inc()
    deps.metrics.transitions.labels(order.state).inc()
    return out
