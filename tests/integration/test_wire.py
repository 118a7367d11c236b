"""Batch publishing (hub/wire.py) on the real broker: each message gets its own verdict."""

from __future__ import annotations

import asyncio
import time

import aiormq
import orjson
import pytest

from hub import topology
from hub.bus import Envelope, Publisher
from hub.topology import Names

pytestmark = pytest.mark.integration

SHOP = "webshop-nl"


def _envelope(names: Names, message_id: str, channel: str, body: bytes) -> Envelope:
    return Envelope(
        message_id,
        names.outbound_exchange,
        f"{channel}.product.upserted",
        "product.upserted",
        "erp",
        body,
    )


async def test_a_batch_arrives_whole_in_order_and_each_message_has_its_verdict(
    isolated, bus
) -> None:
    names = Names(isolated.name_prefix)
    publisher = Publisher(isolated.broker_url, 5.0)
    await publisher.start()
    try:
        await topology.declare(publisher.channel, names, [SHOP], 10)
        big = orjson.dumps({"blob": "x" * 400_000})  # larger than a frame: several body frames
        batch = [_envelope(names, f"m-{i}", SHOP, orjson.dumps({"i": i})) for i in range(200)]
        batch.insert(50, _envelope(names, "nowhere", "nobody", b"{}"))
        batch.insert(120, _envelope(names, "big", SHOP, big))

        verdicts = await publisher.publish_each(batch)

        failed = {e.message_id: v for e, v in zip(batch, verdicts, strict=True) if v is not None}
        assert list(failed) == ["nowhere"]
        assert "unroutable" in str(failed["nowhere"])
        got = await bus.drain(names.channel_queue(SHOP), expect=201, timeout=15)
        assert [m.message_id for m in got] == [
            e.message_id for e in batch if e.routing_key.startswith(SHOP)
        ]
        assert next(m.body for m in got if m.message_id == "big") == big
        assert all(m.delivery_mode == 2 for m in got)  # persistent
        channel = await publisher.channel.get_underlay_channel()
        assert isinstance(channel, aiormq.Channel)
        assert channel.message_id_delivery_tag == {}  # nothing kept once settled
        assert not channel.confirmations

        # The channel stays usable after a return inside a batch.
        await publisher.publish(_envelope(names, "after", SHOP, b"{}"))
        assert [m.message_id for m in await bus.drain(names.channel_queue(SHOP), expect=1)] == [
            "after"
        ]
    finally:
        await publisher.stop()


async def test_publishing_while_disconnected_reports_every_message(isolated) -> None:
    names = Names(isolated.name_prefix)
    publisher = Publisher(isolated.broker_url, 2.0)
    batch = [_envelope(names, f"m-{i}", SHOP, b"{}") for i in range(3)]
    verdicts = await publisher.publish_each(batch)
    assert len(verdicts) == 3
    assert all(v is not None and "not connected" in str(v) for v in verdicts)


async def test_a_batch_fails_fast_and_whole_when_the_broker_closes_the_channel(isolated) -> None:
    """Publishing to a missing exchange makes the broker close the channel: every message of
    the batch fails at once (not after the publish timeout), and publishing then recovers."""
    names = Names(isolated.name_prefix)
    publisher = Publisher(isolated.broker_url, 10.0)
    await publisher.start()
    try:
        await topology.declare(publisher.channel, names, [SHOP], 10)
        doomed = [
            Envelope(f"d-{i}", f"{names.prefix}no-such-exchange", "a.b", "t", "hub", b"{}")
            for i in range(5)
        ]
        started = time.monotonic()
        verdicts = await publisher.publish_each(doomed)
        assert time.monotonic() - started < 5
        assert all(v is not None for v in verdicts)

        deadline = time.monotonic() + 10
        while True:  # the robust channel reopens
            if await publisher.publish_each([_envelope(names, "again", SHOP, b"{}")]) == [None]:
                break
            assert time.monotonic() < deadline, "publishing never recovered"
            await asyncio.sleep(0.2)
    finally:
        await publisher.stop()


async def test_a_message_amqp_cannot_carry_fails_alone(isolated, bus) -> None:
    names = Names(isolated.name_prefix)
    publisher = Publisher(isolated.broker_url, 5.0)
    await publisher.start()
    try:
        await topology.declare(publisher.channel, names, [SHOP], 10)
        batch = [_envelope(names, f"m-{i}", SHOP, b"{}") for i in range(3)]
        batch.insert(1, _envelope(names, "x" * 300, SHOP, b"{}"))  # message-id over 255 bytes
        verdicts = await publisher.publish_each(batch)
        bad = verdicts[1]
        assert bad is not None and bad.refused and "255 bytes" in str(bad)
        assert [v for i, v in enumerate(verdicts) if i != 1] == [None, None, None]
        got = await bus.drain(names.channel_queue(SHOP), expect=3)
        assert [m.message_id for m in got] == ["m-0", "m-1", "m-2"]
    finally:
        await publisher.stop()
