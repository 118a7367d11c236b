"""Renaming the SKU fields of message data: every ``sku`` and ``skus``, at any depth."""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from routes.skus import rename_skus

NAMES = {"DESK-1": "8712345678906", "LAMP-1": "LAMP-EAN"}


def test_every_sku_field_is_renamed_and_nothing_else() -> None:
    data = {
        "sku": "DESK-1",
        "skus": ["DESK-1", "OTHER"],
        "lines": [{"line_id": "L1", "sku": "LAMP-1", "quantity": 2, "name": "DESK-1"}],
        "items": [{"sku": "DESK-1", "alternatives": [{"sku": "LAMP-1", "available": 3}]}],
        "reasons": [{"code": "unknown_sku", "sku": None}],
        "channel": "DESK-1",
    }
    assert rename_skus(data, NAMES) == {
        "sku": "8712345678906",
        "skus": ["8712345678906", "OTHER"],
        "lines": [{"line_id": "L1", "sku": "LAMP-EAN", "quantity": 2, "name": "DESK-1"}],
        "items": [{"sku": "8712345678906", "alternatives": [{"sku": "LAMP-EAN", "available": 3}]}],
        "reasons": [{"code": "unknown_sku", "sku": None}],
        "channel": "DESK-1",
    }
    assert data["sku"] == "DESK-1"  # the input is left as it was


def test_without_names_the_data_is_returned_as_is() -> None:
    data = {"sku": "DESK-1"}
    assert rename_skus(data, {}) is data


@given(st.dictionaries(st.text(min_size=1), st.text(min_size=1), max_size=5), st.text())
def test_renaming_there_and_back_is_the_identity(names: dict[str, str], sku: str) -> None:
    back = {v: k for k, v in names.items()}
    assume(len(back) == len(names))  # one-to-one, as the config requires
    assume(sku in names or sku not in back)  # an ERP SKU sent as is goes back as the channel's
    data = {"lines": [{"sku": sku}], "skus": [sku]}
    assert rename_skus(rename_skus(data, names), back) == data
