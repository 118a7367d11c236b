"""``hub dlq``: list, inspect, replay and purge parked messages (sweeping hub.dead first)."""

from __future__ import annotations

import asyncio
import getpass
import re
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import orjson
import typer
from rich.console import Console
from rich.table import Table

from adapters.registry import native_types_for
from hub.dlq.service import ParkingLot, parking_lot
from hub.dlq.store import Selection
from hub.settings import Settings
from hub.topology import Names

dlq_app = typer.Typer(no_args_is_help=True, help="The parking lot: parked messages and replay.")
console = Console()
T = TypeVar("T")

_RELATIVE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

TypeOpt = Annotated[str | None, typer.Option("--type", help="Error type, e.g. schema_violation.")]
ChannelOpt = Annotated[str | None, typer.Option("--channel", help="Channel (routing key prefix).")]
SinceOpt = Annotated[str | None, typer.Option("--since", help="ISO time or age like 30m, 2h, 7d.")]
UntilOpt = Annotated[
    str | None, typer.Option("--until", help="Parked before: ISO time or age like 30m, 2h, 7d.")
]
MessageTypeOpt = Annotated[
    str | None, typer.Option("--message-type", help="Message type, e.g. order.placed.")
]


def parse_since(
    text: str | None, now: datetime | None = None, option: str = "--since"
) -> datetime | None:
    """``--since`` or ``--until`` as a time: an ISO timestamp, or an age such as ``30m``."""
    if not text:
        return None
    match = _RELATIVE.match(text.strip())
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return (now or datetime.now(UTC)) - delta
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{option} {text!r}: use ISO time or 30m / 2h / 7d") from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def actor() -> str:
    """Who ran the command, for the audit line."""
    return f"{getpass.getuser()}@{socket.gethostname()}"


def _run(action: Callable[[ParkingLot], Awaitable[T]]) -> T:
    settings = Settings()

    async def go() -> T:
        names = Names(settings.name_prefix)
        async with parking_lot(settings.database_url, settings.broker_url, names) as lot:
            swept = await lot.sweep()
            if swept:
                console.print(f"moved {swept} message(s) from {names.dead_queue} into the store")
            return await action(lot)

    return asyncio.run(go())


def _selection(
    ids: list[int] | None,
    error_type: str | None,
    channel: str | None,
    since: str | None,
    message_type: str | None = None,
    until: str | None = None,
) -> Selection:
    return Selection(
        tuple(ids or ()),
        error_type,
        channel,
        parse_since(since),
        message_type=message_type,
        until=parse_since(until, option="--until"),
        native_types=native_types_for(message_type) if message_type else (),
    )


_NO_FILTER = "name ids or a filter (--type, --message-type, --channel, --since, --until)"


@dlq_app.command("list")
def list_(
    error_type: TypeOpt = None,
    channel: ChannelOpt = None,
    since: SinceOpt = None,
    message_type: MessageTypeOpt = None,
    until: UntilOpt = None,
) -> None:
    """Parked messages grouped by error type, with counts, then the most recent of them."""
    sel = _selection(None, error_type, channel, since, message_type, until)

    async def go(lot: ParkingLot) -> None:
        groups = await lot.groups(sel)
        table = Table("error type", "count", "channels", "oldest", "newest", title="parked")
        for g in groups:
            chans = ", ".join(sorted(c for c in g["channels"] if c))
            table.add_row(
                g["error_type"], str(g["count"]), chans, str(g["oldest"]), str(g["newest"])
            )
        console.print(table)
        rows = await lot.rows(sel, limit=50)
        detail = Table("id", "parked at", "type", "routing key", "message id", "error")
        for r in rows:
            detail.add_row(
                str(r["id"]),
                str(r["parked_at"]),
                r["error_type"],
                r["original_routing_key"],
                r["message_id"] or "",
                (r["error"] or "")[:80],
            )
        console.print(detail)
        console.print(f"total parked: {sum(g['count'] for g in groups)}")

    _run(go)


@dlq_app.command()
def show(parked_id: int) -> None:
    """One parked message: where it failed, why, its headers and its body."""

    async def go(lot: ParkingLot) -> None:
        row = await lot.show(parked_id)
        if row is None:
            console.print(f"no parked message #{parked_id}")
            raise typer.Exit(1)
        for key in ("id", "status", "message_id", "message_type", "source", "error_type", "error",
                    "failed_queue", "attempts", "original_exchange", "original_routing_key",
                    "first_failed_at", "parked_at", "replayed_at", "replays"):  # fmt: skip
            console.print(f"{key}: {row[key]}", highlight=False)
        console.print("headers: " + str(row["headers"]), highlight=False)
        body = bytes(row["body"])
        try:
            text = orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2).decode()
        except orjson.JSONDecodeError:
            text = body.decode("utf-8", "replace")
        console.print("body:\n" + text, highlight=False, markup=False)

    _run(go)


@dlq_app.command()
def replay(
    ids: Annotated[list[int] | None, typer.Argument(help="Parked ids.")] = None,
    error_type: TypeOpt = None,
    channel: ChannelOpt = None,
    since: SinceOpt = None,
    message_type: MessageTypeOpt = None,
    until: UntilOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show, send nothing.")] = False,
) -> None:
    """Send parked messages back where they failed, same id and body, with an audit line."""
    sel = _selection(ids, error_type, channel, since, message_type, until)
    if sel.is_empty:
        raise typer.BadParameter(_NO_FILTER)

    async def go(lot: ParkingLot) -> None:
        done = await lot.replay(sel, actor=actor(), dry_run=dry_run)
        verb = "would replay" if dry_run else "replayed"
        for r in done:
            console.print(f"{verb} #{r.parked_id} {r.message_id} -> {r.exchange} {r.routing_key}")
        console.print(f"{verb} {len(done)} message(s)")

    _run(go)


@dlq_app.command()
def resubmit(
    parked_id: int,
    data: Annotated[
        Path | None,
        typer.Option("--data", exists=True, dir_okay=False, help="The corrected event data."),
    ] = None,
    body: Annotated[
        Path | None,
        typer.Option("--body", exists=True, dir_okay=False, help="The whole corrected message."),
    ] = None,
) -> None:
    """Send one parked message back where it failed with what you corrected (a SKU mapped,
    a field filled in): its event data, or the whole body; same id, with an audit line."""
    if (data is None) == (body is None):
        raise typer.BadParameter("give the corrected --data or the whole --body, not both")

    async def go(lot: ParkingLot) -> None:
        try:
            done = await lot.resubmit(
                parked_id,
                actor=actor(),
                data=data.read_bytes() if data else None,
                body=body.read_bytes() if body else None,
            )
        except (LookupError, ValueError) as exc:
            console.print(f"[red]refused[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from exc
        console.print(
            f"resubmitted #{done.parked_id} {done.message_id} -> {done.exchange} {done.routing_key}"
        )

    _run(go)


@dlq_app.command()
def purge(
    ids: Annotated[list[int] | None, typer.Argument(help="Parked ids.")] = None,
    error_type: TypeOpt = None,
    channel: ChannelOpt = None,
    since: SinceOpt = None,
    message_type: MessageTypeOpt = None,
    until: UntilOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Really delete.")] = False,
) -> None:
    """Delete parked messages for good (needs --yes; an audit line stays for each)."""
    sel = _selection(ids, error_type, channel, since, message_type, until)
    if sel.is_empty:
        raise typer.BadParameter(_NO_FILTER)
    if not yes:
        console.print("purge deletes parked messages for good; add --yes to do it")
        raise typer.Exit(2)
    count = _run(lambda lot: lot.purge(sel, actor=actor()))
    console.print(f"purged {count} message(s)")


@dlq_app.command()
def sweep() -> None:
    """Move what waits in hub.dead into the durable store now."""
    _run(lambda lot: asyncio.sleep(0))
