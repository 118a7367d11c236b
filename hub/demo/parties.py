"""Simulated systems around the hub, speaking only the bus contract (as real adapters would)."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from hub.topology import Names
from schemas.envelope import CONTENT_TYPE, new_event

CATALOG: dict[str, tuple[str, Decimal, str]] = {
    "DESK-OAK-160": ("Oak desk 160 cm", Decimal("499.00"), "desks"),
    "DESK-OAK-140": ("Oak desk 140 cm", Decimal("449.00"), "desks"),
    "CHAIR-ERGO-1": ("Ergonomic chair", Decimal("289.00"), "chairs"),
    "CHAIR-ERGO-2": ("Ergonomic chair pro", Decimal("349.00"), "chairs"),
    "LAMP-LED-01": ("LED desk lamp", Decimal("59.95"), "lamps"),
}
GBP_RATE = Decimal("0.86")
ADDRESSES = {
    "NL": {
        "name": "Demo Buyer",
        "line1": "Keizersgracht 1",
        "postal_code": "1015 CJ",
        "city": "Amsterdam",
        "country": "NL",
    },
    "GB": {
        "name": "Demo Buyer",
        "line1": "1 Demo Street",
        "postal_code": "SW1A 1AA",
        "city": "London",
        "country": "GB",
    },
}

Show = Callable[[str, str, str], None]


class Party:
    """One simulated system: publishes as its channel, consumes its hub.out queue."""

    def __init__(self, name: str, channel: AbstractChannel, names: Names, show: Show) -> None:
        self.name = name
        self.channel = channel
        self.names = names
        self.show = show

    async def send(self, type_: str, data: dict[str, Any], subject: str | None = None) -> None:
        """Publish a canonical event to hub.in as this channel."""
        event = new_event(source=self.name, type=type_, data=data, subject=subject)
        exchange = await self.channel.get_exchange(self.names.inbound_exchange, ensure=False)
        await exchange.publish(
            aio_pika.Message(
                event.to_bytes(),
                message_id=event.id,
                type=type_,
                app_id=self.name,
                content_type=CONTENT_TYPE,
                delivery_mode=2,
            ),
            routing_key=f"{self.name}.{type_}",
        )
        self.show(self.name, "->", f"{type_} {subject or ''}")

    async def listen(self, react: Callable[[str, dict[str, Any]], Awaitable[None]]) -> None:
        """Consume this channel's queue and react to each message."""
        queue = await self.channel.get_queue(self.names.channel_queue(self.name), ensure=False)

        async def on_message(msg: AbstractIncomingMessage) -> None:
            async with msg.process():
                body = orjson.loads(msg.body)
                data = body.get("data", {})
                self.show(self.name, "<-", f"{body.get('type')} {_summary(data)}")
                await react(str(body.get("type")), data)

        await queue.consume(on_message)


def _summary(data: dict[str, Any]) -> str:
    if data.get("reasons"):
        codes = ", ".join(f"{r.get('code')}: {r.get('message')}" for r in data["reasons"])
        return f"{data.get('channel_order_id', '')} ({codes})"
    for key in ("status", "available", "erp_order_number", "tracking_number", "invoice_number"):
        if key in data:
            ref = data.get("sku") or data.get("channel_order_id") or data.get("order_id") or ""
            return f"{ref} {key}={data[key]}"
    return str(data.get("sku") or data.get("channel_order_id") or data.get("order_id") or "")


async def nothing(_: str, __: dict[str, Any]) -> None:
    """A party that only watches its queue."""


class Erp(Party):
    """The source of truth: products, prices, stock; answers sales orders and invoices them."""

    numbers = itertools.count(10001)
    # Versions from the clock, so a demo re-run on the same database is always newer.
    versions = itertools.count(time.time_ns() // 1_000_000)

    async def publish_catalog(self) -> None:
        """Products, both price lists, and opening stock."""
        for sku, (name, price, group) in CATALOG.items():
            await self.send(
                "product.upserted",
                {
                    "sku": sku,
                    "name": name,
                    "version": next(self.versions),
                    "substitution_group": group,
                },
                sku,
            )
            for price_list, amount, currency, vat in (
                ("nl-retail", price, "EUR", "0.21"),
                ("uk-retail", (price * GBP_RATE).quantize(Decimal("0.01")), "GBP", "0.20"),
            ):
                await self.send(
                    "price.changed",
                    {
                        "sku": sku,
                        "price_list": price_list,
                        "vat_rate": vat,
                        "version": next(self.versions),
                        "price": {"amount": str(amount), "currency": currency},
                    },
                    sku,
                )
            await self.stock(sku, random.randint(5, 40))

    async def stock(self, sku: str, on_hand: int) -> None:
        """An absolute, versioned stock level, as an ERP reports it."""
        version = next(self.versions)
        incoming = [{"quantity": 20, "expected_date": str(date.today() + timedelta(days=7))}]
        await self.send(
            "stock.level",
            {
                "sku": sku,
                "location": "main",
                "on_hand": on_hand,
                "version": version,
                "incoming": incoming,
            },
            sku,
        )

    async def react(self, type_: str, data: dict[str, Any]) -> None:
        """Confirm every sales order, then invoice it a moment later."""
        if type_ != "salesorder.create":
            return
        number = f"SO{time.strftime('%H%M%S')}{next(self.numbers)}"
        await self.send(
            "salesorder.created",
            {"order_id": data["order_id"], "erp_order_number": number},
            data["order_id"],
        )
        total = sum(
            Decimal(line["unit_price"]["amount"]) * line["quantity"] for line in data["lines"]
        )
        vat = (total - total / Decimal("1.21")).quantize(Decimal("0.01"))
        await asyncio.sleep(1.0)
        await self.send(
            "invoice.issued",
            {
                "order_id": data["order_id"],
                "invoice_number": f"INV-{number}",
                "issued_at": datetime.now(UTC).isoformat(),
                "total": {"amount": str(total), "currency": data["currency"]},
                "vat_total": {"amount": str(vat), "currency": data["currency"]},
            },
            data["order_id"],
        )


class Shop(Party):
    """A webshop or marketplace: places orders in its market, shows what the hub sends back."""

    def __init__(
        self,
        name: str,
        channel: AbstractChannel,
        names: Names,
        show: Show,
        country: str,
        currency: str,
    ) -> None:
        super().__init__(name, channel, names, show)
        self.country = country
        self.currency = currency
        self.numbers = itertools.count(1)

    async def place_order(self) -> None:
        """One order for one or two SKUs at the market's list price."""
        skus = random.sample(sorted(CATALOG), k=random.randint(1, 2))
        lines = []
        for i, sku in enumerate(skus, 1):
            price = CATALOG[sku][1]
            if self.currency == "GBP":
                price = (price * GBP_RATE).quantize(Decimal("0.01"))
            lines.append(
                {
                    "line_id": str(i),
                    "sku": sku,
                    "quantity": 1,
                    "unit_price": {"amount": str(price), "currency": self.currency},
                }
            )
        order_id = f"{self.name}-{next(self.numbers)}"
        await self.send(
            "order.placed",
            {
                "channel": self.name,
                "channel_order_id": order_id,
                "placed_at": datetime.now(UTC).isoformat(),
                "currency": self.currency,
                "lines": lines,
                "shipping_address": ADDRESSES[self.country],
            },
            order_id,
        )


class Warehouse(Party):
    """Picks whatever it is asked to pick, after a short while."""

    async def react(self, type_: str, data: dict[str, Any]) -> None:
        """Answer each pick request with a complete pick."""
        if type_ == "pick.request":
            await asyncio.sleep(0.5)
            await self.send(
                "pick.completed",
                {
                    "order_id": data["order_id"],
                    "pick_id": data.get("pick_id"),
                    "lines": data["lines"],
                    "parcels": 1,
                },
                data["order_id"],
            )


class Carrier(Party):
    """Books every shipment and returns a tracking number."""

    numbers = itertools.count(1)

    async def react(self, type_: str, data: dict[str, Any]) -> None:
        """Answer each shipment request with a label and tracking number."""
        if type_ == "shipment.request":
            tracking = f"3SDEMO{next(self.numbers):07d}"
            await self.send(
                "shipment.created",
                {
                    "order_id": data["order_id"],
                    "shipment_id": data["shipment_id"],
                    "carrier": "postnl",
                    "tracking_number": tracking,
                    "tracking_url": f"https://tracking.example.com/{tracking}",
                    "label_url": f"https://labels.example.com/{tracking}.pdf",
                    "lines": data["lines"],
                },
                data["order_id"],
            )
