"""The reference: the plainest aio-pika code that moves the same messages with the same guarantees.

Consume a quorum queue (prefetch P), publish every message persistent with publisher confirms
to N output queues concurrently, ack the input only after every confirm. Messages are processed
concurrently (aio-pika runs each delivery's callback as its own task). Run as a subprocess:
``python -m bench.relay --in QUEUE --out Q1,Q2 --prefetch 256`` until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from bench.env import BROKER_URL
from hub import eventloop


async def relay(url: str, source: str, outputs: list[str], prefetch: int) -> None:
    connection = await aio_pika.connect(url)
    consume = await connection.channel()
    await consume.set_qos(prefetch_count=prefetch)
    publish = await connection.channel(publisher_confirms=True)
    exchange = publish.default_exchange

    async def on_message(message: AbstractIncomingMessage) -> None:
        out = aio_pika.Message(
            message.body,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            content_type=message.content_type,
            message_id=message.message_id,
        )
        await asyncio.gather(*(exchange.publish(out, routing_key=q) for q in outputs))
        await message.ack()

    queue = await consume.get_queue(source, ensure=False)
    await queue.consume(on_message)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=BROKER_URL)
    parser.add_argument("--in", dest="source", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--prefetch", type=int, default=256)
    args = parser.parse_args()
    work = relay(args.url, args.source, args.out.split(","), args.prefetch)
    # On the same event loop as the hub's (HUB_EVENT_LOOP), so the two compare like for like.
    eventloop.run(work, os.environ.get("HUB_EVENT_LOOP", "uvloop"))


if __name__ == "__main__":
    main()
