"""The batch committer on the real PostgreSQL: one failure never costs the rest of its batch."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
import pytest

from hub import db
from hub.bus import Envelope, Publisher
from hub.committer import BatchCommitter
from hub.db import Connection
from hub.errors import BusinessRuleViolation, PermanentError, TransientError
from hub.handlers import Inbound
from hub.metrics import Metrics
from schemas.catalog import ProductUpserted
from schemas.envelope import CloudEvent

pytestmark = pytest.mark.integration


class RecordingPublisher(Publisher):
    """The real Publisher's port, recording instead of sending (the broker is not under test)."""

    def __init__(self) -> None:
        super().__init__("amqp://unused", 1.0)
        self.sent: list[Envelope] = []

    async def publish_many(self, envelopes: Sequence[Envelope]) -> None:
        self.sent.extend(envelopes)


class Ledger:
    """A stateful handler writing one row per message; SKUs starting BAD fail, CRASH blow up."""

    stateful = True

    def __init__(self, batched: bool) -> None:
        self.batch_calls = 0
        if batched:
            self.handle_many = self._handle_many

    async def handle(
        self, inbound: Inbound, conn: Connection | None, now: datetime
    ) -> Sequence[Envelope]:
        assert conn is not None
        sku = inbound.message.sku  # type: ignore[attr-defined]
        await conn.execute("INSERT INTO seen (sku) VALUES ($1)", sku)
        if sku.startswith("BAD"):
            raise BusinessRuleViolation(f"{sku} refused")
        if sku.startswith("CRASH"):
            raise KeyError(sku)
        return [envelope(inbound)]

    async def _handle_many(
        self, inbounds: Sequence[Inbound], conn: Connection | None, now: datetime
    ) -> list[Sequence[Envelope]]:
        self.batch_calls += 1
        return [await self.handle(i, conn, now) for i in inbounds]


def envelope(inbound: Inbound) -> Envelope:
    return Envelope(inbound.event.id, "x", "k", "t", "s", b"{}")


def inbound(sku: str, event_id: str | None = None) -> Inbound:
    message = ProductUpserted(sku=sku, name="n", version=1)
    event = CloudEvent(
        id=event_id or str(uuid.uuid4()),
        source="erp",
        type=message.TYPE,
        time=datetime.now(UTC),
        data=message.model_dump(mode="json"),
    )
    return Inbound(event=event, message=message, routing_key="erp.product.upserted")


@pytest.fixture
async def pool(isolated):
    pool = await db.prepare(isolated.database_url, 4)
    await pool.execute("CREATE TABLE seen (sku text)")
    yield pool
    await pool.close()


@pytest.mark.parametrize("batched", [False, True], ids=["one-by-one", "handle_many"])
async def test_failures_are_isolated_and_the_rest_commits(pool: asyncpg.Pool, batched) -> None:
    publisher = RecordingPublisher()
    committer = BatchCommitter(pool, publisher, Metrics(), "test", batch_max=50)
    handler = Ledger(batched)
    committer.start()
    try:
        skus = ["OK-1", "BAD-1", "OK-2", "CRASH-1", "OK-3"]
        outcomes = await asyncio.gather(*(committer.submit(inbound(s), handler) for s in skus))
    finally:
        await committer.stop()
    kinds = dict(zip(skus, outcomes, strict=True))
    assert [kinds[s].kind for s in ("OK-1", "OK-2", "OK-3")] == ["done"] * 3
    assert isinstance(kinds["BAD-1"].error, PermanentError)
    assert isinstance(kinds["CRASH-1"].error, TransientError)
    # Only the good messages' state and messages survive; the failures left nothing behind...
    assert sorted(r["sku"] for r in await pool.fetch("SELECT sku FROM seen")) == [
        "OK-1",
        "OK-2",
        "OK-3",
    ]
    assert len(publisher.sent) == 3
    # ...not even their inbox rows, so a retry or a replay is handled anew.
    assert await pool.fetchval("SELECT count(*) FROM inbox") == 3
    if batched:
        assert handler.batch_calls >= 1


async def test_duplicates_within_and_across_batches_have_one_effect(pool: asyncpg.Pool) -> None:
    publisher = RecordingPublisher()
    committer = BatchCommitter(pool, publisher, Metrics(), "test", batch_max=50)
    handler = Ledger(batched=True)
    committer.start()
    try:
        first = await asyncio.gather(
            *(committer.submit(inbound("OK-DUP", "same-id"), handler) for _ in range(5))
        )
        later = await committer.submit(inbound("OK-DUP", "same-id"), handler)
    finally:
        await committer.stop()
    assert sorted(o.kind for o in first) == [
        "done",
        "duplicate",
        "duplicate",
        "duplicate",
        "duplicate",
    ]
    assert later.kind == "duplicate"
    assert await pool.fetchval("SELECT count(*) FROM seen") == 1
    assert len(publisher.sent) == 1


@pytest.mark.parametrize("batched", [False, True], ids=["one-by-one", "handle_many"])
async def test_when_the_first_copy_of_an_id_fails_the_next_copy_takes_its_place(
    pool: asyncpg.Pool, batched
) -> None:
    """Two messages with one id in a batch, the first refused: the second is handled (not
    dropped as a duplicate of something that had no effect), and the id stays claimed."""
    publisher = RecordingPublisher()
    committer = BatchCommitter(pool, publisher, Metrics(), "test", batch_max=50)
    handler = Ledger(batched)
    committer.start()
    try:
        outcomes = await asyncio.gather(
            committer.submit(inbound("BAD-first", "shared-id"), handler),
            committer.submit(inbound("OK-second", "shared-id"), handler),
            committer.submit(inbound("OK-third", "shared-id"), handler),
        )
    finally:
        await committer.stop()
    assert [o.kind for o in outcomes] == ["failed", "done", "duplicate"]
    assert [r["sku"] for r in await pool.fetch("SELECT sku FROM seen")] == ["OK-second"]
    assert len(publisher.sent) == 1
    assert await pool.fetchval("SELECT count(*) FROM inbox WHERE message_id = 'shared-id'") == 1


class Gate(Ledger):
    """Holds the first batch's transaction open until released; records each batch's size."""

    def __init__(self) -> None:
        super().__init__(batched=True)
        self.sizes: list[int] = []
        self.opened = asyncio.Event()
        self.release = asyncio.Event()

    async def _handle_many(
        self, inbounds: Sequence[Inbound], conn: Connection | None, now: datetime
    ) -> list[Sequence[Envelope]]:
        self.sizes.append(len(inbounds))
        if len(self.sizes) == 1:
            self.opened.set()
            await self.release.wait()
        return await super()._handle_many(inbounds, conn, now)

    async def handle(
        self, inbound: Inbound, conn: Connection | None, now: datetime
    ) -> Sequence[Envelope]:
        if not self.sizes:  # a batch of one goes through handle, not handle_many
            self.sizes.append(1)
            self.opened.set()
            await self.release.wait()
        return await super().handle(inbound, conn, now)


async def test_what_arrives_while_a_batch_commits_forms_one_next_batch(pool) -> None:
    """A batch is formed when a transaction slot is free, not before: messages that trickle
    in one at a time while the previous batch commits all go out in the next one (a batch
    formed early would hold only the first of them and leave the rest a cycle behind)."""
    committer = BatchCommitter(pool, RecordingPublisher(), Metrics(), "test", batch_max=50)
    handler = Gate()
    committer.start()
    try:
        first = asyncio.ensure_future(committer.submit(inbound("OK-0"), handler))
        await asyncio.wait_for(handler.opened.wait(), 5)
        later = []
        for n in range(1, 9):
            later.append(asyncio.ensure_future(committer.submit(inbound(f"OK-{n}"), handler)))
            await asyncio.sleep(0.01)  # one at a time, while the first batch is still open
        handler.release.set()
        outcomes = await asyncio.gather(first, *later)
    finally:
        await committer.stop()
    assert [o.kind for o in outcomes] == ["done"] * 9
    assert handler.sizes == [1, 8]
