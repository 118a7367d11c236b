"""Odoo (the ERP): stock quants, products and confirmed sales orders in, as canonical messages.

Payloads are records as Odoo's ``read()`` returns them over JSON-RPC: a many2one is
``[id, "display name"]``, an empty field is ``false``, a quantity is a float and a datetime is
UTC text without an offset (``"2024-05-02 12:31:07"``). Native event names are the model
names with ``-`` for ``.``: ``stock-quant``, ``product-product``, ``sale-order``.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal

from adapters._native import Native
from adapters.base import TranslationError
from adapters.table import Reads
from schemas.catalog import ProductUpserted
from schemas.erp import SalesOrderCreated
from schemas.inventory import StockLevel

CONFIRMED_STATES = frozenset({"sale", "done"})
_CODED_NAME = re.compile(r"^\[([^\]]+)\]")  # Odoo shows a product as "[default_code] name"


def _many2one_name(record: Native, key: str) -> str:
    """The display name of a many2one (``[8, "WH/Stock"]``)."""
    value = record.raw(key)
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[1], str)):
        raise TranslationError(f"{record.where(key)}: expected [id, name], got {value!r}")
    return value[1]


def _version(record: Native) -> int:
    """Odoo keeps no version counter; ``write_date`` in whole seconds is the nearest thing."""
    return int(record.timestamp("write_date").timestamp())


def stock_level(quant: Native) -> StockLevel:
    """A quant (product, location, quantity) as the absolute stock of a SKU at a location."""
    product = _many2one_name(quant, "product_id")
    coded = _CODED_NAME.match(product)
    if coded is None:
        raise TranslationError(
            f"{quant.where('product_id')}: {product!r} has no [internal reference] to use as SKU"
        )
    return StockLevel.model_validate(
        {
            "sku": coded.group(1).strip(),
            "location": _many2one_name(quant, "location_id"),
            "on_hand": quant.integer("quantity"),
            "committed": quant.integer("reserved_quantity")
            if quant.raw("reserved_quantity") is not None
            else 0,
            "version": _version(quant),
        }
    )


def _grams(product: Native) -> int | None:
    """Odoo weighs in kilograms (a float); the canonical product in whole grams."""
    kilograms = product.optional_decimal("weight")
    if not kilograms:
        return None
    return int((kilograms * 1000).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def product_upserted(product: Native) -> ProductUpserted:
    """A product variant as the ERP's product data, its internal reference as the SKU."""
    return ProductUpserted.model_validate(
        {
            "sku": product.text("default_code"),
            "name": product.text("name"),
            "description": product.optional_text("description_sale") or None,
            "gtin": product.optional_text("barcode") or None,
            "weight_grams": _grams(product),
            "active": product.flag("active", default=True),
            "version": _version(product),
        }
    )


def sales_order_created(order: Native) -> SalesOrderCreated:
    """A confirmed sale.order: the hub's order id is in ``origin``, the ERP number in ``name``."""
    state = order.text("state")
    if state not in CONFIRMED_STATES:
        raise TranslationError(f"{order.where('state')}: {state!r} is not a confirmed order")
    return SalesOrderCreated(order_id=order.text("origin"), erp_order_number=order.text("name"))


def _quant(record: Native, _channel: str) -> StockLevel:
    return stock_level(record)


def _product(record: Native, _channel: str) -> ProductUpserted:
    return product_upserted(record)


def _sale_order(record: Native, _channel: str) -> SalesOrderCreated:
    return sales_order_created(record)


TRANSLATOR = Reads(
    "odoo",
    readers={"stock-quant": _quant, "product-product": _product, "sale-order": _sale_order},
)
"""Odoo as the source of truth: its stock, products and sales order numbers to the hub."""
