"""Each channel gets the ERP's price on the VAT basis it keeps prices on."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from hub.handlers import Inbound
from hub.orders.validation import ListPrice, comparable_price
from hub.price_basis import channel_price_bases, on_basis
from hub.router import Router
from hub.topology import Names
from routes import EXAMPLE_CONFIG, RouteTable
from routes.config import HubConfig
from routes.loader import check_config
from schemas.catalog import PriceChanged
from schemas.envelope import CloudEvent


def price_data(amount: str, includes_vat: bool, rate: str = "0.21", currency: str = "EUR") -> Any:
    return PriceChanged.model_validate(
        {
            "sku": "DESK-1",
            "price_list": "nl-retail",
            "price": {"amount": amount, "currency": currency},
            "includes_vat": includes_vat,
            "vat_rate": rate,
            "version": 4,
        }
    ).model_dump(mode="json")


@pytest.mark.parametrize(
    ("amount", "includes_vat", "rate", "currency", "wanted", "shown"),
    [
        ("8.2645", False, "0.21", "EUR", True, "10.00"),  # a net list, a gross shop
        ("100", False, "0.09", "EUR", True, "109.00"),  # a book at the reduced rate
        ("12.10", True, "0.21", "EUR", False, "10.00"),  # a gross list, a net (B2B) shop
        ("1000", False, "0.10", "JPY", True, "1100"),  # no minor units
        ("0.125", False, "0.20", "GBP", True, "0.15"),  # 0.15 exactly
        ("10.00", True, "0.21", "EUR", True, "10.00"),  # already on the channel's basis
    ],
)
def test_the_amount_is_on_the_channels_basis_rounded_to_the_currency(
    amount: str, includes_vat: bool, rate: str, currency: str, wanted: bool, shown: str
) -> None:
    data = price_data(amount, includes_vat, rate, currency)
    told = on_basis(data, wanted)
    assert told["price"] == {"amount": shown, "currency": currency}
    assert told["includes_vat"] is wanted
    assert told["vat_rate"] == rate and told["sku"] == "DESK-1" and told["version"] == 4
    PriceChanged.model_validate(told)  # still a valid message for the channel's adapter


def test_the_same_basis_leaves_the_data_as_it_is() -> None:
    data = price_data("10.00", True)
    assert on_basis(data, True) is data


@given(
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999"), places=2),
    st.sampled_from(["0", "0.05", "0.09", "0.1", "0.19", "0.21", "0.255"]),
    st.sampled_from(["EUR", "JPY", "KWD"]),
    st.booleans(),
)
def test_an_order_at_the_shown_price_is_what_the_order_check_expects(
    amount: Decimal, rate: str, currency: str, list_gross: bool
) -> None:
    """What a channel on the other basis shows is exactly what its orders are checked
    against, in every currency's minor units (999 JPY net at 10% is shown, and expected,
    as 1099)."""
    shown = on_basis(price_data(str(amount), list_gross, rate, currency), not list_gross)
    listed = ListPrice(amount, currency, list_gross, Decimal(rate))
    assert Decimal(shown["price"]["amount"]) == comparable_price(listed, not list_gross)


def test_a_yen_price_shown_with_vat_is_accepted_at_that_price() -> None:
    listed = ListPrice(Decimal("999"), "JPY", False, Decimal("0.10"))
    assert comparable_price(listed, True) == Decimal("1099")


def config_with(**channels: dict[str, Any]) -> HubConfig:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    for name, changes in channels.items():
        data["channels"][name] = {**data["channels"][name], **changes}
    return HubConfig.model_validate(data, context={"env": {}})


def routed(config: HubConfig, includes_vat: bool) -> dict[str, dict[str, Any]]:
    router = Router(RouteTable.from_config(config), Names("t."), config)
    data = price_data("8.2645", includes_vat)
    price = PriceChanged.model_validate(data)
    event = CloudEvent(
        id="p-1", source="erp", type=PriceChanged.TYPE, time=datetime.now(UTC), data=data
    )
    seen: dict[str, dict[str, Any]] = {}
    for envelope in router.envelopes(Inbound(event=event, message=price, routing_key="erp.x")):
        body = orjson.loads(envelope.body)
        for key in (envelope.routing_key, *envelope.headers.get("CC", ())):
            seen[key.split(".", 1)[0]] = body
    return seen


def test_a_net_list_reaches_gross_channels_with_vat_and_a_net_one_as_sent() -> None:
    config = config_with(**{"webshop-nl": {"prices_include_vat": None}})
    seen = routed(config, includes_vat=False)
    assert set(seen) == {"webshop-nl", "bolcom"}
    assert seen["bolcom"]["data"]["price"]["amount"] == "10.00"  # bol.com: always gross
    assert seen["bolcom"]["data"]["includes_vat"] is True
    assert seen["webshop-nl"]["data"]["price"]["amount"] == "8.2645"  # no basis: as sent
    assert seen["webshop-nl"]["data"]["includes_vat"] is False
    assert seen["bolcom"]["id"] == seen["webshop-nl"]["id"]  # one event, told two ways


def test_channels_on_the_lists_basis_share_one_publish() -> None:
    router_config = config_with(**{"webshop-nl": {"prices_include_vat": True}})
    seen = routed(router_config, includes_vat=True)
    assert set(seen) == {"webshop-nl", "bolcom"}
    assert all(body["data"]["price"]["amount"] == "8.2645" for body in seen.values())


def test_a_net_shop_gets_a_gross_list_without_vat() -> None:
    config = config_with(**{"webshop-nl": {"prices_include_vat": False}})
    price = price_data("12.10", True)
    router = Router(RouteTable.from_config(config), Names("t."), config)
    assert router.as_channel_sees_it("webshop-nl", PriceChanged.TYPE, price)["price"] == {
        "amount": "10.00",
        "currency": "EUR",
    }
    stock = {"sku": "DESK-1", "includes_vat": True, "price": {"amount": "12.10"}}
    assert router.as_channel_sees_it("webshop-nl", "stock.availability", stock) is stock


def test_bolcom_gets_gross_whatever_its_config_says() -> None:
    config = config_with(bolcom={"prices_include_vat": False})
    assert channel_price_bases(config)["bolcom"] is True


def test_the_example_states_each_shops_basis() -> None:
    bases = channel_price_bases(config_with())
    assert bases == {"webshop-nl": True, "webshop-uk": True, "bolcom": True}


def test_only_a_sales_channel_may_state_a_price_basis(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["channels"]["warehouse"]["prices_include_vat"] = True
    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    found = {e.location: e.message for e in check_config(path, env={})}
    assert "warehouse channel shows no prices" in found["channels.warehouse.prices_include_vat"]
