"""The order process's one seam to the stock service: reserve, release, confirm, and what changed.

Every call runs in the order's transaction, so a reservation, the order's new state and the
``stock.availability`` messages the change causes commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence

from hub.bus import Envelope
from hub.db import Connection
from hub.stock import reservations
from hub.stock.availability import StockContext, availability_changes
from hub.stock.reservations import ReservationResult
from schemas.envelope import CloudEvent


async def reserve(
    conn: Connection,
    ctx: StockContext,
    cause: CloudEvent,
    *,
    reservation_id: str,
    channel: str,
    order_ref: str,
    lines: Sequence[tuple[str, int]],
    allow_partial: bool,
) -> tuple[ReservationResult, list[Envelope]]:
    """Reserve all lines or none (or what there is, for a backorder) and the figures it moved."""
    result = await reservations.reserve(
        conn,
        reservation_id=reservation_id,
        channel=channel,
        order_ref=order_ref,
        lines=lines,
        allow_partial=allow_partial,
    )
    if not result.granted:
        return result, []
    held = await reservations.reservation_skus(conn, reservation_id)
    skus = {sku for sku, _ in lines} | set(held)
    return result, await availability_changes(conn, ctx, skus, cause)


async def release(
    conn: Connection, ctx: StockContext, cause: CloudEvent, reservation_id: str
) -> list[Envelope]:
    """Give the reservation's stock back; the figures that rose as a result."""
    skus = await reservations.reservation_skus(conn, reservation_id)
    if not await reservations.release(conn, reservation_id):
        return []
    return await availability_changes(conn, ctx, skus, cause)


async def confirm(conn: Connection, reservation_id: str, erp_order_number: str) -> None:
    """Tie the reservation to the ERP's sales order, so the ledger hands it over in time."""
    await reservations.confirm(conn, reservation_id, erp_order_number)
