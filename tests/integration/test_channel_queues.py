"""The per-channel queue gauges: what waits for a channel and whether anything takes it."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

pytestmark = pytest.mark.integration


async def test_a_channel_nobody_consumes_shows_its_backlog_and_no_consumer(
    start_hub, bus, example_config
) -> None:
    hub = await start_hub(example_config)
    for sku in ("DESK-1", "LAMP-1", "CHAIR-1"):
        level = {"sku": sku, "location": "main", "on_hand": 10, "version": 1}
        await bus.publish("erp.stock.level", _event(level))
    queue = bus.names.channel_queue("webshop-nl")
    await _until(lambda: _gauge(hub, "messages", "webshop-nl") == 3, hub)  # one figure each
    assert _gauge(hub, "consumers", "webshop-nl") == 0
    assert _gauge(hub, "messages", "carrier") == 0  # every channel is read, quiet ones too

    taken = await bus.channel.get_queue(queue, ensure=False)
    first = await taken.get(no_ack=True)
    assert orjson.loads(first.body)["dataschemaversion"] == "1.0"  # the hub stamps its own

    async def ack(message: Any) -> None:
        await message.ack()

    tag = await taken.consume(ack)
    try:
        await _until(lambda: _gauge(hub, "consumers", "webshop-nl") == 1, hub)
        await _until(lambda: _gauge(hub, "messages", "webshop-nl") == 0, hub)
    finally:
        await taken.cancel(tag)


def _gauge(hub: Any, what: str, channel: str) -> float | None:
    name = f"hub_channel_queue_{what}"
    return hub.metrics.registry.get_sample_value(name, {"channel": channel})


async def _until(condition: Any, hub: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out waiting for the gauges"
        await hub._queues.measure()  # not waiting for the interval
        await asyncio.sleep(0.05)


def _event(data: dict[str, Any]) -> dict[str, Any]:
    import uuid
    from datetime import UTC, datetime

    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "erp",
        "type": "stock.level",
        "time": datetime.now(UTC).isoformat(),
        "data": data,
    }
