"""Atomic stock reservations for the order flow: all lines or none, never more than there is
(a backorder holds every line in full, the units beyond the stock marked backordered).

Call these inside the caller's transaction (an orders handler's savepoint); they lock ledger
rows of the SKUs involved in SKU order (``SELECT ... FOR UPDATE``), so two orders racing for
the last units are serialised per SKU and exactly the available units are granted (beyond
them, only a backorder holds, and says so). The pool is SKU-wide: sum over every location of
(on hand - ERP committed) - open hub reservations; a channel that counts only some locations
is also held to the net there less every open hold.
A kit line reserves its components. Each reservation id has one answer: asking again returns
the first result unchanged, so a redelivered order reserves once.

Hand-over to the ERP: ``confirm`` records the ERP's sales order number. The hub keeps holding
the units until a ``stock.level`` arrives whose ``included_order_ids`` names that order (its
``committed`` figure now counts it); applying that level and dropping the hold happen in one
transaction, so no unit is counted twice or not at all. A source that names no orders (a
warehouse, a file feed, Odoo) counts them out when they leave: ``mark_shipped`` records the
carrier's shipment, and the first level of the SKU measured after it ends the hold on them.
After each call, the caller publishes ``availability_changes(conn, ctx, skus, cause)`` for
the SKUs (see ``reservation_skus``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import orjson

from hub.db import Connection
from hub.stock import ledger


@dataclass(frozen=True)
class ReservationResult:
    """The answer to a reservation: granted lines, or per-SKU (requested, available) shortages."""

    granted: bool
    shortages: dict[str, tuple[int, int]] = field(default_factory=dict)
    lines: tuple[tuple[str, int], ...] = ()
    held: tuple[str, ...] = ()  # the physical SKUs whose units it holds (kits: components)


@dataclass(frozen=True)
class ReservationRequest:
    """One reservation asked for: its id, who asks, and the units per SKU."""

    reservation_id: str
    channel: str
    order_ref: str
    lines: Sequence[tuple[str, int]]
    allow_partial: bool = False
    locations: Collection[str] | None = None  # the channel's; None: every location
    max_backordered: int | None = None
    """With ``allow_partial``: taken only while at most this many units of a part are
    promised beyond the stock, this backorder included (every channel's open backorders and
    those the ERP has taken over); None: no limit."""
    incoming_until: date | None = None
    """With ``allow_partial``: taken only while every hold on a part stays within its net
    units at ``locations`` plus the receipts expected there by this date, as the figure of a
    channel that sells incoming stock (``incoming_within_days``) counts them."""

    def wanted(self) -> dict[str, int]:
        """Units per SKU, in SKU order (lines of the same SKU add up); refuses empty or <= 0."""
        units: Counter[str] = Counter()
        for sku, qty in self.lines:
            if qty <= 0:
                raise ValueError(f"line {sku}: quantity must be positive, got {qty}")
            units[sku] += qty
        if not units:
            raise ValueError("a reservation needs at least one line")
        return dict(sorted(units.items()))


async def reserve(
    conn: Connection,
    *,
    reservation_id: str,
    channel: str,
    order_ref: str,
    lines: Sequence[tuple[str, int]],
    allow_partial: bool = False,
    locations: Collection[str] | None = None,
) -> ReservationResult:
    """Hold stock for all lines, exactly once (with ``allow_partial``, a backorder: every line in
    full, what is not free as backordered); with ``locations``, only from units there (the
    locations the channel's figure counts)."""
    request = ReservationRequest(
        reservation_id, channel, order_ref, lines, allow_partial, locations
    )
    [result] = await reserve_many(conn, [request])
    return result


async def reserve_many(
    conn: Connection, requests: Sequence[ReservationRequest]
) -> list[ReservationResult]:
    """Many reservations in two round trips, granted in the order given.

    The database locks the SKUs and says what is free (``stock_reserve_prepare``); the
    decisions are made here, first come first served, and written in one statement.
    """
    if not requests:
        return []
    wanted = [r.wanted() for r in requests]
    raw = await conn.fetchval(
        "SELECT stock_reserve_prepare($1::text[], $2::text[])",
        sorted({r.reservation_id for r in requests}),
        sorted({sku for units in wanted for sku in units}),
    )
    state = orjson.loads(raw)
    known = {rid: _answer(doc) for rid, doc in state["known"].items()}
    kits: dict[str, dict[str, int]] = state["kits"]
    nets: dict[str, dict[str, int]] = state["nets"]
    held: dict[str, int] = state["held"]
    free = {
        sku: max(0, sum(by_location.values()) - held.get(sku, 0))
        for sku, by_location in nets.items()
    }
    taken: Counter[str] = Counter()  # what this batch's reservations hold so far
    beyond = await _promised_beyond(conn, requests, kits, nets)
    receipts = await _receipts(conn, requests, kits)
    results: list[ReservationResult] = []
    rows: list[dict[str, object]] = []
    lines: tuple[list[str], list[str], list[int], list[int]] = ([], [], [], [])
    for request, units in zip(requests, wanted, strict=True):
        answer = known.get(request.reservation_id)
        if answer is None:
            if request.locations is not None:
                local = _local_free(units, kits, request.locations, nets, held, taken)
            else:
                local = None
            limit = request.max_backordered if request.allow_partial else None
            room = _room(request, units, kits, nets, held, taken, receipts)
            answer, holds, short = _decide(
                units, kits, free, request.allow_partial, local, limit, beyond, room
            )
            taken.update(holds)
            known[request.reservation_id] = answer
            rows.append(_row(request, units, answer))
            for sku, qty in holds.items():
                lines[0].append(request.reservation_id)
                lines[1].append(sku)
                lines[2].append(qty)
                lines[3].append(short.get(sku, 0))
        results.append(answer)
    if rows:
        await conn.execute(_WRITE, orjson.dumps(rows).decode(), *lines)
    return results


# The new reservations with their answers, and the units the granted ones hold.
_WRITE = """
WITH answered AS (
    INSERT INTO stock_reservations (reservation_id, channel, order_ref, state, lines,
                                    granted_lines, shortages)
    SELECT id, channel, ref, state, lines, granted, shortages
    FROM jsonb_to_recordset($1::jsonb) AS t(id text, channel text, ref text, state text,
                                            lines jsonb, granted jsonb, shortages jsonb)
)
INSERT INTO stock_reservation_lines (reservation_id, sku, quantity, backordered)
SELECT * FROM unnest($2::text[], $3::text[], $4::int[], $5::int[])
"""


# Units beyond the stock that open hub backorders hold, per physical SKU.
_BACKORDERED = """
SELECT sku, sum(backordered)::int AS units FROM stock_reservation_lines
WHERE active AND backordered > 0 AND sku = ANY($1::text[])
GROUP BY sku
"""


async def _promised_beyond(
    conn: Connection,
    requests: Sequence[ReservationRequest],
    kits: Mapping[str, Mapping[str, int]],
    nets: Mapping[str, Mapping[str, int]],
) -> Counter[str] | None:
    """Units per part promised beyond the stock now, when some request has a backorder
    limit: what open hub backorders hold beyond it, plus what the ERP has promised beyond it
    (a net below zero once it took orders over). Read under the SKU locks."""
    if not any(r.allow_partial and r.max_backordered is not None for r in requests):
        return None
    parts = sorted(
        {part for r in requests for sku in r.wanted() for part in (kits.get(sku) or {sku: 1})}
    )
    beyond: Counter[str] = Counter(
        {part: max(0, -sum(nets.get(part, {}).values())) for part in parts}
    )
    for row in await conn.fetch(_BACKORDERED, parts):
        beyond[row["sku"]] += row["units"]
    return beyond


# Receipts expected by a date, per physical SKU and location, with their dates.
_RECEIPTS = """
SELECT sku, location, expected_date, quantity FROM stock_incoming
WHERE sku = ANY($1::text[]) AND expected_date <= $2
"""


async def _receipts(
    conn: Connection,
    requests: Sequence[ReservationRequest],
    kits: Mapping[str, Mapping[str, int]],
) -> list[tuple[str, str, date, int]]:
    """The receipts the requests that sell incoming stock may count on (read under the SKU
    locks); none when no request does."""
    dated = [r for r in requests if r.allow_partial and r.incoming_until is not None]
    if not dated:
        return []
    parts = sorted(
        {part for r in dated for sku in r.wanted() for part in (kits.get(sku) or {sku: 1})}
    )
    until = max(r.incoming_until for r in dated if r.incoming_until is not None)
    rows = await conn.fetch(_RECEIPTS, parts, until)
    return [(r["sku"], r["location"], r["expected_date"], r["quantity"]) for r in rows]


def _room(
    request: ReservationRequest,
    units: Mapping[str, int],
    kits: Mapping[str, Mapping[str, int]],
    nets: Mapping[str, Mapping[str, int]],
    held: Mapping[str, int],
    taken: Mapping[str, int],
    receipts: Sequence[tuple[str, str, date, int]],
) -> dict[str, int] | None:
    """For a request that sells incoming stock, the units of each part it may hold: as the
    channel's figure counts them, net units at its locations plus the receipts due there by
    ``incoming_until``, less every hold (this batch's included); None for any other."""
    until = request.incoming_until
    if not request.allow_partial or until is None:
        return None

    def here(location: str) -> bool:
        return request.locations is None or location in request.locations

    room: dict[str, int] = {}
    for sku in units:
        for part in kits.get(sku) or {sku: 1}:
            net = _net_at(nets, part, request.locations)
            due = sum(
                quantity
                for sku_, location, expected, quantity in receipts
                if sku_ == part and expected <= until and here(location)
            )
            room[part] = net + due - held.get(part, 0) - taken.get(part, 0)
    return room


def _net_at(
    nets: Mapping[str, Mapping[str, int]], part: str, locations: Collection[str] | None
) -> int:
    """A part's net units at these locations (all when None)."""
    return sum(n for loc, n in nets.get(part, {}).items() if locations is None or loc in locations)


def _local_free(
    units: Mapping[str, int],
    kits: Mapping[str, Mapping[str, int]],
    locations: Collection[str],
    nets: Mapping[str, Mapping[str, int]],
    held: Mapping[str, int],
    taken: Mapping[str, int],
) -> dict[str, int]:
    """Per physical SKU, what a channel counting only ``locations`` may still take: their net
    units less every open reservation, as the figure the channel is shown counts them."""
    parts = {part for sku in units for part in (kits.get(sku) or {sku: 1})}
    return {
        part: max(
            0,
            _net_at(nets, part, locations) - held.get(part, 0) - taken.get(part, 0),
        )
        for part in parts
    }


def _decide(
    units: dict[str, int],
    kits: dict[str, dict[str, int]],
    free: dict[str, int],
    allow_partial: bool,
    local: Mapping[str, int] | None = None,
    limit: int | None = None,
    beyond: Counter[str] | None = None,
    room: Mapping[str, int] | None = None,
) -> tuple[ReservationResult, dict[str, int], dict[str, int]]:
    """All lines or none, or with ``allow_partial`` (a backorder) every line in full, the
    units beyond what is free held as backordered; a kit takes components.

    A backorder holds what it will need, so units that arrive later (a receipt) go to it and
    not to another channel before the ERP counts the order. ``local`` caps a part at what the
    channel's locations have left. A backorder that would take a part's units promised
    beyond the stock (``beyond``) over ``limit``, or that would hold more of a part than its
    ``room`` (a channel selling incoming stock), is refused whole. Takes the units it holds
    out of ``free`` (and adds what it backorders to ``beyond``), so the next reservation sees
    what is left; returns the answer, the units held and those backordered.
    """
    holds: Counter[str] = Counter()  # what is left of a part is its free units minus these
    granted: list[tuple[str, int]] = []
    shortages: dict[str, tuple[int, int]] = {}
    for sku, qty in units.items():
        parts = kits.get(sku) or {sku: 1}
        can = max(
            0, min((_cap(free, local, part) - holds[part]) // per for part, per in parts.items())
        )
        take = qty if allow_partial else min(can, qty)
        if can < qty:
            shortages[sku] = (qty, can)
        if take > 0:
            granted.append((sku, take))
            for part, per in parts.items():
                holds[part] += take * per
    if granted and (allow_partial or not shortages):
        available = {part: max(0, _cap(free, local, part)) for part in holds}
        short = {part: held - available[part] for part, held in holds.items()}
        short = {part: units for part, units in short.items() if units > 0}
        over_room = room is not None and any(n > room.get(p, 0) for p, n in holds.items())
        if over_room or _over_limit(short, limit, beyond):
            return ReservationResult(False, shortages), {}, {}
        if beyond is not None:
            beyond.update(short)
        for part, held in holds.items():
            free[part] = free.get(part, 0) - held
        result = ReservationResult(True, shortages, tuple(granted), tuple(sorted(holds)))
        return result, holds, short
    return ReservationResult(False, shortages), {}, {}


def _over_limit(short: Mapping[str, int], limit: int | None, beyond: Counter[str] | None) -> bool:
    """Whether backordering ``short`` would take a part's units promised beyond the stock
    over the channel's limit."""
    if limit is None or beyond is None:
        return False
    return any(beyond[part] + n > limit for part, n in short.items())


def _cap(free: Mapping[str, int], local: Mapping[str, int] | None, part: str) -> int:
    """The units of a part free to this reservation: overall, and at its channel's locations."""
    overall = free.get(part, 0)
    return overall if local is None else min(overall, local.get(part, 0))


def _answer(doc: dict[str, object]) -> ReservationResult:
    """The answer given the first time, from its stored row."""
    shortages = doc["shortages"]
    granted = doc["granted"]
    held = doc["held"]
    assert isinstance(shortages, dict) and isinstance(granted, list) and isinstance(held, list)
    return ReservationResult(
        doc["state"] != "refused",
        {sku: (pair[0], pair[1]) for sku, pair in shortages.items()},
        tuple((sku, qty) for sku, qty in granted),
        tuple(held),
    )


def _row(
    request: ReservationRequest, units: dict[str, int], answer: ReservationResult
) -> dict[str, object]:
    """The reservation's row, with its answer, as ``_WRITE`` reads it."""
    return {
        "id": request.reservation_id,
        "channel": request.channel,
        "ref": request.order_ref,
        "state": "granted" if answer.granted else "refused",
        "lines": [[sku, qty] for sku, qty in units.items()],
        "granted": [list(line) for line in answer.lines],
        "shortages": {sku: list(pair) for sku, pair in answer.shortages.items()},
    }


async def release(conn: Connection, reservation_id: str) -> bool:
    """Give a granted reservation's held units back; False if unknown or already released."""
    state = await conn.fetchval(
        "UPDATE stock_reservations SET state = 'released', updated_at = now()"
        " WHERE reservation_id = $1 AND state = 'granted' RETURNING state",
        reservation_id,
    )
    if state is None:
        return False
    await ledger.lock_skus(conn, await reservation_skus(conn, reservation_id))
    await conn.execute(
        "UPDATE stock_reservation_lines SET active = false WHERE reservation_id = $1 AND active",
        reservation_id,
    )
    return True


async def keep_only(conn: Connection, reservation_id: str, lines: Mapping[str, int]) -> list[str]:
    """Hold no more than the units of ``lines`` (SKU -> units, kits as their components): what
    part of an order is cancelled gives its units back, what already left stays held until the
    ERP counts it or a level counts it out of on hand. The physical SKUs whose holds it
    changed (none if it held nothing)."""
    skus = await reservation_skus(conn, reservation_id)
    await ledger.lock_skus(conn, skus)
    keep = await _physical(conn, lines)
    # ``lines`` count every unit that left, those a level counted out (no longer held) too.
    changed = await conn.fetch(
        "UPDATE stock_reservation_lines AS l SET"
        " quantity = CASE WHEN n.held > 0 THEN least(l.quantity, n.held) ELSE l.quantity END,"
        " backordered = CASE WHEN n.held > 0 THEN greatest(0, l.backordered"
        " - (l.quantity - least(l.quantity, n.held))) ELSE l.backordered END,"
        " shipped = CASE WHEN n.held > 0 THEN least(l.shipped, l.quantity, n.held)"
        " ELSE l.shipped END,"
        " active = n.held > 0"
        " FROM (SELECT o.sku, coalesce(k.keep, 0) - o.counted_out AS held"
        " FROM stock_reservation_lines AS o"
        " LEFT JOIN unnest($2::text[], $3::int[]) AS k(sku, keep) ON k.sku = o.sku"
        " WHERE o.reservation_id = $1) AS n"
        " WHERE l.reservation_id = $1 AND l.active AND l.sku = n.sku RETURNING l.sku",
        reservation_id,
        list(keep),
        list(keep.values()),
    )
    return [r["sku"] for r in changed]


async def mark_shipped(
    conn: Connection,
    reservation_id: str,
    lines: Mapping[str, int],
    at: datetime,
    location: str | None = None,
) -> None:
    """The units of ``lines`` (SKU -> units, kits as their components) left with the carrier
    (from ``location``, when known): their hold ends with the first level of their SKU (at
    that location) the source measures after ``at``, if the ERP has not counted the order
    before (``stock_apply_levels``)."""
    await ledger.lock_skus(conn, await reservation_skus(conn, reservation_id))
    left = await _physical(conn, lines)
    await conn.execute(
        "UPDATE stock_reservation_lines AS l SET shipped = least(l.quantity, l.shipped + k.units),"
        " shipped_at = $4, shipped_from = $5 FROM unnest($2::text[], $3::int[]) AS k(sku, units)"
        " WHERE l.reservation_id = $1 AND l.active AND l.sku = k.sku",
        reservation_id,
        list(left),
        list(left.values()),
        at,
        location,
    )


async def _physical(conn: Connection, lines: Mapping[str, int]) -> Counter[str]:
    """Units per physical SKU: a kit's as its components'."""
    kits = await conn.fetch(
        "SELECT kit_sku, component_sku, quantity FROM stock_kit_components"
        " WHERE kit_sku = ANY($1::text[])",
        list(lines),
    )
    parts: dict[str, dict[str, int]] = {}
    for row in kits:
        parts.setdefault(row["kit_sku"], {})[row["component_sku"]] = row["quantity"]
    units: Counter[str] = Counter()
    for sku, count in lines.items():
        for part, per in (parts.get(sku) or {sku: 1}).items():
            units[part] += count * per
    return units


async def owner(conn: Connection, reservation_id: str) -> tuple[str, bool] | None:
    """Who asked for a reservation, and whether an order holds it (then the order is cancelled,
    not the reservation released); None if unknown."""
    row = await conn.fetchrow(
        "SELECT r.channel, EXISTS (SELECT 1 FROM orders o WHERE o.order_id = r.reservation_id"
        " AND o.reservation_id = r.reservation_id) AS by_order"
        " FROM stock_reservations r WHERE r.reservation_id = $1",
        reservation_id,
    )
    return None if row is None else (str(row["channel"]), bool(row["by_order"]))


async def confirm(conn: Connection, reservation_id: str, erp_order_number: str) -> bool:
    """Record the ERP order that will take the units over; hold them until the ERP counts it."""
    ok = await conn.fetchval(
        "UPDATE stock_reservations SET erp_order_number = $2, updated_at = now()"
        " WHERE reservation_id = $1 AND state = 'granted'"
        " AND (erp_order_number IS NULL OR erp_order_number = $2) RETURNING true",
        reservation_id,
        erp_order_number,
    )
    if not ok:
        return False
    await ledger.lock_skus(conn, await reservation_skus(conn, reservation_id))
    # The ERP's level may have counted the order before we learnt its number.
    await conn.execute(
        "UPDATE stock_reservation_lines AS l SET active = false, handed_over_at = now()"
        " WHERE l.reservation_id = $1 AND l.active AND EXISTS (SELECT 1 FROM stock_ledger s"
        " WHERE s.sku = l.sku AND $2 = ANY(s.included_order_ids))",
        reservation_id,
        erp_order_number,
    )
    return True


async def reservation_skus(conn: Connection, reservation_id: str) -> list[str]:
    """The physical SKUs a reservation holds or held, for ``availability_changes``."""
    rows = await conn.fetch(
        "SELECT sku FROM stock_reservation_lines WHERE reservation_id = $1 ORDER BY sku",
        reservation_id,
    )
    return [r["sku"] for r in rows]
