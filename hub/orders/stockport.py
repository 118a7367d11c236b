"""The order process's one seam to the stock service: reserve, release, confirm, and what changed.

Every call runs in the order's transaction, so a reservation, the order's new state and the
``stock.availability`` messages the change causes commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from hub.bus import Envelope
from hub.db import Connection
from hub.stock import reservations
from hub.stock.availability import StockContext, availability_changes, changes_by_sku
from hub.stock.reservations import ReservationRequest, ReservationResult
from schemas.envelope import CloudEvent


async def reserve_many(
    conn: Connection,
    ctx: StockContext,
    requests: Sequence[tuple[CloudEvent, ReservationRequest]],
) -> tuple[list[ReservationResult], list[tuple[int, Envelope]]]:
    """Reserve for many orders in one round trip, in the order given, then publish the figures
    that moved once for all of them; each message comes with the index of the order that
    last touched its SKU (the message's cause)."""
    results = await reservations.reserve_many(conn, [r for _, r in requests])
    touched: dict[str, int] = {}
    for index, ((_, request), result) in enumerate(zip(requests, results, strict=True)):
        if result.granted:
            for sku in {sku for sku, _ in request.lines} | set(result.held):
                touched[sku] = index
    if not touched:
        return results, []
    causes = {sku: requests[index][0] for sku, index in touched.items()}
    found = await changes_by_sku(conn, ctx, list(touched), causes)
    fallback = next(iter(touched.values()))
    return results, [(touched.get(sku, fallback), envelope) for sku, envelope in found]


async def release(
    conn: Connection, ctx: StockContext, cause: CloudEvent, reservation_id: str
) -> list[Envelope]:
    """Give the reservation's stock back; the figures that rose as a result."""
    skus = await reservations.reservation_skus(conn, reservation_id)
    if not await reservations.release(conn, reservation_id):
        return []
    return await availability_changes(conn, ctx, skus, cause)


async def release_rest(
    conn: Connection,
    ctx: StockContext,
    cause: CloudEvent,
    reservation_id: str,
    keep: Mapping[str, int],
) -> list[Envelope]:
    """Give back all but the units of ``keep`` (the part of the order that left); the figures
    that rose as a result."""
    skus = await reservations.keep_only(conn, reservation_id, keep)
    return await availability_changes(conn, ctx, skus, cause) if skus else []


async def mark_shipped(
    conn: Connection,
    reservation_id: str,
    lines: Mapping[str, int],
    at: datetime,
    location: str | None = None,
) -> None:
    """These units left (from ``location``, when known): a stock source that names no orders
    counts them out at its next level there, which then ends their hold (nothing changes
    until it does)."""
    await reservations.mark_shipped(conn, reservation_id, lines, at, location)


async def confirm(conn: Connection, reservation_id: str, erp_order_number: str) -> None:
    """Tie the reservation to the ERP's sales order, so the ledger hands it over in time."""
    await reservations.confirm(conn, reservation_id, erp_order_number)
