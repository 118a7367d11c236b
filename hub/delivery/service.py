"""The runtime service that runs an HTTP delivery worker for every channel configured for one."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import aio_pika
import aiormq
import httpx
from aio_pika.abc import AbstractRobustConnection

from adapters import registry as adapter_registry
from adapters.base import OutboundTranslator
from hub.background import cancel_and_wait
from hub.delivery.bucket import TokenBucket
from hub.delivery.policy import DeliveryPolicy
from hub.delivery.wire import signing_secret
from hub.delivery.worker import ChannelWorker
from hub.faults import FaultHandler
from hub.topology import work_queue_arguments
from routes.config import ChannelConfig, HubConfig

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger(__name__)

USER_AGENT = "commerce-hub delivery"


def http_channels(config: HubConfig) -> dict[str, ChannelConfig]:
    """The channels whose messages the hub itself POSTs, rather than an adapter consuming them."""
    return {n: ch for n, ch in config.channels.items() if ch.delivery.transport == "http"}


def outbound_translator(channel: ChannelConfig) -> OutboundTranslator | None:
    """The adapter that writes the channel's native payloads; None sends canonical CloudEvents."""
    translator = adapter_registry.load(channel.adapter)
    return translator if isinstance(translator, OutboundTranslator) else None


class DeliveryService:
    """Every HTTP channel's worker, on a broker connection of its own; does nothing without one."""

    def __init__(self, hub: Hub, policy: DeliveryPolicy | None = None) -> None:
        self._hub = hub
        self._policy = policy or DeliveryPolicy()
        self.channels = http_channels(hub.config)
        self.workers: dict[str, ChannelWorker] = {}
        self.started = asyncio.Event()
        self._connection: AbstractRobustConnection | None = None
        self._clients: list[httpx.AsyncClient] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Connect and consume in the background; without an HTTP channel, do nothing."""
        if self.channels:
            self._task = asyncio.create_task(self._run(), name="http-delivery")

    async def _connect(self) -> AbstractRobustConnection:
        s = self._hub.settings
        name = f"commerce-hub delivery {s.name_prefix}".strip()
        while True:
            try:
                return await aio_pika.connect_robust(
                    s.broker_url, client_properties={"connection_name": name}
                )
            except (aiormq.exceptions.AMQPError, ConnectionError, OSError) as exc:
                log.warning("HTTP delivery cannot reach the broker yet: %s", exc)
                await asyncio.sleep(s.reconnect_interval_s)

    async def _run(self) -> None:
        hub = self._hub
        faults = FaultHandler(hub.publisher, hub.names, hub.metrics)
        arguments = work_queue_arguments(hub.names, hub.settings.delivery_limit)
        try:
            self._connection = await self._connect()
            for name, channel in self.channels.items():
                worker = self.workers[name] = self._worker(name, channel, faults)
                await worker.start(await self._connection.channel(), arguments)
        except Exception:  # the hub keeps running; the metrics show nothing is delivered
            log.exception("HTTP delivery could not start")
            return
        self.started.set()
        log.info("HTTP delivery started for %s", ", ".join(self.workers))

    def _worker(self, name: str, channel: ChannelConfig, faults: FaultHandler) -> ChannelWorker:
        delivery = channel.delivery
        policy = self._policy
        client = httpx.AsyncClient(
            timeout=policy.timeout_s,
            limits=httpx.Limits(max_connections=policy.max_in_flight),
            headers={"User-Agent": USER_AGENT},
        )
        self._clients.append(client)
        return ChannelWorker(
            name,
            url=str(delivery.url),
            queue=self._hub.names.channel_queue(name),
            bucket=TokenBucket(delivery.rate_per_second, delivery.burst),
            coalesce=delivery.coalesce_stock,
            translator=outbound_translator(channel),
            secret=signing_secret(channel.settings),
            client=client,
            faults=faults,
            metrics=self._hub.metrics,
            policy=policy,
        )

    async def stop(self) -> None:
        """Stop every worker (requests in flight finish), then close the clients and connection."""
        await cancel_and_wait(self._task)
        self._task = None
        for worker in self.workers.values():
            await worker.stop()
        self.workers.clear()
        for client in self._clients:
            await client.aclose()
        self._clients.clear()
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
        self.started.clear()
