"""The receiving half of the open-loop load generator, in a process of its own.

Sending on a schedule and timing arrivals in one event loop made each half wait for the
other: at 2,250 msg/s the sends spent 70% of the run awaiting aiormq while deliveries were
being read, and went out up to 165 ms behind schedule. Here deliveries are read by their own
process and stamped with ``time.monotonic()`` (one clock for every process on the machine).

``python -m bench.receiver --queue Q --expect N --out FILE``: prints ``ready`` once consuming,
stops after N distinct deliveries (a re-publish counts once) or on SIGTERM, then writes one
JSON list per delivery to FILE:
``[correlation_id, message_id, body_key, monotonic_time]`` (``body_key`` only when the
delivery carries neither id).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path

import aiormq
import aiormq.abc
import orjson

from bench.env import BROKER_URL


def body_key(body: bytes) -> str | None:
    """The id a delivery without AMQP ids names in its body."""
    doc = orjson.loads(body)
    key = doc.get("correlationid") or doc.get("causationid") or doc.get("id")
    return str(key) if key is not None else None


async def receive(
    url: str, queue: str, expect: int
) -> list[tuple[str | None, str | None, str | None, float]]:
    got: list[tuple[str | None, str | None, str | None, float]] = []
    distinct: set[tuple[str | None, str | None, str | None]] = set()  # a re-publish is one
    done = asyncio.Event()

    async def on_delivery(msg: aiormq.abc.DeliveredMessage) -> None:
        now = time.monotonic()
        props = msg.header.properties
        ids = (props.correlation_id, props.message_id)
        ids_and_body = (*ids, None if any(ids) else body_key(msg.body))
        got.append((*ids_and_body, now))
        distinct.add(ids_and_body)
        if len(distinct) >= expect:
            done.set()

    connection = await aiormq.connect(url)
    channel = await connection.channel()
    await channel.basic_qos(prefetch_count=1000)
    await channel.basic_consume(queue, on_delivery, no_ack=True)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    print("ready", flush=True)
    await done.wait()
    await connection.close()
    return got


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=BROKER_URL)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    got = asyncio.run(receive(args.url, args.queue, args.expect))
    args.out.write_bytes(orjson.dumps(got))
    sys.exit(0)


if __name__ == "__main__":
    main()
