"""Effectively-once commits, batched: inbox + state change + outbox in one transaction per batch.

Messages handled concurrently (up to the prefetch) queue here; whatever has gathered while the
previous batch was committing forms the next batch. One transaction claims the inbox ids,
runs the stateful handlers (each in a savepoint), and writes every resulting message to the
outbox; after commit the messages are published with confirms, concurrently, and only then
are the inputs acknowledged. A redelivered id finds its inbox row and is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import asyncpg

from hub import outbox
from hub.bus import Envelope, Publisher
from hub.errors import DatabaseUnavailable, HubError, PermanentError, TransientError, one_line
from hub.handlers import Handler, Inbound
from hub.metrics import Metrics

log = logging.getLogger(__name__)

_CLAIM = """
INSERT INTO inbox (consumer, message_id) SELECT $1, unnest($2::text[])
ON CONFLICT DO NOTHING RETURNING message_id
"""


@dataclass(frozen=True)
class Outcome:
    """What became of one message: done (effects committed), a duplicate, or failed."""

    kind: Literal["done", "duplicate", "failed"]
    error: HubError | None = None
    published: int = 0


@dataclass
class _Work:
    inbound: Inbound
    handler: Handler | None
    envelopes: Sequence[Envelope]
    future: asyncio.Future[Outcome] = field(repr=False)


class BatchCommitter:
    """Gathers concurrent messages into batches and commits each batch in one transaction."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        publisher: Publisher,
        metrics: Metrics,
        consumer: str,
        batch_max: int,
        max_concurrent_batches: int = 4,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._pool = pool
        self._publisher = publisher
        self._metrics = metrics
        self._consumer = consumer
        self._batch_max = batch_max
        self._slots = asyncio.Semaphore(max_concurrent_batches)
        self._clock = clock
        self._queue: asyncio.Queue[_Work] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Start gathering batches."""
        self._task = asyncio.create_task(self._gather(), name=f"committer-{self._consumer}")

    async def stop(self) -> None:
        """Finish the batches in flight, then stop."""
        while not self._queue.empty() or self._inflight:  # noqa: ASYNC110 - drain is rare
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def submit_pure(self, inbound: Inbound, envelopes: Sequence[Envelope]) -> Outcome:
        """Commit a message whose effect is only the messages it causes."""
        return await self._submit(inbound, None, envelopes)

    async def submit(self, inbound: Inbound, handler: Handler) -> Outcome:
        """Commit a message whose handler changes state inside the batch transaction."""
        return await self._submit(inbound, handler, ())

    async def _submit(
        self, inbound: Inbound, handler: Handler | None, envelopes: Sequence[Envelope]
    ) -> Outcome:
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Work(inbound, handler, envelopes, future))
        return await future

    async def _gather(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch_max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._slots.acquire()
            task = asyncio.create_task(self._process(batch))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _process(self, batch: list[_Work]) -> None:
        try:
            outcomes = await self._commit_and_publish(batch)
        except Exception as exc:  # the whole batch failed before commit: retry them all
            error = exc if isinstance(exc, TransientError) else DatabaseUnavailable(one_line(exc))
            log.warning("batch of %d failed before commit: %s", len(batch), one_line(exc))
            outcomes = [Outcome("failed", error)] * len(batch)
        finally:
            self._slots.release()
        for work, outcome in zip(batch, outcomes, strict=True):
            if not work.future.done():
                work.future.set_result(outcome)

    async def _commit_and_publish(self, batch: list[_Work]) -> list[Outcome]:
        now = self._clock()
        outcomes: list[Outcome | None] = [None] * len(batch)
        to_publish: list[Envelope] = []
        counts: list[int] = [0] * len(batch)
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                claimed = {
                    r["message_id"]
                    for r in await conn.fetch(
                        _CLAIM, self._consumer, [w.inbound.event.id for w in batch]
                    )
                }
                released: list[str] = []
                for i, work in enumerate(batch):
                    msg_id = work.inbound.event.id
                    if msg_id not in claimed:
                        outcomes[i] = Outcome("duplicate")
                        continue
                    claimed.discard(msg_id)  # a second copy in the same batch is a duplicate
                    envelopes = work.envelopes
                    if work.handler is not None:
                        try:
                            async with conn.transaction():
                                envelopes = await work.handler.handle(work.inbound, conn, now)
                        except HubError as exc:
                            outcomes[i] = Outcome("failed", exc)
                            released.append(msg_id)
                            continue
                        except (asyncpg.PostgresError, ValueError, LookupError, TypeError) as exc:
                            # The savepoint isolated it: only this message fails, and it is
                            # retried (a deadlock or serialization failure passes on retry; a
                            # bug is parked after the last attempt), never the whole batch.
                            if isinstance(exc, asyncpg.PostgresConnectionError):
                                raise
                            log.exception("handler for %s failed", work.inbound.event.type)
                            outcomes[i] = Outcome("failed", TransientError(one_line(exc)))
                            released.append(msg_id)
                            continue
                    counts[i] = len(envelopes)
                    to_publish.extend(envelopes)
                if released:  # failed messages must be handled anew when retried or replayed
                    await conn.execute(
                        "DELETE FROM inbox WHERE consumer = $1 AND message_id = ANY($2::text[])",
                        self._consumer,
                        released,
                    )
                ids = await outbox.write(conn, to_publish)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DatabaseUnavailable(one_line(exc)) from exc
        self._metrics.batch_size.observe(len(batch))
        try:
            await self._publisher.publish_many(to_publish)
            await outbox.mark_sent(self._pool, ids)
            for env in to_publish:
                self._metrics.published.labels(env.exchange).inc()
        except (HubError, OSError, asyncpg.PostgresError) as exc:
            # Committed: the outbox relay publishes these later, so the inputs are done.
            log.warning("publish after commit failed, outbox relay will send: %s", exc)
        return [
            o if o is not None else Outcome("done", published=counts[i])
            for i, o in enumerate(outcomes)
        ]


def is_permanent(outcome: Outcome) -> bool:
    """A failed outcome whose message must be parked rather than retried."""
    return outcome.kind == "failed" and isinstance(outcome.error, PermanentError)
