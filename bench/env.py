"""An isolated place to run in: own name prefix, own database, generated config, cleanup."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import yaml

from hub import db, topology
from hub.topology import Names
from routes import EXAMPLE_CONFIG
from routes.loader import load_config

BROKER_URL = os.environ.get("HUB_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")
DATABASE_BASE = os.environ.get("HUB_BENCH_DATABASE_BASE", "postgresql://postgres@127.0.0.1:5432")
DELIVERY_LIMIT = 10


def sales_channels(n: int) -> list[str]:
    return [f"shop-{k}" for k in range(1, n + 1)]


def config_dict(n_sales: int) -> dict[str, Any]:
    """The example config's markets and routes with an ERP, n webshops, a warehouse, a carrier."""
    example = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    channels: dict[str, Any] = {
        "erp": {"kind": "erp", "adapter": "canonical"},
        "warehouse": {"kind": "warehouse", "adapter": "canonical"},
        "carrier": {"kind": "carrier", "adapter": "canonical"},
    }
    for name in sales_channels(n_sales):
        channels[name] = {"kind": "webshop", "adapter": "canonical", "market": "nl"}
    return {
        "version": 1,
        "markets": example["markets"],
        "defaults": example.get("defaults", {}),
        "channels": channels,
        "routes": example["routes"],
    }


@dataclass
class Env:
    """One scenario's names, database and config file; ``cleanup`` removes all of them."""

    n_sales: int
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def __post_init__(self) -> None:
        self.prefix = f"bench{self.tag}."
        self.names = Names(self.prefix)
        self.database_url = f"{DATABASE_BASE}/hub_bench_{self.tag}"
        self._dir = tempfile.mkdtemp(prefix="hub-bench-")
        self.config_path = Path(self._dir) / "hub.yaml"
        self.config_path.write_text(yaml.safe_dump(config_dict(self.n_sales)), encoding="utf-8")
        self.config = load_config(self.config_path)
        self.sales = sales_channels(self.n_sales)

    def hub_env(self, **overrides: Any) -> dict[str, str]:
        env = {
            **os.environ,
            "HUB_BROKER_URL": BROKER_URL,
            "HUB_DATABASE_URL": self.database_url,
            "HUB_CONFIG_PATH": str(self.config_path),
            "HUB_NAME_PREFIX": self.prefix,
            "HUB_HTTP_PORT": "0",
            "HUB_LOG_LEVEL": "WARNING",
            "HUB_DELIVERY_LIMIT": str(DELIVERY_LIMIT),
        }
        env.update({f"HUB_{k.upper()}": str(v) for k, v in overrides.items()})
        return env

    def queue(self, channel: str) -> str:
        return self.names.channel_queue(channel)

    async def declare(self, connection: aio_pika.abc.AbstractConnection) -> None:
        channel = await connection.channel()
        try:
            await topology.declare(channel, self.names, self.config.channels, DELIVERY_LIMIT)
        finally:
            await channel.close()

    async def cleanup(self, connection: aio_pika.abc.AbstractConnection | None = None) -> None:
        """On a fresh connection: the run's one may have died with a broker restart."""
        try:
            fresh = await aio_pika.connect(BROKER_URL)
            try:
                channel = await fresh.channel()
                await topology.delete_all(channel, self.names, self.config.channels)
            finally:
                await fresh.close()
        finally:
            await db.drop_database(self.database_url)
            shutil.rmtree(self._dir, ignore_errors=True)


async def queue_count(connection: aio_pika.abc.AbstractConnection, name: str) -> tuple[int, int]:
    """(ready messages, consumers) of a queue, by passive declare."""
    channel = await connection.channel()
    try:
        q = await channel.declare_queue(name, passive=True)
        res = q.declaration_result
        return int(res.message_count or 0), int(res.consumer_count or 0)
    finally:
        await channel.close()


class Counter:
    """Polls the ready-message counts of some queues on one channel."""

    def __init__(self, connection: aio_pika.abc.AbstractConnection, queues: list[str]) -> None:
        self._connection = connection
        self._queues = queues
        self._channel: aio_pika.abc.AbstractChannel | None = None

    async def total(self) -> int:
        if self._channel is None or self._channel.is_closed:
            self._channel = await self._connection.channel()
        n = 0
        for name in self._queues:
            q = await self._channel.declare_queue(name, passive=True)
            n += int(q.declaration_result.message_count or 0)
        return n

    async def close(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()


async def wait_for(
    counter: Counter, expected: int, timeout: float, dt: float = 0.05
) -> list[tuple[float, int]]:
    """Sample (time, count) until the count reaches ``expected`` or ``timeout`` passes."""
    samples: list[tuple[float, int]] = []
    deadline = time.perf_counter() + timeout
    while True:
        n = await counter.total()
        now = time.perf_counter()
        samples.append((now, n))
        if n >= expected or now > deadline:
            return samples
        await asyncio.sleep(dt)


async def preload(
    connection: aio_pika.abc.AbstractConnection,
    exchange_name: str,
    items: list[tuple[str, bytes]],
    chunk: int = 500,
) -> float:
    """Publish (routing key, body) pairs persistent with confirms, pipelined; returns msgs/s."""
    channel = await connection.channel(publisher_confirms=True)
    try:
        if exchange_name:
            exchange = await channel.get_exchange(exchange_name, ensure=False)
        else:
            exchange = channel.default_exchange
        started = time.perf_counter()
        for start in range(0, len(items), chunk):
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            body,
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            content_type="application/cloudevents+json",
                        ),
                        routing_key=key,
                    )
                    for key, body in items[start : start + chunk]
                )
            )
        return len(items) / (time.perf_counter() - started)
    finally:
        await channel.close()


async def purge(connection: aio_pika.abc.AbstractConnection, queues: list[str]) -> None:
    channel = await connection.channel()
    try:
        for name in queues:
            await (await channel.get_queue(name, ensure=False)).purge()
    finally:
        await channel.close()


async def drop_leftover_databases() -> list[str]:
    """Databases of earlier runs that died before cleaning up (a broker restart, Ctrl-C)."""
    admin = await asyncpg.connect(f"{DATABASE_BASE}/postgres")
    try:
        names = [
            r["datname"]
            for r in await admin.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE 'hub\\_bench\\_%'"
            )
        ]
        dropped = []
        for name in names:
            try:  # no FORCE: a database in use belongs to a run going on right now
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
                dropped.append(name)
            except asyncpg.ObjectInUseError:
                pass
        return dropped
    finally:
        await admin.close()
