"""What an operator does for an order the process cannot move on its own: list the orders that
wait, ask the silent ERP, warehouse or carrier again once it is back, or give an order up.

Each action locks the order row and commits its state with the messages it causes through
the outbox, as a step of the running hub would, so it is safe beside running hubs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

import asyncpg
from prometheus_client import CollectorRegistry

from hub import outbox
from hub.bus import Publisher
from hub.db import Connection
from hub.errors import HubError
from hub.orders import requests, store
from hub.orders.aftercare import withdraw, withdraw_unshipped
from hub.orders.context import OrderDeps, OrderMetrics, Party
from hub.orders.messages import Outgoing
from hub.orders.steps import OPEN_STATES
from hub.orders.store import Order
from hub.settings import Settings
from hub.stock.availability import StockContext
from hub.topology import Names
from routes.config import HubConfig
from routes.matching import RouteTable
from schemas.envelope import CloudEvent

Action = Literal["retry", "cancel"]


class OperatorRefused(HubError):
    """The action does not apply to the order as it is; the message says why."""


@dataclass(frozen=True)
class Done:
    """What an action did: the order's state after it and how many messages it sent."""

    state: str
    sent: int
    detail: str


async def waiting(
    pool: asyncpg.Pool,
    states: Sequence[str] | None = None,
    channel: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Orders still moving (or in the given states), the longest unchanged first."""
    rows = await pool.fetch(
        "SELECT order_id, channel, channel_order_id, state, awaiting, deadline, attempts,"
        " updated_at FROM orders WHERE state = ANY($1::text[])"
        " AND ($2::text IS NULL OR channel = $2) ORDER BY updated_at, order_id LIMIT $3",
        list(states or sorted(OPEN_STATES)),
        channel,
        limit,
    )
    return [dict(row) for row in rows]


def _named(order: Order) -> str:
    """The order as the operator knows it: the channel's own order number."""
    return f"{order.channel} order {order.channel_order_id}"


def _cause(order: Order, action: Action, now: datetime) -> CloudEvent:
    """The cause of what the action sends: its id names the order, the action and the order's
    version, so the same action on the same order state sends the same ids."""
    return CloudEvent(
        id=f"operator/{action}/{order.order_id}/{order.version}",
        source="hub",
        type=f"order.operator-{action}",
        time=now,
        subject=order.order_id,
        correlationid=order.correlation_id,
        data={},
    )


async def retry(conn: Connection, deps: OrderDeps, order: Order, now: datetime) -> Outgoing:
    """Send the awaited request again and restart its clock, retries included."""
    party = cast(Party | None, order.awaiting)
    if party is None:
        raise OperatorRefused(f"{_named(order)} waits for no answer (state {order.state})")
    out = Outgoing(deps.table, deps.names, _cause(order, "retry", now), now)
    if not await requests.resend(conn, deps, order, out):
        raise OperatorRefused(f"{_named(order)} has no request to {party} to send again")
    requests.wait_for(deps, order, party, now)
    await store.save(conn, order, now)
    await store.note(conn, order, "operator", now, f"request to {party} sent again by an operator")
    return out


async def cancel(
    conn: Connection, deps: OrderDeps, order: Order, reason: str, now: datetime
) -> Outgoing:
    """Give up an order nothing of which shipped: its stock back, the ERP and warehouse told to
    drop it, the channel told it is cancelled by the hub (so it cancels it too). Of a partly
    shipped order only what has not left is given up (``cancel_rest``)."""
    if order.state not in OPEN_STATES:
        raise OperatorRefused(f"{_named(order)} is {order.state}: nothing to cancel")
    if any(order.shipped.values()):
        return await cancel_rest(conn, deps, order, reason, now)
    out = Outgoing(deps.table, deps.names, _cause(order, "cancel", now), now)
    detail = f"cancelled by an operator: {reason}"
    await withdraw(conn, deps, order, out, detail, tell_erp=True)
    order.state = "cancelled"
    await store.save(conn, order, now)
    await store.note(conn, order, "operator", now, detail)
    withdrawn = requests.cancellation(order, "hub")
    requests.send(out, order, requests.status(order, "cancelled", detail, withdrawn), "cancelled")
    deps.metrics.transitions.labels("cancelled").inc()
    return out


async def cancel_rest(
    conn: Connection, deps: OrderDeps, order: Order, reason: str, now: datetime
) -> Outgoing:
    """Give up the part of a partly shipped order that has not left (a warehouse that will
    never pack it): parcels waiting for a label dropped, the stock of the rest back, the ERP
    and the warehouse told to drop those lines, and the channel told the hub cancelled them.
    What shipped stays with the buyer: nothing is asked back, and the order is shipped."""
    if not order.unshipped():
        raise OperatorRefused(f"all of {_named(order)} shipped: nothing left to cancel")
    out = Outgoing(deps.table, deps.names, _cause(order, "cancel", now), now)
    detail = f"the rest cancelled by an operator: {reason}"
    rest = await withdraw_unshipped(conn, deps, order, out, detail, tell_erp=True)
    for line_id, units in rest.items():  # no longer ordered: what is left has all shipped
        order.withdrawn[line_id] = order.withdrawn.get(line_id, 0) + units
    order.state = "shipped"
    await store.save(conn, order, now)
    await store.note(conn, order, "operator", now, detail)
    withdrawn = requests.cancellation(order, "hub", rest)
    requests.send(out, order, requests.status(order, "shipped", detail, withdrawn), "cancelled")
    deps.metrics.transitions.labels("shipped").inc()
    return out


def standalone_deps(settings: Settings, config: HubConfig) -> OrderDeps:
    """The order process's dependencies outside a running hub (its metrics go nowhere)."""
    table = RouteTable.from_config(config)
    names = Names(settings.name_prefix)
    return OrderDeps(
        config=config,
        table=table,
        names=names,
        metrics=OrderMetrics(CollectorRegistry()),
        stock=StockContext(config, table, names),
    )


async def act(
    settings: Settings,
    config: HubConfig,
    channel: str,
    channel_order_id: str,
    action: Action,
    reason: str = "",
) -> Done:
    """Run one action on the order a channel knows by its id, commit it, send what it caused."""
    deps = standalone_deps(settings, config)
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    publisher = Publisher(settings.broker_url, settings.publish_timeout_s)
    try:
        async with pool.acquire() as conn, conn.transaction():
            order = await store.find(conn, channel, channel_order_id)
            if order is None:
                raise OperatorRefused(f"no order {channel_order_id!r} from channel {channel!r}")
            now = datetime.now(UTC)
            if action == "retry":
                out = await retry(conn, deps, order, now)
            else:
                out = await cancel(conn, deps, order, reason, now)
            written = await outbox.write(conn, out.envelopes)
        try:
            await publisher.start()
            await publisher.publish_many(out.envelopes)
            await outbox.mark_sent(pool, written)
        except (HubError, OSError, asyncpg.PostgresError) as exc:
            note = f"committed; a running hub's outbox relay sends the messages ({exc})"
            return Done(order.state, len(out.envelopes), note)
        return Done(order.state, len(out.envelopes), "")
    finally:
        await publisher.stop()
        await pool.close()
