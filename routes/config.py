"""The hub's config file as typed data: channels, markets, stock rules and routes.

Adding a channel is a config change checked by ``hub config check``, never a code change, so
every rule an operator can get wrong is caught here with a message that names the field.
Cross-field checks (references between sections) live in ``routes.checks``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from fnmatch import fnmatchcase
from functools import cached_property
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from routes.env import check_settings
from routes.errors import Problems
from schemas.common import COUNTRY_CODES, CURRENCY_CODES, Sku
from schemas.envelope import NAME_PATTERN

ChannelKind = Literal["erp", "webshop", "marketplace", "warehouse", "carrier", "store"]
"""What a channel is; decides which routes and which stock and order rules apply to it."""
CHANNEL_KINDS: tuple[str, ...] = get_args(ChannelKind)
"""The kinds as data, for ``kind:`` selectors and error messages."""
SALES_KINDS: frozenset[str] = frozenset({"webshop", "marketplace", "store"})
"""Kinds that sell to buyers: they need a market and receive ``stock.availability``."""


def _name(value: str) -> str:
    if not re.match(NAME_PATTERN, value):
        raise ValueError(
            f"{value!r} is not a valid name: use 1-63 lower-case letters, digits, '-' or '_', "
            "starting with a letter or digit (it becomes part of queue names and routing keys)"
        )
    return value


def _code(codes: frozenset[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if value not in codes:
            raise ValueError(f"{value!r} is not an {what}")
        return value

    return AfterValidator(check)


def _fraction(value: Decimal) -> Decimal:
    if not Decimal(0) <= value < Decimal(1):
        raise ValueError(f"vat_rate is a fraction: write 0.21 for 21% (got {value})")
    return value


def _as_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int | float | Decimal) else value


Name = Annotated[str, AfterValidator(_name)]
"""A channel or market name: safe in queue names and routing keys (``NAME_PATTERN``)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MarketConfig(_Frozen):
    """A market's commercial terms, so channels in it show the ERP's price in its currency."""

    currency: Annotated[str, _code(CURRENCY_CODES, "ISO 4217 currency code such as EUR")]
    vat_rate: Annotated[Decimal, AfterValidator(_fraction)]
    price_list: str = Field(min_length=1)
    country: Annotated[str, _code(COUNTRY_CODES, "ISO 3166-1 alpha-2 country code such as GB")]
    lead_time_days: int = Field(ge=0)
    price_tolerance: Decimal = Field(default=Decimal("0.01"), ge=0)


class StockRules(_Frozen):
    """How much of the ledger a channel may show, so no channel oversells.

    The rules apply in this order (see ``listed_quantity``): available-to-promise = on hand
    summed over ``locations`` - open reservations - ``safety_buffer`` (never below 0), then
    ``share_percent`` of that (rounded down), then the cap ``max_listed``, then the floor:
    a figure at or below ``zero_at_or_below`` is shown as 0. With ``incoming_within_days``
    the receipts the ERP expects within that many days count as well (``hub.stock.atp``).
    """

    locations: list[str] | None = Field(default=None, min_length=1)
    safety_buffer: int = Field(default=0, ge=0)
    share_percent: Decimal | None = Field(default=None, ge=0, le=100)
    max_listed: int | None = Field(default=None, ge=0)
    zero_at_or_below: int = Field(default=0, ge=0)
    sells_skus: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    incoming_within_days: int | None = Field(default=None, ge=0, le=366)
    """Sell the units the ERP expects in (its receipts at ``locations``) within this many
    days, as backorders: Pipe17's ATP = on hand - committed + future - future committed -
    buffer. Needs ``orders.on_partial_stock: backorder``; unset: on hand only."""

    def sells(self, sku: str) -> bool:
        """Whether this channel lists the SKU at all (glob patterns, case-sensitive)."""
        return any(fnmatchcase(sku, pattern) for pattern in self.sells_skus)

    def listed_quantity(self, on_hand: Mapping[str, int], reserved: int = 0) -> int:
        """The figure this channel shows, from on hand per location and open reservations."""
        total = sum(
            qty for loc, qty in on_hand.items() if self.locations is None or loc in self.locations
        )
        atp = max(0, total - reserved - self.safety_buffer)
        if self.share_percent is not None:
            atp = int(Decimal(atp) * self.share_percent / 100)
        if self.max_listed is not None:
            atp = min(atp, self.max_listed)
        return 0 if atp <= self.zero_at_or_below else atp


class OrderRules(_Frozen):
    """Per-channel order policy, so a silent ERP or warehouse leads to a retry, not a hang."""

    on_partial_stock: Literal["reject", "backorder"] = "reject"
    max_backordered: int | None = Field(default=None, ge=0)
    """With ``backorder``: an order is taken only while at most this many units of each of
    its SKUs are promised beyond the stock (every open backorder, the ERP's included); one
    that would go beyond is refused (unset: no limit)."""
    erp_timeout_seconds: float = Field(default=300, gt=0)
    warehouse_timeout_seconds: float = Field(default=3600, gt=0)
    max_retries: int = Field(default=3, ge=0)
    on_timeout: Literal["reject", "stall"] = "reject"
    """Once retries are spent: reject and release the stock (if nothing is packed) or stall."""


MIN_BOLCOM_POLL_S = 60.0
"""How often the hub may poll bol.com at most (off loopback, where tests poll faster)."""
BOLCOM_POLL_PAGES = 20
"""Pages of open orders a bol.com poll reads by default (``poll_pages``)."""
BOLCOM_RETURN_PAGES = 4
"""Pages of unhandled returns a bol.com poll reads."""


def _loopback(url: str) -> bool:
    """Whether a URL points at this machine (where plain http carries no key off it)."""
    host = urlsplit(url).hostname or ""
    return host in {"localhost", "127.0.0.1", "::1"}


class DeliveryConfig(_Frozen):
    """How messages reach a channel: its own adapter on AMQP, or the hub's rate-limited HTTP."""

    transport: Literal["amqp", "http"] = "amqp"
    url: str | None = None
    rate_per_second: float = Field(default=10, gt=0)
    burst: int = Field(default=20, ge=1)
    coalesce_stock: bool = True
    api: bool = False
    """Call the system's own REST API at ``url`` (its paths, id lookups and the channel's API
    key from ``settings``) instead of POSTing each payload to ``url`` (the adapters with a
    client: ``hub.delivery.calls.API_CLIENTS``)."""

    @model_validator(mode="after")
    def _url_matches_transport(self) -> DeliveryConfig:
        if self.transport == "http" and not self.url:
            raise Problems([(("url",), "transport 'http' needs a url to deliver to")])
        if self.transport == "http" and not str(self.url).startswith(("http://", "https://")):
            raise Problems([(("url",), f"url {self.url!r} must start with http:// or https://")])
        if self.transport == "amqp" and self.url:
            raise Problems([(("url",), "url is only used with transport 'http'; remove it")])
        if self.transport == "amqp" and self.api:
            raise Problems([(("api",), "api is only used with transport 'http'; remove it")])
        if self.api and str(self.url).startswith("http://") and not _loopback(str(self.url)):
            raise Problems(
                [(("url",), "api sends the channel's API key: its url must be https://")]
            )
        return self


class ChannelConfig(_Frozen):
    """One system on the bus (ERP, shop, marketplace, warehouse, carrier) and its rules."""

    kind: ChannelKind
    adapter: str = Field(min_length=1, pattern=r"^\S+$")
    market: str | None = None
    stock: StockRules = Field(default_factory=StockRules)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    orders: OrderRules = Field(default_factory=OrderRules)
    settings: dict[str, str] = Field(default_factory=dict)
    sku_map: dict[Sku, Sku] = Field(default_factory=dict)
    """The channel's own SKU -> the ERP's, for listings under another code (EAN, listing id)."""
    prices_include_vat: bool | None = None
    """Whether the channel keeps prices with VAT (a shop's "prices include tax" setting), so
    the hub turns the ERP's net or gross price into that; unset, the price goes as the ERP sent
    it and the channel reads ``includes_vat``. An adapter with one fixed basis (bol.com) wins."""

    @cached_property
    def skus_to_channel(self) -> dict[str, str]:
        """The ERP's SKU -> this channel's (the reverse of ``sku_map``)."""
        return {erp: own for own, erp in self.sku_map.items()}

    @field_validator("settings", mode="before")
    @classmethod
    def _scalars_as_text(cls, value: Any) -> Any:
        # YAML reads `port: 8069` as a number; settings are text, so accept it as written.
        if not isinstance(value, dict):
            return value
        return {k: _as_text(v) for k, v in value.items()}

    @field_validator("settings")
    @classmethod
    def _secrets_from_env(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        env = info.context.get("env") if isinstance(info.context, dict) else None
        resolved, problems = check_settings(value, env)
        if problems:
            raise Problems(problems)
        return resolved

    @model_validator(mode="after")
    def _sales_channels_have_a_market(self) -> ChannelConfig:
        if self.kind in SALES_KINDS and self.market is None:
            raise Problems(
                [(("market",), f"a {self.kind} channel sells in a market: name one in 'market'")]
            )
        return self

    @model_validator(mode="after")
    def _incoming_sold_as_backorders(self) -> ChannelConfig:
        if self.stock.incoming_within_days is None:
            return self
        if self.orders.on_partial_stock != "backorder":
            message = (
                "units still to come can only be ordered as backorders:"
                " set orders.on_partial_stock to backorder, or remove this"
            )
            raise Problems([(("stock", "incoming_within_days"), message)])
        if self.orders.max_backordered is not None:
            message = (
                "the receipts due already limit what is promised beyond the stock:"
                " remove orders.max_backordered, or this"
            )
            raise Problems([(("stock", "incoming_within_days"), message)])
        return self

    @model_validator(mode="after")
    def _only_sales_channels_show_prices(self) -> ChannelConfig:
        if self.prices_include_vat is not None and self.kind not in SALES_KINDS:
            raise Problems(
                [(("prices_include_vat",), f"a {self.kind} channel shows no prices: remove it")]
            )
        return self

    @model_validator(mode="after")
    def _login_url_is_https(self) -> ChannelConfig:
        login_url = self.settings.get("login_url", "")
        scheme = urlsplit(login_url).scheme.lower()
        plain = scheme == "http" and _loopback(login_url)
        if login_url and scheme != "https" and not plain:
            raise Problems(
                [(("settings", "login_url"), "the API secret goes there: it must be https://")]
            )
        return self

    @model_validator(mode="after")
    def _bolcom_polled_within_its_limits(self) -> ChannelConfig:
        if self.adapter != "bolcom":
            return self
        pages_raw = self.settings.get("poll_pages", "") or str(BOLCOM_POLL_PAGES)
        if not (pages_raw.isascii() and pages_raw.isdigit() and int(pages_raw) >= 1):
            raise Problems([(("settings", "poll_pages"), "must be a positive whole number")])
        raw = self.settings.get("poll_s", "")
        try:
            poll_s = float(raw) if raw else None
        except ValueError:
            return self  # the client's own check names a value that is not seconds
        # A poll lists up to poll_pages pages of orders and the pages of returns; bol.com
        # allows about 25 list calls a minute.
        lists = int(pages_raw) + BOLCOM_RETURN_PAGES
        floor = max(MIN_BOLCOM_POLL_S, lists * 60 / 25)
        url = str(self.delivery.url or "")
        if poll_s is not None and 0 < poll_s < floor and not _loopback(url):
            message = (
                f"bol.com allows about 25 list calls a minute, and a poll makes up to"
                f" {lists}: poll at most every {floor:.0f} seconds"
            )
            raise Problems([(("settings", "poll_s"), message)])
        return self

    @model_validator(mode="after")
    def _sku_map_is_one_to_one(self) -> ChannelConfig:
        if self.sku_map and self.kind == "erp":
            raise Problems([(("sku_map",), "the ERP's SKUs are the hub's: it has no sku_map")])
        seen: dict[str, str] = {}
        for own, erp in self.sku_map.items():
            if erp in seen:
                raise Problems(
                    [(("sku_map", own), f"{own!r} and {seen[erp]!r} both map to {erp!r}")]
                )
            seen[erp] = own
        for own, erp in self.sku_map.items():
            if own in seen and own != erp:  # the channel's name for one, the ERP's for another
                raise Problems(
                    [(("sku_map", own), f"{own!r} is the ERP's SKU of {seen[own]!r}'s product too")]
                )
        return self


class RouteFilter(_Frozen):
    """Conditions on a message's data; a route applies only when all that are set hold."""

    markets: list[str] | None = Field(default=None, min_length=1)
    sku_patterns: list[str] | None = Field(default=None, min_length=1)
    min_order_value: Decimal | None = Field(default=None, ge=0)
    max_order_value: Decimal | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _range_is_ordered(self) -> RouteFilter:
        lo, hi = self.min_order_value, self.max_order_value
        if lo is not None and hi is not None and lo > hi:
            raise Problems(
                [(("min_order_value",), f"min_order_value {lo} is above max_order_value {hi}")]
            )
        return self

    def admits(self, market: str | None, skus: tuple[str, ...], value: Decimal | None) -> bool:
        """Whether a message passes; a condition on data the message lacks fails (closed)."""
        if self.markets is not None and market not in self.markets:
            return False
        if self.sku_patterns is not None and not any(
            fnmatchcase(sku, p) for sku in skus for p in self.sku_patterns
        ):
            return False
        if self.min_order_value is not None and (value is None or value < self.min_order_value):
            return False
        return not (
            self.max_order_value is not None and (value is None or value > self.max_order_value)
        )


class RouteConfig(_Frozen):
    """Which message types from which sources go to which channels, as data."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True
    )

    name: str = Field(min_length=1, max_length=100)
    types: list[str] = Field(min_length=1)
    from_: list[str] = Field(alias="from", min_length=1)
    to: list[str] = Field(min_length=1)
    filters: RouteFilter | None = None


class DefaultsConfig(_Frozen):
    """Sections every channel inherits field by field, so common policy is written once."""

    stock: StockRules | None = None
    delivery: DeliveryConfig | None = None
    orders: OrderRules | None = None


_SECTIONS: dict[str, type[BaseModel]] = {
    "stock": StockRules,
    "delivery": DeliveryConfig,
    "orders": OrderRules,
}


class HubConfig(_Frozen):
    """The whole hub config: the single place channels, markets and routes are declared."""

    version: Literal[1]
    channels: dict[Name, ChannelConfig]
    routes: list[RouteConfig] = Field(default_factory=list)
    markets: dict[Name, MarketConfig] = Field(default_factory=dict)
    defaults: DefaultsConfig = Field(default_factory=DefaultsConfig)

    @model_validator(mode="before")
    @classmethod
    def _apply_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        defaults, channels = data.get("defaults"), data.get("channels")
        if not isinstance(defaults, dict) or not isinstance(channels, dict):
            return data
        usable: dict[str, dict[str, Any]] = {}
        for section, model in _SECTIONS.items():
            raw = defaults.get(section)
            if not isinstance(raw, dict):
                continue
            try:  # a broken default is reported once, under defaults, not once per channel
                model.model_validate(raw)
            except ValidationError:
                continue
            usable[section] = raw
        merged: dict[Any, Any] = {}
        for name, channel in channels.items():
            if isinstance(channel, dict):
                channel = dict(channel)
                for section, raw in usable.items():
                    own = channel.get(section, {})
                    if isinstance(own, dict):
                        channel[section] = {**raw, **own}
            merged[name] = channel
        return {**data, "channels": merged}

    @model_validator(mode="after")
    def _references_hold(self) -> HubConfig:
        from routes.checks import cross_check

        problems = cross_check(self.model_dump(by_alias=True))
        if problems:
            raise Problems(problems)
        return self

    @property
    def erp(self) -> str:
        """The ERP channel's name: the source of truth that orders are sent to."""
        return next(name for name, ch in self.channels.items() if ch.kind == "erp")

    def channels_of_kind(self, kind: str) -> tuple[str, ...]:
        """Channel names of one kind, in config order (what a ``kind:`` selector expands to)."""
        return tuple(name for name, ch in self.channels.items() if ch.kind == kind)
