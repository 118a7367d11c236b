"""Route matching as a pure function: no broker, just config in and channel names out."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from routes import EXAMPLE_CONFIG, HubConfig, RouteTable, RoutingError, load_config

MARKET = {"vat_rate": "0.2", "price_list": "p", "lead_time_days": 0}


def table(routes: list[dict[str, Any]], **channels: dict[str, Any]) -> RouteTable:
    """A table over a fixed cast of channels (plus any given), with the given routes."""
    cast: dict[str, Any] = {
        "erp": {"kind": "erp", "adapter": "canonical"},
        "shop-nl": {"kind": "webshop", "adapter": "shopify", "market": "nl"},
        "shop-uk": {"kind": "webshop", "adapter": "woocommerce", "market": "uk"},
        "bol": {"kind": "marketplace", "adapter": "bolcom", "market": "nl"},
        "wh": {"kind": "warehouse", "adapter": "canonical"},
        "post": {"kind": "carrier", "adapter": "sendcloud"},
    }
    cast.update(channels)
    cfg = HubConfig.model_validate(
        {
            "version": 1,
            "markets": {
                "nl": {**MARKET, "currency": "EUR", "country": "NL", "price_list": "p-nl"},
                "uk": {**MARKET, "currency": "GBP", "country": "GB", "price_list": "p-uk"},
            },
            "channels": cast,
            "routes": [{"name": f"r{i}", **r} for i, r in enumerate(routes)],
        }
    )
    return RouteTable.from_config(cfg)


def route(types: list[str], from_: list[str], to: list[str], **filters: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"types": types, "from": from_, "to": to}
    if filters:
        out["filters"] = filters
    return out


SALES = ["kind:webshop", "kind:marketplace"]


# --- selectors and types --------------------------------------------------------------------


def test_kind_selector_expands_to_channels_of_that_kind_in_config_order() -> None:
    t = table([route(["product.upserted"], ["kind:erp"], SALES)])

    assert t.destinations("erp", "product.upserted") == ("shop-nl", "shop-uk", "bol")


def test_a_route_only_applies_to_its_sources() -> None:
    t = table([route(["product.upserted"], ["kind:erp"], SALES)])

    assert t.destinations("wh", "product.upserted") == ()
    assert not t.routed("wh", "product.upserted")
    assert t.routed("erp", "product.upserted")


def test_type_globs_match_families() -> None:
    t = table([route(["shipment.*"], ["kind:carrier"], ["wh"])])

    assert t.destinations("post", "shipment.created") == ("wh",)
    assert t.destinations("post", "shipment.tracking") == ("wh",)
    assert t.destinations("post", "pick.completed") == ()


def test_native_type_patterns_route_native_messages() -> None:
    t = table([route(["native.shopify.*"], ["shop-nl"], ["hub"])])

    assert t.routed("shop-nl", "native.shopify.orders-create")
    assert t.to_hub("shop-nl", "native.shopify.orders-create")
    assert not t.routed("shop-nl", "native.woocommerce.order")


def test_star_source_takes_any_channel_but_not_the_hub() -> None:
    t = table([route(["return.requested"], ["*"], ["erp"])])

    assert t.destinations("wh", "return.requested") == ("erp",)
    assert t.destinations("bol", "return.requested") == ("erp",)
    assert t.destinations("hub", "return.requested") == ()


def test_hub_as_source_and_as_destination() -> None:
    t = table(
        [
            route(["order.placed"], SALES, ["hub"]),
            route(["salesorder.create"], ["hub"], ["kind:erp"]),
        ]
    )

    assert t.destinations("shop-nl", "order.placed") == ()
    assert t.to_hub("shop-nl", "order.placed")
    assert t.destinations("hub", "salesorder.create") == ("erp",)
    assert not t.to_hub("hub", "salesorder.create")


def test_unknown_source_is_an_error() -> None:
    t = table([route(["order.placed"], ["*"], ["hub"])])

    with pytest.raises(RoutingError, match="unknown source channel 'ghost'"):
        t.destinations("ghost", "order.placed")


# --- source exclusion and dedup -------------------------------------------------------------


def test_source_is_excluded_from_selectors() -> None:
    t = table([route(["return.requested"], SALES, SALES)])

    assert t.destinations("shop-uk", "return.requested") == ("shop-nl", "bol")


def test_source_is_kept_when_named_explicitly() -> None:
    t = table([route(["return.requested"], SALES, ["shop-uk", "erp"])])

    assert t.destinations("shop-uk", "return.requested") == ("shop-uk", "erp")


def test_destinations_are_deduplicated_in_first_seen_order() -> None:
    t = table(
        [
            route(["stock.level"], ["kind:erp"], ["wh", "kind:webshop"]),
            route(["stock.*"], ["erp"], ["shop-uk", "bol", "wh"]),
        ]
    )

    assert t.destinations("erp", "stock.level") == ("wh", "shop-nl", "shop-uk", "bol")


def test_unfiltered_lookup_is_served_from_the_cache() -> None:
    t = table([route(["product.upserted"], ["kind:erp"], SALES)])

    first = t.destinations("erp", "product.upserted")

    assert t.destinations("erp", "product.upserted") is first


# --- narrowing by the message's market and SKUs ---------------------------------------------


def test_market_narrows_selected_channels_but_not_marketless_ones() -> None:
    t = table([route(["price.changed"], ["kind:erp"], [*SALES, "wh"])])

    assert t.destinations("erp", "price.changed", market="nl") == ("shop-nl", "bol", "wh")
    assert t.destinations("erp", "price.changed", market="uk") == ("shop-uk", "wh")


def test_market_does_not_narrow_explicitly_named_channels() -> None:
    t = table([route(["price.changed"], ["kind:erp"], ["shop-uk"])])

    assert t.destinations("erp", "price.changed", market="nl") == ("shop-uk",)


def test_skus_narrow_to_channels_that_sell_them() -> None:
    bol = {"kind": "marketplace", "adapter": "bolcom", "market": "nl"}
    bol["stock"] = {"sells_skus": ["MUG-*", "TEE-?"]}
    t = table([route(["product.upserted"], ["kind:erp"], SALES)], bol=bol)

    assert t.destinations("erp", "product.upserted", skus=["MUG-1"]) == (
        "shop-nl",
        "shop-uk",
        "bol",
    )
    assert t.destinations("erp", "product.upserted", skus=["TEE-10"]) == ("shop-nl", "shop-uk")
    assert t.destinations("erp", "product.upserted", skus=["X", "TEE-1"])[-1] == "bol"


def test_channels_selling_uses_sells_skus_over_sales_channels_only() -> None:
    uk = {"kind": "webshop", "adapter": "woocommerce", "market": "uk"}
    uk["stock"] = {"sells_skus": ["UK-*"]}
    t = table([], **{"shop-uk": uk})

    assert t.channels_selling("UK-1") == ("shop-nl", "shop-uk", "bol")
    assert t.channels_selling("NL-1") == ("shop-nl", "bol")


# --- route filters --------------------------------------------------------------------------


def test_market_filter_applies_the_route_only_to_those_markets() -> None:
    t = table([route(["order.accepted"], ["hub"], ["post"], markets=["uk"])])

    assert t.destinations("hub", "order.accepted", market="uk") == ("post",)
    assert t.destinations("hub", "order.accepted", market="nl") == ()
    assert t.destinations("hub", "order.accepted") == ()  # no market: the filter fails closed


def test_sku_filter_needs_one_matching_sku() -> None:
    t = table([route(["shipment.request"], ["hub"], ["post"], sku_patterns=["GLASS-*"])])

    assert t.destinations("hub", "shipment.request", skus=["MUG-1", "GLASS-2"]) == ("post",)
    assert t.destinations("hub", "shipment.request", skus=["MUG-1"]) == ()
    assert t.destinations("hub", "shipment.request") == ()


def test_order_value_filter_is_inclusive_and_fails_without_a_value() -> None:
    t = table(
        [
            route(["order.accepted"], ["hub"], ["wh"], max_order_value="99.99"),
            route(["order.accepted"], ["hub"], ["post"], min_order_value="100"),
        ]
    )

    assert t.destinations("hub", "order.accepted", order_value=Decimal("99.99")) == ("wh",)
    assert t.destinations("hub", "order.accepted", order_value=Decimal("100")) == ("post",)
    assert t.destinations("hub", "order.accepted") == ()


def test_filtered_and_unfiltered_routes_combine() -> None:
    t = table(
        [
            route(["order.accepted"], ["hub"], ["erp"]),
            route(["order.accepted"], ["hub"], ["post"], min_order_value="500"),
        ]
    )

    assert t.destinations("hub", "order.accepted", order_value=Decimal("10")) == ("erp",)
    assert t.destinations("hub", "order.accepted", order_value=Decimal("900")) == ("erp", "post")


# --- origin ---------------------------------------------------------------------------------


def test_origin_resolves_to_the_given_channel() -> None:
    t = table([route(["return.received"], ["kind:warehouse"], ["kind:erp", "origin"])])

    assert t.destinations("wh", "return.received", origin="bol") == ("erp", "bol")


def test_origin_is_kept_even_when_it_is_the_source() -> None:
    t = table([route(["order.cancelled"], SALES, ["origin", "erp"])])

    assert t.destinations("shop-nl", "order.cancelled", origin="shop-nl") == ("shop-nl", "erp")


def test_origin_is_not_narrowed_by_market() -> None:
    t = table([route(["order.status"], ["hub"], ["origin"])])

    assert t.destinations("hub", "order.status", origin="shop-uk", market="nl") == ("shop-uk",)


def test_missing_or_unknown_origin_is_an_error_not_a_silent_drop() -> None:
    t = table([route(["order.status"], ["hub"], ["origin"])])

    with pytest.raises(RoutingError, match="no origin was given"):
        t.destinations("hub", "order.status")
    with pytest.raises(RoutingError, match="not a configured channel"):
        t.destinations("hub", "order.status", origin="ghost")


# --- the shipped example --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "type_", "facts", "expected"),
    [
        ("erp", "product.upserted", {}, ("webshop-nl", "webshop-uk", "bolcom")),
        ("erp", "price.changed", {"market": "nl"}, ("webshop-nl", "bolcom")),
        ("erp", "price.changed", {"market": "uk"}, ("webshop-uk",)),
        ("hub", "stock.availability", {"skus": ["SKU-1"]}, ("webshop-nl", "webshop-uk", "bolcom")),
        ("webshop-nl", "order.placed", {}, ()),
        ("hub", "salesorder.create", {}, ("erp",)),
        ("hub", "pick.request", {}, ("warehouse",)),
        ("hub", "shipment.request", {}, ("carrier",)),
        ("hub", "order.status", {"origin": "bolcom"}, ("bolcom",)),
        ("hub", "order.rejected", {"origin": "webshop-uk"}, ("webshop-uk",)),
        ("hub", "shipment.tracking", {"origin": "webshop-nl"}, ("webshop-nl",)),
        ("erp", "invoice.issued", {"origin": "bolcom"}, ("bolcom",)),
        ("warehouse", "return.received", {"origin": "webshop-uk"}, ("erp", "webshop-uk")),
    ],
)
def test_example_routes(
    source: str, type_: str, facts: dict[str, Any], expected: tuple[str, ...]
) -> None:
    t = RouteTable.from_config(load_config(EXAMPLE_CONFIG, env={}))

    assert t.destinations(source, type_, **facts) == expected


@pytest.mark.parametrize(
    ("source", "type_"),
    [
        ("webshop-nl", "order.placed"),
        ("erp", "stock.level"),
        ("warehouse", "stock.level"),
        ("erp", "salesorder.created"),
        ("warehouse", "pick.completed"),
        ("carrier", "shipment.created"),
        ("warehouse", "return.received"),
    ],
)
def test_example_hands_inbound_facts_to_the_hub(source: str, type_: str) -> None:
    t = RouteTable.from_config(load_config(EXAMPLE_CONFIG, env={}))

    assert t.to_hub(source, type_)


def test_a_bare_sku_string_is_one_sku() -> None:
    bol = {"kind": "marketplace", "adapter": "bolcom", "market": "nl"}
    bol["stock"] = {"sells_skus": ["TEE-1"]}
    t = table([route(["product.upserted"], ["kind:erp"], ["bol"])], bol=bol)

    assert t.destinations("erp", "product.upserted", skus="TEE-1", market="nl") == ("bol",)


def test_without_narrowing_facts_decide_filters_only_not_what_each_channel_sells() -> None:
    t = table(
        [
            route(["pick.request"], ["hub"], ["kind:warehouse"]),
            route(["pick.request"], ["hub"], ["erp"], min_order_value=5000),
            route(["pick.request"], ["hub"], ["post"], markets=["nl"]),
        ],
        wh2={"kind": "warehouse", "adapter": "canonical", "stock": {"sells_skus": ["B-*"]}},
    )
    assert t.filters_on_data("hub", "pick.request")
    facts: dict[str, Any] = {"skus": ("A-1",), "order_value": Decimal("10"), "market": "nl"}
    # Both warehouses, whatever wh2 lists; the value filter keeps the ERP out, the market
    # filter lets the carrier in.
    assert t.destinations("hub", "pick.request", narrow=False, **facts) == ("wh", "wh2", "post")
    assert "wh2" not in t.destinations("hub", "pick.request", **facts)  # narrowed: as listed
    assert t.market_of("shop-uk") == "uk" and t.market_of("wh") is None
    assert not t.filters_on_data("hub", "pick.cancel")
