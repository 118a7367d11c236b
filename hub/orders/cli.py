"""``hub orders ...``: what the operator answering a customer's call needs to see of an order."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import asyncpg
import orjson
import typer
from rich.console import Console
from rich.table import Table

from hub.settings import Settings

orders_app = typer.Typer(
    no_args_is_help=True,
    help="Inspect orders and their history; list those waiting, send a request again, cancel.",
)
console = Console()


async def load_order(database_url: str, channel: str, channel_order_id: str) -> dict[str, Any]:
    """The order row, its shipments and its history; empty when there is no such order."""
    conn = await asyncpg.connect(database_url)
    try:
        order = await conn.fetchrow(
            "SELECT * FROM orders WHERE channel = $1 AND channel_order_id = $2",
            channel,
            channel_order_id,
        )
        if order is None:
            early = await conn.fetchrow(
                "SELECT at, cancelled_by, reason FROM early_cancellations"
                " WHERE channel = $1 AND channel_order_id = $2",
                channel,
                channel_order_id,
            )
            return {"cancelled_first": dict(early)} if early else {}
        oid = order["order_id"]
        shipments = await conn.fetch(
            "SELECT * FROM order_shipments WHERE order_id = $1 ORDER BY created_at", oid
        )
        history = await conn.fetch(
            "SELECT at, event, state, detail FROM order_history WHERE order_id = $1 ORDER BY id",
            oid,
        )
        return {
            "order": dict(order),
            "shipments": [dict(s) for s in shipments],
            "history": [dict(h) for h in history],
        }
    finally:
        await conn.close()


def render(found: dict[str, Any]) -> None:
    """Print an order's state, lines, shipments and history."""
    order = found["order"]
    placed = orjson.loads(order["placed"])
    console.print(
        f"order {order['order_id']}  {order['channel']} {order['channel_order_id']}\n"
        f"state [bold]{order['state']}[/bold]  version {order['version']}  "
        f"ERP {order['erp_order_number'] or '-'}",
        highlight=False,
    )
    if order["awaiting"]:
        console.print(
            f"waiting for {order['awaiting']} until {order['deadline'] or '(stalled)'}, "
            f"{order['attempts']} retries so far",
            highlight=False,
        )
    picked, shipped = orjson.loads(order["picked"]), orjson.loads(order["shipped"])
    lines = Table("line", "sku", "qty", "unit price", "picked", "shipped")
    for line in placed["lines"]:
        price = line["unit_price"]
        lines.add_row(
            line["line_id"],
            line["sku"],
            str(line["quantity"]),
            f"{price['amount']} {price['currency']}",
            str(picked.get(line["line_id"], 0)),
            str(shipped.get(line["line_id"], 0)),
        )
    console.print(lines)
    for s in found["shipments"]:
        console.print(
            f"shipment {s['shipment_id']}: {s['status']} {s['carrier'] or ''} "
            f"{s['tracking_number'] or ''} {s['label_url'] or ''}".rstrip(),
            highlight=False,
        )
    history = Table("at", "event", "state", "detail")
    for h in found["history"]:
        history.add_row(h["at"].isoformat(timespec="seconds"), h["event"], h["state"], h["detail"])
    console.print(history)


@orders_app.command("show")
def show(
    channel: Annotated[str, typer.Argument(help="The channel the order came from.")],
    channel_order_id: Annotated[str, typer.Argument(help="The channel's own order id.")],
) -> None:
    """Print an order's state and history, found by the channel's order id."""
    found = asyncio.run(load_order(Settings().database_url, channel, channel_order_id))
    if not found:
        console.print(f"no order {channel_order_id!r} from channel {channel!r}")
        raise typer.Exit(1)
    if early := found.get("cancelled_first"):
        console.print(
            f"no order {channel_order_id!r} from channel {channel!r} yet; its cancellation came"
            f" first ({early['at'].isoformat(timespec='seconds')}, by {early['cancelled_by']}:"
            f" {early['reason']}): it will be recorded cancelled when it arrives",
            highlight=False,
        )
        return
    render(found)


@orders_app.command("list")
def list_command(
    state: Annotated[
        list[str] | None,
        typer.Option("--state", help="Only orders in this state (repeatable; default: open)."),
    ] = None,
    channel: Annotated[str | None, typer.Option("--channel", help="Only this channel.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 100,
) -> None:
    """The orders still moving (or in the given states), the longest unchanged first."""
    from hub.orders.operator import waiting

    async def fetch() -> list[dict[str, Any]]:
        pool = await asyncpg.create_pool(Settings().database_url, min_size=1, max_size=1)
        try:
            return await waiting(pool, state, channel, limit)
        finally:
            await pool.close()

    rows = asyncio.run(fetch())
    table = Table("channel", "order", "state", "waiting for", "deadline", "retries", "since")
    for row in rows:
        deadline = row["deadline"]
        table.add_row(
            row["channel"],
            row["channel_order_id"],
            row["state"],
            row["awaiting"] or "-",
            deadline.isoformat(timespec="seconds") if deadline else "-",
            str(row["attempts"]),
            row["updated_at"].isoformat(timespec="seconds"),
        )
    console.print(table)
    console.print(f"{len(rows)} order(s)")


def _act(channel: str, channel_order_id: str, action: str, reason: str = "") -> None:
    from hub.orders.operator import OperatorRefused, act
    from routes.loader import load_config

    settings = Settings()
    try:
        done = asyncio.run(
            act(
                settings,
                load_config(settings.config_path),
                channel,
                channel_order_id,
                "retry" if action == "retry" else "cancel",
                reason,
            )
        )
    except OperatorRefused as exc:
        console.print(f"[red]refused[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from exc
    console.print(
        f"order {channel_order_id} from {channel}: {done.state}, {done.sent} message(s) sent"
        + (f"; {done.detail}" if done.detail else ""),
        highlight=False,
        soft_wrap=True,
    )


@orders_app.command("retry")
def retry_command(
    channel: Annotated[str, typer.Argument(help="The channel the order came from.")],
    channel_order_id: Annotated[str, typer.Argument(help="The channel's own order id.")],
) -> None:
    """Send the request the order waits on (to the ERP, warehouse or carrier) again now and
    restart its clock and retries: for a stalled order once the silent system is back."""
    _act(channel, channel_order_id, "retry")


@orders_app.command("cancel")
def cancel_command(
    channel: Annotated[str, typer.Argument(help="The channel the order came from.")],
    channel_order_id: Annotated[str, typer.Argument(help="The channel's own order id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why; kept and told to the channel.")],
) -> None:
    """Give up an order: stock back, the ERP and warehouse told to drop it, the channel told
    it is cancelled (so it cancels it too). Of a partly shipped order, only what has not left."""
    _act(channel, channel_order_id, "cancel", reason)
