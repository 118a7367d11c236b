"""The order process manager's persistence: one row per channel order, its history and shipments.

Every function runs on the caller's connection, inside the batch transaction, so a state
change commits together with the inbox entry and the messages it causes (outbox).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from hub.db import Connection
from hub.orders.validation import Catalog, ListPrice
from schemas.fulfilment import ShipmentCreated
from schemas.orders import OrderCancelled, OrderPlaced


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
    withdrawn: dict[str, int] = field(default_factory=dict)
    """Units per line id the channel or the ERP took off the order while it went on."""
    untold: dict[str, int] = field(default_factory=dict)
    """Of those, units the channel withdrew before the ERP had the sales order: it is told
    of them once it has."""

    def ordered(self) -> dict[str, int]:
        """Units ordered per line id, less those withdrawn since."""
        return {
            line.line_id: line.quantity - self.withdrawn.get(line.line_id, 0)
            for line in self.placed.lines
        }

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


def _order(row: Any, placed: OrderPlaced | None = None) -> Order:
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
        placed=placed or OrderPlaced.model_validate(_json(row["placed"])),
        picked=dict(_json(row["picked"])),
        shipped=dict(_json(row["shipped"])),
        correlation_id=row["correlation_id"],
        withdrawn=dict(_json(row.get("withdrawn") or {})),
        untold=dict(_json(row.get("withdrawn_untold") or {})),
    )


async def insert_many(
    conn: Connection, items: Sequence[tuple[str, OrderPlaced, str]], now: datetime
) -> tuple[dict[str, Order], dict[str, str]]:
    """Create many order rows in one statement; the new ones by id (duplicates are absent),
    and, for those whose cancellation came first, who cancelled them and why."""
    rows = await conn.fetch(
        "WITH created AS (INSERT INTO orders (order_id, channel, channel_order_id, state,"
        " placed, correlation_id, created_at, updated_at)"
        " SELECT o, c, co, 'received', p::jsonb, corr, $6, $6"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])"
        " AS t(o, c, co, p, corr) ON CONFLICT DO NOTHING"
        " RETURNING order_id, channel, channel_order_id, state, awaiting, deadline, attempts,"
        " version, reservation_id, erp_order_number, picked, shipped, correlation_id)"
        " SELECT c.*, e.cancelled_by || ': ' || e.reason AS cancelled_early"
        " FROM created c LEFT JOIN early_cancellations e ON e.order_id = c.order_id",
        [order_id for order_id, _, _ in items],
        [placed.channel for _, placed, _ in items],
        [placed.channel_order_id for _, placed, _ in items],
        [placed.model_dump_json() for _, placed, _ in items],
        [correlation for _, _, correlation in items],
        now,
    )
    placed_by_id = {order_id: placed for order_id, placed, _ in items}
    orders = {row["order_id"]: _order(row, placed_by_id[row["order_id"]]) for row in rows}
    early = {row["order_id"]: row["cancelled_early"] for row in rows if row["cancelled_early"]}
    if early:
        await conn.execute(
            "DELETE FROM early_cancellations WHERE order_id = ANY($1::text[])", list(early)
        )
    return orders, early


async def cancel_early(
    conn: Connection, order_id: str, cancelled: OrderCancelled, message_id: str, now: datetime
) -> None:
    """Keep a cancellation that came before its order, for the order to find on arrival."""
    await conn.execute(
        "INSERT INTO early_cancellations (order_id, channel, channel_order_id, cancelled_by,"
        " reason, message_id, at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        order_id,
        cancelled.channel,
        cancelled.channel_order_id,
        cancelled.cancelled_by,
        cancelled.reason,
        message_id,
        now,
    )


async def save_many(
    conn: Connection, changes: Sequence[tuple[Order, str, str, str | None]], now: datetime
) -> None:
    """Write many orders' new states with one history line each: two statements in all.

    ``changes``: (order, history event, detail, message id), one per order.
    """
    if not changes:
        return
    orders = list({order.order_id: order for order, _, _, _ in changes}.values())
    await conn.execute(
        "UPDATE orders AS o SET state = t.state, awaiting = t.awaiting, deadline = t.deadline,"
        " attempts = t.attempts, version = o.version + 1, reservation_id = t.reservation_id,"
        " erp_order_number = t.erp, picked = t.picked::jsonb, shipped = t.shipped::jsonb,"
        " updated_at = $10 FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[],"
        " $5::int[], $6::text[], $7::text[], $8::text[], $9::text[])"
        " AS t(order_id, state, awaiting, deadline, attempts, reservation_id, erp, picked,"
        " shipped) WHERE o.order_id = t.order_id",
        [o.order_id for o in orders],
        [o.state for o in orders],
        [o.awaiting for o in orders],
        [o.deadline for o in orders],
        [o.attempts for o in orders],
        [o.reservation_id for o in orders],
        [o.erp_order_number for o in orders],
        [orjson.dumps(o.picked).decode() for o in orders],
        [orjson.dumps(o.shipped).decode() for o in orders],
        now,
    )
    await conn.execute(
        "INSERT INTO order_history (order_id, at, event, state, detail, message_id)"
        " SELECT o, $5, e, s, d, m FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"
        " $6::text[]) AS t(o, e, s, d, m)",
        [order.order_id for order, _, _, _ in changes],
        [event for _, event, _, _ in changes],
        [order.state for order, _, _, _ in changes],
        [detail[:1000] for _, _, detail, _ in changes],
        now,
        [message_id for _, _, _, message_id in changes],
    )
    for order in orders:
        order.version += 1


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


_SAVE = (
    "UPDATE orders SET state = $2, awaiting = $3, deadline = $4, attempts = $5,"
    " version = version + 1, reservation_id = $6, erp_order_number = $7,"
    " picked = $8::jsonb, shipped = $9::jsonb, updated_at = $10, withdrawn = $11::jsonb,"
    " withdrawn_untold = $12::jsonb WHERE order_id = $1"
)


async def save(
    conn: Connection,
    order: Order,
    now: datetime,
    event: str | None = None,
    detail: str = "",
    message_id: str | None = None,
) -> None:
    """Write the order's new state and bump its version (the row is locked by ``lock``);
    with ``event``, the history line goes in the same statement (one round trip)."""
    history = (
        ""
        if event is None
        else " RETURNING 1) INSERT INTO order_history (order_id, at, event, state, detail,"
        " message_id) SELECT $1, $10, $13, $2, $14, $15 FROM saved"
    )
    extra: tuple[object, ...] = () if event is None else (event, detail[:1000], message_id)
    await conn.execute(
        ("WITH saved AS (" + _SAVE + history) if event is not None else _SAVE,
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
        orjson.dumps(order.withdrawn).decode(),
        orjson.dumps(order.untold).decode(),
        *extra,
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
    conn: Connection,
    order_id: str,
    shipment_id: str,
    lines: dict[str, int],
    now: datetime,
    parcels: int = 1,
) -> None:
    """Record a shipment asked of the carrier, in how many parcels."""
    await conn.execute(
        "INSERT INTO order_shipments (order_id, shipment_id, status, lines, created_at, parcels)"
        " VALUES ($1, $2, 'requested', $3::jsonb, $4, $5) ON CONFLICT DO NOTHING",
        order_id,
        shipment_id,
        orjson.dumps(lines).decode(),
        now,
        parcels,
    )


async def shipment_created(conn: Connection, order_id: str, msg: ShipmentCreated) -> str:
    """Record the carrier's label: ``created``; ``repeat`` when it was already (the carrier
    repeated itself, or the shipment is unknown); ``dropped`` when the hub had cancelled the
    shipment (its tracking is kept, the shipment stays cancelled)."""
    status = await conn.fetchval(
        "UPDATE order_shipments SET status = CASE WHEN status = 'cancelled' THEN 'cancelled'"
        " ELSE 'created' END, carrier = $3, tracking_number = $4, tracking_url = $5,"
        " label_url = $6"
        " WHERE order_id = $1 AND shipment_id = $2 AND status <> 'created' RETURNING status",
        order_id,
        msg.shipment_id,
        msg.carrier,
        msg.tracking_number,
        msg.tracking_url,
        msg.label_url,
    )
    if status is None:
        return "repeat"
    return "dropped" if status == "cancelled" else "created"


async def update_label(conn: Connection, order_id: str, shipment_id: str, url: str) -> bool:
    """A label the carrier made after the shipment (a later shipment.created): True if new."""
    done = await conn.fetchval(
        "UPDATE order_shipments SET label_url = $3 WHERE order_id = $1 AND shipment_id = $2"
        " AND status = 'created' AND label_url IS DISTINCT FROM $3 RETURNING 1",
        order_id,
        shipment_id,
        url,
    )
    return done is not None


async def update_tracking(
    conn: Connection, order_id: str, shipment_id: str, number: str, url: str | None
) -> tuple[bool, str] | None:
    """A carrier's later tracking for a created shipment: whether it changed what is kept, and
    the number kept before; None when the order has no such created shipment."""
    row = await conn.fetchrow(
        "SELECT tracking_number, tracking_url FROM order_shipments"
        " WHERE order_id = $1 AND shipment_id = $2 AND status = 'created'",
        order_id,
        shipment_id,
    )
    if row is None:
        return None
    before = str(row["tracking_number"])
    if (row["tracking_number"], row["tracking_url"]) == (number, url or row["tracking_url"]):
        return False, before
    await conn.execute(
        "UPDATE order_shipments SET tracking_number = $3, tracking_url = coalesce($4, tracking_url)"
        " WHERE order_id = $1 AND shipment_id = $2",
        order_id,
        shipment_id,
        number,
        url,
    )
    return True, before


async def open_shipments(conn: Connection, order_id: str) -> list[tuple[str, dict[str, int], int]]:
    """Shipments asked of the carrier but not yet created: (shipment id, lines, parcels)."""
    rows = await conn.fetch(
        "SELECT shipment_id, lines, parcels FROM order_shipments"
        " WHERE order_id = $1 AND status = 'requested' ORDER BY created_at, shipment_id",
        order_id,
    )
    return [(r["shipment_id"], dict(_json(r["lines"])), int(r["parcels"])) for r in rows]


async def cancel_open_shipments(
    conn: Connection, order_id: str
) -> list[tuple[str, dict[str, int]]]:
    """Mark the shipments still waiting for their label cancelled; their ids and lines."""
    rows = await conn.fetch(
        "UPDATE order_shipments SET status = 'cancelled'"
        " WHERE order_id = $1 AND status = 'requested' RETURNING shipment_id, lines",
        order_id,
    )
    return sorted((r["shipment_id"], dict(_json(r["lines"]))) for r in rows)


async def weights(conn: Connection, skus: list[str]) -> dict[str, int]:
    """Grams per unit of these SKUs, as the ERP's products give them (those with a weight)."""
    rows = await conn.fetch(
        "SELECT sku, (data->>'weight_grams')::bigint AS grams FROM stock_products"
        " WHERE sku = ANY($1::text[]) AND data->>'weight_grams' IS NOT NULL",
        skus,
    )
    return {r["sku"]: int(r["grams"]) for r in rows}


def gtin_key(gtin: str) -> str:
    """A GTIN as 14 digits, so an EAN-13, a UPC-A and a GTIN-14 of one product compare equal."""
    return gtin.strip().zfill(14)


async def skus_by_gtin(conn: Connection, skus: list[str]) -> dict[str, list[str]]:
    """GTIN (``gtin_key``) -> the SKUs among these whose product data, as the ERP sent it,
    carries it."""
    rows = await conn.fetch(
        "SELECT sku, data->>'gtin' AS gtin FROM stock_products"
        " WHERE sku = ANY($1::text[]) AND data->>'gtin' IS NOT NULL ORDER BY sku",
        skus,
    )
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(gtin_key(row["gtin"]), []).append(row["sku"])
    return found


async def shipment_count(conn: Connection, order_id: str) -> int:
    """How many shipments the order has had asked (numbers the next one)."""
    return int(
        await conn.fetchval("SELECT count(*) FROM order_shipments WHERE order_id = $1", order_id)
    )


async def catalog_for(conn: Connection, skus: list[str], price_list: str) -> Catalog:
    """The known SKUs and list prices an order's validation needs, in one round trip each."""
    rows = await conn.fetch(
        "SELECT s.sku, p.amount, p.currency, p.includes_vat, p.vat_rate, sp.active,"
        " EXISTS (SELECT 1 FROM catalog_prices c WHERE c.sku = s.sku) AS priced"
        " FROM unnest($2::text[]) AS s(sku)"
        " LEFT JOIN catalog_prices p ON p.sku = s.sku AND p.price_list = $1"
        " LEFT JOIN stock_products sp ON sp.sku = s.sku",
        price_list,
        skus,
    )
    prices = {
        r["sku"]: ListPrice(r["amount"], r["currency"], r["includes_vat"], r["vat_rate"])
        for r in rows
        if r["amount"] is not None
    }
    # The stock service's product facts decide, where it has any: an inactive SKU is gone;
    # otherwise a SKU with a price in any list is known.
    known = frozenset(
        r["sku"] for r in rows if r["active"] or (r["active"] is None and r["priced"])
    )
    return Catalog(known, prices)


async def returns_asked(conn: Connection, order_id: str) -> dict[str, dict[str, int]]:
    """The units each return of the order asked back: return id -> SKU -> units."""
    rows = await conn.fetch(
        "SELECT return_id, sku, quantity FROM order_returns WHERE order_id = $1", order_id
    )
    asked: dict[str, dict[str, int]] = {}
    for row in rows:
        asked.setdefault(row["return_id"], {})[row["sku"]] = row["quantity"]
    return asked


async def receive_return(
    conn: Connection, order_id: str, return_id: str, units: Mapping[str, int], now: datetime
) -> dict[str, int]:
    """Record what a return brought back (a receipt sent again counts once, the larger count)
    and return the units back per SKU over all the order's returns."""
    rows = await conn.fetch(
        "WITH kept AS (INSERT INTO order_returns_received (order_id, return_id, sku, quantity, at)"
        " SELECT $1, $2, sku, quantity, $5 FROM unnest($3::text[], $4::int[]) AS t(sku, quantity)"
        " ON CONFLICT (order_id, return_id, sku) DO UPDATE"
        " SET quantity = GREATEST(order_returns_received.quantity, EXCLUDED.quantity)"
        " RETURNING return_id, sku, quantity)"
        " SELECT sku, sum(quantity)::int AS back FROM ("
        "   SELECT sku, quantity FROM order_returns_received"
        "   WHERE order_id = $1 AND NOT (return_id = $2 AND sku = ANY($3::text[]))"
        "   UNION ALL SELECT sku, quantity FROM kept) AS r GROUP BY sku",
        order_id,
        return_id,
        list(units),
        list(units.values()),
        now,
    )
    return {row["sku"]: row["back"] for row in rows}


async def add_return(
    conn: Connection, order_id: str, return_id: str, units: Mapping[str, int], now: datetime
) -> None:
    """Record what a return asks back, so no later return asks the same units again."""
    await conn.execute(
        "INSERT INTO order_returns (order_id, return_id, sku, quantity, at)"
        " SELECT $1, $2, sku, quantity, $5 FROM unnest($3::text[], $4::int[]) AS t(sku, quantity)",
        order_id,
        return_id,
        list(units),
        list(units.values()),
        now,
    )
