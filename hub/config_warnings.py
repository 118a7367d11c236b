"""What a valid config will do that its author may not mean: said by ``hub config check``.

A channel delivered over HTTP gets each message in its adapter's native form; a type its
adapter cannot write is parked as ``not_deliverable`` every time one arrives. Such a route is
not an error (an ``origin`` route reaches every sales channel, and some types a marketplace
simply has no API for), but the operator should know before the first order is parked.
Likewise markets of different VAT rates sharing one price list, prices that go to a shop
on a VAT basis nobody stated, HTTP delivery settings on a channel its own adapter serves,
order rules written where the hub does not read them, a request the hub sends with no route
for the message that withdraws it (a config written before that message existed), and an
API client whose credentials are empty.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from pydantic import BaseModel

from adapters import registry as adapter_registry
from adapters.base import OutboundTranslator
from hub.delivery.calls import API_CREDENTIALS
from hub.price_basis import adapter_basis
from routes.checks import ANY, HUB, KIND_PREFIX, ORIGIN, is_pattern
from routes.config import SALES_KINDS, ChannelConfig, HubConfig, OrderRules
from routes.matching import RouteTable
from schemas.catalog import PriceChanged
from schemas.registry import CANONICAL_TYPES

HTTP_ONLY = ("rate_per_second", "burst", "coalesce_stock")
"""Delivery settings only the hub's HTTP worker reads; an adapter process paces itself."""

AWAITED = {"erp", "warehouse", "carrier"}
"""The kinds whose answers an order waits for; their ``orders`` rules time the wait."""
ORDER_RULES_READ: dict[str, frozenset[str]] = {
    "erp": frozenset({"erp_timeout_seconds", "max_retries", "on_timeout"}),
    "warehouse": frozenset({"warehouse_timeout_seconds", "max_retries", "on_timeout"}),
    "carrier": frozenset({"warehouse_timeout_seconds", "max_retries", "on_timeout"}),
}
"""The ``orders`` fields the hub reads for each kind the order waits on."""
WITHDRAWN_BY = {
    "salesorder.create": "salesorder.cancel",
    "pick.request": "pick.cancel",
    "shipment.request": "shipment.cancel",
}
"""A request the order process sends, and the message that withdraws it when the order is
cancelled."""
SELLING_RULES = frozenset({"on_partial_stock", "max_backordered"})
"""The ``orders`` fields the hub reads for a sales channel: its backorder policy."""


def config_warnings(config: HubConfig) -> list[str]:
    """One line per HTTP channel whose routes send it types its adapter cannot write, and per
    market that shares a price list with a market of another VAT rate."""
    warnings: list[str] = _shared_lists_across_vat(config) + _unwithdrawable(config)
    for name, channel in config.channels.items():
        warnings.extend(_price_basis(config, name, channel))
        warnings.extend(_unread_order_rules(config, name, channel))
        if channel.delivery.transport != "http":
            warnings.extend(_http_only_settings(config, name, channel))
            continue
        warnings.extend(_missing_credentials(name, channel))
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


def _missing_credentials(name: str, channel: ChannelConfig) -> list[str]:
    """An API client whose key settings are empty (an environment variable not set): every
    call would be refused and each message parked."""
    if not channel.delivery.api:
        return []
    missing = [
        key for key in API_CREDENTIALS.get(channel.adapter, ()) if not channel.settings.get(key)
    ]
    if not missing:
        return []
    return [
        f"channels.{name}.settings: the {channel.adapter} API is called without"
        f" {', '.join(missing)}: each call will be refused and its message parked"
    ]


def _unwithdrawable(config: HubConfig) -> list[str]:
    """A request the hub routes somewhere whose withdrawal no route takes: a cancelled order
    would leave it standing there (its goods picked, its parcel labelled)."""
    table = RouteTable.from_config(config)
    return [
        f"routes send {request} from the hub but none sends {withdrawal}: a cancelled"
        f" order's {request} is never withdrawn; route {withdrawal} from: [hub] to where"
        f" {request} goes"
        for request, withdrawal in WITHDRAWN_BY.items()
        if table.routed(HUB, request) and not table.routed(HUB, withdrawal)
    ]


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


def _price_basis(config: HubConfig, name: str, channel: ChannelConfig) -> list[str]:
    """A basis the adapter overrides, or a shop written to over HTTP whose basis nobody gave
    (its writer sends the amount as it is, so a net list would show as the gross price)."""
    fixed = adapter_basis(channel.adapter) if channel.kind in SALES_KINDS else None
    stated = channel.prices_include_vat
    if fixed is not None and stated is not None and stated != fixed:
        return [
            f"channels.{name}.prices_include_vat: adapter {channel.adapter!r} keeps prices"
            f" {'with' if fixed else 'without'} VAT; the hub sends them so, not as set here"
        ]
    if fixed is not None or stated is not None or channel.delivery.transport != "http":
        return []
    translator = adapter_registry.load(channel.adapter)
    if not isinstance(translator, OutboundTranslator):
        return []
    if PriceChanged.TYPE not in translator.outbound_types() or not any(
        _reaches(route.to, name, channel) and PriceChanged.TYPE in _types(route.types)
        for route in config.routes
    ):
        return []
    return [
        f"channels.{name}.prices_include_vat: not set, so the ERP's prices reach"
        f" {channel.adapter!r} as they are, net or gross: set it to the shop's"
        " 'prices include tax' setting and the hub converts them"
    ]


def _http_only_settings(config: HubConfig, name: str, channel: ChannelConfig) -> list[str]:
    """Delivery settings written for a channel whose own adapter process consumes its queue
    (the ``defaults`` every channel inherits are policy for the HTTP ones, not a mistake)."""
    written = _written(channel.delivery, config.defaults.delivery, HTTP_ONLY)
    if not written:
        return []
    return [
        f"channels.{name}.delivery: {', '.join(written)}"
        f" {'applies' if len(written) == 1 else 'apply'} only with transport 'http';"
        " the channel's adapter process consumes hub.out."
        f"{name} and paces itself"
    ]


def _unread_order_rules(config: HubConfig, name: str, channel: ChannelConfig) -> list[str]:
    """``orders`` fields the hub never reads for this channel: the timeouts of the system an
    order waits for are that system's (the first of its kind's), the backorder policy the
    selling channel's."""
    read = ORDER_RULES_READ.get(channel.kind, SELLING_RULES)
    fields = set(OrderRules.model_fields)
    written = _written(channel.orders, config.defaults.orders, fields)
    found: list[str] = []
    unread = [field for field in written if field not in read]
    for group, where in (
        ([f for f in unread if f in SELLING_RULES], "the selling channel"),
        ([f for f in unread if f not in SELLING_RULES], "the ERP, warehouse or carrier awaited"),
    ):
        if group:
            found.append(
                f"channels.{name}.orders: {', '.join(group)} not read for a {channel.kind}"
                f" channel; the hub reads {'it' if len(group) == 1 else 'them'} on {where}"
            )
    first = config.channels_of_kind(channel.kind)[0]
    own = [field for field in written if field in read]
    if channel.kind in AWAITED and first != name and own:
        found.append(
            f"channels.{name}.orders: {', '.join(own)} not read: orders wait on the rules of"
            f" the first {channel.kind}, {first!r}"
        )
    return found


def _written(section: BaseModel, inherited: BaseModel | None, fields: Iterable[str]) -> list[str]:
    """The fields a channel's section sets itself, not as inherited from ``defaults``."""
    return sorted(
        field
        for field in set(fields) & section.model_fields_set
        if inherited is None
        or field not in inherited.model_fields_set
        or getattr(inherited, field) != getattr(section, field)
    )


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
