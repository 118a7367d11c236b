"""What ``hub stock import`` and ``hub stock resync`` do, as plain async functions to test.

An import publishes each row as a ``stock.level`` event to ``hub.in`` from a configured
source (default: the ERP), so a file feed takes exactly the path an ERP update takes:
validation, inbox dedupe, versioned ledger, change detection and the outbox. Event ids come
from the file's content and line, so importing the same file twice has its effect once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg

from hub import outbox
from hub.bus import Envelope, Publisher
from hub.settings import Settings
from hub.stock import ledger
from hub.stock.availability import StockContext, availability_changes
from hub.stock.feed import Feed, FeedError, read_feed
from hub.topology import Names
from routes.config import HubConfig
from routes.matching import RouteTable
from schemas.envelope import new_event
from schemas.inventory import StockLevel

BATCH = 500


@dataclass(frozen=True)
class ImportResult:
    """Rows published, or the errors that stopped the whole file."""

    published: int
    errors: tuple[FeedError, ...]


async def import_file(
    settings: Settings,
    config: HubConfig,
    path: Path,
    *,
    location: str | None = None,
    source: str | None = None,
    measured_at: datetime | None = None,
) -> ImportResult:
    """Validate the whole file, then publish every row; any bad row means nothing is sent.
    ``measured_at`` (default: now) is when the file's figures were true: holds on units
    shipped after it are not ended by them."""
    sender = source or config.erp
    if not RouteTable.from_config(config).to_hub(sender, StockLevel.TYPE):
        return ImportResult(0, (FeedError(0, f"{sender!r} has no route for stock.level"),))
    feed = read_feed(path, location=location)
    if feed.errors:
        return ImportResult(0, feed.errors)
    names = Names(settings.name_prefix)
    envelopes = []
    levels = await _versioned(settings, feed)
    for line, level in levels:
        event = new_event(
            source=sender,
            type=StockLevel.TYPE,
            data=level.model_dump(mode="json"),
            subject=level.sku,
            id=f"stock-import-{feed.digest}-{line}",
            time=measured_at,
        )
        envelopes.append(
            Envelope(
                message_id=event.id,
                exchange=names.inbound_exchange,
                routing_key=f"{sender}.{StockLevel.TYPE}",
                message_type=event.type,
                source=sender,
                body=event.to_bytes(),
            )
        )
    publisher = Publisher(settings.broker_url, settings.publish_timeout_s)
    await publisher.start()
    try:
        for start in range(0, len(envelopes), BATCH):
            await publisher.publish_many(envelopes[start : start + BATCH])
    finally:
        await publisher.stop()
    return ImportResult(len(envelopes), ())


async def _versioned(settings: Settings, feed: Feed) -> list[tuple[int, StockLevel]]:
    """Rows without a version get one more than the version the hub holds for them, so the
    import applies now and the source's next change still does. (A timestamp would outrank
    every version of a source that counts in seconds or from 1, and freeze those rows
    against it for good.)"""
    if not feed.unversioned:
        return list(feed.levels)
    keys = [(level.sku, level.location) for line, level in feed.levels if line in feed.unversioned]
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch(
            "SELECT l.sku, l.location, l.version FROM stock_ledger AS l"
            " JOIN unnest($1::text[], $2::text[]) AS k(sku, location)"
            " ON l.sku = k.sku AND l.location = k.location",
            [sku for sku, _ in keys],
            [location for _, location in keys],
        )
    finally:
        await conn.close()
    held = {(r["sku"], r["location"]): int(r["version"]) for r in rows}
    return [
        (line, level)
        if line not in feed.unversioned
        else (
            line,
            level.model_copy(update={"version": held.get((level.sku, level.location), 0) + 1}),
        )
        for line, level in feed.levels
    ]


async def resync(settings: Settings, config: HubConfig, channel: str | None = None) -> Counter[str]:
    """Re-publish every SKU's current figure (to one channel or all), in batches via the outbox."""
    ctx = StockContext(config, RouteTable.from_config(config), Names(settings.name_prefix))
    cause = new_event(source="hub", type="stock.resync", data={"channel": channel})
    sent: Counter[str] = Counter()
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    publisher = Publisher(settings.broker_url, settings.publish_timeout_s)
    await publisher.start()
    try:
        after = ""
        while True:
            async with pool.acquire() as conn:
                skus = await ledger.all_skus(conn, after, BATCH)
                if not skus:
                    break
                after = skus[-1]
                async with conn.transaction():
                    envelopes = await availability_changes(
                        conn, ctx, skus, cause, force=True, only_channel=channel
                    )
                    ids = await outbox.write(conn, envelopes)
            await publisher.publish_many(envelopes)
            await outbox.mark_sent(pool, ids)
            sent.update(e.routing_key.split(".", 1)[0] for e in envelopes)
    finally:
        await publisher.stop()
        await pool.close()
    return sent
