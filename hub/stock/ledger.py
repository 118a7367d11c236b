"""The stock ledger in PostgreSQL: versioned levels, receipts, product facts and snapshots.

Every function takes the caller's connection, so it runs inside the caller's transaction
(the committer's savepoint, or an orders handler's), never a transaction of its own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from datetime import date, datetime

from hub.db import Connection
from hub.stock.atp import SkuStock
from schemas.catalog import ProductUpserted
from schemas.inventory import StockLevel

_UPSERT_LEVEL = """
INSERT INTO stock_ledger AS l
    (sku, location, on_hand, committed, version, included_order_ids, updated_at)
VALUES ($1, $2, $3, $4, $5, $6::text[], $7)
ON CONFLICT (sku, location) DO UPDATE SET
    on_hand = EXCLUDED.on_hand, committed = EXCLUDED.committed, version = EXCLUDED.version,
    included_order_ids = EXCLUDED.included_order_ids, updated_at = EXCLUDED.updated_at
WHERE l.version < EXCLUDED.version
RETURNING version
"""

_HAND_OVER = """
UPDATE stock_reservation_lines AS l SET active = false, handed_over_at = $3
FROM stock_reservations AS r
WHERE l.reservation_id = r.reservation_id AND l.active AND l.sku = $1
  AND r.erp_order_number = ANY($2::text[])
"""


async def lock_skus(conn: Connection, skus: Collection[str]) -> None:
    """Serialise work on these SKUs across transactions (held to commit, re-entrant, sorted).

    Every stock change takes this lock before touching a SKU's rows and before computing its
    figures, so two batches changing one SKU (say, two locations) cannot both publish a figure
    computed without the other's change.
    """
    if skus:
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(s, 3517)) FROM"
            " (SELECT DISTINCT s FROM unnest($1::text[]) AS s ORDER BY s) AS t",
            sorted(skus),
        )


async def apply_level(conn: Connection, level: StockLevel, now: datetime) -> bool:
    """Apply a level unless its version is stale; hand included orders over to the ERP."""
    await lock_skus(conn, [level.sku])
    applied = await conn.fetchval(
        _UPSERT_LEVEL,
        level.sku,
        level.location,
        level.on_hand,
        level.committed,
        level.version,
        list(level.included_order_ids),
        now,
    )
    if applied is None:
        return False
    await conn.execute(
        "DELETE FROM stock_incoming WHERE sku = $1 AND location = $2", level.sku, level.location
    )
    if level.incoming:
        by_date: dict[date, int] = defaultdict(int)
        for receipt in level.incoming:
            by_date[receipt.expected_date] += receipt.quantity
        await conn.executemany(
            "INSERT INTO stock_incoming (sku, location, expected_date, quantity)"
            " VALUES ($1, $2, $3, $4)",
            [(level.sku, level.location, d, q) for d, q in by_date.items()],
        )
    if level.included_order_ids:
        await conn.execute(_HAND_OVER, level.sku, list(level.included_order_ids), now)
    return True


async def load_stocks(conn: Connection, skus: Collection[str]) -> dict[str, SkuStock]:
    """A snapshot of the physical SKUs: net on hand per location, open holds, receipts."""
    wanted = list(skus)
    net: dict[str, dict[str, int]] = defaultdict(dict)
    for r in await conn.fetch(
        "SELECT sku, location, on_hand - committed AS net FROM stock_ledger WHERE sku = ANY($1)",
        wanted,
    ):
        net[r["sku"]][r["location"]] = r["net"]
    reserved = {
        r["sku"]: r["held"]
        for r in await conn.fetch(
            "SELECT sku, sum(quantity)::int AS held FROM stock_reservation_lines"
            " WHERE active AND sku = ANY($1) GROUP BY sku",
            wanted,
        )
    }
    receipts: dict[str, list[tuple[str, date]]] = defaultdict(list)
    for r in await conn.fetch(
        "SELECT sku, location, min(expected_date) AS due FROM stock_incoming"
        " WHERE sku = ANY($1) GROUP BY sku, location",
        wanted,
    ):
        receipts[r["sku"]].append((r["location"], r["due"]))
    return {
        sku: SkuStock(net.get(sku, {}), reserved.get(sku, 0), tuple(receipts.get(sku, ())))
        for sku in wanted
    }


async def kits_around(conn: Connection, skus: Collection[str]) -> dict[str, dict[str, int]]:
    """Every kit that is one of ``skus`` or contains one of them, with all its components."""
    rows = await conn.fetch(
        "SELECT kit_sku, component_sku, quantity FROM stock_kit_components WHERE kit_sku IN"
        " (SELECT kit_sku FROM stock_kit_components"
        "  WHERE component_sku = ANY($1) OR kit_sku = ANY($1))",
        list(skus),
    )
    kits: dict[str, dict[str, int]] = defaultdict(dict)
    for r in rows:
        kits[r["kit_sku"]][r["component_sku"]] = r["quantity"]
    return dict(kits)


async def store_product(conn: Connection, product: ProductUpserted) -> bool:
    """Keep the facts stock needs (kit components, substitution group); False when stale."""
    stored = await conn.fetchval(
        "INSERT INTO stock_products AS p (sku, substitution_group, active, version)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (sku) DO UPDATE SET"
        " substitution_group = EXCLUDED.substitution_group, active = EXCLUDED.active,"
        " version = EXCLUDED.version WHERE p.version < EXCLUDED.version RETURNING version",
        product.sku,
        product.substitution_group,
        product.active,
        product.version,
    )
    if stored is None:
        return False
    await conn.execute("DELETE FROM stock_kit_components WHERE kit_sku = $1", product.sku)
    if product.components:
        await conn.executemany(
            "INSERT INTO stock_kit_components (kit_sku, component_sku, quantity)"
            " VALUES ($1, $2, $3)",
            [(product.sku, c.sku, c.quantity) for c in product.components],
        )
    return True


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


async def all_skus(conn: Connection, after: str, limit: int) -> list[str]:
    """SKUs the hub knows stock or kits of, in order, one page after ``after`` (for resync)."""
    rows = await conn.fetch(
        "SELECT sku FROM (SELECT sku FROM stock_ledger UNION SELECT kit_sku FROM"
        " stock_kit_components) s WHERE sku > $1 ORDER BY sku LIMIT $2",
        after,
        limit,
    )
    return [r["sku"] for r in rows]
