"""hub.in's consumer takes deliveries in aiormq's channel reader, on the real broker."""

from __future__ import annotations

import asyncio
import uuid

import aiormq
import pytest
from aiormq.abc import DeliveredMessage

from hub import direct_delivery
from hub.direct_delivery import Direct

pytestmark = pytest.mark.integration


async def test_each_delivery_is_taken_in_order_in_the_reader_without_a_task_each(
    isolated,
) -> None:
    direct_delivery.install()
    connection = await aiormq.connect(isolated.broker_url)
    try:
        channel = await connection.channel()
        queue = f"t-direct-{uuid.uuid4().hex[:8]}"
        await channel.queue_declare(queue, exclusive=True, auto_delete=True)
        bodies: list[bytes] = []
        tasks: set[asyncio.Task[object] | None] = set()
        all_taken = asyncio.Event()

        def take(message: DeliveredMessage) -> None:
            tasks.add(asyncio.current_task())
            bodies.append(message.body)
            if message.body == b"3":
                raise ValueError("one bad delivery")  # logged; the reader reads on
            if len(bodies) == 20:
                all_taken.set()

        await channel.basic_consume(queue, Direct(take), no_ack=True)
        for n in range(20):
            await channel.basic_publish(str(n).encode(), routing_key=queue)
        await asyncio.wait_for(all_taken.wait(), 10)
    finally:
        await connection.close()
    assert bodies == [str(n).encode() for n in range(20)]
    assert len(tasks) == 1  # all taken by the one reader task (aiormq would make 20)
