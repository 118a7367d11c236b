"""The runtime service that runs an HTTP delivery worker for every channel configured for one.

One hub of a deployment delivers each channel: its worker holds the channel's lease, a
PostgreSQL session-level advisory lock, and the other hubs stand by, asking again every
``lease_interval_s``. Several hubs each consuming the channel's queue would each spend the
channel's whole rate (a marketplace sees N times its limit, and a Retry-After pauses only
one of them), and two figures for one SKU could be in flight at once from two hubs, the older
landing last. A hub that stops lets go (its unacked messages go back to the queue) and a
standby takes the channel over within the interval. A hub that loses its database session
loses the lock at once but may still be finishing requests: it notices at its next heartbeat
and stops, and the standby, which sees the old holder's recent heartbeat in
``delivery_leases``, waits that long (``fence_s``) before it consumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from functools import partial
from typing import TYPE_CHECKING, Any

import aio_pika
import aiormq
import asyncpg
import httpx
from aio_pika.abc import AbstractRobustConnection

from adapters import registry as adapter_registry
from adapters.base import OutboundTranslator
from hub.background import finish_then_cancel, wait_or_stop
from hub.delivery.bucket import TokenBucket
from hub.delivery.calls import API_CLIENTS, Caller, caller_for
from hub.delivery.policy import DeliveryPolicy
from hub.delivery.wire import signing_secret
from hub.delivery.worker import ChannelWorker
from hub.faults import FaultHandler
from hub.outgoing import to_hub
from hub.topology import work_queue_arguments
from routes.config import ChannelConfig, HubConfig
from schemas.envelope import CloudEvent

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


def _caller(name: str, channel: ChannelConfig) -> Caller:
    """How the channel is called; a config asking for an API client the hub lacks stops the
    hub at start, naming the channel, rather than its delivery at the first message."""
    delivery = channel.delivery
    try:
        return caller_for(
            channel.adapter,
            str(delivery.url),
            delivery.api,
            channel.settings,
            coalesce=delivery.coalesce_stock,
        )
    except LookupError as exc:
        where = "delivery.api" if channel.adapter not in API_CLIENTS else "settings"
        raise ValueError(f"channels.{name}.{where}: {exc}") from exc


STOP_WAIT_S = 10.0  # how long stop waits for the lease loop's round in progress


def lease_key(lease: str) -> int:
    """The advisory lock whose holder, among the hubs of one deployment, delivers a channel."""
    digest = hashlib.sha256(f"commerce-hub delivery/{lease}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class DeliveryService:
    """Every HTTP channel's worker, on a broker connection of its own; does nothing without one."""

    def __init__(self, hub: Hub, policy: DeliveryPolicy | None = None) -> None:
        self._hub = hub
        self._policy = policy or DeliveryPolicy()
        self.channels = http_channels(hub.config)
        self._callers = {name: _caller(name, ch) for name, ch in self.channels.items()}
        self.workers: dict[str, ChannelWorker] = {}
        self.started = asyncio.Event()
        self._connection: AbstractRobustConnection | None = None
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._task: asyncio.Task[None] | None = None
        self._lease_db: asyncpg.Connection | None = None
        self._stopping = asyncio.Event()
        self.holder = uuid.uuid4().hex
        self._locked: set[str] = set()  # channels whose advisory lock this session holds

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
        self._connection = await self._connect()
        policy = self._policy
        while not self._stopping.is_set():
            try:
                self._lease_db = db = await asyncpg.connect(
                    hub.settings.database_url,
                    server_settings={"application_name": f"commerce-hub lease {self.holder}"},
                )
                # Nothing is delivered from here yet: a lease this hub held before it lost its
                # last session is no longer its to keep alive.
                await db.execute("DELETE FROM delivery_leases WHERE holder = $1", self.holder)
                while True:
                    await self._take_leases(db, faults, arguments)
                    self.started.set()
                    if await wait_or_stop(self._stopping, policy.lease_interval_s):
                        return  # asked to stop: between rounds, never inside one
                    await db.execute(  # the heartbeat of what it delivers; fails with the session
                        "UPDATE delivery_leases SET beat_at = now()"
                        " WHERE holder = $1 AND lease = ANY($2::text[])",
                        self.holder,
                        [self._lease_name(name) for name in self.workers],
                        timeout=policy.lease_interval_s,
                    )
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("HTTP delivery lost its lease session (%s): letting go", exc)
            except Exception:  # a bug must not end delivery for good: let go and start over
                log.exception("HTTP delivery failed unexpectedly: letting go")
            await self._let_go()
            await wait_or_stop(self._stopping, hub.settings.reconnect_interval_s)

    async def _take_leases(
        self, db: asyncpg.Connection, faults: FaultHandler, arguments: dict[str, Any]
    ) -> None:
        """Start the worker of every channel whose lease this hub holds or can take now."""
        assert self._connection is not None
        for name, channel in self.channels.items():
            if name in self.workers:
                continue
            lease = self._lease_name(name)
            key = lease_key(lease)
            if name not in self._locked:
                if not await db.fetchval("SELECT pg_try_advisory_lock($1)", key):
                    continue  # another hub delivers it
                self._locked.add(name)
            if not await self._claim(db, lease):
                continue  # the last holder may still be sending: ask again next round
            worker = self._worker(name, channel, faults)
            try:
                await worker.start(await self._connection.channel(), arguments)
            except Exception:  # a broker reconnecting (RuntimeError) among others: next round
                log.exception("HTTP delivery to %s could not start; will try again", name)
                await worker.stop()
                await self._clients.pop(name).aclose()
                await db.execute("SELECT pg_advisory_unlock($1)", key)
                self._locked.discard(name)
                continue
            self.workers[name] = worker
            self._hub.metrics.delivery_active.labels(name).set(1)
            log.info("HTTP delivery to %s started here", name)

    def _lease_name(self, channel: str) -> str:
        return f"{self._hub.settings.name_prefix}/{channel}"

    @property
    def fence_s(self) -> float:
        """How long after its last heartbeat a holder that lost its session may still send:
        until its next heartbeat fails (two intervals at most), then its stop's grace."""
        return 2 * self._policy.lease_interval_s + self._policy.stop_grace_s + 1.0

    async def _claim(self, db: asyncpg.Connection, lease: str) -> bool:
        """Record this hub as the lease's holder, unless another beat too recently to have
        surely stopped; False means wait."""
        taken = await db.fetchval(
            "INSERT INTO delivery_leases AS d (lease, holder, beat_at) VALUES ($1, $2, now())"
            " ON CONFLICT (lease) DO UPDATE SET holder = $2, beat_at = now()"
            " WHERE d.holder = $2 OR d.beat_at < now() - make_interval(secs => $3)"
            " RETURNING 1",
            lease,
            self.holder,
            self.fence_s,
        )
        return taken is not None

    async def _let_go(self) -> None:
        """Stop every worker (their unacked messages go back), say so, end the lease session."""
        for name, worker in list(self.workers.items()):
            await worker.stop()
            await self._clients.pop(name).aclose()
            self._hub.metrics.delivery_active.labels(name).set(0)
        self.workers.clear()
        self._locked.clear()
        db, self._lease_db = self._lease_db, None
        if db is None:
            return
        lost = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
        with contextlib.suppress(*lost):  # stopped cleanly: the next holder need not wait
            await db.execute(
                "DELETE FROM delivery_leases WHERE holder = $1", self.holder, timeout=2.0
            )
        with contextlib.suppress(*lost):
            await db.close(timeout=2.0)
        if not db.is_closed():
            db.terminate()

    def _worker(self, name: str, channel: ChannelConfig, faults: FaultHandler) -> ChannelWorker:
        delivery = channel.delivery
        policy = self._policy
        client = httpx.AsyncClient(
            timeout=policy.timeout_s,
            limits=httpx.Limits(max_connections=policy.max_in_flight),
            headers={"User-Agent": USER_AGENT},
        )
        self._clients[name] = client
        # The stock figures a caller remembers may be stale after another hub delivered the
        # channel meanwhile; its token and ids are not.
        forget = getattr(self._callers[name], "forget", None)
        if forget is not None:
            forget()
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
            caller=self._callers[name],
            answers=partial(self._to_hub, ingress="api-answer"),
            polled=partial(self._to_hub, ingress="api-poll"),
        )

    async def _to_hub(self, event: CloudEvent, *, ingress: str) -> None:
        """Publish what a channel's API answered, or a poll of it found, onto hub.in as the
        channel's own event (``ingress`` says which)."""
        await self._hub.publisher.publish(
            to_hub(self._hub.names, event, {"x-hub-ingress": ingress})
        )

    async def stop(self) -> None:
        """Stop every worker (requests in flight finish), then close the clients and connection.

        The lease loop ends between rounds, not while a worker opens its AMQP channel."""
        self._stopping.set()
        task, self._task = self._task, None
        await finish_then_cancel(task, STOP_WAIT_S)
        await self._let_go()
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
        self.started.clear()
