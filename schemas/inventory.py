"""Inventory messages: stock levels in, availability out, reservations and availability RPC."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Annotated, ClassVar

from pydantic import AwareDatetime, model_validator

from schemas.base import CanonicalModel, Message
from schemas.common import (
    MAX_LINES,
    ChannelName,
    Identifier,
    ItemCount,
    PositiveQuantity,
    Quantity,
    ShortText,
    Sku,
    SkuQuantity,
    Version,
)

MAX_QUERY_SKUS = 100


class IncomingReceipt(CanonicalModel):
    """Units expected in on a date (a purchase order), for an honest "available from" date."""

    quantity: PositiveQuantity
    expected_date: date


class StockLevel(Message):
    """Absolute stock of a SKU at a location; a version at or below the last one is stale."""

    TYPE: ClassVar[str] = "stock.level"

    sku: Sku
    location: Identifier
    on_hand: Quantity
    committed: Quantity = 0
    version: Version
    included_order_ids: tuple[Identifier, ...] = ()
    incoming: tuple[IncomingReceipt, ...] = ()


class StockAvailability(Message):
    """What one channel may sell of a SKU now, after reservations, buffer and channel rules."""

    TYPE: ClassVar[str] = "stock.availability"

    channel: ChannelName
    sku: Sku
    available: Quantity
    next_available_date: date | None = None
    computed_at: AwareDatetime
    version: Version


ReservationLines = Annotated[tuple[SkuQuantity, ...], ItemCount(1, MAX_LINES)]


class ReserveStock(Message):
    """Hold stock for all lines of an order or none; a SKU may appear on several lines."""

    TYPE: ClassVar[str] = "stock.reserve"

    reservation_id: Identifier
    channel: ChannelName
    order_ref: Identifier
    lines: ReservationLines

    def quantities_by_sku(self) -> dict[str, int]:
        """Units asked per SKU, lines of the same SKU added up, as the ledger reserves them."""
        totals: Counter[str] = Counter()
        for line in self.lines:
            totals[line.sku] += line.quantity
        return dict(totals)


class StockReserved(Message):
    """The reservation holds every line; the order may go on to the ERP."""

    TYPE: ClassVar[str] = "stock.reserved"

    reservation_id: Identifier
    channel: ChannelName
    order_ref: Identifier
    lines: ReservationLines


class Shortage(CanonicalModel):
    """One SKU of a refused reservation: how many were asked and how many could be had."""

    sku: Sku
    requested: PositiveQuantity
    available: Quantity

    @model_validator(mode="after")
    def _is_short(self) -> Shortage:
        """A shortage with enough stock would be a bug in the ledger; say so at once."""
        if self.available >= self.requested:
            raise ValueError("available must be below requested for a shortage")
        return self


class StockReservationRefused(Message):
    """Nothing was reserved because at least one SKU is short; says which and by how much."""

    TYPE: ClassVar[str] = "stock.reservation_refused"

    reservation_id: Identifier
    channel: ChannelName
    order_ref: Identifier
    shortages: Annotated[tuple[Shortage, ...], ItemCount(1, MAX_LINES)]


class ReleaseStock(Message):
    """Give a reservation's stock back (rejection, cancellation); releasing twice is harmless."""

    TYPE: ClassVar[str] = "stock.release"

    reservation_id: Identifier
    reason: ShortText


SkuList = Annotated[tuple[Sku, ...], ItemCount(1, MAX_QUERY_SKUS)]


class AvailabilityQuery(Message):
    """A channel asks (RPC on hub.rpc) how many of some SKUs it can sell right now."""

    TYPE: ClassVar[str] = "availability.query"

    channel: ChannelName
    skus: SkuList


class Alternative(CanonicalModel):
    """An in-stock SKU to offer instead of a sold-out one (same substitution group)."""

    sku: Sku
    available: PositiveQuantity


class AvailabilityItem(CanonicalModel):
    """The answer for one SKU: sellable now, from when, by when delivered, and alternatives."""

    sku: Sku
    available: Quantity
    next_available_date: date | None = None
    promised_delivery_date: date | None = None
    alternatives: tuple[Alternative, ...] = ()


class AvailabilityAnswer(Message):
    """The reply to an AvailabilityQuery, one item per SKU asked, from the live ledger."""

    TYPE: ClassVar[str] = "availability.answer"

    channel: ChannelName
    items: Annotated[tuple[AvailabilityItem, ...], ItemCount(0, MAX_QUERY_SKUS)]
