"""ERP stock change -> channel message latency, open loop at a fixed rate, on the real hub.

Starts ``hub run`` as a subprocess (own database and name prefix) with five sales channels,
publishes ``stock.level`` at RATE per second on a fixed schedule (each send's latency counts
from its *scheduled* time, so a stalled sender cannot hide queueing: no coordinated
omission), and times each ``stock.availability`` arriving on the five channel queues.
Writes bench/stock_latency.md and bench/stock_latency.json. Bounded: about 25 s per run.

    .venv/bin/python bench/stock_latency.py [--rate 500 [--rate 750]] [--seconds 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import orjson

from hub import db, topology
from hub.topology import Names

BROKER = os.environ.get("HUB_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")
DB_BASE = os.environ.get("HUB_TEST_DATABASE_BASE", "postgresql://postgres@127.0.0.1:5432")
CHANNELS = ("shop-a", "shop-b", "shop-c", "market-d", "store-e")
HERE = Path(__file__).parent

CONFIG = """
version: 1
markets:
  nl: {currency: EUR, vat_rate: 0.21, price_list: nl, country: NL, lead_time_days: 1}
channels:
  erp: {kind: erp, adapter: canonical}
  shop-a: {kind: webshop, adapter: canonical, market: nl}
  shop-b: {kind: webshop, adapter: canonical, market: nl, stock: {safety_buffer: 1}}
  shop-c: {kind: webshop, adapter: canonical, market: nl, stock: {safety_buffer: 2}}
  market-d: {kind: marketplace, adapter: canonical, market: nl, stock: {safety_buffer: 3}}
  store-e: {kind: store, adapter: canonical, market: nl, stock: {safety_buffer: 4}}
routes:
  - {name: levels, types: [stock.level], from: [kind:erp], to: [hub]}
  - {name: avail, types: [stock.availability], from: [hub],
     to: [kind:webshop, kind:marketplace, kind:store]}
"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def wait_for_consumer(connection: aio_pika.abc.AbstractConnection, queue: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
            ch = await connection.channel()
            try:
                q = await ch.declare_queue(queue, passive=True)
                if q.declaration_result.consumer_count > 0:
                    return
            finally:
                if not ch.is_closed:
                    await ch.close()
        await asyncio.sleep(0.2)
    raise TimeoutError("hub did not start consuming within 30 s")


async def run(rate: int, seconds: float, skus: int) -> dict[str, object]:
    tag = uuid.uuid4().hex[:8]
    names = Names(f"bench{tag}.")
    database = f"{DB_BASE}/hub_bench_{tag}"
    cfg = Path(tempfile.mkdtemp()) / "bench.yaml"
    cfg.write_text(CONFIG)
    env = {
        **os.environ,
        "HUB_BROKER_URL": BROKER,
        "HUB_DATABASE_URL": database,
        "HUB_NAME_PREFIX": names.prefix,
        "HUB_CONFIG_PATH": str(cfg),
        "HUB_HTTP_PORT": "0",
        "HUB_LOG_LEVEL": "WARNING",
    }
    hub_bin = Path(sys.executable).with_name("hub")
    proc = await asyncio.create_subprocess_exec(str(hub_bin), "run", env=env)
    connection = await aio_pika.connect(BROKER)
    loop = asyncio.get_running_loop()
    scheduled: dict[str, float] = {}
    latencies: dict[str, list[float]] = {c: [] for c in CHANNELS}
    warmup = 2.0
    done = asyncio.Event()
    target = [sys.maxsize]
    count = [0]
    try:
        await wait_for_consumer(connection, names.inbound_queue)
        consumer = await connection.channel()
        await consumer.set_qos(prefetch_count=2000)
        for name in CHANNELS:

            def on_message(msg: aio_pika.abc.AbstractIncomingMessage, ch: str = name) -> None:
                arrived = loop.time()
                cause = orjson.loads(msg.body).get("causationid")
                sent = scheduled.get(cause)
                if sent is not None:
                    latencies[ch].append(arrived - sent)
                    count[0] += 1
                    if count[0] >= target[0]:
                        done.set()

            queue = await consumer.get_queue(names.channel_queue(name), ensure=False)
            await queue.consume(on_message, no_ack=True)  # type: ignore[arg-type]

        sender = await connection.channel(publisher_confirms=False)
        exchange = await sender.get_exchange(names.inbound_exchange, ensure=False)
        total = int(rate * (warmup + seconds))
        versions = [0] * skus
        start = loop.time() + 0.5
        max_lag = 0.0
        for i in range(total):
            due = start + i / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            max_lag = max(max_lag, loop.time() - due)
            n = i % skus
            versions[n] += 1
            event_id = f"bench-{i}"
            if i >= rate * warmup:
                scheduled[event_id] = due
            body = orjson.dumps(
                {
                    "specversion": "1.0",
                    "id": event_id,
                    "source": "erp",
                    "type": "stock.level",
                    "time": datetime.now(UTC).isoformat(),
                    "subject": f"SKU-{n}",
                    "data": {
                        "sku": f"SKU-{n}",
                        "location": "main",
                        "on_hand": 100 + versions[n],
                        "version": versions[n],
                    },
                }
            )
            await exchange.publish(
                aio_pika.Message(body, message_id=event_id, delivery_mode=2),
                routing_key="erp.stock.level",
            )
        expected = len(scheduled) * len(CHANNELS)
        target[0] = expected
        if sum(map(len, latencies.values())) >= expected:
            done.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 15)
        all_lat = [v for vals in latencies.values() for v in vals]
        received = len(all_lat)
        return {
            "rate_per_s": rate,
            "measured_seconds": seconds,
            "channels": len(CHANNELS),
            "skus": skus,
            "stock_levels_measured": len(scheduled),
            "availability_expected": expected,
            "availability_received": received,
            "p50_ms": round(statistics.median(all_lat) * 1000, 1) if all_lat else None,
            "p90_ms": round(pct(all_lat, 90) * 1000, 1) if all_lat else None,
            "p99_ms": round(pct(all_lat, 99) * 1000, 1) if all_lat else None,
            "max_ms": round(max(all_lat) * 1000, 1) if all_lat else None,
            "per_channel_p99_ms": {
                c: round(pct(v, 99) * 1000, 1) for c, v in latencies.items() if v
            },
            "max_sender_lag_ms": round(max_lag * 1000, 1),
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
        channel = await connection.channel()
        await topology.delete_all(channel, names, ["erp", *CHANNELS])
        await connection.close()
        await db.drop_database(database)


ROWS = (
    "stock_levels_measured",
    "availability_expected",
    "availability_received",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "max_sender_lag_ms",
    "when",
)


def _met(result: dict[str, Any]) -> bool:
    p99 = result["p99_ms"]
    complete = result["availability_received"] >= result["availability_expected"]
    return isinstance(p99, float) and p99 < 1000 and complete


def write(results: list[dict[str, Any]]) -> None:
    """One column per run; the verdict per rate is the worst of its runs (runs here vary)."""
    (HERE / "stock_latency.json").write_text(json.dumps(results, indent=2) + "\n")
    first = results[0]
    lines = [
        "# Stock propagation latency (ERP stock.level -> stock.availability on channel queues)",
        "",
        f"`{Path(sys.argv[0]).name}`: open loop at a fixed rate of stock changes for"
        f" {first['measured_seconds']} s per run (after 2 s warm-up), fanned out to"
        f" {first['channels']} channels, {first['skus']} SKUs, hub in its own process,"
        " RabbitMQ and PostgreSQL on localhost (2-core VM, all on the same two cores)."
        " Latency counts from each change's scheduled send time to arrival on the channel"
        " queue's consumer.",
        "",
        "| run | "
        + " | ".join(f"{r['rate_per_s']}/s #{i + 1}" for i, r in enumerate(results))
        + " |",
        "|---|" + "---|" * len(results),
        *(f"| {k} | " + " | ".join(str(r[k]) for r in results) + " |" for k in ROWS),
        "",
    ]
    for rate in sorted({r["rate_per_s"] for r in results}):
        runs = [r for r in results if r["rate_per_s"] == rate]
        worst = max(r["p99_ms"] or float("inf") for r in runs)
        verdict = "met" if all(_met(r) for r in runs) else "NOT met"
        lines.append(
            f"- {rate} changes/s x {first['channels']} channels: worst p99 of {len(runs)}"
            f" run(s) {worst} ms; target p99 < 1000 ms with every message delivered: {verdict}."
        )
    lines.append("")
    (HERE / "stock_latency.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, action="append", help="repeatable; default 500")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--skus", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=1, help="runs per rate")
    args = parser.parse_args()
    results = []
    for rate in args.rate or [500]:
        for _ in range(args.repeat):
            result = asyncio.run(run(rate, args.seconds, args.skus))
            print(json.dumps(result, indent=2))
            results.append(result)
    write(results)


if __name__ == "__main__":
    main()
