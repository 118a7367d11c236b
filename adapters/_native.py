"""Reading native JSON defensively, so every refusal names the field as the sender spelt it."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from adapters.base import TranslationError
from schemas.base import Message
from schemas.common import COUNTRY_CODES, minor_units

_WHOLE = re.compile(r"^[+-]?\d+$")

# Carrier codes (as Sendcloud and the hub write them) -> the names shops show buyers and that
# Shopify recognises for its tracking links; an unknown code is shown as written.
CARRIER_NAMES: Mapping[str, str] = {
    "postnl": "PostNL",
    "dhl": "DHL Parcel",
    "dhl_express": "DHL Express",
    "dpd": "DPD",
    "ups": "UPS",
    "gls": "GLS",
    "bpost": "Bpost",
    "fedex": "FedEx",
    "royal_mail": "Royal Mail",
}


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


class Native:
    """A read-only view on one native JSON object that knows its path within the payload."""

    def __init__(self, data: Any, path: str = "") -> None:
        if not isinstance(data, Mapping):
            raise TranslationError(f"{path or 'payload'}: expected an object, got {_kind(data)}")
        self._data: Mapping[str, Any] = data
        self._path = path

    def where(self, key: str) -> str:
        """The dotted path of a field (``line_items[1].sku``), for error messages."""
        return f"{self._path}.{key}" if self._path else key

    def raw(self, key: str) -> Any:
        """The value as sent; None when absent or null (Odoo's ``false`` for "empty" too)."""
        value = self._data.get(key)
        return None if value is False else value

    def flag(self, key: str, default: bool) -> bool:
        """A JSON boolean, or the default when the field is absent or null."""
        value = self._data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise TranslationError(f"{self.where(key)}: expected true or false, got {value!r}")
        return value

    def text(self, key: str) -> str:
        """A required string; a JSON integer (an id) is taken as its decimal text."""
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, str | int | None):
            raise TranslationError(f"{self.where(key)}: expected text, got {_kind(value)}")
        text = "" if value is None else str(value).strip()
        if not text:
            raise TranslationError(f"{self.where(key)}: missing")
        return text

    def optional_text(self, key: str) -> str:
        """A string that may be absent, null or blank (then ``""``)."""
        return self.text(key) if self.raw(key) not in (None, "") else ""

    def integer(self, key: str) -> int:
        """A whole number; ``2``, ``2.0`` (Odoo floats) and ``"2"`` are read, ``"two"`` is not."""
        value = self.raw(key)
        if value is None:
            raise TranslationError(f"{self.where(key)}: missing")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _WHOLE.match(value.strip()):
            return int(value)
        raise TranslationError(f"{self.where(key)}: {value!r} is not a whole number")

    def decimal(self, key: str) -> Decimal:
        """An exact amount; a JSON float goes through ``str()`` so 19.95 stays 19.95."""
        value = self.raw(key)
        if value is None:
            raise TranslationError(f"{self.where(key)}: missing")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise TranslationError(f"{self.where(key)}: expected a number, got {_kind(value)}")
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise TranslationError(f"{self.where(key)}: {value!r} is not a number") from None
        if not number.is_finite():
            raise TranslationError(f"{self.where(key)}: {value!r} is not a finite number")
        return number

    def optional_decimal(self, key: str) -> Decimal | None:
        """An amount that may be absent or null."""
        return None if self.raw(key) in (None, "") else self.decimal(key)

    def timestamp(self, key: str) -> datetime:
        """An ISO 8601 date-time; one without an offset is read as UTC (``*_gmt``, Odoo)."""
        text = self.text(key)
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise TranslationError(
                f"{self.where(key)}: {text!r} is not an ISO 8601 date-time"
            ) from None
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

    def country(self, key: str) -> str:
        """An ISO 3166-1 alpha-2 code, refused here so the error names the native field."""
        code = self.text(key)
        if code not in COUNTRY_CODES:
            raise TranslationError(
                f"{self.where(key)}: {code!r} is not an ISO 3166-1 alpha-2 country code"
            )
        return code

    def obj(self, key: str) -> Native:
        """A required nested object."""
        value = self.raw(key)
        if value is None:
            raise TranslationError(f"{self.where(key)}: missing")
        return Native(value, self.where(key))

    def optional_obj(self, key: str) -> Native | None:
        """A nested object that may be absent or null."""
        return None if self.raw(key) is None else self.obj(key)

    def objects(self, key: str, *, required: bool = True) -> list[Native]:
        """A list of objects, each knowing its index; a required list may not be empty."""
        value = self.raw(key)
        if value is None or value == []:
            if required:
                raise TranslationError(f"{self.where(key)}: missing or empty")
            return []
        if not isinstance(value, list):
            raise TranslationError(f"{self.where(key)}: expected a list, got {_kind(value)}")
        return [Native(item, f"{self.where(key)}[{i}]") for i, item in enumerate(value)]


def carrier_name(code: str) -> str:
    """The name a buyer knows a carrier by (``postnl`` -> ``PostNL``)."""
    return CARRIER_NAMES.get(code, code)


def person(*parts: str) -> str:
    """A name from its parts, blanks left out (``first_name`` + ``last_name``)."""
    return " ".join(p for p in parts if p)


def money_text(amount: Decimal, currency: str) -> str:
    """An amount as a channel API wants it in JSON: text with the currency's decimals."""
    step = Decimal(1).scaleb(-minor_units(currency))
    return str(amount.quantize(step, rounding=ROUND_HALF_EVEN))


def html_paragraphs(text: str) -> str:
    """The ERP's plain-text description as HTML a shop shows as written: escaped, a blank
    line between paragraphs, a line break within one."""
    paragraphs = [p.strip() for p in text.replace("\r\n", "\n").split("\n\n")]
    return "".join(
        "<p>" + "<br>".join(html.escape(line) for line in p.split("\n")) + "</p>"
        for p in paragraphs
        if p
    )


def numeric_id(value: str) -> int | str:
    """An id back as the JSON integer the API gave us (Shopify, WooCommerce), if it was one."""
    return int(value) if value.isdigit() else value


def check_event(adapter: str, event: str, known: Iterable[str]) -> None:
    """Refuse a native event name this adapter does not read."""
    if event not in known:
        raise TranslationError(
            f"{adapter} has no native event {event!r}; it reads: {', '.join(sorted(known))}"
        )


def refuse_type(adapter: str, message: Message, known: Iterable[str]) -> TranslationError:
    """The error for a canonical type this adapter does not write."""
    return TranslationError(
        f"{adapter} cannot write {message.TYPE!r}; it writes: {', '.join(sorted(known))}"
    )
