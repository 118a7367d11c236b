"""Stock messages committed a batch at a time: what mixing them in one batch must not change.

A batch runs each handler's messages together (levels in one call, reservations in another),
so the batches here mix what that could get wrong: reservations around a level of their SKU,
copies of one id, ids claimed by an earlier batch, and a level its route refuses.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import orjson
import pytest

from hub import db
from hub.bus import Envelope, Publisher
from hub.committer import BatchCommitter, Outcome
from hub.errors import PermanentError
from hub.handlers import Handler, Inbound
from hub.metrics import Metrics
from hub.stock.availability import StockContext
from hub.stock.handlers import ReserveHandler, StockLevelHandler
from hub.topology import Names
from routes.loader import load_config
from routes.matching import RouteTable
from schemas.base import Message
from schemas.common import SkuQuantity
from schemas.envelope import CloudEvent
from schemas.inventory import ReserveStock, StockAvailability, StockLevel

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).parents[1] / "fixtures" / "stock" / "hub.yaml"
AVAILABILITY = StockAvailability.TYPE


class Recording(Publisher):
    """The publisher's port, keeping what it was given (the broker is not under test)."""

    def __init__(self) -> None:
        super().__init__("amqp://unused", 1.0)
        self.sent: list[Envelope] = []

    async def publish_many(self, envelopes: Sequence[Envelope]) -> None:
        self.sent.extend(envelopes)


def inbound(message: Message, source: str = "erp", event_id: str | None = None) -> Inbound:
    event = CloudEvent(
        id=event_id or str(uuid.uuid4()),
        source=source,
        type=message.TYPE,
        time=datetime.now(UTC),
        data=message.model_dump(mode="json"),
    )
    return Inbound(event=event, message=message, routing_key=f"{source}.{message.TYPE}")


def level(sku: str, on_hand: int, version: int) -> StockLevel:
    return StockLevel(sku=sku, location="main", on_hand=on_hand, version=version)


class Stock:
    """The real stock handlers behind a real committer, fed one batch at a time."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        config = load_config(CONFIG)
        ctx = StockContext(config, RouteTable.from_config(config), Names("t"))
        self.metrics = Metrics()
        self.levels = StockLevelHandler(ctx, self.metrics)
        self.reserve = ReserveHandler(ctx)
        self.publisher = Recording()
        self.pool = pool

    async def batch(self, items: list[tuple[Inbound, Handler]]) -> list[Outcome]:
        """Queued before the committer starts, so they form one batch."""
        committer = BatchCommitter(self.pool, self.publisher, Metrics(), "test", batch_max=100)
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Outcome]] = []
        for item, handler in items:
            future: asyncio.Future[Outcome] = loop.create_future()
            futures.append(future)
            committer.enqueue(item, handler, (), future.set_result)
        committer.start()
        try:
            return list(await asyncio.gather(*futures))
        finally:
            await committer.stop()

    def figures(self) -> list[dict]:
        """The availability messages sent so far, in order."""
        sent = self.publisher.sent
        return [orjson.loads(e.body)["data"] for e in sent if e.message_type == AVAILABILITY]


@pytest.fixture
async def stock(isolated):
    pool = await db.prepare(isolated.database_url, 2)
    yield Stock(pool)
    await pool.close()


def hold(reservation_id: str, quantity: int) -> Inbound:
    command = ReserveStock(
        reservation_id=reservation_id,
        channel="webshop-nl",
        order_ref=f"O-{reservation_id}",
        lines=(SkuQuantity(sku="DESK-1", quantity=quantity),),
    )
    return inbound(command, source="webshop-nl")


async def test_reservations_around_a_level_of_their_sku_are_in_the_figures(stock: Stock) -> None:
    await stock.batch([(inbound(level("DESK-1", 100, 1)), stock.levels)])
    # The reservations run together, then the level: the figures go out in that order.
    outcomes = await stock.batch(
        [
            (hold("R-1", 30), stock.reserve),
            (inbound(level("DESK-1", 200, 2)), stock.levels),
            (hold("R-2", 10), stock.reserve),
        ]
    )
    assert [o.kind for o in outcomes] == ["done"] * 3
    nl = [f for f in stock.figures() if f["channel"] == "webshop-nl"]
    versions = [f["version"] for f in nl]
    assert versions == sorted(set(versions))  # each version once, sent in their order
    # The last figure counts all: 200 on hand, 40 held, a safety buffer of 2.
    assert nl[-1]["available"] == 158
    row = await stock.pool.fetchrow(
        "SELECT available, version FROM stock_published WHERE channel = 'webshop-nl'"
    )
    assert (row["available"], row["version"]) == (158, nl[-1]["version"])


async def test_copies_and_ids_already_claimed_apply_once(stock: Stock) -> None:
    first = inbound(level("LAMP-1", 10, 1))
    await stock.batch([(first, stock.levels)])
    again = inbound(level("LAMP-1", 99, 9), event_id=first.event.id)  # a replay of the id
    twin = inbound(level("LAMP-1", 20, 2))
    outcomes = await stock.batch(
        [(again, stock.levels), (twin, stock.levels), (twin, stock.levels)]
    )
    assert [o.kind for o in outcomes] == ["duplicate", "done", "duplicate"]
    on_hand, version = await stock.pool.fetchrow(
        "SELECT on_hand, version FROM stock_ledger WHERE sku = 'LAMP-1'"
    )
    assert (on_hand, version) == (20, 2)
    assert stock.metrics.stale_stock._value.get() == 0  # duplicates are not stale levels
    assert await stock.pool.fetchval("SELECT count(*) FROM inbox") == 2


async def test_a_refused_level_fails_alone_and_the_rest_apply(stock: Stock) -> None:
    outcomes = await stock.batch(
        [
            (inbound(level("DESK-1", 5, 1)), stock.levels),
            (inbound(level("LAMP-1", 6, 1), source="webshop-nl"), stock.levels),  # no route
            (inbound(level("CHAIR-1", 7, 1)), stock.levels),
        ]
    )
    assert [o.kind for o in outcomes] == ["done", "failed", "done"]
    assert isinstance(outcomes[1].error, PermanentError)
    rows = await stock.pool.fetch("SELECT sku, on_hand FROM stock_ledger ORDER BY sku")
    assert [(r["sku"], r["on_hand"]) for r in rows] == [("CHAIR-1", 7), ("DESK-1", 5)]
    assert {f["sku"] for f in stock.figures()} == {"CHAIR-1", "DESK-1"}
