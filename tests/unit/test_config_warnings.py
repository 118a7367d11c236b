"""``hub config check`` warns of types an HTTP channel's adapter cannot write."""

from __future__ import annotations

import yaml

from hub.config_warnings import config_warnings
from routes import EXAMPLE_CONFIG
from routes.config import HubConfig


def example(**delivery: str) -> HubConfig:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["channels"]["bolcom"]["delivery"] = delivery
    return HubConfig.model_validate(data, context={"env": {}})


def test_the_example_as_shipped_warns_of_nothing() -> None:
    assert config_warnings(example()) == []


def test_a_marketplace_over_http_is_told_what_would_be_parked() -> None:
    [warning] = config_warnings(example(transport="http", url="https://api.bol.com/retailer"))
    assert warning.startswith("channels.bolcom.delivery: adapter 'bolcom' cannot write ")
    assert "invoice.issued (invoices-to-channel)" in warning
    assert "product.upserted (products-to-sales)" in warning
    # What bol.com's API takes, or needs no call for, is not listed.
    written = ("stock.availability", "price.changed", "shipment.tracking")
    answers = ("order.accepted", "order.rejected", "order.status")
    for type_ in written + answers:
        assert f"{type_} (" not in warning


def test_markets_sharing_a_price_list_across_vat_rates_are_warned_of() -> None:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    nl = data["markets"]["nl"]
    data["markets"]["lu"] = {**nl, "country": "LU", "vat_rate": 0.17}
    data["markets"]["be"] = {**nl, "country": "BE"}  # the same rate: fine
    config = HubConfig.model_validate(data, context={"env": {}})

    [warning] = config_warnings(config)

    assert warning.startswith("markets.lu.vat_rate: 0.17 differs from market 'nl' (0.21)")
    assert "shares price list 'nl-retail'" in warning
