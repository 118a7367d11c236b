"""The transactional outbox: messages commit with the state change that caused them."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from hub.background import Background
from hub.bus import Envelope, Publisher
from hub.db import Connection
from hub.dlq import store as dlq_store
from hub.dlq.record import ParkedRecord
from hub.errors import HubError
from hub.metrics import Metrics, labelled

log = logging.getLogger(__name__)

_COLUMNS = (
    "message_id, exchange, routing_key, message_type, source, correlation_id, reply_to,"
    " headers, body"
)
_ARRAY_TYPES = ("text", "text", "text", "text", "text", "text", "text", "jsonb", "bytea")


def _insert(first: int) -> str:
    """The insert, its parameters numbered from ``first`` (after those of a statement along)."""
    arrays = ", ".join(f"${first + i}::{t}[]" for i, t in enumerate(_ARRAY_TYPES))
    return f"INSERT INTO outbox ({_COLUMNS}) SELECT * FROM unnest({arrays}) RETURNING id"


_INSERT = _insert(1)

# A data-changing statement (parameters numbered from $1) and its arguments.
Along = tuple[str, Sequence[Any]]


def _columns(envelopes: Sequence[Envelope]) -> list[list[Any]]:
    return [
        [e.message_id for e in envelopes],
        [e.exchange for e in envelopes],
        [e.routing_key for e in envelopes],
        [e.message_type for e in envelopes],
        [e.source for e in envelopes],
        [e.correlation_id for e in envelopes],
        [e.reply_to for e in envelopes],
        [orjson.dumps(dict(e.headers)).decode() if e.headers else None for e in envelopes],
        [e.body for e in envelopes],
    ]


async def write(
    conn: Connection, envelopes: Sequence[Envelope], along: Along | None = None
) -> list[int]:
    """Insert the messages in the caller's transaction; returns their outbox ids, in order.

    ``along``: a write the caller makes in the same transaction anyway (an INSERT, UPDATE or
    DELETE without RETURNING) goes in the same round trip, as a CTE: on a busy box each
    round trip of a batch transaction costs 1.5-2 ms of every message's latency.
    """
    if along is None:
        if not envelopes:
            return []
        rows = await conn.fetch(_INSERT, *_columns(envelopes))
    else:
        sql, args = along
        if not envelopes:
            await conn.execute(sql, *args)
            return []
        rows = await conn.fetch(
            f"WITH along AS ({sql}) {_insert(len(args) + 1)}", *args, *_columns(envelopes)
        )
    return [r["id"] for r in rows]


async def mark_sent(pool: asyncpg.Pool, ids: Sequence[int]) -> None:
    """Delete published rows; a crash before this only causes a re-publish of the same ids."""
    if ids:
        await pool.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", list(ids))


async def send_committed(
    publisher: Publisher,
    pool: asyncpg.Pool,
    envelopes: Sequence[Envelope],
    ids: Sequence[int],
    what: str,
) -> None:
    """Publish messages a committed transaction wrote to the outbox (rows ``ids``) and mark
    them sent; if that fails, the relay sends them later (logged as ``what``)."""
    if not envelopes:
        return
    try:
        await publisher.publish_many(envelopes)
        await mark_sent(pool, ids)
    except (HubError, OSError, asyncpg.PostgresError) as exc:
        log.warning("%s committed, the outbox relay will send them: %s", what, exc)


def _envelope(row: asyncpg.Record) -> Envelope:
    headers = orjson.loads(row["headers"]) if row["headers"] else {}
    return Envelope(
        message_id=row["message_id"],
        exchange=row["exchange"],
        routing_key=row["routing_key"],
        message_type=row["message_type"],
        source=row["source"],
        body=bytes(row["body"]),
        correlation_id=row["correlation_id"],
        reply_to=row["reply_to"],
        headers=headers,
    )


def _parked(row: asyncpg.Record, error: str) -> ParkedRecord:
    """An outbox row as a parking-lot entry; replaying it publishes it where it was headed."""
    digest = hashlib.sha256(f"outbox/{row['id']}/{row['message_id']}".encode()).hexdigest()
    return ParkedRecord(
        fingerprint=digest,
        message_id=row["message_id"],
        message_type=row["message_type"],
        source=row["source"],
        channel=row["routing_key"].split(".", 1)[0] or None,
        error_type="unpublishable",
        error=f"outbox row refused by the broker: {error}",
        failed_queue=None,
        attempts=0,
        original_exchange=row["exchange"],
        original_routing_key=row["routing_key"],
        correlation_id=row["correlation_id"],
        reply_to=row["reply_to"],
        headers=orjson.loads(row["headers"]) if row["headers"] else {},
        body=bytes(row["body"]),
        first_failed_at=row["created_at"],
        parked_at=datetime.now(UTC),
    )


class OutboxRelay(Background):
    """Publishes rows the hub committed but did not get to publish (crash, broker outage).

    The hot path publishes right after commit; the relay takes only rows older than a grace
    period, locking them with SKIP LOCKED so several hub processes can relay side by side.
    """

    task_name = "outbox-relay"

    def __init__(
        self,
        pool: asyncpg.Pool,
        publisher: Publisher,
        grace_s: float,
        poll_s: float,
        park_after_s: float = 600.0,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__()
        self._pool = pool
        self._publisher = publisher
        self._grace_s = grace_s
        self._poll_s = poll_s
        self._park_after_s = park_after_s
        self._metrics = metrics
        self.relayed = 0
        self.parked = 0

    async def relay_once(self, limit: int = 500, grace_s: float | None = None) -> int:
        """Publish one batch of stale rows and delete them; returns how many were published.

        A row the broker still refuses once it is ``park_after_s`` old (returned as unroutable:
        a binding that is gone for good, a routing key nothing takes; or a message AMQP cannot
        carry) moves to the parking lot, where ``hub dlq`` shows and replays it, instead of
        being retried on every poll for ever. Timeouts and lost connections never park a row.
        """
        grace = self._grace_s if grace_s is None else grace_s
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT *, created_at < now() - make_interval(secs => $3) AS overdue"
                " FROM outbox WHERE created_at < now() - make_interval(secs => $1)"
                " ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
                grace,
                limit,
                self._park_after_s,
            )
            if not rows:
                return 0
            # Each row on its own: one that cannot be published must not hold back the rest.
            results = await self._publisher.publish_each([_envelope(r) for r in rows])
            sent = [r["id"] for r, res in zip(rows, results, strict=True) if res is None]
            failed = [(r, res) for r, res in zip(rows, results, strict=True) if res is not None]
            overdue = [(r, res) for r, res in failed if r["overdue"] and res.refused]
            for row, error in overdue:
                await dlq_store.insert(conn, _parked(row, str(error)))
            gone = sent + [r["id"] for r, _ in overdue]
            if gone:
                await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", gone)
        if overdue:
            log.error(
                "outbox relay: parked %d rows the broker refused for over %.0fs (first: %s %s)",
                len(overdue),
                self._park_after_s,
                overdue[0][0]["message_id"],
                overdue[0][1],
            )
        if len(failed) > len(overdue):
            log.warning(
                "outbox relay: %d of %d rows not published (%s); they stay",
                len(failed) - len(overdue),
                len(rows),
                failed[0][1],
            )
        self.relayed += len(sent)
        self.parked += len(overdue)
        if self._metrics is not None:
            self._metrics.outbox_relayed.inc(len(sent))
            if overdue:
                labelled(self._metrics.parked, "unpublishable").inc(len(overdue))
        return len(sent) if len(sent) == len(rows) else 0

    async def pending(self) -> int:
        """Rows not yet published, for the outbox gauge and for draining on shutdown."""
        return int(await self._pool.fetchval("SELECT count(*) FROM outbox"))

    async def _run(self) -> None:
        while True:
            try:
                while await self.relay_once() > 0:
                    pass
            except Exception as exc:  # the relay must outlive any one failure
                log.warning("outbox relay: %s; will retry", exc)
            await asyncio.sleep(self._poll_s)
