"""Derived ids stay exactly uuid5(NAMESPACE_URL, ...): ids of messages already on the bus or in
inboxes must not change when the hub is upgraded."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from schemas.envelope import derived_id

# Text that UTF-8 can encode (no lone surrogates), as every CloudEvent id is.
ids = st.text(st.characters(blacklist_categories=("Cs",)), max_size=120)


@given(cause=ids, parts=st.lists(ids, max_size=4))
def test_derived_id_is_uuid5_of_the_joined_name(cause: str, parts: list[str]) -> None:
    expected = str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join((cause, *parts))))
    assert derived_id(cause, *parts) == expected


def test_known_value() -> None:
    assert derived_id("e1", "availability/shop/SKU-1/3") == str(
        uuid.uuid5(uuid.NAMESPACE_URL, "e1/availability/shop/SKU-1/3")
    )
    assert derived_id("e1", "a") != derived_id("e1", "b")
