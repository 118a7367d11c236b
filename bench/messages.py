"""Message bodies the benchmark sends: the same bytes go to the raw relay and to the hub."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

NOW = datetime.now(UTC).isoformat()


def _event(event_id: str, source: str, type_: str, subject: str, data: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": source,
            "type": type_,
            "time": NOW,
            "subject": subject,
            "data": data,
        }
    )


def product(run: str, i: int) -> bytes:
    """An ERP product.upserted of realistic size (about 400 bytes)."""
    sku = f"BENCH-{i % 5000:05d}"
    return _event(
        f"{run}-p-{i}",
        "erp",
        "product.upserted",
        sku,
        {
            "sku": sku,
            "name": f"Oak desk 160 x 80, model {i}",
            "description": "Solid oak top, powder-coated steel frame, adjustable feet.",
            "brand": "Benchwood",
            "attributes": {"colour": "oak", "width_cm": "160", "depth_cm": "80"},
            "weight_grams": 32000,
            "version": i + 1,
        },
    )


def stock_level(run: str, i: int, skus: int = 1000) -> bytes:
    """An ERP stock.level whose figure changes every time (so availability is always sent)."""
    sku = f"BENCH-{i % skus:05d}"
    return _event(
        f"{run}-s-{i}",
        "erp",
        "stock.level",
        sku,
        {"sku": sku, "location": "main", "on_hand": 1000 + i, "version": i + 1},
    )


def seed_stock(run: str, sku: str, on_hand: int) -> bytes:
    return _event(
        f"{run}-seed-{sku}",
        "erp",
        "stock.level",
        sku,
        {"sku": sku, "location": "main", "on_hand": on_hand, "version": 1},
    )


def price(run: str, sku: str, price_list: str) -> bytes:
    return _event(
        f"{run}-price-{sku}",
        "erp",
        "price.changed",
        sku,
        {
            "sku": sku,
            "price_list": price_list,
            "price": {"amount": "19.95", "currency": "EUR"},
            "includes_vat": True,
            "vat_rate": "0.21",
            "version": 1,
        },
    )


def order(run: str, i: int, channel: str, skus: int) -> bytes:
    """A valid order.placed with one line at the list price, from ``channel``."""
    sku = f"ORDER-{i % skus:04d}"
    return _event(
        f"{run}-o-{i}",
        channel,
        "order.placed",
        f"{run}-o-{i}",
        {
            "channel": channel,
            "channel_order_id": f"{run}-o-{i}",
            "placed_at": NOW,
            "currency": "EUR",
            "prices_include_vat": True,
            "lines": [
                {
                    "line_id": "1",
                    "sku": sku,
                    "quantity": 1,
                    "unit_price": {"amount": "19.95", "currency": "EUR"},
                    "vat_rate": "0.21",
                }
            ],
            "shipping_address": {
                "name": "J. Jansen",
                "line1": "Keizersgracht 1",
                "postal_code": "1015 CJ",
                "city": "Amsterdam",
                "country": "NL",
                "email": "j@example.nl",
            },
            "totals": {"total": {"amount": "19.95", "currency": "EUR"}},
        },
    )
