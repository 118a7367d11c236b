"""Canonical message types of the bus; import the common names from here."""

from schemas.base import CanonicalModel, Message
from schemas.billing import InvoiceIssued
from schemas.catalog import PriceChanged, ProductUpserted
from schemas.common import (
    Address,
    ChannelName,
    CountryCode,
    CurrencyCode,
    Money,
    PositiveQuantity,
    Price,
    Quantity,
    Sku,
    SkuQuantity,
    VatRate,
)
from schemas.envelope import CloudEvent, new_event
from schemas.erp import SalesOrderCancel, SalesOrderCreate, SalesOrderCreated, SalesOrderRefused
from schemas.export import export_json_schemas
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
    OrderLine,
    OrderPlaced,
    OrderRejected,
    OrderStatus,
    Reason,
)
from schemas.registry import CANONICAL_TYPES, model_for
from schemas.returns import ReturnReceived, ReturnRequested

__all__ = [
    "CANONICAL_TYPES",
    "Address",
    "AvailabilityAnswer",
    "AvailabilityQuery",
    "CanonicalModel",
    "ChannelName",
    "CloudEvent",
    "CountryCode",
    "CurrencyCode",
    "InvoiceIssued",
    "Message",
    "Money",
    "OrderAccepted",
    "OrderCancelled",
    "OrderLine",
    "OrderPlaced",
    "OrderRejected",
    "OrderStatus",
    "PickCancel",
    "PickCompleted",
    "PickRequest",
    "PositiveQuantity",
    "Price",
    "PriceChanged",
    "ProductUpserted",
    "Quantity",
    "Reason",
    "ReleaseStock",
    "ReserveStock",
    "ReturnReceived",
    "ReturnRequested",
    "SalesOrderCancel",
    "SalesOrderCreate",
    "SalesOrderCreated",
    "SalesOrderRefused",
    "ShipmentCancel",
    "ShipmentCreated",
    "ShipmentRequest",
    "ShipmentTracking",
    "Sku",
    "SkuQuantity",
    "StockAvailability",
    "StockLevel",
    "StockReservationRefused",
    "StockReserved",
    "VatRate",
    "export_json_schemas",
    "model_for",
    "new_event",
]
