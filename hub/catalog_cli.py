"""``hub catalog``: send a channel the current products and prices again."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console

catalog_app = typer.Typer(no_args_is_help=True, help="Products and prices kept by the hub.")
console = Console()
err = Console(stderr=True)


@catalog_app.command("resync")
def resync_command(
    channel: Annotated[str, typer.Argument(help="The channel to send the catalog to.")],
) -> None:
    """Send the channel every product and price routing gives it, e.g. after onboarding it."""
    from hub.catalog import WITHOUT_DATA, resync_catalog
    from hub.settings import Settings
    from routes.loader import load_config

    settings = Settings()
    config = load_config(settings.config_path)
    if channel not in config.channels:
        err.print(f"unknown channel {channel!r}")
        raise typer.Exit(2)
    sent = asyncio.run(resync_catalog(settings, config, channel))
    left_out = sent.pop(WITHOUT_DATA, 0)
    for type_, count in sorted(sent.items()):
        console.print(f"{channel}: {count} {type_}")
    console.print(f"total: {sum(sent.values())}")
    if left_out:
        err.print(f"[yellow]left out[/yellow] {left_out} {WITHOUT_DATA}")


@catalog_app.command("check")
def check_command() -> None:
    """List the ERP's SKUs a channel's sku_map uses as its name for another product: those
    SKUs reach no such channel until the map changes (exit 1 if any)."""
    from hub.catalog import find_sku_clashes
    from hub.settings import Settings
    from routes.loader import load_config

    settings = Settings()
    clashes = asyncio.run(find_sku_clashes(settings, load_config(settings.config_path)))
    for channel, sku in clashes:
        err.print(
            f"[red]clash[/red] {channel}: the ERP's SKU {sku!r} is this channel's name for"
            " another product in its sku_map; it is kept from the channel",
            highlight=False,
        )
    console.print(f"{len(clashes)} SKU clash(es)")
    if clashes:
        raise typer.Exit(1)
