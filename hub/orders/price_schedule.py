"""Releasing prices the ERP set ahead, when they start: the price in force changes, and every
channel routing gives the list gets the ERP's event as it was sent.

Of the prices in force the one that started last wins: a promotion scheduled before a later
change of the regular price still starts on its day. A due price that started before the
price now in force (one taken later, while this hub was down) is superseded and goes nowhere.
Several hubs release side by side: each takes due rows it can lock and skips the others'.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg
import orjson
from prometheus_client import Counter

from hub import outbox
from hub.background import Poller
from hub.bus import Envelope
from hub.db import Connection
from hub.errors import HubError
from hub.handlers import Inbound
from hub.router import Router
from schemas.catalog import PriceChanged
from schemas.envelope import CloudEvent

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger(__name__)

BATCH = 500
"""Due prices released per transaction."""

_DUE = """
DELETE FROM catalog_prices_scheduled WHERE (sku, price_list, version) IN (
    SELECT sku, price_list, version FROM catalog_prices_scheduled WHERE valid_from <= $1
    ORDER BY valid_from, version LIMIT $2 FOR UPDATE SKIP LOCKED)
RETURNING valid_from, version, event, routing_key
"""

# The due price becomes the one in force unless one in force started later; the version
# kept is the higher, so a repeat of the newer ERP price is still known as one.
_START = """
INSERT INTO catalog_prices (sku, price_list, amount, currency, includes_vat, vat_rate, version,
                            updated_at, effective_from)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (sku, price_list) DO UPDATE SET
    amount = EXCLUDED.amount, currency = EXCLUDED.currency,
    includes_vat = EXCLUDED.includes_vat, vat_rate = EXCLUDED.vat_rate,
    version = greatest(catalog_prices.version, EXCLUDED.version),
    updated_at = EXCLUDED.updated_at, effective_from = EXCLUDED.effective_from
WHERE catalog_prices.effective_from <= EXCLUDED.effective_from
RETURNING 1
"""


async def start_price(conn: Connection, price: PriceChanged, now: datetime) -> bool:
    """Put a due price in force; False when the price in force started after it."""
    done = await conn.fetchval(
        _START,
        price.sku,
        price.price_list,
        price.price.amount,
        price.price.currency,
        price.includes_vat,
        price.vat_rate,
        price.version,
        now,
        price.valid_from,
    )
    return done is not None


async def release_due(
    pool: asyncpg.Pool, router: Router, now: datetime, counter: Counter | None = None
) -> tuple[int, list[Envelope], list[int]]:
    """Release one batch of prices due at ``now`` in one transaction, with the messages to the
    channels in the outbox; how many were due, the envelopes and their outbox rows."""
    envelopes: list[Envelope] = []
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(_DUE, now, BATCH)
        for row in sorted(rows, key=lambda r: (r["valid_from"], r["version"])):
            event = CloudEvent.model_validate(orjson.loads(row["event"]))
            price = PriceChanged.model_validate(event.data)
            if await start_price(conn, price, now):
                envelopes.extend(router.envelopes(Inbound(event, price, row["routing_key"])))
                what = "released"
            else:
                what = "superseded"
            if counter is not None:
                counter.labels(what).inc()
        written = await outbox.write(conn, envelopes)
    return len(rows), envelopes, written


async def release_once(hub: Hub, router: Router, now: datetime) -> int:
    """Release one batch of prices due at ``now`` and send their messages; how many were due.
    What a failed publish leaves in the outbox, the relay sends."""
    due, envelopes, written = await release_due(hub.pool, router, now, hub.metrics.price_schedule)
    if envelopes:
        try:
            await hub.publisher.publish_many(envelopes)
            await outbox.mark_sent(hub.pool, written)
        except (HubError, OSError, asyncpg.PostgresError) as exc:
            log.warning("released prices committed, the outbox relay will send them: %s", exc)
    return due


class PriceScheduler(Poller):
    """Releases due prices every few seconds, by the hub's clock."""

    task_name = "price-scheduler"

    def __init__(self, hub: Hub) -> None:
        super().__init__(hub.settings.price_schedule_interval_s)
        self._hub = hub
        self._router = Router(hub.table, hub.names, hub.config)

    async def tick(self) -> None:
        """Release every due price, a batch per transaction."""
        try:
            due = BATCH
            while due >= BATCH:  # a full batch: more may be due
                due = await release_once(self._hub, self._router, self._hub.clock())
        except (HubError, OSError, asyncpg.PostgresError) as exc:
            log.warning("releasing scheduled prices failed, will retry: %s", exc)
