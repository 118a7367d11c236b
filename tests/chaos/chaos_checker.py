"""The Jepsen-style checker: what the run left in the database and on the queues, judged against
what the test sent. Pure functions over plain data, so the checker itself is tested with
histories that break each rule (``test_chaos_checker.py``)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from chaos_workload import SALES_CHANNELS, Workload

DECISIONS = ("order.accepted", "order.rejected")


@dataclass(frozen=True)
class Msg:
    """A message found on a queue: its AMQP message id and its CloudEvent."""

    message_id: str
    type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class OrderRow:
    order_id: str
    state: str
    reservation_id: str | None
    erp_order_number: str | None


@dataclass(frozen=True)
class Reservation:
    state: str
    erp_order_number: str | None
    lines: dict[str, int]  # sku -> units held (active or handed over)
    active: dict[str, int]  # sku -> units still held by the hub


@dataclass(frozen=True)
class AuditEvent:
    """One row of the audit trigger's log, in the order the SKU lock serialised them."""

    seq: int
    kind: str  # level | hold | unhold
    sku: str
    location: str | None = None
    qty: int = 0
    on_hand: int = 0
    committed: int = 0
    version: int = 0


@dataclass
class History:
    """Everything the run left behind, read after the hub stopped."""

    inbox: list[str]
    outbox_left: int
    orders: dict[tuple[str, str], OrderRow]
    reservations: dict[str, Reservation]
    ledger: dict[tuple[str, str], tuple[int, int, int]]  # (on_hand, committed, version)
    published: dict[tuple[str, str], tuple[int, int]]  # (channel, sku) -> (available, version)
    order_duplicate_notes: int
    audit: list[AuditEvent]
    queues: dict[str, list[Msg]]  # channel -> messages drained from hub.out.<channel>
    erp_seen: list[Msg]  # salesorder.create as the ERP responder received them
    dead: list[Msg]


@dataclass
class Verdict:
    violations: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def fail(self, what: str, examples: Iterable[Any] = ()) -> None:
        shown = list(examples)[:5]
        self.violations.append(f"{what}: {shown}" if shown else what)


def _by_id(msgs: Iterable[Msg]) -> tuple[dict[str, Msg], int]:
    """Messages by id and how many deliveries repeated an id already seen."""
    seen: dict[str, Msg] = {}
    repeats = 0
    for m in msgs:
        if m.message_id in seen:
            repeats += 1
        else:
            seen[m.message_id] = m
    return seen, repeats


def check(w: Workload, h: History) -> Verdict:
    """Every rule the run must keep; the verdict lists every breach, not just the first."""
    v = Verdict()
    accepted = {k for k, o in h.orders.items() if o.state != "rejected"}
    rejected = set(h.orders) - accepted
    order_id_of = {k: o.order_id for k, o in h.orders.items()}
    key_of = {o.order_id: k for k, o in h.orders.items()}

    # 1. Every input handled exactly once: the inbox holds each id once, nothing else.
    erp_ids = {w.erp_answer_id(m.data["order_id"]) for m in h.erp_seen}
    expected = w.input_ids() | erp_ids
    inbox = Counter(h.inbox)
    if missing := expected - set(inbox):
        v.fail(f"{len(missing)} inputs never handled (lost)", sorted(missing))
    if unknown := set(inbox) - expected:
        v.fail(f"{len(unknown)} inbox ids the test never sent", sorted(unknown))
    if twice := [i for i, n in inbox.items() if n > 1]:
        v.fail("inbox ids handled more than once", twice)
    if h.outbox_left:
        v.fail(f"{h.outbox_left} outbox rows never published")
    if h.dead:
        v.fail(f"{len(h.dead)} messages parked", [(m.message_id, m.type) for m in h.dead])
    v.figures["lost"] = len(missing)

    # 2. One order row per distinct channel order, no others.
    if missing_orders := set(w.orders) - set(h.orders):
        v.fail(f"{len(missing_orders)} channel orders without an order row", missing_orders)
    if extra_orders := set(h.orders) - set(w.orders):
        v.fail("order rows for orders never placed", extra_orders)
    if odd := {k: o.state for k, o in h.orders.items() if o.state not in {"picking", "rejected"}}:
        v.fail("orders not settled (accepted and confirmed by the ERP, or rejected)", odd.items())

    # 3. Exactly one decision per channel order, on its own channel's queue, matching the row.
    out_repeats = 0
    decisions: dict[tuple[str, str], list[Msg]] = defaultdict(list)
    reasons: dict[tuple[str, str], list[str]] = {}
    for channel in SALES_CHANNELS:
        msgs, repeats = _by_id(h.queues.get(channel, []))
        out_repeats += repeats
        for m in msgs.values():
            if m.type in DECISIONS:
                key = (m.data["channel"], m.data["channel_order_id"])
                if key[0] != channel:
                    v.fail("decision on another channel's queue", [(channel, key)])
                decisions[key].append(m)
                reasons[key] = [r["code"] for r in m.data.get("reasons", [])]
    for key in w.orders:
        got = decisions.get(key, [])
        if len(got) != 1:
            v.fail(f"{len(got)} distinct decisions for one order", [(key, [m.type for m in got])])
            continue
        want = "order.rejected" if key in rejected else "order.accepted"
        if key in h.orders and got[0].type != want:
            v.fail("decision contradicts the order row", [(key, got[0].type, h.orders[key].state)])
        if got[0].data.get("order_id") not in (None, order_id_of.get(key)):
            v.fail("decision names another order id", [key])
    if extra := set(decisions) - set(w.orders):
        v.fail("decisions for orders never placed", extra)

    # 4. Certain outcomes: invalid orders rejected for their reason, others for stock if at all.
    for key, order in w.orders.items():
        codes = reasons.get(key, [])
        if order.expect is not None and (key not in rejected or order.expect not in codes):
            v.fail("invalid order not rejected for its reason", [(key, order.expect, codes)])
        if order.expect is None and key in rejected and set(codes) != {"out_of_stock"}:
            v.fail("valid order rejected for something else than stock", [(key, codes)])

    # 5. One ERP sales order per accepted order: one message id, right content, none for others.
    erp_by_order: dict[str, set[str]] = defaultdict(set)
    erp_content: dict[str, Msg] = {}
    for m in h.erp_seen:
        erp_by_order[m.data["order_id"]].add(m.message_id)
        erp_content[m.data["order_id"]] = m
    _, erp_repeats = _by_id(h.erp_seen)
    accepted_ids = {order_id_of[k] for k in accepted}
    if two := [(key_of.get(o), ids) for o, ids in erp_by_order.items() if len(ids) > 1]:
        v.fail("orders with more than one salesorder.create id", two)
    if no_so := accepted_ids - set(erp_by_order):
        v.fail(f"{len(no_so)} accepted orders never reached the ERP", no_so)
    if so_for_rejected := set(erp_by_order) - accepted_ids:
        v.fail("sales orders for orders the hub did not accept", so_for_rejected)
    for order_id, m in erp_content.items():
        key = key_of.get(order_id)
        if key is None:
            continue
        lines = tuple((ln["sku"], ln["quantity"]) for ln in m.data["lines"])
        if lines != w.orders[key].lines or m.data["reservation_id"] != order_id:
            v.fail("sales order content differs from the order placed", [key])

    # 6. The warehouse got one pick request per confirmed order.
    picks, pick_repeats = _by_id(h.queues.get("warehouse", []))
    pick_ids: dict[str, set[str]] = defaultdict(set)
    for m in picks.values():
        pick_ids[m.data["order_id"]].add(m.message_id)
    if bad := [(key_of.get(o), len(ids)) for o, ids in pick_ids.items() if len(ids) != 1]:
        v.fail("orders with more than one pick request", bad)
    if no_pick := accepted_ids - set(pick_ids):
        v.fail(f"{len(no_pick)} confirmed orders without a pick request", no_pick)

    # 7. Reservations: one per accepted order holding exactly its units; refused ones hold none.
    held: Counter[str] = Counter()
    for key in accepted:
        o = h.orders[key]
        r = h.reservations.get(o.order_id)
        units = dict(w.orders[key].units()) if key in w.orders else {}
        if r is None or r.state != "granted" or o.reservation_id != o.order_id:
            v.fail("accepted order without a granted reservation", [key])
            continue
        if r.lines != units:
            v.fail("reservation holds other units than the order", [(key, r.lines, units)])
        if r.erp_order_number is None or r.erp_order_number != o.erp_order_number:
            v.fail("reservation not tied to the ERP sales order", [key])
        held.update(r.active)
    for key in rejected:
        r = h.reservations.get(h.orders[key].order_id)
        if r is not None and (r.state == "granted" or any(r.active.values())):
            v.fail("rejected order holds stock", [key])
    if orphans := set(h.reservations) - accepted_ids - {h.orders[k].order_id for k in rejected}:
        v.fail("reservations of no order", orphans)

    # 8. The ledger holds the highest version sent, and no unit is sold twice at the end.
    for key, lvl in w.latest.items():
        got = h.ledger.get(key)
        if got is None or (got[0], got[2]) != (lvl.on_hand, lvl.version):
            v.fail("ledger is not at the highest version sent", [(key, got, lvl)])
    if extra_rows := set(h.ledger) - set(w.latest):
        v.fail("ledger rows for SKUs never reported", extra_rows)
    net: Counter[str] = Counter()
    for (sku, _), (on_hand, committed, _) in h.ledger.items():
        net[sku] += on_hand - committed
    for sku in set(net) | set(held):
        if held[sku] > net[sku]:
            v.fail("more units reserved than on hand (sold twice)", [(sku, held[sku], net[sku])])

    # 9. The audit replay: at every grant, in lock order, holds never exceeded stock on hand;
    #    no stock level was ever applied over a newer one.
    v.figures["audit events"] = len(h.audit)
    replay_net: dict[str, dict[str, int]] = defaultdict(dict)
    replay_version: dict[tuple[str, str], int] = {}
    replay_held: Counter[str] = Counter()
    for e in sorted(h.audit, key=lambda e: e.seq):
        if e.kind == "level":
            assert e.location is not None
            before = replay_version.get((e.sku, e.location), -1)
            if e.version <= before:
                v.fail("stale stock level applied", [(e.sku, e.location, before, e.version)])
            replay_version[(e.sku, e.location)] = e.version
            replay_net[e.sku][e.location] = e.on_hand - e.committed
        elif e.kind == "hold":
            replay_held[e.sku] += e.qty
            stock = sum(replay_net[e.sku].values())
            if replay_held[e.sku] > stock:
                v.fail(
                    "a grant exceeded stock on hand", [(e.seq, e.sku, replay_held[e.sku], stock)]
                )
        elif e.kind == "unhold":
            replay_held[e.sku] -= e.qty
    if +replay_held != +held:
        v.fail("audit replay and reservation table disagree", [(+replay_held, +held)])

    # 10. Availability: every figure version reached its channel, none negative, and the last
    #     one each channel saw is what the final ledger gives (no rules in chaos.yaml).
    for channel in SALES_CHANNELS:
        msgs, _ = _by_id(h.queues.get(channel, []))
        versions: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
        last: dict[str, tuple[int, int]] = {}
        for m in msgs.values():
            if m.type != "stock.availability":
                continue
            sku, version, available = m.data["sku"], m.data["version"], m.data["available"]
            if available < 0:
                v.fail("negative availability published", [(channel, sku, available)])
            versions[sku][version].add(m.message_id)
            if version >= last.get(sku, (0, -1))[0]:
                last[sku] = (version, available)
        for sku in w.skus:
            pub = h.published.get((channel, sku))
            if pub is None:
                v.fail("no availability ever published", [(channel, sku)])
                continue
            seen = versions.get(sku, {})
            if set(seen) != set(range(1, pub[1] + 1)):
                lost = sorted(set(range(1, pub[1] + 1)) - set(seen))
                v.fail("availability versions lost on the way", [(channel, sku, lost)])
            if any(len(ids) > 1 for ids in seen.values()):
                v.fail("one availability version under two ids", [(channel, sku)])
            want = max(0, net[sku] - held[sku])
            if pub[0] != want or last.get(sku, (0, None))[1] != want:
                v.fail("channel's last figure is not the ledger's", [(channel, sku, pub, want)])

    # 11. Duplicates absorbed: each webhook-style retry (new id, same channel order) left one
    #     "duplicate" note and no effect.
    retries = w.kinds["order-new-id"]
    if h.order_duplicate_notes != retries:
        v.fail(f"{h.order_duplicate_notes} order-level duplicates noted, {retries} sent")

    reason_counts: Counter[str] = Counter()
    for key in rejected:
        reason_counts.update(set(reasons.get(key, [])))
    v.figures.update(
        {
            "orders accepted": len(accepted),
            "orders rejected": len(rejected),
            "rejections by reason": dict(sorted(reason_counts.items())),
            "units reserved": sum(held.values()),
            "units on hand at the end": sum(net.values()),
            "ERP sales orders": len(erp_by_order),
            "salesorder.create deliveries repeated (same id)": erp_repeats,
            "pick requests": len(picks),
            "channel-queue deliveries repeated (same id)": out_repeats + pick_repeats,
            "order-level duplicates absorbed": h.order_duplicate_notes,
        }
    )
    return v
