"""The requests the order process sends out and then waits for: ERP, warehouse, carrier.

Building them in one place lets the timeout sweeper send exactly the same request again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from hub.db import Connection
from hub.orders import store
from hub.orders.context import OrderDeps, Party
from hub.orders.messages import Outgoing
from hub.orders.store import Order
from routes.config import HubConfig
from schemas.base import Message
from schemas.erp import SalesOrderCreate
from schemas.fulfilment import FulfilmentLine, Parcel, PickRequest, ShipmentRequest
from schemas.orders import (
    CancelledBy,
    CancelledPart,
    OrderContent,
    OrderLifecycle,
    OrderRejected,
    OrderStatus,
    Reason,
)

_CONTENT_FIELDS = tuple(OrderContent.model_fields)


def pick_id(order: Order) -> str:
    """The warehouse's handle on this order's picking, stable across retries."""
    return f"P-{order.order_id}"


def fulfilment_lines(order: Order, quantities: Mapping[str, int]) -> tuple[FulfilmentLine, ...]:
    """Lines with the given units per line id, in the order's line order."""
    return tuple(
        FulfilmentLine(line_id=line.line_id, sku=line.sku, quantity=quantities[line.line_id])
        for line in order.placed.lines
        if quantities.get(line.line_id, 0) > 0
    )


def every_line(order: Order) -> tuple[FulfilmentLine, ...]:
    """The order's lines with the units ordered (less any withdrawn), as a channel numbers
    them."""
    return fulfilment_lines(order, order.ordered())


def cancellation(
    order: Order, by: CancelledBy, rest: Mapping[str, int] | None = None
) -> CancelledPart:
    """What a cancellation withdrew: the whole order, or with ``rest`` (line id -> units) only
    the part not packed yet."""
    if rest is None:
        return CancelledPart(by=by, whole_order=True, lines=every_line(order))
    return CancelledPart(by=by, whole_order=False, lines=fulfilment_lines(order, rest))


def salesorder_create(order: Order, config: HubConfig) -> SalesOrderCreate:
    """The ERP's sales order for an accepted order: the order as placed plus the hub's ids."""
    channel = config.channels[order.channel]
    market = config.markets[channel.market] if channel.market else None
    # Built without validating again: the content is the validated order as placed, field for
    # field (both share OrderContent), and the ids are the hub's own.
    placed = order.placed
    return SalesOrderCreate.model_construct(
        **{name: getattr(placed, name) for name in _CONTENT_FIELDS},
        order_id=order.order_id,
        reservation_id=order.reservation_id,
        price_list=market.price_list if market else None,
    )


def pick_request(order: Order, config: HubConfig) -> PickRequest:
    """Ask the warehouse to pick whatever has not been picked yet, from the one location the
    order's channel sells from when it names one (its stock was reserved there)."""
    return PickRequest(
        order_id=order.order_id,
        pick_id=pick_id(order),
        lines=fulfilment_lines(order, order.unpicked()),
        ship_to=order.placed.shipping_address,
        location=pick_location(order, config),
        shipping_method=order.placed.shipping_method,
    )


def pick_location(order: Order, config: HubConfig) -> str | None:
    """The location the order's goods leave from, when its channel sells from just one."""
    locations = config.channels[order.channel].stock.locations
    return locations[0] if locations and len(locations) == 1 else None


def shipment_request(
    order: Order,
    shipment_id: str,
    lines: dict[str, int],
    parcels: int,
    grams: Mapping[str, int] | None = None,
) -> ShipmentRequest:
    """Ask the carrier to ship these picked lines in this many parcels. One parcel weighs
    what its units weigh (when every SKU packed has a weight), so the carrier prices it; of
    several, the hub does not know which box holds what, and leaves the weights to the
    carrier's defaults rather than under-declare the heaviest."""
    shipped = fulfilment_lines(order, lines)
    count = max(parcels, 1)
    weight = None
    if count == 1 and grams and all(line.sku in grams for line in shipped):
        weight = sum(grams[line.sku] * line.quantity for line in shipped) or None
    return ShipmentRequest(
        order_id=order.order_id,
        shipment_id=shipment_id,
        service=order.placed.shipping_method,
        ship_to=order.placed.shipping_address,
        parcels=tuple(Parcel(weight_grams=weight) for _ in range(count)),
        lines=shipped,
    )


async def ask_carrier(
    conn: Connection,
    out: Outgoing,
    order: Order,
    shipment_id: str,
    lines: dict[str, int],
    parcels: int,
) -> None:
    """Send the shipment request; the products' weights are read only for a single parcel,
    the one case that carries a weight."""
    grams = None
    if parcels <= 1:
        grams = await store.weights(conn, sorted({line.sku for line in order.placed.lines}))
    send(out, order, shipment_request(order, shipment_id, lines, parcels, grams), shipment_id)


def status(
    order: Order,
    value: OrderLifecycle,
    detail: str | None = None,
    cancelled: CancelledPart | None = None,
) -> OrderStatus:
    """The order's lifecycle state as its channel is told it."""
    return OrderStatus(
        order_id=order.order_id,
        channel=order.channel,
        channel_order_id=order.channel_order_id,
        status=value,
        detail=detail,
        cancelled=cancelled,
    )


def rejection(order: Order, reasons: Sequence[Reason]) -> OrderRejected:
    """Why the order was refused (or given up), as its channel is told it."""
    return OrderRejected(
        channel=order.channel,
        channel_order_id=order.channel_order_id,
        order_id=order.order_id,
        reasons=tuple(reasons),
        lines=every_line(order),
    )


def send(
    out: Outgoing,
    order: Order,
    message: Message,
    key: str,
    only: Callable[[str], bool] | None = None,
) -> None:
    """Send a message about this order where the routes take it (origin = its channel), to
    ``only`` the channels it accepts when given."""
    out.send(
        message,
        key=key,
        origin=order.channel,
        subject=order.order_id,
        about=order.placed,
        only=only,
    )


def wait_for(deps: OrderDeps, order: Order, party: Party | None, now: datetime) -> None:
    """Start (or stop, with None) the clock on the answer the order now waits for."""
    order.awaiting = party
    order.deadline = deps.deadline(party, now) if party else None
    order.attempts = 0


async def resend(conn: Connection, deps: OrderDeps, order: Order, out: Outgoing) -> bool:
    """Send the awaited request again (after a timeout); False when there is none to send."""
    if order.awaiting == "erp":
        send(out, order, salesorder_create(order, deps.config), "salesorder.create")
        return True
    if order.awaiting == "warehouse" and order.unpicked():
        send(out, order, pick_request(order, deps.config), "pick.request")
        return True
    if order.awaiting == "carrier":
        shipments = await store.open_shipments(conn, order.order_id)
        for shipment_id, lines, parcels in shipments:
            await ask_carrier(conn, out, order, shipment_id, lines, parcels)
        return bool(shipments)
    return False
