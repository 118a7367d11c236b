"""Retries on the real broker and database: back-off timing, parking after the limit, DB outage."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import pytest

from hub.bus import Envelope
from hub.db import Connection
from hub.errors import DatabaseUnavailable
from hub.handlers import Handler, Inbound
from hub.router import Router
from hub.runtime import Hub
from hub.settings import Settings
from routes.loader import load_config

pytestmark = pytest.mark.integration


def product_event(sku: str = "SKU-1", event_id: str | None = None) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": "erp",
        "type": "product.upserted",
        "time": datetime.now(UTC).isoformat(),
        "subject": sku,
        "data": {"sku": sku, "name": "Oak desk 160", "version": 1},
    }


class FlakyHandler:
    """Fails transiently the first ``failures`` times it sees a message id, then routes it."""

    stateful = True
    forwards = True  # keeps nothing of its own: routes product.upserted on

    def __init__(self, hub: Hub, failures: int, only: str | None = None) -> None:
        self.router = Router(hub.table, hub.names)
        self.failures = failures
        self.only = only
        self.calls: dict[str, list[float]] = defaultdict(list)

    async def handle(
        self, inbound: Inbound, conn: Connection | None, now: datetime
    ) -> Sequence[Envelope]:
        # One delivery attempt may run the handler more than once (the committer may redo a
        # batch to isolate a failure), so calls close together count as one attempt.
        calls = self.calls[inbound.event.id]
        if not calls or time.monotonic() - calls[-1] > 0.5:
            calls.append(time.monotonic())
        if (self.only is None or inbound.event.id == self.only) and len(calls) <= self.failures:
            raise DatabaseUnavailable(f"simulated outage, call {len(calls)}")
        return self.router.envelopes(inbound)


@pytest.fixture
async def flaky_hub(
    isolated: Settings,
) -> AsyncIterator[Callable[..., Any]]:
    hubs: list[Hub] = []

    async def factory(failures: int, only: str | None = None, **overrides: Any) -> Any:
        settings = isolated.model_copy(update=overrides)
        holder: dict[str, FlakyHandler] = {}

        def handlers(hub: Hub) -> dict[str, Handler]:
            holder["h"] = FlakyHandler(hub, failures, only)
            return {"product.upserted": holder["h"]}

        hub = Hub(settings, load_config(settings.config_path), handler_factories=(handlers,))
        await hub.start()
        hubs.append(hub)
        return hub, holder["h"]

    yield factory
    for hub in hubs:
        await hub.stop()


def first_channel(hub: Hub) -> str:
    return next(iter(hub.table.destinations("erp", "product.upserted")))


async def test_transient_failures_back_off_through_the_delay_queues(flaky_hub, bus) -> None:
    hub, handler = await flaky_hub(failures=2)
    event = product_event(event_id="retry-1")
    await bus.publish("erp.product.upserted", event, message_id="retry-1")

    got = await bus.drain(bus.names.channel_queue(first_channel(hub)), expect=1, timeout=15)
    assert len(got) == 1
    assert orjson.loads(got[0].body)["causationid"] == "retry-1"
    calls = handler.calls["retry-1"]
    assert len(calls) == 3
    first_gap, second_gap = calls[1] - calls[0], calls[2] - calls[1]
    assert 0.9 <= first_gap < 3.0, first_gap  # hub.retry.1s
    assert 4.9 <= second_gap < 8.0, second_gap  # hub.retry.5s
    assert hub.metrics.retried.labels("database_unavailable")._value.get() == 2
    assert await bus.drain(bus.names.dead_queue, expect=0, settle=0.2) == []


async def test_after_the_last_attempt_the_message_is_parked_and_others_flow(flaky_hub, bus) -> None:
    hub, handler = await flaky_hub(failures=99, only="doomed", retry_max_attempts=3)
    await bus.publish("erp.product.upserted", product_event(event_id="doomed"))
    await bus.publish("erp.product.upserted", product_event(sku="SKU-OK", event_id="fine"))

    # The good message is not held up behind the failing one.
    [ok] = await bus.bodies(bus.names.channel_queue(first_channel(hub)), expect=1, timeout=3)
    assert ok["data"]["sku"] == "SKU-OK"

    started = time.monotonic()
    [parked] = await bus.drain(bus.names.dead_queue, expect=1, timeout=15)
    headers = parked.headers
    assert headers["x-hub-attempts"] == 3
    assert headers["x-hub-error-type"] == "database_unavailable"
    assert "call 3" in str(headers["x-hub-error"])
    assert headers["x-hub-original-routing-key"] == "erp.product.upserted"
    assert headers["x-hub-original-exchange"] == bus.names.inbound_exchange
    assert headers["x-hub-first-failed-at"] < headers["x-hub-last-failed-at"]
    assert len(handler.calls["doomed"]) == 3
    assert time.monotonic() - started < 10
    assert hub.metrics.parked.labels("database_unavailable")._value.get() == 1


async def _set_connections(settings: Settings, allowed: bool) -> None:
    """An outage of this test's database only: refuse new connections and cut existing ones."""
    name = settings.database_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(settings.database_url.rsplit("/", 1)[0] + "/postgres")
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
    finally:
        await admin.close()


async def test_database_outage_is_retried_then_succeeds(start_hub, bus, isolated) -> None:
    hub = await start_hub()
    channel = first_channel(hub)
    await _set_connections(isolated, allowed=False)
    ready_during = await hub.readiness()
    for i in range(5):
        await bus.publish(  # one SKU each: retried out of order, an older version would be stale
            "erp.product.upserted", product_event(f"SKU-{i}", event_id=f"outage-{i}")
        )
    await asyncio.sleep(1.5)
    await _set_connections(isolated, allowed=True)

    got = await bus.drain(bus.names.channel_queue(channel), expect=5, timeout=20)
    ids = sorted(m.message_id or "" for m in got)
    assert len(ids) == len(set(ids)) == 5
    assert ready_during["database"] is False
    assert (await hub.readiness())["database"] is True
    assert hub.metrics.retried.labels("database_unavailable")._value.get() >= 1
    assert hub.metrics.parked.labels("database_unavailable")._value.get() == 0
