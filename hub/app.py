"""Entry points behind the CLI: assemble the hub with its domain handlers and run it."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from pathlib import Path

import aio_pika
import aiormq
import asyncpg

from adapters import registry as adapter_registry
from hub import db, topology
from hub.delivery import DeliveryService
from hub.delivery.calls import API_CLIENTS, caller_for
from hub.errors import one_line
from hub.orders import order_handlers
from hub.orders.price_schedule import PriceScheduler
from hub.orders.timeouts import OrderSweeper
from hub.runtime import Clock, HandlerFactory, Hub, ServiceFactory
from hub.settings import Settings
from hub.stock.handlers import stock_handlers
from hub.stock.receipts_clock import ReceiptsClock
from hub.stock.rpc import AvailabilityRpc
from hub.topology import Names
from routes.config import HubConfig
from routes.errors import ConfigError
from routes.loader import check_config, load_config

log = logging.getLogger(__name__)

# Each domain contributes its stateful handlers here (type name -> handler), one line each.
HANDLER_FACTORIES: tuple[HandlerFactory, ...] = (
    stock_handlers,
    order_handlers,
)
# Background services (started after the consumer's dependencies, stopped before the pool).
SERVICE_FACTORIES: tuple[ServiceFactory, ...] = (
    OrderSweeper,
    PriceScheduler,
    ReceiptsClock,
    DeliveryService,
    AvailabilityRpc.for_hub,
)


def check_config_file(path: Path) -> list[ConfigError]:
    """Config errors, including adapters the hub cannot load and API clients it lacks."""
    errors = check_config(path)
    if errors:
        return errors
    config = load_config(path)
    known = adapter_registry.known_keys()
    errors = []
    for name, ch in config.channels.items():
        where = f"channels.{name}.adapter"
        if adapter_registry.is_path(ch.adapter):
            try:
                adapter_registry.load(ch.adapter)
            except LookupError as exc:
                errors.append(ConfigError(where, str(exc)))
        elif ch.adapter not in known:
            listed = ", ".join(sorted(known))
            errors.append(
                ConfigError(
                    where,
                    f"unknown adapter {ch.adapter!r}; known: {listed}, or a module:attribute"
                    " path to a translator of your own",
                )
            )
        if ch.delivery.api and ch.adapter not in API_CLIENTS:
            errors.append(
                ConfigError(
                    f"channels.{name}.delivery.api",
                    f"the hub has no API client for adapter {ch.adapter!r} (it has:"
                    f" {', '.join(sorted(API_CLIENTS))}); POST to a gateway's url instead",
                )
            )
        elif ch.delivery.api:
            try:
                caller_for(ch.adapter, str(ch.delivery.url), True, ch.settings)
            except LookupError as exc:
                errors.append(ConfigError(f"channels.{name}.settings", str(exc)))
    return errors


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

    stop = asyncio.Event()
    install_signal_handlers(stop)
    hub = await start_when_reachable(settings, stop)
    if hub is None:
        return
    freeze_startup_objects()
    try:
        await stop.wait()
    finally:
        await hub.stop()


# A young generation of 10,000 objects instead of 700: at thousands of messages a second the
# collector ran 29 times a second, each run finding the same in-flight batch alive and
# promoting it. 120 -> 19 ms of collection per 12 s at 2,600 msg/s (bench/findings.md).
YOUNG_GENERATION = 10_000


def freeze_startup_objects() -> None:
    """Move what start-up built (modules, schemas, config, connections) out of the garbage
    collector's reach: it lives as long as the process, and every full collection scanned it
    again, adding tens of milliseconds to the latency tail (bench/findings.md). Then collect
    young objects less often (``YOUNG_GENERATION``)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION, older, oldest)


STARTUP_FAILURES = (OSError, aiormq.exceptions.AMQPError, asyncpg.PostgresError)


async def start_when_reachable(settings: Settings, stop: asyncio.Event) -> Hub | None:
    """Start the hub, waiting (with back-off) while the broker or the database is down.

    A hub restarted while RabbitMQ or PostgreSQL restarts too must come up once they do,
    not exit; None when told to stop first.
    """
    delay = 0.5
    while not stop.is_set():
        hub = build_hub(settings)
        try:
            await hub.start()
            return hub
        except STARTUP_FAILURES as exc:
            log.warning("cannot start yet (%s); retrying in %.1fs", one_line(exc), delay)
            with contextlib.suppress(*STARTUP_FAILURES, RuntimeError):
                await hub.stop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        delay = min(delay * 2, 10.0)
    return None


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
