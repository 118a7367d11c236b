"""WooCommerce REST API v3: order webhooks in; stock, prices, tracking and status out.

The ``order.created`` webhook body is the v3 order resource. Its line ``price`` is a JSON
float taken *after* coupons and *without* tax, so the unit price the buyer saw (and the price
list holds) is rebuilt from the line's ``subtotal`` (+ ``subtotal_tax`` when the shop's prices
include tax), which WooCommerce sends as text; every number is read through ``str()``.
``order.updated`` (the same resource) is read only for a cancellation.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from adapters._native import (
    Native,
    carrier_name,
    html_paragraphs,
    money_text,
    numeric_id,
    person,
)
from adapters.base import TranslationError
from adapters.table import ReadsAndWrites
from schemas.catalog import PriceChanged, ProductUpserted
from schemas.common import minor_units
from schemas.fulfilment import ShipmentTracking
from schemas.inventory import StockAvailability
from schemas.orders import (
    OrderAccepted,
    OrderCancelled,
    OrderLifecycle,
    OrderPlaced,
    OrderRejected,
    OrderStatus,
)

# The hub's order lifecycle -> WooCommerce order status. "returned" has no counterpart: a
# refund is money, made in WooCommerce, not a state the hub can set, so it needs no call.
ORDER_STATUSES: Mapping[OrderLifecycle, str] = {
    "accepted": "processing",
    "sent_to_erp": "processing",
    "confirmed": "processing",
    "picking": "processing",
    "backordered": "processing",
    "partially_shipped": "processing",
    "shipped": "completed",
    "delivered": "completed",
    "cancelled": "cancelled",
    "rejected": "cancelled",
    "stalled": "on-hold",
}


def _address(raw: Native, email: str, phone: str) -> dict[str, Any]:
    return {
        "name": person(raw.optional_text("first_name"), raw.optional_text("last_name")),
        "company": raw.optional_text("company"),
        "line1": raw.optional_text("address_1"),
        "line2": raw.optional_text("address_2"),
        "postal_code": raw.optional_text("postcode"),
        "city": raw.optional_text("city"),
        "region": raw.optional_text("state"),
        "country": raw.country("country"),
        "phone": raw.optional_text("phone") or phone,
        "email": email,
    }


def _tax_rates(order: Native) -> dict[str, Decimal]:
    """Tax rate id -> fraction, from the order's ``tax_lines`` (``rate_percent`` 20 -> 0.2)."""
    return {
        tax.text("rate_id"): tax.decimal("rate_percent") / 100
        for tax in order.objects("tax_lines", required=False)
        if tax.raw("rate_percent") is not None
    }


def _line(item: Native, currency: str, gross: bool, rates: Mapping[str, Decimal]) -> dict[str, Any]:
    quantity = item.integer("quantity")
    if quantity < 1:
        raise TranslationError(f"{item.where('quantity')}: {quantity} is not a positive count")
    subtotal = item.decimal("subtotal")
    if gross:
        subtotal += item.decimal("subtotal_tax")
    step = Decimal(1).scaleb(-minor_units(currency))
    unit = (subtotal / quantity).quantize(step, rounding=ROUND_HALF_EVEN)
    taxed = [
        t.text("id") for t in item.objects("taxes", required=False) if t.optional_text("subtotal")
    ]
    known = [rates[rate_id] for rate_id in taxed if rate_id in rates]
    return {
        "line_id": item.text("id"),
        "sku": item.text("sku"),
        "quantity": quantity,
        "unit_price": {"amount": unit, "currency": currency},
        "vat_rate": sum(known, Decimal(0)) if known and len(known) == len(taxed) else None,
    }


def _money(order: Native, currency: str, key: str, tax_key: str = "") -> dict[str, Any] | None:
    """An order total; with its tax added when the shop shows prices including tax."""
    amount = order.optional_decimal(key)
    if amount is None:
        return None
    if tax_key:
        amount += order.optional_decimal(tax_key) or 0
    return {"amount": amount, "currency": currency}


PAID = "processing"
"""WooCommerce's status for a paid order awaiting fulfilment: the only one the hub takes.
Pending (awaiting payment), on-hold (a bank transfer not yet confirmed) and failed orders
must not ship; WooCommerce cancels unpaid ones itself, and sends the order again, as an
``order.updated``, once it is paid."""


def order_placed(order: Native, channel: str) -> OrderPlaced | None:
    """An ``order.created`` webhook body as the canonical order, once it is paid; an unpaid
    one holds nothing for the hub yet."""
    if order.text("status") != PAID:
        return None
    return _order(order, channel)


def _order(order: Native, channel: str) -> OrderPlaced:
    """A WooCommerce order as the canonical order."""
    currency = order.text("currency")
    gross = order.flag("prices_include_tax", default=False)
    rates = _tax_rates(order)
    billing = order.obj("billing")
    email = billing.optional_text("email")
    phone = billing.optional_text("phone")
    shipping = order.obj("shipping")
    # An order with nothing to ship has an empty shipping block; its billing address stands in.
    ship_to = shipping if shipping.raw("country") not in (None, "") else billing
    customer_id = order.optional_text("customer_id")
    shipping_lines = order.objects("shipping_lines", required=False)
    shipping_tax, discount_tax = ("shipping_tax", "discount_tax") if gross else ("", "")
    return OrderPlaced.model_validate(
        {
            "channel": channel,
            "channel_order_id": order.text("id"),
            "placed_at": order.timestamp("date_created_gmt"),
            "currency": currency,
            "prices_include_vat": gross,
            "lines": [_line(i, currency, gross, rates) for i in order.objects("line_items")],
            "shipping_address": _address(ship_to, email, phone),
            "billing_address": _address(billing, email, phone),
            "customer_ref": customer_id if customer_id not in ("", "0") else None,
            "shipping_method": (shipping_lines[0].optional_text("method_id") or None)
            if shipping_lines
            else None,
            "totals": {
                "total": _money(order, currency, "total"),
                "shipping": _money(order, currency, "shipping_total", shipping_tax),
                "discount": _money(order, currency, "discount_total", discount_tax),
                "vat": _money(order, currency, "total_tax"),
            },
        }
    )


def order_updated(order: Native, channel: str) -> OrderPlaced | OrderCancelled | None:
    """An ``order.updated`` webhook body: WooCommerce's only sign of a cancellation (in the
    admin, or an unpaid order timed out) and of an order paid after it was created, which
    the hub takes then (one it already has is a duplicate, noted only: the status the hub
    sets on taking it comes back this way). Any other update holds nothing for the hub."""
    status = order.text("status")
    if status == PAID:
        return _order(order, channel)
    if status != "cancelled":
        return None
    return OrderCancelled(
        channel=channel,
        channel_order_id=order.text("id"),
        reason="cancelled in WooCommerce",
        cancelled_by="channel",
    )


def product_stock(message: StockAvailability) -> dict[str, Any]:
    """Body for ``PUT products/{id}`` (the transport finds the id by SKU)."""
    return {"sku": message.sku, "manage_stock": True, "stock_quantity": message.available}


def product_price(message: PriceChanged) -> dict[str, Any]:
    """Body for ``PUT products/{id}``; WooCommerce wants prices as text."""
    price = message.price
    return {"sku": message.sku, "regular_price": money_text(price.amount, price.currency)}


def product(message: ProductUpserted) -> dict[str, Any]:
    """Body for ``PUT products/{id}``, found by SKU: the ERP's name, description (as HTML
    paragraphs), EAN as the global unique id, images and attributes (the brand among them);
    an inactive product becomes a draft, so the shop stops selling it. The weight is left
    out: its unit is a setting of the shop's (kg, g, lbs or oz) that a body cannot know."""
    attributes = dict(message.attributes)
    if message.brand and "Brand" not in attributes:
        attributes = {"Brand": message.brand, **attributes}
    body: dict[str, Any] = {
        "sku": message.sku,
        "name": message.name,
        "description": html_paragraphs(message.description or ""),
        "status": "publish" if message.active else "draft",
        "attributes": [
            {"name": name, "options": [value], "visible": True}
            for name, value in attributes.items()
        ],
    }
    if message.gtin:
        body["global_unique_id"] = message.gtin
    if message.image_urls:
        body["images"] = [{"src": str(url)} for url in message.image_urls]
    return body


def shipment_tracking(message: ShipmentTracking) -> dict[str, Any]:
    """Body for the Shipment Tracking extension (``orders/{id}/shipment-trackings``); a later
    number of a parcel told before names the one it replaces, for the transport to delete."""
    body: dict[str, Any] = {
        "order_id": numeric_id(message.channel_order_id),
        "tracking_number": message.tracking_number,
        "custom_tracking_provider": carrier_name(message.carrier),
    }
    if message.tracking_url:
        body["custom_tracking_link"] = message.tracking_url
    if message.replaces_tracking_number:
        body["replaces_tracking_number"] = message.replaces_tracking_number
    return body


def _set_status(channel_order_id: str, status: str) -> dict[str, Any]:
    """Body for ``PUT orders/{id}`` that sets the order's status."""
    return {"id": numeric_id(channel_order_id), "status": status}


def order_status(message: OrderStatus) -> dict[str, Any] | None:
    """The hub's lifecycle state as a WooCommerce status. Cancelling the rest of a partly
    shipped order completes it: WooCommerce has no partial cancellation, and "cancelled"
    would deny the parcels that left. Goods back need no call (the shop's refund sets
    "refunded"), nor does the shop's own cancellation coming back."""
    part = message.cancelled
    if part is not None and part.by == "channel":
        return None  # the shop cancelled it itself: setting it again would echo back
    if part is not None and not part.whole_order:
        # The rest withdrawn once part shipped: done. Some units off an order that goes on:
        # WooCommerce has no partial cancellation, the order stays as it is.
        if message.status in ("cancelled", "shipped"):
            return _set_status(message.channel_order_id, "completed")
        return None
    if message.status == "returned":
        return None
    status = ORDER_STATUSES.get(message.status)
    if status is None:
        raise TranslationError(f"status: WooCommerce has no order status for {message.status!r}")
    return _set_status(message.channel_order_id, status)


def order_accepted(message: OrderAccepted) -> dict[str, Any]:
    """The hub took the order: it is being processed."""
    return _set_status(message.channel_order_id, ORDER_STATUSES["accepted"])


def order_refused(message: OrderRejected) -> dict[str, Any]:
    """The hub or the ERP refused the order: cancelled in the shop (the reasons stay in the
    hub's order history, not in the shop's notes to the buyer)."""
    return _set_status(message.channel_order_id, ORDER_STATUSES["rejected"])


TRANSLATOR = ReadsAndWrites(
    "woocommerce",
    readers={"order-created": order_placed, "order-updated": order_updated},
    writers={
        StockAvailability: product_stock,
        PriceChanged: product_price,
        ProductUpserted: product,
        ShipmentTracking: shipment_tracking,
        OrderStatus: order_status,
        OrderAccepted: order_accepted,
        OrderRejected: order_refused,
    },
)
"""WooCommerce orders into the hub; stock, prices, tracking and order status back to the shop."""
