"""The stock service's handlers on hub.in: ledger updates, product facts, reserve and release.

Each runs inside the committer's batch transaction (a savepoint), so its state change, the
inbox entry and the ``stock.availability`` messages it causes commit together.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg
from prometheus_client import Counter

from hub.bus import Envelope
from hub.db import Connection
from hub.errors import BusinessRuleViolation, PermanentError, TransientError, UnknownChannel
from hub.handlers import Handler, Inbound
from hub.metrics import Metrics
from hub.outgoing import caused_event, to_channel
from hub.router import Router
from hub.stock import ledger, reservations
from hub.stock.availability import StockContext, availability_changes, changes_by_sku
from schemas.catalog import ProductUpserted
from schemas.inventory import (
    ReleaseStock,
    ReserveStock,
    Shortage,
    StockLevel,
    StockReservationRefused,
    StockReserved,
)

if TYPE_CHECKING:
    from hub.runtime import Hub


@contextlib.asynccontextmanager
async def _contention() -> AsyncIterator[None]:
    """Lock contention between concurrent batches is a retry, not a lost batch."""
    try:
        yield
    except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError) as exc:
        raise TransientError(f"stock rows contended: {exc}") from exc


def _need(conn: Connection | None) -> Connection:
    if conn is None:  # pragma: no cover - the committer always passes one to stateful handlers
        raise PermanentError("stock handlers need a database connection")
    return conn


class StockLevelHandler:
    """Applies a versioned level to the ledger and tells channels whose figure changed."""

    stateful = True

    def __init__(self, ctx: StockContext, metrics: Metrics) -> None:
        self._ctx = ctx
        self._metrics = metrics

    def lock_keys(self, inbound: Inbound) -> Iterable[str]:
        """The SKU whose ledger rows the level changes."""
        level = inbound.message
        return (level.sku,) if isinstance(level, StockLevel) else ()

    async def handle(
        self, inbound: Inbound, conn: Connection | None, now: datetime
    ) -> Sequence[Envelope]:
        """Drop a stale version (counted); otherwise apply and publish the changes."""
        [out] = await self.handle_many([inbound], conn, now)
        return out

    async def handle_many(
        self, inbounds: Sequence[Inbound], conn: Connection | None, now: datetime
    ) -> list[Sequence[Envelope]]:
        """A batch in two round trips: apply all and read the snapshot; record what was sent
        and write the messages to the outbox.

        The messages a SKU's new figure causes are attributed to the last level that changed
        that SKU; the other levels of the batch report no messages of their own.
        """
        levels: list[StockLevel] = []
        for inbound in inbounds:
            level = inbound.message
            assert isinstance(level, StockLevel)
            if not self._ctx.table.to_hub(inbound.event.source, StockLevel.TYPE):
                raise BusinessRuleViolation(
                    f"channel {inbound.event.source!r} may not report stock (no route)"
                )
            levels.append(level)
        db = _need(conn)
        async with _contention():
            measured = [inbound.event.time for inbound in inbounds]
            applied, snap = await ledger.apply_levels_and_snapshot(db, levels, now, measured)
            last: dict[str, int] = {}  # SKU -> position of the last level applied for it
            for position, (level, ok) in enumerate(zip(levels, applied, strict=True)):
                if ok:
                    last[level.sku] = position
            if applied.count(False):
                self._metrics.stale_stock.inc(applied.count(False))
            causes = {sku: inbounds[position].event for sku, position in last.items()}
            found = (
                await changes_by_sku(
                    db,
                    self._ctx,
                    list(causes),
                    causes,
                    oversold=self._metrics.oversell,
                    snapshot=snap,
                    into_outbox=True,
                )
                if causes
                else []
            )
        out: list[list[Envelope]] = [[] for _ in inbounds]
        fallback = next(iter(last.values()), 0)
        for sku, envelope in found:
            out[last.get(sku, fallback)].append(envelope)
        return list(out)


class ProductFactsHandler:
    """Keeps kit components, substitution groups and the active flag, then routes the product
    on as before."""

    stateful = True
    forwards = True

    def __init__(self, ctx: StockContext, router: Router, stale: Counter | None = None) -> None:
        self._ctx = ctx
        self._router = router
        self._stale = stale

    def lock_keys(self, inbound: Inbound) -> Iterable[str]:
        """The product's SKU: its active flag is read as another hub's write of it commits."""
        product = inbound.message
        return (product.sku,) if isinstance(product, ProductUpserted) else ()

    async def handle(
        self, inbound: Inbound, conn: Connection | None, now: datetime
    ) -> Sequence[Envelope]:
        """Store the facts; a kit whose composition changed gets its availability published."""
        [out] = await self.handle_many([inbound], conn, now)
        return out

    async def handle_many(
        self, inbounds: Sequence[Inbound], conn: Connection | None, now: datetime
    ) -> list[Sequence[Envelope]]:
        """Many products in a few statements; kits whose composition changed, and products
        (de)activated, get figures."""
        products: list[ProductUpserted] = []
        for inbound in inbounds:
            product = inbound.message
            assert isinstance(product, ProductUpserted)
            products.append(product)
        db = _need(conn)
        async with _contention():
            data = [i.event.data for i in inbounds]
            stored, flipped = await ledger.store_products(db, products, data)
            refigure = {  # the SKUs whose figures may change, and the message that changed each
                p.sku: position
                for position, p in enumerate(products)
                if (p.is_kit and p.sku in stored) or p.sku in flipped
            }
            causes = {sku: inbounds[position].event for sku, position in refigure.items()}
            found = await changes_by_sku(db, self._ctx, list(refigure), causes) if refigure else []
        news = _newest(products, stored)
        out: list[list[Envelope]] = [
            list(self._router.envelopes(i)) if position in news else []
            for position, i in enumerate(inbounds)
        ]
        if self._stale is not None and len(news) < len(products):
            self._stale.labels(ProductUpserted.TYPE).inc(len(products) - len(news))
        for sku, envelope in found:
            out[refigure.get(sku, 0)].append(envelope)
        return list(out)


def _newest(products: Sequence[ProductUpserted], stored: set[str]) -> set[int]:
    """The positions to pass on: per SKU that got newer, the first copy of its newest version.

    An older version (a late retry) or a repeat is passed to no channel, as for prices: a
    channel never shows data older than it has already been sent."""
    best: dict[str, int] = {}
    for position, p in enumerate(products):
        if p.sku in stored and (p.sku not in best or products[best[p.sku]].version < p.version):
            best[p.sku] = position
    return set(best.values())


class ReserveHandler:
    """``stock.reserve`` on the bus: answers the channel with reserved or refused (with why)."""

    stateful = True

    def __init__(self, ctx: StockContext) -> None:
        self._ctx = ctx

    def lock_keys(self, inbound: Inbound) -> Iterable[str]:
        """The SKUs the reservation holds."""
        cmd = inbound.message
        return [line.sku for line in cmd.lines] if isinstance(cmd, ReserveStock) else ()

    async def handle(
        self, inbound: Inbound, conn: Connection | None, now: datetime
    ) -> Sequence[Envelope]:
        """Reserve once per reservation id; a repeat gets the same answer again."""
        cmd = inbound.message
        assert isinstance(cmd, ReserveStock)
        if cmd.channel not in self._ctx.config.channels:
            raise UnknownChannel(f"channel {cmd.channel!r} is not configured")
        if cmd.channel != inbound.event.source:
            raise BusinessRuleViolation(
                f"{inbound.event.source!r} cannot reserve for channel {cmd.channel!r}"
            )
        db = _need(conn)
        owner = await reservations.owner(db, cmd.reservation_id)
        if owner is not None and (owner[1] or owner[0] != cmd.channel):
            # A repeat answers as the first time: only for the channel that asked the first time.
            raise BusinessRuleViolation(
                f"reservation id {cmd.reservation_id!r} is taken"
                + (" by an order" if owner[1] else f" by channel {owner[0]!r}")
            )
        async with _contention():
            result = await reservations.reserve(
                db,
                reservation_id=cmd.reservation_id,
                channel=cmd.channel,
                order_ref=cmd.order_ref,
                lines=[(line.sku, line.quantity) for line in cmd.lines],
                locations=self._ctx.config.channels[cmd.channel].stock.locations,
            )
            changes = await availability_changes(
                db, self._ctx, list(cmd.quantities_by_sku()), inbound.event
            )
        answer: StockReserved | StockReservationRefused
        if result.granted:
            answer = StockReserved(
                reservation_id=cmd.reservation_id,
                channel=cmd.channel,
                order_ref=cmd.order_ref,
                lines=cmd.lines,
            )
        else:
            answer = StockReservationRefused(
                reservation_id=cmd.reservation_id,
                channel=cmd.channel,
                order_ref=cmd.order_ref,
                shortages=tuple(
                    Shortage(sku=s, requested=r, available=a)
                    for s, (r, a) in sorted(result.shortages.items())
                ),
            )
        data = self._ctx.table.as_channel_sees_it(cmd.channel, answer.model_dump(mode="json"))
        event = caused_event(
            inbound.event, answer, key="answer", source="hub", subject=cmd.reservation_id, data=data
        )
        return [to_channel(self._ctx.names, cmd.channel, event), *changes]


class ReleaseHandler:
    """``stock.release`` on the bus: gives the units back; releasing twice is harmless."""

    stateful = True

    def __init__(self, ctx: StockContext) -> None:
        self._ctx = ctx

    async def handle(
        self, inbound: Inbound, conn: Connection | None, now: datetime
    ) -> Sequence[Envelope]:
        """Release and publish the figures that went up."""
        cmd = inbound.message
        assert isinstance(cmd, ReleaseStock)
        db = _need(conn)
        owner = await reservations.owner(db, cmd.reservation_id)
        if owner is not None and (owner[1] or owner[0] != inbound.event.source):
            why = "an order holds it: cancel the order" if owner[1] else f"{owner[0]!r} made it"
            raise BusinessRuleViolation(
                f"{inbound.event.source!r} cannot release reservation {cmd.reservation_id!r}: {why}"
            )
        async with _contention():
            if not await reservations.release(db, cmd.reservation_id):
                return []
            skus = await reservations.reservation_skus(db, cmd.reservation_id)
            return await availability_changes(db, self._ctx, skus, inbound.event)


def stock_handlers(hub: Hub) -> Mapping[str, Handler]:
    """The handler factory for ``hub.app.HANDLER_FACTORIES``."""
    ctx = StockContext.from_hub(hub)
    return {
        StockLevel.TYPE: StockLevelHandler(ctx, hub.metrics),
        ProductUpserted.TYPE: ProductFactsHandler(
            ctx, Router(hub.table, hub.names), hub.metrics.stale_catalog
        ),
        ReserveStock.TYPE: ReserveHandler(ctx),
        ReleaseStock.TYPE: ReleaseHandler(ctx),
    }
