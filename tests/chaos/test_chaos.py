"""Jepsen-style proof: thousands of inputs through a real hub that is SIGKILLed, whose broker and
database restart under it; afterwards every input had its effect exactly once, nothing lost."""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import orjson
import pytest
from chaos_harness import (
    HubProcess,
    StubbornPublisher,
    ensure_postgres,
    ensure_rabbitmq,
    hub_env,
    restart_postgres,
    restart_rabbitmq,
)

from hub import db, topology
from hub.topology import Names

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.timeout(420)]

HERE = Path(__file__).parent
CONFIG = HERE / "chaos.yaml"
RESULTS = HERE / "RESULTS.md"
CHANNELS = ("shop-a", "shop-b", "market-c")  # every product.upserted fans out to these three
BROKER_URL = os.environ.get("HUB_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")
DATABASE_BASE = os.environ.get("HUB_TEST_DATABASE_BASE", "postgresql://postgres@127.0.0.1:5432")
INPUTS = int(os.environ.get("CHAOS_INPUTS", "3000"))


def event(i: int, run: str) -> tuple[str, bytes]:
    event_id = f"{run}-{i:05d}"
    body = {
        "specversion": "1.0",
        "id": event_id,
        "source": "erp",
        "type": "product.upserted",
        "time": datetime.now(UTC).isoformat(),
        "subject": f"SKU-{i}",
        "data": {"sku": f"SKU-{i}", "name": f"Product {i}", "version": 1},
    }
    return event_id, orjson.dumps(body)


async def feed(pub: StubbornPublisher, run: str, stats: dict[str, Any]) -> None:
    """Every input once, plus every tenth sent again later (an adapter's at-least-once)."""
    rng = random.Random(7)
    resend: list[tuple[str, bytes]] = []
    for start in range(0, INPUTS, 25):
        chunk = [event(i, run) for i in range(start, min(start + 25, INPUTS))]
        resend.extend(e for e in chunk if rng.random() < 0.1)
        if resend and rng.random() < 0.3:
            chunk.append(resend.pop(0))
            stats["resent"] += 1
        await asyncio.gather(*(pub.publish("erp.product.upserted", b, i) for i, b in chunk))
        await asyncio.sleep(0.25)
    stats["fed_at"] = time.monotonic()


async def chaos(hub: HubProcess, stats: dict[str, Any], feeding: asyncio.Task[None]) -> None:
    """Kill, restart PostgreSQL, kill, restart RabbitMQ, kill, and keep killing while feeding."""
    rng = random.Random()

    async def kill() -> None:
        await asyncio.sleep(rng.uniform(1.5, 4.0))
        hub.kill()
        stats["kills"] += 1
        hub.start()
        stats["recover_s"].append(("SIGKILL", await hub.wait_ready()))

    await kill()
    await asyncio.sleep(rng.uniform(1.0, 3.0))
    stats["pg_down_s"] = await restart_postgres()
    stats["recover_s"].append(("postgres restart", await hub.wait_ready()))
    await kill()
    await asyncio.sleep(rng.uniform(1.0, 3.0))
    stats["rabbit_down_s"] = await restart_rabbitmq(BROKER_URL)
    stats["recover_s"].append(("rabbitmq restart", await hub.wait_ready()))
    await kill()
    while not feeding.done():
        await kill()


async def queue_depths(names: Names) -> dict[str, int]:
    conn = await aio_pika.connect(BROKER_URL)
    try:
        ch = await conn.channel()
        depths = {}
        for q in [*(names.channel_queue(c) for c in CHANNELS), names.dead_queue]:
            declared = await ch.declare_queue(q, passive=True)
            depths[q] = declared.declaration_result.message_count or 0
        return depths
    finally:
        await conn.close()


async def drain_all(names: Names, queue: str, expect: int) -> list[str]:
    """Every message's causation id in a channel queue (consumed, so the queue ends empty)."""
    conn = await aio_pika.connect(BROKER_URL)
    got: list[str] = []
    try:
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=1000)
        q = await ch.declare_queue(queue, passive=True)
        async with q.iterator(timeout=3) as it:
            try:
                async for msg in it:
                    got.append(orjson.loads(msg.body)["causationid"])
                    await msg.ack()
            except TimeoutError:
                pass
    finally:
        await conn.close()
    return got


async def wait_quiet(database_url: str, names: Names, timeout: float = 150) -> float:
    """Wait until every input is in the inbox, the outbox is empty and queues hold enough."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            conn = await asyncpg.connect(database_url)
            try:
                inbox = await conn.fetchval("SELECT count(*) FROM inbox")
                outbox = await conn.fetchval("SELECT count(*) FROM outbox")
            finally:
                await conn.close()
            depths = await queue_depths(names)
        except (OSError, asyncpg.PostgresError, aio_pika.exceptions.AMQPError):
            await asyncio.sleep(0.5)
            continue
        if (
            inbox >= INPUTS
            and outbox == 0
            and all(depths[names.channel_queue(c)] >= INPUTS for c in CHANNELS)
        ):
            return time.monotonic() - started
        await asyncio.sleep(0.5)
    raise TimeoutError("the hub did not catch up")


def write_results(figures: dict[str, Any]) -> None:
    lines = [
        "# Chaos test results",
        "",
        "Written by `tests/chaos/test_chaos.py` on every run (see it for the scenario).",
        "",
        "| figure | value |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in figures.items()),
        "",
    ]
    RESULTS.write_text("\n".join(lines))


async def test_no_loss_no_double_effect_under_kills_and_restarts(tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    names = Names(f"chaos{run}.")
    database_url = f"{DATABASE_BASE}/hub_chaos_{run}"
    hub = HubProcess(hub_env(database_url, BROKER_URL, names.prefix, CONFIG), tmp_path / "hub.log")
    stats: dict[str, Any] = {"kills": 0, "resent": 0, "recover_s": []}
    pub = StubbornPublisher(BROKER_URL, names.inbound_exchange)
    began = time.monotonic()
    try:
        hub.start()
        await hub.wait_ready()
        feeding = asyncio.create_task(feed(pub, run, stats))
        await chaos(hub, stats, feeding)
        await feeding
        catch_up = await wait_quiet(database_url, names)
        await hub.ready()  # last scrape of the duplicates counter
        assert hub.terminate() == 0  # SIGTERM: drains and exits cleanly

        expected = {event(i, run)[0] for i in range(INPUTS)}
        conn = await asyncpg.connect(database_url)
        try:
            inbox = [r["message_id"] for r in await conn.fetch("SELECT message_id FROM inbox")]
            outbox_left = await conn.fetchval("SELECT count(*) FROM outbox")
        finally:
            await conn.close()
        assert set(inbox) == expected and len(inbox) == INPUTS  # each input handled once
        assert outbox_left == 0
        assert (await queue_depths(names))[names.dead_queue] == 0  # nothing parked
        out_dupes = 0
        for channel in CHANNELS:
            got = await drain_all(names, names.channel_queue(channel), INPUTS)
            assert set(got) == expected, f"{channel}: missing {len(expected - set(got))}"
            out_dupes += sum(n - 1 for n in Counter(got).values())
        lost = INPUTS - len(expected & set(inbox))
        assert lost == 0
        write_results(
            {
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "inputs (distinct ids)": INPUTS,
                "input copies re-sent on purpose": stats["resent"],
                "effects expected (inputs x 3 channels)": INPUTS * len(CHANNELS),
                "hub SIGKILLs": stats["kills"],
                "RabbitMQ restarts": 1,
                "PostgreSQL restarts": 1,
                "RabbitMQ away (s)": f"{stats['rabbit_down_s']:.1f}",
                "PostgreSQL away (s)": f"{stats['pg_down_s']:.1f}",
                "inbox rows (effects once)": len(inbox),
                "duplicate inputs absorbed (hub counter, scraped before each kill)": int(
                    sum(hub.duplicates_seen)
                ),
                "duplicate deliveries on channel queues (same id, at-least-once out)": out_dupes,
                "parked": 0,
                "lost": lost,
                "time to ready after each fault (s)": ", ".join(
                    f"{what} {s:.1f}" for what, s in stats["recover_s"]
                ),
                "catch-up after last input (s)": f"{catch_up:.1f}",
                "publisher retries (adapter side, broker away)": pub.retries,
                "total run (s)": f"{time.monotonic() - began:.0f}",
            }
        )
    finally:
        await pub.close()
        if hub.proc is not None and hub.proc.poll() is None:
            hub.kill()
        await ensure_rabbitmq(BROKER_URL)
        await ensure_postgres()
        await db.drop_database(database_url)
        conn = await aio_pika.connect(BROKER_URL)
        try:
            await topology.delete_all(await conn.channel(), names, CHANNELS)
        finally:
            await conn.close()
