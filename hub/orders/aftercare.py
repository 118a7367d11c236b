"""Cancellations, returns and invoices: what happens to an order besides moving forward."""

from __future__ import annotations

from datetime import datetime

from hub.db import Connection
from hub.errors import BusinessRuleViolation
from hub.handlers import Inbound
from hub.orders import requests, stockport, store
from hub.orders.context import OrderDeps
from hub.orders.messages import Outgoing
from hub.orders.steps import OPEN_STATES, ignore, locked, transition
from hub.orders.store import Order
from schemas.billing import InvoiceIssued
from schemas.erp import SalesOrderCancel
from schemas.fulfilment import PickCancel
from schemas.orders import OrderCancelled
from schemas.returns import ReturnLine, ReturnReceived, ReturnRequested


async def _named(
    conn: Connection, order_id: str | None, channel: str | None, channel_order_id: str | None
) -> Order:
    if order_id is not None:
        return await locked(conn, order_id)
    if channel is not None and channel_order_id is not None:
        order = await store.find(conn, channel, channel_order_id)
        if order is not None:
            return order
    raise BusinessRuleViolation(f"no order {channel_order_id!r} from channel {channel!r}")


async def cancel(conn: Connection, deps: OrderDeps, inbound: Inbound, now: datetime) -> Outgoing:
    """Cancel from the channel or the ERP: before shipment stock goes back, after it a return."""
    msg = inbound.message
    assert isinstance(msg, OrderCancelled)
    source = inbound.event.source
    if source != deps.config.erp and source != msg.channel:
        raise BusinessRuleViolation(f"{source!r} cannot cancel an order of {msg.channel!r}")
    order = await _named(conn, msg.order_id, msg.channel, msg.channel_order_id)
    if order.shipped:
        return await _becomes_return(conn, deps, order, inbound, now)
    if order.state not in OPEN_STATES:
        return await ignore(conn, deps, order, inbound, now)
    out = Outgoing(deps.table, deps.names, inbound.event, now)
    await withdraw(conn, deps, order, out, msg.reason, tell_erp=source != deps.config.erp)
    await transition(conn, deps, order, "cancelled", inbound, now)
    detail = f"cancelled by {msg.cancelled_by}: {msg.reason}"
    requests.send(out, order, requests.status(order, "cancelled", detail), "cancelled")
    return out


async def withdraw(
    conn: Connection, deps: OrderDeps, order: Order, out: Outgoing, reason: str, *, tell_erp: bool
) -> None:
    """Undo an unshipped order: its stock back, the sales order (unless the ERP itself ended
    it) and the pick withdrawn, and no answer awaited any more."""
    if order.reservation_id:
        out.extend(await stockport.release(conn, deps.stock, out.cause, order.reservation_id))
    if tell_erp:
        erp_cancel = SalesOrderCancel(
            order_id=order.order_id, erp_order_number=order.erp_order_number, reason=reason
        )
        requests.send(out, order, erp_cancel, "salesorder.cancel")
    if order.erp_order_number is not None:  # the warehouse may have been asked to pick
        pick_cancel = PickCancel(
            order_id=order.order_id, pick_id=requests.pick_id(order), reason=reason
        )
        requests.send(out, order, pick_cancel, "pick.cancel")
    requests.wait_for(deps, order, None, now=out.now)


async def _becomes_return(
    conn: Connection, deps: OrderDeps, order: Order, inbound: Inbound, now: datetime
) -> Outgoing:
    """A cancellation after shipment: the goods are on their way, so expect them back."""
    if order.state in {"return_requested", "returned"}:
        return await ignore(conn, deps, order, inbound, now)
    by_line = {line.line_id: line.sku for line in order.placed.lines}
    return_id = f"R-{order.order_id}"
    lines = tuple(
        ReturnLine(sku=by_line[line_id], quantity=units, line_id=line_id)
        for line_id, units in order.shipped.items()
    )
    requested = ReturnRequested(
        channel=order.channel,
        channel_order_id=order.channel_order_id,
        order_id=order.order_id,
        return_id=return_id,
        lines=lines,
        reason="cancelled after shipment",
    )
    detail = f"cancellation after shipment becomes return {return_id}"
    return await _expect_return(conn, deps, order, inbound, now, requested, detail)


async def return_requested(
    conn: Connection, deps: OrderDeps, inbound: Inbound, now: datetime
) -> Outgoing:
    """A buyer announced a return on the channel: the ERP and the warehouse expect the goods.

    Only the order's own channel may, only for what was shipped; a repeat is noted only.
    """
    msg = inbound.message
    assert isinstance(msg, ReturnRequested)
    if inbound.event.source != msg.channel:
        raise BusinessRuleViolation(
            f"{inbound.event.source!r} cannot request a return of an order of {msg.channel!r}"
        )
    order = await _named(conn, msg.order_id, msg.channel, msg.channel_order_id)
    if order.state in {"return_requested", "returned"}:
        return await ignore(conn, deps, order, inbound, now)
    if not order.shipped:
        raise BusinessRuleViolation(
            f"return {msg.return_id}: order {order.order_id} has not shipped (state"
            f" {order.state}); cancel it instead"
        )
    _check_returnable(order, msg)
    requested = msg.model_copy(update={"order_id": order.order_id})
    detail = f"return {msg.return_id} requested on the channel"
    return await _expect_return(conn, deps, order, inbound, now, requested, detail)


def _check_returnable(order: Order, msg: ReturnRequested) -> None:
    """No more units of a SKU come back than were shipped, on lines the order has."""
    sku_of = {line.line_id: line.sku for line in order.placed.lines}
    shipped: dict[str, int] = {}
    for line_id, units in order.shipped.items():
        shipped[sku_of[line_id]] = shipped.get(sku_of[line_id], 0) + units
    asked: dict[str, int] = {}
    for line in msg.lines:
        if line.line_id is not None and sku_of.get(line.line_id) != line.sku:
            raise BusinessRuleViolation(
                f"return {msg.return_id}: order {order.order_id} has no line"
                f" {line.line_id!r} of SKU {line.sku}"
            )
        asked[line.sku] = asked.get(line.sku, 0) + line.quantity
    for sku, units in asked.items():
        if units > shipped.get(sku, 0):
            raise BusinessRuleViolation(
                f"return {msg.return_id}: {units} unit(s) of {sku} asked back,"
                f" {shipped.get(sku, 0)} shipped"
            )


async def _expect_return(
    conn: Connection,
    deps: OrderDeps,
    order: Order,
    inbound: Inbound,
    now: datetime,
    requested: ReturnRequested,
    detail: str,
) -> Outgoing:
    """Tell the ERP and the warehouse to expect the goods, and the channel that they will."""
    out = Outgoing(deps.table, deps.names, inbound.event, now)
    requests.send(out, order, requested, "return.requested")
    requests.wait_for(deps, order, None, now)
    await transition(conn, deps, order, "return_requested", inbound, now)
    requests.send(out, order, requests.status(order, "shipped", detail), "return.requested")
    return out


async def returned(conn: Connection, deps: OrderDeps, inbound: Inbound, now: datetime) -> Outgoing:
    """Goods came back: the ERP books them (and reports stock), the channel refunds."""
    msg = inbound.message
    assert isinstance(msg, ReturnReceived)
    order = await _named(conn, msg.order_id, msg.channel, msg.channel_order_id)
    out = Outgoing(deps.table, deps.names, inbound.event, now)
    out.forward(inbound.event, origin=order.channel)
    units = sum(line.quantity for line in msg.lines)
    await transition(conn, deps, order, "returned", inbound, now)
    detail = f"return {msg.return_id}: {units} unit(s) received"
    requests.send(out, order, requests.status(order, "returned", detail), msg.return_id)
    return out


async def invoiced(conn: Connection, deps: OrderDeps, inbound: Inbound, now: datetime) -> Outgoing:
    """The ERP's invoice goes to the channel the order came from, as the ERP issued it."""
    msg = inbound.message
    assert isinstance(msg, InvoiceIssued)
    order = await locked(conn, msg.order_id)
    out = Outgoing(deps.table, deps.names, inbound.event, now)
    out.forward(inbound.event, origin=order.channel)
    detail = f"invoice {msg.invoice_number} {msg.total.amount} {msg.total.currency}"
    await store.note(conn, order, "invoice.issued", now, detail, inbound.event.id)
    return out
