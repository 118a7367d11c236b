"""What an order may still send back: the units shipped and not yet asked back by a return.

Each return records the units it asks back (``order_returns``), so a second return, a
cancellation after part of the order shipped, or a parcel that left after the cancellation
asks back only what no earlier return covers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime

from hub.db import Connection
from hub.orders import requests, store
from hub.orders.messages import Outgoing
from hub.orders.store import Order
from schemas.returns import ReturnLine, ReturnRequested


def by_sku(order: Order, units_by_line: Mapping[str, int]) -> dict[str, int]:
    """Units per line id (picked, shipped, ...) as units per SKU, lines of one SKU added up."""
    sku_of = {line.line_id: line.sku for line in order.placed.lines}
    units: Counter[str] = Counter()
    for line_id, n in units_by_line.items():
        units[sku_of[line_id]] += n
    return dict(units)


def shipped_by_sku(order: Order) -> dict[str, int]:
    """Units shipped per SKU, over all the order's lines."""
    return by_sku(order, order.shipped)


def left_to_return(order: Order, asked: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """Units per SKU shipped and not asked back by any return yet."""
    taken: Counter[str] = Counter()
    for units in asked.values():
        taken.update(units)
    left = {sku: n - taken[sku] for sku, n in shipped_by_sku(order).items()}
    return {sku: n for sku, n in left.items() if n > 0}


def all_back(order: Order, back: Mapping[str, int]) -> bool:
    """Whether every shipped unit of the order has come back (some did ship)."""
    shipped = shipped_by_sku(order)
    return bool(shipped) and all(back.get(sku, 0) >= n for sku, n in shipped.items())


def units_back(order: Order, back: Mapping[str, int]) -> str:
    """How much of what shipped is back, as "1 of 3" (units of SKUs that did not ship, a
    wrong item in the parcel, are not counted)."""
    shipped = shipped_by_sku(order)
    returned = sum(min(back.get(sku, 0), n) for sku, n in shipped.items())
    return f"{returned} of {sum(shipped.values())}"


def awaited(asked: Mapping[str, Mapping[str, int]], back: Mapping[str, int]) -> bool:
    """Whether announced returns ask back more units of a SKU than have come back."""
    wanted: Counter[str] = Counter()
    for units in asked.values():
        wanted.update(units)
    return any(n > back.get(sku, 0) for sku, n in wanted.items())


def return_lines(order: Order, units: Mapping[str, int]) -> tuple[ReturnLine, ...]:
    """``units`` (per SKU) as return lines on the order's shipped lines, in line order."""
    sku_of = {line.line_id: line.sku for line in order.placed.lines}
    wanted = Counter(units)
    lines: list[ReturnLine] = []
    for line_id, shipped in order.shipped.items():
        sku = sku_of[line_id]
        take = min(shipped, wanted[sku])
        if take > 0:
            lines.append(ReturnLine(sku=sku, quantity=take, line_id=line_id))
            wanted[sku] -= take
    return tuple(lines)


async def ask_back(
    conn: Connection,
    out: Outgoing,
    order: Order,
    return_id: str,
    units: Mapping[str, int],
    reason: str,
    now: datetime,
) -> None:
    """Record a return the hub starts and tell the ERP and the warehouse to expect the goods."""
    requested = ReturnRequested(
        channel=order.channel,
        channel_order_id=order.channel_order_id,
        order_id=order.order_id,
        return_id=return_id,
        lines=return_lines(order, units),
        reason=reason,
    )
    await store.add_return(conn, order.order_id, return_id, units, now)
    requests.send(out, order, requested, f"return/{return_id}")
