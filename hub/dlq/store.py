"""The durable parking lot in PostgreSQL: indexed by type, channel and time, never expiring."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from hub.db import Connection
from hub.dlq.record import ParkedRecord

_INSERT = """
INSERT INTO parked (fingerprint, message_id, message_type, source, channel, error_type, error,
                    failed_queue, attempts, original_exchange, original_routing_key,
                    correlation_id, reply_to, headers, body, first_failed_at, parked_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::jsonb, $15, $16, $17)
ON CONFLICT (fingerprint) DO NOTHING
RETURNING id
"""


@dataclass(frozen=True)
class Selection:
    """Which parked messages an operator means: by ids, or by types, channel and time window."""

    ids: tuple[int, ...] = ()
    error_type: str | None = None
    channel: str | None = None
    since: datetime | None = None
    include_replayed: bool = False
    message_type: str | None = None
    until: datetime | None = None
    native_types: tuple[str, ...] = ()  # the adapters' events that become ``message_type``

    @property
    def is_empty(self) -> bool:
        """True when nothing narrows it down (purge refuses to take everything by accident)."""
        return not (
            self.ids
            or self.error_type
            or self.channel
            or self.since
            or self.message_type
            or self.until
        )

    def where(self) -> tuple[str, list[Any]]:
        """A SQL condition with its parameters."""
        parts: list[str] = []
        args: list[Any] = []

        def add(sql: str, value: Any) -> None:
            args.append(value)
            parts.append(sql.replace("?", f"${len(args)}"))

        if self.ids:
            add("id = ANY(?::bigint[])", list(self.ids))
        if self.error_type:
            add("error_type = ?", self.error_type)
        if self.channel:
            add("channel = ?", self.channel)
        if self.since:
            add("parked_at >= ?", self.since)
        if self.until:
            add("parked_at < ?", self.until)
        if self.message_type:
            add("message_type = ANY(?::text[])", [self.message_type, *self.native_types])
        if not self.include_replayed:
            parts.append("status = 'parked'")
        return (" AND ".join(parts) or "true"), args


async def insert(conn: Connection, record: ParkedRecord) -> int | None:
    """Store one parked message; None when it was stored before (same fingerprint)."""
    value = await conn.fetchval(
        _INSERT,
        record.fingerprint,
        record.message_id,
        record.message_type,
        record.source,
        record.channel,
        record.error_type,
        record.error,
        record.failed_queue,
        record.attempts,
        record.original_exchange,
        record.original_routing_key,
        record.correlation_id,
        record.reply_to,
        orjson.dumps(record.headers).decode(),
        record.body,
        record.first_failed_at,
        record.parked_at,
    )
    return int(value) if value is not None else None


async def groups(conn: Connection, sel: Selection) -> list[asyncpg.Record]:
    """Counts per error type (with the channels affected and the time span), largest first."""
    where, args = sel.where()
    return list(
        await conn.fetch(
            f"SELECT error_type, count(*) AS count, array_agg(DISTINCT channel) AS channels,"
            f" min(parked_at) AS oldest, max(parked_at) AS newest FROM parked WHERE {where}"
            " GROUP BY error_type ORDER BY count(*) DESC, error_type",
            *args,
        )
    )


async def select(
    conn: Connection, sel: Selection, limit: int | None = None
) -> list[asyncpg.Record]:
    """The parked rows a selection names, oldest first."""
    where, args = sel.where()
    sql = f"SELECT * FROM parked WHERE {where} ORDER BY id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return list(await conn.fetch(sql, *args))


async def get(conn: Connection, parked_id: int) -> asyncpg.Record | None:
    """One parked row by id, whatever its status."""
    return await conn.fetchrow("SELECT * FROM parked WHERE id = $1", parked_id)


async def mark_replayed(
    conn: Connection, row: asyncpg.Record, destination: str, actor: str, action: str = "replay"
) -> None:
    """Record a replay (or a corrected resubmission) on the row and in the audit table."""
    await conn.execute(
        "UPDATE parked SET status = 'replayed', replayed_at = now(), replays = replays + 1"
        " WHERE id = $1",
        row["id"],
    )
    await audit(conn, row, action, destination, actor)


async def purge(conn: Connection, rows: list[asyncpg.Record], actor: str) -> int:
    """Delete rows for good, leaving one audit line each."""
    for row in rows:
        await audit(conn, row, "purge", None, actor)
    result = await conn.execute(
        "DELETE FROM parked WHERE id = ANY($1::bigint[])", [r["id"] for r in rows]
    )
    return int(result.split()[-1])


async def audit(
    conn: Connection, row: asyncpg.Record, action: str, destination: str | None, actor: str
) -> None:
    """One line per operator action, kept after the row itself is gone."""
    await conn.execute(
        "INSERT INTO parked_audit (parked_id, action, message_id, error_type, destination, actor)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        row["id"],
        action,
        row["message_id"],
        row["error_type"],
        destination,
        actor,
    )
