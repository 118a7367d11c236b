"""Catalog messages: the ERP's product data and prices, sent identically to every channel."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import AwareDatetime, StringConstraints, field_validator, model_validator

from schemas.base import Message
from schemas.common import (
    Identifier,
    Price,
    Quantity,
    Sku,
    SkuQuantity,
    Url,
    VatRate,
    Version,
)

AttributeName = Annotated[str, StringConstraints(min_length=1, max_length=100)]
AttributeValue = Annotated[str, StringConstraints(max_length=1000)]
Gtin = Annotated[str, StringConstraints(pattern=r"^(\d{8}|\d{12,14})$")]


def gtin_check_digit_ok(gtin: str) -> bool:
    """True when the GS1 check digit of a GTIN-8/12/13/14 (EAN, UPC) is right."""
    digits = [int(c) for c in gtin]
    body, check = digits[:-1], digits[-1]
    weighted = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - weighted % 10) % 10 == check


class ProductUpserted(Message):
    """The ERP's current data for one product; channels list it as is (latest version wins)."""

    TYPE: ClassVar[str] = "product.upserted"

    sku: Sku
    name: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    description: Annotated[str, StringConstraints(max_length=20_000)] | None = None
    brand: Annotated[str, StringConstraints(max_length=200)] | None = None
    gtin: Gtin | None = None
    attributes: dict[AttributeName, AttributeValue] = {}
    substitution_group: Identifier | None = None
    components: tuple[SkuQuantity, ...] = ()
    weight_grams: Quantity | None = None
    image_urls: tuple[Url, ...] = ()
    active: bool = True
    version: Version

    @field_validator("gtin")
    @classmethod
    def _gtin_check_digit(cls, gtin: str | None) -> str | None:
        """A GTIN with a wrong check digit is a typo that marketplaces refuse; catch it here."""
        if gtin is not None and not gtin_check_digit_ok(gtin):
            raise ValueError(f"GTIN {gtin} has a wrong check digit")
        return gtin

    @model_validator(mode="after")
    def _components_sane(self) -> ProductUpserted:
        """A kit lists each component once and never itself, or its stock cannot be computed."""
        skus = [c.sku for c in self.components]
        if len(set(skus)) != len(skus):
            raise ValueError("a kit lists a component SKU more than once")
        if self.sku in skus:
            raise ValueError("a kit cannot contain itself")
        return self

    @property
    def is_kit(self) -> bool:
        """True for a kit or bundle, whose stock is derived from its components."""
        return bool(self.components)


class PriceChanged(Message):
    """The price of a SKU in one price list (market), so every channel shows the ERP's price."""

    TYPE: ClassVar[str] = "price.changed"

    sku: Sku
    price_list: Identifier
    price: Price
    includes_vat: bool = True
    vat_rate: VatRate
    valid_from: AwareDatetime | None = None
    version: Version
