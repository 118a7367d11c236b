"""PostgreSQL access: the pool's lifecycle, database creation and versioned migrations."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# What a handler gets: a plain connection or one checked out of the pool.
Connection = asyncpg.Connection | PoolConnectionProxy

MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
MIGRATION_LOCK = 0x6875625F6D6967  # "hub_mig": one migrator at a time across processes


@dataclass(frozen=True)
class Migration:
    """One versioned SQL file shipped in ``hub/migrations``."""

    version: int
    name: str
    sql: str


def shipped_migrations() -> list[Migration]:
    """Every migration in version order; names must be ``NNN_words.sql``."""
    found: list[Migration] = []
    for entry in resources.files("hub.migrations").iterdir():
        match = MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions: {versions}")
    return found


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def database_name(url: str) -> str:
    """The database a URL points at."""
    return urlsplit(url).path.lstrip("/") or "postgres"


async def ensure_database(url: str) -> bool:
    """Create the database if it does not exist yet (fresh machines); True when it was created."""
    name = database_name(url)
    admin = await asyncpg.connect(_with_database(url, "postgres"))
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        quoted = '"' + name.replace('"', '""') + '"'
        try:
            await admin.execute(f"CREATE DATABASE {quoted}")
        except asyncpg.DuplicateDatabaseError:
            return False
        return True
    finally:
        await admin.close()


async def drop_database(url: str) -> None:
    """Drop a database (tests clean up their own)."""
    name = database_name(url)
    admin = await asyncpg.connect(_with_database(url, "postgres"))
    try:
        quoted = '"' + name.replace('"', '""') + '"'
        await admin.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
    finally:
        await admin.close()


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply every shipped migration not applied yet, each in its own transaction."""
    applied: list[str] = []
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version int PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    for migration in shipped_migrations():
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            done = await conn.fetchval(
                "SELECT 1 FROM schema_migrations WHERE version = $1", migration.version
            )
            if done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            applied.append(migration.name)
    return applied


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's reset query (a round trip on every batch's commit path): the
    hub keeps no session state, only transaction-scoped locks, no LISTEN, no SET, no cursors
    outside transactions; an open transaction is still rolled back by asyncpg itself."""


async def create_pool(url: str, max_size: int) -> asyncpg.Pool:
    """A pool sized for the hub; connections are checked out per batch, never held idle."""
    pool = await asyncpg.create_pool(
        url, min_size=1, max_size=max_size, command_timeout=30, reset=_keep_session
    )
    if pool is None:  # pragma: no cover - asyncpg returns None only when not awaited
        raise RuntimeError("asyncpg returned no pool")
    return pool


async def prepare(url: str, max_size: int) -> asyncpg.Pool:
    """Create the database if needed, migrate it and open the pool: what ``hub run`` does first."""
    await ensure_database(url)
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return await create_pool(url, max_size)
