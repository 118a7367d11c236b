"""The outbox relay on the real broker and database: one bad row never holds back the rest."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from hub import db, outbox, topology
from hub.bus import Envelope, Publisher
from hub.metrics import Metrics
from hub.outbox import OutboxRelay
from hub.topology import Names

pytestmark = pytest.mark.integration


@dataclass
class Parts:
    names: Names
    publisher: Publisher
    pool: asyncpg.Pool


@pytest.fixture
async def parts(isolated, bus) -> AsyncIterator[Parts]:
    """A publisher with the topology for one channel "shop" (not in the config, so its queue
    is deleted here) and a migrated database."""
    names = Names(isolated.name_prefix)
    publisher = Publisher(isolated.broker_url, 5.0)
    await publisher.start()
    await topology.declare(publisher.channel, names, ["shop"], 10)
    pool = await db.prepare(isolated.database_url, 2)
    try:
        yield Parts(names, publisher, pool)
    finally:
        await pool.close()
        await publisher.stop()
        await bus.channel.queue_delete(names.channel_queue("shop"))


async def test_publishable_rows_go_out_and_an_unroutable_one_stays(parts: Parts, bus) -> None:
    names, publisher, pool = parts.names, parts.publisher, parts.pool
    good = [
        Envelope(
            f"ok-{i}",
            names.outbound_exchange,
            "shop.product.upserted",
            "product.upserted",
            "erp",
            b"{}",
        )
        for i in range(3)
    ]
    lost = Envelope(
        "nowhere-1",
        names.outbound_exchange,
        "nobody.product.upserted",
        "product.upserted",
        "erp",
        b"{}",
    )
    async with pool.acquire() as conn:
        await outbox.write(conn, [good[0], lost, *good[1:]])
    relay = OutboxRelay(pool, publisher, grace_s=0, poll_s=1)
    await relay.relay_once(grace_s=0)
    arrived = await bus.drain(names.channel_queue("shop"), expect=3)
    assert sorted(m.message_id for m in arrived) == ["ok-0", "ok-1", "ok-2"]
    left = [r["message_id"] for r in await pool.fetch("SELECT message_id FROM outbox")]
    assert left == ["nowhere-1"]  # kept for a later try (or an operator), never dropped


async def test_a_row_refused_past_the_deadline_is_parked_for_dlq_tools(parts: Parts, bus) -> None:
    names, publisher, pool = parts.names, parts.publisher, parts.pool

    def envelope(message_id: str, channel: str) -> Envelope:
        return Envelope(
            message_id,
            names.outbound_exchange,
            f"{channel}.product.upserted",
            "product.upserted",
            "erp",
            b'{"x": 1}',
            correlation_id="c-1",
        )

    async with pool.acquire() as conn:
        await outbox.write(conn, [envelope("old-lost", "nobody"), envelope("new-lost", "nobody")])
        await outbox.write(conn, [envelope("ok", "shop")])
        await conn.execute(
            "UPDATE outbox SET created_at = now() - interval '2 hours'"
            " WHERE message_id IN ('old-lost', 'ok')"
        )
    metrics = Metrics()
    relay = OutboxRelay(pool, publisher, grace_s=0, poll_s=1, park_after_s=3600, metrics=metrics)
    await relay.relay_once(grace_s=0)

    arrived = await bus.drain(names.channel_queue("shop"), expect=1)
    assert [m.message_id for m in arrived] == ["ok"]
    left = [r["message_id"] for r in await pool.fetch("SELECT message_id FROM outbox")]
    assert left == ["new-lost"]  # young: the topology may come back, it is tried again
    parked = await pool.fetch("SELECT * FROM parked")
    assert [p["message_id"] for p in parked] == ["old-lost"]
    row = parked[0]
    assert row["error_type"] == "unpublishable"
    assert "unroutable" in row["error"]
    assert row["original_routing_key"] == "nobody.product.upserted"
    assert row["original_exchange"] == names.outbound_exchange
    assert bytes(row["body"]) == b'{"x": 1}'
    assert relay.parked == 1 and relay.relayed == 1
    assert metrics.outbox_relayed._value.get() == 1
    assert metrics.parked.labels("unpublishable")._value.get() == 1
