"""Operating the parking lot: move hub.dead into the store, then list, show, replay and purge."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import asyncpg
import orjson

from hub import db
from hub.bus import Envelope, Publisher
from hub.dlq import store
from hub.dlq.record import from_amqp, replay_headers
from hub.dlq.store import Selection
from hub.topology import Names

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Replayed:
    """One message sent back (or, in a dry run, that would be) and where to."""

    parked_id: int
    message_id: str | None
    exchange: str
    routing_key: str


def envelope_for(row: asyncpg.Record) -> Envelope:
    """The parked message as it first arrived, same id and body, addressed where it failed."""
    headers = orjson.loads(row["headers"]) if isinstance(row["headers"], str) else row["headers"]
    return Envelope(
        message_id=row["message_id"] or "",
        exchange=row["original_exchange"],
        routing_key=row["original_routing_key"],
        message_type=row["message_type"] or "",
        source=row["source"] or "",
        body=bytes(row["body"]),
        correlation_id=row["correlation_id"],
        reply_to=row["reply_to"],
        headers=replay_headers(headers or {}, int(row["id"])),
    )


def _with_data(parked: bytes, data: bytes) -> bytes:
    """The parked CloudEvent with its ``data`` replaced (both must be JSON objects)."""
    try:
        event = orjson.loads(parked)
        replacement = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}; give the whole corrected message with --body") from exc
    if not isinstance(event, dict) or "data" not in event:
        raise ValueError("the parked message is not a CloudEvent; give it whole with --body")
    if not isinstance(replacement, dict):
        raise ValueError("the corrected data must be a JSON object")
    return orjson.dumps({**event, "data": replacement})


class ParkingLot:
    """The operator's view of parked messages; hub.dead is the conveyor, PostgreSQL the store."""

    def __init__(self, pool: asyncpg.Pool, publisher: Publisher, names: Names) -> None:
        self._pool = pool
        self._publisher = publisher
        self._names = names

    async def sweep(self, limit: int = 100_000) -> int:
        """Move every message waiting in hub.dead into the store; returns how many were new."""
        stored = 0
        channel = self._publisher.channel
        queue = await channel.get_queue(self._names.dead_queue, ensure=False)
        for _ in range(limit):
            msg = await queue.get(no_ack=False, fail=False)
            if msg is None:
                break
            record = from_amqp(
                msg.body,
                msg.headers,
                message_id=msg.message_id,
                message_type=msg.type,
                source=msg.app_id,
                correlation_id=msg.correlation_id,
                reply_to=msg.reply_to,
                routing_key=msg.routing_key,
                now=datetime.now(UTC),
                typed_exchanges=(self._names.inbound_exchange, self._names.outbound_exchange),
                channel_queue_prefix=self._names.channel_queue(""),
            )
            async with self._pool.acquire() as conn:
                if await store.insert(conn, record) is not None:
                    stored += 1
            await msg.ack()  # only after the row is committed: a crash repeats the insert
        return stored

    async def groups(self, sel: Selection) -> list[asyncpg.Record]:
        """Counts per error type for ``hub dlq list``."""
        async with self._pool.acquire() as conn:
            return await store.groups(conn, sel)

    async def rows(self, sel: Selection, limit: int | None = None) -> list[asyncpg.Record]:
        """The rows a selection names."""
        async with self._pool.acquire() as conn:
            return await store.select(conn, sel, limit)

    async def show(self, parked_id: int) -> asyncpg.Record | None:
        """One row with headers and body for ``hub dlq show``."""
        async with self._pool.acquire() as conn:
            return await store.get(conn, parked_id)

    async def replay(self, sel: Selection, *, actor: str, dry_run: bool) -> list[Replayed]:
        """Send each selected message back where it failed, with a confirm and an audit line."""
        done: list[Replayed] = []
        for row in await self.rows(sel):
            env = envelope_for(row)
            done.append(Replayed(int(row["id"]), row["message_id"], env.exchange, env.routing_key))
            if dry_run:
                continue
            await self._publisher.publish(env)
            async with self._pool.acquire() as conn, conn.transaction():
                await store.mark_replayed(conn, row, f"{env.exchange} {env.routing_key}", actor)
            log.info("replayed parked #%s (%s) to %s", row["id"], row["message_id"], env.exchange)
        return done

    async def resubmit(
        self, parked_id: int, *, actor: str, data: bytes | None = None, body: bytes | None = None
    ) -> Replayed:
        """Send a parked message back where it failed with what an operator corrected: the
        event's ``data`` (the rest as it came) or the whole body; same id, an audit line."""
        row = await self.show(parked_id)
        if row is None:
            raise LookupError(f"no parked message #{parked_id}")
        env = envelope_for(row)
        corrected = body if body is not None else _with_data(bytes(row["body"]), data or b"")
        env = replace(env, body=corrected)
        await self._publisher.publish(env)
        async with self._pool.acquire() as conn, conn.transaction():
            await store.mark_replayed(
                conn, row, f"{env.exchange} {env.routing_key}", actor, action="resubmit"
            )
        log.info("resubmitted parked #%s (%s) corrected", row["id"], row["message_id"])
        return Replayed(int(row["id"]), row["message_id"], env.exchange, env.routing_key)

    async def purge(self, sel: Selection, *, actor: str) -> int:
        """Delete the selected rows for good (an audit line each stays)."""
        if sel.is_empty:
            raise ValueError("purge needs ids or a filter (--type, --channel, --since)")
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await store.select(conn, sel)
            return await store.purge(conn, rows, actor) if rows else 0


@asynccontextmanager
async def parking_lot(
    database_url: str, broker_url: str, names: Names
) -> AsyncIterator[ParkingLot]:
    """A parking lot on connections of its own, for the CLI and tests."""
    pool = await db.prepare(database_url, 2)
    publisher = Publisher(broker_url, 10.0, name="commerce-hub dlq")
    try:
        await publisher.start()
        yield ParkingLot(pool, publisher, names)
    finally:
        await publisher.stop()
        await pool.close()
