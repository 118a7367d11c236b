"""Cancellations, returns and invoices: what happens to an order besides moving forward."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import cast

from hub.db import Connection
from hub.errors import BusinessRuleViolation
from hub.handlers import Inbound
from hub.metrics import labelled
from hub.orders import requests, returns, stockport, store
from hub.orders.context import OrderDeps
from hub.orders.intake import order_id_for
from hub.orders.messages import Outgoing
from hub.orders.steps import OPEN_STATES, ignore, locked, transition
from hub.orders.store import Order, gtin_key
from schemas.billing import InvoiceIssued
from schemas.erp import SalesOrderCancel
from schemas.fulfilment import PickCancel, ShipmentCancel
from schemas.orders import CancelledBy, CancelledPart, OrderCancelled, OrderLifecycle
from schemas.returns import ReturnLine, ReturnReceived, ReturnRequested

log = logging.getLogger(__name__)


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
    """Cancel from the channel or the ERP: before shipment stock goes back, after it a return.

    A channel's cancellation of an order not here yet (it overtook the order) is kept: the
    order is recorded as cancelled when it arrives."""
    msg = inbound.message
    assert isinstance(msg, OrderCancelled)
    source = inbound.event.source
    if source != deps.config.erp and source != msg.channel:
        raise BusinessRuleViolation(f"{source!r} cannot cancel an order of {msg.channel!r}")
    if msg.order_id is None and source == msg.channel:
        found = await store.find(conn, msg.channel, msg.channel_order_id)
        if found is None and msg.lines:
            raise BusinessRuleViolation(
                f"cancellation of some lines of {msg.channel} order {msg.channel_order_id},"
                " which the hub does not have yet: replay it once the order is in"
            )
        if found is None:
            order_id = order_id_for(msg.channel, msg.channel_order_id)
            await store.cancel_early(conn, order_id, msg, inbound.event.id, now)
            labelled(deps.metrics.transitions, "cancelled_before_arrival").inc()
            log.info("cancellation of %s kept until the order arrives", order_id)
            return Outgoing(deps.table, deps.names, inbound.event, now)
        order = found
    else:
        order = await _named(conn, msg.order_id, msg.channel, msg.channel_order_id)
    if msg.lines and not _whole_rest(order, msg):
        return await _withdraw_part(conn, deps, order, inbound, now)
    if order.shipped:
        return await _cancel_after_shipment(conn, deps, order, inbound, now)
    if order.state not in OPEN_STATES:
        return await ignore(conn, deps, order, inbound, now)
    out = Outgoing(deps.table, deps.names, inbound.event, now)
    await withdraw(conn, deps, order, out, msg.reason, tell_erp=source != deps.config.erp)
    await transition(conn, deps, order, "cancelled", inbound, now)
    detail = f"cancelled by {msg.cancelled_by}: {msg.reason}"
    withdrawn = requests.cancellation(order, _canceller(deps, source))
    requests.send(out, order, requests.status(order, "cancelled", detail, withdrawn), "cancelled")
    return out


def _whole_rest(order: Order, msg: OrderCancelled) -> bool:
    """Whether the lines cancelled cover all the order has left, nothing of it packed: then
    it is the whole order's cancellation."""
    asked: Counter[str] = Counter()
    for line in msg.lines:
        asked[line.line_id] += line.quantity
    left = {line_id: n for line_id, n in order.ordered().items() if n > 0}
    covered = all(
        asked[line_id] >= n + order.withdrawn.get(line_id, 0) for line_id, n in left.items()
    )
    return not any(order.picked.values()) and bool(left) and covered


async def _withdraw_part(
    conn: Connection, deps: OrderDeps, order: Order, inbound: Inbound, now: datetime
) -> Outgoing:
    """Cancel some units of an open order (a marketplace buyer's item cancellation): their
    stock goes back, the ERP and the warehouse drop them, and the rest goes on. Only units
    not packed yet can go; a request no larger per line than what was withdrawn already is
    taken for a repeat (a marketplace polled again) and noted only."""
    msg = inbound.message
    assert isinstance(msg, OrderCancelled)
    if order.state not in OPEN_STATES:
        return await ignore(conn, deps, order, inbound, now)
    sku_of = {line.line_id: line.sku for line in order.placed.lines}
    asked: Counter[str] = Counter()
    for line in msg.lines:
        if sku_of.get(line.line_id) != line.sku:
            raise BusinessRuleViolation(
                f"cancellation of order {order.order_id}: it has no line {line.line_id!r}"
                f" of SKU {line.sku}"
            )
        asked[line.line_id] += line.quantity
    # Lines are running totals: what each line has had cancelled so far, this included.
    new = {
        line_id: units - order.withdrawn.get(line_id, 0)
        for line_id, units in asked.items()
        if units > order.withdrawn.get(line_id, 0)
    }
    if not new:
        return await ignore(conn, deps, order, inbound, now)  # the same request polled again
    open_units = order.unpicked()
    for line_id, units in new.items():
        if units > open_units.get(line_id, 0):
            raise BusinessRuleViolation(
                f"cancellation of order {order.order_id}: {units} more unit(s) of line"
                f" {line_id} asked, {open_units.get(line_id, 0)} not packed yet"
            )
    out = Outgoing(deps.table, deps.names, inbound.event, now)
    for line_id, units in new.items():
        order.withdrawn[line_id] = order.withdrawn.get(line_id, 0) + units
    if order.reservation_id:
        out.extend(
            await stockport.release_rest(
                conn, deps.stock, out.cause, order.reservation_id, _units_by_sku(order)
            )
        )
    lines = requests.fulfilment_lines(order, new)
    reason = f"{msg.reason} ({sum(new.values())} unit(s) of order {order.order_id})"
    # Before the ERP has the sales order, erp_created sends it what the channel withdrew
    # meanwhile (the ERP's own withdrawals it knows of).
    by_erp = inbound.event.source == deps.config.erp
    if not by_erp and order.erp_order_number is None:
        for line_id, units in new.items():
            order.untold[line_id] = order.untold.get(line_id, 0) + units
    if not by_erp and order.erp_order_number is not None:
        cancel = SalesOrderCancel(
            order_id=order.order_id,
            erp_order_number=order.erp_order_number,
            reason=reason,
            lines=lines,
        )
        requests.send(out, order, cancel, "salesorder.cancel/" + inbound.event.id)
    if order.erp_order_number is not None:
        pick_cancel = PickCancel(
            order_id=order.order_id, pick_id=requests.pick_id(order), reason=reason, lines=lines
        )
        requests.send(out, order, pick_cancel, "pick.cancel/" + inbound.event.id)
    lifecycle = cast(OrderLifecycle, order.state)  # an open state: each is one told
    if order.shipped and not order.unshipped():  # what is left has all shipped
        requests.wait_for(deps, order, None, now)
        await transition(conn, deps, order, "shipped", inbound, now)
        lifecycle = "shipped"
    else:
        detail = f"{sum(new.values())} unit(s) cancelled by {msg.cancelled_by}"
        await store.save(conn, order, now, inbound.event.type, detail, inbound.event.id)
    part = CancelledPart(by=_canceller(deps, inbound.event.source), whole_order=False, lines=lines)
    detail = f"cancelled by {msg.cancelled_by}: {msg.reason}"
    requests.send(out, order, requests.status(order, lifecycle, detail, part), inbound.event.id)
    return out


def _units_by_sku(order: Order) -> dict[str, int]:
    """The units per SKU the order still holds: what is ordered, less what was withdrawn
    (a SKU none of whose units are left is not named, so its hold goes)."""
    return {sku: n for sku, n in returns.by_sku(order, order.ordered()).items() if n > 0}


def _canceller(deps: OrderDeps, source: str) -> CancelledBy:
    """Who cancelled, from the sender the routes vouch for rather than what the message says."""
    return "erp" if source == deps.config.erp else "channel"


async def withdraw(
    conn: Connection,
    deps: OrderDeps,
    order: Order,
    out: Outgoing,
    reason: str,
    *,
    tell_erp: bool,
    rest: Mapping[str, int] | None = None,
) -> None:
    """Undo an unshipped order, or with ``rest`` (line id -> units) the part of it not packed
    yet: its stock back, the sales order (unless the ERP itself ended it) and the pick
    withdrawn, and no answer awaited any more. The whole order's parcels still waiting for a
    label are dropped at the carrier (``shipment.cancel``); a label made anyway is cancelled
    again (``steps.shipped``)."""
    lines = () if rest is None else requests.fulfilment_lines(order, rest)
    if order.reservation_id and rest is None:
        out.extend(await stockport.release(conn, deps.stock, out.cause, order.reservation_id))
    elif order.reservation_id:  # what was packed or shipped stays held until the ERP counts it
        packed = returns.by_sku(order, order.picked)
        found = await stockport.release_rest(
            conn, deps.stock, out.cause, order.reservation_id, packed
        )
        out.extend(found)
    if tell_erp:
        erp_cancel = SalesOrderCancel(
            order_id=order.order_id,
            erp_order_number=order.erp_order_number,
            reason=reason,
            lines=lines,
        )
        requests.send(out, order, erp_cancel, "salesorder.cancel")
    if order.erp_order_number is not None:  # the warehouse may have been asked to pick
        pick_cancel = PickCancel(
            order_id=order.order_id, pick_id=requests.pick_id(order), reason=reason, lines=lines
        )
        requests.send(out, order, pick_cancel, "pick.cancel")
    if rest is None:
        await _drop_waiting_parcels(conn, order, out, reason)
    requests.wait_for(deps, order, None, now=out.now)


async def withdraw_unshipped(
    conn: Connection,
    deps: OrderDeps,
    order: Order,
    out: Outgoing,
    reason: str,
    *,
    tell_erp: bool,
) -> dict[str, int]:
    """Withdraw what of a partly shipped order has not left: its parcels still waiting for a
    label dropped, then every unit not packed (those included) withdrawn; the units per line
    id withdrawn."""
    await _drop_waiting_parcels(conn, order, out, reason)
    rest = order.unpicked()
    if rest:
        await withdraw(conn, deps, order, out, reason, tell_erp=tell_erp, rest=rest)
    return rest


async def _drop_waiting_parcels(conn: Connection, order: Order, out: Outgoing, reason: str) -> None:
    """Parcels packed for a cancelled order but not labelled yet will not ship: the carrier
    drops them (``shipment.cancel``) and their units count as unpacked again, to be withdrawn
    with the rest."""
    dropped: Counter[str] = Counter()
    for shipment_id, packed in await store.cancel_open_shipments(conn, order.order_id):
        drop = ShipmentCancel(
            order_id=order.order_id,
            shipment_id=shipment_id,
            reason=reason,
            lines=requests.fulfilment_lines(order, packed),
        )
        requests.send(out, order, drop, f"shipment.cancel/{shipment_id}")
        dropped.update(packed)
    for line_id, units in dropped.items():
        order.picked[line_id] = max(order.picked.get(line_id, 0) - units, 0)


async def _cancel_after_shipment(
    conn: Connection, deps: OrderDeps, order: Order, inbound: Inbound, now: datetime
) -> Outgoing:
    """A cancellation once goods left: what has not left is withdrawn (a parcel still waiting
    for its label dropped at the carrier; the stock back, the sales order and pick cancelled
    for those units), and what shipped and no return covers yet is expected back. A label the
    carrier makes anyway is cancelled again (``steps.shipped``)."""
    msg = inbound.message
    assert isinstance(msg, OrderCancelled)
    asked = await store.returns_asked(conn, order.order_id)
    return_id = f"R-{order.order_id}"
    still_open = order.state in OPEN_STATES
    waiting = still_open and bool(await store.open_shipments(conn, order.order_id))
    rest = order.unpicked() if still_open else {}
    left = returns.left_to_return(order, asked)
    if return_id in asked or not (rest or left or waiting):  # a repeat, or nothing to undo
        return await ignore(conn, deps, order, inbound, now)
    out = Outgoing(deps.table, deps.names, inbound.event, now)
    details = []
    withdrawn = None
    if rest or waiting:
        reason = f"{msg.reason} (the rest of order {order.order_id}, not shipped yet)"
        tell_erp = inbound.event.source != deps.config.erp
        rest = await withdraw_unshipped(conn, deps, order, out, reason, tell_erp=tell_erp)
    if rest:
        details.append(f"cancelled by {msg.cancelled_by}: {msg.reason}")
        withdrawn = requests.cancellation(order, _canceller(deps, inbound.event.source), rest)
    if left:
        await returns.ask_back(conn, out, order, return_id, left, "cancelled after shipment", now)
        details.append(f"cancellation after shipment becomes return {return_id}")
    requests.wait_for(deps, order, None, now)
    await transition(conn, deps, order, "return_requested" if left else "cancelled", inbound, now)
    lifecycle: OrderLifecycle = "cancelled" if rest else "shipped"
    told = requests.status(order, lifecycle, "; ".join(details), withdrawn)
    requests.send(out, order, told, "cancelled")
    return out


def _rest_to_come(order: Order) -> bool:
    """Whether units are still due to ship: the order is open with lines not all shipped."""
    return order.state in OPEN_STATES and bool(order.unshipped())


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
    asked = await store.returns_asked(conn, order.order_id)
    if msg.return_id in asked:
        return await ignore(conn, deps, order, inbound, now)
    if not order.shipped:
        raise BusinessRuleViolation(
            f"return {msg.return_id}: order {order.order_id} has not shipped (state"
            f" {order.state}); cancel it instead"
        )
    msg = await _with_skus(conn, order, msg)
    units = _check_returnable(order, msg, asked)
    await store.add_return(conn, order.order_id, msg.return_id, units, now)
    requested = msg.model_copy(update={"order_id": order.order_id})
    detail = f"return {msg.return_id} requested on the channel"
    return await _expect_return(conn, deps, order, inbound, now, requested, detail)


async def _with_skus(conn: Connection, order: Order, msg: ReturnRequested) -> ReturnRequested:
    """The return with each line's SKU, filled in from the order line or the EAN a channel
    named instead (bol.com's: matched to the order's SKUs by the ERP's product data), so the
    ERP and the warehouse get it as they always have."""
    if all(line.sku is not None and line.gtin is None for line in msg.lines):
        return msg
    sku_of = {line.line_id: line.sku for line in order.placed.lines}
    by_gtin: dict[str, list[str]] = {}
    if any(line.sku is None and line.line_id is None for line in msg.lines):
        by_gtin = await store.skus_by_gtin(conn, sorted(set(sku_of.values())))
    lines = []
    for line in msg.lines:
        if line.sku is not None:  # named as the ERP knows it: the EAN, if any, is not passed on
            line = line.model_copy(update={"gtin": None})
        elif line.line_id is not None:
            sku = sku_of.get(line.line_id)
            if sku is None:
                raise BusinessRuleViolation(
                    f"return {msg.return_id}: order {order.order_id} has no line {line.line_id!r}"
                )
            line = line.model_copy(update={"sku": sku, "gtin": None})
        else:
            line = _by_gtin(order, msg, line, by_gtin.get(gtin_key(line.gtin or ""), []))
        lines.append(line)
    return msg.model_copy(update={"lines": tuple(lines)})


def _by_gtin(order: Order, msg: ReturnRequested, line: ReturnLine, skus: list[str]) -> ReturnLine:
    """A line named by EAN as the order's SKU that carries it (and its order line, if one)."""
    if len(skus) != 1:
        found = "none" if not skus else f"{len(skus)} ({', '.join(skus)})"
        raise BusinessRuleViolation(
            f"return {msg.return_id}: of order {order.order_id}'s SKUs, {found} carry EAN"
            f" {line.gtin} in the ERP's product data"
        )
    on_lines = [placed.line_id for placed in order.placed.lines if placed.sku == skus[0]]
    line_id = on_lines[0] if len(on_lines) == 1 else None
    return ReturnLine(sku=skus[0], quantity=line.quantity, line_id=line_id)


def _check_returnable(
    order: Order, msg: ReturnRequested, asked: Mapping[str, Mapping[str, int]]
) -> dict[str, int]:
    """No more units of a SKU come back than were shipped and not asked back by an earlier
    return, on lines the order has; the units per SKU this return asks."""
    sku_of = {line.line_id: line.sku for line in order.placed.lines}
    shipped = returns.shipped_by_sku(order)
    left = returns.left_to_return(order, asked)
    wanted: Counter[str] = Counter()
    for line in msg.lines:
        sku = line.sku
        if sku is None or (line.line_id is not None and sku_of.get(line.line_id) != sku):
            raise BusinessRuleViolation(
                f"return {msg.return_id}: order {order.order_id} has no line"
                f" {line.line_id!r} of SKU {sku}"
            )
        wanted[sku] += line.quantity
    for sku, units in wanted.items():
        if units > left.get(sku, 0):
            earlier = shipped.get(sku, 0) - left.get(sku, 0)
            raise BusinessRuleViolation(
                f"return {msg.return_id}: {units} unit(s) of {sku} asked back,"
                f" {shipped.get(sku, 0)} shipped"
                + (f", {earlier} of them in earlier returns" if earlier else "")
            )
    return dict(wanted)


async def _expect_return(
    conn: Connection,
    deps: OrderDeps,
    order: Order,
    inbound: Inbound,
    now: datetime,
    requested: ReturnRequested,
    detail: str,
) -> Outgoing:
    """Tell the ERP and the warehouse to expect the goods, and the channel that they will.

    While the rest of the order is still to ship, it goes on as it was: the return is noted."""
    out = Outgoing(deps.table, deps.names, inbound.event, now)
    requests.send(out, order, requested, "return.requested")
    if _rest_to_come(order):
        await store.note(conn, order, inbound.event.type, now, detail, inbound.event.id)
        lifecycle: OrderLifecycle = "partially_shipped"
    else:
        requests.wait_for(deps, order, None, now)
        await transition(conn, deps, order, "return_requested", inbound, now)
        lifecycle = "shipped"
    requests.send(out, order, requests.status(order, lifecycle, detail), "return.requested")
    return out


async def returned(conn: Connection, deps: OrderDeps, inbound: Inbound, now: datetime) -> Outgoing:
    """Goods came back: the ERP books them (and reports stock), the channel refunds. The order
    is returned once every shipped unit is back; after part of it, it stays shipped."""
    msg = inbound.message
    assert isinstance(msg, ReturnReceived)
    order = await _named(conn, msg.order_id, msg.channel, msg.channel_order_id)
    out = Outgoing(deps.table, deps.names, inbound.event, now)
    out.forward(inbound.event, msg, origin=order.channel, about=order.placed)
    received: Counter[str] = Counter()
    for line in msg.lines:
        received[line.sku] += line.quantity
    back = await store.receive_return(conn, order.order_id, msg.return_id, received, now)
    detail = f"return {msg.return_id}: {received.total()} unit(s) received"
    lifecycle: OrderLifecycle = "returned"
    if not any(order.shipped.values()):  # nothing of it shipped: the goods are booked, no more
        await store.note(conn, order, inbound.event.type, now, detail, inbound.event.id)
        return out
    if _rest_to_come(order):  # the rest still ships: the order keeps its state
        await store.note(conn, order, inbound.event.type, now, detail, inbound.event.id)
        lifecycle = "partially_shipped"
    elif returns.all_back(order, back):
        await transition(conn, deps, order, "returned", inbound, now)
    else:
        detail += f"; {returns.units_back(order, back)} shipped unit(s) back"
        lifecycle = "shipped"
        awaited = returns.awaited(await store.returns_asked(conn, order.order_id), back)
        state = "return_requested" if awaited else _after_part_back(order.state)
        if state == order.state:
            await store.note(conn, order, inbound.event.type, now, detail, inbound.event.id)
        else:
            await transition(conn, deps, order, state, inbound, now)
    requests.send(out, order, requests.status(order, lifecycle, detail), msg.return_id)
    return out


def _after_part_back(state: str) -> str:
    """The state an order keeps once part of it came back and no announced return is still
    due: shipped (a cancelled rest stays cancelled)."""
    return "shipped" if state in {"return_requested", "returned"} else state


async def invoiced(conn: Connection, deps: OrderDeps, inbound: Inbound, now: datetime) -> Outgoing:
    """The ERP's invoice goes to the channel the order came from, as the ERP issued it."""
    msg = inbound.message
    assert isinstance(msg, InvoiceIssued)
    order = await locked(conn, msg.order_id)
    out = Outgoing(deps.table, deps.names, inbound.event, now)
    out.forward(inbound.event, msg, origin=order.channel, about=order.placed)
    detail = f"invoice {msg.invoice_number} {msg.total.amount} {msg.total.currency}"
    await store.note(conn, order, "invoice.issued", now, detail, inbound.event.id)
    return out
