"""The line of messages waiting for a channel's rate limit, where stale stock figures drop out.

A marketplace that accepts 2 requests a second cannot take 50 stock updates for 3 SKUs; it
only needs the newest figure of each. While messages wait for a token they sit here, and a
newer ``stock.availability`` for a SKU takes the place of the older one still waiting (the
older is acked unsent and counted). At most one message per SKU is in flight, so a figure
never overtakes a newer one on the way to the channel, even while it is being retried; and a
figure no newer than the last one delivered (a late duplicate: ``hub.out`` is at-least-once)
is dropped rather than put stale stock back on sale.

Products and prices take their turn the same way, per SKU (and price list), by the ERP's
``version``: a retried price can no longer land after a newer one, and two versions of a new
product are never created side by side. Their stale versions are dropped whatever the
channel's ``coalesce_stock`` says (the hub forwards only the latest version of each, so an
older one is never wanted), but a version equal to the one delivered is sent again: that is
``hub catalog resync`` giving a channel its catalog once more.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from aio_pika.abc import AbstractIncomingMessage

from hub.delivery.recent import Recent
from schemas.catalog import PriceChanged, ProductUpserted
from schemas.envelope import CloudEvent
from schemas.inventory import StockAvailability

Order = tuple[int, float]
"""How new a figure is: its ``version``, then its ``computed_at`` (as a timestamp)."""

Key = tuple[str, ...]
"""What takes one turn at a time: the message type and the SKU (and price list)."""


@dataclass(eq=False)
class Item:
    """One message taken off the channel's queue, with what coalescing needs to know of it."""

    raw: AbstractIncomingMessage
    event: CloudEvent
    received: float
    key: Key | None = None
    order: Order = (0, 0.0)
    prior_attempts: int = 0

    @property
    def is_catalog(self) -> bool:
        """A product or price: stale versions drop out on every channel."""
        return self.key is not None and self.key[0] != StockAvailability.TYPE


def turn_key(event: CloudEvent) -> tuple[Key, Order] | None:
    """What a stock figure, product or price waits its turn behind, and how new it is; None for
    anything else (never held back or dropped)."""
    data = event.data
    sku, version = data.get("sku"), data.get("version")
    if not isinstance(sku, str) or not isinstance(version, int) or isinstance(version, bool):
        return None
    if event.type == StockAvailability.TYPE:
        return (event.type, sku), (version, _timestamp(data.get("computed_at")))
    if event.type == ProductUpserted.TYPE:
        return (event.type, sku), (version, 0.0)
    price_list = data.get("price_list")
    if event.type == PriceChanged.TYPE and isinstance(price_list, str):
        return (event.type, sku, price_list), (version, 0.0)
    return None


def _timestamp(value: object) -> float:
    """An ISO time as a timestamp, 0.0 when absent or unreadable (it then breaks no tie)."""
    if not isinstance(value, str):
        return 0.0
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return 0.0


class Backlog:
    """Messages waiting for a token, in arrival order, one per key in flight at a time.

    With ``coalesce`` an arrival replaces the older figure of its SKU still waiting (keeping
    its place in the line), and an arrival older than the one waiting or in flight, or no
    newer than the last delivered (remembered for the ``remember`` most recent keys), is
    dropped. Dropped items are returned to the caller, which acks them. Without ``coalesce``
    no stock figure is dropped, but a SKU's figures still go one at a time, in order.
    Products and prices are always coalesced, and only an older version than the delivered
    one is dropped (an equal one is a resync).
    """

    def __init__(self, coalesce: bool, remember: int = 100_000) -> None:
        self.coalesce = coalesce
        self._line: dict[int, Item] = {}
        self._slot_of: dict[Key, int] = {}
        self._busy: dict[Key, Item] = {}
        # Stock figures and catalog versions remembered apart: a large catalog resync must not
        # push out the figures that keep a late stock duplicate from going out.
        self._delivered: Recent[Key, Order] = Recent(remember)
        self._delivered_catalog: Recent[Key, Order] = Recent(remember)
        self._next_slot = 0
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._line)

    @property
    def in_flight(self) -> int:
        """Keys with a message on its way to the channel (or held for a retry)."""
        return len(self._busy)

    def _coalesces(self, item: Item) -> bool:
        """Whether older messages of the item's key drop out for it."""
        return item.key is not None and (self.coalesce or item.is_catalog)

    def _memory(self, item: Item) -> Recent[Key, Order]:
        """Where the last delivered version of the item's key is remembered."""
        return self._delivered_catalog if item.is_catalog else self._delivered

    def _stale(self, item: Item, last: Order) -> bool:
        """Whether the item is no newer than the last one delivered, as far as it matters."""
        return item.order < last if item.is_catalog else item.order <= last

    def add(self, item: Item) -> list[Item]:
        """Queue an arrival; returns the items it made redundant, to ack as coalesced."""
        key = item.key
        coalesces = self._coalesces(item)
        if coalesces and key is not None:
            flying = self._busy.get(key)
            if flying is not None and item.order < flying.order:
                return [item]
            last = self._memory(item).get(key)
            if last is not None and self._stale(item, last):
                return [item]
            slot = self._slot_of.get(key)
            if slot is not None:
                waiting = self._line[slot]
                if item.order < waiting.order:
                    return [item]
                self._line[slot] = item  # equal order: keep the later delivery (a redelivery)
                return [waiting]
        slot = self._next_slot
        self._next_slot += 1
        self._line[slot] = item
        if coalesces and key is not None:
            self._slot_of[key] = slot
        self._changed.set()
        return []

    def _first_ready(self) -> tuple[int, Item] | None:
        for slot, item in self._line.items():
            if item.key is None or item.key not in self._busy:
                return slot, item
        return None

    async def wait_ready(self) -> None:
        """Wait until some item may go (its key is not in flight); it stays in the line."""
        while self._first_ready() is None:
            self._changed.clear()
            await self._changed.wait()

    def take(self) -> Item | None:
        """Take the first item that may go and mark its key in flight; None when none may."""
        found = self._first_ready()
        if found is None:
            return None
        slot, item = found
        del self._line[slot]
        if item.key is not None:
            if self._slot_of.get(item.key) == slot:
                del self._slot_of[item.key]
            self._busy[item.key] = item
        return item

    def superseded(self, item: Item) -> bool:
        """Whether a newer message of the item's key is waiting: retrying this one is wasted."""
        if not self._coalesces(item) or item.key is None:
            return False
        slot = self._slot_of.get(item.key)
        return slot is not None and self._line[slot].order > item.order

    def done(self, item: Item, delivered: bool = False) -> None:
        """The item is settled (delivered, parked or handed back): its key may go again."""
        key = item.key
        if key is None:
            return
        if delivered and self._coalesces(item):
            memory = self._memory(item)
            last = memory.get(key)
            memory.put(key, item.order if last is None else max(last, item.order))
        if self._busy.get(key) is item:
            del self._busy[key]
            self._changed.set()

    def clear(self) -> list[Item]:
        """Empty the line (on stop); the unacked items go back to the queue with the channel."""
        items = list(self._line.values())
        self._line.clear()
        self._slot_of.clear()
        return items
