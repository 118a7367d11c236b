"""Atomic stock reservations for the order flow: all lines or none, never more than there is.

Call these inside the caller's transaction (an orders handler's savepoint); they lock ledger
rows of the SKUs involved in SKU order (``SELECT ... FOR UPDATE``), so two orders racing for
the last units are serialised per SKU and exactly the available units are granted. The pool
is SKU-wide: sum over every location of (on hand - ERP committed) - open hub reservations.
A kit line reserves its components. Each reservation id has one answer: asking again returns
the first result unchanged, so a redelivered order reserves once.

Hand-over to the ERP: ``confirm`` records the ERP's sales order number. The hub keeps holding
the units until a ``stock.level`` arrives whose ``included_order_ids`` names that order (its
``committed`` figure now counts it); applying that level and dropping the hold happen in one
transaction, so no unit is counted twice or not at all. After each call, the caller publishes
``availability_changes(conn, ctx, skus, cause)`` for the SKUs (see ``reservation_skus``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from hub.db import Connection
from hub.stock import ledger


@dataclass(frozen=True)
class ReservationResult:
    """The answer to a reservation: granted lines, or per-SKU (requested, available) shortages."""

    granted: bool
    shortages: dict[str, tuple[int, int]] = field(default_factory=dict)
    lines: tuple[tuple[str, int], ...] = ()
    held: tuple[str, ...] = ()  # the physical SKUs whose units it holds (kits: components)


@dataclass(frozen=True)
class ReservationRequest:
    """One reservation asked for: its id, who asks, and the units per SKU."""

    reservation_id: str
    channel: str
    order_ref: str
    lines: Sequence[tuple[str, int]]
    allow_partial: bool = False

    def as_json(self) -> dict[str, object]:
        """The shape ``stock_reserve_many`` reads."""
        wanted: Counter[str] = Counter()
        for sku, qty in self.lines:
            if qty <= 0:
                raise ValueError(f"line {sku}: quantity must be positive, got {qty}")
            wanted[sku] += qty
        if not wanted:
            raise ValueError("a reservation needs at least one line")
        return {
            "id": self.reservation_id,
            "channel": self.channel,
            "ref": self.order_ref,
            "wanted": dict(sorted(wanted.items())),
            "partial": self.allow_partial,
        }


async def reserve(
    conn: Connection,
    *,
    reservation_id: str,
    channel: str,
    order_ref: str,
    lines: Sequence[tuple[str, int]],
    allow_partial: bool = False,
) -> ReservationResult:
    """Hold stock for all lines (or as much as there is, with ``allow_partial``), exactly once."""
    request = ReservationRequest(reservation_id, channel, order_ref, lines, allow_partial)
    [result] = await reserve_many(conn, [request])
    return result


async def reserve_many(
    conn: Connection, requests: Sequence[ReservationRequest]
) -> list[ReservationResult]:
    """Many reservations in one round trip, granted in the order given."""
    if not requests:
        return []
    raw = await conn.fetchval(
        "SELECT stock_reserve_many($1::jsonb)",
        orjson.dumps([r.as_json() for r in requests]).decode(),
    )
    return [
        ReservationResult(
            doc["state"] != "refused",
            {sku: (pair[0], pair[1]) for sku, pair in doc["shortages"].items()},
            tuple((sku, qty) for sku, qty in doc["granted"]),
            tuple(doc["held"]),
        )
        for doc in orjson.loads(raw)
    ]


async def release(conn: Connection, reservation_id: str) -> bool:
    """Give a granted reservation's held units back; False if unknown or already released."""
    state = await conn.fetchval(
        "UPDATE stock_reservations SET state = 'released', updated_at = now()"
        " WHERE reservation_id = $1 AND state = 'granted' RETURNING state",
        reservation_id,
    )
    if state is None:
        return False
    await ledger.lock_skus(conn, await reservation_skus(conn, reservation_id))
    await conn.execute(
        "UPDATE stock_reservation_lines SET active = false WHERE reservation_id = $1 AND active",
        reservation_id,
    )
    return True


async def confirm(conn: Connection, reservation_id: str, erp_order_number: str) -> bool:
    """Record the ERP order that will take the units over; hold them until the ERP counts it."""
    ok = await conn.fetchval(
        "UPDATE stock_reservations SET erp_order_number = $2, updated_at = now()"
        " WHERE reservation_id = $1 AND state = 'granted'"
        " AND (erp_order_number IS NULL OR erp_order_number = $2) RETURNING true",
        reservation_id,
        erp_order_number,
    )
    if not ok:
        return False
    await ledger.lock_skus(conn, await reservation_skus(conn, reservation_id))
    # The ERP's level may have counted the order before we learnt its number.
    await conn.execute(
        "UPDATE stock_reservation_lines AS l SET active = false, handed_over_at = now()"
        " WHERE l.reservation_id = $1 AND l.active AND EXISTS (SELECT 1 FROM stock_ledger s"
        " WHERE s.sku = l.sku AND $2 = ANY(s.included_order_ids))",
        reservation_id,
        erp_order_number,
    )
    return True


async def reservation_skus(conn: Connection, reservation_id: str) -> list[str]:
    """The physical SKUs a reservation holds or held, for ``availability_changes``."""
    rows = await conn.fetch(
        "SELECT sku FROM stock_reservation_lines WHERE reservation_id = $1 ORDER BY sku",
        reservation_id,
    )
    return [r["sku"] for r in rows]
