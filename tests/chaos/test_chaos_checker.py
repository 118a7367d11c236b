"""The chaos checker has teeth: a history from a sequential model of the hub passes, and each
kind of anomaly the chaos test hunts for (loss, double effect, oversell, stale level, lost
figure) is reported. No services needed."""

from __future__ import annotations

import copy
from collections import Counter, defaultdict
from typing import Any

import orjson
import pytest
from chaos_checker import AuditEvent, History, Msg, OrderRow, Reservation, Verdict, check
from chaos_workload import LOCATIONS, SALES_CHANNELS, Workload, build


def simulate(w: Workload) -> History:
    """What a correct hub leaves behind, processing the inputs one at a time."""
    ledger: dict[tuple[str, str], tuple[int, int, int]] = {}
    held: Counter[str] = Counter()
    audit: list[AuditEvent] = []
    orders: dict[tuple[str, str], OrderRow] = {}
    reservations: dict[str, Reservation] = {}
    queues: dict[str, list[Msg]] = defaultdict(list)
    published: dict[tuple[str, str], tuple[int, int]] = {}
    erp_seen: list[Msg] = []
    inbox: list[str] = []
    notes = 0

    def figures(skus: list[str], cause: str) -> None:
        for sku in skus:
            net = sum(ledger.get((sku, loc), (0, 0, 0))[0] for loc in LOCATIONS)
            available = max(0, net - held[sku])
            for ch in SALES_CHANNELS:
                prev = published.get((ch, sku))
                if prev is None or prev[0] != available:
                    version = prev[1] + 1 if prev else 1
                    published[(ch, sku)] = (available, version)
                    data = {"sku": sku, "version": version, "available": available}
                    queues[ch].append(Msg(f"{cause}/{ch}/{sku}", "stock.availability", data))

    for inp in (*w.seed_inputs, *w.stream):
        if inp.message_id in inbox:
            continue
        inbox.append(inp.message_id)
        event = orjson.loads(inp.body)
        data: dict[str, Any] = event["data"]
        if event["type"] == "stock.level":
            key = (data["sku"], data["location"])
            if data["version"] > ledger.get(key, (0, 0, -1))[2]:
                ledger[key] = (data["on_hand"], 0, data["version"])
                audit.append(
                    AuditEvent(len(audit), "level", *key, 0, data["on_hand"], 0, data["version"])
                )
                figures([data["sku"]], inp.message_id)
        elif event["type"] == "order.placed":
            key = (data["channel"], data["channel_order_id"])
            if key in orders:
                notes += 1
                continue
            order = w.orders[key]
            oid = f"oid-{key[1]}"
            units = order.units()
            decision: dict[str, Any] = {"channel": key[0], "channel_order_id": key[1]}
            decision["order_id"] = oid
            if order.expect:
                orders[key] = OrderRow(oid, "rejected", None, None)
                decision["reasons"] = [{"code": order.expect}]
                queues[key[0]].append(Msg(f"d-{oid}", "order.rejected", decision))
                continue
            short = [
                s
                for s, q in units.items()
                if held[s] + q > sum(ledger.get((s, loc), (0, 0, 0))[0] for loc in LOCATIONS)
            ]
            if short:
                orders[key] = OrderRow(oid, "rejected", None, None)
                reservations[oid] = Reservation("refused", None, {}, {})
                decision["reasons"] = [{"code": "out_of_stock"}]
                queues[key[0]].append(Msg(f"d-{oid}", "order.rejected", decision))
                continue
            for s, q in sorted(units.items()):
                held[s] += q
                audit.append(AuditEvent(len(audit), "hold", s, None, q))
            erp = f"SO-{key[1]}"
            orders[key] = OrderRow(oid, "picking", oid, erp)
            reservations[oid] = Reservation("granted", erp, dict(units), dict(units))
            queues[key[0]].append(Msg(f"d-{oid}", "order.accepted", decision))
            lines = [{"sku": s, "quantity": q} for s, q in order.lines]
            so = {"order_id": oid, "lines": lines, "reservation_id": oid}
            erp_seen.append(Msg(f"so-{oid}", "salesorder.create", so))
            inbox.append(w.erp_answer_id(oid))
            queues["warehouse"].append(Msg(f"pick-{oid}", "pick.request", {"order_id": oid}))
            figures(sorted(units), inp.message_id)
    return History(
        inbox=inbox,
        outbox_left=0,
        orders=orders,
        reservations=reservations,
        ledger=ledger,
        published=published,
        order_duplicate_notes=notes,
        audit=audit,
        queues=dict(queues),
        erp_seen=erp_seen,
        dead=[],
    )


@pytest.fixture(scope="module")
def world() -> tuple[Workload, History]:
    w = build("t", 3, orders=300, levels=150, skus=6, stale=20)
    return w, simulate(w)


def verdict_of(world: tuple[Workload, History], change: Any) -> Verdict:
    w, h = world
    broken = copy.deepcopy(h)
    change(w, broken)
    return check(w, broken)


def test_the_workload_is_what_the_figures_say() -> None:
    w = build("x", 1)
    assert len(w.orders) == 2000
    assert {o.channel for o in w.orders.values()} == set(SALES_CHANNELS)
    assert w.kinds["level"] == 900 + 100 and w.kinds["level-stale"] > 50
    assert w.kinds["order-same-id"] > 40 and w.kinds["order-new-id"] > 40
    assert w.kinds["level-same-id"] > 10
    assert {o.expect for o in w.orders.values()} == {None, "price_mismatch", "unknown_sku"}
    demand = sum(sum(o.units().values()) for o in w.orders.values())
    supply = sum(lvl.on_hand for lvl in w.latest.values())
    assert demand > 1.5 * supply  # scarce: a unit sold twice would show


def test_a_correct_history_passes(world: tuple[Workload, History]) -> None:
    w, h = world
    v = check(w, h)
    assert v.violations == []
    assert v.figures["lost"] == 0
    assert v.figures["orders accepted"] > 20 and v.figures["orders rejected"] > 20
    assert v.figures["rejections by reason"]["out_of_stock"] > 10


def test_same_id_redeliveries_are_allowed_and_counted(world: tuple[Workload, History]) -> None:
    def redeliver(w: Workload, h: History) -> None:
        h.queues["shop-a"] = h.queues["shop-a"] * 2
        h.erp_seen = h.erp_seen + h.erp_seen[:3]

    v = verdict_of(world, redeliver)
    assert v.violations == []
    assert v.figures["channel-queue deliveries repeated (same id)"] == len(
        world[1].queues["shop-a"]
    )
    assert v.figures["salesorder.create deliveries repeated (same id)"] == 3


CASES = {
    "lost": (lambda w, h: h.inbox.pop(0), "inputs never handled"),
    "handled twice": (lambda w, h: h.inbox.append(h.inbox[5]), "more than once"),
    "parked": (lambda w, h: h.dead.append(Msg("x", "order.placed", {})), "parked"),
    "no decision": (
        lambda w, h: h.queues["shop-b"].remove(
            next(m for m in h.queues["shop-b"] if m.type == "order.accepted")
        ),
        "0 distinct decisions",
    ),
    "two decisions": (
        lambda w, h: h.queues["market-c"].append(
            Msg(
                "another-id",
                *next((m.type, m.data) for m in h.queues["market-c"] if m.type == "order.rejected"),
            )
        ),
        "2 distinct decisions",
    ),
    "two sales orders": (
        lambda w, h: h.erp_seen.append(Msg("so-again", "salesorder.create", h.erp_seen[0].data)),
        "more than one salesorder.create id",
    ),
    "no sales order": (lambda w, h: h.erp_seen.pop(), "never reached the ERP"),
    "double hold": (
        lambda w, h: h.audit.append(AuditEvent(10**6, "hold", h.audit[-1].sku, None, 10**4)),
        "a grant exceeded stock on hand",
    ),
    "stale applied": (
        lambda w, h: h.audit.append(AuditEvent(10**6, "level", "CH-000", "main", 0, 1, 0, 1)),
        "stale stock level applied",
    ),
    "ledger behind": (
        lambda w, h: h.ledger.update({("CH-001", "main"): (0, 0, 1)}),
        "not at the highest version",
    ),
    "figure lost": (
        lambda w, h: h.queues["shop-a"].remove(
            next(m for m in h.queues["shop-a"] if m.type == "stock.availability")
        ),
        "availability versions lost",
    ),
    "retry had an effect": (
        lambda w, h: setattr(h, "order_duplicate_notes", h.order_duplicate_notes - 1),
        "order-level duplicates noted",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_anomaly_is_reported(world: tuple[Workload, History], case: str) -> None:
    change, expect = CASES[case]
    v = verdict_of(world, change)
    assert any(expect in line for line in v.violations), v.violations
