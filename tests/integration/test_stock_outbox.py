"""Stock levels put their availability messages in the outbox once, with what they record."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import orjson
import pytest

from hub import db, outbox
from hub.bus import Envelope, Publisher
from hub.committer import BatchCommitter
from hub.errors import PublishNotConfirmed
from hub.handlers import Inbound
from hub.metrics import Metrics
from hub.stock.availability import StockContext
from hub.stock.handlers import StockLevelHandler
from hub.topology import Names
from routes.loader import load_config
from routes.matching import RouteTable
from schemas.envelope import CloudEvent
from schemas.inventory import StockLevel

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).parents[1] / "fixtures" / "stock" / "hub.yaml"


class Publishing(Publisher):
    """The publisher's port: records what it was given, or fails as a lost broker would."""

    def __init__(self, fail: bool) -> None:
        super().__init__("amqp://unused", 1.0)
        self.fail = fail
        self.sent: list[Envelope] = []

    async def publish_many(self, envelopes: Sequence[Envelope]) -> None:
        if self.fail:
            raise PublishNotConfirmed("broker gone")
        self.sent.extend(envelopes)


def level(sku: str, on_hand: int, version: int) -> Inbound:
    message = StockLevel(sku=sku, location="main", on_hand=on_hand, version=version)
    event = CloudEvent(
        id=str(uuid.uuid4()),
        source="erp",
        type=message.TYPE,
        time=datetime.now(UTC),
        data=message.model_dump(mode="json"),
    )
    return Inbound(event=event, message=message, routing_key="erp.stock.level")


async def run_levels(url: str, publisher: Publishing, levels: list[Inbound]) -> list[int]:
    """Commit ``levels`` as one batch through the real handler; the published counts."""
    config = load_config(CONFIG)
    ctx = StockContext(config, RouteTable.from_config(config), Names("t"))
    handler = StockLevelHandler(ctx, Metrics())
    pool = await db.prepare(url, 2)
    committer = BatchCommitter(pool, publisher, Metrics(), "test", batch_max=50)
    try:
        committer.start()
        outcomes = await asyncio.gather(*(committer.submit(i, handler) for i in levels))
        await committer.stop()
    finally:
        await pool.close()
    assert [o.kind for o in outcomes] == ["done"] * len(levels)
    return [o.published for o in outcomes]


async def test_when_publishing_fails_each_message_waits_in_the_outbox_once(isolated) -> None:
    levels = [level("DESK-1", 1000, 1), level("LAMP-1", 10, 1), level("DESK-1", 1001, 2)]
    counts = await run_levels(isolated.database_url, Publishing(fail=True), levels)
    conn = await asyncpg.connect(isolated.database_url)
    try:
        rows = await conn.fetch("SELECT message_id, routing_key, body FROM outbox ORDER BY id")
        recorded = {
            (r["channel"], r["sku"]): (r["available"], r["version"])
            for r in await conn.fetch("SELECT * FROM stock_published")
        }
    finally:
        await conn.close()
    # One figure per channel and SKU (DESK-1's second level supersedes its first in the batch),
    # each message in the outbox once, saying what stock_published says was sent.
    assert len(rows) == len(recorded) == sum(counts) > 0
    assert len({r["message_id"] for r in rows}) == len(rows)
    in_outbox = {}
    for r in rows:
        data = orjson.loads(r["body"])["data"]
        assert r["routing_key"] == f"{data['channel']}.stock.availability"
        in_outbox[(data["channel"], data["sku"])] = (data["available"], data["version"])
    assert in_outbox == recorded
    assert recorded[("webshop-nl", "DESK-1")] == (999, 1)  # 1001 less the buffer of 2


async def test_published_messages_leave_the_outbox(isolated) -> None:
    publisher = Publishing(fail=False)
    counts = await run_levels(
        isolated.database_url, publisher, [level("DESK-1", 50, 1), level("LAMP-1", 7, 1)]
    )
    assert len(publisher.sent) == sum(counts) > 0
    # The ids the handler's own write returned are the rows' ids: each sent row was deleted.
    assert all(e.outbox_id is not None for e in publisher.sent)
    conn = await asyncpg.connect(isolated.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 0
        assert await conn.fetchval("SELECT count(*) FROM stock_published") == len(publisher.sent)
    finally:
        await conn.close()


async def test_a_write_along_goes_in_the_same_statement(isolated) -> None:
    pool = await db.prepare(isolated.database_url, 1)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("CREATE TABLE noted (what text)")
            along = ("INSERT INTO noted (what) SELECT unnest($1::text[])", (["a", "b"],))
            envelopes = [Envelope(f"m{i}", "x", "k", "t", "s", b"{}") for i in range(3)]
            ids = await outbox.write(conn, envelopes, along=along)
            by_id = {r["id"]: r["message_id"] for r in await conn.fetch("SELECT * FROM outbox")}
            assert [by_id[i] for i in ids] == ["m0", "m1", "m2"]  # in the envelopes' order
            assert (
                await outbox.write(conn, [], along=("DELETE FROM noted WHERE what = $1", ("a",)))
                == []
            )
            assert [r["what"] for r in await conn.fetch("SELECT what FROM noted")] == ["b"]
    finally:
        await pool.close()
