"""Releasing prices the ERP set ahead, when they start: the price in force changes, and every
channel routing gives the list gets the ERP's event as it was sent.

The latest version wins, as for every price: a due price is released only if no newer
version was taken meanwhile (a price the ERP sent later, to start now, supersedes one it had
set ahead; to keep a promotion after changing the regular price, it sends the promotion
again). Several hubs release side by side: each takes due rows it can lock and skips the
others'. A row whose event no longer reads (a schema changed since it came in) is parked
with the reason, in its own savepoint, and the others go on: ``hub dlq`` shows it, and a
replay or a corrected resubmit takes it through ``hub.in`` like any price. One no route takes
is in force for the order checks and shown on no channel.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg
import orjson
from prometheus_client import Counter
from pydantic import ValidationError

from hub import outbox
from hub.background import Poller
from hub.bus import Envelope
from hub.db import Connection
from hub.errors import HubError, MalformedMessage, SchemaViolation, Unroutable, one_line
from hub.faults import failure_headers
from hub.handlers import Inbound
from hub.orders.prices import store_price
from hub.router import Router
from hub.topology import Names
from schemas.catalog import PriceChanged
from schemas.envelope import CloudEvent, derived_id

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger(__name__)

BATCH = 500
"""Due prices released per transaction."""

_DUE = """
DELETE FROM catalog_prices_scheduled WHERE (sku, price_list, version) IN (
    SELECT sku, price_list, version FROM catalog_prices_scheduled WHERE valid_from <= $1
    ORDER BY valid_from, version LIMIT $2 FOR UPDATE SKIP LOCKED)
RETURNING sku, price_list, valid_from, version, event, routing_key
"""


async def release_due(
    pool: asyncpg.Pool,
    router: Router,
    names: Names,
    now: datetime,
    counter: Counter | None = None,
) -> tuple[int, list[Envelope], list[int]]:
    """Release one batch of prices due at ``now`` in one transaction, with the messages to the
    channels (and any parked row) in the outbox; how many were due, the envelopes and their
    outbox rows."""
    envelopes: list[Envelope] = []
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(_DUE, now, BATCH)
        for row in sorted(rows, key=lambda r: (r["valid_from"], r["version"])):
            what = await _release(conn, router, row, now, envelopes)
            if isinstance(what, HubError):
                envelopes.append(_parked(names, row, what, now))
                what = "parked"
            if counter is not None:
                counter.labels(what).inc()
        written = await outbox.write(conn, envelopes)
    return len(rows), envelopes, written


async def _release(
    conn: Connection, router: Router, row: asyncpg.Record, now: datetime, out: list[Envelope]
) -> str | HubError:
    """Put one due price in force and add its messages to ``out``; what became of it, or why
    it cannot be (to park it)."""
    try:
        async with conn.transaction():  # a savepoint: one bad row must not hold up the rest
            event = CloudEvent.model_validate(orjson.loads(row["event"]))
            price = PriceChanged.model_validate(event.data)
            if not await store_price(conn, price, now):
                return "superseded"
            try:
                out.extend(router.envelopes(Inbound(event, price, row["routing_key"])))
            except Unroutable as exc:  # in force for the order checks, shown on no channel
                log.warning("scheduled price %s/%s: %s", price.sku, price.price_list, exc)
            return "released"
    except (ValidationError, ValueError, HubError) as exc:
        error = _as_hub_error(exc)
        log.error(
            "scheduled price %s/%s version %s no longer reads and is parked: %s",
            row["sku"],
            row["price_list"],
            row["version"],
            one_line(error),
        )
        return error


def _as_hub_error(exc: Exception) -> HubError:
    """The hub's error for a stored event that no longer reads."""
    if isinstance(exc, HubError):
        return exc
    if isinstance(exc, ValidationError):
        return SchemaViolation(f"scheduled price.changed no longer valid: {exc}")
    return MalformedMessage(f"scheduled price.changed is not a CloudEvent: {exc}")


def _parked(names: Names, row: asyncpg.Record, error: HubError, now: datetime) -> Envelope:
    """The stored event sent to the parking lot with the reason, addressed as it came in
    (``hub.in`` and its routing key), so a replay takes it the way it first went. It gets an
    id of its own (derived from the stored one): under the id the hub took it by once, the
    inbox would drop the replay as a repeat."""
    stamp = now.isoformat()
    stored = row["event"] if isinstance(row["event"], bytes) else str(row["event"]).encode()
    key = (str(row["sku"]), str(row["price_list"]), str(row["version"]))
    message_id, body = _reidentified(stored, key)
    headers = failure_headers(
        error,
        "catalog_prices_scheduled",
        1,
        first_failed_at=stamp,
        last_failed_at=stamp,
        exchange=names.inbound_exchange,
        routing_key=row["routing_key"],
    )
    return Envelope(
        message_id=message_id,
        exchange=names.dead_exchange,
        routing_key=row["routing_key"],
        message_type=PriceChanged.TYPE,
        source="hub",
        body=body,
        headers=headers,
    )


def _reidentified(stored: bytes, key: tuple[str, str, str]) -> tuple[str, bytes]:
    """The parked copy's id, derived from the stored event's own (where it still has one),
    and the stored event under it (where it is still a JSON object)."""
    try:
        document = orjson.loads(stored)
    except orjson.JSONDecodeError:
        document = None
    if not isinstance(document, dict):
        return derived_id("", "scheduled-price-parked", *key), stored
    own = str(document.get("id") or "")
    message_id = derived_id(own, "scheduled-price-parked", *key)
    return message_id, orjson.dumps({**document, "id": message_id})


async def release_once(hub: Hub, router: Router, now: datetime) -> int:
    """Release one batch of prices due at ``now`` and send their messages; how many were due.
    What a failed publish leaves in the outbox, the relay sends."""
    due, envelopes, written = await release_due(
        hub.pool, router, hub.names, now, hub.metrics.price_schedule
    )
    await outbox.send_committed(hub.publisher, hub.pool, envelopes, written, "released prices")
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
        except Exception as exc:  # the scheduler must outlive any one failure
            log.warning("releasing scheduled prices failed, will retry: %s", exc)
