"""Durable timeouts: ask a silent ERP, warehouse or carrier again, then reject or stall the order.

The deadline lives in the order row, so a restart forgets nothing. A sweep takes overdue orders
(``FOR UPDATE SKIP LOCKED``, so several hubs can sweep side by side) and sends the awaited
request again up to ``max_retries`` times. Then, by the awaited party's ``on_timeout``, the
order is rejected (its stock released, the sales order and pick withdrawn, the channel told
why) or set ``stalled`` for a late answer to resume. Once any goods are packed (all or part of
the order) it stalls whatever the policy: what is not shipped stays reserved. The changes and
the messages commit together through the outbox.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import TYPE_CHECKING, cast

import asyncpg

from hub import outbox
from hub.background import Background
from hub.bus import Envelope
from hub.db import Connection
from hub.errors import HubError
from hub.orders import requests, store
from hub.orders.aftercare import withdraw
from hub.orders.context import OrderDeps, Party
from hub.orders.messages import Outgoing
from hub.orders.store import Order
from schemas.envelope import CloudEvent
from schemas.orders import Reason

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger(__name__)

_OVERDUE = (
    "SELECT order_id FROM orders WHERE deadline IS NOT NULL AND deadline <= $1"
    " ORDER BY deadline LIMIT $2 FOR UPDATE SKIP LOCKED"
)


def _timeout_event(order: Order, now: datetime) -> CloudEvent:
    """The cause of what a timeout sends: its id names the order, the party and the attempt."""
    return CloudEvent(
        id=f"timeout/{order.order_id}/{order.awaiting}/{order.version}",
        source="hub",
        type="order.timeout",
        time=now,
        subject=order.order_id,
        correlationid=order.correlation_id,
        data={},
    )


async def expire(conn: Connection, deps: OrderDeps, order: Order, now: datetime) -> list[Envelope]:
    """Handle one overdue order: ask again, or reject or stall it once retries are spent."""
    party = cast(Party, order.awaiting)
    out = Outgoing(deps.table, deps.names, _timeout_event(order, now), now)
    rules = deps.rules(party)
    if order.attempts < rules.max_retries and await requests.resend(conn, deps, order, out):
        attempts = order.attempts + 1
        requests.wait_for(deps, order, party, now)
        order.attempts = attempts
        await store.save(conn, order, now)
        detail = f"no answer from {party}: request sent again ({attempts}/{rules.max_retries})"
        await store.note(conn, order, "timeout", now, detail)
        deps.metrics.timeouts.labels(party, "retried").inc()
        return out.envelopes
    if rules.on_timeout == "reject" and not any(order.picked.values()):  # nothing packed
        await _reject(conn, deps, order, party, out, now)
    else:
        await _stall(conn, deps, order, party, out, now)
    return out.envelopes


async def _reject(
    conn: Connection, deps: OrderDeps, order: Order, party: Party, out: Outgoing, now: datetime
) -> None:
    """Give the order up: stock back, ERP and warehouse told to drop it, the channel told why."""
    detail = f"no answer from {party} after {order.attempts} retries"
    await withdraw(conn, deps, order, out, f"order rejected: {detail}", tell_erp=True)
    order.state = "rejected"
    await store.save(conn, order, now)
    await store.note(conn, order, "rejected", now, detail)
    reasons = [Reason(code="timeout", message=detail)]
    requests.send(out, order, requests.rejection(order, reasons), "order.rejected")
    deps.metrics.timeouts.labels(party, "rejected").inc()
    deps.metrics.transitions.labels("rejected").inc()
    log.warning("order %s rejected: %s", order.order_id, detail)


async def _stall(
    conn: Connection, deps: OrderDeps, order: Order, party: Party, out: Outgoing, now: datetime
) -> None:
    """Keep the order waiting for a late answer, and tell its channel it is stuck."""
    order.state = "stalled"
    order.deadline = None  # still awaiting the party: a late answer resumes the order
    await store.save(conn, order, now)
    detail = f"no answer from {party} after {order.attempts} retries"
    await store.note(conn, order, "stalled", now, detail)
    requests.send(out, order, requests.status(order, "stalled", detail), "stalled")
    deps.metrics.timeouts.labels(party, "stalled").inc()
    deps.metrics.transitions.labels("stalled").inc()
    log.warning("order %s stalled: %s", order.order_id, detail)


async def sweep_once(hub: Hub, now: datetime, limit: int = 100) -> int:
    """Expire every order overdue at ``now`` (one batch); how many orders it acted on."""
    from hub.orders import deps_of

    deps = deps_of(hub)
    async with hub.pool.acquire() as conn, conn.transaction():
        ids = [r["order_id"] for r in await conn.fetch(_OVERDUE, now, limit)]
        envelopes: list[Envelope] = []
        for order_id in ids:
            order = await store.lock(conn, order_id)
            if order is not None and order.awaiting is not None:
                envelopes.extend(await expire(conn, deps, order, now))
        written = await outbox.write(conn, envelopes)
    await outbox.send_committed(hub.publisher, hub.pool, envelopes, written, "timeout messages")
    return len(ids)


class OrderSweeper(Background):
    """Runs ``sweep_once`` every few seconds in the background, by the hub's clock."""

    task_name = "order-sweeper"

    def __init__(self, hub: Hub, interval_s: float = 5.0) -> None:
        super().__init__()
        self._hub = hub
        self._interval_s = interval_s

    async def _run(self) -> None:
        while True:
            try:
                while await sweep_once(self._hub, self._hub.clock()) > 0:
                    pass
            except (HubError, OSError, asyncpg.PostgresError) as exc:
                log.warning("order sweep failed, will retry: %s", exc)
            await asyncio.sleep(self._interval_s)
