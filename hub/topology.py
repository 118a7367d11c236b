"""The bus topology of the contract (exchanges, quorum queues, dead-lettering) from config."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, ExchangeType

RETRY_DELAYS_S: tuple[int, ...] = (1, 5, 30, 120)


@dataclass(frozen=True)
class Names:
    """Every exchange and queue name, prefixed per deployment so hubs can share a broker."""

    prefix: str = ""

    @property
    def inbound_exchange(self) -> str:
        """Adapters publish here with routing key ``<channel>.<type>``."""
        return f"{self.prefix}hub.in"

    @property
    def inbound_queue(self) -> str:
        """The hub consumes this queue, bound to everything on ``hub.in``."""
        return f"{self.prefix}hub.in"

    @property
    def outbound_exchange(self) -> str:
        """The hub publishes every result here with routing key ``<channel>.<type>``."""
        return f"{self.prefix}hub.out"

    def channel_queue(self, channel: str) -> str:
        """One durable queue per configured channel."""
        return f"{self.prefix}hub.out.{channel}"

    @property
    def rpc_queue(self) -> str:
        """Request/reply queries (availability) addressed to the hub."""
        return f"{self.prefix}hub.rpc"

    @property
    def dead_exchange(self) -> str:
        """Where parked and delivery-limited messages go."""
        return f"{self.prefix}hub.dlx"

    @property
    def dead_queue(self) -> str:
        """The parking lot: messages wait here, never expiring, until an operator acts."""
        return f"{self.prefix}hub.dead"

    def retry_queue(self, delay_s: int) -> str:
        """A TTL queue (and its fanout exchange of the same name) that dead-letters back to hub.in.

        A retried message is published to the exchange with its original routing key, which
        dead-lettering keeps, so it comes back exactly as it first arrived.
        """
        return f"{self.prefix}hub.retry.{delay_s}s"

    def all_queues(self, channels: Iterable[str]) -> list[str]:
        """Every queue of this deployment, for cleanup and inspection."""
        return [
            self.inbound_queue,
            self.rpc_queue,
            self.dead_queue,
            *(self.channel_queue(c) for c in channels),
            *(self.retry_queue(d) for d in RETRY_DELAYS_S),
        ]

    def all_exchanges(self) -> list[str]:
        """Every exchange of this deployment."""
        return [
            self.inbound_exchange,
            self.outbound_exchange,
            self.dead_exchange,
            *(self.retry_queue(d) for d in RETRY_DELAYS_S),
        ]


def work_queue_arguments(names: Names, delivery_limit: int) -> dict[str, Any]:
    """Quorum queue with a delivery limit; poison messages dead-letter to the parking lot."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": names.dead_exchange,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


async def declare(
    channel: AbstractChannel, names: Names, channels: Iterable[str], delivery_limit: int
) -> list[str]:
    """Declare the whole topology idempotently; returns a line per object for ``hub topology``."""
    lines: list[str] = []
    work_args = work_queue_arguments(names, delivery_limit)

    async def exchange(name: str) -> aio_pika.abc.AbstractExchange:
        ex = await channel.declare_exchange(name, ExchangeType.TOPIC, durable=True)
        lines.append(f"exchange {name} (topic, durable)")
        return ex

    inbound = await exchange(names.inbound_exchange)
    outbound = await exchange(names.outbound_exchange)
    dead = await exchange(names.dead_exchange)

    queue = await channel.declare_queue(names.inbound_queue, durable=True, arguments=work_args)
    await queue.bind(inbound, "#")
    lines.append(f"queue {names.inbound_queue} <- {names.inbound_exchange} '#'")

    rpc = await channel.declare_queue(names.rpc_queue, durable=True, arguments=work_args)
    lines.append(f"queue {rpc.name} (request/reply)")

    for ch in channels:
        q = await channel.declare_queue(names.channel_queue(ch), durable=True, arguments=work_args)
        await q.bind(outbound, f"{ch}.#")
        lines.append(f"queue {q.name} <- {names.outbound_exchange} '{ch}.#'")

    parked = await channel.declare_queue(
        names.dead_queue, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await parked.bind(dead, "#")
    lines.append(f"queue {names.dead_queue} <- {names.dead_exchange} '#' (never expires)")

    for delay in RETRY_DELAYS_S:
        rq = await channel.declare_queue(
            names.retry_queue(delay),
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-message-ttl": delay * 1000,
                "x-dead-letter-exchange": names.inbound_exchange,
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
        )
        retry = await channel.declare_exchange(rq.name, ExchangeType.FANOUT, durable=True)
        await rq.bind(retry)
        lines.append(f"exchange+queue {rq.name} (ttl {delay}s) -> {names.inbound_exchange}")
    return lines


async def delete_all(channel: AbstractChannel, names: Names, channels: Iterable[str]) -> None:
    """Remove every queue and exchange of this prefix (tests clean up with it)."""
    for q in names.all_queues(channels):
        await channel.queue_delete(q)
    for ex in names.all_exchanges():
        await channel.exchange_delete(ex)
