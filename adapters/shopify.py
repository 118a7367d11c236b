"""Shopify Admin REST: order webhooks in; stock, prices, products, fulfillments and
cancellations out.

Inbound payloads are the bodies of the ``orders/create``, ``orders/paid``,
``orders/cancelled``, ``returns/request`` and ``returns/approve`` webhooks (topic
``orders/create`` becomes the native event ``orders-create``). Outbound payloads carry
the SKU where Shopify wants its own ids (inventory item, variant, fulfillment order): the
delivery transport looks those up, because a translator does no I/O.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from adapters._native import (
    Native,
    carrier_name,
    html_paragraphs,
    money_text,
    numeric_id,
    person,
)
from adapters.table import ReadsAndWrites, nothing_to_write
from schemas.catalog import PriceChanged, ProductUpserted
from schemas.fulfilment import ShipmentTracking
from schemas.inventory import StockAvailability
from schemas.orders import (
    CancelledPart,
    OrderAccepted,
    OrderCancelled,
    OrderPlaced,
    OrderRejected,
    OrderStatus,
)
from schemas.returns import ReturnRequested


def _address(raw: Native, email: str) -> dict[str, Any]:
    name = raw.optional_text("name") or person(
        raw.optional_text("first_name"), raw.optional_text("last_name")
    )
    return {
        "name": name,
        "company": raw.optional_text("company"),
        "line1": raw.optional_text("address1"),
        "line2": raw.optional_text("address2"),
        "postal_code": raw.optional_text("zip"),
        "city": raw.optional_text("city"),
        "region": raw.optional_text("province_code"),
        "country": raw.country("country_code"),
        "phone": raw.optional_text("phone"),
        "email": email,
    }


def _line(item: Native, currency: str) -> dict[str, Any]:
    rates = [tax.decimal("rate") for tax in item.objects("tax_lines", required=False)]
    return {
        "line_id": item.text("id"),
        "sku": item.text("sku"),
        "quantity": item.integer("quantity"),
        "unit_price": {"amount": item.decimal("price"), "currency": currency},
        # Several tax lines (state + county, say) add up to the rate the buyer paid.
        "vat_rate": sum(rates, Decimal(0)) if rates else None,
    }


def _money(amount: Decimal | None, currency: str) -> dict[str, Any] | None:
    return None if amount is None else {"amount": amount, "currency": currency}


def _shipping_total(order: Native) -> Decimal | None:
    price_set = order.optional_obj("total_shipping_price_set")
    shop_money = price_set.optional_obj("shop_money") if price_set else None
    return shop_money.optional_decimal("amount") if shop_money else None


TAKEN_WHEN_PAID = frozenset({"paid", "authorized"})
"""The financial statuses of an order the hub takes: paid, or authorized (captured when it
ships). A pending one (a bank transfer, cash on delivery set up as manual payment) comes
again as ``orders/paid``; one never paid is cancelled by the merchant, which the hub hears."""


def _ships(item: Native) -> bool:
    """Whether the warehouse ships the line: a gift card, or a line that needs no shipping and
    has no SKU (a tip, a digital add-on), is Shopify's own to fulfil."""
    if item.flag("gift_card", default=False):
        return False
    return item.flag("requires_shipping", default=True) or bool(item.optional_text("sku"))


def order_placed(order: Native, channel: str) -> OrderPlaced | None:
    """An ``orders/create`` or ``orders/paid`` webhook body as the canonical order, in the
    shop's currency, with the lines the warehouse ships (without totals when a line was left
    out); None while it is unpaid, or when it holds nothing to ship (a gift card alone)."""
    status = order.optional_text("financial_status")
    if status and status not in TAKEN_WHEN_PAID:
        return None
    currency = order.text("currency")
    every_item = order.objects("line_items")
    items = [item for item in every_item if _ships(item)]
    if not items:
        return None
    email = order.optional_text("email")
    billing = order.optional_obj("billing_address")
    customer = order.optional_obj("customer")
    shipping_lines = order.objects("shipping_lines", required=False)
    # Totals of the whole order would not match the lines left: the ERP sums the lines.
    total = order.optional_decimal("total_price") if len(items) == len(every_item) else None
    return OrderPlaced.model_validate(
        {
            "channel": channel,
            "channel_order_id": order.text("id"),
            "placed_at": order.timestamp("created_at"),
            "currency": currency,
            "prices_include_vat": order.flag("taxes_included", default=True),
            "lines": [_line(item, currency) for item in items],
            "shipping_address": _address(_ship_to(order, items, billing), email),
            "billing_address": _address(billing, email) if billing else None,
            "customer_ref": customer.text("id") if customer else None,
            "shipping_method": (shipping_lines[0].optional_text("code") or None)
            if shipping_lines
            else None,
            "totals": None
            if total is None
            else {
                "total": _money(total, currency),
                "shipping": _money(_shipping_total(order), currency),
                "discount": _money(order.optional_decimal("total_discounts"), currency),
                "vat": _money(order.optional_decimal("total_tax"), currency),
            },
        }
    )


def _ship_to(order: Native, items: list[Native], billing: Native | None) -> Native:
    """Where the parcel goes; an order with nothing that needs shipping (a product sold with
    a SKU but delivered digitally) has none, and its billing address stands in."""
    shipping = order.optional_obj("shipping_address")
    if shipping is not None:
        return shipping
    if billing is not None and not any(
        item.flag("requires_shipping", default=True) for item in items
    ):
        return billing
    return order.obj("shipping_address")  # required: raises, naming the field


def order_cancelled(order: Native, channel: str) -> OrderCancelled:
    """An ``orders/cancelled`` webhook body: the buyer or the merchant cancelled on Shopify."""
    order.text("cancelled_at")  # a body without it describes an order that is not cancelled
    why = order.optional_text("cancel_reason") or "no reason given"
    return OrderCancelled(
        channel=channel,
        channel_order_id=order.text("id"),
        reason=f"cancelled on Shopify: {why}",
        cancelled_by="channel",
    )


def return_requested(ret: Native, channel: str) -> ReturnRequested | None:
    """A ``returns/request`` webhook body: a buyer asks, and the merchant may still decline.
    Nothing is expected back yet: it is acked and counted, and ``returns/approve`` brings the
    return in (a parked one is found as the ``return.requested`` it is about)."""
    ret.text("id")  # a body that names no return is not one
    return None


def return_approved(ret: Native, channel: str) -> ReturnRequested:
    """A ``returns/approve`` webhook body: the merchant approved a buyer's return (status
    open), so the goods are on their way. Each item names the order line it was sold on and
    no SKU: the hub fills that in from the order."""
    lines = []
    reasons: list[str] = []
    for item in ret.objects("return_line_items"):
        sold_on = item.obj("fulfillment_line_item").obj("line_item")
        lines.append({"line_id": sold_on.text("id"), "quantity": item.integer("quantity")})
        reason = item.optional_text("return_reason")
        if reason and reason not in reasons:
            reasons.append(reason)
    return ReturnRequested.model_validate(
        {
            "channel": channel,
            "channel_order_id": ret.obj("order").text("id"),
            "return_id": ret.text("id"),
            "lines": lines,
            "reason": ", ".join(reasons) or None,
        }
    )


def inventory_level(message: StockAvailability) -> dict[str, Any]:
    """The figure for ``inventorySetQuantities``; the transport finds the inventory item and
    location, and sets it compare-and-swap."""
    return {"sku": message.sku, "available": message.available}


def variant_price(message: PriceChanged) -> dict[str, Any]:
    """Body for a variant update (``variants/{id}``), found by SKU; Shopify prices are text."""
    price = message.price
    return {"variant": {"sku": message.sku, "price": money_text(price.amount, price.currency)}}


def product(message: ProductUpserted) -> dict[str, Any]:
    """Body for a product update (``products/{id}``), found by its variant's SKU: the ERP's
    name, description (as HTML paragraphs), brand as vendor, EAN as barcode, weight in grams,
    images; an inactive product is set to draft, so the shop stops selling it. Attributes
    have no standard place in Shopify (metafields are the shop's own design) and are left out."""
    variant: dict[str, Any] = {"sku": message.sku}
    if message.gtin:
        variant["barcode"] = message.gtin
    if message.weight_grams is not None:
        variant.update(weight=message.weight_grams, weight_unit="g")
    body: dict[str, Any] = {
        "title": message.name,
        "body_html": html_paragraphs(message.description or ""),
        "status": "active" if message.active else "draft",
        "variants": [variant],
    }
    if message.brand:
        body["vendor"] = message.brand
    if message.image_urls:
        body["images"] = [{"src": str(url)} for url in message.image_urls]
    return {"product": body}


def fulfillment(message: ShipmentTracking) -> dict[str, Any]:
    """Body for ``fulfillments``; the transport maps order line ids to fulfillment order lines,
    or, for a later number of a parcel already told (``replaces_tracking_number``), updates the
    tracking of the fulfillment that carries the old one."""
    tracking: dict[str, Any] = {
        "number": message.tracking_number,
        "company": carrier_name(message.carrier),
    }
    if message.tracking_url:
        tracking["url"] = message.tracking_url
    body: dict[str, Any] = {
        "order_id": numeric_id(message.channel_order_id),
        "fulfillment": {
            "notify_customer": True,
            "tracking_info": tracking,
            "line_items": [
                {"id": numeric_id(line.line_id), "quantity": line.quantity}
                for line in message.lines
            ],
        },
    }
    if message.replaces_tracking_number:  # the transport updates that fulfillment's tracking
        body["replaces_tracking_number"] = message.replaces_tracking_number
    return body


def _cancel(channel_order_id: str, reason: str) -> dict[str, Any]:
    """Body for ``orders/{id}/cancel``: the buyer is emailed; Shopify does not restock, since
    the hub sets the shop's inventory levels itself."""
    return {
        "order_id": numeric_id(channel_order_id),
        "cancel": {"reason": reason, "email": True, "restock": False},
    }


def order_refused(message: OrderRejected) -> dict[str, Any]:
    """The hub (or the ERP) refused the order: cancel it on Shopify, "inventory" when stock
    was short, so the buyer is told and not charged for what never ships."""
    short = any(reason.code == "out_of_stock" for reason in message.reasons)
    return _cancel(message.channel_order_id, "inventory" if short else "other")


def _withdraw_lines(channel_order_id: str, part: CancelledPart) -> dict[str, Any]:
    """Body for ``orders/{id}/refunds``: Shopify cannot cancel an order that has fulfillments,
    so the unfulfilled rest is taken off as refund line items of restock type "cancel". It
    moves no money; the amount is refunded where the merchant refunds (the ERP, the PSP)."""
    return {
        "order_id": numeric_id(channel_order_id),
        "refund": {
            "notify": True,
            "refund_line_items": [
                {
                    "line_item_id": numeric_id(line.line_id),
                    "quantity": line.quantity,
                    "restock_type": "cancel",
                }
                for line in part.lines
            ],
        },
    }


def order_state(message: OrderStatus) -> dict[str, Any] | None:
    """A cancellation by the ERP or the hub is made on Shopify too; Shopify shows the other
    states through fulfillments (written from tracking), so they need no call, nor does the
    shop's own cancellation coming back."""
    part = message.cancelled
    if part is None or part.by == "channel":
        return None
    if part.whole_order:
        return _cancel(message.channel_order_id, "other")
    return _withdraw_lines(message.channel_order_id, part)


TRANSLATOR = ReadsAndWrites(
    "shopify",
    readers={
        "orders-create": order_placed,
        "orders-paid": order_placed,
        "orders-cancelled": order_cancelled,
        "returns-request": return_requested,
        "returns-approve": return_approved,
    },
    writers={
        StockAvailability: inventory_level,
        PriceChanged: variant_price,
        ProductUpserted: product,
        ShipmentTracking: fulfillment,
        OrderAccepted: nothing_to_write,  # a Shopify order is open until fulfilled or cancelled
        OrderRejected: order_refused,
        OrderStatus: order_state,
    },
)
"""Shopify orders into the hub; stock, prices, tracking and cancellations back to the shop."""
