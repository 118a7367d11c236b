"""Fulfilment messages: pick in the warehouse, ship by carrier, pass tracking to the channel."""

from __future__ import annotations

from typing import Annotated, ClassVar

from schemas.base import CanonicalModel, Message
from schemas.common import (
    MAX_LINES,
    Address,
    ChannelName,
    Identifier,
    ItemCount,
    PositiveQuantity,
    ShortText,
    Sku,
    Url,
)


class FulfilmentLine(CanonicalModel):
    """Units of one order line to pick or ship, or picked or shipped; the line id ties them up."""

    line_id: Identifier
    sku: Sku
    quantity: PositiveQuantity


Lines = Annotated[tuple[FulfilmentLine, ...], ItemCount(1, MAX_LINES)]

RestLines = Annotated[tuple[FulfilmentLine, ...], ItemCount(0, MAX_LINES)]
"""The units a cancellation withdraws, by order line, when part of the order already left;
empty: the whole order."""


class PickRequest(Message):
    """Ask the warehouse to pick and pack these lines for one order."""

    TYPE: ClassVar[str] = "pick.request"

    order_id: Identifier
    pick_id: Identifier | None = None
    lines: Lines
    ship_to: Address
    location: Identifier | None = None
    shipping_method: Identifier | None = None


class PickCompleted(Message):
    """The warehouse packed what it found; fewer lines or units than asked is a short pick."""

    TYPE: ClassVar[str] = "pick.completed"

    order_id: Identifier
    pick_id: Identifier | None = None
    lines: Annotated[tuple[FulfilmentLine, ...], ItemCount(0, MAX_LINES)]
    parcels: PositiveQuantity | None = None
    location: Identifier | None = None


class PickCancel(Message):
    """Stop picking for an order (cancelled before it shipped, or the rest of a partial one)."""

    TYPE: ClassVar[str] = "pick.cancel"
    SCHEMA_VERSION: ClassVar[str] = "2.0"  # lines: only these units are withdrawn

    order_id: Identifier
    pick_id: Identifier | None = None
    reason: ShortText
    lines: RestLines = ()

    def data_version(self) -> str:
        """2.0 only for a part (lines given): a whole-order cancel reads as it did in 1.0."""
        return self.SCHEMA_VERSION if self.lines else "1.0"


class Parcel(CanonicalModel):
    """One parcel to label; the weight lets the carrier pick a service and price."""

    weight_grams: PositiveQuantity | None = None


class ShipmentRequest(Message):
    """Ask a carrier for a shipment and label for the packed parcels of an order."""

    TYPE: ClassVar[str] = "shipment.request"

    order_id: Identifier
    shipment_id: Identifier
    carrier: Identifier | None = None
    service: Identifier | None = None
    ship_to: Address
    parcels: Annotated[tuple[Parcel, ...], ItemCount(1, 100)]
    lines: Lines


class ShipmentCancel(Message):
    """Drop a shipment asked for, whose label the carrier has not made yet: the order was
    cancelled while its parcel waited for the label, so it will not ship."""

    TYPE: ClassVar[str] = "shipment.cancel"

    order_id: Identifier
    shipment_id: Identifier
    reason: ShortText
    lines: Lines
    """The shipment's lines, as it was asked for (routes send the cancel where the request
    went)."""


class ShipmentCreated(Message):
    """The carrier accepted the shipment: tracking number and label for these lines."""

    TYPE: ClassVar[str] = "shipment.created"

    order_id: Identifier
    shipment_id: Identifier
    carrier: Identifier
    tracking_number: Identifier
    tracking_url: Url | None = None
    label_url: Url | None = None
    lines: Lines


class ShipmentTracking(Message):
    """Tell the channel that these lines shipped and how the buyer can track them."""

    TYPE: ClassVar[str] = "shipment.tracking"
    SCHEMA_VERSION: ClassVar[str] = "1.1"  # replaces_tracking_number

    channel: ChannelName
    channel_order_id: Identifier
    order_id: Identifier
    shipment_id: Identifier
    carrier: Identifier
    tracking_number: Identifier
    tracking_url: Url | None = None
    lines: Lines
    replaces_tracking_number: Identifier | None = None
    """Set when this is the carrier's later word on a parcel the channel was told of: the
    number it was told then, so the channel updates that shipment rather than adding one."""

    def data_version(self) -> str:
        """1.0 unless it replaces a number: a 1.0 reader would take it for a new shipment."""
        return self.SCHEMA_VERSION if self.replaces_tracking_number else "1.0"
