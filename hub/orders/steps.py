"""The answers that move an accepted order on: ERP sales order, warehouse pick, carrier shipment.

Each step locks the order, checks that the answer fits its state (a late or repeated answer is
noted and has no effect), changes the state and returns what that transition sends.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from hub.db import Connection
from hub.errors import BusinessRuleViolation
from hub.handlers import Inbound
from hub.metrics import labelled
from hub.orders import requests, returns, stockport, store
from hub.orders.context import OrderDeps
from hub.orders.messages import Outgoing
from hub.orders.store import Order
from schemas.erp import SalesOrderCancel, SalesOrderCreated, SalesOrderRefused
from schemas.fulfilment import PickCompleted, ShipmentCancel, ShipmentCreated, ShipmentTracking
from schemas.orders import OrderLifecycle, Reason

OPEN_STATES = frozenset({"sent_to_erp", "confirmed", "picking", "partially_shipped", "stalled"})
"""States in which the order is still moving (a stalled one resumes when the answer comes)."""


async def locked(conn: Connection, order_id: str) -> Order:
    """The order named by an answer; an unknown order id is a message to park, not retry."""
    order = await store.lock(conn, order_id)
    if order is None:
        raise BusinessRuleViolation(f"no order with id {order_id!r}")
    return order


async def ignore(
    conn: Connection, deps: OrderDeps, order: Order, inbound: Inbound, now: datetime
) -> Outgoing:
    """Note an answer that no longer fits the order's state (late, repeated) and do nothing."""
    detail = f"ignored in state {order.state}"
    await store.note(conn, order, inbound.event.type, now, detail, inbound.event.id)
    return Outgoing(deps.table, deps.names, inbound.event, now)


async def transition(
    conn: Connection, deps: OrderDeps, order: Order, state: str, inbound: Inbound, now: datetime
) -> None:
    """Persist a new state and its history line; the caller has set what waits next."""
    order.state = state
    await store.save(conn, order, now, inbound.event.type, "", inbound.event.id)
    labelled(deps.metrics.transitions, state).inc()


async def erp_created(
    conn: Connection, deps: OrderDeps, inbound: Inbound, now: datetime
) -> Outgoing:
    """The ERP has the order: confirm the reservation and ask the warehouse to pick."""
    msg = inbound.message
    assert isinstance(msg, SalesOrderCreated)
    order = await locked(conn, msg.order_id)
    out = Outgoing(deps.table, deps.names, inbound.event, now)
    if order.state in {"cancelled", "rejected"} and order.erp_order_number is None:
        # Given up while the ERP was creating it: withdraw the sales order it just made.
        order.erp_order_number = msg.erp_order_number
        cancel = SalesOrderCancel(
            order_id=order.order_id,
            erp_order_number=msg.erp_order_number,
            reason=f"order was {order.state} before the ERP confirmed it",
        )
        requests.send(out, order, cancel, "salesorder.cancel")
        # Noted, not counted: the order does not change state.
        detail = f"sales order {msg.erp_order_number} withdrawn"
        await store.save(conn, order, now, inbound.event.type, detail, inbound.event.id)
        return out
    if order.awaiting != "erp" or order.state not in OPEN_STATES:
        return await ignore(conn, deps, order, inbound, now)
    order.erp_order_number = msg.erp_order_number
    if order.reservation_id:
        await stockport.confirm(conn, order.reservation_id, msg.erp_order_number)
    if order.untold:  # units the channel took off while the ERP made the sales order
        withdrawn = SalesOrderCancel(
            order_id=order.order_id,
            erp_order_number=msg.erp_order_number,
            reason="units cancelled by the channel before the ERP had the order",
            lines=requests.fulfilment_lines(order, order.untold),
        )
        requests.send(out, order, withdrawn, "salesorder.cancel/withdrawn")
        order.untold = {}  # saved with the transition below
    requests.wait_for(deps, order, "warehouse", now)
    await transition(conn, deps, order, "picking", inbound, now)
    detail = f"ERP order {msg.erp_order_number}"
    requests.send(out, order, requests.status(order, "confirmed", detail), "confirmed")
    requests.send(out, order, requests.pick_request(order, deps.config), "pick.request")
    return out


async def erp_refused(
    conn: Connection, deps: OrderDeps, inbound: Inbound, now: datetime
) -> Outgoing:
    """The ERP refused the order: release its stock and tell the channel why."""
    msg = inbound.message
    assert isinstance(msg, SalesOrderRefused)
    order = await locked(conn, msg.order_id)
    if order.awaiting != "erp" or order.state not in OPEN_STATES:
        return await ignore(conn, deps, order, inbound, now)
    out = Outgoing(deps.table, deps.names, inbound.event, now)
    if order.reservation_id:
        out.extend(await stockport.release(conn, deps.stock, inbound.event, order.reservation_id))
    requests.wait_for(deps, order, None, now)
    await transition(conn, deps, order, "rejected", inbound, now)
    reasons = [Reason(code="erp_refused", message=msg.reason or "refused by the ERP")]
    requests.send(out, order, requests.rejection(order, reasons), "order.rejected")
    return out


async def picked(conn: Connection, deps: OrderDeps, inbound: Inbound, now: datetime) -> Outgoing:
    """The warehouse packed (some of) the order: ask the carrier to ship what was packed."""
    msg = inbound.message
    assert isinstance(msg, PickCompleted)
    order = await locked(conn, msg.order_id)
    if order.awaiting != "warehouse" or order.state not in OPEN_STATES:
        return await ignore(conn, deps, order, inbound, now)
    out = Outgoing(deps.table, deps.names, inbound.event, now)
    left = order.unpicked()
    packed: dict[str, int] = {}
    for line in msg.lines:
        units = min(line.quantity, left.get(line.line_id, 0))
        if units > 0:
            packed[line.line_id] = packed.get(line.line_id, 0) + units
            left[line.line_id] -= units
    if not packed:  # nothing usable packed: keep waiting for the warehouse, clock restarted
        requests.wait_for(deps, order, "warehouse", now)
        await transition(conn, deps, order, order.state, inbound, now)
        return out
    for line_id, units in packed.items():
        order.picked[line_id] = order.picked.get(line_id, 0) + units
    shipment_id = f"S{await store.shipment_count(conn, order.order_id) + 1}-{order.order_id}"
    parcels = max(msg.parcels or 1, 1)
    await store.add_shipment(conn, order.order_id, shipment_id, packed, now, parcels)
    requests.wait_for(deps, order, "carrier", now)
    await transition(conn, deps, order, order.state, inbound, now)
    await requests.ask_carrier(conn, out, order, shipment_id, packed, parcels)
    return out


async def shipped(conn: Connection, deps: OrderDeps, inbound: Inbound, now: datetime) -> Outgoing:
    """The carrier shipped: tell the channel, the warehouse (label) and ERP, then wait for the
    rest if the order is partial."""
    msg = inbound.message
    assert isinstance(msg, ShipmentCreated)
    order = await locked(conn, msg.order_id)
    outcome = await store.shipment_created(conn, order.order_id, msg)
    if outcome == "repeat":
        return await _label_later(conn, deps, order, inbound, now)
    out = Outgoing(deps.table, deps.names, inbound.event, now)
    if outcome == "dropped":  # labelled after the hub dropped it: the parcel stays put
        reason = f"labelled after order {order.order_id} was {order.state}"
        drop = ShipmentCancel(
            order_id=order.order_id, shipment_id=msg.shipment_id, reason=reason, lines=msg.lines
        )
        requests.send(out, order, drop, f"shipment.cancel/{msg.shipment_id}/{inbound.event.id}")
        detail = f"label {msg.tracking_number} for dropped shipment {msg.shipment_id}: cancelled"
        await store.note(conn, order, inbound.event.type, now, detail, inbound.event.id)
        return out
    for line in msg.lines:
        order.shipped[line.line_id] = order.shipped.get(line.line_id, 0) + line.quantity
    if not order.unshipped():
        requests.wait_for(deps, order, None, now)
        state = "shipped"
    elif await store.open_shipments(conn, order.order_id):
        state = "partially_shipped"
    else:
        requests.wait_for(deps, order, "warehouse", now)
        state = "partially_shipped"
    late = order.state in {"cancelled", "rejected", "return_requested", "returned"}
    units: Counter[str] = Counter()  # the parcel's units per SKU
    for line in msg.lines:
        units[line.sku] += line.quantity
    if order.reservation_id is not None and not late:
        where = requests.pick_location(order, deps.config)
        await stockport.mark_shipped(conn, order.reservation_id, units, now, where)
    if late:  # a parcel that left after the order was cancelled: recorded, and asked back
        state = "return_requested"
        return_id = f"R-{msg.shipment_id}"
        reason = f"shipped after the order was {order.state}"
        await returns.ask_back(conn, out, order, return_id, units, reason, now)
        requests.wait_for(deps, order, None, now)
    await transition(conn, deps, order, state, inbound, now)
    tracking = ShipmentTracking(
        channel=order.channel,
        channel_order_id=order.channel_order_id,
        order_id=order.order_id,
        shipment_id=msg.shipment_id,
        carrier=msg.carrier,
        tracking_number=msg.tracking_number,
        tracking_url=msg.tracking_url,
        lines=msg.lines,
    )
    requests.send(out, order, tracking, f"tracking/{msg.shipment_id}")
    # The label for the warehouse to print, the shipment for the ERP's delivery and invoice.
    requests.send(out, order, msg, f"shipment/{msg.shipment_id}")
    lifecycle: OrderLifecycle = "partially_shipped" if order.unshipped() else "shipped"
    detail = f"{msg.carrier} {msg.tracking_number}"
    if late:
        detail += f": shipped after cancellation, asked back as return R-{msg.shipment_id}"
    requests.send(out, order, requests.status(order, lifecycle, detail), msg.shipment_id)
    return out


async def _label_later(
    conn: Connection, deps: OrderDeps, order: Order, inbound: Inbound, now: datetime
) -> Outgoing:
    """A repeated shipment.created: a label made after the parcel was booked is kept and sent
    on to the warehouse that prints it (carriers such as Sendcloud announce it later; the ERP
    had the shipment already); anything else is noted and dropped."""
    msg = inbound.message
    assert isinstance(msg, ShipmentCreated)
    url = str(msg.label_url) if msg.label_url else None
    if url is None or not await store.update_label(conn, order.order_id, msg.shipment_id, url):
        return await ignore(conn, deps, order, inbound, now)
    out = Outgoing(deps.table, deps.names, inbound.event, now)
    detail = f"label for {msg.shipment_id}"
    await store.note(conn, order, inbound.event.type, now, detail, inbound.event.id)
    kinds = {name: channel.kind for name, channel in deps.config.channels.items()}
    key = f"shipment/{msg.shipment_id}/label/{url}"
    requests.send(out, order, msg, key, only=lambda name: kinds.get(name) == "warehouse")
    return out


async def tracking_updated(
    conn: Connection, deps: OrderDeps, inbound: Inbound, now: datetime
) -> Outgoing:
    """The carrier's later word on a parcel (a new number or tracking page): kept, and told to
    the channel the order came from; a repeat is noted and goes no further."""
    msg = inbound.message
    assert isinstance(msg, ShipmentTracking)
    order = await locked(conn, msg.order_id)
    if (msg.channel, msg.channel_order_id) != (order.channel, order.channel_order_id):
        raise BusinessRuleViolation(
            f"tracking for order {order.order_id} names channel order"
            f" {msg.channel}/{msg.channel_order_id}, not {order.channel}/{order.channel_order_id}"
        )
    kept = await store.update_tracking(
        conn, order.order_id, msg.shipment_id, msg.tracking_number, msg.tracking_url
    )
    if kept is None:
        raise BusinessRuleViolation(
            f"order {order.order_id} has no shipped parcel {msg.shipment_id!r} to track"
        )
    changed, before = kept
    if not changed:
        return await ignore(conn, deps, order, inbound, now)
    # The number the channel knows the parcel by (the same when only the page changed).
    msg = msg.model_copy(update={"replaces_tracking_number": before})
    out = Outgoing(deps.table, deps.names, inbound.event, now)
    detail = f"{msg.shipment_id}: {msg.carrier} {msg.tracking_number}"
    await store.note(conn, order, inbound.event.type, now, detail, inbound.event.id)
    key = f"tracking/{msg.shipment_id}/{msg.tracking_number}"
    requests.send(out, order, msg, key)
    return out
