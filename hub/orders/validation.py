"""Checking a channel's order against the ERP's catalog and the channel's market, as pure code.

Every rule that fails adds a ``Reason``; the channel gets all of them at once, so a merchant
fixes the order in one go instead of learning one problem per round trip.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from routes.config import MarketConfig
from schemas.common import vat_converted
from schemas.orders import OrderLine, OrderPlaced, Reason

MAX_LINE_QUANTITY = 9_999
"""More units than this on one line is a typo or an abuse, not an order; refuse it."""


@dataclass(frozen=True)
class ListPrice:
    """The ERP's price of a SKU in one price list, as the price projection stores it."""

    amount: Decimal
    currency: str
    includes_vat: bool
    vat_rate: Decimal


@dataclass(frozen=True)
class Catalog:
    """What the hub knows of the SKUs an order names: which exist and their list prices."""

    known: frozenset[str]
    prices: Mapping[str, ListPrice]


def comparable_price(price: ListPrice, include_vat: bool) -> Decimal:
    """The list price on the same VAT basis as the order's prices, rounded to the currency's
    minor units as a channel keeping that basis is shown it (``hub.price_basis``)."""
    if price.includes_vat == include_vat:
        return price.amount
    return vat_converted(price.amount, price.vat_rate, price.currency, add=include_vat)


def validate_order(order: OrderPlaced, market: MarketConfig, catalog: Catalog) -> list[Reason]:
    """Every reason the order cannot be taken; an empty list means it is valid."""
    reasons: list[Reason] = []
    if order.currency != market.currency:
        reasons.append(
            Reason(
                code="currency_mismatch",
                message=f"order is in {order.currency}, the channel's market sells in "
                f"{market.currency}",
            )
        )
    for line in order.lines:
        reasons.extend(_line_reasons(order, line, market, catalog))
    missing = order.shipping_address.missing_fields_for_country()
    if missing:
        reasons.append(
            Reason(
                code="address_incomplete",
                message=f"shipping address in {order.shipping_address.country} lacks "
                f"{', '.join(missing)}",
            )
        )
    return reasons


def _line_reasons(
    order: OrderPlaced, line: OrderLine, market: MarketConfig, catalog: Catalog
) -> list[Reason]:
    where = {"line_id": line.line_id, "sku": line.sku}
    if line.sku not in catalog.known:
        return [Reason(code="unknown_sku", message=f"SKU {line.sku} is not known", **where)]
    reasons: list[Reason] = []
    if not 0 < line.quantity <= MAX_LINE_QUANTITY:
        reasons.append(
            Reason(
                code="invalid_quantity",
                message=f"quantity {line.quantity} is not between 1 and {MAX_LINE_QUANTITY}",
                **where,
            )
        )
    price = catalog.prices.get(line.sku)
    if price is None or price.currency != market.currency:
        reasons.append(
            Reason(
                code="price_mismatch",
                message=f"SKU {line.sku} has no price in price list {market.price_list}",
                **where,
            )
        )
        return reasons
    expected_vat = price.vat_rate
    if line.vat_rate is not None and line.vat_rate != expected_vat:
        reasons.append(
            Reason(
                code="vat_mismatch",
                message=f"VAT rate {line.vat_rate} differs from the list's {expected_vat}",
                **where,
            )
        )
    expected = comparable_price(price, order.prices_include_vat)
    if abs(line.unit_price.amount - expected) > market.price_tolerance:
        reasons.append(
            Reason(
                code="price_mismatch",
                message=f"unit price {line.unit_price.amount} differs from the list price "
                f"{expected.quantize(Decimal('0.01'))} {price.currency} "
                f"(tolerance {market.price_tolerance})",
                **where,
            )
        )
    return reasons
