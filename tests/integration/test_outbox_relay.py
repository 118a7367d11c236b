"""The outbox relay on the real broker and database: one bad row never holds back the rest."""

from __future__ import annotations

import pytest

from hub import db, outbox, topology
from hub.bus import Envelope, Publisher
from hub.outbox import OutboxRelay
from hub.topology import Names

pytestmark = pytest.mark.integration


async def test_publishable_rows_go_out_and_an_unroutable_one_stays(isolated, bus) -> None:
    names = Names(isolated.name_prefix)
    publisher = Publisher(isolated.broker_url, 5.0)
    await publisher.start()
    await topology.declare(publisher.channel, names, ["shop"], 10)
    pool = await db.prepare(isolated.database_url, 2)
    try:
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
    finally:
        await pool.close()
        await publisher.stop()
        await bus.channel.queue_delete(names.channel_queue("shop"))
