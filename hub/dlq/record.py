"""What a parked message is, read from its AMQP form: hub fault headers or the broker's x-death."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

# Headers the hub or the broker add when a message fails; a replay sends the message without them.
FAULT_PREFIXES = ("x-hub-", "x-death", "x-first-death-", "x-last-death-", "x-delivery-count")


@dataclass(frozen=True)
class ParkedRecord:
    """One parked message with everything ``hub dlq`` shows, filters on and replays from."""

    fingerprint: str
    message_id: str | None
    message_type: str | None
    source: str | None
    channel: str | None
    error_type: str
    error: str
    failed_queue: str | None
    attempts: int
    original_exchange: str
    original_routing_key: str
    correlation_id: str | None
    reply_to: str | None
    headers: dict[str, Any]
    body: bytes
    first_failed_at: datetime | None
    parked_at: datetime


def jsonable(value: Any) -> Any:
    """Header values as JSON: AMQP tables carry bytes, datetimes and nested tables."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _text(headers: Mapping[str, Any], key: str) -> str | None:
    value = headers.get(key)
    if value is None or value == "":
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str | bytes):
        try:
            parsed = datetime.fromisoformat(value.decode() if isinstance(value, bytes) else value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _event_field(body: bytes, name: str) -> str | None:
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    value = event.get(name) if isinstance(event, dict) else None
    return value if isinstance(value, str) and value else None


def _message_type(
    given: str | None, body: bytes, exchange: str, routing_key: str, typed: Collection[str]
) -> str | None:
    """The type an operator filters by: the AMQP property, the event's own, or, on the
    exchanges whose keys are ``<channel>.<type>`` (``typed``: hub.in, hub.out), the key's."""
    if given:
        return given
    in_body = _event_field(body, "type")
    if in_body:
        return in_body
    if exchange not in typed:
        return None
    _, _, from_key = routing_key.partition(".")
    return from_key or None


def from_amqp(
    body: bytes,
    headers: Mapping[str, Any] | None,
    *,
    message_id: str | None,
    message_type: str | None,
    source: str | None,
    correlation_id: str | None,
    reply_to: str | None,
    routing_key: str | None,
    now: datetime,
    typed_exchanges: Collection[str] = (),
    channel_queue_prefix: str | None = None,
) -> ParkedRecord:
    """Parse a message taken from hub.dead, parked either by the hub or by the broker."""
    h = dict(headers or {})
    deaths = h.get("x-death")
    death: Mapping[str, Any] = deaths[0] if isinstance(deaths, list) and deaths else {}
    if _text(h, "x-hub-error-type"):
        error_type = _text(h, "x-hub-error-type") or "unknown"
        error = _text(h, "x-hub-error") or error_type
        failed_queue = _text(h, "x-hub-failed-queue")
        exchange = _text(h, "x-hub-original-exchange") or ""
        key = _text(h, "x-hub-original-routing-key") or routing_key or ""
        raw_attempts = h.get("x-hub-attempts", 0)
        attempts = int(raw_attempts) if str(raw_attempts).isdigit() else 0
        first = _when(h.get("x-hub-first-failed-at"))
        last = _when(h.get("x-hub-last-failed-at")) or now
    else:  # dead-lettered by RabbitMQ itself: delivery limit, rejection, overflow
        reason = _text(death, "reason") or "dead_lettered"
        error_type = f"broker_{reason}"
        failed_queue = _text(death, "queue")
        keys = death.get("routing-keys") or []
        exchange = _text(death, "exchange") or ""
        key = (_text({"k": keys[0]}, "k") if keys else None) or routing_key or ""
        count = death.get("count", 1)
        attempts = int(count) if isinstance(count, int) else 1
        delivery_count = h.get("x-delivery-count")
        if isinstance(delivery_count, int):
            attempts = max(attempts, delivery_count)
        error = f"dead-lettered by the broker from {failed_queue or '?'} ({reason})"
        first = _when(h.get("x-first-death-time")) or _when(death.get("time"))
        last = _when(death.get("time")) or now
    if channel_queue_prefix and failed_queue and failed_queue.startswith(channel_queue_prefix):
        # Failed in one channel's queue: a copy published with CC carries the first channel's
        # key, so address it to the channel where it failed (replay drops the CC header).
        _, _, type_part = key.partition(".")
        key = f"{failed_queue[len(channel_queue_prefix) :]}.{type_part}" if type_part else key
    msg_id = message_id or _event_field(body, "id")
    safe_headers = jsonable(h)
    digest = hashlib.sha256()
    for part in (msg_id or "", exchange, key, error_type, last.isoformat(), str(attempts)):
        digest.update(part.encode() + b"\0")
    digest.update(body)
    return ParkedRecord(
        fingerprint=digest.hexdigest(),
        message_id=msg_id,
        message_type=_message_type(message_type, body, exchange, key, typed_exchanges),
        source=source,
        channel=key.split(".", 1)[0] if key else None,
        error_type=error_type,
        error=error,
        failed_queue=failed_queue,
        attempts=attempts,
        original_exchange=exchange,
        original_routing_key=key,
        correlation_id=correlation_id,
        reply_to=reply_to,
        headers=safe_headers,
        body=body,
        first_failed_at=first or last,
        parked_at=last,
    )


def replay_headers(headers: Mapping[str, Any], parked_id: int) -> dict[str, Any]:
    """The original headers without fault marks, so the retry budget starts again, and
    without CC / BCC, so a message that failed in one channel's queue goes back there only."""
    kept = {
        k: v
        for k, v in headers.items()
        if not k.startswith(FAULT_PREFIXES) and k not in ("CC", "BCC")
    }
    kept["x-hub-replay-of"] = parked_id
    return kept
