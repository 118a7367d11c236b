"""Constrained types every message family shares, so a SKU or an amount means one thing."""

from __future__ import annotations

import math
from collections.abc import Sized
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, PydanticKnownError, core_schema

from schemas._iso import (
    COUNTRY_CODES,
    CURRENCY_CODES,
    POSTAL_CODE_NOT_USED,
    REGION_REQUIRED,
    THREE_DECIMAL_CURRENCIES,
    ZERO_DECIMAL_CURRENCIES,
)
from schemas.base import CanonicalModel
from schemas.envelope import NAME_PATTERN

__all__ = [
    "COUNTRY_CODES",
    "CURRENCY_CODES",
    "MAX_AMOUNT_DECIMALS",
    "MAX_LINES",
    "POSTAL_CODE_NOT_USED",
    "REGION_REQUIRED",
    "SKU_PATTERN",
    "Address",
    "Amount",
    "ChannelName",
    "CountryCode",
    "CurrencyCode",
    "Identifier",
    "ItemCount",
    "Money",
    "PositiveQuantity",
    "Price",
    "Quantity",
    "ShortText",
    "Sku",
    "SkuQuantity",
    "Url",
    "VatRate",
    "Version",
    "minor_units",
    "same_currency",
    "vat_converted",
]

SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$"
MAX_AMOUNT_DECIMALS = 4
MAX_LINES = 500  # lines per order, reservation, pick or shipment
_FLOAT_SIGNIFICANT_DIGITS = 15  # a float with at most 15 digits maps back to its decimal text


def _check_currency(code: str) -> str:
    if code not in CURRENCY_CODES:
        raise PydanticCustomError(
            "currency_code",
            "'{code}' is not an active ISO 4217 currency code",
            {"code": code},
        )
    return code


def _check_country(code: str) -> str:
    if code not in COUNTRY_CODES:
        raise PydanticCustomError(
            "country_code",
            "'{code}' is not an ISO 3166-1 alpha-2 country code",
            {"code": code},
        )
    return code


def _exact_float(value: Any) -> Any:
    """Turn a JSON number into Decimal by its shortest text; refuse one that text cannot carry."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PydanticCustomError("finite_number", "Input should be a finite number")
        text = repr(value)
        if len(Decimal(text).as_tuple().digits) > _FLOAT_SIGNIFICANT_DIGITS:
            raise PydanticCustomError(
                "inexact_float",
                "float {value} cannot be read as an exact decimal; send the amount as a string",
                {"value": text},
            )
        return Decimal(text)
    return value


def _plain_decimal(value: Decimal) -> Decimal:
    """Write 1E+3 as 1000, 12.500000 as 12.5000 and -0 as 0, so JSON output fits the schema."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        value = value.quantize(Decimal(1))
    elif isinstance(exponent, int) and exponent < -MAX_AMOUNT_DECIMALS:
        value = value.quantize(Decimal(1).scaleb(-MAX_AMOUNT_DECIMALS))  # exact: checked before
    return value if value else abs(value)


Sku = Annotated[str, StringConstraints(pattern=SKU_PATTERN)]
"""A stock keeping unit as the ERP names it: 1-64 characters, letters, digits and ``._/-``."""

MAX_QUANTITY = 2_147_483_647  # the hub stores counts as PostgreSQL integers
MAX_VERSION = 9_223_372_036_854_775_807  # and versions as bigints

Quantity = Annotated[int, Field(ge=0, le=MAX_QUANTITY, strict=True)]
"""A count of units that may be zero (stock on hand); a JSON integer, never a string or bool."""

PositiveQuantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY, strict=True)]
"""A count of units that must be at least one (an order line, a reservation line)."""

Version = Annotated[int, Field(ge=0, le=MAX_VERSION, strict=True)]
"""A monotonic version number, so a consumer can drop stale or out-of-order updates."""

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=200)]
"""An opaque id from some system (order id, channel order id, shipment id, ...)."""

ShortText = Annotated[str, StringConstraints(max_length=500)]
"""A human-readable line (a reason, a name); bounded so a message cannot balloon."""

Url = Annotated[str, StringConstraints(pattern=r"^https?://\S+$", max_length=2000)]
"""An http(s) URL kept as the sender wrote it (no normalisation, so it round-trips unchanged)."""

ChannelName = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
"""A channel as configured (``webshop-nl``, ``erp``); also the CloudEvents ``source``."""

CurrencyCode = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z]{3}$"),
    AfterValidator(_check_currency),
    WithJsonSchema({"type": "string", "enum": sorted(CURRENCY_CODES)}),
]
"""An ISO 4217 code of a currency goods are priced in today (``EUR``, not ``eur`` or ``EURO``)."""

CountryCode = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z]{2}$"),
    AfterValidator(_check_country),
    WithJsonSchema({"type": "string", "enum": sorted(COUNTRY_CODES)}),
]
"""An ISO 3166-1 alpha-2 country code (``GB``, not ``UK``), plus ``XK`` for Kosovo."""

Amount = Annotated[
    Decimal,
    BeforeValidator(_exact_float),
    Field(max_digits=18, decimal_places=MAX_AMOUNT_DECIMALS, allow_inf_nan=False),
    AfterValidator(_plain_decimal),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^-?\d{1,18}(\.\d{1,4})?$"},
                {"type": "number"},
            ],
            "description": "Decimal, at most 18 digits of which 4 after the point; "
            "send a string (a number only if it has at most 15 significant digits)",
        }
    ),
]
"""A money amount: Decimal, at most 4 decimals and 18 digits; a string in JSON output."""

VatRate = Annotated[
    Decimal,
    BeforeValidator(_exact_float),
    Field(ge=0, le=1, decimal_places=4, allow_inf_nan=False),
    AfterValidator(_plain_decimal),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^(0(\.\d{1,4})?|1(\.0{1,4})?)$"},
                {"type": "number", "minimum": 0, "maximum": 1},
            ],
            "description": "VAT as a fraction with at most 4 decimals: 0.21 for 21 %",
        }
    ),
]
"""A VAT rate as a fraction (``"0.21"`` for 21 %), so nobody guesses between 21 and 0.21."""


@dataclass(frozen=True)
class ItemCount:
    """Length bounds (Annotated metadata) that add no false "too short" when an item is bad."""

    min_items: int = 0
    max_items: int | None = None

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_before_validator_function(
            self._not_too_long,
            core_schema.no_info_after_validator_function(self._not_too_short, handler(source)),
        )

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["minItems"] = self.min_items
        if self.max_items is not None:
            json_schema["maxItems"] = self.max_items
        return json_schema

    def _not_too_long(self, value: Any) -> Any:
        limit = self.max_items
        if limit is not None and isinstance(value, Sized) and len(value) > limit:
            context = {"field_type": "List", "max_length": limit, "actual_length": len(value)}
            raise PydanticKnownError("too_long", context)
        return value

    def _not_too_short(self, value: Sized) -> Sized:
        if len(value) < self.min_items:
            context = {
                "field_type": "List",
                "min_length": self.min_items,
                "actual_length": len(value),
            }
            raise PydanticKnownError("too_short", context)
        return value


def minor_units(currency: str) -> int:
    """How many decimals a currency shows (JPY 0, EUR 2, KWD 3), for rounding a final price."""
    if currency in ZERO_DECIMAL_CURRENCIES:
        return 0
    if currency in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


def vat_converted(amount: Decimal, vat_rate: Decimal, currency: str, *, add: bool) -> Decimal:
    """An amount with VAT added (or taken off) at the rate, rounded half-even to the
    currency's minor units, as a channel keeping that basis shows it."""
    factor = 1 + vat_rate
    converted = amount * factor if add else amount / factor
    return converted.quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUND_HALF_EVEN)


class Money(CanonicalModel):
    """An amount in a currency: a bare number is never money, and a Decimal, never a float."""

    amount: Amount
    currency: CurrencyCode

    def rounded(self) -> Money:
        """The amount rounded half-even to the currency's minor units, as a channel shows it."""
        step = Decimal(1).scaleb(-minor_units(self.currency))
        return Money(amount=self.amount.quantize(step), currency=self.currency)


def _non_negative(money: Money) -> Money:
    if money.amount < 0:
        raise PydanticCustomError("negative_price", "a price cannot be negative")
    return money


Price = Annotated[Money, AfterValidator(_non_negative)]
"""Money that cannot be negative: a unit price or a list price (credits use plain Money)."""


def same_currency(currency: str, *amounts: Money | None) -> None:
    """Raise when any given amount is in another currency than the document's own."""
    others = sorted({m.currency for m in amounts if m is not None and m.currency != currency})
    if others:
        raise ValueError(f"amounts in {', '.join(others)} on a document in {currency}")


class SkuQuantity(CanonicalModel):
    """A number of units of one SKU: a reservation line, a kit component, a receipt line."""

    sku: Sku
    quantity: PositiveQuantity


_TEXT = StringConstraints(max_length=200)


class Address(CanonicalModel):
    """A postal address as a channel sent it; completeness is judged per country, not here."""

    name: Annotated[str, _TEXT] = ""
    company: Annotated[str, _TEXT] = ""
    line1: Annotated[str, _TEXT] = ""
    line2: Annotated[str, _TEXT] = ""
    postal_code: Annotated[str, StringConstraints(max_length=20)] = ""
    city: Annotated[str, _TEXT] = ""
    region: Annotated[str, _TEXT] = ""
    country: CountryCode
    phone: Annotated[str, StringConstraints(max_length=50)] = ""
    email: Annotated[str, StringConstraints(pattern=r"^$|^[^@\s]+@[^@\s]+$", max_length=254)] = ""

    def missing_fields_for_country(self) -> tuple[str, ...]:
        """Names of fields a carrier needs in this country but that are blank (empty = complete)."""
        required = ["name", "line1", "city"]
        if self.country not in POSTAL_CODE_NOT_USED:
            required.append("postal_code")
        if self.country in REGION_REQUIRED:
            required.append("region")
        return tuple(f for f in required if not getattr(self, f))
