"""The ``hub`` command: run the hub and operate it (config, topology, database, schemas)."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hub import eventloop
from hub.catalog_cli import catalog_app
from hub.dlq.cli import dlq_app
from hub.orders.cli import orders_app
from hub.settings import Settings
from hub.stock.cli import stock_app

app = typer.Typer(no_args_is_help=True, help="commerce-hub: the ERP's truth on every channel.")
config_app = typer.Typer(no_args_is_help=True, help="Validate channel and route config.")
db_app = typer.Typer(no_args_is_help=True, help="Database migrations.")
schemas_app = typer.Typer(no_args_is_help=True, help="Canonical message schemas.")
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
app.add_typer(schemas_app, name="schemas")
# Domain command groups register below, one line each (hub stock ..., hub orders ..., hub dlq ...).
app.add_typer(dlq_app, name="dlq")
app.add_typer(stock_app, name="stock")
app.add_typer(orders_app, name="orders")
app.add_typer(catalog_app, name="catalog")

console = Console()
err = Console(stderr=True)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="Config file (default: HUB_CONFIG_PATH).")
]


def _settings(config: Path | None = None) -> Settings:
    base = Settings()
    return base.model_copy(update={"config_path": config}) if config else base


def _logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command()
def run(config: ConfigOption = None) -> None:
    """Run the hub until SIGTERM or Ctrl-C (migrates the database first)."""
    from hub.app import run_forever

    settings = _settings(config)
    _logging(settings.log_level)
    eventloop.run(run_forever(settings), settings.event_loop)


@app.command()
def demo(
    config: ConfigOption = None,
    seconds: Annotated[float | None, typer.Option(help="Stop after this long.")] = None,
    rate: Annotated[float, typer.Option(help="Orders and stock changes per second.")] = 2.0,
) -> None:
    """Run the hub with simulated ERP, webshops, marketplace, warehouse and carrier traffic."""
    from hub.demo.run import run_demo

    settings = _settings(config)
    _logging("WARNING")
    eventloop.run(run_demo(settings, seconds, rate), settings.event_loop)


@config_app.command("check")
def config_check(path: Annotated[Path | None, typer.Argument()] = None) -> None:
    """Validate a config file and print each error with its location (and what it warns of)."""
    from hub.app import check_config_file
    from hub.config_warnings import config_warnings
    from routes.loader import load_config

    target = path or Settings().config_path
    errors = check_config_file(target)
    if errors:
        for error in errors:
            err.print(f"[red]error[/red] {error}", highlight=False)
        err.print(f"{target}: {len(errors)} error(s)")
        raise typer.Exit(1)
    for warning in config_warnings(load_config(target)):
        err.print(f"[yellow]warning[/yellow] {warning}", highlight=False)
    console.print(f"{target}: ok")


@app.command()
def topology(config: ConfigOption = None) -> None:
    """Declare the bus topology on the broker and print it."""
    from hub.app import declare_topology

    for line in asyncio.run(declare_topology(_settings(config))):
        console.print(line, highlight=False)


@db_app.command("migrate")
def db_migrate() -> None:
    """Create the database if needed and apply pending migrations."""
    from hub.app import migrate_database

    applied = asyncio.run(migrate_database(Settings()))
    console.print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))


@schemas_app.command("export")
def schemas_export(directory: Path) -> None:
    """Write a JSON Schema file for every canonical message type."""
    from schemas.export import export_json_schemas

    written = export_json_schemas(directory)
    console.print(f"wrote {len(written)} schema files to {directory}")


@app.command()
def asyncapi(output: Annotated[Path | None, typer.Argument()] = None) -> None:
    """Write (or print) the bus contract as an AsyncAPI document."""
    import orjson

    from hub.asyncapi import document

    text = orjson.dumps(document(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    if output is None:
        console.out(text.decode(), highlight=False)
    else:
        output.write_bytes(text)
        console.print(f"wrote {output}")


def install_signal_handlers(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT ask the hub to drain and stop."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


def main() -> None:
    """Console-script entry point."""
    app()
