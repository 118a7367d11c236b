"""Turning raw bytes from hub.in into a validated, canonical message, or a precise refusal."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson
from pydantic import ValidationError

from adapters.base import TranslationError, Translator
from hub.errors import MalformedMessage, SchemaViolation, UnknownChannel, UnknownType
from hub.handlers import Inbound
from routes.config import HubConfig
from routes.skus import rename_skus
from schemas.base import Message
from schemas.envelope import CloudEvent
from schemas.registry import model_for

MAX_BODY_BYTES = 1_048_576


def describe(error: ValidationError, limit: int = 5) -> str:
    """Pydantic's errors as one line: ``field.path: message; ...``."""
    parts = []
    for item in error.errors()[:limit]:
        where = ".".join(str(p) for p in item["loc"]) or "(root)"
        parts.append(f"{where}: {item['msg']}")
    more = len(error.errors()) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def decode_event(body: bytes) -> CloudEvent:
    """Parse the CloudEvent envelope, refusing oversized and malformed bodies with a reason."""
    if len(body) > MAX_BODY_BYTES:
        raise MalformedMessage(f"body of {len(body)} bytes exceeds the {MAX_BODY_BYTES} limit")
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"body is not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise MalformedMessage(f"body is JSON {type(raw).__name__}, not a CloudEvent object")
    try:
        event = CloudEvent.model_validate(raw)
    except ValidationError as exc:
        raise MalformedMessage(f"not a CloudEvent: {describe(exc)}") from exc
    # Both become AMQP properties (message-id, correlation-id: at most 255 bytes) of what the
    # hub sends, and the id an inbox row (no NUL): refuse here what would fail a whole batch.
    for name, value in (("id", event.id), ("correlationid", event.correlationid)):
        if value is not None and ("\x00" in value or len(value.encode()) > 255):
            raise MalformedMessage(f"{name} must be at most 255 bytes of UTF-8, without NUL")
    return event


class NothingForTheHub(Exception):
    """A native event its adapter reads but finds nothing in (an order update that is not a
    cancellation): acked and counted, neither routed nor parked."""

    def __init__(self, source: str, native_type: str) -> None:
        super().__init__(f"{native_type} from {source}: nothing for the hub")
        self.source = source
        self.native_type = native_type


class Validator:
    """Checks source, type and data against the config and the schemas; translates native types."""

    def __init__(self, config: HubConfig, translators: Mapping[str, Translator | None]) -> None:
        self._config = config
        self._translators = translators

    def validate(self, body: bytes, routing_key: str, reply_to: str | None = None) -> Inbound:
        """A canonical ``Inbound`` for a good message; a PermanentError saying why otherwise
        (NothingForTheHub for a native event that holds nothing to act on)."""
        event = decode_event(body)
        channel = self._config.channels.get(event.source)
        if channel is None:
            raise UnknownChannel(f"source {event.source!r} is not a configured channel")
        if routing_key and routing_key.split(".", 1)[0] != event.source:
            raise UnknownChannel(
                f"routing key {routing_key!r} does not start with the source {event.source!r}"
            )
        if event.type.startswith("native."):
            message = self._translate(event, channel.adapter)
            if message is None:
                raise NothingForTheHub(event.source, event.type)
            data = message.model_dump(mode="json")
            if channel.sku_map:
                data = rename_skus(data, channel.sku_map)
                message = _validated(message.TYPE, type(message), data)
            event = event.model_copy(update={"type": message.TYPE, "data": data})
        else:
            model = model_for(event.type)
            if model is None:
                raise UnknownType(f"type {event.type!r} is not a canonical type")
            _check_schema_version(event, model)
            if channel.sku_map:  # the channel's own SKUs become the ERP's
                event = event.model_copy(update={"data": rename_skus(event.data, channel.sku_map)})
            message = _validated(event.type, model, event.data)
        return Inbound(event=event, message=message, routing_key=routing_key, reply_to=reply_to)

    def _translate(self, event: CloudEvent, adapter_key: str) -> Message | None:
        _, _, rest = event.type.partition(".")
        adapter, _, native_event = rest.partition(".")
        translator = self._translators.get(event.source)
        if translator is None or adapter != translator.name:
            raise UnknownType(
                f"type {event.type!r} is not readable for channel {event.source!r} "
                f"(adapter {adapter_key!r})"
            )
        if native_event not in translator.native_events():
            raise UnknownType(f"adapter {adapter!r} has no native event {native_event!r}")
        try:
            return translator.to_canonical(native_event, event.data, event.source)
        except (TranslationError, ValidationError, KeyError, TypeError, ValueError) as exc:
            reason = describe(exc) if isinstance(exc, ValidationError) else str(exc)
            raise SchemaViolation(f"{event.type}: {reason}") from exc


_SCHEMA_VERSION = re.compile(r"^(\d{1,4})(?:\.\d{1,4}){0,2}$")


def _check_schema_version(event: CloudEvent, model: type[Message]) -> None:
    """Refuse data written for another major version of the schema than this hub reads."""
    written = event.dataschemaversion
    if written is None:
        return
    match = _SCHEMA_VERSION.match(written)
    if match is None:
        raise SchemaViolation(f"{event.type}: dataschemaversion {written!r} is not MAJOR.MINOR")
    ours = model.SCHEMA_VERSION
    if int(match.group(1)) != int(ours.split(".", 1)[0]):
        raise SchemaViolation(
            f"{event.type}: data written for schema version {written}; this hub reads"
            f" {ours.split('.', 1)[0]}.x (up to {ours})"
        )


def _validated(type_: str, model: type[Message], data: Any) -> Message:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SchemaViolation(f"{type_}: {describe(exc)}") from exc


def routing_facts(message: Message) -> dict[str, Any]:
    """The facts route filters look at: the SKUs a message is about and an order's value."""
    skus: list[str] = []
    sku = getattr(message, "sku", None)
    if isinstance(sku, str):
        skus.append(sku)
    value = Decimal(0)
    for line in getattr(message, "lines", None) or ():
        line_sku = getattr(line, "sku", None)
        if isinstance(line_sku, str):
            skus.append(line_sku)
        price = getattr(line, "unit_price", None)
        qty = getattr(line, "quantity", None)
        if price is not None and isinstance(qty, int):
            value += price.amount * qty
    return {"skus": tuple(skus), "order_value": value if value else None}
