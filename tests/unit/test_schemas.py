"""The shared constrained types, the type registry and the JSON Schema export."""

from __future__ import annotations

import inspect
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import TypeAdapter, ValidationError

import schemas
from schemas import CANONICAL_TYPES, Address, Message, Money, export_json_schemas, model_for
from schemas.common import (
    COUNTRY_CODES,
    CURRENCY_CODES,
    MAX_QUANTITY,
    MAX_VERSION,
    ChannelName,
    PositiveQuantity,
    Price,
    Quantity,
    Sku,
    VatRate,
    minor_units,
)
from schemas.inventory import StockLevel
from schemas.registry import MESSAGE_CLASSES, build_registry


def error_types(exc: ValidationError) -> dict[tuple[int | str, ...], str]:
    return {tuple(e["loc"]): e["type"] for e in exc.errors()}


# -- Money -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("12.50", "12.50"),
        ("0.0001", "0.0001"),
        (12, "12"),
        (Decimal("99.99"), "99.99"),
        (12.5, "12.5"),
        (19.99, "19.99"),  # a JSON number with few digits is read by its text, not its binary
        ("1e3", "1000"),  # no exponent ever reaches the JSON output
        ("-0", "0"),
        ("-4.20", "-4.20"),  # credits are allowed on plain Money
        ("12.500000", "12.5000"),  # trailing zeros beyond 4 decimals are trimmed, not refused
    ],
)
def test_money_accepts_exact_amounts_and_serialises_them_as_strings(
    given: Any, expected: str
) -> None:
    money = Money(amount=given, currency="EUR")
    assert money.model_dump(mode="json") == {"amount": expected, "currency": "EUR"}
    assert isinstance(money.amount, Decimal)
    assert Money.model_validate_json(orjson.dumps(money.model_dump(mode="json"))) == money


@pytest.mark.parametrize(
    ("given", "error"),
    [
        (12.34567, "decimal_max_places"),
        ("12.34567", "decimal_max_places"),
        (0.1 + 0.2, "inexact_float"),  # 0.30000000000000004: not what anybody typed
        (12345678901234.5678, "inexact_float"),  # more digits than a float carries
        ("NaN", "finite_number"),
        ("Infinity", "finite_number"),
        (float("inf"), "finite_number"),
        (True, "decimal_type"),
        ("12,50", "decimal_parsing"),
        ("1234567890123456789", "decimal_max_digits"),
    ],
)
def test_money_rejects_inexact_or_malformed_amounts(given: Any, error: str) -> None:
    with pytest.raises(ValidationError) as info:
        Money(amount=given, currency="EUR")
    assert error_types(info.value) == {("amount",): error}


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("EURO", "string_pattern_mismatch"),
        ("eur", "string_pattern_mismatch"),
        ("ABC", "currency_code"),
        ("XXX", "currency_code"),  # "no currency" is not a price
        ("XAU", "currency_code"),  # gold is not what a webshop prices in
        ("HRK", "currency_code"),  # withdrawn when Croatia took the euro
    ],
)
def test_currency_must_be_an_active_iso_4217_code(code: str, error: str) -> None:
    with pytest.raises(ValidationError) as info:
        Money(amount="1", currency=code)
    assert error_types(info.value) == {("currency",): error}


def test_currency_list_holds_the_real_codes() -> None:
    assert {"EUR", "USD", "GBP", "JPY", "CHF", "SEK", "PLN", "KWD", "XOF", "XCG"} <= CURRENCY_CODES
    assert len(CURRENCY_CODES) > 150
    assert all(len(c) == 3 and c.isupper() for c in CURRENCY_CODES)


def test_money_is_immutable_and_hashable() -> None:
    money = Money(amount="1.00", currency="EUR")
    with pytest.raises(ValidationError):
        money.amount = Decimal(2)  # type: ignore[misc]
    assert money in {Money(amount="1.0", currency="EUR")}  # Decimal equality, not text


def test_money_rejects_unknown_fields() -> None:
    with pytest.raises(ValidationError) as info:
        Money.model_validate({"amount": "1", "currency": "EUR", "cents": 100})
    assert error_types(info.value) == {("cents",): "extra_forbidden"}


@pytest.mark.parametrize(
    ("currency", "amount", "rounded", "units"),
    [("EUR", "12.345", "12.34", 2), ("JPY", "1234.5", "1234", 0), ("KWD", "1.23456", "1.235", 3)],
)
def test_money_rounds_to_the_currency_minor_units(
    currency: str, amount: str, rounded: str, units: int
) -> None:
    assert minor_units(currency) == units
    money = Money(amount=Decimal(amount).quantize(Decimal("0.0001")), currency=currency)
    assert money.rounded().amount == Decimal(rounded)
    assert money.rounded().currency == currency


def test_price_refuses_a_negative_amount() -> None:
    adapter: TypeAdapter[Money] = TypeAdapter(Price)
    assert adapter.validate_python({"amount": "0", "currency": "EUR"}).amount == 0
    with pytest.raises(ValidationError) as info:
        adapter.validate_python({"amount": "-0.01", "currency": "EUR"})
    assert error_types(info.value) == {(): "negative_price"}


# -- scalar constraints ------------------------------------------------------------------------


@pytest.mark.parametrize("sku", ["A", "ABC-123", "shirt.red/XL", "9_9", "x" * 64])
def test_sku_accepts_erp_style_codes(sku: str) -> None:
    assert TypeAdapter(Sku).validate_python(sku) == sku


@pytest.mark.parametrize("sku", ["", "-ABC", "AB C", "ABC#1", "é1", "x" * 65])
def test_sku_rejects_codes_a_channel_cannot_carry(sku: str) -> None:
    with pytest.raises(ValidationError) as info:
        TypeAdapter(Sku).validate_python(sku)
    assert error_types(info.value) == {(): "string_pattern_mismatch"}


@pytest.mark.parametrize(
    ("alias", "value", "error"),
    [
        (Quantity, -1, "greater_than_equal"),
        (PositiveQuantity, 0, "greater_than_equal"),
        (Quantity, "3", "int_type"),
        (Quantity, 2.0, "int_type"),
        (Quantity, True, "int_type"),
    ],
)
def test_quantities_are_json_integers_in_range(alias: Any, value: Any, error: str) -> None:
    with pytest.raises(ValidationError) as info:
        TypeAdapter(alias).validate_python(value)
    assert error_types(info.value) == {(): error}
    assert TypeAdapter(alias).validate_json("3") == 3


@pytest.mark.parametrize("name", ["webshop-nl", "erp", "bol_com", "a" * 63])
def test_channel_names_are_lowercase_slugs(name: str) -> None:
    assert TypeAdapter(ChannelName).validate_python(name) == name


@pytest.mark.parametrize("name", ["Webshop", "-shop", "shop.nl", "", "a" * 64])
def test_channel_names_refuse_anything_else(name: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(ChannelName).validate_python(name)


@pytest.mark.parametrize(("given", "expected"), [("0.21", "0.21"), (0.09, "0.09"), (0, "0")])
def test_vat_rate_is_a_fraction(given: Any, expected: str) -> None:
    assert str(TypeAdapter(VatRate).validate_python(given)) == expected


@pytest.mark.parametrize(
    ("given", "error"),
    [("21", "less_than_equal"), ("-0.1", "greater_than_equal"), ("0.12345", "decimal_max_places")],
)
def test_vat_rate_refuses_percentages_and_noise(given: str, error: str) -> None:
    with pytest.raises(ValidationError) as info:
        TypeAdapter(VatRate).validate_python(given)
    assert error_types(info.value) == {(): error}


# -- Address -----------------------------------------------------------------------------------


def address(**fields: str) -> Address:
    base = {
        "name": "Anna de Vries",
        "line1": "Keizersgracht 123",
        "postal_code": "1015 CJ",
        "city": "Amsterdam",
        "country": "NL",
    }
    return Address.model_validate(base | fields)


@pytest.mark.parametrize("country", ["XX", "UK", "nl", "NLD", ""])
def test_address_country_must_be_iso_3166_alpha_2(country: str) -> None:
    with pytest.raises(ValidationError) as info:
        address(country=country)
    assert set(error_types(info.value)) == {("country",)}


def test_country_list_holds_the_249_iso_codes_and_kosovo() -> None:
    assert len(COUNTRY_CODES) == 250
    assert {"NL", "DE", "BE", "FR", "GB", "US", "CA", "XK"} <= COUNTRY_CODES
    assert "UK" not in COUNTRY_CODES


def test_complete_addresses_have_nothing_missing() -> None:
    assert address().missing_fields_for_country() == ()
    us = address(country="US", postal_code="94105", city="San Francisco", region="CA")
    assert us.missing_fields_for_country() == ()


@pytest.mark.parametrize("country", ["NL", "DE", "BE", "FR", "GB", "US", "CA"])
def test_postal_code_is_required_where_countries_use_one(country: str) -> None:
    incomplete = address(country=country, postal_code="", region="X")
    assert incomplete.missing_fields_for_country() == ("postal_code",)


@pytest.mark.parametrize("country", ["US", "CA", "AU"])
def test_region_is_required_where_carriers_need_the_state(country: str) -> None:
    assert address(country=country).missing_fields_for_country() == ("region",)


def test_postal_code_is_not_demanded_where_none_exists() -> None:
    assert address(country="HK", postal_code="").missing_fields_for_country() == ()
    assert address(country="AE", postal_code="").missing_fields_for_country() == ()


def test_blank_address_reports_every_missing_field_in_order() -> None:
    blank = Address(country="US", name="  ", line1="", city="")
    assert blank.name == ""  # whitespace-only is blank
    assert blank.missing_fields_for_country() == ("name", "line1", "city", "postal_code", "region")


def test_address_rejects_a_malformed_email_but_allows_none() -> None:
    assert address(email="").email == ""
    assert address(email="anna@example.nl").email == "anna@example.nl"
    with pytest.raises(ValidationError) as info:
        address(email="anna at example.nl")
    assert set(error_types(info.value)) == {("email",)}


# -- registry ----------------------------------------------------------------------------------


def _all_message_classes() -> set[type[Message]]:
    found: set[type[Message]] = set()
    for module_name in (
        "catalog",
        "inventory",
        "orders",
        "erp",
        "fulfilment",
        "billing",
        "returns",
    ):
        module = getattr(schemas, module_name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(obj, Message)
                and obj is not Message
                and obj.__module__ == module.__name__
            ):
                found.add(obj)
    return found


def test_registry_holds_every_message_class_under_its_type() -> None:
    assert set(CANONICAL_TYPES.values()) == _all_message_classes()
    assert all(name == cls.TYPE for name, cls in CANONICAL_TYPES.items())
    assert model_for("order.placed") is schemas.OrderPlaced
    assert model_for("stock.level") is schemas.StockLevel


def test_registry_knows_the_bus_contract_types() -> None:
    contract = {
        "product.upserted", "price.changed", "stock.level", "stock.availability",
        "order.placed", "order.accepted", "order.rejected", "order.cancelled", "order.status",
        "salesorder.create", "salesorder.created", "salesorder.refused",
        "pick.request", "pick.completed", "shipment.request", "shipment.created",
        "shipment.tracking", "invoice.issued", "return.requested", "return.received",
    }  # fmt: skip
    assert contract <= set(CANONICAL_TYPES)


def test_model_for_an_unknown_or_native_type_is_none() -> None:
    assert model_for("native.shopify.orders-create") is None
    assert model_for("order.teleported") is None


def test_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        CANONICAL_TYPES["x.y"] = Message  # type: ignore[index]


def test_registry_refuses_two_classes_with_one_type() -> None:
    class Twin(Message):
        TYPE = "order.placed"

    with pytest.raises(RuntimeError, match=r"both claim 'order\.placed'"):
        build_registry([*MESSAGE_CLASSES, Twin])


@pytest.mark.parametrize("name", ["", "Order.Placed", "native.shop.x"])
def test_registry_refuses_a_malformed_type(name: str) -> None:
    class Odd(Message):
        TYPE = name

    with pytest.raises(RuntimeError, match="not a canonical type name"):
        build_registry([Odd])


# -- JSON Schema export ------------------------------------------------------------------------


def test_export_writes_one_parsable_schema_per_type_and_the_envelope(tmp_path: Path) -> None:
    target = tmp_path / "out" / "schemas"
    written = export_json_schemas(target)
    names = {p.name for p in written}
    assert names == {f"{t}.schema.json" for t in CANONICAL_TYPES} | {"cloudevent.schema.json"}
    assert sorted(p.name for p in target.iterdir()) == sorted(names)
    for path in written:
        document = orjson.loads(path.read_bytes())
        assert document["type"] == "object"
        assert document["additionalProperties"] is False
        assert document["$schema"].endswith("2020-12/schema")
    order = orjson.loads((target / "order.placed.schema.json").read_bytes())
    assert order["title"] == "order.placed"
    assert {"channel", "channel_order_id", "lines", "shipping_address"} <= set(order["required"])
    assert "EUR" in order["properties"]["currency"]["enum"]


def test_export_is_deterministic(tmp_path: Path) -> None:
    first = {p.name: p.read_bytes() for p in export_json_schemas(tmp_path / "a")}
    second = {p.name: p.read_bytes() for p in export_json_schemas(tmp_path / "b")}
    assert first == second


def test_counts_and_versions_must_fit_the_columns_that_store_them() -> None:
    """A count the ledger cannot store is refused at intake (parked), not in a batch's SQL,
    where it would fail or pass depending on which messages share its batch."""
    ok = StockLevel(sku="A", location="main", on_hand=MAX_QUANTITY, version=MAX_VERSION)
    assert ok.on_hand == MAX_QUANTITY
    for field, value in (("on_hand", MAX_QUANTITY + 1), ("version", MAX_VERSION + 1)):
        data = {"sku": "A", "location": "main", "on_hand": 1, "version": 1, field: value}
        with pytest.raises(ValidationError, match="less than or equal"):
            StockLevel.model_validate(data)
    with pytest.raises(ValidationError, match="less than or equal"):
        StockLevel.model_validate(
            {
                "sku": "A",
                "location": "main",
                "on_hand": 1,
                "version": 1,
                "incoming": [{"quantity": MAX_QUANTITY + 1, "expected_date": "2026-12-01"}],
            }
        )
