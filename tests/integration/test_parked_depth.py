"""The DLQ depth gauge on the real broker and database: what waits for an operator, wherever."""

from __future__ import annotations

import asyncio

import pytest

from hub.dlq.service import ParkingLot

pytestmark = pytest.mark.integration


async def _gauge_reaches(hub, value: float) -> float | None:
    got = None
    for _ in range(100):
        got = hub.metrics.registry.get_sample_value("hub_parked_waiting")
        if got == value:
            break
        await asyncio.sleep(0.05)
    return got


async def test_parked_messages_are_counted_until_replayed(start_hub, bus) -> None:
    hub = await start_hub(parked_depth_interval_s=0.1)
    assert await _gauge_reaches(hub, 0) == 0
    for n in range(2):
        await bus.publish("erp.product.upserted", b"{not json", message_id=f"bad-{n}")
    assert await _gauge_reaches(hub, 2) == 2  # waiting in hub.dead

    assert await ParkingLot(hub.pool, hub.publisher, hub.names).sweep() == 2
    assert await _gauge_reaches(hub, 2) == 2  # now in the store, still waiting

    await hub.pool.execute("UPDATE parked SET status = 'replayed' WHERE message_id = 'bad-0'")
    assert await _gauge_reaches(hub, 1) == 1
    assert await hub.publisher.queue_depth("no-such-queue-here") is None
    assert hub.publisher.connected  # the failed probe closed only its own channel
