"""The order process manager's persistence: one row per channel order, its history and shipments.

Every function runs on the caller's connection, inside the batch transaction, so a state
change commits together with the inbox entry and the messages it causes (outbox).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from hub.db import Connection
from hub.orders.validation import Catalog, ListPrice
from schemas.orders import OrderPlaced


@dataclass
class Order:
    """An order as the process manager sees it: where it is, whose answer is due, and by when."""

    order_id: str
    channel: str
    channel_order_id: str
    state: str
    awaiting: str | None
    deadline: datetime | None
    attempts: int
    version: int
    reservation_id: str | None
    erp_order_number: str | None
    placed: OrderPlaced
    picked: dict[str, int] = field(default_factory=dict)
    shipped: dict[str, int] = field(default_factory=dict)
    correlation_id: str | None = None

    def ordered(self) -> dict[str, int]:
        """Units ordered per line id."""
        return {line.line_id: line.quantity for line in self.placed.lines}

    def unshipped(self) -> dict[str, int]:
        """Units per line id not shipped yet (what a further pick must cover)."""
        left = {k: q - self.shipped.get(k, 0) for k, q in self.ordered().items()}
        return {k: q for k, q in left.items() if q > 0}

    def unpicked(self) -> dict[str, int]:
        """Units per line id not picked yet."""
        left = {k: q - self.picked.get(k, 0) for k, q in self.ordered().items()}
        return {k: q for k, q in left.items() if q > 0}


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _order(row: Any) -> Order:
    return Order(
        order_id=row["order_id"],
        channel=row["channel"],
        channel_order_id=row["channel_order_id"],
        state=row["state"],
        awaiting=row["awaiting"],
        deadline=row["deadline"],
        attempts=row["attempts"],
        version=row["version"],
        reservation_id=row["reservation_id"],
        erp_order_number=row["erp_order_number"],
        placed=OrderPlaced.model_validate(_json(row["placed"])),
        picked=dict(_json(row["picked"])),
        shipped=dict(_json(row["shipped"])),
        correlation_id=row["correlation_id"],
    )


async def insert_new(
    conn: Connection, order_id: str, placed: OrderPlaced, correlation_id: str, now: datetime
) -> bool:
    """Create the order row; False when this channel order already exists (a duplicate)."""
    row = await conn.fetchval(
        "INSERT INTO orders (order_id, channel, channel_order_id, state, placed,"
        " correlation_id, created_at, updated_at)"
        " VALUES ($1, $2, $3, 'received', $4::jsonb, $5, $6, $6)"
        " ON CONFLICT DO NOTHING RETURNING order_id",
        order_id,
        placed.channel,
        placed.channel_order_id,
        orjson.dumps(placed.model_dump(mode="json")).decode(),
        correlation_id,
        now,
    )
    return row is not None


async def lock(conn: Connection, order_id: str) -> Order | None:
    """The order, locked for this transaction so its transitions happen one at a time."""
    row = await conn.fetchrow("SELECT * FROM orders WHERE order_id = $1 FOR UPDATE", order_id)
    return _order(row) if row else None


async def find(conn: Connection, channel: str, channel_order_id: str) -> Order | None:
    """The order a channel knows by its own id, locked like ``lock``."""
    row = await conn.fetchrow(
        "SELECT * FROM orders WHERE channel = $1 AND channel_order_id = $2 FOR UPDATE",
        channel,
        channel_order_id,
    )
    return _order(row) if row else None


async def save(conn: Connection, order: Order, now: datetime) -> None:
    """Write the order's new state and bump its version (the row is locked by ``lock``)."""
    await conn.execute(
        "UPDATE orders SET state = $2, awaiting = $3, deadline = $4, attempts = $5,"
        " version = version + 1, reservation_id = $6, erp_order_number = $7,"
        " picked = $8::jsonb, shipped = $9::jsonb, updated_at = $10 WHERE order_id = $1",
        order.order_id,
        order.state,
        order.awaiting,
        order.deadline,
        order.attempts,
        order.reservation_id,
        order.erp_order_number,
        orjson.dumps(order.picked).decode(),
        orjson.dumps(order.shipped).decode(),
        now,
    )
    order.version += 1


async def note(
    conn: Connection,
    order: Order,
    event: str,
    now: datetime,
    detail: str = "",
    message_id: str | None = None,
) -> None:
    """Add a line to the order's history."""
    await conn.execute(
        "INSERT INTO order_history (order_id, at, event, state, detail, message_id)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        order.order_id,
        now,
        event,
        order.state,
        detail[:1000],
        message_id,
    )


async def add_shipment(
    conn: Connection, order_id: str, shipment_id: str, lines: dict[str, int], now: datetime
) -> None:
    """Record a shipment asked of the carrier."""
    await conn.execute(
        "INSERT INTO order_shipments (order_id, shipment_id, status, lines, created_at)"
        " VALUES ($1, $2, 'requested', $3::jsonb, $4) ON CONFLICT DO NOTHING",
        order_id,
        shipment_id,
        orjson.dumps(lines).decode(),
        now,
    )


async def shipment_created(
    conn: Connection, order_id: str, shipment_id: str, carrier: str, number: str, url: str | None
) -> bool:
    """Mark a shipment created; False when it already was (the carrier repeated itself)."""
    done = await conn.fetchval(
        "UPDATE order_shipments SET status = 'created', carrier = $3, tracking_number = $4,"
        " tracking_url = $5 WHERE order_id = $1 AND shipment_id = $2 AND status <> 'created'"
        " RETURNING 1",
        order_id,
        shipment_id,
        carrier,
        number,
        url,
    )
    return done is not None


async def open_shipments(conn: Connection, order_id: str) -> list[tuple[str, dict[str, int]]]:
    """Shipments asked of the carrier but not yet created: (shipment id, lines)."""
    rows = await conn.fetch(
        "SELECT shipment_id, lines FROM order_shipments"
        " WHERE order_id = $1 AND status = 'requested' ORDER BY created_at, shipment_id",
        order_id,
    )
    return [(r["shipment_id"], dict(_json(r["lines"]))) for r in rows]


async def shipment_count(conn: Connection, order_id: str) -> int:
    """How many shipments the order has had asked (numbers the next one)."""
    return int(
        await conn.fetchval("SELECT count(*) FROM order_shipments WHERE order_id = $1", order_id)
    )


async def catalog_for(conn: Connection, skus: list[str], price_list: str) -> Catalog:
    """The known SKUs and list prices an order's validation needs, in one round trip each."""
    prices = {
        r["sku"]: ListPrice(r["amount"], r["currency"], r["includes_vat"], r["vat_rate"])
        for r in await conn.fetch(
            "SELECT * FROM catalog_prices WHERE price_list = $1 AND sku = ANY($2::text[])",
            price_list,
            skus,
        )
    }
    known = set(
        await conn.fetchval(
            "SELECT array_agg(DISTINCT sku) FROM catalog_prices WHERE sku = ANY($1::text[])",
            skus,
        )
        or ()
    )
    if await conn.fetchval("SELECT to_regclass('stock_products') IS NOT NULL"):
        # The stock service's product facts decide, where it has any: an inactive SKU is gone.
        for row in await conn.fetch(
            "SELECT sku, active FROM stock_products WHERE sku = ANY($1::text[])", skus
        ):
            (known.add if row["active"] else known.discard)(row["sku"])
    return Catalog(frozenset(known), prices)
