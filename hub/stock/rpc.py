"""The availability query on ``hub.rpc``: request/reply from the live ledger, read-only.

A channel publishes an ``availability.query`` CloudEvent to the ``hub.rpc`` queue with
``reply_to`` and ``correlation_id``; the hub answers with ``availability.answer`` on the
reply queue, same correlation id. Queries change nothing, so they skip the inbox and the
outbox: a lost answer is simply asked again. A request that is not a valid query (or has no
``reply_to``) is rejected and dead-letters to ``hub.dead``.

The consumer runs on the hub publisher's confirmed channel, so the hub's own start and stop
(and aio-pika's reconnects) govern it without a lifecycle hook of its own.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date

import asyncpg
from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError

from hub.bus import Publisher
from hub.db import Connection
from hub.errors import HubError, one_line
from hub.intake import decode_event
from hub.outgoing import caused_event, reply
from hub.stock import atp, ledger
from hub.stock.availability import StockContext, compute, figures_by_sku
from schemas.inventory import (
    Alternative,
    AvailabilityAnswer,
    AvailabilityItem,
    AvailabilityQuery,
)

log = logging.getLogger(__name__)

MAX_ALTERNATIVES = 5
_running: set[asyncio.Task[None]] = set()


async def answer_query(
    conn: Connection, ctx: StockContext, query: AvailabilityQuery, today: date
) -> AvailabilityAnswer:
    """Sellable now, from when, delivered by when, and in-stock alternatives when sold out."""
    channel = query.channel
    rules = ctx.rules(channel)
    lead = ctx.lead_time_days(channel)

    def sold_here(sku: str) -> list[str]:
        return [channel] if rules.sells(sku) else []

    found, _ = await compute(conn, ctx, query.skus, sold_here, today, with_kits=False, lock=False)
    figs = figures_by_sku(found, channel)
    sold_out = [s for s in query.skus if figs.get(s, atp.Figure(0)).available == 0]
    others = await ledger.substitutes(conn, sold_out) if sold_out else {}
    candidates = {o for group in others.values() for o in group}
    alt_figs: dict[str, atp.Figure] = {}
    if candidates:
        alts, _ = await compute(
            conn, ctx, candidates, sold_here, today, with_kits=False, lock=False
        )
        alt_figs = figures_by_sku(alts, channel)
    items = []
    for sku in query.skus:
        fig = figs.get(sku, atp.Figure(0))
        ranked = sorted(
            (
                (alt_figs[o].available, o)
                for o in others.get(sku, ())
                if o in alt_figs and alt_figs[o].available > 0
            ),
            key=lambda pair: (-pair[0], pair[1]),
        )
        items.append(
            AvailabilityItem(
                sku=sku,
                available=fig.available,
                next_available_date=fig.next_date,
                promised_delivery_date=atp.promised_delivery(fig, today, lead),
                alternatives=tuple(
                    Alternative(sku=o, available=a) for a, o in ranked[:MAX_ALTERNATIVES]
                ),
            )
        )
    return AvailabilityAnswer(channel=channel, items=tuple(items))


class AvailabilityRpc:
    """Consumes ``hub.rpc`` and replies to each query; never holds a message on an error."""

    def __init__(
        self, ctx: StockContext, pool: asyncpg.Pool, publisher: Publisher, prefetch: int = 64
    ) -> None:
        self._ctx = ctx
        self._pool = pool
        self._publisher = publisher
        self._prefetch = prefetch

    def start_soon(self) -> None:
        """Begin consuming as soon as the running loop gets to it (the hub is starting)."""
        task = asyncio.get_running_loop().create_task(self.start(), name="availability-rpc")
        _running.add(task)
        task.add_done_callback(_running.discard)

    async def start(self) -> None:
        """Subscribe to ``hub.rpc`` on the publisher's channel."""
        channel = self._publisher.channel
        await channel.set_qos(prefetch_count=self._prefetch)
        queue = await channel.get_queue(self._ctx.names.rpc_queue, ensure=False)
        await queue.consume(self.on_message)
        log.info("answering availability queries on %s", queue.name)

    async def on_message(self, msg: AbstractIncomingMessage) -> None:
        """Answer one query, or reject it to the dead-letter queue when it cannot be read."""
        try:
            event = decode_event(msg.body)
            if event.type != AvailabilityQuery.TYPE:
                raise ValueError(f"hub.rpc answers availability.query, not {event.type!r}")
            query = AvailabilityQuery.model_validate(event.data)
            if query.channel not in self._ctx.config.channels:
                raise ValueError(f"channel {query.channel!r} is not configured")
            if not msg.reply_to:
                raise ValueError("a query needs reply_to")
        except (HubError, ValidationError, ValueError) as exc:
            log.info("rejected availability query %s: %s", msg.message_id, one_line(exc))
            await msg.reject(requeue=False)
            return
        try:
            now = self._ctx.clock()
            async with self._pool.acquire() as conn:
                answer = await answer_query(conn, self._ctx, query, now.date())
            out = caused_event(event, answer, key="answer", source="hub", time=now)
            await self._publisher.publish(reply(out, msg.reply_to, msg.correlation_id or event.id))
        except HubError as exc:  # the caller's reply queue is gone: nothing to tell anyone
            log.info("could not reply to %s: %s", msg.message_id, one_line(exc))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("availability query %s failed: %s", msg.message_id, one_line(exc))
            await msg.nack(requeue=True)
            return
        await msg.ack()
