"""Routing as a pure function: (source, type, message facts) -> destination channels.

The table is precomputed from a ``HubConfig``; a lookup without data filters is one dict hit,
so routing costs nothing on the hot path and is tested without a broker.

Rules, in order: a route applies when its ``from`` selects the source, one of its ``types``
matches, and its ``filters`` admit the message (a filter on data the message lacks fails).
Its ``to`` then yields channels. Channels picked by a selector (``kind:...``) are narrowed by
the message: never the source itself, only channels in the message's market (channels
without a market always qualify), and, when SKUs are given, only channels that sell one of
them. Channels named explicitly, by name or as ``origin``, always receive, except where the
message's SKUs are all names the channel's ``sku_map`` gives other products (the ERP's SKU
``X`` unmapped, on a channel that calls the ERP's ``Y`` ``X``): told of ``X``, that channel
would change ``Y``'s listing. The result is deduplicated in first-seen order; ``hub`` is
never a destination (see ``to_hub``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fnmatch import translate
from typing import Any

from routes.checks import ANY, HUB, KIND_PREFIX, ORIGIN, is_pattern
from routes.config import SALES_KINDS, HubConfig, RouteFilter
from routes.skus import rename_skus

_CACHE_LIMIT = 10_000


class RoutingError(ValueError):
    """A message the table cannot route as configured (unknown source, missing origin)."""


@dataclass(frozen=True, slots=True)
class _Route:
    name: str
    sources: frozenset[str]
    exact_types: frozenset[str]
    type_patterns: tuple[re.Pattern[str], ...]
    targets: tuple[tuple[str, bool], ...]  # (channel, named explicitly)
    origin: bool
    to_hub: bool
    filters: RouteFilter | None

    def matches(self, source: str, type_: str) -> bool:
        if source not in self.sources:
            return False
        return type_ in self.exact_types or any(p.match(type_) for p in self.type_patterns)


@dataclass(frozen=True, slots=True)
class _Plan:
    routes: tuple[_Route, ...]
    static: tuple[tuple[str, bool], ...]  # deduplicated targets, source excluded
    names: tuple[str, ...]  # the channel names of static: the whole hot-path answer
    simple: bool  # no filters and no origin: static is the whole answer
    to_hub: bool


class RouteTable:
    """The config's routes compiled for lookup; immutable, safe to share between tasks."""

    def __init__(self, cfg: HubConfig) -> None:
        self._cfg = cfg
        self._channels = frozenset(cfg.channels)
        self._market = {name: ch.market for name, ch in cfg.channels.items()}
        self._stock = {name: ch.stock for name, ch in cfg.channels.items()}
        self._sells_all = frozenset(n for n, s in self._stock.items() if "*" in s.sells_skus)
        self._sales = tuple(n for n, ch in cfg.channels.items() if ch.kind in SALES_KINDS)
        self._routes = tuple(self._compile(i) for i in range(len(cfg.routes)))
        self._plans: dict[tuple[str, str], _Plan] = {}
        self._own_skus = {n: ch.skus_to_channel for n, ch in cfg.channels.items() if ch.sku_map}
        self._taken = {
            n: frozenset(own for own, erp in ch.sku_map.items() if own != erp)
            for n, ch in cfg.channels.items()
            if ch.sku_map
        }

    @classmethod
    def from_config(cls, cfg: HubConfig) -> RouteTable:
        """Precompute a table from a validated config."""
        return cls(cfg)

    def destinations(
        self,
        source: str,
        type: str,
        *,
        market: str | None = None,
        skus: Sequence[str] = (),
        order_value: Decimal | None = None,
        origin: str | None = None,
        narrow: bool = True,
    ) -> tuple[str, ...]:
        """The channels a message goes to, in stable order (see the module docstring).

        ``narrow=False``: market and SKUs only decide route filters, not which channels of a
        ``kind:`` selector sell them (the order process's requests go to the ERP, warehouse
        or carrier whatever each lists)."""
        if isinstance(skus, str):  # one SKU passed bare must not be read letter by letter
            skus = (skus,)
        plan = self._plan(source, type)
        if plan.simple and market is None and not skus:
            return plan.names
        if plan.simple:
            targets = plan.static
        else:
            targets = self._resolve(plan, source, type, market, tuple(skus), order_value, origin)
        if not narrow or (market is None and not skus):
            return tuple(ch for ch, _ in targets)
        found = tuple(ch for ch, explicit in targets if explicit or self._fits(ch, market, skus))
        if not self._taken:  # no channel names the ERP's products its own way
            return found
        return tuple(ch for ch in found if not self.taken(ch, skus))

    def taken(self, channel: str, skus: Sequence[str]) -> bool:
        """Whether every one of these ERP SKUs is, on the channel, its name for another
        product (``sku_map``), so that telling the channel of them would change that one."""
        names = self._taken.get(channel)
        if not names or not skus:
            return False
        return all(sku in names for sku in skus)

    def sku_names_taken(self) -> dict[str, frozenset[str]]:
        """Per channel with a ``sku_map``: its names for the ERP's products that differ from
        their ERP SKUs (an ERP SKU equal to one of them clashes there)."""
        return dict(self._taken)

    def routed(self, source: str, type: str) -> bool:
        """Whether any route takes this (source, type); the hub parks what none does."""
        return bool(self._plan(source, type).routes)

    def market_of(self, channel: str) -> str | None:
        """The market a channel sells in (None for the ERP, warehouse and carriers)."""
        return self._market.get(channel)

    def filters_on_data(self, source: str, type: str) -> bool:
        """Whether a route for this (source, type) has filters that look at the message's data
        (markets, SKUs, order value), so the caller must work those facts out."""
        return any(r.filters is not None for r in self._plan(source, type).routes)

    def to_hub(self, source: str, type: str) -> bool:
        """Whether a route hands this (source, type) to the hub's own services (``to: hub``)."""
        return self._plan(source, type).to_hub

    def as_channel_sees_it(self, channel: str, data: dict[str, Any]) -> dict[str, Any]:
        """Message data with the ERP's SKUs renamed to the channel's own (its ``sku_map``)."""
        names = self._own_skus.get(channel)
        return rename_skus(data, names) if names else data

    def channel_sku(self, channel: str, sku: str) -> str:
        """The channel's own name for one of the ERP's SKUs (the SKU itself without one)."""
        names = self._own_skus.get(channel)
        return names.get(sku, sku) if names else sku

    @property
    def renames_skus(self) -> bool:
        """Whether any channel lists SKUs under names of its own."""
        return bool(self._own_skus)

    def channels_selling(self, sku: str) -> tuple[str, ...]:
        """The sales channels that list a SKU, i.e. that get its ``stock.availability``."""
        return tuple(n for n in self._sales if n in self._sells_all or self._stock[n].sells(sku))

    def _fits(self, channel: str, market: str | None, skus: Sequence[str]) -> bool:
        own = self._market[channel]
        if market is not None and own is not None and own != market:
            return False
        if not skus or channel in self._sells_all:
            return True
        return any(self._stock[channel].sells(sku) for sku in skus)

    def _plan(self, source: str, type_: str) -> _Plan:
        key = (source, type_)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        if source != HUB and source not in self._channels:
            raise RoutingError(f"unknown source channel {source!r}")
        routes = tuple(r for r in self._routes if r.matches(source, type_))
        simple = all(r.filters is None and not r.origin for r in routes)
        static = _dedup(t for r in routes for t in r.targets if t[1] or t[0] != source)
        names = tuple(ch for ch, _ in static)
        plan = _Plan(routes, static, names, simple, any(r.to_hub for r in routes))
        if len(self._plans) >= _CACHE_LIMIT:  # unbounded native types must not leak memory
            self._plans.clear()
        self._plans[key] = plan
        return plan

    def _resolve(
        self,
        plan: _Plan,
        source: str,
        type_: str,
        market: str | None,
        skus: tuple[str, ...],
        order_value: Decimal | None,
        origin: str | None,
    ) -> tuple[tuple[str, bool], ...]:
        found: list[tuple[str, bool]] = []
        for route in plan.routes:
            if route.filters is not None and not route.filters.admits(market, skus, order_value):
                continue
            if route.origin:
                if origin is None:
                    raise RoutingError(
                        f"route {route.name!r} sends {type_!r} to 'origin' but no origin was given"
                    )
                if origin not in self._channels:
                    raise RoutingError(f"origin {origin!r} is not a configured channel")
            for target in route.targets:
                if target[0] == ORIGIN:
                    found.append((str(origin), True))
                elif target[1] or target[0] != source:
                    found.append(target)
        return _dedup(found)

    def _compile(self, index: int) -> _Route:
        route = self._cfg.routes[index]
        sources: set[str] = set()
        for sel in route.from_:
            sources.update(self._expand(sel) if sel != HUB else (HUB,))
        targets: list[tuple[str, bool]] = []
        for sel in route.to:
            if sel == ORIGIN:
                targets.append((ORIGIN, True))
            elif sel != HUB:
                explicit = sel in self._channels
                targets.extend((ch, explicit) for ch in self._expand(sel))
        patterns = tuple(t for t in route.types if is_pattern(t))
        return _Route(
            name=route.name,
            sources=frozenset(sources),
            exact_types=frozenset(t for t in route.types if not is_pattern(t)),
            type_patterns=tuple(re.compile(translate(p)) for p in patterns),
            targets=tuple(targets),
            origin=ORIGIN in route.to,
            to_hub=HUB in route.to,
            filters=route.filters,
        )

    def _expand(self, selector: str) -> tuple[str, ...]:
        if selector == ANY:
            return tuple(self._cfg.channels)
        if selector.startswith(KIND_PREFIX):
            return self._cfg.channels_of_kind(selector[len(KIND_PREFIX) :])
        return (selector,)


def _dedup(targets: Iterable[tuple[str, bool]]) -> tuple[tuple[str, bool], ...]:
    order: dict[str, bool] = {}
    for channel, explicit in targets:
        order[channel] = order.get(channel, False) or explicit
    return tuple(order.items())
