"""The seam between the runtime and the domain: what a message handler receives and returns."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from hub.bus import Envelope
from hub.db import Connection
from schemas.base import Message
from schemas.envelope import CloudEvent


@dataclass(frozen=True)
class Inbound:
    """A validated message: its envelope, its canonical model, and how it arrived."""

    event: CloudEvent
    message: Message
    routing_key: str
    reply_to: str | None = None


class Handler(Protocol):
    """Turns one inbound message into the messages it causes.

    A stateful handler gets a connection inside a transaction (a savepoint of the batch) and
    must make its state change through it; the runtime commits that change together with the
    inbox entry and the returned messages (outbox). A pure handler gets ``None``.
    """

    stateful: bool

    async def handle(
        self, inbound: Inbound, conn: Connection | None, now: datetime
    ) -> Sequence[Envelope]:
        """Apply the message; raise PermanentError to park it, TransientError to retry it."""
        ...


FORWARDS = "forwards"
"""A handler with ``forwards = True`` keeps a projection of a message its routes send on to
channels (products, prices); every other handler is a step of the hub's own, which only a
route to ``hub`` may hand it."""


class LockingHandler(Handler, Protocol):
    """A stateful handler that names the keys (SKUs) it will lock, so the committer can take
    every key of a batch up front, in order, and concurrent batches cannot deadlock."""

    def lock_keys(self, inbound: Inbound) -> Iterable[str]:
        """The keys this message's handling locks."""
        ...


class BatchHandler(Handler, Protocol):
    """A stateful handler that can take a run of messages of its type in one call."""

    async def handle_many(
        self, inbounds: Sequence[Inbound], conn: Connection | None, now: datetime
    ) -> list[Sequence[Envelope]]:
        """The messages each input causes, in input order (same contract as ``handle``)."""
        ...
