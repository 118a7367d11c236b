"""Order answers in each shop's and marketplace's own terms: what is cancelled where, and what
needs no call at all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters import registry
from adapters.base import OutboundTranslator, TranslationError
from adapters.table import Reads
from schemas import model_for
from schemas.fulfilment import FulfilmentLine
from schemas.orders import (
    CancelledPart,
    OrderCancelled,
    OrderPlaced,
    OrderRejected,
    OrderStatus,
    Reason,
)

FIXTURES = Path(__file__).resolve().parents[2] / "adapters" / "fixtures"


def _outbound(key: str) -> OutboundTranslator:
    translator = registry.load(key)
    assert isinstance(translator, OutboundTranslator)
    return translator


def _fixture(key: str, type_: str) -> Any:
    document = json.loads((FIXTURES / key / "outbound" / f"{type_}.canonical.json").read_text())
    model = model_for(document["type"])
    assert model is not None
    return model.model_validate(document["data"])


def _cancelled(key: str, part: CancelledPart | None, status: str = "cancelled") -> OrderStatus:
    template = _fixture(key, "order.status")
    assert isinstance(template, OrderStatus)
    return template.model_copy(update={"status": status, "cancelled": part})


def _rest(by: str, *lines: tuple[str, str, int]) -> CancelledPart:
    withdrawn = tuple(FulfilmentLine(line_id=i, sku=s, quantity=q) for i, s, q in lines)
    return CancelledPart.model_validate({"by": by, "whole_order": False, "lines": withdrawn})


# --- Shopify ----------------------------------------------------------------------------------


def test_shopify_takes_the_unshipped_rest_off_as_cancelled_refund_lines() -> None:
    part = _rest("erp", ("14729384753192", "MUG/WHITE", 1))

    body = _outbound("shopify").from_canonical(_cancelled("shopify", part))

    assert body == {
        "order_id": 5841203740712,
        "refund": {
            "notify": True,
            "refund_line_items": [
                {"line_item_id": 14729384753192, "quantity": 1, "restock_type": "cancel"}
            ],
        },
    }


def test_shopify_needs_no_call_for_its_own_cancellation_or_other_states() -> None:
    shopify = _outbound("shopify")
    own = _cancelled("shopify", _rest("channel", ("14729384753192", "MUG/WHITE", 1)))
    confirmed = _cancelled("shopify", None, status="confirmed")

    assert shopify.from_canonical(own) is None
    assert shopify.from_canonical(confirmed) is None


def test_shopify_cancels_a_refusal_for_any_other_reason_as_other() -> None:
    refused = _fixture("shopify", "order.rejected")
    assert isinstance(refused, OrderRejected)
    by_erp = refused.model_copy(
        update={"reasons": (Reason(code="erp_refused", message="credit limit"),)}
    )

    body = _outbound("shopify").from_canonical(by_erp)

    assert body is not None
    assert body["cancel"]["reason"] == "other"


# --- bol.com ----------------------------------------------------------------------------------


def test_bolcom_confirms_a_buyers_cancellation_as_requested_by_customer() -> None:
    status = _fixture("bolcom", "order.status")
    assert isinstance(status, OrderStatus) and status.cancelled is not None
    theirs = status.cancelled.model_copy(update={"by": "channel"})

    body = _outbound("bolcom").from_canonical(_cancelled("bolcom", theirs))

    assert body == {
        "orderId": "A2K8JV0XL3",
        "orderItems": [
            {"orderItemId": "2814032941", "reasonCode": "REQUESTED_BY_CUSTOMER"},
            {"orderItemId": "2814032942", "reasonCode": "REQUESTED_BY_CUSTOMER"},
        ],
    }


def test_bolcom_cancels_only_the_items_of_the_withdrawn_rest() -> None:
    part = _rest("hub", ("2814032942", "MUG/WHITE", 1))

    body = _outbound("bolcom").from_canonical(_cancelled("bolcom", part))

    assert body == {
        "orderId": "A2K8JV0XL3",
        "orderItems": [{"orderItemId": "2814032942", "reasonCode": "OTHER"}],
    }


def test_bolcom_gives_each_item_the_reason_that_names_its_line() -> None:
    refused = _fixture("bolcom", "order.rejected")
    assert isinstance(refused, OrderRejected)
    reasons = (
        Reason(code="price_mismatch", message="9.99 listed, 8.99 sold", line_id="2814032942"),
        Reason(code="out_of_stock", message="2 of SKU TSHIRT-RED-M, 0 free", line_id="2814032941"),
        Reason(code="unknown_sku", message="no such SKU", line_id="2814032942"),
    )

    body = _outbound("bolcom").from_canonical(refused.model_copy(update={"reasons": reasons}))

    assert body == {
        "orderId": "A2K8JV0XL3",
        "orderItems": [
            {"orderItemId": "2814032941", "reasonCode": "OUT_OF_STOCK"},
            {"orderItemId": "2814032942", "reasonCode": "INCORRECT_PRICE"},
        ],
    }


def test_bolcom_refuses_a_refusal_that_names_no_order_items() -> None:
    refused = _fixture("bolcom", "order.rejected")
    assert isinstance(refused, OrderRejected)

    with pytest.raises(TranslationError, match=r"bol\.com cancels per order item"):
        _outbound("bolcom").from_canonical(refused.model_copy(update={"lines": ()}))


def test_bolcom_needs_no_call_for_a_state_that_is_not_a_cancellation() -> None:
    assert _outbound("bolcom").from_canonical(_cancelled("bolcom", None, "picking")) is None


# --- WooCommerce ------------------------------------------------------------------------------


def test_woocommerce_completes_an_order_whose_unshipped_rest_was_cancelled() -> None:
    status = _fixture("woocommerce", "order.status")
    assert isinstance(status, OrderStatus)
    part = _rest("erp", ("40212", "MUG/WHITE", 2))
    whole = part.model_copy(update={"whole_order": True})

    rest_cancelled = status.model_copy(update={"status": "cancelled", "cancelled": part})
    all_cancelled = status.model_copy(update={"status": "cancelled", "cancelled": whole})

    woo = _outbound("woocommerce")
    assert woo.from_canonical(rest_cancelled) == {"id": 72815, "status": "completed"}
    assert woo.from_canonical(all_cancelled) == {"id": 72815, "status": "cancelled"}


# --- bol.com cancellation requests, read -------------------------------------------------------


def _requested(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(
        (FIXTURES / "bolcom" / "cancellation-request.json").read_text()
    )
    for index, fields in changes.items():
        payload["orderItems"][int(index.removeprefix("item"))].update(fields)
    return payload


def test_a_bolcom_request_to_cancel_every_open_item_cancels_the_order() -> None:
    # An item already cancelled on bol.com does not need the request to cancel the order.
    payload = _requested(item1={"cancellationRequest": False, "quantityCancelled": 1})

    cancelled = registry.load("bolcom").to_canonical("cancellation-request", payload, "bolcom")

    assert cancelled.model_dump(include={"channel_order_id", "cancelled_by"}) == {
        "channel_order_id": "A2K8JV0XL3",
        "cancelled_by": "channel",
    }


def test_a_bolcom_request_for_some_items_cancels_those_items_open_units() -> None:
    bolcom = registry.load("bolcom")
    some = bolcom.to_canonical(
        "cancellation-request", _requested(item1={"cancellationRequest": False}), "bolcom"
    )
    assert isinstance(some, OrderCancelled)
    assert [line.model_dump() for line in some.lines] == [
        {"line_id": "2814032941", "sku": "TSHIRT-RED-M", "quantity": 2}
    ]
    assert some.data_version() == "2.0"  # a 1.x reader would cancel the whole order
    # Part of the order shipped: even every open item asked is a part, with its open units.
    part = bolcom.to_canonical(
        "cancellation-request", _requested(item0={"quantityShipped": 1}), "bolcom"
    )
    assert isinstance(part, OrderCancelled)
    assert [(line.line_id, line.quantity) for line in part.lines] == [
        ("2814032941", 1),
        ("2814032942", 1),
    ]
    whole = bolcom.to_canonical("cancellation-request", _requested(), "bolcom")
    assert isinstance(whole, OrderCancelled) and whole.lines == ()
    assert whole.data_version() == "1.0"


def test_a_bolcom_request_naming_no_open_item_is_refused_with_why() -> None:
    none = {"item0": {"cancellationRequest": False}, "item1": {"cancellationRequest": False}}
    with pytest.raises(TranslationError, match="no open item has cancellationRequest true"):
        registry.load("bolcom").to_canonical("cancellation-request", _requested(**none), "b")


# --- WooCommerce order updates, read ----------------------------------------------------------


def test_a_woocommerce_update_is_read_for_a_cancellation_or_a_payment() -> None:
    woo = registry.load("woocommerce")
    assert isinstance(woo, Reads)
    payload = json.loads((FIXTURES / "woocommerce" / "order-updated.json").read_text())

    cancelled = woo.to_canonical("order-updated", payload, "webshop-uk")
    paid = woo.to_canonical("order-updated", {**payload, "status": "processing"}, "webshop-uk")
    completed = woo.to_canonical("order-updated", {**payload, "status": "completed"}, "webshop-uk")

    assert cancelled is not None and cancelled.TYPE == "order.cancelled"
    assert isinstance(paid, OrderPlaced) and paid.channel_order_id == str(payload["id"])
    assert completed is None  # the hub's own status change coming back, say
    assert woo.canonical_types("order-updated") == ("order.placed", "order.cancelled")


def test_an_unpaid_woocommerce_order_is_not_taken_until_it_is_paid() -> None:
    woo = registry.load("woocommerce")
    assert isinstance(woo, Reads)
    payload = json.loads((FIXTURES / "woocommerce" / "order-created.json").read_text())
    for unpaid in ("pending", "on-hold", "failed", "checkout-draft"):
        assert woo.to_canonical("order-created", {**payload, "status": unpaid}, "w") is None
    assert isinstance(woo.to_canonical("order-created", payload, "w"), OrderPlaced)


def test_woocommerce_is_not_told_of_its_own_cancellation() -> None:
    status = _fixture("woocommerce", "order.status")
    assert isinstance(status, OrderStatus)
    own = _rest("channel", ("40211", "HOODIE-GRY-L", 1), ("40212", "MUG/WHITE", 2))
    whole = own.model_copy(update={"whole_order": True})

    told = status.model_copy(update={"status": "cancelled", "cancelled": whole})

    assert _outbound("woocommerce").from_canonical(told) is None
