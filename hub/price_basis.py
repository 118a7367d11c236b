"""Prices on the VAT basis each channel keeps, so a shop showing gross prices never shows the
ERP's net one as if it were gross (or the other way round).

The ERP's ``price.changed`` says whether its amount includes VAT and at which rate (per SKU:
books and food have reduced rates). A channel that keeps prices on the other basis gets the
amount with that VAT added or taken off, rounded to the currency's minor units as a shop shows
it; the rate stays the ERP's. Order validation compares on the same basis and rate, so an
order at the shown price is accepted.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from adapters import registry as adapter_registry
from routes.config import SALES_KINDS, HubConfig
from schemas.catalog import PriceChanged
from schemas.common import vat_converted


def channel_price_bases(config: HubConfig) -> dict[str, bool]:
    """Sales channel -> whether it keeps prices with VAT, for those whose adapter or config
    says; the adapter's fixed basis wins over a config that contradicts it."""
    bases: dict[str, bool] = {}
    for name, channel in config.channels.items():
        if channel.kind not in SALES_KINDS:
            continue
        fixed = adapter_basis(channel.adapter)
        basis = fixed if fixed is not None else channel.prices_include_vat
        if basis is not None:
            bases[name] = basis
    return bases


def adapter_basis(adapter: str) -> bool | None:
    """The one VAT basis an adapter's system keeps prices on, if it has one."""
    basis = getattr(adapter_registry.load(adapter), "prices_include_vat", None)
    return basis if isinstance(basis, bool) else None


def on_basis(data: dict[str, Any], include_vat: bool) -> dict[str, Any]:
    """``price.changed`` data with its amount on the given basis (the same dict if it is)."""
    if bool(data.get("includes_vat", True)) == include_vat:
        return data
    price = data["price"]
    amount, rate = Decimal(str(price["amount"])), Decimal(str(data["vat_rate"]))
    shown = vat_converted(amount, rate, price["currency"], add=include_vat)
    return {
        **data,
        "price": {**price, "amount": format(shown, "f")},
        "includes_vat": include_vat,
    }


class PriceBases:
    """The conversion the router applies to each channel's copy of a ``price.changed``."""

    def __init__(self, config: HubConfig | None) -> None:
        self._bases = channel_price_bases(config) if config else {}

    def converts(self, type_: str) -> bool:
        """Whether some channel may need its own copy of a message of this type."""
        return bool(self._bases) and type_ == PriceChanged.TYPE

    def as_channel_keeps_it(self, channel: str, type_: str, data: dict[str, Any]) -> dict[str, Any]:
        """The data as the channel keeps prices (unchanged for any other type or channel)."""
        basis = self._bases.get(channel)
        if basis is None or type_ != PriceChanged.TYPE:
            return data
        return on_basis(data, basis)
