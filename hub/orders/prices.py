"""The price projection: the ERP's price per SKU and price list, kept to check orders against."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from prometheus_client import Counter

from hub.bus import Envelope
from hub.db import Connection
from hub.errors import BusinessRuleViolation
from hub.handlers import Inbound
from hub.router import Router
from routes.config import MarketConfig
from schemas.catalog import PriceChanged

_UPSERT = """
INSERT INTO catalog_prices (sku, price_list, amount, currency, includes_vat, vat_rate, version,
                            updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (sku, price_list) DO UPDATE SET
    amount = EXCLUDED.amount, currency = EXCLUDED.currency,
    includes_vat = EXCLUDED.includes_vat, vat_rate = EXCLUDED.vat_rate,
    version = EXCLUDED.version, updated_at = EXCLUDED.updated_at
WHERE catalog_prices.version < EXCLUDED.version
RETURNING 1
"""

# A price set ahead, kept until it starts, if newer than the price in force; a repeat of one
# already kept is not kept twice.
_SCHEDULE = """
INSERT INTO catalog_prices_scheduled (sku, price_list, version, valid_from, event, routing_key)
SELECT $1, $2, $3, $4, $5::jsonb, $6
WHERE NOT EXISTS (SELECT 1 FROM catalog_prices
                  WHERE sku = $1 AND price_list = $2 AND version >= $3)
ON CONFLICT DO NOTHING
RETURNING 1
"""


async def store_price(conn: Connection, price: PriceChanged, now: datetime) -> bool:
    """Keep the price if it is newer than the one stored; False for a stale or repeated one."""
    done = await conn.fetchval(
        _UPSERT,
        price.sku,
        price.price_list,
        price.price.amount,
        price.price.currency,
        price.includes_vat,
        price.vat_rate,
        price.version,
        now,
    )
    return done is not None


async def schedule_price(conn: Connection, inbound: Inbound, price: PriceChanged) -> bool:
    """Keep a price that starts later (``valid_from``) until it does; False for a repeat or
    one not newer than the price in force."""
    assert price.valid_from is not None
    done = await conn.fetchval(
        _SCHEDULE,
        price.sku,
        price.price_list,
        price.version,
        price.valid_from,
        inbound.event.to_bytes().decode(),
        inbound.routing_key,
    )
    return done is not None


class PriceHandler:
    """Stores ``price.changed`` and passes it on to the channels, as the plain router would.

    A stale version is stored nowhere and sent nowhere, so a channel never shows an old price;
    nor is a price in another currency than the markets showing its list trade in. A price
    that starts later is kept until it does (``hub.orders.price_schedule`` releases it), so
    no channel shows it early and orders are checked against the price in force.
    """

    stateful = True
    forwards = True

    def __init__(
        self,
        router: Router,
        stale: Counter | None = None,
        markets: Mapping[str, MarketConfig] | None = None,
        scheduled: Counter | None = None,
    ) -> None:
        self._router = router
        self._stale = stale
        self._scheduled = scheduled
        self._currency = {m.price_list: (name, m.currency) for name, m in (markets or {}).items()}

    async def handle(
        self, inbound: Inbound, conn: Connection | None, now: datetime
    ) -> Sequence[Envelope]:
        """Project the price, then fan it out like every catalog message."""
        price = inbound.message
        assert conn is not None and isinstance(price, PriceChanged)
        market, currency = self._currency.get(price.price_list, (None, price.price.currency))
        if price.price.currency != currency:
            raise BusinessRuleViolation(
                f"price of {price.sku} on list {price.price_list} is in {price.price.currency};"
                f" market {market} shows that list in {currency}"
            )
        if price.valid_from is not None and price.valid_from > now:
            if await schedule_price(conn, inbound, price):
                if self._scheduled is not None:
                    self._scheduled.labels("scheduled").inc()
            elif self._stale is not None:
                self._stale.labels(PriceChanged.TYPE).inc()
            return []
        if not await store_price(conn, price, now):
            if self._stale is not None:
                self._stale.labels(PriceChanged.TYPE).inc()
            return []
        return self._router.envelopes(inbound)
