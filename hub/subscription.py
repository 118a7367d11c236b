"""The hub.in subscription: raw deliveries off aio-pika's robust channel, no wrapper per message.

hub.in carries every message the hub handles, so its per-message cost bounds the hub. FastStream's
pipeline (context scopes, middleware stack, logging middleware, message wrapper) around each
delivery cost 30-40% of the routing throughput, and aio-pika's own message object and task per
delivery a further tenth of the hub's CPU (bench/findings.md); the hub settles, parks and retries
each message itself (``hub.consumer``), so it consumes on the robust channel's underlying aiormq
channel and takes aiormq's deliveries as they are, in aiormq's reader, without the task aiormq
would start for each (``hub.direct_delivery``). Reconnecting, reopening the channel, its QoS
and re-declaring the queue are aio-pika's robust connection and channel; consuming again on the
reopened channel is ``_consume`` (a reopen callback); re-declaring the topology on a fresh node
is the ``on_reconnect`` callback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aio_pika
import aiormq
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic
from yarl import URL

from hub.direct_delivery import Direct

log = logging.getLogger(__name__)

Reconnected = Callable[[AbstractRobustConnection], Awaitable[None]]


class Deliver(Protocol):
    """Takes each delivery as it arrives and settles it later; ``drained`` when all are."""

    def __call__(self, message: DeliveredMessage, /) -> None: ...  # noqa: D102
    async def drained(self) -> None: ...  # noqa: D102


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
        self._channel: AbstractRobustChannel | None = None
        self._underlay: aiormq.abc.AbstractChannel | None = None
        self._tag: str | None = None
        self._stopping = False
        self._recovering: asyncio.Future[None] | None = None
        self._consume_lock = asyncio.Lock()

    async def start(self) -> None:
        """Connect, set the prefetch and start consuming."""
        self._connection = await aio_pika.connect_robust(
            self._url, client_properties={"connection_name": self._name}
        )
        self._connection.reconnect_callbacks.add(self._reconnected)
        self._channel = await self._connection.channel()
        await self._channel.set_qos(prefetch_count=self._prefetch)
        # Declared (not just looked up) with its arguments: after a reconnect aio-pika declares
        # it again before the channel's reopen callbacks run, which must also work on a fresh
        # node.
        await self._channel.declare_queue(
            self._queue_name, durable=True, arguments=self._queue_arguments
        )
        self._channel.reopen_callbacks.add(self._reopened)
        await self._consume()

    async def _consume(self) -> None:
        """Consume hub.in on the channel's current aiormq channel (a new one after a reopen).

        Serialised, and once per aiormq channel: a reopen and a broker cancel racing must not
        leave two consumers; a stop that came while it waited cancels what it started.
        """
        async with self._consume_lock:
            if self._channel is None or self._stopping:
                return
            underlay = await self._channel.get_underlay_channel()
            if self._underlay is underlay and self._tag in getattr(underlay, "consumers", {}):
                return  # already consuming on this channel
            underlay.on_consumer_cancel_callbacks.add(self._cancelled)
            ok = await underlay.basic_consume(self._queue_name, Direct(self._deliver), no_ack=False)
            self._underlay, self._tag = underlay, ok.consumer_tag
            if self._stopping:
                await underlay.basic_cancel(ok.consumer_tag)

    async def _reopened(self, *_: Any) -> None:
        try:
            await self._consume()
        except Exception as exc:  # the channel closes again and the next reopen retries
            log.warning("could not consume %s again after a reopen: %s", self._queue_name, exc)

    def _cancelled(self, frame: Basic.Cancel) -> None:
        """The broker cancelled the consumer (its queue was deleted): consume again, in a task
        of its own (aiormq runs this callback in the channel's reader, which the declares
        need to read their answers)."""
        if frame.consumer_tag != self._tag or self._stopping or self._channel is None:
            return
        log.warning("the broker cancelled the consumer on %s; consuming again", self._queue_name)
        self._recovering = asyncio.ensure_future(self._consume_again())

    async def _consume_again(self) -> None:
        """Declare the queue and its bindings again (the topology callback), then consume."""
        if self._channel is None:
            return
        try:
            await self._channel.declare_queue(  # not robust: start() registered it already
                self._queue_name, durable=True, arguments=self._queue_arguments, robust=False
            )
            if self._on_reconnect is not None and self._connection is not None:
                await self._on_reconnect(self._connection)
            await self._consume()
        except Exception as exc:  # a failed declare closes the channel: the reopen consumes
            log.warning("could not consume %s again: %s", self._queue_name, exc)

    @property
    def connected(self) -> bool:
        """True while the consuming connection is up (False while it reconnects)."""
        c = self._connection
        return c is not None and not c.is_closed and c.connected.is_set()

    async def stop(self) -> None:
        """Stop taking deliveries, wait (bounded) for those in flight, then disconnect."""
        if self._connection is None:
            return
        self._stopping = True  # a reopen from here on must not consume again
        if not self.connected:
            # Reconnecting: the deliveries in flight can no longer be acked on their channel
            # (the broker redelivers them; the inbox absorbs what took effect), and waiting
            # would let a reconnect start consuming again. Close at once.
            log.info("stopping while disconnected; deliveries in flight will be redelivered")
            await self._connection.close()
            self._connection = None
            return
        underlay = self._underlay
        if underlay is not None and self._tag is not None and not underlay.is_closed:
            try:
                await underlay.basic_cancel(self._tag)
            except Exception as exc:  # closing anyway; unacked deliveries return to the queue
                log.warning("could not cancel the consumer on %s: %s", self._queue_name, exc)
        try:
            await asyncio.wait_for(self._deliver.drained(), self._graceful_timeout_s)
        except TimeoutError:
            log.warning(
                "deliveries still in flight after %.0fs; the broker redelivers them",
                self._graceful_timeout_s,
            )
        await self._connection.close()
        self._connection = None

    async def _reconnected(self, connection: Any) -> None:
        if self._on_reconnect is not None:
            await self._on_reconnect(connection)
