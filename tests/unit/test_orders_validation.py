"""Order validation as pure code: each rule, the VAT basis of prices, and the tolerance."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from hub.orders.validation import Catalog, ListPrice, comparable_price, validate_order
from routes.config import MarketConfig
from schemas.orders import OrderPlaced

NL = MarketConfig(
    currency="EUR",
    vat_rate=Decimal("0.21"),
    price_list="nl-retail",
    country="NL",
    lead_time_days=1,
    price_tolerance=Decimal("0.01"),
)
LIST = ListPrice(Decimal("121.00"), "EUR", True, Decimal("0.21"))
CATALOG = Catalog(frozenset({"A", "B"}), {"A": LIST})


def order(**over: Any) -> OrderPlaced:
    line = {
        "line_id": "1",
        "sku": "A",
        "quantity": 1,
        "unit_price": {"amount": "121.00", "currency": over.get("currency", "EUR")},
    }
    line.update(over.pop("line", {}))
    data = {
        "channel": "shop",
        "channel_order_id": "1",
        "placed_at": datetime.now(UTC),
        "currency": "EUR",
        "lines": [line],
        "shipping_address": {
            "name": "A",
            "line1": "B 1",
            "postal_code": "1000 AA",
            "city": "C",
            "country": "NL",
        },
        **over,
    }
    return OrderPlaced.model_validate(data)


def codes(o: OrderPlaced, catalog: Catalog = CATALOG) -> list[str]:
    return [r.code for r in validate_order(o, NL, catalog)]


def test_a_good_order_has_no_reasons() -> None:
    assert codes(order()) == []


def test_price_within_tolerance_passes_and_outside_fails() -> None:
    assert codes(order(line={"unit_price": {"amount": "121.01", "currency": "EUR"}})) == []
    assert codes(order(line={"unit_price": {"amount": "121.02", "currency": "EUR"}})) == [
        "price_mismatch"
    ]


def test_net_prices_are_compared_on_the_same_vat_basis() -> None:
    net = order(prices_include_vat=False, line={"unit_price": {"amount": "100", "currency": "EUR"}})
    assert codes(net) == []
    assert comparable_price(LIST, include_vat=False) == Decimal("100")
    gross_list = ListPrice(Decimal("100"), "EUR", False, Decimal("0.21"))
    assert comparable_price(gross_list, include_vat=True) == Decimal("121.00")


@pytest.mark.parametrize(
    ("over", "code"),
    [
        ({"line": {"sku": "ZZZ"}}, "unknown_sku"),
        ({"line": {"sku": "B"}}, "price_mismatch"),  # known, but not in this price list
        ({"line": {"quantity": 10_000}}, "invalid_quantity"),
        ({"currency": "USD"}, "currency_mismatch"),
        ({"line": {"vat_rate": "0.09"}}, "vat_mismatch"),
        (
            {"shipping_address": {"name": "A", "line1": "B", "city": "C", "country": "NL"}},
            "address_incomplete",
        ),
    ],
)
def test_each_rule_names_its_reason(over: dict[str, Any], code: str) -> None:
    assert code in codes(order(**over))


def test_every_failing_rule_is_reported_at_once() -> None:
    bad = order(
        currency="USD",
        line={"unit_price": {"amount": "1.00", "currency": "USD"}},
        shipping_address={"line1": "B", "postal_code": "1", "city": "C", "country": "NL"},
    )
    assert set(codes(bad)) >= {"currency_mismatch", "address_incomplete", "price_mismatch"}


def test_a_list_price_in_another_currency_is_no_price() -> None:
    gbp = Catalog(frozenset({"A"}), {"A": ListPrice(Decimal("121"), "GBP", True, Decimal("0.2"))})
    assert codes(order(), gbp) == ["price_mismatch"]


def test_a_line_reason_names_line_and_sku() -> None:
    [reason] = validate_order(order(line={"sku": "ZZZ"}), NL, CATALOG)
    assert (reason.line_id, reason.sku) == ("1", "ZZZ")


def test_the_erp_sales_order_is_the_order_as_placed_plus_the_hubs_ids(example_config) -> None:
    """Built without re-validation, it must equal (and pass) the validated SalesOrderCreate."""
    from hub.orders.requests import salesorder_create
    from hub.orders.store import Order
    from schemas.erp import SalesOrderCreate

    placed = order(channel="webshop-nl", billing_address=None, customer_ref="C-7")
    ord_ = Order(
        "O-1",
        "webshop-nl",
        placed.channel_order_id,
        "sent_to_erp",
        "erp",
        None,
        0,
        1,
        "O-1",
        None,
        placed,
    )
    built = salesorder_create(ord_, example_config)
    wire = built.model_dump(mode="json")
    assert SalesOrderCreate.model_validate(wire).model_dump(mode="json") == wire
    expected = SalesOrderCreate(
        **placed.model_dump(exclude={"TYPE"}),
        order_id="O-1",
        reservation_id="O-1",
        price_list=example_config.markets["nl"].price_list,
    )
    assert wire == expected.model_dump(mode="json")
