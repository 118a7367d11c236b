"""The hub.in subscription: aio-pika's robust consumer, without a framework pipeline per message.

hub.in carries every message the hub handles, so its per-message cost bounds the hub. FastStream's
pipeline (context scopes, middleware stack, logging middleware, message wrapper) around each
delivery cost 30-40% of the routing throughput (bench/findings.md); the hub already settles,
parks and retries each message itself (``hub.consumer``), so it takes deliveries from aio-pika,
which FastStream runs on, directly. Reconnecting and re-consuming after broker loss is aio-pika's
robust connection; re-declaring the topology on a fresh node is the ``on_reconnect`` callback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from yarl import URL

log = logging.getLogger(__name__)

Deliver = Callable[[AbstractIncomingMessage], Awaitable[None]]
Reconnected = Callable[[AbstractRobustConnection], Awaitable[None]]


class InboundSubscription:
    """Consumes one queue with manual acks; ``stop`` lets deliveries in flight finish first."""

    def __init__(
        self,
        url: str,
        queue: str,
        queue_arguments: dict[str, Any],
        prefetch: int,
        deliver: Deliver,
        *,
        name: str,
        reconnect_interval_s: float,
        on_reconnect: Reconnected | None = None,
        graceful_timeout_s: float = 30.0,
    ) -> None:
        self._url = str(URL(url).update_query(reconnect_interval=str(reconnect_interval_s)))
        self._queue_name = queue
        self._queue_arguments = queue_arguments
        self._prefetch = prefetch
        self._deliver = deliver
        self._name = name
        self._on_reconnect = on_reconnect
        self._graceful_timeout_s = graceful_timeout_s
        self._connection: AbstractRobustConnection | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        """Connect, set the prefetch and start consuming."""
        self._connection = await aio_pika.connect_robust(
            self._url, client_properties={"connection_name": self._name}
        )
        self._connection.reconnect_callbacks.add(self._reconnected)
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self._prefetch)
        # Declared (not just looked up) with its arguments: after a reconnect aio-pika declares
        # it again and resumes consuming, which must also work on a fresh node.
        self._queue = await channel.declare_queue(
            self._queue_name, durable=True, arguments=self._queue_arguments
        )
        self._tag = await self._queue.consume(self._on_message)

    @property
    def connected(self) -> bool:
        """True while the consuming connection is up (False while it reconnects)."""
        c = self._connection
        return c is not None and not c.is_closed and c.connected.is_set()

    async def stop(self) -> None:
        """Stop taking deliveries, wait (bounded) for those in flight, then disconnect."""
        if self._connection is None:
            return
        if not self.connected:
            # Reconnecting: the deliveries in flight can no longer be acked on their channel
            # (the broker redelivers them; the inbox absorbs what took effect), and waiting
            # would let a reconnect start consuming again. Close at once.
            log.info("stopping while disconnected; deliveries in flight will be redelivered")
            await self._connection.close()
            self._connection = None
            return
        if self._queue is not None and self._tag is not None:
            try:
                await self._queue.cancel(self._tag)
            except Exception as exc:  # closing anyway; unacked deliveries return to the queue
                log.warning("could not cancel the consumer on %s: %s", self._queue_name, exc)
        try:
            await asyncio.wait_for(self._idle.wait(), self._graceful_timeout_s)
        except TimeoutError:
            log.warning(
                "%d deliveries still in flight after %.0fs; the broker redelivers them",
                self._in_flight,
                self._graceful_timeout_s,
            )
        await self._connection.close()
        self._connection = None

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._in_flight += 1
        self._idle.clear()
        try:
            await self._deliver(message)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def _reconnected(self, connection: Any) -> None:
        if self._on_reconnect is not None:
            await self._on_reconnect(connection)
