"""ERP stock change -> channel message latency, open loop at a fixed rate, on the real hub.

Starts ``hub run`` as a subprocess (own database and name prefix) with five sales channels,
publishes ``stock.level`` at RATE per second on a fixed schedule (each send's latency counts
from its *scheduled* time, so a stalled sender cannot hide queueing: no coordinated
omission), and times each ``stock.availability`` arriving on the five channel queues. The
load generator is ``bench.run``'s (``open_loop_latency``): a raw-AMQP sender process and a
raw-AMQP receiver process per channel queue. Writes bench/stock_latency.md and
bench/stock_latency.json. Bounded: about 30 s per run.

    .venv/bin/python -m bench.stock_latency [--rate 500 [--rate 750]] [--seconds 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import orjson

from bench.scenarios import open_loop_latency
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


def _level(i: int, skus: int) -> tuple[str, bytes, str]:
    """The i-th ERP stock change: a new on-hand figure for one of ``skus`` SKUs, in turn."""
    n = i % skus
    version = i // skus + 1  # each SKU's changes, counted
    event_id = f"bench-{i}"
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
                "on_hand": 100 + version,
                "version": version,
            },
        }
    )
    return "erp.stock.level", body, event_id


async def run(rate: int, seconds: float, skus: int) -> dict[str, object]:
    """One open-loop run at ``rate`` stock changes a second against a fresh hub."""
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
    warmup = 2.0
    try:
        await wait_for_consumer(connection, names.inbound_queue)
        # The load generator is bench.run's: a raw-AMQP sender process and one raw-AMQP
        # receiver per channel queue (in this process, aio-pika took most of a core at
        # 500/s x 5 on a slow VM, and the sender fell 1-2 s behind).
        result = await open_loop_latency(
            connection,
            None,
            f"stock.level -> stock.availability x {len(CHANNELS)}",
            lambda i: _level(i, skus),
            [names.channel_queue(c) for c in CHANNELS],
            rate,
            warmup + seconds,
            warmup=warmup,
            exchange_name=names.inbound_exchange,
        )
        measured = result.measured
        expected = measured * len(CHANNELS)
        lat = result.latency_ms
        return {
            "rate_per_s": rate,
            "measured_seconds": seconds,
            "channels": len(CHANNELS),
            "skus": skus,
            "stock_levels_measured": measured,
            "availability_expected": expected,
            "availability_received": len(result.latencies),
            "p50_ms": round(lat["p50"], 1) if lat else None,
            "p90_ms": round(pct(result.latencies, 90), 1) if lat else None,
            "p99_ms": round(lat["p99"], 1) if lat else None,
            "max_ms": round(lat["max"], 1) if lat else None,
            "per_channel_p99_ms": {  # a channel that got nothing after the warm-up: None
                c: (
                    round(p99, 1)
                    if (p99 := result.per_queue_p99_ms.get(names.channel_queue(c))) is not None
                    else None
                )
                for c in CHANNELS
            },
            "max_sender_lag_ms": round(result.sender_lag_ms.get("max", 0.0), 1),
            "note": result.note,
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
        " queue's consumer. The load generator is a raw-AMQP sender process and one raw-AMQP"
        " receiver process per channel queue (`bench/sender.py`, `bench/receiver.py`);"
        " max_sender_lag_ms is how late its sends after the warm-up left.",
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
