"""Effectively-once commits, batched: inbox + state change + outbox in one transaction per batch.

Messages handled concurrently (up to the prefetch) queue here; whatever has gathered while the
previous batch was committing forms the next batch. One transaction claims the inbox ids,
runs the stateful handlers, and writes every resulting message to the outbox; after commit the
messages are published with confirms, concurrently, and only then are the inputs acknowledged.
A redelivered id finds its inbox row and is dropped.

Round trips are what limit a batch, so a batch makes as few as it can:
- handlers run optimistically, batched and without savepoints; only when one of them fails
  is the whole transaction rolled back and done again with a savepoint per message, so the
  failure is isolated (failures are rare: bad input is refused before it gets here);
- the locks, the deletion of published outbox rows and the inbox claim are one statement;
- outbox rows that were published are deleted in the next batch's transaction (or by a
  short idle timer), not by a transaction of their own (which would cost a WAL flush);
- a handler may write its messages to the outbox itself, in the round trip of its own last
  write (they carry their ``outbox_id``): the batch then needs no outbox insert of its own.

By default one batch commits at a time (``max_concurrent_batches``); where more are allowed,
or several hubs share the database, handlers that lock per key (stock SKUs) name their keys
(``lock_keys``); the batch takes all of them first, in key order, so two batches touching the
same hot SKUs queue behind each other instead of deadlocking (a deadlock would cost
PostgreSQL's ``deadlock_timeout`` plus a retry).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import asyncpg

from hub import outbox
from hub.bus import Envelope, Publisher
from hub.db import Connection
from hub.errors import (
    DatabaseUnavailable,
    HubError,
    SchemaViolation,
    TransientError,
    one_line,
)
from hub.handlers import Handler, Inbound
from hub.metrics import Metrics, labelled

log = logging.getLogger(__name__)

# One round trip opens every batch: take the keys' locks (in key order, before anything else),
# delete the outbox rows the last batches published, and claim the inbox ids.
_CLAIM = """
WITH locked AS (SELECT hub_lock_keys($3::text[])),
     published AS (DELETE FROM outbox WHERE id = ANY($4::bigint[]))
INSERT INTO inbox (consumer, message_id) SELECT $1, unnest($2::text[]) FROM locked
ON CONFLICT DO NOTHING RETURNING message_id
"""


@dataclass(frozen=True)
class Outcome:
    """What became of one message: done (effects committed), a duplicate, or failed."""

    kind: Literal["done", "duplicate", "failed"]
    error: HubError | None = None
    published: int = 0


class _Isolate(Exception):
    """A handler failed in the optimistic pass: redo the batch with a savepoint per message.

    ``index`` names the failing message when it is known (it is then not called again); a
    failure inside a batch call (``handle_many``) does not say which message was at fault.
    """

    def __init__(self, index: int | None, error: HubError) -> None:
        super().__init__(index, error)
        self.index = index
        self.error = error


# What a handler may raise that is a fault of its message or of the moment, not of the batch.
_HANDLER_FAULTS = (asyncpg.PostgresError, ValueError, LookupError, TypeError, AssertionError)


def _as_hub_error(exc: BaseException) -> HubError:
    """Foreign handler failures become transient (retried, then parked after the last attempt)."""
    if isinstance(exc, HubError):
        return exc
    if isinstance(exc, asyncpg.DataError):  # SQLSTATE class 22: this data never fits, park it
        return SchemaViolation(f"data the database cannot store: {one_line(exc)}")
    return TransientError(f"handler failed: {one_line(exc)}")


@dataclass
class _Plan:
    outcomes: list[Outcome | None]
    counts: list[int]
    to_publish: list[Envelope] = field(default_factory=list)


Settle = Callable[[Outcome], None]


@dataclass
class _Work:
    inbound: Inbound
    handler: Handler | None
    envelopes: Sequence[Envelope]
    settle: Settle = field(repr=False)


class BatchCommitter:
    """Gathers concurrent messages into batches and commits each batch in one transaction."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        publisher: Publisher,
        metrics: Metrics,
        consumer: str,
        batch_max: int,
        max_concurrent_batches: int = 1,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sent_flush_s: float = 0.05,
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
        self._sent: list[int] = []  # outbox ids published but not yet deleted
        self._sent_flush_s = sent_flush_s
        self._flusher: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start gathering batches."""
        self._task = asyncio.create_task(self._gather(), name=f"committer-{self._consumer}")
        self._flusher = asyncio.create_task(self._flush_sent_loop(), name="committer-sent")

    async def stop(self) -> None:
        """Finish the batches in flight, then stop."""
        while not self._queue.empty() or self._inflight:  # noqa: ASYNC110 - drain is rare
            await asyncio.sleep(0.01)
        for task in (self._task, self._flusher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._flush_sent()

    async def _flush_sent(self) -> None:
        ids, self._sent = self._sent, []
        try:
            await outbox.mark_sent(self._pool, ids)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            self._sent.extend(ids)  # the relay would re-send them after its grace period
            log.warning("could not delete %d published outbox rows: %s", len(ids), exc)

    async def _flush_sent_loop(self) -> None:
        """When no batch comes along to take the deletes with it, do them on their own."""
        while True:
            await asyncio.sleep(self._sent_flush_s)
            if self._sent and not self._inflight:
                await self._flush_sent()

    def enqueue(
        self,
        inbound: Inbound,
        handler: Handler | None,
        envelopes: Sequence[Envelope],
        settle: Settle,
    ) -> None:
        """Queue a message for the next batch; ``settle`` is called once with its outcome.

        With a ``handler`` the message changes state inside the batch transaction; without
        one its effect is only ``envelopes``, the messages it causes.
        """
        self._queue.put_nowait(_Work(inbound, handler, envelopes, settle))

    async def submit(
        self, inbound: Inbound, handler: Handler | None, envelopes: Sequence[Envelope] = ()
    ) -> Outcome:
        """``enqueue``, awaiting the outcome (for callers that handle one message at a time)."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()

        def settle(outcome: Outcome) -> None:
            if not future.done():  # the caller may have stopped waiting
                future.set_result(outcome)

        self.enqueue(inbound, handler, envelopes, settle)
        return await future

    async def _gather(self) -> None:
        while True:
            batch = [await self._queue.get()]
            # Formed once a slot is free: what arrived while the last batch committed goes
            # out together, instead of waiting a whole cycle behind an early, small batch.
            await self._slots.acquire()
            while len(batch) < self._batch_max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            task = asyncio.create_task(self._process(batch))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _process(self, batch: list[_Work]) -> None:
        held = True

        def release_slot() -> None:
            """A slot bounds transactions, not publishes: free it as soon as the commit is in."""
            nonlocal held
            if held:
                held = False
                self._slots.release()

        outcomes: list[Outcome] | None = None
        try:
            outcomes = await self._commit_and_publish(batch, release_slot)
        except Exception as exc:  # the whole batch failed before commit: retry them all
            error = exc if isinstance(exc, TransientError) else DatabaseUnavailable(one_line(exc))
            log.warning("batch of %d failed before commit: %s", len(batch), one_line(exc))
            outcomes = [Outcome("failed", error)] * len(batch)
        finally:
            release_slot()
            if outcomes is None:  # interrupted (cancelled): no delivery may wait for ever
                outcomes = [Outcome("failed", DatabaseUnavailable("batch interrupted"))] * len(
                    batch
                )
            for work, outcome in zip(batch, outcomes, strict=True):
                try:
                    work.settle(outcome)
                except Exception:  # one caller's fault must not leave the rest unsettled
                    log.exception("settling %s failed", work.inbound.event.id)

    async def _commit_and_publish(
        self, batch: list[_Work], committed: Callable[[], None]
    ) -> list[Outcome]:
        now = self._clock()
        sent, self._sent = self._sent, []
        keys = sorted(
            {
                key
                for w in batch
                if (lock_keys := getattr(w.handler, "lock_keys", None)) is not None
                for key in lock_keys(w.inbound)
            }
        )
        try:
            try:
                plan, ids = await self._transact(batch, keys, sent, now, failed=None)
            except _Isolate as exc:  # a handler failed: the whole transaction once more, isolated
                plan, ids = await self._transact(batch, keys, sent, now, failed=exc)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            self._sent.extend(sent)
            raise DatabaseUnavailable(one_line(exc)) from exc
        except BaseException:
            self._sent.extend(sent)
            raise
        committed()
        self._metrics.batch_size.observe(len(batch))
        try:
            await self._publisher.publish_many(plan.to_publish)
            self._sent.extend(ids)
            self._count_published(plan.to_publish)
        except Exception as exc:
            # Committed: the outbox relay publishes these later, so the inputs are done.
            log.warning("publish after commit failed, outbox relay will send: %s", exc)
        return [
            o if o is not None else Outcome("done", published=plan.counts[i])
            for i, o in enumerate(plan.outcomes)
        ]

    def _count_published(self, envelopes: Sequence[Envelope]) -> None:
        """Published counts per exchange, and how long each stock change took to go out."""
        confirmed = time.time()
        per_exchange: dict[str, int] = {}
        for env in envelopes:
            per_exchange[env.exchange] = per_exchange.get(env.exchange, 0) + 1
            if env.caused_at is not None:
                channel = env.routing_key.split(".", 1)[0]
                labelled(self._metrics.stock_propagation_seconds, channel).observe(
                    max(0.0, confirmed - env.caused_at.timestamp())
                )
        for exchange, count in per_exchange.items():
            labelled(self._metrics.published, exchange).inc(count)

    async def _transact(
        self,
        batch: list[_Work],
        keys: list[str],
        sent: list[int],
        now: datetime,
        failed: _Isolate | None,
    ) -> tuple[_Plan, list[int]]:
        """Claim, handle and write the outbox in one transaction.

        Without ``failed`` the handlers run optimistically, batched and without savepoints
        (each savepoint costs two round trips); a failure raises ``_Isolate`` and rolls the
        whole transaction back. With ``failed`` every message gets a savepoint of its own,
        so one failure is isolated, and the message that failed is not called again.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            claimed = {
                r["message_id"]
                for r in await conn.fetch(
                    _CLAIM, self._consumer, [w.inbound.event.id for w in batch], keys, sent
                )
            }
            plan = await self._pass(
                conn, batch, claimed, now, isolate=failed is not None, failed=failed
            )
            ids = await _write_outbox(conn, plan.to_publish)
        return plan, ids

    async def _pass(
        self,
        conn: Connection,
        batch: list[_Work],
        claimed: set[str],
        now: datetime,
        isolate: bool,
        failed: _Isolate | None = None,
    ) -> _Plan:
        """Handle the batch: each claimed id by the first of its copies that succeeds.

        Later copies of an id are duplicates. When a copy fails (isolated pass), the next copy
        of the same id takes its place; an id that no copy handled leaves the inbox again, so
        a retried or replayed message is handled anew. The message that failed the optimistic
        pass is not called again.
        """
        plan = _Plan([None] * len(batch), [0] * len(batch))
        results: dict[int, Sequence[Envelope]] = {}
        if not isolate:
            fresh: list[int] = []
            for i, work in enumerate(batch):
                if work.inbound.event.id in claimed:
                    claimed.discard(work.inbound.event.id)
                    fresh.append(i)
                else:
                    plan.outcomes[i] = Outcome("duplicate")
            for run in _runs(batch, fresh):
                handler = batch[run[0]].handler
                if handler is None:
                    results.update((i, batch[i].envelopes) for i in run)
                else:
                    await self._optimistic(conn, handler, batch, run, now, results)
        else:
            for i, work in enumerate(batch):
                msg_id = work.inbound.event.id
                if msg_id not in claimed:
                    plan.outcomes[i] = Outcome("duplicate")
                    continue
                if failed is not None and failed.index == i:
                    plan.outcomes[i] = Outcome("failed", failed.error)
                    continue  # the claim waits for a later copy, if any
                if work.handler is not None:
                    try:
                        async with conn.transaction():
                            results[i] = await work.handler.handle(work.inbound, conn, now)
                    except asyncpg.PostgresConnectionError:
                        raise
                    except (HubError, *_HANDLER_FAULTS) as exc:
                        if not isinstance(exc, HubError):
                            log.exception("handler for %s failed", work.inbound.event.type)
                        plan.outcomes[i] = Outcome("failed", _as_hub_error(exc))
                        continue
                else:
                    results[i] = work.envelopes
                claimed.discard(msg_id)
        # Published in the order the handlers ran, not the batch's: figures of one SKU from
        # two runs (reservations, then levels) go out in the order of their versions.
        for i in results:
            plan.counts[i] = len(results[i])
            plan.to_publish.extend(results[i])
        if claimed:  # claimed by this batch, handled by none of its copies
            await conn.execute(
                "DELETE FROM inbox WHERE consumer = $1 AND message_id = ANY($2::text[])",
                self._consumer,
                list(claimed),
            )
        return plan

    async def _optimistic(
        self,
        conn: Connection,
        handler: Handler,
        batch: list[_Work],
        run: list[int],
        now: datetime,
        results: dict[int, Sequence[Envelope]],
    ) -> None:
        """One call for a run of messages when the handler can take many, else one each."""
        many = getattr(handler, "handle_many", None)
        try:
            if many is not None and len(run) > 1:
                outputs = await many([batch[i].inbound for i in run], conn, now)
                results.update(zip(run, outputs, strict=True))
                return
            for i in run:
                try:
                    results[i] = await handler.handle(batch[i].inbound, conn, now)
                except asyncpg.PostgresConnectionError:
                    raise
                except (HubError, *_HANDLER_FAULTS) as exc:
                    raise _Isolate(i, _as_hub_error(exc)) from exc
        except asyncpg.PostgresConnectionError:
            raise
        except _Isolate:
            raise
        except (HubError, *_HANDLER_FAULTS) as exc:
            raise _Isolate(None, _as_hub_error(exc)) from exc


async def _write_outbox(conn: Connection, envelopes: list[Envelope]) -> list[int]:
    """The outbox ids of the batch's messages, writing those their handler did not write."""
    if all(e.outbox_id is None for e in envelopes):
        return await outbox.write(conn, envelopes)
    written = [e.outbox_id for e in envelopes if e.outbox_id is not None]
    return written + await outbox.write(conn, [e for e in envelopes if e.outbox_id is None])


def _runs(batch: list[_Work], indexes: list[int]) -> list[list[int]]:
    """Messages grouped by handler (in arrival order), so a batch-capable handler is called once.

    Messages in one batch arrived concurrently, so their relative order across types carries
    no meaning; within a type the arrival order is kept.
    """
    groups: dict[int, list[int]] = {}
    for i in indexes:
        groups.setdefault(id(batch[i].handler), []).append(i)
    return list(groups.values())
