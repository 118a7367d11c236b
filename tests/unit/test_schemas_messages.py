"""Every canonical message family: realistic payloads validate and round-trip; bad ones don't."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from schemas import (
    CANONICAL_TYPES,
    CloudEvent,
    Message,
    OrderPlaced,
    ProductUpserted,
    ReserveStock,
    ReturnReceived,
    StockLevel,
    model_for,
    new_event,
)

AMS = {
    "name": "Anna de Vries",
    "line1": "Keizersgracht 123",
    "line2": "3e verdieping",
    "postal_code": "1015 CJ",
    "city": "Amsterdam",
    "country": "NL",
    "phone": "+31 20 123 4567",
    "email": "anna@example.nl",
}
BERLIN = {
    "name": "Jonas Weber",
    "line1": "Torstr. 5",
    "postal_code": "10119",
    "city": "Berlin",
    "country": "DE",
}
LINES = [
    {
        "line_id": "1",
        "sku": "TSHIRT-RED-M",
        "quantity": 2,
        "unit_price": {"amount": "19.95", "currency": "EUR"},
        "vat_rate": "0.21",
    },
    {
        "line_id": "2",
        "sku": "MUG/WHITE",
        "quantity": 1,
        "unit_price": {"amount": "8.50", "currency": "EUR"},
    },
]
ORDER = {
    "channel": "webshop-nl",
    "channel_order_id": "NL-100234",
    "placed_at": "2026-11-27T10:15:00+01:00",
    "currency": "EUR",
    "lines": LINES,
    "shipping_address": AMS,
    "billing_address": BERLIN,
    "customer_ref": "C-778",
    "shipping_method": "postnl-standard",
    "totals": {
        "total": {"amount": "53.35", "currency": "EUR"},
        "shipping": {"amount": "4.95", "currency": "EUR"},
        "vat": {"amount": "9.26", "currency": "EUR"},
    },
}
PICK_LINES = [{"line_id": "1", "sku": "TSHIRT-RED-M", "quantity": 2}]

SAMPLES: dict[str, dict[str, Any]] = {
    "product.upserted": {
        "sku": "GIFTBOX-1",
        "name": "Gift box: T-shirt and mug",
        "description": "Our bestseller pair.",
        "brand": "Acme",
        "gtin": "8712345678906",
        "attributes": {"colour": "red", "size": "M"},
        "substitution_group": "gift-boxes",
        "components": [{"sku": "TSHIRT-RED-M", "quantity": 1}, {"sku": "MUG/WHITE", "quantity": 2}],
        "weight_grams": 850,
        "image_urls": ["https://cdn.example.com/giftbox-1.jpg"],
        "active": True,
        "version": 7,
    },
    "price.changed": {
        "sku": "TSHIRT-RED-M",
        "price_list": "nl-retail",
        "price": {"amount": "19.95", "currency": "EUR"},
        "includes_vat": True,
        "vat_rate": "0.21",
        "valid_from": "2026-12-01T00:00:00+01:00",
        "version": 3,
    },
    "stock.level": {
        "sku": "TSHIRT-RED-M",
        "location": "WH-AMS",
        "on_hand": 42,
        "committed": 5,
        "version": 1093,
        "included_order_ids": ["ord-1", "ord-2"],
        "incoming": [{"quantity": 100, "expected_date": "2026-12-10"}],
    },
    "stock.availability": {
        "channel": "webshop-nl",
        "sku": "TSHIRT-RED-M",
        "available": 30,
        "next_available_date": None,
        "computed_at": "2026-11-27T09:15:00.123456Z",
        "version": 1093,
    },
    "stock.reserve": {
        "reservation_id": "res-1",
        "channel": "webshop-nl",
        "order_ref": "NL-100234",
        "lines": [{"sku": "TSHIRT-RED-M", "quantity": 2}, {"sku": "MUG/WHITE", "quantity": 1}],
    },
    "stock.reserved": {
        "reservation_id": "res-1",
        "channel": "webshop-nl",
        "order_ref": "NL-100234",
        "lines": [{"sku": "TSHIRT-RED-M", "quantity": 2}],
    },
    "stock.reservation_refused": {
        "reservation_id": "res-2",
        "channel": "marketplace-bol",
        "order_ref": "BOL-9",
        "shortages": [{"sku": "TSHIRT-RED-M", "requested": 3, "available": 1}],
    },
    "stock.release": {"reservation_id": "res-1", "reason": "order cancelled by buyer"},
    "availability.query": {"channel": "webshop-de", "skus": ["TSHIRT-RED-M", "MUG/WHITE"]},
    "availability.answer": {
        "channel": "webshop-de",
        "items": [
            {
                "sku": "TSHIRT-RED-M",
                "available": 0,
                "next_available_date": "2026-12-10",
                "promised_delivery_date": "2026-12-12",
                "alternatives": [{"sku": "TSHIRT-BLUE-M", "available": 14}],
            },
            {"sku": "MUG/WHITE", "available": 8, "promised_delivery_date": "2026-11-30"},
        ],
    },
    "order.placed": ORDER,
    "order.accepted": {"order_id": "ord-1", "channel": "webshop-nl", "channel_order_id": "NL-1"},
    "order.rejected": {
        "channel": "webshop-nl",
        "channel_order_id": "NL-100235",
        "reasons": [
            {
                "code": "unknown_sku",
                "message": "SKU NOPE-1 is not in the catalog",
                "line_id": "1",
                "sku": "NOPE-1",
            },
            {"code": "address_incomplete", "message": "shipping address lacks postal_code"},
        ],
    },
    "order.cancelled": {
        "channel": "webshop-nl",
        "channel_order_id": "NL-100234",
        "order_id": "ord-1",
        "reason": "buyer changed their mind",
        "cancelled_by": "channel",
    },
    "order.status": {
        "order_id": "ord-1",
        "channel": "webshop-nl",
        "channel_order_id": "NL-100234",
        "status": "partially_shipped",
        "detail": "1 of 2 lines shipped",
    },
    "salesorder.create": {
        **ORDER,
        "order_id": "ord-1",
        "reservation_id": "res-1",
        "price_list": "nl-retail",
    },
    "salesorder.created": {"order_id": "ord-1", "erp_order_number": "SO-2026-004711"},
    "salesorder.refused": {"order_id": "ord-1", "reason": "customer C-778 is blocked"},
    "salesorder.cancel": {"order_id": "ord-1", "erp_order_number": "SO-1", "reason": "cancelled"},
    "pick.request": {
        "order_id": "ord-1",
        "pick_id": "pick-1",
        "lines": PICK_LINES,
        "ship_to": AMS,
        "location": "WH-AMS",
        "shipping_method": "postnl-standard",
    },
    "pick.completed": {"order_id": "ord-1", "pick_id": "pick-1", "lines": PICK_LINES, "parcels": 1},
    "pick.cancel": {"order_id": "ord-1", "reason": "order cancelled"},
    "shipment.request": {
        "order_id": "ord-1",
        "shipment_id": "shp-1",
        "carrier": "postnl",
        "service": "standard",
        "ship_to": AMS,
        "parcels": [{"weight_grams": 900}],
        "lines": PICK_LINES,
    },
    "shipment.cancel": {
        "order_id": "ord-1",
        "shipment_id": "shp-1",
        "reason": "cancelled by channel: buyer changed mind",
        "lines": PICK_LINES,
    },
    "shipment.created": {
        "order_id": "ord-1",
        "shipment_id": "shp-1",
        "carrier": "postnl",
        "tracking_number": "3SABCD1234567",
        "tracking_url": "https://jouw.postnl.nl/track-and-trace/3SABCD1234567-NL-1015CJ",
        "label_url": "https://labels.example.com/shp-1.pdf",
        "lines": PICK_LINES,
    },
    "shipment.tracking": {
        "channel": "webshop-nl",
        "channel_order_id": "NL-100234",
        "order_id": "ord-1",
        "shipment_id": "shp-1",
        "carrier": "postnl",
        "tracking_number": "3SABCD1234567",
        "tracking_url": "https://jouw.postnl.nl/track-and-trace/3SABCD1234567-NL-1015CJ",
        "lines": PICK_LINES,
    },
    "invoice.issued": {
        "order_id": "ord-1",
        "invoice_number": "INV-2026-0042",
        "issued_at": "2026-11-28T08:00:00Z",
        "total": {"amount": "53.35", "currency": "EUR"},
        "vat_total": {"amount": "9.26", "currency": "EUR"},
        "pdf_url": "https://erp.example.com/invoices/INV-2026-0042.pdf",
    },
    "return.requested": {
        "channel": "webshop-nl",
        "channel_order_id": "NL-100234",
        "return_id": "ret-1",
        "lines": [{"sku": "TSHIRT-RED-M", "quantity": 1, "line_id": "1"}],
        "reason": "too small",
    },
    "return.received": {
        "channel": "webshop-nl",
        "channel_order_id": "NL-100234",
        "return_id": "ret-1",
        "lines": [{"sku": "TSHIRT-RED-M", "quantity": 1, "condition": "sellable"}],
        "location": "WH-AMS",
    },
}


def errors(exc: ValidationError) -> dict[tuple[int | str, ...], str]:
    return {tuple(e["loc"]): e["type"] for e in exc.errors()}


def test_every_canonical_type_has_a_sample() -> None:
    assert set(SAMPLES) == set(CANONICAL_TYPES)


@pytest.mark.parametrize("type_name", sorted(SAMPLES))
def test_good_payload_round_trips_through_json(type_name: str) -> None:
    model = CANONICAL_TYPES[type_name]
    message = model.model_validate(SAMPLES[type_name])
    wire = orjson.dumps(message.model_dump(mode="json"))
    again = model.model_validate(orjson.loads(wire))
    assert again == message
    assert orjson.dumps(again.model_dump(mode="json")) == wire


@pytest.mark.parametrize("type_name", sorted(SAMPLES))
def test_good_payload_round_trips_inside_a_cloudevent(type_name: str) -> None:
    model = CANONICAL_TYPES[type_name]
    message = model.model_validate(SAMPLES[type_name])
    event = new_event(source="erp", type=model.TYPE, data=message.model_dump(mode="json"))
    received = CloudEvent.from_bytes(event.to_bytes())
    found = model_for(received.type)
    assert found is model
    assert found.model_validate(received.data) == message


@pytest.mark.parametrize("type_name", sorted(SAMPLES))
def test_unknown_field_is_rejected_at_that_field(type_name: str) -> None:
    payload = SAMPLES[type_name] | {"colour_of_the_day": "blue"}
    with pytest.raises(ValidationError) as info:
        CANONICAL_TYPES[type_name].model_validate(payload)
    assert errors(info.value) == {("colour_of_the_day",): "extra_forbidden"}


@pytest.mark.parametrize("type_name", sorted(SAMPLES))
def test_messages_are_frozen(type_name: str) -> None:
    message: Message = CANONICAL_TYPES[type_name].model_validate(SAMPLES[type_name])
    field = next(iter(type(message).model_fields))
    with pytest.raises(ValidationError, match="frozen"):
        setattr(message, field, "changed")


def bad(type_name: str, path: tuple[int | str, ...], value: Any) -> dict[str, Any]:
    """The sample of ``type_name`` with the value at ``path`` replaced (or removed if ...)."""
    payload = copy.deepcopy(SAMPLES[type_name])
    target: Any = payload
    for key in path[:-1]:
        target = target[key]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return payload


REJECTIONS = [
    # (type, path to change, new value, expected error location, expected error type)
    ("order.placed", ("lines", 0, "quantity"), -1, ("lines", 0, "quantity"), "greater_than_equal"),
    ("order.placed", ("lines", 1, "quantity"), 0, ("lines", 1, "quantity"), "greater_than_equal"),
    ("order.placed", ("currency",), "EURO", ("currency",), "string_pattern_mismatch"),
    (
        "order.placed",
        ("lines", 0, "unit_price", "amount"),
        19.95123,
        ("lines", 0, "unit_price", "amount"),
        "decimal_max_places",
    ),
    (
        "order.placed",
        ("lines", 0, "unit_price", "amount"),
        "-1",
        ("lines", 0, "unit_price"),
        "negative_price",
    ),
    (
        "order.placed",
        ("lines", 0, "sku"),
        "BAD SKU",
        ("lines", 0, "sku"),
        "string_pattern_mismatch",
    ),
    ("order.placed", ("lines",), [], ("lines",), "too_short"),
    (
        "order.placed",
        ("shipping_address", "country"),
        "XX",
        ("shipping_address", "country"),
        "country_code",
    ),
    ("order.placed", ("placed_at",), "2026-11-27T10:15:00", ("placed_at",), "timezone_aware"),
    ("order.placed", ("channel",), "Webshop NL", ("channel",), "string_pattern_mismatch"),
    ("order.placed", ("channel_order_id",), ..., ("channel_order_id",), "missing"),
    ("order.rejected", ("reasons",), [], ("reasons",), "too_short"),
    (
        "order.rejected",
        ("reasons", 0, "code"),
        "Unknown SKU",
        ("reasons", 0, "code"),
        "string_pattern_mismatch",
    ),
    ("order.cancelled", ("cancelled_by",), "buyer", ("cancelled_by",), "literal_error"),
    ("order.status", ("status",), "lost", ("status",), "literal_error"),
    ("product.upserted", ("gtin",), "8712345678907", ("gtin",), "value_error"),
    ("product.upserted", ("gtin",), "12345", ("gtin",), "string_pattern_mismatch"),
    (
        "product.upserted",
        ("components", 0, "quantity"),
        0,
        ("components", 0, "quantity"),
        "greater_than_equal",
    ),
    ("product.upserted", ("version",), -1, ("version",), "greater_than_equal"),
    (
        "price.changed",
        ("price", "currency"),
        "eur",
        ("price", "currency"),
        "string_pattern_mismatch",
    ),
    ("price.changed", ("price", "amount"), "-0.01", ("price",), "negative_price"),
    ("price.changed", ("vat_rate",), "21", ("vat_rate",), "less_than_equal"),
    ("stock.level", ("on_hand",), -3, ("on_hand",), "greater_than_equal"),
    ("stock.level", ("on_hand",), "42", ("on_hand",), "int_type"),
    (
        "stock.level",
        ("incoming", 0, "quantity"),
        0,
        ("incoming", 0, "quantity"),
        "greater_than_equal",
    ),
    (
        "stock.level",
        ("incoming", 0, "expected_date"),
        "soon",
        ("incoming", 0, "expected_date"),
        "date_from_datetime_parsing",
    ),
    ("stock.availability", ("available",), -1, ("available",), "greater_than_equal"),
    ("stock.reserve", ("lines",), [], ("lines",), "too_short"),
    ("stock.reserve", ("lines", 0, "quantity"), -2, ("lines", 0, "quantity"), "greater_than_equal"),
    ("availability.query", ("skus",), [], ("skus",), "too_short"),
    ("availability.query", ("skus",), [f"SKU-{i}" for i in range(101)], ("skus",), "too_long"),
    (
        "availability.answer",
        ("items", 0, "alternatives", 0, "available"),
        0,
        ("items", 0, "alternatives", 0, "available"),
        "greater_than_equal",
    ),
    ("salesorder.create", ("order_id",), "", ("order_id",), "string_too_short"),
    ("pick.request", ("lines",), [], ("lines",), "too_short"),
    ("pick.request", ("ship_to", "country"), "XX", ("ship_to", "country"), "country_code"),
    ("shipment.request", ("parcels",), [], ("parcels",), "too_short"),
    (
        "shipment.created",
        ("tracking_url",),
        "javascript:alert(1)",
        ("tracking_url",),
        "string_pattern_mismatch",
    ),
    (
        "invoice.issued",
        ("total", "currency"),
        "EURO",
        ("total", "currency"),
        "string_pattern_mismatch",
    ),
    (
        "return.received",
        ("lines", 0, "condition"),
        "meh",
        ("lines", 0, "condition"),
        "literal_error",
    ),
    ("return.requested", ("lines",), [], ("lines",), "too_short"),
]


@pytest.mark.parametrize(("type_name", "path", "value", "loc", "error"), REJECTIONS)
def test_bad_payload_is_rejected_at_the_right_field(
    type_name: str, path: tuple[int | str, ...], value: Any, loc: tuple[int | str, ...], error: str
) -> None:
    with pytest.raises(ValidationError) as info:
        CANONICAL_TYPES[type_name].model_validate(bad(type_name, path, value))
    assert errors(info.value) == {loc: error}


def test_order_lines_must_be_in_the_order_currency() -> None:
    payload = bad("order.placed", ("lines", 1, "unit_price", "currency"), "USD")
    with pytest.raises(ValidationError, match="amounts in USD on a document in EUR"):
        OrderPlaced.model_validate(payload)


def test_order_totals_must_be_in_the_order_currency() -> None:
    payload = bad("order.placed", ("totals", "vat", "currency"), "GBP")
    with pytest.raises(ValidationError, match="amounts in GBP on a document in EUR"):
        OrderPlaced.model_validate(payload)


def test_order_line_ids_are_unique() -> None:
    payload = bad("order.placed", ("lines", 1, "line_id"), "1")
    with pytest.raises(ValidationError, match="line_id values must be unique"):
        OrderPlaced.model_validate(payload)


def test_order_accepts_an_incomplete_address_for_the_validator_to_judge() -> None:
    order = OrderPlaced.model_validate(bad("order.placed", ("shipping_address", "postal_code"), ""))
    assert order.shipping_address.missing_fields_for_country() == ("postal_code",)


def test_order_line_total_is_exact() -> None:
    order = OrderPlaced.model_validate(ORDER)
    assert [str(line.line_total.amount) for line in order.lines] == ["39.90", "8.50"]


def test_order_has_at_most_500_lines() -> None:
    lines = [LINES[1] | {"line_id": str(i)} for i in range(501)]
    with pytest.raises(ValidationError) as info:
        OrderPlaced.model_validate(ORDER | {"lines": lines})
    assert errors(info.value) == {("lines",): "too_long"}


def test_kit_cannot_contain_itself_or_repeat_a_component() -> None:
    selfish = bad("product.upserted", ("components", 0, "sku"), "GIFTBOX-1")
    with pytest.raises(ValidationError, match="cannot contain itself"):
        ProductUpserted.model_validate(selfish)
    twice = bad("product.upserted", ("components", 1, "sku"), "TSHIRT-RED-M")
    with pytest.raises(ValidationError, match="more than once"):
        ProductUpserted.model_validate(twice)


def test_simple_product_is_not_a_kit() -> None:
    simple = ProductUpserted.model_validate({"sku": "MUG/WHITE", "name": "Mug", "version": 0})
    assert not simple.is_kit
    assert simple.components == ()
    assert ProductUpserted.model_validate(SAMPLES["product.upserted"]).is_kit


def test_stock_level_defaults_to_no_commitment_and_nothing_incoming() -> None:
    level = StockLevel.model_validate({"sku": "A1", "location": "WH", "on_hand": 0, "version": 0})
    assert (level.committed, level.included_order_ids, level.incoming) == (0, (), ())


def test_reservation_adds_up_repeated_skus() -> None:
    lines = [
        {"sku": "A1", "quantity": 2},
        {"sku": "B2", "quantity": 1},
        {"sku": "A1", "quantity": 3},
    ]
    reserve = ReserveStock.model_validate(SAMPLES["stock.reserve"] | {"lines": lines})
    assert reserve.quantities_by_sku() == {"A1": 5, "B2": 1}


def test_a_shortage_must_actually_be_short() -> None:
    payload = bad("stock.reservation_refused", ("shortages", 0, "available"), 3)
    with pytest.raises(ValidationError, match="available must be below requested"):
        CANONICAL_TYPES["stock.reservation_refused"].model_validate(payload)


def test_return_received_must_name_its_order() -> None:
    by_order_id = {
        "order_id": "ord-1",
        "return_id": "r",
        "lines": SAMPLES["return.received"]["lines"],
    }
    assert ReturnReceived.model_validate(by_order_id).order_id == "ord-1"
    anonymous = bad("return.received", ("channel_order_id",), ...)
    with pytest.raises(ValidationError, match="give order_id, or both channel"):
        ReturnReceived.model_validate(anonymous)


def test_invoice_total_and_vat_share_a_currency() -> None:
    payload = bad("invoice.issued", ("vat_total", "currency"), "USD")
    with pytest.raises(ValidationError, match="amounts in USD on a document in EUR"):
        CANONICAL_TYPES["invoice.issued"].model_validate(payload)


def test_money_in_messages_serialises_as_strings() -> None:
    order = OrderPlaced.model_validate(ORDER)
    dumped = order.model_dump(mode="json")
    assert dumped["lines"][0]["unit_price"] == {"amount": "19.95", "currency": "EUR"}
    assert dumped["lines"][0]["vat_rate"] == "0.21"
    assert dumped["placed_at"] == "2026-11-27T10:15:00+01:00"
