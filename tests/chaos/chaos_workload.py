"""What the chaos test sends: a catalog, then orders from three channels interleaved with stock
changes, with the duplicates real integrations produce. Pure and seeded, so a failing run can be
replayed with the same inputs (``CHAOS_SEED``)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

SALES_CHANNELS = ("shop-a", "shop-b", "market-c")
LOCATIONS = ("main", "store")
PRICE_LIST = "nl-retail"
UNKNOWN_SKU = "CH-UNKNOWN"
ADDRESS = {
    "name": "Anna de Vries",
    "line1": "Keizersgracht 1",
    "postal_code": "1015 CJ",
    "city": "Amsterdam",
    "country": "NL",
}


@dataclass(frozen=True)
class Input:
    """One message an adapter publishes to hub.in."""

    kind: str
    message_id: str
    routing_key: str
    body: bytes


@dataclass(frozen=True)
class PlannedOrder:
    """A distinct channel order; ``expect`` is the reason it must be rejected, if certain."""

    channel: str
    channel_order_id: str
    lines: tuple[tuple[str, int], ...]  # (sku, quantity), line ids L1, L2, ...
    expect: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.channel, self.channel_order_id

    def units(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for sku, qty in self.lines:
            out[sku] += qty
        return out


@dataclass(frozen=True)
class Level:
    """One absolute stock figure the ERP reports."""

    sku: str
    location: str
    version: int
    on_hand: int


@dataclass
class Workload:
    """Everything the test sends and what it knows about it beforehand."""

    run: str
    skus: tuple[str, ...]
    prices: dict[str, Decimal]
    seed_inputs: list[Input] = field(default_factory=list)
    stream: list[Input] = field(default_factory=list)
    orders: dict[tuple[str, str], PlannedOrder] = field(default_factory=dict)
    latest: dict[tuple[str, str], Level] = field(default_factory=dict)  # highest version sent
    kinds: Counter[str] = field(default_factory=Counter)

    def input_ids(self) -> set[str]:
        """Every distinct message id the test itself publishes."""
        return {i.message_id for i in (*self.seed_inputs, *self.stream)}

    def erp_answer_id(self, order_id: str) -> str:
        """The id the ERP responder gives its salesorder.created: one per order, ever."""
        return f"{self.run}-erp-{order_id}"


def _event(
    message_id: str, source: str, type_: str, data: dict[str, Any], subject: str | None = None
) -> bytes:
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": message_id,
        "source": source,
        "type": type_,
        "time": datetime.now(UTC).isoformat(),
        "data": data,
    }
    if subject:
        body["subject"] = subject
    return orjson.dumps(body)


def erp_input(kind: str, message_id: str, type_: str, data: dict[str, Any]) -> Input:
    """An input the ERP publishes (products, prices, stock, sales order answers)."""
    return Input(kind, message_id, f"erp.{type_}", _event(message_id, "erp", type_, data))


def level_input(kind: str, message_id: str, level: Level) -> Input:
    data = {
        "sku": level.sku,
        "location": level.location,
        "on_hand": level.on_hand,
        "version": level.version,
    }
    return erp_input(kind, message_id, "stock.level", data)


def order_input(
    kind: str, message_id: str, order: PlannedOrder, prices: dict[str, Decimal]
) -> Input:
    lines = []
    for n, (sku, qty) in enumerate(order.lines, 1):
        price = prices.get(sku, Decimal("1.00"))
        if order.expect == "price_mismatch" and n == 1:
            price += Decimal("5.00")
        lines.append(
            {
                "line_id": f"L{n}",
                "sku": sku,
                "quantity": qty,
                "unit_price": {"amount": str(price), "currency": "EUR"},
            }
        )
    data = {
        "channel": order.channel,
        "channel_order_id": order.channel_order_id,
        "placed_at": datetime.now(UTC).isoformat(),
        "currency": "EUR",
        "lines": lines,
        "shipping_address": ADDRESS,
    }
    body = _event(message_id, order.channel, "order.placed", data, order.channel_order_id)
    return Input(kind, message_id, f"{order.channel}.order.placed", body)


def build(
    run: str,
    seed: int,
    *,
    orders: int = 2000,
    levels: int = 900,
    skus: int = 50,
    stale: int = 100,
    order_resend_same_id: float = 0.04,
    order_retry_new_id: float = 0.04,
    level_resend_same_id: float = 0.03,
) -> Workload:
    """The whole workload, deterministic for (run, seed).

    Stock is scarce on purpose: orders ask for about twice the units the ERP ever reports, so
    many are refused for stock and a unit sold twice would show. Each location's on-hand figure
    only rises with its version (restocks), so "reserved never exceeds on hand" holds at the end
    as well as at every step (the audit replay checks each step).
    """
    rng = random.Random(seed)
    sku_names = tuple(f"CH-{i:03d}" for i in range(skus))
    prices = {s: Decimal(10 + i) + Decimal("0.95") for i, s in enumerate(sku_names)}
    w = Workload(run, sku_names, prices)

    # The catalog and the opening stock, before the chaos starts.
    current: dict[tuple[str, str], Level] = {}
    for sku in sku_names:
        w.seed_inputs.append(
            erp_input(
                "product",
                f"{run}-p-{sku}",
                "product.upserted",
                {"sku": sku, "name": f"Chaos {sku}", "version": 1},
            )
        )
        w.seed_inputs.append(
            erp_input(
                "price",
                f"{run}-c-{sku}",
                "price.changed",
                {
                    "sku": sku,
                    "price_list": PRICE_LIST,
                    "price": {"amount": str(prices[sku]), "currency": "EUR"},
                    "vat_rate": "0.21",
                    "version": 1,
                },
            )
        )
        for loc in LOCATIONS:
            lvl = Level(sku, loc, 1, rng.randint(4, 14) if loc == "main" else rng.randint(0, 6))
            current[(sku, loc)] = lvl
            w.seed_inputs.append(level_input("level", f"{run}-l0-{sku}-{loc}", lvl))

    # The stream: orders and fresh stock levels interleaved at random.
    sent_levels: list[Level] = list(current.values())
    base: list[Input] = []
    left_orders, left_levels, n_order, n_level = orders, levels, 0, 0
    while left_orders or left_levels:
        if rng.random() < left_orders / (left_orders + left_levels):
            left_orders -= 1
            n_order += 1
            channel = rng.choice(SALES_CHANNELS)
            count = 1 if rng.random() < 0.6 else 2
            chosen = rng.sample(sku_names, count)
            roll = rng.random()
            expect = None
            if roll < 0.02:
                expect = "price_mismatch"
            elif roll < 0.03:
                expect = "unknown_sku"
                chosen[0] = UNKNOWN_SKU
            order = PlannedOrder(
                channel,
                f"{channel}-{run}-{n_order:05d}",
                tuple((s, 1 if rng.random() < 0.6 else 2) for s in chosen),
                expect,
            )
            w.orders[order.key] = order
            base.append(order_input("order", f"{run}-o-{n_order:05d}", order, prices))
        else:
            left_levels -= 1
            n_level += 1
            key = (rng.choice(sku_names), rng.choice(LOCATIONS))
            prev = current[key]
            lvl = Level(prev.sku, prev.location, prev.version + 1, prev.on_hand + rng.randint(0, 2))
            current[key] = lvl
            sent_levels.append(lvl)
            base.append(level_input("level", f"{run}-l-{n_level:05d}", lvl))
    # A few neighbours swapped: fresh versions arriving out of order.
    for _ in range(len(base) // 40):
        i = rng.randrange(len(base) - 1)
        base[i], base[i + 1] = base[i + 1], base[i]

    # Copies, inserted after their original: same id (at-least-once adapter), new id (webhook
    # retry of a channel order), and stale levels (an old version re-sent with a new id).
    extra: list[tuple[int, Input]] = []
    by_id = {i.message_id: i for i in base}
    for pos, inp in enumerate(base):
        later = pos + rng.randint(1, 300)
        if inp.kind == "order":
            if rng.random() < order_resend_same_id:
                extra.append(
                    (later, Input("order-same-id", inp.message_id, inp.routing_key, inp.body))
                )
            if rng.random() < order_retry_new_id:
                data = orjson.loads(inp.body)["data"]
                order = w.orders[(data["channel"], data["channel_order_id"])]
                extra.append(
                    (later, order_input("order-new-id", f"{inp.message_id}-retry", order, prices))
                )
        elif rng.random() < level_resend_same_id:
            extra.append((later, Input("level-same-id", inp.message_id, inp.routing_key, inp.body)))
    for n in range(stale):
        pos = rng.randrange(len(base) // 4, len(base))
        old = rng.choice(sent_levels[: len(sent_levels) * pos // len(base) or 1])
        if current[(old.sku, old.location)].version > old.version:
            extra.append((pos, level_input("level-stale", f"{run}-s-{n:04d}", old)))
    assert len(by_id) == len(base)
    stream = list(base)
    for pos, inp in sorted(extra, key=lambda e: e[0], reverse=True):
        stream.insert(min(pos, len(stream)), inp)
    w.stream = stream
    w.latest = current
    w.kinds = Counter(i.kind for i in (*w.seed_inputs, *w.stream))
    return w
