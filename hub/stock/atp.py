"""Available-to-promise per channel as pure functions, so every rule is tested without a database.

For one channel and one physical SKU (see ``routes.config.StockRules``):

    pooled = sum over the channel's locations of (on hand - ERP committed)
    atp    = max(0, pooled - open hub reservations - safety_buffer [+ incoming])
    shown  = atp * share_percent (rounded down), at most max_listed, 0 if <= zero_at_or_below

``incoming`` counts only for a channel with ``incoming_within_days``: the units of the
receipts at its locations expected by today + that many days. Open reservations include
what backorders hold beyond the stock, so this is Pipe17's on hand - committed + future -
future committed - buffer; such a channel takes orders beyond the stock as backorders, up to
those receipts (``hub.stock.reservations``). The figure moves with the date, so
``hub.stock.receipts_clock`` looks at SKUs with receipts again as days pass.

A kit has no stock of its own: its atp is MIN(component atp // quantity per kit), where the
component atp already has the buffer taken off (the buffer keeps physical units back), and the
channel's share, cap and floor then apply to the kit figure. A kit missing a component's
stock is unavailable. Reservations are held per SKU, not per location (see reservations).

When nothing is shown, "available from" is the first expected receipt date by which the
receipts so far (in date order) cover the shortfall and leave enough to show (for a kit:
enough of every component for the fewest kits the channel shows). A channel selling incoming
stock that is shown only units still to come is given that date too, with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import NamedTuple

from routes.config import StockRules


class Receipt(NamedTuple):
    """A purchase receipt the ERP expects: where, when, and how many units."""

    location: str
    expected: date
    quantity: int


@dataclass(frozen=True)
class SkuStock:
    """What the ledger knows of one physical SKU: net on hand per location, holds, receipts."""

    net_by_location: Mapping[str, int] = field(default_factory=dict)
    reserved: int = 0
    receipts: tuple[Receipt, ...] = ()
    backordered: int = 0
    """Of ``reserved``, the units open backorders hold beyond the stock (not yet covered)."""


@dataclass(frozen=True)
class Figure:
    """What a channel sees of a SKU: the quantity it may sell and, if none, from when."""

    available: int
    next_date: date | None = None


def _sells_from(rules: StockRules, location: str) -> bool:
    """Whether the channel counts this location's units (all when it lists none)."""
    return rules.locations is None or location in rules.locations


def pooled(rules: StockRules, stock: SkuStock) -> int:
    """Net units over the locations this channel sells from (all when none are listed)."""
    return sum(qty for loc, qty in stock.net_by_location.items() if _sells_from(rules, loc))


def incoming(rules: StockRules, stock: SkuStock, today: date | None) -> int:
    """Units expected in at the channel's locations that it may sell already (none unless
    it has ``incoming_within_days``)."""
    if rules.incoming_within_days is None or today is None:
        return 0
    until = today + timedelta(days=rules.incoming_within_days)
    return sum(
        r.quantity for r in stock.receipts if r.expected <= until and _sells_from(rules, r.location)
    )


def atp(rules: StockRules, stock: SkuStock, today: date | None = None) -> int:
    """Units the channel may promise before its presentation rules: never below zero
    (receipts due soon included for a channel that sells them, given ``today``)."""
    base = pooled(rules, stock) - stock.reserved - rules.safety_buffer
    return max(0, base + incoming(rules, stock, today))


def present(rules: StockRules, units: int) -> int:
    """The channel's share, cap and floor applied to an ATP figure, in that order."""
    shown = max(0, units)
    if rules.share_percent is not None:
        shown = int(Decimal(shown) * rules.share_percent / 100)
    if rules.max_listed is not None:
        shown = min(shown, rules.max_listed)
    return 0 if shown <= rules.zero_at_or_below else shown


def kit_atp(
    rules: StockRules,
    components: Mapping[str, int],
    stocks: Mapping[str, SkuStock],
    today: date | None = None,
) -> int:
    """Whole kits the components allow: MIN(component atp // quantity per kit)."""
    if not components:
        return 0
    return min(atp(rules, stocks.get(c, SkuStock()), today) // q for c, q in components.items())


def least_shown(rules: StockRules) -> int | None:
    """The smallest ATP the channel shows as more than 0; None when it never shows any."""
    wanted = rules.zero_at_or_below + 1
    if rules.max_listed is not None and rules.max_listed < wanted:
        return None
    if rules.share_percent is None:
        return wanted
    if rules.share_percent <= 0:
        return None
    whole, rest = divmod(Decimal(wanted) * 100, rules.share_percent)  # both positive
    return int(whole) + (1 if rest else 0)  # the ceiling, exact


def next_date(
    rules: StockRules, stock: SkuStock, today: date, need: int | None = None
) -> date | None:
    """The first receipt date (never past) by which the ATP reaches ``need`` units (by
    default: the least the channel shows); None if no receipt does."""
    # Receipts first cover what is already promised (open reservations, the ERP's committed
    # units that take the net below zero) and the safety buffer.
    wanted = least_shown(rules) if need is None else need
    if wanted is None:
        return None
    due = sorted((r.expected, r.quantity) for r in stock.receipts if _sells_from(rules, r.location))
    short = pooled(rules, stock) - stock.reserved - rules.safety_buffer
    arrived = 0  # every receipt (one a channel sells already too) counts here, by date
    for expected, quantity in due:
        arrived += quantity
        if short + arrived >= wanted:
            return max(expected, today)
    return None


def figure(
    rules: StockRules,
    sku: str,
    stocks: Mapping[str, SkuStock],
    today: date,
    components: Mapping[str, int] | None = None,
) -> Figure:
    """The figure a channel sees of a SKU (a kit when ``components`` is given)."""
    if components:
        shown = present(rules, kit_atp(rules, components, stocks, today))
        if shown > 0:
            return Figure(shown)
        kits = least_shown(rules)  # the fewest kits the channel would show
        if kits is None:
            return Figure(0)
        dates: list[date] = []
        for comp, qty in components.items():
            stock = stocks.get(comp, SkuStock())
            if atp(rules, stock, today) >= kits * qty:
                continue
            due = next_date(rules, stock, today, need=kits * qty)
            if due is None:
                return Figure(0)
            dates.append(due)
        return Figure(0, max(dates) if dates else None)
    stock = stocks.get(sku, SkuStock())
    shown = present(rules, atp(rules, stock, today))
    if (
        shown > 0
        and rules.incoming_within_days is not None
        and present(rules, atp(rules, stock)) == 0
    ):
        return Figure(shown, next_date(rules, stock, today))  # sold ahead of that receipt
    return Figure(shown, None if shown > 0 else next_date(rules, stock, today))


def promised_delivery(fig: Figure, today: date, lead_time_days: int) -> date | None:
    """The date a buyer can be promised: the next receipt (nothing is shown without it, or
    what is shown is still to come) or else today, plus the market's lead time."""
    if fig.next_date is not None:
        return fig.next_date + timedelta(days=lead_time_days)
    if fig.available > 0:
        return today + timedelta(days=lead_time_days)
    return None
