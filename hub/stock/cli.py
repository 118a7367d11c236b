"""``hub stock``: import stock spreadsheets and resync a channel's availability."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

stock_app = typer.Typer(no_args_is_help=True, help="Stock feeds and availability resync.")
console = Console()
err = Console(stderr=True)


@stock_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A .csv or .xlsx")],
    location: Annotated[
        str | None, typer.Option("--location", "-l", help="Location of every row.")
    ] = None,
    source: Annotated[
        str | None, typer.Option("--source", help="Channel the levels come from (default: ERP).")
    ] = None,
    measured_at: Annotated[
        datetime | None,
        typer.Option(
            "--measured-at",
            formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"],
            help="When the file's figures were true (UTC unless an offset is given); default"
            " now. Units shipped after it stay held until a later level counts them out.",
        ),
    ] = None,
) -> None:
    """Validate every row, then send them all as stock levels; one bad row sends nothing."""
    measured = _aware(measured_at)
    if measured is not None and measured > datetime.now(UTC):
        err.print(f"--measured-at {measured.isoformat()} is in the future")
        raise typer.Exit(2)
    from hub.settings import Settings
    from hub.stock.service import import_file
    from routes.loader import load_config

    settings = Settings()
    result = asyncio.run(
        import_file(
            settings,
            load_config(settings.config_path),
            file,
            location=location,
            source=source,
            measured_at=measured,
        )
    )
    if result.errors:
        for error in result.errors:
            err.print(f"[red]error[/red] {file.name} {error}", highlight=False)
        err.print(f"{file.name}: {len(result.errors)} bad row(s); nothing was applied")
        raise typer.Exit(1)
    console.print(f"{file.name}: {result.published} stock level(s) sent")


def _aware(moment: datetime | None) -> datetime | None:
    """A time given without an offset is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


@stock_app.command("resync")
def resync_command(
    channel: Annotated[
        str | None, typer.Option("--channel", help="Only this channel (default: all).")
    ] = None,
) -> None:
    """Re-publish the current availability of every SKU, for a channel that lost its state."""
    from hub.settings import Settings
    from hub.stock.service import resync
    from routes.loader import load_config

    settings = Settings()
    config = load_config(settings.config_path)
    if channel is not None and channel not in config.channels:
        err.print(f"unknown channel {channel!r}")
        raise typer.Exit(2)
    sent = asyncio.run(resync(settings, config, channel))
    for name, count in sorted(sent.items()):
        console.print(f"{name}: {count} availability message(s)")
    console.print(f"total: {sum(sent.values())}")
