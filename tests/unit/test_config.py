"""Config validation: the shipped example loads, and each kind of mistake is located."""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from routes import (
    EXAMPLE_CONFIG,
    ConfigError,
    ConfigInvalid,
    HubConfig,
    StockRules,
    check_config,
    load_config,
)

BASE: dict[str, Any] = {
    "version": 1,
    "markets": {
        "nl": {
            "currency": "EUR",
            "vat_rate": "0.21",
            "price_list": "nl-retail",
            "country": "NL",
            "lead_time_days": 1,
        }
    },
    "channels": {
        "erp": {"kind": "erp", "adapter": "canonical"},
        "shop": {"kind": "webshop", "adapter": "shopify", "market": "nl"},
    },
    "routes": [
        {"name": "products", "types": ["product.upserted"], "from": ["kind:erp"], "to": ["shop"]}
    ],
}


def base() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def write(tmp_path: Path, data: dict[str, Any] | str) -> Path:
    path = tmp_path / "hub.yaml"
    text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def errors(
    tmp_path: Path, data: dict[str, Any] | str, env: dict[str, str] | None = None
) -> list[ConfigError]:
    return check_config(write(tmp_path, data), env={} if env is None else env)


def by_location(errs: list[ConfigError]) -> dict[str, str]:
    return {e.location: e.message for e in errs}


# --- the example --------------------------------------------------------------------------


def test_example_config_loads_with_an_empty_environment() -> None:
    cfg = load_config(EXAMPLE_CONFIG, env={})

    assert cfg.erp == "erp"
    assert set(cfg.markets) == {"nl", "uk"}
    assert cfg.markets["uk"].currency == "GBP"
    assert cfg.markets["nl"].vat_rate == Decimal("0.21")
    assert {name: ch.kind for name, ch in cfg.channels.items()} == {
        "erp": "erp",
        "webshop-nl": "webshop",
        "webshop-uk": "webshop",
        "bolcom": "marketplace",
        "warehouse": "warehouse",
        "carrier": "carrier",
    }
    assert cfg.channels["carrier"].adapter == "sendcloud"
    assert cfg.channels["webshop-nl"].settings["shop_domain"] == "example-nl.myshopify.com"


def test_example_stock_rules_differ_per_channel() -> None:
    cfg = load_config(EXAMPLE_CONFIG, env={})
    on_hand = {"main": 100, "store-ams": 20}

    shown = {name: cfg.channels[name].stock.listed_quantity(on_hand) for name in cfg.channels}

    assert shown["webshop-nl"] == 118  # 120 - buffer 2
    assert shown["webshop-uk"] == 57  # main only: (100 - 5) * 60% = 57
    assert shown["bolcom"] == 46  # (120 - 3) * 40% = 46, cap 50


def test_example_defaults_are_inherited_and_overridable() -> None:
    cfg = load_config(EXAMPLE_CONFIG, env={})

    assert cfg.channels["erp"].orders.erp_timeout_seconds == 300
    assert cfg.channels["warehouse"].orders.warehouse_timeout_seconds == 7200
    assert cfg.channels["webshop-nl"].orders.on_partial_stock == "backorder"


def test_example_check_reports_no_errors() -> None:
    assert check_config(EXAMPLE_CONFIG, env={}) == []


# --- environment substitution ---------------------------------------------------------------


def test_env_placeholders_are_resolved_from_the_given_environment(tmp_path: Path) -> None:
    data = base()
    data["channels"]["shop"]["settings"] = {
        "access_token": "${SHOP_TOKEN}",
        "base_url": "https://${SHOP_HOST}/api",
        "region": "${SHOP_REGION:-eu}",
    }
    cfg = load_config(write(tmp_path, data), env={"SHOP_TOKEN": "t0k", "SHOP_HOST": "x.test"})

    assert cfg.channels["shop"].settings == {
        "access_token": "t0k",
        "base_url": "https://x.test/api",
        "region": "eu",
    }


def test_env_defaults_to_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = base()
    data["channels"]["shop"]["settings"] = {"api_key": "${HUB_TEST_SHOP_KEY}"}
    monkeypatch.setenv("HUB_TEST_SHOP_KEY", "from-os")

    cfg = load_config(write(tmp_path, data))

    assert cfg.channels["shop"].settings["api_key"] == "from-os"


def test_unset_env_var_without_default_is_an_error_naming_it(tmp_path: Path) -> None:
    data = base()
    data["channels"]["shop"]["settings"] = {"base_url": "${SHOP_URL}"}

    found = by_location(errors(tmp_path, data))

    assert "SHOP_URL" in found["channels.shop.settings.base_url"]
    assert "not set" in found["channels.shop.settings.base_url"]


def test_malformed_placeholder_is_an_error(tmp_path: Path) -> None:
    data = base()
    data["channels"]["shop"]["settings"] = {"base_url": "${SHOP URL}"}

    found = by_location(errors(tmp_path, data))

    assert "malformed placeholder" in found["channels.shop.settings.base_url"]


def test_numbers_in_settings_are_read_as_text(tmp_path: Path) -> None:
    data = base()
    data["channels"]["shop"]["settings"] = {"port": 8069, "verify": True}

    cfg = load_config(write(tmp_path, data), env={})

    assert cfg.channels["shop"].settings == {"port": "8069", "verify": "true"}


# --- secrets --------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["api_token", "client_secret", "password", "api_key", "API-KEY"])
def test_literal_secret_is_refused(tmp_path: Path, key: str) -> None:
    data = base()
    data["channels"]["shop"]["settings"] = {key: "hunter2"}

    found = by_location(errors(tmp_path, data))

    assert "must come from the environment" in found[f"channels.shop.settings.{key}"]


def test_secret_with_a_literal_default_is_refused(tmp_path: Path) -> None:
    data = base()
    data["channels"]["shop"]["settings"] = {"password": "${SHOP_PW:-hunter2}"}

    found = by_location(errors(tmp_path, data))

    assert "default" in found["channels.shop.settings.password"]


def test_secret_from_env_or_with_empty_default_is_accepted(tmp_path: Path) -> None:
    data = base()
    data["channels"]["shop"]["settings"] = {"password": "${SHOP_PW}", "token": "${SHOP_T:-}"}

    cfg = load_config(write(tmp_path, data), env={"SHOP_PW": "pw"})

    assert cfg.channels["shop"].settings == {"password": "pw", "token": ""}


# --- channels and markets -------------------------------------------------------------------


def test_unknown_market_is_located_on_the_channel(tmp_path: Path) -> None:
    data = base()
    data["channels"]["shop"]["market"] = "fr"

    found = by_location(errors(tmp_path, data))

    assert found["channels.shop.market"].startswith("unknown market 'fr'")
    assert "nl" in found["channels.shop.market"]


def test_sales_channel_without_market_is_an_error(tmp_path: Path) -> None:
    data = base()
    del data["channels"]["shop"]["market"]

    found = by_location(errors(tmp_path, data))

    assert "market" in found["channels.shop.market"]


def test_two_erps_point_at_the_second(tmp_path: Path) -> None:
    data = base()
    data["channels"]["erp-b"] = {"kind": "erp", "adapter": "odoo"}

    found = by_location(errors(tmp_path, data))

    assert list(found) == ["channels.erp-b.kind"]
    assert "second ERP" in found["channels.erp-b.kind"]


def test_no_erp_is_an_error(tmp_path: Path) -> None:
    data = base()
    del data["channels"]["erp"]
    data["routes"] = []

    found = by_location(errors(tmp_path, data))

    assert "exactly one ERP" in found["channels"]


@pytest.mark.parametrize("name", ["Web Shop", "-shop", "shop.nl", "x" * 64])
def test_bad_channel_name_is_located_on_the_name(tmp_path: Path, name: str) -> None:
    data = base()
    data["channels"][name] = {"kind": "warehouse", "adapter": "canonical"}

    found = by_location(errors(tmp_path, data))

    assert "not a valid name" in found[f"channels.{name}"]


def test_reserved_channel_name_is_an_error(tmp_path: Path) -> None:
    data = base()
    data["channels"]["hub"] = {"kind": "warehouse", "adapter": "canonical"}

    found = by_location(errors(tmp_path, data))

    assert "reserved" in found["channels.hub"]


def test_markets_may_share_a_price_list_but_not_in_two_currencies(tmp_path: Path) -> None:
    data = base()
    data["markets"]["be"] = {**data["markets"]["nl"], "country": "BE"}
    assert errors(tmp_path, data) == []
    data["markets"]["ch"] = {**data["markets"]["nl"], "country": "CH", "currency": "CHF"}

    found = by_location(errors(tmp_path, data))

    assert list(found) == ["markets.ch.currency"]
    assert "price list 'nl-retail' in CHF, market 'nl' in EUR" in found["markets.ch.currency"]


def test_market_values_are_checked(tmp_path: Path) -> None:
    data = base()
    data["markets"]["nl"].update(currency="euro", vat_rate=21, country="NLD", lead_time_days=-1)

    found = by_location(errors(tmp_path, data))

    assert "ISO 4217" in found["markets.nl.currency"]
    assert "fraction" in found["markets.nl.vat_rate"]
    assert "ISO 3166" in found["markets.nl.country"]
    assert "markets.nl.lead_time_days" in found


def test_unknown_and_missing_fields_are_named(tmp_path: Path) -> None:
    data = base()
    data["channels"]["shop"]["maket"] = "nl"
    del data["channels"]["erp"]["adapter"]

    found = by_location(errors(tmp_path, data))

    assert found["channels.shop.maket"].startswith("unknown field 'maket'")
    assert found["channels.erp.adapter"] == "required field 'adapter' is missing"


def test_http_delivery_needs_a_url(tmp_path: Path) -> None:
    data = base()
    data["channels"]["shop"]["delivery"] = {"transport": "http"}

    found = by_location(errors(tmp_path, data))

    assert "needs a url" in found["channels.shop.delivery.url"]


def test_defaults_merge_field_by_field(tmp_path: Path) -> None:
    data = base()
    data["defaults"] = {"stock": {"safety_buffer": 4, "zero_at_or_below": 1}}
    data["channels"]["shop"]["stock"] = {"zero_at_or_below": 3}

    cfg = load_config(write(tmp_path, data), env={})

    assert cfg.channels["shop"].stock.safety_buffer == 4
    assert cfg.channels["shop"].stock.zero_at_or_below == 3
    assert cfg.channels["erp"].stock.safety_buffer == 4


def test_a_broken_default_is_reported_once_under_defaults(tmp_path: Path) -> None:
    data = base()
    data["defaults"] = {"delivery": {"burst": 0}}

    found = by_location(errors(tmp_path, data))

    assert list(found) == ["defaults.delivery.burst"]


# --- routes ---------------------------------------------------------------------------------


def test_unknown_type_suggests_the_close_one(tmp_path: Path) -> None:
    data = base()
    data["routes"][0]["types"] = ["product.upserted", "stock.levle"]

    found = by_location(errors(tmp_path, data))

    assert found["routes[0].types[1]"].startswith("unknown message type 'stock.levle'")
    assert "did you mean 'stock.level'" in found["routes[0].types[1]"]


def test_type_patterns_must_match_a_known_type(tmp_path: Path) -> None:
    data = base()
    data["routes"][0]["types"] = ["stock.*", "native.shopify.*", "nothing.*"]

    found = by_location(errors(tmp_path, data))

    assert list(found) == ["routes[0].types[2]"]
    assert "matches no known message type" in found["routes[0].types[2]"]


@pytest.mark.parametrize(
    ("side", "selector", "expected"),
    [
        ("to", "webshop-de", "unknown channel 'webshop-de'"),
        ("to", "*", "only allowed in 'from'"),
        ("from", "origin", "only meaningful in 'to'"),
        ("from", "kind:shop", "unknown kind 'shop'"),
    ],
)
def test_bad_selector_is_located_in_the_route(
    tmp_path: Path, side: str, selector: str, expected: str
) -> None:
    data = base()
    data["routes"][0][side] = ["erp", selector] if side == "from" else ["shop", selector]

    found = by_location(errors(tmp_path, data))

    assert expected in found[f"routes[0].{side}[1]"]


def test_route_filter_markets_must_exist(tmp_path: Path) -> None:
    data = base()
    data["routes"][0]["filters"] = {"markets": ["nl", "de"]}

    found = by_location(errors(tmp_path, data))

    assert found["routes[0].filters.markets[1]"].startswith("unknown market 'de'")


def test_route_filter_value_range_is_ordered(tmp_path: Path) -> None:
    data = base()
    data["routes"][0]["filters"] = {"min_order_value": "100", "max_order_value": "10"}

    found = by_location(errors(tmp_path, data))

    assert "above max_order_value" in found["routes[0].filters.min_order_value"]


def test_duplicate_route_names_are_an_error(tmp_path: Path) -> None:
    data = base()
    data["routes"].append(copy.deepcopy(data["routes"][0]))

    found = by_location(errors(tmp_path, data))

    assert "used twice" in found["routes[1].name"]


# --- YAML and files -------------------------------------------------------------------------


def test_yaml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    text = "version: 1\nchannels:\n  erp: {kind: erp, adapter: canonical\nroutes: []\n"

    (err,) = errors(tmp_path, text)

    assert err.line is not None and err.line >= 3
    assert err.column is not None
    assert f"line {err.line}, column {err.column}" in err.message
    assert err.message.startswith("YAML syntax error")


def test_errors_carry_the_line_of_the_offending_key(tmp_path: Path) -> None:
    text = yaml.safe_dump(base(), sort_keys=False).replace("market: nl", "market: fr")
    line = 1 + text.splitlines().index("    market: fr")

    (err,) = errors(tmp_path, text)

    assert (err.location, err.line) == ("channels.shop.market", line)
    assert str(err).startswith(f"line {line}: channels.shop.market: unknown market")


def test_duplicate_yaml_keys_are_reported(tmp_path: Path) -> None:
    text = yaml.safe_dump(base(), sort_keys=False)
    text = text.replace("  shop:\n", "  erp:\n    kind: erp\n    adapter: x\n  shop:\n", 1)

    found = {e.location: e for e in errors(tmp_path, text)}

    assert "duplicate key 'erp'" in found["channels.erp"].message
    assert found["channels.erp"].line is not None


@pytest.mark.parametrize(("text", "expected"), [("", "empty file"), ("- 1\n", "a list")])
def test_a_config_must_be_a_mapping(tmp_path: Path, text: str, expected: str) -> None:
    (err,) = errors(tmp_path, text)

    assert expected in err.message


def test_missing_file_is_an_error_not_a_crash(tmp_path: Path) -> None:
    (err,) = check_config(tmp_path / "nope.yaml", env={})

    assert "cannot read" in err.message


def test_load_config_raises_with_every_error(tmp_path: Path) -> None:
    data = base()
    data["channels"]["shop"]["market"] = "fr"
    data["channels"]["shop"]["settings"] = {"password": "hunter2"}
    data["routes"][0]["to"] = ["nowhere"]

    with pytest.raises(ConfigInvalid) as info:
        load_config(write(tmp_path, data), env={})

    # a field error does not hide the broken references: all come in one pass
    assert [e.location for e in info.value.errors] == [
        "channels.shop.market",
        "channels.shop.settings.password",
        "routes[0].to[0]",
    ]
    assert "3 config error(s)" in str(info.value)


def test_models_validate_without_a_file() -> None:
    cfg = HubConfig.model_validate(base())

    assert cfg.routes[0].from_ == ["kind:erp"]
    assert cfg.model_dump(by_alias=True)["routes"][0]["from"] == ["kind:erp"]


# --- stock rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "on_hand", "reserved", "shown"),
    [
        ({}, {"a": 5, "b": 3}, 0, 8),
        ({"locations": ["a"]}, {"a": 5, "b": 3}, 0, 5),
        ({"safety_buffer": 4}, {"a": 10}, 3, 3),
        ({"safety_buffer": 4}, {"a": 5}, 3, 0),  # never negative
        ({"share_percent": "50"}, {"a": 9}, 0, 4),  # rounded down
        ({"share_percent": "50", "max_listed": 3}, {"a": 100}, 0, 3),
        ({"max_listed": 30, "share_percent": "10"}, {"a": 100}, 0, 10),  # share before cap
        ({"zero_at_or_below": 2}, {"a": 2}, 0, 0),
        ({"zero_at_or_below": 2}, {"a": 3}, 0, 3),
        ({"safety_buffer": 1, "share_percent": "50", "zero_at_or_below": 2}, {"a": 7}, 0, 3),
    ],
)
def test_stock_rules_apply_buffer_then_share_then_cap_then_floor(
    rules: dict[str, Any], on_hand: dict[str, int], reserved: int, shown: int
) -> None:
    assert StockRules.model_validate(rules).listed_quantity(on_hand, reserved) == shown


def test_stock_rule_bounds_are_checked(tmp_path: Path) -> None:
    data = base()
    data["channels"]["shop"]["stock"] = {"share_percent": 120, "safety_buffer": -1}

    found = by_location(errors(tmp_path, data))

    assert set(found) == {"channels.shop.stock.share_percent", "channels.shop.stock.safety_buffer"}


# --- a channel's own SKUs -----------------------------------------------------------------


def test_a_sku_map_is_read_and_reversed(tmp_path: Path) -> None:
    data = base()
    data["channels"]["shop"]["sku_map"] = {"8712345678906": "DESK-1", "LAMP-EAN": "LAMP-1"}
    cfg = load_config(write(tmp_path, data), env={})
    assert cfg.channels["shop"].sku_map["8712345678906"] == "DESK-1"
    assert cfg.channels["shop"].skus_to_channel == {"DESK-1": "8712345678906", "LAMP-1": "LAMP-EAN"}
    assert cfg.channels["erp"].skus_to_channel == {}


def test_two_channel_skus_for_one_erp_sku_are_an_error(tmp_path: Path) -> None:
    data = base()
    data["channels"]["shop"]["sku_map"] = {"A-1": "DESK-1", "A-2": "DESK-1"}
    found = by_location(errors(tmp_path, data))
    assert "both map to 'DESK-1'" in found["channels.shop.sku_map.A-2"]


def test_the_erp_has_no_sku_map_and_a_bad_sku_is_named(tmp_path: Path) -> None:
    data = base()
    data["channels"]["erp"]["sku_map"] = {"X": "DESK-1"}
    data["channels"]["shop"]["sku_map"] = {"has space": "DESK-1"}
    found = by_location(errors(tmp_path, data))
    assert "no sku_map" in found["channels.erp.sku_map"]
    assert any(loc.startswith("channels.shop.sku_map") for loc in found), found


def test_a_channel_sku_that_is_another_products_erp_sku_is_an_error(tmp_path: Path) -> None:
    data = base()
    data["channels"]["shop"]["sku_map"] = {"LAMP-1": "DESK-1", "LAMP-EAN": "LAMP-1"}
    found = by_location(errors(tmp_path, data))
    assert "is the ERP's SKU" in found["channels.shop.sku_map.LAMP-1"]


def test_selling_incoming_stock_needs_a_backorder_channel(tmp_path: Path) -> None:
    data = base()
    data["channels"]["shop"]["stock"] = {"incoming_within_days": 14}

    found = by_location(errors(tmp_path, data))

    assert "on_partial_stock to backorder" in found["channels.shop.stock.incoming_within_days"]
    data["channels"]["shop"]["orders"] = {"on_partial_stock": "backorder"}
    assert errors(tmp_path, data) == []


def test_bolcom_is_polled_at_most_once_a_minute_off_loopback(tmp_path: Path) -> None:
    data = base()
    data["channels"]["shop"]["adapter"] = "bolcom"
    data["channels"]["shop"]["delivery"] = {"transport": "http", "url": "https://api.bol.com"}
    data["channels"]["shop"]["settings"] = {"poll_s": "10"}

    found = by_location(errors(tmp_path, data))

    assert "at most every 60 seconds" in found["channels.shop.settings.poll_s"]
    data["channels"]["shop"]["settings"] = {"poll_s": "60"}
    assert errors(tmp_path, data) == []
    data["channels"]["shop"]["delivery"]["url"] = "http://127.0.0.1:8080"
    data["channels"]["shop"]["settings"] = {"poll_s": "0.2"}  # a test double on loopback
    assert errors(tmp_path, data) == []


def test_selling_incoming_stock_and_a_fixed_backorder_cap_do_not_mix(tmp_path: Path) -> None:
    data = base()
    data["channels"]["shop"]["stock"] = {"incoming_within_days": 14}
    data["channels"]["shop"]["orders"] = {"on_partial_stock": "backorder", "max_backordered": 5}

    found = by_location(errors(tmp_path, data))

    assert "remove orders.max_backordered" in found["channels.shop.stock.incoming_within_days"]


def test_more_pages_per_bolcom_poll_need_a_longer_interval(tmp_path: Path) -> None:
    data = base()
    data["channels"]["shop"]["adapter"] = "bolcom"
    data["channels"]["shop"]["delivery"] = {"transport": "http", "url": "https://api.bol.com"}
    data["channels"]["shop"]["settings"] = {"poll_s": "120", "poll_pages": "50"}
    assert (
        "at most every 130 seconds"
        in by_location(errors(tmp_path, data))["channels.shop.settings.poll_s"]
    )
    data["channels"]["shop"]["settings"] = {"poll_pages": "²"}
    assert (
        "positive whole number"
        in by_location(errors(tmp_path, data))["channels.shop.settings.poll_pages"]
    )
