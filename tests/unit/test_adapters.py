"""Adapter contract: golden fixtures both ways, precise refusals, and the registry wiring."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, get_args

import orjson
import pytest
from pydantic import ValidationError

from adapters import registry
from adapters.base import OutboundTranslator, TranslationError, Translator
from routes import EXAMPLE_CONFIG
from routes.loader import load_config
from schemas import (
    Message,
    OrderCancelled,
    OrderPlaced,
    PriceChanged,
    ProductUpserted,
    ShipmentRequest,
    StockLevel,
    model_for,
)
from schemas.orders import OrderLifecycle

FIXTURES = Path(__file__).resolve().parents[2] / "adapters" / "fixtures"
ADAPTERS = ("shopify", "woocommerce", "bolcom", "sendcloud", "odoo")
CHANNEL = {
    "shopify": "webshop-nl",
    "woocommerce": "webshop-uk",
    "bolcom": "bolcom",
    "sendcloud": "carrier",
    "odoo": "erp",
}

INBOUND = sorted(p for p in FIXTURES.glob("*/*.json") if not p.name.endswith(".canonical.json"))
OUTBOUND = sorted(FIXTURES.glob("*/outbound/*.canonical.json"))


def _id(path: Path) -> str:
    return str(path.relative_to(FIXTURES))


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _translator(key: str) -> Translator:
    translator = registry.load(key)
    assert translator is not None
    return translator


def _outbound(key: str) -> OutboundTranslator:
    translator = registry.load(key)
    assert isinstance(translator, OutboundTranslator)
    return translator


def _native(key: str, event: str) -> dict[str, Any]:
    data: dict[str, Any] = _load(FIXTURES / key / f"{event}.json")
    return data


def _translate(key: str, event: str, payload: dict[str, Any]) -> Message | None:
    return _translator(key).to_canonical(event, payload, CHANNEL[key])


def _canonical(path: Path) -> Message:
    document = _load(path)
    model = model_for(document["type"])
    assert model is not None
    return model.model_validate(document["data"])


# --- golden fixtures --------------------------------------------------------------------------


@pytest.mark.parametrize("path", INBOUND, ids=_id)
def test_native_fixture_translates_to_its_golden_canonical(path: Path) -> None:
    key, event = path.parent.name, path.stem
    payload = _load(path)
    untouched = copy.deepcopy(payload)

    message = _translate(key, event, payload)

    golden = _load(path.with_name(f"{event}.canonical.json"))
    if golden is None:  # an event the adapter acks and counts without a message
        assert message is None
    else:
        assert message is not None
        assert {"type": message.TYPE, "data": message.model_dump(mode="json")} == golden
    assert payload == untouched  # pure: the native payload is not modified


@pytest.mark.parametrize("path", OUTBOUND, ids=_id)
def test_canonical_fixture_translates_to_its_golden_native_body(path: Path) -> None:
    key = path.parent.parent.name
    body = _outbound(key).from_canonical(_canonical(path))

    golden = _load(path.with_name(path.name.replace(".canonical.json", ".json")))
    assert orjson.loads(orjson.dumps(body)) == golden  # JSON-ready as it is: no Decimal left


@pytest.mark.parametrize("key", ADAPTERS)
def test_every_native_event_and_outbound_type_has_a_golden_fixture(key: str) -> None:
    translator = _translator(key)
    inbound = {p.stem for p in INBOUND if p.parent.name == key}
    assert inbound == translator.native_events()
    outbound = {p.name.removesuffix(".canonical.json") for p in OUTBOUND if p.parts[-3] == key}
    if isinstance(translator, OutboundTranslator):
        assert outbound == translator.outbound_types()
    else:
        assert outbound == set()


# --- registry ---------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ADAPTERS)
def test_registry_loads_each_adapter_under_its_own_name(key: str) -> None:
    assert key in registry.known_keys()
    assert _translator(key).name == key


def test_every_adapter_the_example_config_names_is_registered() -> None:
    config = load_config(EXAMPLE_CONFIG)
    named = {channel.adapter for channel in config.channels.values()}
    assert named <= registry.known_keys()
    assert {"shopify", "woocommerce", "bolcom", "sendcloud"} <= named


def test_only_channels_with_an_api_of_their_own_translate_outbound() -> None:
    assert {k for k in ADAPTERS if isinstance(registry.load(k), OutboundTranslator)} == {
        "shopify",
        "woocommerce",
        "bolcom",
        "sendcloud",
    }


# --- refusals that name the native field ------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    """Set a dotted path (list indices as numbers) in a native payload."""

    def mutate(payload: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = payload
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value

    return mutate


def _drop(path: str) -> Mutation:
    def mutate(payload: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = payload
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[last]

    return mutate


REFUSALS: list[tuple[str, str, Mutation, str]] = [
    # adapter, event, what breaks the payload, the field the error must name
    ("shopify", "orders-create", _set("line_items.0.sku", None), "line_items[0].sku: missing"),
    ("shopify", "orders-create", _set("line_items.1.sku", ""), "line_items[1].sku: missing"),
    ("shopify", "orders-create", _set("line_items.1.quantity", "two"), "line_items[1].quantity"),
    ("shopify", "orders-create", _set("line_items.0.price", "19,95"), "line_items[0].price"),
    ("shopify", "orders-create", _set("shipping_address.country_code", "XX"), "country_code"),
    ("shopify", "orders-create", _set("shipping_address.country_code", "UK"), "'UK'"),
    ("shopify", "orders-create", _drop("shipping_address"), "shipping_address: missing"),
    ("shopify", "orders-create", _set("line_items", []), "line_items: missing or empty"),
    ("shopify", "orders-create", _set("created_at", "yesterday"), "created_at"),
    ("shopify", "orders-create", _set("taxes_included", "yes"), "taxes_included"),
    ("shopify", "orders-cancelled", _set("cancelled_at", None), "cancelled_at: missing"),
    ("woocommerce", "order-created", _set("line_items.1.sku", ""), "line_items[1].sku"),
    ("woocommerce", "order-created", _set("line_items.0.quantity", "1x"), "quantity"),
    ("woocommerce", "order-created", _set("line_items.0.quantity", 0), "line_items[0].quantity"),
    ("woocommerce", "order-created", _set("line_items.0.subtotal", "abc"), "subtotal"),
    ("woocommerce", "order-created", _set("shipping.country", "XX"), "shipping.country"),
    ("woocommerce", "order-created", _set("date_created_gmt", None), "date_created_gmt"),
    ("bolcom", "order", _drop("orderItems.0.offer.reference"), "orderItems[0].offer.reference"),
    ("bolcom", "order", _set("orderItems.1.quantity", "one"), "orderItems[1].quantity"),
    ("bolcom", "order", _set("orderItems.0.unitPrice", True), "orderItems[0].unitPrice"),
    ("bolcom", "order", _set("shipmentDetails.countryCode", "XX"), "shipmentDetails.country"),
    ("bolcom", "order", _set("orderItems.1.fulfilment.method", "FBB"), "fulfilment.method"),
    ("sendcloud", "parcel-created", _drop("parcel.parcel_items.0.sku"), "parcel_items[0].sku"),
    ("sendcloud", "parcel-created", _set("parcel.parcel_items.1.quantity", "x"), "quantity"),
    ("sendcloud", "parcel-created", _set("parcel.parcel_items.0.properties", {}), "line_id"),
    ("sendcloud", "parcel-created", _set("parcel.external_reference", ""), "external_ref"),
    ("sendcloud", "parcel-created", _set("parcel.tracking_number", None), "tracking_number"),
    ("sendcloud", "parcel-status-changed", _set("parcel.status.id", 2000), "parcel.status.id"),
    ("odoo", "stock-quant", _set("product_id", [42, "T-shirt"]), "product_id"),
    ("odoo", "stock-quant", _set("quantity", 2.5), "quantity: 2.5 is not a whole number"),
    ("odoo", "stock-quant", _set("location_id", 8), "location_id"),
    ("odoo", "product-product", _set("default_code", False), "default_code: missing"),
    ("odoo", "sale-order", _set("state", "draft"), "state: 'draft'"),
    ("odoo", "sale-order", _set("origin", False), "origin: missing"),
]


@pytest.mark.parametrize(
    ("key", "event", "mutate", "names"),
    REFUSALS,
    ids=[f"{k}/{e}/{n}" for k, e, _, n in REFUSALS],
)
def test_malformed_payload_is_refused_naming_the_native_field(
    key: str, event: str, mutate: Mutation, names: str
) -> None:
    payload = _native(key, event)
    mutate(payload)
    with pytest.raises(TranslationError) as caught:
        _translate(key, event, payload)
    assert names in str(caught.value)


SCHEMA_REFUSALS: list[tuple[str, str, Mutation, str]] = [
    # well-formed native data the canonical schema refuses, naming the canonical field
    ("shopify", "orders-create", _set("line_items.0.quantity", 0), "lines.0.quantity"),
    ("shopify", "orders-create", _set("line_items.0.price", "-1.00"), "lines.0.unit_price"),
    ("shopify", "orders-create", _set("line_items.1.sku", "MUG WHITE"), "lines.1.sku"),
    ("shopify", "orders-create", _set("currency", "EURO"), "currency"),
    ("bolcom", "order", _set("orderItems.0.unitPrice", 0.1 + 0.2), "lines.0.unit_price.amount"),
    ("odoo", "product-product", _set("barcode", "8712345678907"), "gtin"),
    ("odoo", "stock-quant", _set("quantity", -3.0), "on_hand"),
]


@pytest.mark.parametrize(
    ("key", "event", "mutate", "names"),
    SCHEMA_REFUSALS,
    ids=[f"{k}/{e}/{n}" for k, e, _, n in SCHEMA_REFUSALS],
)
def test_payload_the_schema_refuses_raises_validation_error_naming_the_field(
    key: str, event: str, mutate: Mutation, names: str
) -> None:
    payload = _native(key, event)
    mutate(payload)
    with pytest.raises(ValidationError) as caught:
        _translate(key, event, payload)
    locations = {".".join(str(p) for p in error["loc"]) for error in caught.value.errors()}
    assert any(loc.startswith(names) for loc in locations), locations


@pytest.mark.parametrize("key", ADAPTERS)
def test_unknown_native_event_is_refused(key: str) -> None:
    translator = _translator(key)
    assert "orders-delete" not in translator.native_events()
    with pytest.raises(TranslationError, match="no native event 'orders-delete'"):
        translator.to_canonical("orders-delete", {}, CHANNEL[key])


@pytest.mark.parametrize("key", ADAPTERS)
def test_a_payload_that_is_not_an_object_is_refused(key: str) -> None:
    translator = _translator(key)
    event = sorted(translator.native_events())[0]
    with pytest.raises(TranslationError, match="payload: expected an object, got list"):
        translator.to_canonical(event, [1, 2], CHANNEL[key])  # type: ignore[arg-type]


# --- decisions worth pinning down -------------------------------------------------------------


def test_a_float_price_is_read_by_its_text_not_its_binary_value() -> None:
    payload = _native("bolcom", "order")
    payload["orderItems"][0]["unitPrice"] = 19.99  # binary 19.989999999999998436805981327779591

    order = _translate("bolcom", "order", payload)

    assert isinstance(order, OrderPlaced)
    assert order.lines[0].unit_price.amount == Decimal("19.99")


def test_woocommerce_net_prices_stay_net_and_say_so() -> None:
    payload = _native("woocommerce", "order-created")
    payload["prices_include_tax"] = False

    order = _translate("woocommerce", "order-created", payload)

    assert isinstance(order, OrderPlaced)
    assert order.prices_include_vat is False
    assert [line.unit_price.amount for line in order.lines] == [Decimal("20.00"), Decimal("8.00")]
    assert order.totals is not None and order.totals.shipping is not None
    assert order.totals.shipping.amount == Decimal("4.00")


def test_woocommerce_order_with_nothing_to_ship_uses_the_billing_address() -> None:
    payload = _native("woocommerce", "order-created")
    payload["shipping"] = {key: "" for key in payload["shipping"]}

    order = _translate("woocommerce", "order-created", payload)

    assert isinstance(order, OrderPlaced)
    assert order.shipping_address.line1 == "27 Example Lane"


def test_shopify_tax_lines_of_one_item_add_up_to_its_rate() -> None:
    payload = _native("shopify", "orders-create")
    payload["line_items"][0]["tax_lines"] = [{"rate": 0.0625}, {"rate": 0.02}]

    order = _translate("shopify", "orders-create", payload)

    assert isinstance(order, OrderPlaced)
    assert order.lines[0].vat_rate == Decimal("0.0825")


def test_odoo_quant_without_reserved_quantity_commits_nothing() -> None:
    payload = _native("odoo", "stock-quant")
    del payload["reserved_quantity"]

    level = _translate("odoo", "stock-quant", payload)

    assert isinstance(level, StockLevel)
    assert (level.on_hand, level.committed) == (37, 0)


def test_sendcloud_multi_collo_declares_the_heaviest_parcel_and_its_count() -> None:
    request = _canonical(FIXTURES / "sendcloud/outbound/shipment.request.canonical.json")
    assert isinstance(request, ShipmentRequest)
    several = request.model_copy(
        update={
            "parcels": (request.parcels[0].model_copy(update={"weight_grams": 800}),) * 2
            + (request.parcels[0],),
            "service": "standard",
        }
    )

    body = _outbound("sendcloud").from_canonical(several)["parcel"]

    assert (body["quantity"], body["weight"]) == (3, "1.250")
    assert body["apply_shipping_rules"] is True and "shipment" not in body


def test_outbound_refuses_a_type_the_channel_cannot_take() -> None:
    cancelled = OrderCancelled(
        channel="webshop-nl", channel_order_id="1", reason="x", cancelled_by="hub"
    )
    with pytest.raises(TranslationError, match=r"shopify cannot write 'order\.cancelled'"):
        _outbound("shopify").from_canonical(cancelled)


def test_bolcom_refuses_a_price_it_cannot_show() -> None:
    price = _canonical(FIXTURES / "bolcom/outbound/price.changed.canonical.json")
    assert isinstance(price, PriceChanged)
    in_pounds = price.model_copy(
        update={"price": price.price.model_copy(update={"currency": "GBP"})}
    )
    net = price.model_copy(update={"includes_vat": False})

    with pytest.raises(TranslationError, match=r"price\.currency"):
        _outbound("bolcom").from_canonical(in_pounds)
    with pytest.raises(TranslationError, match="includes_vat"):
        _outbound("bolcom").from_canonical(net)


def test_woocommerce_has_a_status_for_every_state_but_returned_which_needs_no_call() -> None:
    status = _canonical(FIXTURES / "woocommerce/outbound/order.status.canonical.json")
    woo = _outbound("woocommerce")
    for state in get_args(OrderLifecycle):
        body = woo.from_canonical(status.model_copy(update={"status": state}))
        assert (body is None) == (state == "returned"), state


def test_a_shopify_order_is_taken_once_paid_or_authorized() -> None:
    payload = _native("shopify", "orders-create")
    shopify = _translator("shopify")
    for unpaid in ("pending", "partially_paid", "voided"):
        assert (
            shopify.to_canonical("orders-create", {**payload, "financial_status": unpaid}, "s")
            is None
        )
    for taken in ("paid", "authorized"):
        order = shopify.to_canonical("orders-create", {**payload, "financial_status": taken}, "s")
        assert isinstance(order, OrderPlaced)
    paid = shopify.to_canonical("orders-paid", payload, "s")  # the pending one, once paid
    assert isinstance(paid, OrderPlaced) and paid.channel_order_id == str(payload["id"])


def test_shopify_lines_the_warehouse_does_not_ship_are_left_out() -> None:
    payload = _native("shopify", "orders-create")
    card = {**payload["line_items"][0], "id": 99, "sku": "", "gift_card": True}
    card["requires_shipping"] = False
    tip = {**card, "id": 98, "gift_card": False, "title": "Tip"}
    mixed = {**payload, "line_items": [*payload["line_items"], card, tip]}
    order = _translate("shopify", "orders-create", mixed)
    assert isinstance(order, OrderPlaced)
    assert [line.sku for line in order.lines] == [i["sku"] for i in payload["line_items"]]
    assert order.totals is None  # the order's totals would count the gift card and the tip
    # A gift card alone holds nothing for the warehouse; a custom item to ship without a SKU
    # cannot be fulfilled and is refused, naming the line.
    assert _translate("shopify", "orders-create", {**payload, "line_items": [card]}) is None
    custom = {**tip, "requires_shipping": True}
    with pytest.raises(TranslationError, match=r"line_items\[0\]\.sku"):
        _translate("shopify", "orders-create", {**payload, "line_items": [custom]})


def test_a_shopify_order_with_nothing_to_ship_uses_its_billing_address() -> None:
    payload = _native("shopify", "orders-create")
    digital = [{**item, "requires_shipping": False} for item in payload["line_items"]]
    order = _translate(
        "shopify",
        "orders-create",
        {**payload, "line_items": digital, "shipping_address": None},
    )
    assert isinstance(order, OrderPlaced)
    assert order.shipping_address.city == payload["billing_address"]["city"]
    with pytest.raises(TranslationError, match="shipping_address"):
        _translate("shopify", "orders-create", {**payload, "shipping_address": None})


def test_an_inactive_product_becomes_a_draft_on_shopify_and_woocommerce() -> None:
    product = _canonical(FIXTURES / "shopify/outbound/product.upserted.canonical.json")
    assert isinstance(product, ProductUpserted)
    off = product.model_copy(update={"active": False, "description": None, "image_urls": ()})
    shopify = _outbound("shopify").from_canonical(off)
    woo = _outbound("woocommerce").from_canonical(off)
    assert shopify is not None and woo is not None
    assert shopify["product"]["status"] == "draft" and "images" not in shopify["product"]
    assert woo["status"] == "draft" and woo["description"] == ""


def test_a_bolcom_return_of_fbb_items_is_bolcoms_to_book() -> None:
    payload = _native("bolcom", "return")
    assert _translate("bolcom", "return", {**payload, "fulfilmentMethod": "FBB"}) is None


def test_a_bolcom_return_of_several_orders_is_refused() -> None:
    payload = _native("bolcom", "return")
    other = {**payload["returnItems"][0], "rmaId": "31234568", "orderId": "B7X9Q2"}
    with pytest.raises(TranslationError, match=r"items of 2 orders \(A2K8JV0XL3, B7X9Q2\)"):
        _translate("bolcom", "return", {**payload, "returnItems": [*payload["returnItems"], other]})
