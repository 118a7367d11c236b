"""What a valid config will do that its author may not mean: said by ``hub config check``.

A channel delivered over HTTP gets each message in its adapter's native form; a type its
adapter cannot write is parked as ``not_deliverable`` every time one arrives. Such a route is
not an error (an ``origin`` route reaches every sales channel, and some types a marketplace
simply has no API for), but the operator should know before the first order is parked.
Likewise markets of different VAT rates sharing one price list.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from adapters import registry as adapter_registry
from adapters.base import OutboundTranslator
from routes.checks import ANY, KIND_PREFIX, ORIGIN, is_pattern
from routes.config import SALES_KINDS, ChannelConfig, HubConfig
from schemas.registry import CANONICAL_TYPES


def config_warnings(config: HubConfig) -> list[str]:
    """One line per HTTP channel whose routes send it types its adapter cannot write, and per
    market that shares a price list with a market of another VAT rate."""
    warnings: list[str] = _shared_lists_across_vat(config)
    for name, channel in config.channels.items():
        if channel.delivery.transport != "http":
            continue
        translator = adapter_registry.load(channel.adapter)
        if not isinstance(translator, OutboundTranslator):
            continue  # canonical: the event goes as it is
        writable = translator.outbound_types()
        unwritable: dict[str, list[str]] = {}
        for route in config.routes:
            if not _reaches(route.to, name, channel):
                continue
            for type_ in _types(route.types):
                if type_ not in writable:
                    unwritable.setdefault(type_, []).append(route.name)
        if unwritable:
            listed = ", ".join(f"{t} ({', '.join(r)})" for t, r in sorted(unwritable.items()))
            warnings.append(
                f"channels.{name}.delivery: adapter {channel.adapter!r} cannot write {listed};"
                " over HTTP each such message is parked as not_deliverable"
            )
    return warnings


def _shared_lists_across_vat(config: HubConfig) -> list[str]:
    """Orders are checked against the VAT rates the price list carries, one per SKU: markets
    of different rates (NL 21%, LU 17%) sharing a list would see one market's orders that
    state their VAT refused as vat_mismatch, and its net prices compared at the other rate."""
    first: dict[str, tuple[str, object]] = {}
    found: list[str] = []
    for name, market in config.markets.items():
        other, rate = first.setdefault(market.price_list, (name, market.vat_rate))
        if rate != market.vat_rate:
            found.append(
                f"markets.{name}.vat_rate: {market.vat_rate} differs from market {other!r}"
                f" ({rate}), which shares price list {market.price_list!r}: give each its own"
                " list, or its orders are checked at the list's VAT rates"
            )
    return found


def _reaches(targets: list[str], name: str, channel: ChannelConfig) -> bool:
    for target in targets:
        if target in (name, ANY, f"{KIND_PREFIX}{channel.kind}"):
            return True
        if target == ORIGIN and channel.kind in SALES_KINDS:
            return True
    return False


def _types(types: list[str]) -> list[str]:
    """The canonical types a route's type list names (native types are never delivered)."""
    found: list[str] = []
    for type_ in types:
        if is_pattern(type_):
            found.extend(t for t in sorted(CANONICAL_TYPES) if fnmatchcase(t, type_))
        elif type_ in CANONICAL_TYPES:
            found.append(type_)
    return found
