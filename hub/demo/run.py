"""``hub demo``: the real hub on the example config with simulated traffic from every party."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

import aio_pika
from prometheus_client import Counter
from rich.console import Console

from hub.app import build_hub
from hub.demo.parties import CATALOG, Carrier, Erp, Party, Shop, Warehouse, nothing
from hub.settings import Settings

COLOURS = {"erp": "cyan", "warehouse": "magenta", "carrier": "yellow"}


async def run_demo(settings: Settings, seconds: float | None, orders_per_second: float) -> None:
    """Start the hub, then let the ERP and the shops trade until time is up or Ctrl-C."""
    from hub.cli import install_signal_handlers

    console = Console(highlight=False)
    started = time.monotonic()

    def show(party: str, arrow: str, text: str) -> None:
        colour = COLOURS.get(party, "green")
        console.print(f"{time.monotonic() - started:7.2f}s [{colour}]{party:>11}[/] {arrow} {text}")

    hub = build_hub(settings)
    await hub.start()
    console.print(
        f"[bold]hub running[/] on {settings.broker_url.split('@')[-1]} "
        f"(metrics: http://{settings.http_host}:{settings.http_port}/metrics)"
    )
    connection = await aio_pika.connect_robust(settings.broker_url)
    stop = asyncio.Event()
    install_signal_handlers(stop)
    try:
        channel = await connection.channel()
        names = hub.names
        config = hub.config
        erp = Erp(config.erp, channel, names, show)
        shops: list[Shop] = []
        parties: list[Party] = [erp]
        for name, ch in config.channels.items():
            if ch.kind in {"webshop", "marketplace", "store"} and ch.market:
                market = config.markets[ch.market]
                shops.append(Shop(name, channel, names, show, market.country, market.currency))
            elif ch.kind == "warehouse":
                parties.append(Warehouse(name, channel, names, show))
            elif ch.kind == "carrier":
                parties.append(Carrier(name, channel, names, show))
        await erp.listen(erp.react)
        for party in parties[1:]:
            await party.listen(party.react)  # type: ignore[attr-defined]
        for shop in shops:
            await shop.listen(nothing)
        await erp.publish_catalog()
        deadline = started + seconds if seconds else None
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            if random.random() < 0.5:
                await random.choice(shops).place_order()
            else:
                sku = random.choice(sorted(CATALOG))
                await erp.stock(sku, random.randint(0, 40))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1 / max(orders_per_second, 0.1))
        await asyncio.sleep(2)  # let the last flows finish
    finally:
        await connection.close()
        await hub.stop()
    m = hub.metrics
    console.print(
        f"[bold]done[/]: {_total(m.received):.0f} messages in, "
        f"{_total(m.published):.0f} published, {_total(m.parked):.0f} parked"
    )


def _total(counter: Counter) -> float:
    """The sum of a labelled counter over all its labels."""
    return sum(
        s.value for metric in counter.collect() for s in metric.samples if s.name.endswith("_total")
    )
