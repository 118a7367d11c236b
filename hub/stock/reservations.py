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
from collections.abc import Mapping, Sequence
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


_CLAIM = """
INSERT INTO stock_reservations (reservation_id, channel, order_ref, state, lines)
VALUES ($1, $2, $3, 'refused', $4::jsonb) ON CONFLICT DO NOTHING RETURNING reservation_id
"""


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
    wanted: Counter[str] = Counter()
    for sku, qty in lines:
        if qty <= 0:
            raise ValueError(f"line {sku}: quantity must be positive, got {qty}")
        wanted[sku] += qty
    if not wanted:
        raise ValueError("a reservation needs at least one line")
    as_json = orjson.dumps(sorted(wanted.items())).decode()
    claimed = await conn.fetchval(_CLAIM, reservation_id, channel, order_ref, as_json)
    if claimed is None:
        return await _stored(conn, reservation_id)
    kits = {
        k: comps
        for k, comps in (await ledger.kits_around(conn, list(wanted))).items()
        if k in wanted
    }
    available = await _lock_and_measure(conn, _physical(wanted, kits))
    granted, shortages = _allocate(wanted, kits, available, allow_partial)
    if granted and (allow_partial or not shortages):
        holds: Counter[str] = Counter()
        for sku, qty in granted.items():
            for part, per in kits.get(sku, {sku: 1}).items():
                holds[part] += qty * per
        await conn.executemany(
            "INSERT INTO stock_reservation_lines (reservation_id, sku, quantity)"
            " VALUES ($1, $2, $3)",
            [(reservation_id, sku, qty) for sku, qty in sorted(holds.items())],
        )
        result = ReservationResult(True, shortages, tuple(sorted(granted.items())))
    else:
        result = ReservationResult(False, shortages, ())
    await conn.execute(
        "UPDATE stock_reservations SET state = $2, granted_lines = $3::jsonb,"
        " shortages = $4::jsonb, updated_at = now() WHERE reservation_id = $1",
        reservation_id,
        "granted" if result.granted else "refused",
        orjson.dumps(result.lines).decode(),
        orjson.dumps(result.shortages).decode(),
    )
    return result


def _physical(wanted: Mapping[str, int], kits: Mapping[str, Mapping[str, int]]) -> list[str]:
    parts = {p for sku in wanted for p in kits.get(sku, {sku: 1})}
    return sorted(parts)


async def _lock_and_measure(conn: Connection, skus: list[str]) -> dict[str, int]:
    await ledger.lock_skus(conn, skus)
    rows = await conn.fetch(
        "SELECT sku, on_hand - committed AS net FROM stock_ledger WHERE sku = ANY($1)"
        " ORDER BY sku, location FOR UPDATE",
        skus,
    )
    net: Counter[str] = Counter()
    for r in rows:
        net[r["sku"]] += r["net"]
    held = await conn.fetch(
        "SELECT sku, sum(quantity)::int AS held FROM stock_reservation_lines"
        " WHERE active AND sku = ANY($1) GROUP BY sku",
        skus,
    )
    for r in held:
        net[r["sku"]] -= r["held"]
    return {sku: max(0, net[sku]) for sku in skus}


def _allocate(
    wanted: Mapping[str, int],
    kits: Mapping[str, Mapping[str, int]],
    available: Mapping[str, int],
    allow_partial: bool,
) -> tuple[dict[str, int], dict[str, tuple[int, int]]]:
    """Lines in SKU order take what is left; returns (granted per line, shortages per line)."""
    left = dict(available)
    granted: dict[str, int] = {}
    shortages: dict[str, tuple[int, int]] = {}
    for sku in sorted(wanted):
        parts = kits.get(sku, {sku: 1})
        can = min(left.get(p, 0) // per for p, per in parts.items())
        take = min(can, wanted[sku])
        if take < wanted[sku]:
            shortages[sku] = (wanted[sku], can)
        if take:
            granted[sku] = take
            for p, per in parts.items():
                left[p] -= take * per
    return granted, shortages


async def _stored(conn: Connection, reservation_id: str) -> ReservationResult:
    row = await conn.fetchrow(
        "SELECT state, granted_lines, shortages FROM stock_reservations WHERE reservation_id = $1",
        reservation_id,
    )
    if row is None:  # pragma: no cover - the claim conflicted, so the row exists
        raise LookupError(reservation_id)
    shortages = {k: (v[0], v[1]) for k, v in orjson.loads(row["shortages"]).items()}
    lines = tuple((s, q) for s, q in orjson.loads(row["granted_lines"]))
    return ReservationResult(row["state"] != "refused", shortages, lines)


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
