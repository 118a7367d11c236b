"""Which channels see a changed figure after a stock event, and the messages that tell them.

A channel is told about a SKU (``stock.availability`` on ``hub.out.<channel>``) when the
route table sends ``stock.availability`` from the hub to it, it sells the SKU, and the figure
it would see (quantity and next date) differs from the last one it was sent, which is kept in
``stock_published`` in the same transaction as the change, so a re-run repeats nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from prometheus_client import Counter

from hub import outbox
from hub.bus import Envelope
from hub.db import Connection
from hub.outgoing import caused_envelope
from hub.stock import atp, ledger
from hub.stock.atp import Figure
from hub.topology import Names
from routes.config import HubConfig, StockRules
from routes.matching import RouteTable
from schemas.envelope import CloudEvent
from schemas.inventory import StockAvailability

if TYPE_CHECKING:
    from hub.runtime import Hub

AVAILABILITY = StockAvailability.TYPE
_CHANNELS_CACHE_LIMIT = 100_000  # SKUs; bounded so a huge catalogue cannot grow it forever


@dataclass(frozen=True)
class StockContext:
    """What stock code needs from the hub: config, routes, names and the clock."""

    config: HubConfig
    table: RouteTable
    names: Names
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    _channels_of: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False)

    @classmethod
    def from_hub(cls, hub: Hub) -> StockContext:
        """The context of a running hub (what handler factories pass on)."""
        return cls(hub.config, hub.table, hub.names, hub.clock)

    def rules(self, channel: str) -> StockRules:
        """The stock rules of a channel."""
        return self.config.channels[channel].stock

    def lead_time_days(self, channel: str) -> int:
        """Days from stock to the buyer in the channel's market (0 without a market)."""
        market = self.config.channels[channel].market
        return self.config.markets[market].lead_time_days if market in self.config.markets else 0

    def channels_for(self, sku: str) -> tuple[str, ...]:
        """Sales channels routed to receive this SKU's availability (fixed by the config, so
        remembered: every stock change asks it for every SKU it touches)."""
        found = self._channels_of.get(sku)
        if found is None:
            if len(self._channels_of) >= _CHANNELS_CACHE_LIMIT:
                self._channels_of.clear()
            found = self._channels_of[sku] = self._route(sku)
        return found

    def _route(self, sku: str) -> tuple[str, ...]:
        if not self.table.routed("hub", AVAILABILITY):
            return ()
        selling = set(self.table.channels_selling(sku))
        return tuple(
            c for c in self.table.destinations("hub", AVAILABILITY, skus=(sku,)) if c in selling
        )


async def compute(
    conn: Connection,
    ctx: StockContext,
    skus: Collection[str],
    channels_of: Callable[[str], Iterable[str]],
    today: date,
    *,
    with_kits: bool = True,
    lock: bool = True,
    snapshot: ledger.Snapshot | None = None,
) -> tuple[dict[tuple[str, str], Figure], ledger.Snapshot]:
    """Figures per (channel, SKU) from the live ledger; kits containing the SKUs included.

    ``snapshot``, when the caller already read it (locked) in this transaction, saves reading
    it again.
    """
    snap = snapshot if snapshot is not None else await ledger.snapshot(conn, skus, lock=lock)
    wanted = set(skus) | (set(snap.kits) if with_kits else set())
    out: dict[tuple[str, str], Figure] = {}
    for sku in sorted(wanted):
        if sku in snap.inactive:  # the ERP deactivated it: its orders are refused, show none
            for channel in channels_of(sku):
                out[(channel, sku)] = atp.Figure(0)
            continue
        for channel in channels_of(sku):
            out[(channel, sku)] = atp.figure(
                ctx.rules(channel), sku, snap.stocks, today, snap.kits.get(sku)
            )
    return out, snap


async def availability_changes(
    conn: Connection,
    ctx: StockContext,
    skus: Collection[str],
    cause: CloudEvent | Mapping[str, CloudEvent],
    *,
    force: bool = False,
    only_channel: str | None = None,
) -> list[Envelope]:
    """The messages of ``changes_by_sku`` without their SKUs."""
    found = await changes_by_sku(conn, ctx, skus, cause, force=force, only_channel=only_channel)
    return [envelope for _, envelope in found]


async def changes_by_sku(
    conn: Connection,
    ctx: StockContext,
    skus: Collection[str],
    cause: CloudEvent | Mapping[str, CloudEvent],
    *,
    force: bool = False,
    only_channel: str | None = None,
    oversold: Counter | None = None,
    snapshot: ledger.Snapshot | None = None,
    into_outbox: bool = False,
) -> list[tuple[str, Envelope]]:
    """``stock.availability`` for every channel whose figure of these SKUs (or kits) changed.

    Records what was sent, so call it inside the transaction that made the change. With
    ``force`` every figure is sent, changed or not (resync), to ``only_channel`` if given.
    ``cause`` is one event, or one per SKU for a batch (a kit takes the first one's).
    Each message comes with the SKU it is about. With ``oversold``, every SKU of ``skus``
    whose open reservations now exceed its stock on hand (the ERP sold units the hub had
    promised) is counted there. ``snapshot``: the locked snapshot of ``skus`` if the caller
    already has it. With ``into_outbox`` the messages are also written to the outbox, in the
    round trip that records them (they come back with their ``outbox_id``): the hot path.
    """
    if not skus:
        return []
    now = ctx.clock()

    def channels_of(sku: str) -> Iterable[str]:
        found = ctx.channels_for(sku)
        return found if only_channel is None else [c for c in found if c == only_channel]

    figures, snap = await compute(conn, ctx, skus, channels_of, now.date(), snapshot=snapshot)
    if oversold is not None:
        await _count_oversold(conn, skus, snap, oversold)
    changed: list[tuple[str, str, Figure, int]] = []
    for (channel, sku), fig in figures.items():
        prev = snap.published.get((channel, sku))
        if prev is None:
            changed.append((channel, sku, fig, 1))
        elif force or prev[:2] != (fig.available, fig.next_date):
            changed.append((channel, sku, fig, prev[2] + 1))
    if not changed:
        return []

    def cause_of(sku: str) -> CloudEvent:
        if isinstance(cause, CloudEvent):
            return cause
        return cause.get(sku) or next(iter(cause.values()))

    computed_at = now.isoformat()
    found = [
        (sku, _envelope(ctx, cause_of(sku), ch, sku, fig, v, now, computed_at))
        for ch, sku, fig, v in changed
    ]
    record = _record(changed, now)
    if not into_outbox:
        sql, args = record
        await conn.execute(sql, *args)
        return found
    ids = await outbox.write(conn, [envelope for _, envelope in found], along=record)
    return [
        (sku, envelope.in_outbox(outbox_id))
        for (sku, envelope), outbox_id in zip(found, ids, strict=True)
    ]


async def _count_oversold(
    conn: Connection, skus: Collection[str], snap: ledger.Snapshot, oversold: Counter
) -> None:
    """Count each SKU whose hub holds exceed what is left once the ERP's commitments are met.

    A net below zero with nothing held is the ERP's own backorder (it took the order over),
    not an oversell. Units a backorder holds beyond the stock are promised, not oversold, until
    stock arrives for them: from then on they are held stock like any other, so a later drop
    below them is an oversell (the units covered are recorded as such)."""
    covered: dict[str, int] = {}
    for sku in skus:
        stock = snap.stocks.get(sku)
        if stock is None:
            continue
        net = max(0, sum(stock.net_by_location.values()))
        backordered = min(stock.backordered, max(0, stock.reserved - net))
        if backordered < stock.backordered:
            covered[sku] = stock.backordered - backordered
        if stock.reserved - backordered > net:
            oversold.inc()
    if covered:
        await ledger.cover_backorders(conn, covered)


def _record(changed: list[tuple[str, str, Figure, int]], now: datetime) -> outbox.Along:
    """The upsert of ``stock_published`` that remembers what each channel is sent."""
    return (
        "INSERT INTO stock_published (channel, sku, available, next_date, version, published_at)"
        " SELECT c, s, a, d, v, $6 FROM unnest($1::text[], $2::text[], $3::int[], $4::date[],"
        " $5::bigint[]) AS t(c, s, a, d, v)"
        " ON CONFLICT (channel, sku) DO UPDATE SET available = EXCLUDED.available,"
        " next_date = EXCLUDED.next_date, version = EXCLUDED.version,"
        " published_at = EXCLUDED.published_at",
        (
            [c for c, _, _, _ in changed],
            [s for _, s, _, _ in changed],
            [f.available for _, _, f, _ in changed],
            [f.next_date for _, _, f, _ in changed],
            [v for _, _, _, v in changed],
            now,
        ),
    )


def _envelope(
    ctx: StockContext,
    cause: CloudEvent,
    channel: str,
    sku: str,
    fig: Figure,
    version: int,
    now: datetime,
    computed_at: str | None = None,
) -> Envelope:
    # The hot path of stock fan-out: the data is built as the schema's JSON directly (the
    # figures are the hub's own, already valid); a unit test holds it to the schema.
    listed_as = ctx.table.channel_sku(channel, sku)
    data = {
        "channel": channel,
        "sku": listed_as,
        "available": fig.available,
        "next_available_date": fig.next_date.isoformat() if fig.next_date else None,
        "computed_at": computed_at or now.isoformat(),
        "version": version,
    }
    return caused_envelope(
        ctx.names,
        channel,
        cause,
        key=f"availability/{channel}/{sku}/{version}",
        type=AVAILABILITY,
        subject=listed_as,
        time=now,
        data=data,
        dataschemaversion=StockAvailability.SCHEMA_VERSION,
    )


def figures_by_sku(figures: Mapping[tuple[str, str], Figure], channel: str) -> dict[str, Figure]:
    """One channel's figures keyed by SKU."""
    return {sku: fig for (ch, sku), fig in figures.items() if ch == channel}
