"""Thousands of generated and mutated messages at hub.in: no crash, each one handled or parked
with a reason, none lost (in = handled + parked + duplicates absorbed)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import asyncpg
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub import db, topology
from hub.runtime import Hub
from hub.settings import Settings
from hub.topology import Names
from routes.loader import load_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
CONFIG = Path(__file__).parents[1] / "chaos" / "chaos.yaml"
BROKER_URL = os.environ.get("HUB_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")
DATABASE_BASE = os.environ.get("HUB_TEST_DATABASE_BASE", "postgresql://postgres@127.0.0.1:5432")
T = TypeVar("T")

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text()
)
json_value = st.recursive(
    json_leaf,
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = ("specversion", "id", "source", "type", "time", "subject", "data")


@st.composite
def messages(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid product event, or one mutated in one of the ways real integrations break."""
    sku = draw(st.from_regex(r"[A-Z]{2,4}-[0-9]{1,5}", fullmatch=True))
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": draw(st.sampled_from(["dup-a", "dup-b"])) if draw(st.integers(0, 19)) == 0
        else str(uuid.uuid4()),
        "source": "erp",
        "type": "product.upserted",
        "time": datetime.now(UTC).isoformat(),
        "subject": sku,
        "data": {"sku": sku, "name": "Desk", "version": draw(st.integers(1, 10**6))},
    }  # fmt: skip
    key = "erp.product.upserted"
    mutation = draw(st.sampled_from(["none", "drop", "replace", "data", "bytes", "cut", "route"]))
    if mutation == "drop":
        del event[draw(st.sampled_from(FIELDS))]
    elif mutation == "replace":
        event[draw(st.sampled_from(FIELDS))] = draw(json_value)
    elif mutation == "data":
        event["data"][draw(st.sampled_from(["sku", "name", "version", "extra"]))] = draw(json_value)
    elif mutation == "bytes":
        return key, draw(st.binary(max_size=200))
    elif mutation == "route":
        key = draw(st.sampled_from(["shop-a.product.upserted", "erp.x", "nobody.order.placed"]))
        event["source"] = draw(st.sampled_from(["erp", "shop-a", "market-c", "nobody"]))
    body = orjson.dumps(event)
    if mutation == "cut":
        body = body[: draw(st.integers(0, len(body) - 1))]
    return key, body


class LoopThread:
    """The hub in an event loop of its own, so hypothesis can drive it from a plain test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[LoopThread, Hub, Any]]:
    tag = uuid.uuid4().hex[:8]
    s = Settings(
        broker_url=BROKER_URL,
        database_url=f"{DATABASE_BASE}/hub_prop_{tag}",
        name_prefix=f"p{tag}.",
        config_path=CONFIG,
        http_port=0,
    )
    lt = LoopThread()
    hub = Hub(s, load_config(CONFIG))
    lt.run(hub.start())

    async def open_exchange() -> tuple[Any, Any]:
        conn = await aio_pika.connect(BROKER_URL)
        ch = await conn.channel(publisher_confirms=True)
        return conn, await ch.get_exchange(s.name_prefix + "hub.in", ensure=False)

    conn, exchange = lt.run(open_exchange())
    yield lt, hub, exchange

    async def cleanup() -> None:
        await hub.stop()
        channel = await conn.channel()
        await topology.delete_all(
            channel, Names(s.name_prefix), ["erp", "shop-a", "shop-b", "market-c"]
        )
        await conn.close()
        await db.drop_database(s.database_url)

    lt.run(cleanup())
    lt.close()


SENT: list[int] = [0]


async def dead_depth(hub: Hub) -> int:
    conn = await aio_pika.connect(BROKER_URL)
    try:
        q = await (await conn.channel()).declare_queue(hub.names.dead_queue, passive=True)
        return int(q.declaration_result.message_count or 0)
    finally:
        await conn.close()


@settings(
    max_examples=700,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(batch=st.lists(messages(), min_size=1, max_size=5))
def test_every_message_is_handled_or_parked(
    running: tuple[LoopThread, Hub, Any], batch: list[tuple[str, bytes]]
) -> None:
    lt, _, exchange = running

    async def send() -> None:
        for key, body in batch:
            await exchange.publish(aio_pika.Message(body, delivery_mode=2), routing_key=key)

    lt.run(send())
    SENT[0] += len(batch)


def test_none_lost_and_the_hub_still_works(running: tuple[LoopThread, Hub, Any]) -> None:
    """Runs after the property: the accounting adds up and a good message still flows."""
    lt, hub, _ = running
    assert SENT[0] >= 1000

    async def accounting() -> tuple[int, int, int]:
        conn = await asyncpg.connect(hub.settings.database_url)
        try:
            handled = int(await conn.fetchval("SELECT count(*) FROM inbox"))
        finally:
            await conn.close()
        parked = sum(
            sample.value
            for metric in hub.metrics.parked.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        )
        dups = hub.metrics.duplicates.labels(hub.names.inbound_queue)._value.get()
        return handled, int(parked), int(dups)

    deadline = time.monotonic() + 40
    while True:
        handled, parked, dups = lt.run(accounting())
        if handled + parked + dups >= SENT[0] or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert handled + parked + dups == SENT[0], (handled, parked, dups, SENT[0])
    assert handled > 0 and parked > 0
    assert lt.run(dead_depth(hub)) == parked  # every parked message really is in hub.dead
    # Parked ones carry a reason: the hub's parked counter is labelled by error type.
    reasons = {
        sample.labels["error_type"]
        for metric in hub.metrics.parked.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    }
    assert reasons <= {
        "malformed",
        "unknown_type",
        "schema_violation",
        "unknown_channel",
        "no_route",
    }
    assert lt.run(hub.readiness()) == {"broker": True, "database": True}
