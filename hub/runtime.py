"""The composition root: builds the hub from settings and config and runs it until told to stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol

import asyncpg
from aio_pika.abc import AbstractRobustConnection
from starlette.routing import BaseRoute

from adapters import registry as adapter_registry
from adapters.base import Translator
from hub import amqp_frames, db, direct_delivery, topology
from hub.bus import Publisher
from hub.catalog import sku_clashes
from hub.committer import BatchCommitter
from hub.consumer import InboundConsumer
from hub.dlq.depth import ParkedDepth
from hub.faults import FaultHandler
from hub.handlers import Handler
from hub.http import HttpServer, build_app
from hub.inbox import InboxPruner
from hub.intake import Validator
from hub.metrics import Metrics
from hub.outbox import OutboxRelay
from hub.queue_watch import ChannelQueues
from hub.router import Router
from hub.settings import Settings
from hub.subscription import InboundSubscription
from hub.topology import Names
from hub.webhooks import WebhookIngress
from routes.config import HubConfig
from routes.matching import RouteTable

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
HandlerFactory = Callable[["Hub"], Mapping[str, Handler]]


class Service(Protocol):
    """A background task a domain runs beside the consumer (order timeouts, ...)."""

    def start(self) -> None:
        """Start in the background; called once the database and broker are up."""
        ...

    async def stop(self) -> None:
        """Stop; called before the pool closes."""
        ...


ServiceFactory = Callable[["Hub"], Service]


def load_translators(config: HubConfig) -> dict[str, Translator | None]:
    """Each channel's translator, found by the adapter key its config names."""
    return {name: adapter_registry.load(ch.adapter) for name, ch in config.channels.items()}


class Hub:
    """One hub process: broker, database, consumer, committer, outbox relay and HTTP side."""

    def __init__(
        self,
        settings: Settings,
        config: HubConfig,
        *,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
        handler_factories: tuple[HandlerFactory, ...] = (),
        service_factories: tuple[ServiceFactory, ...] = (),
    ) -> None:
        self.settings = settings
        self.config = config
        self.metrics = metrics or Metrics()
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        self.names = Names(settings.name_prefix)
        self.table = RouteTable.from_config(config)
        self.publisher = Publisher(
            settings.broker_url,
            settings.publish_timeout_s,
            name=f"commerce-hub publisher {settings.name_prefix}".strip(),
        )
        self.webhooks = WebhookIngress(config, self.names, self.publisher)
        self._handler_factories = handler_factories
        self._service_factories = service_factories
        self._services: list[Service] = []
        self._pool: asyncpg.Pool | None = None
        self._subscription: InboundSubscription | None = None
        self._committer: BatchCommitter | None = None
        self._relay: OutboxRelay | None = None
        self._pruner: InboxPruner | None = None
        self._depth: ParkedDepth | None = None
        self._queues: ChannelQueues | None = None
        self._http: HttpServer | None = None
        self.handlers: dict[str, Handler] = {}

    @property
    def pool(self) -> asyncpg.Pool:
        """The database pool, once started."""
        if self._pool is None:
            raise RuntimeError("hub not started")
        return self._pool

    async def start(self) -> None:
        """Migrate, connect, declare the topology, then start consuming."""
        amqp_frames.install()  # before the first connection: every one reads frames with it
        direct_delivery.install()
        s = self.settings
        self._pool = await db.prepare(s.database_url, s.db_pool_max)
        await self.publisher.start()
        await topology.declare(
            self.publisher.channel, self.names, self.config.channels, s.delivery_limit
        )
        for factory in self._handler_factories:
            self.handlers.update(factory(self))
        self._committer = BatchCommitter(
            self._pool,
            self.publisher,
            self.metrics,
            consumer=self.names.inbound_queue,
            batch_max=s.batch_max,
            max_concurrent_batches=s.max_concurrent_batches,
            clock=self.clock,
        )
        self._committer.start()
        self._relay = OutboxRelay(
            self._pool,
            self.publisher,
            s.outbox_grace_s,
            s.outbox_poll_s,
            s.outbox_park_after_s,
            self.metrics,
        )
        self._relay.start()
        if s.inbox_retention_days > 0:
            self._pruner = InboxPruner(
                self._pool,
                s.inbox_retention_days * 86_400,
                s.inbox_prune_interval_s,
                self.metrics.inbox_pruned,
            )
            self._pruner.start()
        self._depth = ParkedDepth(
            self._pool,
            self.publisher,
            self.names.dead_queue,
            self.metrics.parked_waiting,
            s.parked_depth_interval_s,
        )
        self._depth.start()
        self._queues = ChannelQueues(
            self.publisher,
            {name: self.names.channel_queue(name) for name in self.config.channels},
            self.metrics.channel_queue_messages,
            self.metrics.channel_queue_consumers,
            s.parked_depth_interval_s,
        )
        self._queues.start()
        async with self._pool.acquire() as conn:
            for channel, sku in await sku_clashes(conn, self.table):
                log.warning(
                    "%s: the ERP's SKU %r is this channel's name for another product in its"
                    " sku_map: its products, prices and stock are kept from the channel",
                    channel,
                    sku,
                )
        if s.outbox_grace_s <= s.publish_timeout_s:
            log.warning(
                "HUB_OUTBOX_GRACE_S (%ss) is not above HUB_PUBLISH_TIMEOUT_S (%ss): the relay may"
                " re-send rows whose publish is still in flight",
                s.outbox_grace_s,
                s.publish_timeout_s,
            )
        for make_service in self._service_factories:
            service = make_service(self)
            service.start()
            self._services.append(service)
        consumer = InboundConsumer(
            Validator(self.config, load_translators(self.config)),
            Router(self.table, self.names, self.config),
            self.handlers,
            self._committer,
            FaultHandler(self.publisher, self.names, self.metrics, s.retry_max_attempts),
            self.metrics,
            self.names.inbound_queue,
        )
        # The connection name (shown by rabbitmqctl) lets operators and tests find this hub's links.
        self._subscription = InboundSubscription(
            s.broker_url,
            self.names.inbound_queue,
            topology.work_queue_arguments(self.names, s.delivery_limit),
            s.prefetch,
            consumer,
            name=f"commerce-hub consumer {s.name_prefix}".strip(),
            reconnect_interval_s=s.reconnect_interval_s,
            on_reconnect=self._redeclare,
        )
        await self._subscription.start()
        if s.http_port:
            self._http = HttpServer(
                build_app(self.metrics, self.readiness, self._routes()),
                s.http_host,
                s.http_port,
            )
            await self._http.start()
        self.metrics.ready.set(1)
        log.info("hub started: consuming %s", self.names.inbound_queue)

    def _routes(self) -> list[BaseRoute]:
        """The HTTP routes beside the hub's own: webhooks, and any a service serves."""
        routes = self.webhooks.routes()
        for service in self._services:
            serves = getattr(service, "routes", None)
            if serves is not None:
                routes.extend(serves())
        return routes

    async def _redeclare(self, connection: AbstractRobustConnection) -> None:
        """After a broker restart the topology may be gone (a fresh node): declare it again."""
        try:
            channel = await connection.channel()
            try:
                await topology.declare(
                    channel, self.names, self.config.channels, self.settings.delivery_limit
                )
            finally:
                await channel.close()
            log.info("reconnected to the broker; topology declared again")
        except Exception as exc:  # the next reconnect tries again; consuming resumes regardless
            log.warning("could not re-declare the topology after reconnect: %s", exc)

    async def readiness(self) -> dict[str, bool]:
        """Broker and database reachable: what /readyz reports."""
        broker_ok = self.publisher.connected and (
            self._subscription is not None and self._subscription.connected
        )
        try:
            db_ok = self._pool is not None and await asyncio.wait_for(
                self._pool.fetchval("SELECT true"), timeout=2
            )
        except Exception:  # a probe reports, never raises (asyncpg has errors outside its tree)
            db_ok = False
        self.metrics.ready.set(1 if broker_ok and db_ok else 0)
        return {"broker": bool(broker_ok), "database": bool(db_ok)}

    async def stop(self) -> None:
        """Stop taking messages, finish those in flight, flush the outbox, close everything."""
        self.metrics.ready.set(0)
        if self._subscription is not None:
            await self._subscription.stop()
        if self._committer is not None:
            await self._committer.stop()
        for service in reversed(self._services):
            await service.stop()
        self._services.clear()
        if self._relay is not None:
            await self._relay.stop()
            try:
                await self._relay.relay_once(grace_s=0)
            except Exception as exc:  # shutdown must go on; the rows stay for the next start
                log.warning("outbox flush on shutdown failed: %s", exc)
        for background in (self._pruner, self._depth, self._queues):
            if background is not None:
                await background.stop()
        if self._http is not None:
            await self._http.stop()
        await self.publisher.stop()
        if self._pool is not None:
            await self._pool.close()
        log.info("hub stopped")
