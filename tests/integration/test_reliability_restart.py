"""Staying up: the hub's broker links cut under it, SIGTERM with work in flight, a hung publish."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import orjson
import pytest

from hub.bus import Envelope, Publisher
from hub.errors import PublishNotConfirmed

pytestmark = pytest.mark.integration
sys.path.insert(0, str(Path(__file__).parents[1] / "chaos"))
from chaos_harness import HubProcess, hub_env  # noqa: E402

CHAOS_CONFIG = Path(__file__).parents[1] / "chaos" / "chaos.yaml"


def product_event(i: int, run: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"{run}-{i}",
        "source": "erp",
        "type": "product.upserted",
        "time": datetime.now(UTC).isoformat(),
        "data": {"sku": f"SKU-{i}", "name": "Desk", "version": 1},
    }


def close_connections(prefix: str) -> int:
    """Cut this hub's AMQP connections from the broker side (a broker restart, for one hub)."""
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    pids = [
        line.split("\t")[0]
        for line in out.splitlines()
        if "commerce-hub" in line and prefix in line
    ]
    for pid in pids:
        subprocess.run(
            ["rabbitmqctl", "close_connection", pid, "chaos"], check=True, capture_output=True
        )
    return len(pids)


async def test_hub_reconnects_after_its_broker_connections_drop(start_hub, bus) -> None:
    hub = await start_hub()
    channel = next(iter(hub.table.destinations("erp", "product.upserted")))
    run = uuid.uuid4().hex[:6]
    await bus.publish("erp.product.upserted", product_event(0, run))
    assert len(await bus.drain(bus.names.channel_queue(channel), expect=1)) == 1

    # Readiness is watched while the links are cut: rabbitmqctl takes a second or more per
    # call on a slow machine, and a link it cut first may be back (1 s reconnect) before the
    # last one is cut.
    seen: list[bool] = []
    back = asyncio.Event()  # reported down, then up again

    async def watch_readiness() -> None:
        while True:
            seen.append((await hub.readiness())["broker"])
            if False in seen and seen[-1]:
                back.set()
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch_readiness())
    try:
        # publisher, hub.in consumer, availability RPC
        assert await asyncio.to_thread(close_connections, bus.names.prefix) == 3
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(back.wait(), timeout=20)
    finally:
        watcher.cancel()
    assert False in seen, "/readyz never reported the broker down"
    assert (await hub.readiness())["broker"] is True

    for i in range(1, 21):
        await bus.publish("erp.product.upserted", product_event(i, run))
    got = await bus.drain(bus.names.channel_queue(channel), expect=20, timeout=20)
    assert len({m.message_id for m in got}) == 20

    # The availability RPC (FastStream, a connection of its own) answers again too.
    assert bus.channel is not None
    callback = await bus.channel.declare_queue(exclusive=True, auto_delete=True)
    query = {
        "specversion": "1.0",
        "id": f"{run}-q",
        "source": channel,
        "type": "availability.query",
        "time": datetime.now(UTC).isoformat(),
        "data": {"channel": channel, "skus": ["SKU-1"]},
    }
    await bus.channel.default_exchange.publish(
        aio_pika.Message(orjson.dumps(query), reply_to=callback.name, correlation_id="after"),
        routing_key=bus.names.rpc_queue,
    )
    answer = None
    for _ in range(250):
        answer = await callback.get(no_ack=True, fail=False)
        if answer is not None:
            break
        await asyncio.sleep(0.04)
    assert answer is not None and answer.correlation_id == "after"


async def test_hub_consumes_again_after_its_queue_is_deleted_under_it(start_hub, bus) -> None:
    """An operator deletes hub.in: the broker cancels the consumer; the hub declares the queue
    and its bindings again and goes on consuming (before, messages sent now went nowhere)."""
    hub = await start_hub()
    channel = next(iter(hub.table.destinations("erp", "product.upserted")))
    run = uuid.uuid4().hex[:6]
    await bus.publish("erp.product.upserted", product_event(0, run))
    assert len(await bus.drain(bus.names.channel_queue(channel), expect=1)) == 1
    assert bus.channel is not None
    await bus.channel.queue_delete(bus.names.inbound_queue)
    for _ in range(100):  # the hub declares it again
        await asyncio.sleep(0.05)
        with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
            probe = await bus.connection.channel()
            try:
                queue = await probe.declare_queue(bus.names.inbound_queue, passive=True)
                if queue.declaration_result.consumer_count == 1:
                    break
            finally:
                if not probe.is_closed:
                    await probe.close()
    else:
        pytest.fail("hub.in was not declared and consumed again")
    for i in range(1, 6):
        await bus.publish("erp.product.upserted", product_event(i, run))
    got = await bus.drain(bus.names.channel_queue(channel), expect=5, timeout=20)
    assert len({m.message_id for m in got}) == 5
    assert (await hub.readiness())["broker"] is True


async def test_sigterm_finishes_in_flight_work_and_exits_cleanly(isolated, tmp_path) -> None:
    proc = HubProcess(
        hub_env(isolated.database_url, isolated.broker_url, isolated.name_prefix, CHAOS_CONFIG),
        tmp_path / "hub.log",
    )
    proc.start()
    try:
        await proc.wait_ready()
        run = uuid.uuid4().hex[:6]
        conn = await aio_pika.connect(isolated.broker_url)
        ch = await conn.channel(publisher_confirms=True)
        ex = await ch.get_exchange(f"{isolated.name_prefix}hub.in", ensure=False)
        for i in range(500):
            body = aio_pika.Message(orjson.dumps(product_event(i, run)))
            await ex.publish(body, routing_key="erp.product.upserted")
        code = await asyncio.to_thread(proc.terminate, 60)
        assert code == 0, (tmp_path / "hub.log").read_text()[-2000:]
        db = await asyncpg.connect(isolated.database_url)
        try:
            inbox = {r["message_id"] for r in await db.fetch("SELECT message_id FROM inbox")}
            handled = len(inbox)
            assert await db.fetchval("SELECT count(*) FROM outbox") == 0  # flushed on the way out
        finally:
            await db.close()
        q = await ch.declare_queue(f"{isolated.name_prefix}hub.in", passive=True)
        left = q.declaration_result.message_count or 0
        assert handled + left == 500  # every message handled or still queued, none half-done
        out = await ch.declare_queue(f"{isolated.name_prefix}hub.out.shop-a", passive=True)
        delivered: set[str] = set()
        while (msg := await out.get(no_ack=True, fail=False)) is not None:
            delivered.add(orjson.loads(msg.body)["causationid"])
        assert delivered == inbox  # each handled message reached the channel (ids dedupe copies)
        await conn.close()
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.kill()
        conn = await aio_pika.connect(isolated.broker_url)
        ch = await conn.channel()
        for name in ("shop-a", "shop-b", "market-c"):
            await ch.queue_delete(f"{isolated.name_prefix}hub.out.{name}")
        await conn.close()


class PausingProxy:
    """A TCP proxy to the broker that can stop forwarding: a broker that hangs mid-publish."""

    def __init__(self) -> None:
        self.resumed = asyncio.Event()
        self.resumed.set()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self.resumed.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 5672)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))


async def test_a_publish_that_hangs_times_out(start_hub, bus) -> None:
    await start_hub()  # declares the topology
    proxy = PausingProxy()
    port = await proxy.start()
    publisher = Publisher(f"amqp://guest:guest@127.0.0.1:{port}/", timeout_s=0.5)
    await publisher.start()
    try:
        env = Envelope("m-1", bus.names.dead_exchange, "x.y", "t", "s", b"{}")
        await publisher.publish(env)  # confirmed while the broker answers
        proxy.resumed.clear()
        started = time.monotonic()
        with pytest.raises(PublishNotConfirmed, match=r"no confirm within 0\.5s"):
            await publisher.publish(env)
        assert time.monotonic() - started < 2
    finally:
        proxy.resumed.set()
        await publisher.stop()
        assert proxy.server is not None
        proxy.server.close()


async def test_hub_started_while_the_broker_is_down_comes_up_when_it_returns(
    isolated, tmp_path
) -> None:
    """`hub run` waits for its broker (with back-off) instead of exiting: a hub restarted
    during a broker restart must not need a supervisor to try again."""
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    server.close()
    await server.wait_closed()  # nothing listens on `port` now: the broker is "down"
    broker_url = f"amqp://guest:guest@127.0.0.1:{port}/"
    proc = HubProcess(
        hub_env(isolated.database_url, broker_url, isolated.name_prefix, CHAOS_CONFIG),
        tmp_path / "hub.log",
    )
    proc.start()
    forwarder: asyncio.Server | None = None
    try:
        await asyncio.sleep(3)
        assert proc.proc is not None and proc.proc.poll() is None, "hub gave up on its broker"

        async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 5672)

            async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                try:
                    while data := await src.read(65536):
                        dst.write(data)
                        await dst.drain()
                except ConnectionError:
                    pass
                finally:
                    dst.close()

            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        forwarder = await asyncio.start_server(forward, "127.0.0.1", port)  # the broker is back
        recovered = await proc.wait_ready(timeout=60)
        assert recovered < 60
        assert "cannot start yet" in (tmp_path / "hub.log").read_text()
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            await asyncio.to_thread(proc.terminate, 30)
        if forwarder is not None:
            forwarder.close()
        conn = await aio_pika.connect(isolated.broker_url)
        ch = await conn.channel()
        for name in ("shop-a", "shop-b", "market-c"):
            await ch.queue_delete(f"{isolated.name_prefix}hub.out.{name}")
        await conn.close()
