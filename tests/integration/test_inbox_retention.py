"""The inbox keeps a retention window on the real database: old entries go, recent ones stay."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from prometheus_client import CollectorRegistry, Counter

from hub import db
from hub.inbox import InboxPruner

pytestmark = pytest.mark.integration

DAY = 86_400.0


async def _add(pool: asyncpg.Pool, prefix: str, count: int, age_days: float) -> None:
    await pool.execute(
        "INSERT INTO inbox (consumer, message_id, received_at)"
        " SELECT 'hub.in', $1 || g, now() - make_interval(days => $3::int)"
        " FROM generate_series(1, $2) AS g",
        prefix,
        count,
        int(age_days),
    )


async def _ids(pool: asyncpg.Pool) -> set[str]:
    return {r["message_id"] for r in await pool.fetch("SELECT message_id FROM inbox")}


async def test_entries_past_the_window_go_in_chunks_and_recent_ones_stay(isolated) -> None:
    pool = await db.prepare(isolated.database_url, 2)
    try:
        await _add(pool, "old-", 7, age_days=40)
        await _add(pool, "edge-", 2, age_days=29)
        await _add(pool, "new-", 3, age_days=0)
        registry = CollectorRegistry()
        pruned = Counter("pruned", "test", registry=registry)
        pruner = InboxPruner(pool, retention_s=30 * DAY, interval_s=60, pruned=pruned, chunk=3)

        assert await pruner.prune_once() == 7  # three chunks: 3, 3, 1
        assert await _ids(pool) == {"edge-1", "edge-2", "new-1", "new-2", "new-3"}
        assert registry.get_sample_value("pruned_total") == 7
        assert await pruner.prune_once() == 0
    finally:
        await pool.close()


async def test_a_running_hub_prunes_on_its_interval(start_hub) -> None:
    hub = await start_hub(inbox_retention_days=30, inbox_prune_interval_s=0.2)
    await _add(hub.pool, "old-", 5, age_days=31)
    await _add(hub.pool, "new-", 2, age_days=1)
    for _ in range(50):
        pruned = hub.metrics.registry.get_sample_value("hub_inbox_pruned_total")
        if pruned == 5 and await _ids(hub.pool) == {"new-1", "new-2"}:
            break
        await asyncio.sleep(0.1)
    assert await _ids(hub.pool) == {"new-1", "new-2"}
    assert hub.metrics.registry.get_sample_value("hub_inbox_pruned_total") == 5


async def test_retention_zero_keeps_every_entry(start_hub) -> None:
    hub = await start_hub(inbox_retention_days=0, inbox_prune_interval_s=0.1)
    await _add(hub.pool, "old-", 3, age_days=400)
    await asyncio.sleep(0.5)
    assert await _ids(hub.pool) == {"old-1", "old-2", "old-3"}
    assert hub.metrics.registry.get_sample_value("hub_inbox_pruned_total") == 0


async def test_a_kept_cancellation_whose_order_never_came_goes_with_the_window(
    isolated, caplog: pytest.LogCaptureFixture
) -> None:
    pool = await db.prepare(isolated.database_url, 2)
    try:
        await pool.execute(
            "INSERT INTO early_cancellations (order_id, channel, channel_order_id, cancelled_by,"
            " reason, at) VALUES"
            " ('o-old', 'bolcom', 'B-OLD', 'channel', 'buyer', now() - interval '31 days'),"
            " ('o-new', 'bolcom', 'B-NEW', 'channel', 'buyer', now() - interval '2 days')"
        )
        pruner = InboxPruner(pool, retention_s=30 * DAY, interval_s=60)
        with caplog.at_level("WARNING", logger="hub.inbox"):
            await pruner.prune_once()
        kept = await pool.fetch("SELECT channel_order_id FROM early_cancellations")
        assert [r["channel_order_id"] for r in kept] == ["B-NEW"]
        assert "cancellation of bolcom order B-OLD" in caplog.text
        assert "B-NEW" not in caplog.text
    finally:
        await pool.close()
