"""Entry points behind the CLI: assemble the hub with its domain handlers and run it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aio_pika
import asyncpg

from adapters import registry as adapter_registry
from hub import db, topology
from hub.delivery import DeliveryService
from hub.orders import order_handlers
from hub.orders.timeouts import OrderSweeper
from hub.runtime import Clock, HandlerFactory, Hub, ServiceFactory
from hub.settings import Settings
from hub.stock.handlers import stock_handlers
from hub.topology import Names
from routes.config import HubConfig
from routes.errors import ConfigError
from routes.loader import check_config, load_config

# Each domain contributes its stateful handlers here (type name -> handler), one line each.
HANDLER_FACTORIES: tuple[HandlerFactory, ...] = (
    stock_handlers,
    order_handlers,
)
# Background services (started after the consumer's dependencies, stopped before the pool).
SERVICE_FACTORIES: tuple[ServiceFactory, ...] = (OrderSweeper, DeliveryService)


def check_config_file(path: Path) -> list[ConfigError]:
    """Config errors, including adapter keys the hub cannot load."""
    errors = check_config(path)
    if errors:
        return errors
    config = load_config(path)
    known = adapter_registry.known_keys()
    return [
        ConfigError(
            f"channels.{name}.adapter",
            f"unknown adapter {ch.adapter!r}; known: {', '.join(sorted(known))}",
        )
        for name, ch in config.channels.items()
        if ch.adapter not in known
    ]


def build_hub(
    settings: Settings, config: HubConfig | None = None, *, clock: Clock | None = None
) -> Hub:
    """The hub with every domain handler and service registered: the one composition root."""
    return Hub(
        settings,
        config or load_config(settings.config_path),
        clock=clock,
        handler_factories=HANDLER_FACTORIES,
        service_factories=SERVICE_FACTORIES,
    )


async def run_forever(settings: Settings) -> None:
    """Start the hub, wait for SIGTERM/SIGINT, then drain and stop."""
    from hub.cli import install_signal_handlers

    hub = build_hub(settings)
    stop = asyncio.Event()
    install_signal_handlers(stop)
    await hub.start()
    try:
        await stop.wait()
    finally:
        await hub.stop()


async def declare_topology(settings: Settings) -> list[str]:
    """Declare exchanges and queues for the configured channels; one line per object."""
    config = load_config(settings.config_path)
    connection = await aio_pika.connect(settings.broker_url)
    try:
        channel = await connection.channel()
        return await topology.declare(
            channel, Names(settings.name_prefix), config.channels, settings.delivery_limit
        )
    finally:
        await connection.close()


async def migrate_database(settings: Settings) -> list[str]:
    """Create the database if needed and apply pending migrations."""
    await db.ensure_database(settings.database_url)
    conn = await asyncpg.connect(settings.database_url)
    try:
        return await db.migrate(conn)
    finally:
        await conn.close()
