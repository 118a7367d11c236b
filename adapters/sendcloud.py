"""Sendcloud API v2: shipment requests out as parcels; labelled parcels in as shipments.

The hub's ids travel with the parcel so that Sendcloud's answers can be tied back without a
lookup: ``order_number`` carries the hub's order id, ``external_reference`` the shipment id and
each parcel item's ``properties.line_id`` the order line it ships.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from adapters._native import Native
from adapters.base import TranslationError
from adapters.table import ReadsAndWrites
from schemas.fulfilment import ShipmentCancel, ShipmentCreated, ShipmentRequest

# parcel-created: the body Sendcloud answers POST /parcels with; parcel-status-changed: the
# webhook body (action "parcel_status_changed"). Both hold the whole parcel under "parcel".
CANCELLED = frozenset({1999, 2000})  # "Cancellation requested", "Cancelled"


def _line(item: Native) -> dict[str, Any]:
    properties = item.obj("properties")
    return {
        "line_id": properties.text("line_id"),
        "sku": item.text("sku"),
        "quantity": item.integer("quantity"),
    }


def shipment_created(body: Native) -> ShipmentCreated:
    """A labelled parcel as the shipment the hub asked for; a cancelled one is refused."""
    parcel = body.obj("parcel")
    status = parcel.optional_obj("status")
    if status is not None and status.raw("id") is not None and status.integer("id") in CANCELLED:
        raise TranslationError(
            f"{status.where('id')}: the parcel is cancelled ({status.optional_text('message')})"
        )
    label = parcel.optional_obj("label")
    return ShipmentCreated.model_validate(
        {
            "order_id": parcel.text("order_number"),
            "shipment_id": parcel.text("external_reference"),
            "carrier": parcel.obj("carrier").text("code"),
            "tracking_number": parcel.text("tracking_number"),
            "tracking_url": parcel.optional_text("tracking_url") or None,
            "label_url": (label.optional_text("label_printer") or None) if label else None,
            "lines": [_line(item) for item in parcel.objects("parcel_items")],
        }
    )


def _kilograms(grams: int) -> str:
    return f"{Decimal(grams) / 1000:.3f}"


def parcel(message: ShipmentRequest) -> dict[str, Any]:
    """Body for ``POST /parcels``: announce at once and return the label."""
    to = message.ship_to
    body: dict[str, Any] = {
        "name": to.name,
        "address": to.line1,
        "city": to.city,
        "postal_code": to.postal_code,
        "country": to.country,
        "order_number": message.order_id,
        "external_reference": message.shipment_id,
        "request_label": True,
        "parcel_items": [
            {
                "description": line.sku,
                "sku": line.sku,
                "quantity": line.quantity,
                "properties": {"line_id": line.line_id},
            }
            for line in message.lines
        ],
    }
    optional = {
        "company_name": to.company,
        "address_2": to.line2,
        "country_state": to.region,
        "telephone": to.phone,
        "email": to.email,
    }
    body.update({key: value for key, value in optional.items() if value})
    weights = [p.weight_grams for p in message.parcels if p.weight_grams is not None]
    if weights:
        # One label per parcel (multi-collo) shares one weight; the heaviest never under-declares.
        body["weight"] = _kilograms(max(weights))
    if len(message.parcels) > 1:
        body["quantity"] = len(message.parcels)
    if message.service and message.service.isdigit():
        body["shipment"] = {"id": int(message.service)}
    else:
        body["apply_shipping_rules"] = True  # the merchant's rules pick carrier and method
    return {"parcel": body}


def parcel_cancel(message: ShipmentCancel) -> dict[str, Any]:
    """Body for cancelling the parcel made for this shipment (``POST parcels/{id}/cancel``);
    the transport finds the parcel by the order number and the shipment's reference."""
    return {"cancel": {"order_number": message.order_id, "external_reference": message.shipment_id}}


def _parcel_event(parcel_body: Native, _channel: str) -> ShipmentCreated:
    return shipment_created(parcel_body)


TRANSLATOR = ReadsAndWrites(
    "sendcloud",
    readers={"parcel-created": _parcel_event, "parcel-status-changed": _parcel_event},
    writers={ShipmentRequest: parcel, ShipmentCancel: parcel_cancel},
)
"""The carrier side: Sendcloud parcels for shipment requests, shipments from its answers."""
