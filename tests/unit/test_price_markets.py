"""A price reaches only the channels whose market shows its price list."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import yaml

from hub.handlers import Inbound
from hub.router import Router
from hub.topology import Names
from routes import EXAMPLE_CONFIG, RouteTable, load_config
from routes.config import HubConfig
from schemas.catalog import PriceChanged
from schemas.envelope import CloudEvent


def destinations(price_list: str, config: HubConfig | None = None) -> set[str]:
    config = config or load_config(EXAMPLE_CONFIG)
    router = Router(RouteTable.from_config(config), Names("t."), config)
    price = PriceChanged.model_validate(
        {
            "sku": "DESK-1",
            "price_list": price_list,
            "price": {"amount": Decimal("10.00"), "currency": "EUR"},
            "vat_rate": Decimal("0.21"),
            "version": 1,
        }
    )
    event = CloudEvent(
        id="p-1",
        source="erp",
        type=PriceChanged.TYPE,
        time=datetime.now(UTC),
        data=price.model_dump(mode="json"),
    )
    out = set()
    for envelope in router.envelopes(Inbound(event=event, message=price, routing_key="erp.x")):
        out.add(envelope.routing_key.split(".", 1)[0])
        out.update(key.split(".", 1)[0] for key in envelope.headers.get("CC", ()))
    return out


def test_a_markets_price_list_reaches_that_markets_channels_only() -> None:
    config = load_config(EXAMPLE_CONFIG)
    nl = {n for n, c in config.channels.items() if c.market == "nl" and c.kind != "erp"}
    got = destinations(config.markets["nl"].price_list)
    assert got and got <= nl
    assert "webshop-uk" not in got


def test_a_price_list_no_market_shows_reaches_no_market_bound_channel() -> None:
    assert destinations("b2b-contract-7") == set()


def test_a_price_list_two_markets_show_reaches_the_channels_of_both() -> None:
    """Belgium sells on the Dutch euro list: its shop gets the list's prices as well."""
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["markets"]["be"] = {**data["markets"]["nl"], "country": "BE"}
    data["channels"]["webshop-be"] = {"kind": "webshop", "adapter": "canonical", "market": "be"}
    config = HubConfig.model_validate(data, context={"env": {}})
    got = destinations("nl-retail", config)
    assert {"webshop-nl", "bolcom", "webshop-be"} <= got
    assert "webshop-uk" not in got
