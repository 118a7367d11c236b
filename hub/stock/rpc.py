"""The availability query on ``hub.rpc``: request/reply from the live ledger, read-only.

A channel publishes an ``availability.query`` CloudEvent to the ``hub.rpc`` queue with
``reply_to`` and ``correlation_id``; the hub answers with ``availability.answer`` on the
reply queue, same correlation id. Queries change nothing, so they skip the inbox and the
outbox: a lost answer is simply asked again. A request that is not a valid query (or has no
``reply_to``) is rejected and dead-letters to ``hub.dead``.

The same answer is served over HTTP, for a channel with no adapter process on the bus (a
shop the hub delivers to over its API): ``GET /availability/<channel>?sku=A&sku=B`` on the
hub's HTTP port. Read-only and unauthenticated, like ``/metrics``: it tells what the channel
shows anyway; serve that port to the shop's back end, not to the internet.

This endpoint is a FastStream subscriber: request/reply is what FastStream does natively
(the returned response goes to ``reply_to`` before the request is acked), and at query rates
its per-message pipeline costs nothing that matters. It runs as a hub service on a broker
connection of its own; FastStream reconnects it after a broker loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import date
from typing import TYPE_CHECKING

import asyncpg
from faststream.exceptions import NackMessage, RejectMessage
from faststream.middlewares import AckPolicy
from faststream.rabbit import Channel, QueueType, RabbitBroker, RabbitQueue, RabbitResponse
from faststream.rabbit.message import RabbitMessage
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from yarl import URL

from hub.db import Connection
from hub.errors import HubError, one_line
from hub.intake import decode_event
from hub.outgoing import caused_event
from hub.stock import atp, ledger
from hub.stock.availability import StockContext, compute, figures_by_sku
from schemas.envelope import CONTENT_TYPE
from schemas.inventory import (
    Alternative,
    AvailabilityAnswer,
    AvailabilityItem,
    AvailabilityQuery,
)

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger(__name__)

MAX_ALTERNATIVES = 5


async def answer_query(
    conn: Connection, ctx: StockContext, query: AvailabilityQuery, today: date
) -> AvailabilityAnswer:
    """Sellable now, from when, delivered by when, and in-stock alternatives when sold out."""
    channel = query.channel
    rules = ctx.rules(channel)
    lead = ctx.lead_time_days(channel)
    own = ctx.config.channels[channel]  # asked and answered in the channel's own SKUs
    skus = [own.sku_map.get(s, s) for s in query.skus]

    def sold_here(sku: str) -> list[str]:
        return [channel] if rules.sells(sku) else []

    found, _ = await compute(conn, ctx, skus, sold_here, today, with_kits=False, lock=False)
    figs = figures_by_sku(found, channel)
    sold_out = [s for s in skus if figs.get(s, atp.Figure(0)).available == 0]
    others = await ledger.substitutes(conn, sold_out) if sold_out else {}
    candidates = {o for group in others.values() for o in group}
    alt_figs: dict[str, atp.Figure] = {}
    if candidates:
        alts, _ = await compute(
            conn, ctx, candidates, sold_here, today, with_kits=False, lock=False
        )
        alt_figs = figures_by_sku(alts, channel)
    items = []
    for asked, sku in zip(query.skus, skus, strict=True):
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
                sku=asked,
                available=fig.available,
                next_available_date=fig.next_date,
                promised_delivery_date=atp.promised_delivery(fig, today, lead),
                alternatives=tuple(
                    Alternative(sku=ctx.table.channel_sku(channel, o), available=a)
                    for a, o in ranked[:MAX_ALTERNATIVES]
                ),
            )
        )
    return AvailabilityAnswer(channel=channel, items=tuple(items))


class AvailabilityRpc:
    """Answers each query on ``hub.rpc``; a query it cannot read is rejected (parked), one it
    cannot answer for a database outage goes back to the queue."""

    def __init__(
        self,
        ctx: StockContext,
        pool: asyncpg.Pool,
        broker_url: str,
        *,
        name: str = "commerce-hub rpc",
        prefetch: int = 64,
        reconnect_interval_s: float = 1.0,
    ) -> None:
        self._ctx = ctx
        self._pool = pool
        self._broker = RabbitBroker(
            str(URL(broker_url).update_query(name=name)),
            default_channel=Channel(prefetch_count=prefetch),
            apply_types=False,
            logger=None,
            graceful_timeout=10.0,
            reconnect_interval=reconnect_interval_s,
        )
        queue = RabbitQueue(
            ctx.names.rpc_queue, queue_type=QueueType.QUORUM, durable=True, declare=False
        )
        self._broker.subscriber(queue, ack_policy=AckPolicy.ACK, decoder=_as_is)(self.answer)
        self._starting: asyncio.Task[None] | None = None

    @classmethod
    def for_hub(cls, hub: Hub) -> AvailabilityRpc:
        """The service factory for ``hub.app.SERVICE_FACTORIES``."""
        s = hub.settings
        return cls(
            StockContext.from_hub(hub),
            hub.pool,
            s.broker_url,
            name=f"commerce-hub rpc {s.name_prefix}".strip(),
            reconnect_interval_s=s.reconnect_interval_s,
        )

    def routes(self) -> list[BaseRoute]:
        """``GET /availability/<channel>?sku=...``: the query over the hub's HTTP side."""
        return [Route("/availability/{channel}", self.over_http, methods=["GET"])]

    async def over_http(self, request: Request) -> Response:
        """One query from the URL, answered as JSON (the answer's data, no envelope)."""
        channel = request.path_params["channel"]
        if channel not in self._ctx.config.channels:
            return JSONResponse({"error": f"unknown channel {channel!r}"}, status_code=404)
        try:
            skus = tuple(request.query_params.getlist("sku"))
            query = AvailabilityQuery(channel=channel, skus=skus)
        except ValidationError as exc:
            return JSONResponse({"error": one_line(exc)}, status_code=400)
        try:
            async with self._pool.acquire() as conn:
                answer = await answer_query(conn, self._ctx, query, self._ctx.clock().date())
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            return JSONResponse({"error": f"try again: {one_line(exc)}"}, status_code=503)
        return Response(answer.model_dump_json(), media_type="application/json")

    def start(self) -> None:
        """Connect and subscribe in the background (the hub's topology is declared by now)."""
        self._starting = asyncio.create_task(self._start(), name="availability-rpc")

    async def _start(self) -> None:
        await self._broker.start()
        log.info("answering availability queries on %s", self._ctx.names.rpc_queue)

    async def stop(self) -> None:
        """Finish the queries in flight, then disconnect."""
        if self._starting is not None:
            if not self._starting.done():
                self._starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._starting
        await self._broker.stop()

    async def answer(self, msg: RabbitMessage) -> RabbitResponse:
        """One query's answer, sent to its ``reply_to`` by FastStream."""
        raw = msg.raw_message
        try:
            event = decode_event(raw.body)
            if event.type != AvailabilityQuery.TYPE:
                raise ValueError(f"hub.rpc answers availability.query, not {event.type!r}")
            query = AvailabilityQuery.model_validate(event.data)
            if query.channel not in self._ctx.config.channels:
                raise ValueError(f"channel {query.channel!r} is not configured")
            if not raw.reply_to:
                raise ValueError("a query needs reply_to")
        except (HubError, ValidationError, ValueError) as exc:
            log.info("rejected availability query %s: %s", raw.message_id, one_line(exc))
            raise RejectMessage from exc
        try:
            now = self._ctx.clock()
            async with self._pool.acquire() as conn:
                answer = await answer_query(conn, self._ctx, query, now.date())
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("availability query %s failed: %s", raw.message_id, one_line(exc))
            raise NackMessage(requeue=True) from exc
        out = caused_event(event, answer, key="answer", source="hub", time=now)
        return RabbitResponse(
            out.to_bytes(),
            correlation_id=raw.correlation_id or event.id,
            message_id=out.id,
            message_type=out.type,
            app_id=out.source,
            content_type=CONTENT_TYPE,
        )


async def _as_is(message: RabbitMessage) -> RabbitMessage:
    """FastStream's decode step handing over the message itself; async, so it runs inline."""
    return message
