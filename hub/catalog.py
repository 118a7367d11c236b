"""``hub catalog resync``: give a channel the current catalog (products and prices) again;
``hub catalog check``: find the ERP's SKUs a channel's ``sku_map`` uses for another product.

A channel added by configuration, or one that lost its state, would otherwise get a product's
data or a price only when the ERP next changes it. The hub keeps the latest product as the
ERP sent it and the latest price per list; a resync sends each one to the channel that routing
would send it to (the same routes, markets, SKUs sold and SKU names), as the ERP's event.
Event ids derive from the channel, the item and its version, so a resync repeated before
anything changed carries the same ids for the channel's adapter to dedupe.

A page of rows is read ``FOR SHARE`` and published before its transaction ends, so a newer
version the ERP sends meanwhile waits for the page and is queued for the channel after the
resync's older copy, not before it; over HTTP the delivery worker sends one version per SKU
at a time and sends a version equal to the delivered one again. A page that meets a live
update in a deadlock is read again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from hub.bus import Envelope, Publisher
from hub.db import Connection
from hub.errors import Unroutable
from hub.handlers import Inbound
from hub.outgoing import to_channel
from hub.router import Router
from hub.settings import Settings
from hub.topology import Names
from routes.config import HubConfig
from routes.matching import RouteTable
from schemas.catalog import PriceChanged, ProductUpserted
from schemas.envelope import CloudEvent, derived_id

PAGE = 200
DEADLOCK_TRIES = 3

_PRODUCTS = (
    "SELECT sku, data FROM stock_products WHERE data IS NOT NULL AND sku > $1 ORDER BY sku LIMIT $2"
)
_PRICES = (
    "SELECT sku, price_list, amount, currency, includes_vat, vat_rate, version"
    " FROM catalog_prices WHERE (sku, price_list) > ($1, $2) ORDER BY sku, price_list LIMIT $3"
)


_KNOWN_SKUS = (
    "SELECT sku FROM stock_products WHERE sku = ANY($1::text[])"
    " UNION SELECT sku FROM catalog_prices WHERE sku = ANY($1::text[])"
    " UNION SELECT sku FROM stock_ledger WHERE sku = ANY($1::text[])"
)


async def sku_clashes(conn: Connection, table: RouteTable) -> list[tuple[str, str]]:
    """(channel, SKU) for each ERP SKU the hub knows that a channel's ``sku_map`` uses as its
    name for another product: routing keeps that SKU's products, prices and stock from the
    channel (they would change the other product's listing) until the map changes."""
    taken = table.sku_names_taken()
    names = sorted(set().union(*taken.values())) if taken else []
    if not names:
        return []
    known = {r["sku"] for r in await conn.fetch(_KNOWN_SKUS, names)}
    return sorted((ch, sku) for ch, own in taken.items() for sku in own & known)


async def find_sku_clashes(settings: Settings, config: HubConfig) -> list[tuple[str, str]]:
    """``sku_clashes`` against the hub's database."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        return await sku_clashes(conn, RouteTable.from_config(config))
    finally:
        await conn.close()


WITHOUT_DATA = "product without data (kept before migration 018; sent again by the ERP, it has)"


Page = Sequence[ProductUpserted | PriceChanged]


async def resync_catalog(
    settings: Settings,
    config: HubConfig,
    channel: str,
    *,
    on_page: Callable[[Page], Awaitable[None]] | None = None,
) -> Counter[str]:
    """Send the channel every kept product and price routing gives it; how many of each type,
    and (under ``WITHOUT_DATA``) how many products it could not send. ``on_page`` is awaited
    with each page before it is sent, while its rows are held."""
    table = RouteTable.from_config(config)
    names = Names(settings.name_prefix)
    router = Router(table, names, config)
    now = datetime.now(UTC)
    sent: Counter[str] = Counter()
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    publisher = Publisher(settings.broker_url, settings.publish_timeout_s)
    await publisher.start()

    async def send(page: Page) -> None:
        if on_page is not None:
            await on_page(page)
        envelopes = [
            envelope
            for message in page
            if (envelope := _for(router, table, names, config.erp, channel, message, now))
        ]
        if envelopes:
            await publisher.publish_many(envelopes)
            sent.update(e.message_type for e in envelopes)

    try:
        async with pool.acquire() as conn:
            await _each_page(conn, send)
        if missing := await pool.fetchval("SELECT count(*) FROM stock_products WHERE data IS NULL"):
            sent[WITHOUT_DATA] = missing
    finally:
        await publisher.stop()
        await pool.close()
    return sent


async def _each_page(
    conn: Connection,
    send: Callable[[Page], Awaitable[None]],
) -> None:
    """Every kept product, then every kept price, a page at a time in key order, each page
    sent while its rows are held ``FOR SHARE`` (a newer version waits for it)."""
    after = ""
    while rows := await _page(conn, _PRODUCTS, (after, PAGE), _products, send):
        after = rows[-1]["sku"]
    last = ("", "")
    while rows := await _page(conn, _PRICES, (*last, PAGE), _prices, send):
        last = (rows[-1]["sku"], rows[-1]["price_list"])


async def _page(
    conn: Connection,
    query: str,
    args: tuple[Any, ...],
    read: Callable[[list[asyncpg.Record]], Page],
    send: Callable[[Page], Awaitable[None]],
) -> list[asyncpg.Record]:
    """Read a page ``FOR SHARE`` and send it before the transaction ends; read it again when
    it deadlocks with a live update (only the read waits for locks, so nothing was sent)."""
    for attempt in range(DEADLOCK_TRIES):
        try:
            async with conn.transaction():
                rows: list[asyncpg.Record] = await conn.fetch(query + " FOR SHARE", *args)
                if rows:
                    await send(read(rows))
                return rows
        except asyncpg.DeadlockDetectedError:
            if attempt == DEADLOCK_TRIES - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _products(rows: list[asyncpg.Record]) -> Page:
    return [ProductUpserted.model_validate(orjson.loads(r["data"])) for r in rows]


def _prices(rows: list[asyncpg.Record]) -> Page:
    return [_price(r) for r in rows]


def _price(row: Any) -> PriceChanged:
    return PriceChanged.model_validate(
        {
            "sku": row["sku"],
            "price_list": row["price_list"],
            "price": {"amount": row["amount"], "currency": row["currency"]},
            "includes_vat": row["includes_vat"],
            "vat_rate": row["vat_rate"],
            "version": row["version"],
        }
    )


def _for(
    router: Router,
    table: RouteTable,
    names: Names,
    erp: str,
    channel: str,
    message: ProductUpserted | PriceChanged,
    now: datetime,
) -> Envelope | None:
    """The ERP's event for this item, told in the channel's words, if routing sends it there."""
    sku = message.sku
    data = message.model_dump(mode="json")
    price_list = message.price_list if isinstance(message, PriceChanged) else ""
    key = (price_list, str(message.version))
    event = CloudEvent(
        id=derived_id("catalog-resync", channel, message.TYPE, sku, *key),
        source=erp,
        type=message.TYPE,
        time=now,
        subject=sku,
        data=data,
    )
    try:
        destinations = router.destinations(Inbound(event, message, f"{erp}.{message.TYPE}"))
    except Unroutable:
        return None
    if channel not in destinations:
        return None
    told = event.model_copy(
        update={
            "data": router.as_channel_sees_it(channel, message.TYPE, data),
            "subject": table.channel_sku(channel, sku),
        }
    )
    return to_channel(names, channel, told)
