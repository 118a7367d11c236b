"""Figures that move with the date alone: a SKU with receipts the ERP expects is shown with an
"available from" date that must not lie in the past, and a channel selling incoming stock
(``incoming_within_days``) counts a receipt only once it comes within its window. Nothing is
sent to the hub on such a day, so the hub looks at every SKU with receipts again once the
date has changed (by the hub's clock) and sends the figures that moved, through the outbox
like every stock change. Several hubs may each do it: a figure that did not move is not sent
twice.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import TYPE_CHECKING

import asyncpg

from hub import outbox
from hub.background import Poller
from hub.bus import Envelope
from hub.stock.availability import StockContext, availability_changes
from schemas.envelope import new_event

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger(__name__)

PAGE = 500
"""SKUs with receipts looked at per transaction."""

_WITH_RECEIPTS = """
SELECT DISTINCT sku FROM stock_incoming WHERE sku > $1 ORDER BY sku LIMIT $2
"""


async def figures_for_the_day(
    pool: asyncpg.Pool, ctx: StockContext, today: date
) -> tuple[int, list[Envelope], list[int]]:
    """Recompute every SKU with receipts (and the kits of them), a page per transaction;
    how many SKUs, the messages of the figures that moved and their outbox rows."""
    cause = new_event(source="hub", type="stock.day", data={"date": today.isoformat()})
    seen, envelopes, written = 0, [], []
    after = ""
    while True:
        async with pool.acquire() as conn, conn.transaction():
            skus = [r["sku"] for r in await conn.fetch(_WITH_RECEIPTS, after, PAGE)]
            if not skus:
                break
            after = skus[-1]
            moved = await availability_changes(conn, ctx, skus, cause)
            written.extend(await outbox.write(conn, moved))
        seen += len(skus)
        envelopes.extend(moved)
    return seen, envelopes, written


class ReceiptsClock(Poller):
    """Looks at the SKUs with receipts again when the hub's date changes (and at start)."""

    task_name = "receipts-clock"

    def __init__(self, hub: Hub) -> None:
        super().__init__(hub.settings.receipts_clock_interval_s)
        self._hub = hub
        self._ctx = StockContext.from_hub(hub)
        self._done: date | None = None

    async def tick(self) -> None:
        """Once per date: send the figures the new date moved."""
        today = self._hub.clock().date()
        if today == self._done:
            return
        hub = self._hub
        try:
            seen, envelopes, written = await figures_for_the_day(hub.pool, self._ctx, today)
            self._done = today
            if envelopes:
                log.info(
                    "%s: %d figure(s) of %d SKU(s) with receipts moved", today, len(envelopes), seen
                )
            await outbox.send_committed(hub.publisher, hub.pool, envelopes, written, "figures")
        except Exception as exc:  # the clock must outlive any one failure: next tick again
            log.warning("looking at receipts for %s failed, will retry: %s", today, exc)
