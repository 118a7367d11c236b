"""The canonical type table: a CloudEvents ``type`` name to the model its ``data`` must fit."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from schemas.base import Message
from schemas.billing import InvoiceIssued
from schemas.catalog import PriceChanged, ProductUpserted
from schemas.envelope import TYPE_PATTERN
from schemas.erp import SalesOrderCancel, SalesOrderCreate, SalesOrderCreated, SalesOrderRefused
from schemas.fulfilment import (
    PickCancel,
    PickCompleted,
    PickRequest,
    ShipmentCancel,
    ShipmentCreated,
    ShipmentRequest,
    ShipmentTracking,
)
from schemas.inventory import (
    AvailabilityAnswer,
    AvailabilityQuery,
    ReleaseStock,
    ReserveStock,
    StockAvailability,
    StockLevel,
    StockReservationRefused,
    StockReserved,
)
from schemas.orders import (
    OrderAccepted,
    OrderCancelled,
    OrderPlaced,
    OrderRejected,
    OrderStatus,
)
from schemas.returns import ReturnReceived, ReturnRequested

MESSAGE_CLASSES: tuple[type[Message], ...] = (
    ProductUpserted,
    PriceChanged,
    StockLevel,
    StockAvailability,
    ReserveStock,
    StockReserved,
    StockReservationRefused,
    ReleaseStock,
    AvailabilityQuery,
    AvailabilityAnswer,
    OrderPlaced,
    OrderAccepted,
    OrderRejected,
    OrderCancelled,
    OrderStatus,
    SalesOrderCreate,
    SalesOrderCreated,
    SalesOrderRefused,
    SalesOrderCancel,
    PickRequest,
    PickCompleted,
    PickCancel,
    ShipmentRequest,
    ShipmentCancel,
    ShipmentCreated,
    ShipmentTracking,
    InvoiceIssued,
    ReturnRequested,
    ReturnReceived,
)


def build_registry(classes: Iterable[type[Message]]) -> Mapping[str, type[Message]]:
    """Index classes by TYPE; refuse a blank, malformed or duplicate name (at import time)."""
    table: dict[str, type[Message]] = {}
    for cls in classes:
        name = cls.TYPE
        if not re.fullmatch(TYPE_PATTERN, name) or name.startswith("native."):
            raise RuntimeError(f"{cls.__name__}.TYPE {name!r} is not a canonical type name")
        if name in table:
            raise RuntimeError(f"{cls.__name__} and {table[name].__name__} both claim {name!r}")
        table[name] = cls
    return MappingProxyType(table)


CANONICAL_TYPES: Mapping[str, type[Message]] = build_registry(MESSAGE_CLASSES)
"""Every canonical type on the bus, read-only: ``CANONICAL_TYPES["order.placed"]``."""


def model_for(type_name: str) -> type[Message] | None:
    """The model for a canonical type, or None (a native or unknown type: not ours to validate)."""
    return CANONICAL_TYPES.get(type_name)
