"""bol.com Retailer API v10: orders and returns in; offer stock, offer price, shipments,
cancellations and return receipts out.

bol.com has no order webhook: whoever calls its API (the hub, with ``delivery.api``; else an
adapter process) polls ``GET /retailer/orders`` and publishes each new order, as
``GET /retailer/orders/{order-id}`` returns it, as the native event ``order``, and an order
whose items carry a buyer's ``cancellationRequest`` as ``cancellation-request``; likewise
each new return (``GET /retailer/returns``, unhandled, FBR) as ``return``. bol.com trades in
euros, prices include VAT, and the merchant's SKU is the offer's ``reference``. Outbound
bodies name the offer by that reference; the transport finds the offer id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters._native import Native, money_text, person
from adapters.base import TranslationError
from adapters.table import ReadsAndWrites, nothing_to_write
from schemas.catalog import PriceChanged
from schemas.fulfilment import FulfilmentLine, ShipmentTracking
from schemas.inventory import StockAvailability
from schemas.orders import (
    CancelledBy,
    OrderAccepted,
    OrderCancelled,
    OrderPlaced,
    OrderRejected,
    OrderStatus,
)
from schemas.returns import ReturnReceived, ReturnRequested

CURRENCY = "EUR"
MAX_STOCK = 999  # the most an offer's stock amount may say

# Carrier codes -> bol.com transporter codes (bol still calls PostNL "TNT").
TRANSPORTERS: Mapping[str, str] = {
    "postnl": "TNT",
    "dhl": "DHL",
    "dhl_de": "DHL_DE",
    "dhlforyou": "DHLFORYOU",
    "dpd": "DPD-NL",
    "dpd_be": "DPD-BE",
    "bpost": "BPOST_BE",
    "gls": "GLS",
    "ups": "UPS",
    "fedex": "FEDEX_NL",
}

# The hub's reason codes -> bol.com cancellation reason codes; any other reason is OTHER.
CANCEL_REASONS: Mapping[str, str] = {
    "out_of_stock": "OUT_OF_STOCK",
    "price_mismatch": "INCORRECT_PRICE",
    "unknown_sku": "UNFINDABLE_ITEM",
    "timeout": "TECH_ISSUE",
}
# Who cancelled -> the reason bol.com is given; a buyer's cancellation is confirmed as theirs.
CANCELLED_BY: Mapping[CancelledBy, str] = {
    "channel": "REQUESTED_BY_CUSTOMER",
    "erp": "OTHER",
    "hub": "OTHER",
}


def _address(raw: Native) -> dict[str, Any]:
    street = person(
        raw.optional_text("streetName"),
        raw.optional_text("houseNumber"),
        raw.optional_text("houseNumberExtension"),
    )
    return {
        "name": person(raw.optional_text("firstName"), raw.optional_text("surname")),
        "company": raw.optional_text("company"),
        "line1": street,
        "line2": raw.optional_text("extraAddressInformation"),
        "postal_code": raw.optional_text("zipCode"),
        "city": raw.optional_text("city"),
        "country": raw.country("countryCode"),
        "phone": raw.optional_text("deliveryPhoneNumber"),
        "email": raw.optional_text("email"),
    }


def _line(item: Native) -> dict[str, Any]:
    fulfilment = item.optional_obj("fulfilment")
    if fulfilment is not None and fulfilment.optional_text("method") == "FBB":
        # bol.com ships these from its own warehouse: nothing to reserve, pick or ship here.
        raise TranslationError(
            f"{fulfilment.where('method')}: FBB items are fulfilled by bol.com, not by us"
        )
    return {
        "line_id": item.text("orderItemId"),
        "sku": item.obj("offer").text("reference"),
        "quantity": item.integer("quantity"),
        "unit_price": {"amount": item.decimal("unitPrice"), "currency": CURRENCY},
    }


def order_placed(order: Native, channel: str) -> OrderPlaced:
    """A retailer order (FBR) as the canonical order: euros, prices including VAT."""
    billing = order.optional_obj("billingDetails")
    return OrderPlaced.model_validate(
        {
            "channel": channel,
            "channel_order_id": order.text("orderId"),
            "placed_at": order.timestamp("orderPlacedDateTime"),
            "currency": CURRENCY,
            "prices_include_vat": True,
            "lines": [_line(item) for item in order.objects("orderItems")],
            "shipping_address": _address(order.obj("shipmentDetails")),
            "billing_address": _address(billing) if billing else None,
        }
    )


def _open_units(item: Native) -> int:
    """Units of an order item neither shipped nor cancelled yet."""
    done = sum(
        item.integer(key) for key in ("quantityShipped", "quantityCancelled") if item.raw(key)
    )
    return item.integer("quantity") - done


def cancellation_requested(order: Native, channel: str) -> OrderCancelled:
    """The order resource, polled again, with ``cancellationRequest`` on its items: the buyer
    asked bol.com to cancel. A request for every open item of an order nothing of which
    shipped cancels the order; one for some items (or on an order part of which shipped)
    cancels those items' open units, which the hub does while they are not packed yet."""
    items = order.objects("orderItems")
    open_items = [(i, item) for i, item in enumerate(items) if _open_units(item) > 0]
    asked = [(i, item) for i, item in open_items if item.flag("cancellationRequest", default=False)]
    if not asked:
        raise TranslationError("orderItems: no open item has cancellationRequest true")
    shipped = any(item.raw("quantityShipped") for item in items)
    whole = len(asked) == len(open_items) and not shipped
    lines = (
        ()
        if whole
        else tuple(
            FulfilmentLine(
                line_id=item.text("orderItemId"),
                sku=item.obj("offer").text("reference"),
                quantity=_open_units(item),
            )
            for _, item in asked
        )
    )
    return OrderCancelled(
        channel=channel,
        channel_order_id=order.text("orderId"),
        reason="the buyer asked bol.com to cancel",
        cancelled_by="channel",
        lines=lines,
    )


def return_registered(ret: Native, channel: str) -> ReturnRequested | None:
    """A return as ``GET retailer/returns`` lists it (polled; ``returns/{id}`` gives the same
    fields): the buyer registered one with bol.com. Its items name the product by EAN, not by
    the offer's reference: the hub finds the order's SKU that carries it. A return of items
    bol.com fulfilled (FBB) is bol.com's to book: acked and counted. One of several orders at
    once is refused (parked)."""
    if ret.optional_text("fulfilmentMethod") == "FBB":
        return None
    items = ret.objects("returnItems")
    orders = sorted({item.text("orderId") for item in items})
    if len(orders) != 1:
        raise TranslationError(
            f"{ret.where('returnItems')}: items of {len(orders)} orders ({', '.join(orders)});"
            " book each order's items as a return of its own"
        )
    reasons: list[str] = []
    for item in items:
        reason = item.raw("returnReason")
        text = reason.get("mainReason") if isinstance(reason, dict) else reason
        if isinstance(text, str) and text and text not in reasons:
            reasons.append(text)  # the buyer's own comments are left out: they may be personal
    return ReturnRequested.model_validate(
        {
            "channel": channel,
            "channel_order_id": orders[0],
            "return_id": ret.text("returnId"),
            "lines": [
                {"gtin": item.text("ean"), "quantity": item.integer("expectedQuantity")}
                for item in items
            ],
            "reason": "; ".join(reasons)[:500] or None,
        }
    )


def return_received(message: ReturnReceived) -> dict[str, Any]:
    """What the transport confirms to bol.com (``PUT returns/{rma-id}``, per return item, as
    received): the return and the units the warehouse took back."""
    return {
        "returnId": message.return_id,
        "handlingResult": "RETURN_RECEIVED",
        "quantityReturned": sum(line.quantity for line in message.lines),
    }


def offer_stock(message: StockAvailability) -> dict[str, Any]:
    """Body for ``PUT offers/{offer-id}/stock``; we manage the stock, not bol.com."""
    return {
        "reference": message.sku,
        "amount": min(message.available, MAX_STOCK),
        "managedByRetailer": True,
    }


def offer_price(message: PriceChanged) -> dict[str, Any]:
    """Body for ``PUT offers/{offer-id}/price``: one bundle price, euros including VAT."""
    price = message.price
    if price.currency != CURRENCY:
        raise TranslationError(f"price.currency: bol.com sells in EUR, not {price.currency}")
    if not message.includes_vat:
        raise TranslationError("includes_vat: bol.com prices include VAT; send a gross price")
    unit_price = float(money_text(price.amount, CURRENCY))  # two decimals: exact as a float
    return {
        "reference": message.sku,
        "pricing": {"bundlePrices": [{"quantity": 1, "unitPrice": unit_price}]},
    }


def shipment(message: ShipmentTracking) -> dict[str, Any]:
    """Body for ``POST shipments``: these order items left with this track and trace. The
    order id is for the transport (it reads the order's shipments first), not bol.com, as is
    the number a later one replaces (the transport then changes the shipment's transport)."""
    body: dict[str, Any] = {
        "orderId": message.channel_order_id,
        "orderItems": [
            {"orderItemId": line.line_id, "quantity": line.quantity} for line in message.lines
        ],
        "shipmentReference": message.shipment_id,
        "transport": {
            "transporterCode": TRANSPORTERS.get(message.carrier, "OTHER"),
            "trackAndTrace": message.tracking_number,
        },
    }
    if message.replaces_tracking_number:
        body["replaces"] = message.replaces_tracking_number
    return body


def _cancellation(
    order_id: str, lines: tuple[FulfilmentLine, ...], code_of: Mapping[str, str]
) -> dict[str, Any]:
    """Body for ``PUT orders/cancellation``: bol.com cancels per order item, each with a reason
    code; it cancels what of the item is not shipped yet. The order id is for the transport
    (it skips items with nothing open), not bol.com."""
    if not lines:
        raise TranslationError("lines: bol.com cancels per order item and none are named")
    return {
        "orderId": order_id,
        "orderItems": [
            {"orderItemId": line.line_id, "reasonCode": code_of[line.line_id]} for line in lines
        ],
    }


def order_refused(message: OrderRejected) -> dict[str, Any]:
    """The hub (or the ERP) refused the order: cancel its items on bol.com, each with its own
    line's reason where one names the line, else the order's first reason."""
    first = CANCEL_REASONS.get(message.reasons[0].code, "OTHER")
    per_line = {
        reason.line_id: CANCEL_REASONS.get(reason.code, "OTHER")
        for reason in reversed(message.reasons)  # the first reason for a line wins
        if reason.line_id is not None
    }
    codes = {line.line_id: per_line.get(line.line_id, first) for line in message.lines}
    return _cancellation(message.channel_order_id, message.lines, codes)


def order_state(message: OrderStatus) -> dict[str, Any] | None:
    """A cancellation is written as bol.com's: the ERP's or the hub's cancels the items, a
    buyer's request is confirmed. Other states need no call: bol.com follows the order
    through its shipments."""
    part = message.cancelled
    if part is None:
        return None
    code = CANCELLED_BY[part.by]
    return _cancellation(
        message.channel_order_id, part.lines, {line.line_id: code for line in part.lines}
    )


TRANSLATOR = ReadsAndWrites(
    "bolcom",
    readers={
        "order": order_placed,
        "cancellation-request": cancellation_requested,
        "return": return_registered,
    },
    writers={
        StockAvailability: offer_stock,
        PriceChanged: offer_price,
        ShipmentTracking: shipment,
        OrderAccepted: nothing_to_write,  # bol.com has no acceptance step: the retailer ships
        OrderRejected: order_refused,
        OrderStatus: order_state,
        ReturnReceived: return_received,
    },
    prices_include_vat=True,
)
"""bol.com orders (the order resource, as polled) into the hub; stock, prices, shipments and
cancellations back."""
