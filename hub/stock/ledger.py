"""The stock ledger in PostgreSQL: versioned levels, receipts, product facts and snapshots.

Every function takes the caller's connection, so it runs inside the caller's transaction
(the committer's savepoint, or an orders handler's), never a transaction of its own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson

from hub.db import Connection
from hub.stock.atp import Receipt, SkuStock
from schemas.catalog import ProductUpserted
from schemas.inventory import StockLevel


@dataclass(frozen=True)
class Snapshot:
    """The ledger around some SKUs: kits, physical stock and what each channel was last sent."""

    kits: dict[str, dict[str, int]]
    stocks: dict[str, SkuStock]
    published: dict[tuple[str, str], tuple[int, date | None, int]]
    inactive: frozenset[str] = frozenset()
    """SKUs the ERP deactivated: no channel is shown any of them."""


async def lock_skus(conn: Connection, skus: Collection[str]) -> None:
    """Serialise work on these SKUs across transactions (held to commit, re-entrant, sorted).

    Every stock change takes this lock before touching a SKU's rows and before computing its
    figures, so two batches changing one SKU (say, two locations) cannot both publish a figure
    computed without the other's change.
    """
    if skus:
        await conn.execute("SELECT stock_lock($1::text[])", list(skus))


def _level_docs(levels: Sequence[StockLevel], measured: Sequence[datetime] | None) -> str:
    """The levels as ``stock_apply_levels`` reads them; ``at`` is when the source measured
    each (its CloudEvent time), which ends the holds on units shipped before it."""
    times: Sequence[datetime | None] = (
        [t if t.tzinfo is not None else t.replace(tzinfo=UTC) for t in measured]
        if measured is not None
        else [None] * len(levels)
    )
    return orjson.dumps(
        [
            {
                "at": at,
                "sku": lv.sku,
                "location": lv.location,
                "on_hand": lv.on_hand,
                "committed": lv.committed,
                "version": lv.version,
                "included": list(lv.included_order_ids),
                "dates": [r.expected_date for r in lv.incoming],
                "quantities": [r.quantity for r in lv.incoming],
            }
            for lv, at in zip(levels, times, strict=True)
        ]
    ).decode()


async def apply_levels(
    conn: Connection,
    levels: Sequence[StockLevel],
    now: datetime,
    measured: Sequence[datetime] | None = None,
) -> list[bool]:
    """Apply many levels in one round trip (all SKUs locked first, in order); False = stale.
    ``measured`` (when the source made each level; ``now`` when not given) ends the holds on
    units shipped before it."""
    applied: list[bool] = await conn.fetchval(
        "SELECT stock_apply_levels($1::jsonb, $2)", _level_docs(levels, measured), now
    )
    return applied


async def apply_levels_and_snapshot(
    conn: Connection,
    levels: Sequence[StockLevel],
    now: datetime,
    measured: Sequence[datetime] | None = None,
) -> tuple[list[bool], Snapshot | None]:
    """``apply_levels`` then a locked ``snapshot`` of the SKUs that changed, in one round trip.

    The snapshot is None when no level applied.
    """
    raw = await conn.fetchval(
        "SELECT stock_apply_levels_snapshot($1::jsonb, $2, true)",
        _level_docs(levels, measured),
        now,
    )
    doc = orjson.loads(raw)
    applied: list[bool] = doc["applied"]
    if doc["snapshot"] is None:
        return applied, None
    changed = {lv.sku for lv, ok in zip(levels, applied, strict=True) if ok}
    return applied, _parse_snapshot(doc["snapshot"], changed)


async def store_products(
    conn: Connection,
    products: Sequence[ProductUpserted],
    data: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[set[str], set[str]]:
    """Keep many products' stock facts (and, given, their data as sent, for a catalog resync)
    in a few statements; returns the SKUs that changed, and of those the ones whose active
    flag changed (a new inactive product counts), whose figures change with it."""
    latest: dict[str, int] = {}
    for i, p in enumerate(products):  # one row per SKU per statement: the highest version wins
        if p.sku not in latest or products[latest[p.sku]].version < p.version:
            latest[p.sku] = i
    kept = [products[i] for i in latest.values()]
    rows = await conn.fetch(
        # Every part of the statement sees the table as it was before: "was" is the old flag
        # (the caller holds the SKUs' locks, so no other hub's write of them is in flight).
        "WITH was AS (SELECT sku, active FROM stock_products WHERE sku = ANY($1::text[])),"
        " stored AS (INSERT INTO stock_products AS p (sku, substitution_group, active, version,"
        " data) SELECT * FROM unnest($1::text[], $2::text[], $3::boolean[], $4::bigint[],"
        " $5::jsonb[]) ON CONFLICT (sku) DO UPDATE SET"
        " substitution_group = EXCLUDED.substitution_group, active = EXCLUDED.active,"
        " version = EXCLUDED.version, data = EXCLUDED.data"
        " WHERE p.version < EXCLUDED.version RETURNING sku, active)"
        " SELECT s.sku, s.active IS DISTINCT FROM coalesce(w.active, true) AS flipped"
        " FROM stored AS s LEFT JOIN was AS w ON w.sku = s.sku",
        list(latest),
        [p.substitution_group for p in kept],
        [p.active for p in kept],
        [p.version for p in kept],
        [orjson.dumps(data[i]).decode() if data else None for i in latest.values()],
    )
    stored = {r["sku"] for r in rows}
    flipped = {r["sku"] for r in rows if r["flipped"]}
    if data and len(stored) < len(latest):  # a repeat fills in data kept before migration 018
        again = [(sku, i) for sku, i in latest.items() if sku not in stored]
        await conn.execute(
            "UPDATE stock_products AS p SET data = t.d"
            " FROM unnest($1::text[], $2::bigint[], $3::jsonb[]) AS t(sku, v, d)"
            " WHERE p.sku = t.sku AND p.version = t.v AND p.data IS NULL",
            [sku for sku, _ in again],
            [products[i].version for _, i in again],
            [orjson.dumps(data[i]).decode() for _, i in again],
        )
    if not stored:
        return stored, flipped
    await conn.execute(
        "DELETE FROM stock_kit_components WHERE kit_sku = ANY($1::text[])", list(stored)
    )
    components = [(s, c.sku, c.quantity) for s in stored for c in products[latest[s]].components]
    if components:
        await conn.execute(
            "INSERT INTO stock_kit_components (kit_sku, component_sku, quantity)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::int[])",
            [k for k, _, _ in components],
            [c for _, c, _ in components],
            [q for _, _, q in components],
        )
    return stored, flipped


async def snapshot(conn: Connection, skus: Collection[str], *, lock: bool = True) -> Snapshot:
    """One round trip: kits around ``skus``, their physical stock, and the last figures sent.

    With ``lock`` the physical SKUs are locked first, so the figures are computed from
    committed state that no other transaction can change before this one commits.
    """
    raw = await conn.fetchval("SELECT stock_snapshot($1::text[], $2)", list(skus), lock)
    return _parse_snapshot(orjson.loads(raw), skus)


def _parse_snapshot(doc: dict[str, Any], skus: Collection[str]) -> Snapshot:
    net: dict[str, dict[str, int]] = defaultdict(dict)
    for sku, location, qty in doc["ledger"]:
        net[sku][location] = qty
    receipts: dict[str, list[Receipt]] = defaultdict(list)
    for sku, location, due, quantity in doc["receipts"]:
        receipts[sku].append(Receipt(location, date.fromisoformat(due), quantity))
    reserved: dict[str, int] = doc["reserved"]
    backordered: dict[str, int] = doc.get("backordered", {})
    kits: dict[str, dict[str, int]] = doc["kits"]
    physical = {s for s in skus if s not in kits} | {c for comps in kits.values() for c in comps}
    stocks = {
        s: SkuStock(
            net.get(s, {}),
            int(reserved.get(s, 0)),
            tuple(receipts.get(s, ())),
            int(backordered.get(s, 0)),
        )
        for s in physical
    }
    published = {
        (ch, sku): (avail, date.fromisoformat(d) if d else None, version)
        for ch, sku, avail, d, version in doc["published"]
    }
    return Snapshot(kits, stocks, published, frozenset(doc.get("inactive", ())))


async def substitutes(conn: Connection, skus: Collection[str]) -> dict[str, list[str]]:
    """For each SKU in a substitution group, the other active SKUs of that group."""
    rows = await conn.fetch(
        "SELECT a.sku AS wanted, b.sku AS other FROM stock_products a"
        " JOIN stock_products b ON b.substitution_group = a.substitution_group"
        " AND b.sku <> a.sku AND b.active WHERE a.sku = ANY($1) ORDER BY b.sku",
        list(skus),
    )
    found: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        found[r["wanted"]].append(r["other"])
    return dict(found)


async def cover_backorders(conn: Connection, covered: Mapping[str, int]) -> None:
    """Stock arrived for these backordered units (per SKU): they are held stock from now on.
    The oldest backorders are covered first; the caller holds the SKUs' locks."""
    await conn.execute(
        "WITH cut AS (SELECT * FROM unnest($1::text[], $2::int[]) AS c(sku, units)),"
        " ranked AS (SELECT l.reservation_id, l.sku, c.units,"
        " sum(l.backordered) OVER (PARTITION BY l.sku ORDER BY r.created_at, l.reservation_id)"
        " - l.backordered AS before"
        " FROM stock_reservation_lines AS l JOIN cut AS c ON c.sku = l.sku"
        " JOIN stock_reservations AS r ON r.reservation_id = l.reservation_id"
        " WHERE l.active AND l.backordered > 0)"
        " UPDATE stock_reservation_lines AS l"
        " SET backordered = l.backordered - least(l.backordered, k.units - k.before)"
        " FROM ranked AS k WHERE l.reservation_id = k.reservation_id AND l.sku = k.sku"
        " AND k.units > k.before",
        list(covered),
        list(covered.values()),
    )


async def all_skus(conn: Connection, after: str, limit: int) -> list[str]:
    """SKUs the hub knows stock or kits of, in order, one page after ``after`` (for resync)."""
    rows = await conn.fetch(
        "SELECT sku FROM (SELECT sku FROM stock_ledger UNION SELECT kit_sku FROM"
        " stock_kit_components) s WHERE sku > $1 ORDER BY sku LIMIT $2",
        after,
        limit,
    )
    return [r["sku"] for r in rows]
