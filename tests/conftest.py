"""Shared fixtures: each test run gets its own database and its own broker name prefix."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aio_pika
import orjson
import pytest

from hub import db, topology
from hub.app import build_hub
from hub.outgoing import to_channel
from hub.runtime import Hub
from hub.settings import Settings
from hub.topology import Names
from routes import EXAMPLE_CONFIG
from routes.config import HubConfig
from routes.loader import load_config
from schemas.envelope import new_event

BROKER_URL = os.environ.get("HUB_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")
DATABASE_BASE = os.environ.get("HUB_TEST_DATABASE_BASE", "postgresql://postgres@127.0.0.1:5432")


@pytest.fixture(scope="session")
def run_id() -> str:
    """Unique per test run, so parallel runs on one broker and server never meet."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def example_config() -> HubConfig:
    return load_config(EXAMPLE_CONFIG)


class Bus:
    """A test's own connection to the broker: publish as an adapter, read a channel's queue."""

    def __init__(self, connection: aio_pika.abc.AbstractConnection, names: Names) -> None:
        self.connection = connection
        self.names = names
        self.channel: aio_pika.abc.AbstractChannel | None = None

    async def open(self) -> None:
        self.channel = await self.connection.channel(publisher_confirms=True)

    async def publish(
        self,
        routing_key: str,
        body: bytes | dict[str, Any],
        exchange: str | None = None,
        **props: Any,
    ) -> None:
        assert self.channel is not None
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        ex = await self.channel.get_exchange(exchange or self.names.inbound_exchange, ensure=False)
        await ex.publish(aio_pika.Message(data, delivery_mode=2, **props), routing_key=routing_key)

    async def put_out(self, channel: str, type_: str, data: dict[str, Any]) -> None:
        """A message the hub made for ``channel``, put on hub.out as the order process does."""
        envelope = to_channel(self.names, channel, new_event(source="hub", type=type_, data=data))
        assert self.channel is not None
        exchange = await self.channel.get_exchange(self.names.outbound_exchange, ensure=False)
        message = aio_pika.Message(envelope.body, message_id=envelope.message_id, type=type_)
        await exchange.publish(message, routing_key=envelope.routing_key)

    async def drain(
        self, queue: str, *, expect: int, timeout: float = 10.0, settle: float = 0.3
    ) -> list[aio_pika.abc.AbstractIncomingMessage]:
        """Take messages from a queue until ``expect`` arrived (then wait ``settle`` for extras)."""
        assert self.channel is not None
        q = await self.channel.get_queue(queue, ensure=False)
        got: list[aio_pika.abc.AbstractIncomingMessage] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            msg = await q.get(no_ack=True, fail=False)
            if msg is None:
                if len(got) >= expect:
                    await asyncio.sleep(settle)
                    extra = await q.get(no_ack=True, fail=False)
                    if extra is None:
                        return got
                    got.append(extra)
                    continue
                await asyncio.sleep(0.02)
                continue
            got.append(msg)
        return got

    async def bodies(
        self, queue: str, *, expect: int, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        return [
            orjson.loads(m.body) for m in await self.drain(queue, expect=expect, timeout=timeout)
        ]


@pytest.fixture
async def isolated(run_id: str) -> AsyncIterator[Settings]:
    """Settings with a database and a name prefix of this test's own, removed afterwards."""
    tag = f"{run_id}_{uuid.uuid4().hex[:6]}"
    settings = Settings(
        broker_url=BROKER_URL,
        database_url=f"{DATABASE_BASE}/hub_test_{tag}",
        name_prefix=f"t{tag}.",
        http_port=0,
        outbox_grace_s=0.5,
        outbox_poll_s=0.2,
    )
    yield settings
    await db.drop_database(settings.database_url)
    connection = await aio_pika.connect(BROKER_URL)
    try:
        channel = await connection.channel()
        config = load_config(settings.config_path)
        await topology.delete_all(channel, Names(settings.name_prefix), config.channels)
    finally:
        await connection.close()


@pytest.fixture
async def bus(isolated: Settings) -> AsyncIterator[Bus]:
    connection = await aio_pika.connect(BROKER_URL)
    b = Bus(connection, Names(isolated.name_prefix))
    await b.open()
    yield b
    await connection.close()


HubFactory = Callable[..., Awaitable[Hub]]


@pytest.fixture
async def start_hub(isolated: Settings) -> AsyncIterator[HubFactory]:
    """Start real hubs (real broker, real database); every one is stopped at the end."""
    started: list[Hub] = []

    async def factory(config: HubConfig | None = None, **overrides: Any) -> Hub:
        settings = isolated.model_copy(update=overrides) if overrides else isolated
        hub = build_hub(settings, config)
        await hub.start()
        started.append(hub)
        return hub

    yield factory
    for hub in reversed(started):
        await hub.stop()


FIXTURES = Path(__file__).parent / "fixtures"
