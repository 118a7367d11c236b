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


def with_channel(name: str, **changes: object) -> HubConfig:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["channels"][name] = {**data["channels"][name], **changes}
    return HubConfig.model_validate(data, context={"env": {}})


def test_a_shop_over_http_without_a_price_basis_is_warned_of() -> None:
    http = {"transport": "http", "url": "https://example-nl.myshopify.com/admin/api/2024-07"}
    config = with_channel("webshop-nl", delivery=http, prices_include_vat=None)
    found = [w for w in config_warnings(config) if "prices_include_vat" in w]
    assert found == [
        "channels.webshop-nl.prices_include_vat: not set, so the ERP's prices reach 'shopify'"
        " as they are, net or gross: set it to the shop's 'prices include tax' setting and"
        " the hub converts them"
    ]
    # Stated, or on AMQP (the adapter process reads includes_vat), nothing to say.
    stated = with_channel("webshop-nl", delivery=http, prices_include_vat=False)
    assert not [w for w in config_warnings(stated) if "prices_include_vat" in w]
    assert config_warnings(with_channel("webshop-nl", prices_include_vat=None)) == []


def test_a_basis_the_adapter_overrides_is_warned_of() -> None:
    [warning] = config_warnings(with_channel("bolcom", prices_include_vat=False))
    assert warning == (
        "channels.bolcom.prices_include_vat: adapter 'bolcom' keeps prices with VAT;"
        " the hub sends them so, not as set here"
    )


def test_http_settings_on_an_amqp_channel_are_warned_of_but_not_the_defaults() -> None:
    config = with_channel("bolcom", delivery={"coalesce_stock": False, "rate_per_second": 2})
    [warning] = config_warnings(config)
    assert warning == (
        "channels.bolcom.delivery: coalesce_stock, rate_per_second apply only with transport"
        " 'http'; the channel's adapter process consumes hub.out.bolcom and paces itself"
    )
    # The example's defaults (rate_per_second 10, burst 20) reach every channel unwarned,
    # and a channel repeating a default has not written anything of its own.
    assert config_warnings(with_channel("bolcom", delivery={"burst": 20})) == []


def test_order_rules_written_where_the_hub_does_not_read_them_are_warned_of() -> None:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["channels"]["webshop-uk"]["orders"] = {"on_timeout": "stall", "max_retries": 5}
    data["channels"]["warehouse"]["orders"]["on_partial_stock"] = "backorder"
    data["channels"]["store-2"] = {
        "kind": "warehouse",
        "adapter": "canonical",
        "orders": {"warehouse_timeout_seconds": 60},
    }
    warnings = config_warnings(HubConfig.model_validate(data, context={"env": {}}))
    assert warnings == [
        "channels.webshop-uk.orders: max_retries, on_timeout not read for a webshop channel;"
        " the hub reads them on the ERP, warehouse or carrier awaited",
        "channels.warehouse.orders: on_partial_stock not read for a warehouse channel;"
        " the hub reads it on the selling channel",
        "channels.store-2.orders: warehouse_timeout_seconds not read: orders wait on the rules"
        " of the first warehouse, 'warehouse'",
    ]


def test_order_rules_inherited_from_the_defaults_are_not_warned_of() -> None:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["defaults"]["orders"] = {"on_timeout": "stall", "on_partial_stock": "reject"}
    assert config_warnings(HubConfig.model_validate(data, context={"env": {}})) == []


def test_a_request_sent_without_a_route_for_its_withdrawal_is_warned_of() -> None:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    for route in data["routes"]:  # a config written before shipment.cancel existed
        route["types"] = [t for t in route["types"] if t != "shipment.cancel"]
    [warning] = config_warnings(HubConfig.model_validate(data, context={"env": {}}))
    assert warning.startswith(
        "routes send shipment.request from the hub but none sends shipment.cancel"
    )
    assert "route shipment.cancel from: [hub] to where shipment.request goes" in warning


def test_an_api_client_without_its_credentials_is_warned_of() -> None:
    api = example(transport="http", url="https://api.bol.com", api="true")
    found = [w for w in config_warnings(api) if w.startswith("channels.bolcom.settings")]
    assert found == [
        "channels.bolcom.settings: the bolcom API is called without client_id, client_secret:"
        " each call will be refused and its message parked"
    ]
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["channels"]["bolcom"]["delivery"] = {
        "transport": "http",
        "url": "https://api.bol.com",
        "api": True,
    }
    env = {"BOLCOM_CLIENT_ID": "id", "BOLCOM_CLIENT_SECRET": "secret"}
    given = HubConfig.model_validate(data, context={"env": env})
    assert not [w for w in config_warnings(given) if w.startswith("channels.bolcom.settings")]
