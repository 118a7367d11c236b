"""Cross-field checks of a config: references between channels, markets, routes and types.

Field-level rules live on the models; what needs the whole file (does this market exist, is
there exactly one ERP, does this route name a real channel or type) is checked here, and every
problem is reported with its location rather than stopping at the first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from difflib import get_close_matches
from fnmatch import fnmatchcase
from functools import cache
from typing import Any

from routes.errors import Loc

_Problem = tuple[Loc, str]

ANY = "*"
"""In ``from``: any configured channel (not the hub itself)."""
HUB = "hub"
"""In ``from``: a message the hub itself publishes; in ``to``: handled by the hub's services."""
ORIGIN = "origin"
"""In ``to``: the channel the order that caused this message came from."""
KIND_PREFIX = "kind:"
"""``kind:webshop`` selects every channel of that kind, so new channels join routes by config."""


@cache
def known_types() -> frozenset[str]:
    """The canonical type names routes may use, from ``schemas.registry`` (read once)."""
    from schemas.registry import CANONICAL_TYPES  # lazy: the registry imports every family

    return frozenset(CANONICAL_TYPES)


def is_pattern(text: str) -> bool:
    """Whether a type or SKU is a glob pattern rather than a literal name."""
    return any(c in text for c in "*?[")


def cross_check(data: Mapping[str, Any]) -> list[_Problem]:
    """Every reference problem in config data, read leniently.

    It takes plain data rather than a ``HubConfig`` so that the loader can also run it on a
    file whose fields failed validation, and report broken references in the same pass.
    """
    channels, markets = _dict(data.get("channels")), _dict(data.get("markets"))
    return [
        *_channels(channels, markets),
        *_markets(markets),
        *_routes(data.get("routes"), channels, markets),
    ]


def _markets(markets: Mapping[Any, Any]) -> Iterable[_Problem]:
    """Markets may share a price list (one euro list for NL and BE), but not in two currencies:
    a list's prices are in one currency, so one of the markets would show them in the wrong one."""
    first: dict[str, tuple[str, str]] = {}
    for name, raw in markets.items():
        market = _dict(raw)
        price_list, currency = market.get("price_list"), market.get("currency")
        if not isinstance(price_list, str) or not isinstance(currency, str):
            continue
        other, theirs = first.setdefault(price_list, (name, currency))
        if theirs != currency:
            yield (
                ("markets", name, "currency"),
                f"market {name!r} shows price list {price_list!r} in {currency}, market"
                f" {other!r} in {theirs}: a price list has one currency",
            )


def _channels(channels: Mapping[Any, Any], markets: Mapping[Any, Any]) -> Iterable[_Problem]:
    erps: list[str] = []
    for name, raw in channels.items():
        ch = _dict(raw)
        if name in (HUB, ORIGIN):
            yield ("channels", name), f"{name!r} is a reserved word in routes; rename the channel"
        market = ch.get("market")
        if isinstance(market, str) and market not in markets:
            yield ("channels", name, "market"), _unknown("market", market, markets)
        if ch.get("kind") == "erp":
            if erps:
                yield (
                    ("channels", name, "kind"),
                    f"a second ERP channel; the ERP is the single source of truth and "
                    f"{erps[0]!r} already is it",
                )
            erps.append(name)
    if not erps:
        yield ("channels",), "no channel of kind 'erp': the hub needs exactly one ERP"


def _routes(
    routes: Any, channels: Mapping[Any, Any], markets: Mapping[Any, Any]
) -> Iterable[_Problem]:
    types = known_types()
    seen: set[str] = set()
    for i, raw in enumerate(routes if isinstance(routes, list) else []):
        route, here = _dict(raw), ("routes", i)
        name = route.get("name")
        if isinstance(name, str) and name in seen:
            yield (*here, "name"), f"route name {name!r} is used twice"
        seen.add(str(name))
        for j, type_ in _strs(route.get("types")):
            if (why := _type_problem(type_, types)) is not None:
                yield (*here, "types", j), why
        for side in ("from", "to"):
            for j, sel in _strs(route.get(side)):
                if (why := _selector_problem(sel, channels, side=side)) is not None:
                    yield (*here, side, j), why
        for j, market in _strs(_dict(route.get("filters")).get("markets")):
            if market not in markets:
                yield (*here, "filters", "markets", j), _unknown("market", market, markets)


def _dict(value: Any) -> Mapping[Any, Any]:
    return value if isinstance(value, Mapping) else {}


def _strs(value: Any) -> list[tuple[int, str]]:
    items = value if isinstance(value, list) else []
    return [(i, item) for i, item in enumerate(items) if isinstance(item, str)]


def _type_problem(type_: str, types: frozenset[str]) -> str | None:
    if type_.startswith("native."):
        return None if len(type_) > len("native.") else "'native.' needs an adapter name after it"
    if is_pattern(type_):
        if any(fnmatchcase(t, type_) for t in types):
            return None
        return f"type pattern {type_!r} matches no known message type"
    if type_ in types:
        return None
    return _unknown("message type", type_, types)


def _selector_problem(sel: str, channels: Mapping[Any, Any], *, side: str) -> str | None:
    from routes.config import CHANNEL_KINDS

    if sel == HUB or sel in channels:
        return None
    if sel == ANY:
        return None if side == "from" else "'*' is only allowed in 'from'; name channels or kinds"
    if sel == ORIGIN:
        return None if side == "to" else "'origin' is only meaningful in 'to'"
    if sel.startswith(KIND_PREFIX):
        kind = sel[len(KIND_PREFIX) :]
        if kind in CHANNEL_KINDS:
            return None
        return f"unknown kind {kind!r} in {sel!r}; kinds are: {', '.join(CHANNEL_KINDS)}"
    close = get_close_matches(sel, [str(c) for c in channels], n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    special = "'*', 'hub'" if side == "from" else "'origin', 'hub'"
    return (
        f"unknown channel {sel!r}; {hint}use a channel name ({', '.join(map(str, channels))}), "
        f"'kind:<kind>', {special}"
    )


def _unknown(what: str, name: str, names: Iterable[Any]) -> str:
    known = sorted(str(n) for n in names)
    close = get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    listing = f" (known: {', '.join(known)})" if known and len(known) <= 12 else ""
    return f"unknown {what} {name!r}{hint}{listing}"
