"""What goes over the wire to a channel's API, and what its answer means for the message.

Errors, in the hub's tree (``hub.errors``):

PermanentError
 ├── NotDeliverable    the channel's adapter cannot write this message in its format
 └── DeliveryRefused   the API answered 4xx (not 408/409/429): the same request cannot succeed
TransientError
 └── DeliveryFailed    429, 5xx, 408/409, no answer or a timeout, on every attempt
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx
import orjson
from pydantic import ValidationError

from adapters.base import OutboundTranslator, TranslationError
from hub.errors import PermanentError, TransientError, one_line
from schemas.envelope import CONTENT_TYPE, CloudEvent
from schemas.registry import model_for

SIGNATURE_HEADER = "X-Hub-Signature-256"
SECRET_SETTINGS = ("webhook_secret", "signing_secret")
NATIVE_CONTENT_TYPE = "application/json"
SNIPPET_CHARS = 200
RETRYABLE_4XX = frozenset({408, 409, 429})


class NotDeliverable(PermanentError):
    """The channel's adapter has no native form for this message (type or data it refuses)."""

    error_type = "not_deliverable"


class DeliveryRefused(PermanentError):
    """The channel's API refused the request (4xx): resending it unchanged cannot help."""

    error_type = "delivery_refused"


class DeliveryFailed(TransientError):
    """No 2xx after the last attempt (429, 5xx, no answer): parked for a later replay."""

    error_type = "delivery_failed"


@dataclass(frozen=True)
class Request:
    """The bytes and headers of one POST; the same for every attempt of a message."""

    body: bytes
    headers: dict[str, str]


def api_headers(request: Request) -> dict[str, str]:
    """The request's headers for a system's own API: without the hub's signature, which an
    API that checks its key instead has no use for."""
    return {k: v for k, v in request.headers.items() if k != SIGNATURE_HEADER}


def seconds(
    settings: Mapping[str, str], key: str, default: float, *, zero_ok: bool = False
) -> float:
    """A duration setting of a channel's API client; LookupError (a config error naming the
    setting) when it is not a positive number of seconds (or zero, where that means "not")."""
    raw = settings.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (value > 0 or (zero_ok and value == 0)):
        what = "zero or a positive" if zero_ok else "a positive"
        raise LookupError(f"setting {key}: {raw!r} is not {what} number of seconds")
    return value


MAX_HELD = 4
"""Capped stock figures a channel holds at once: each keeps one of its delivery slots."""


class Holds:
    """Which capped stock figures are held for a newer one (``capped``): each SKU once in a
    row, and at most ``limit`` at a time, so a burst of sales does not take the slots the
    channel's other messages need; beyond that a cap simply stands until the next figure."""

    def __init__(self, settle_s: float | None, limit: int = MAX_HELD) -> None:
        self.settle_s = settle_s
        self._limit = limit
        self._until: dict[Hashable, float] = {}  # key -> when its hold ends

    def hold(self, key: Hashable) -> bool:
        """Whether this capped figure is held (answered ``capped``) rather than taken as set."""
        if self.settle_s is None or self._until.pop(key, None) is not None:
            return False  # no newer figure can take its place, or held once already
        now = time.monotonic()
        if sum(1 for end in self._until.values() if end > now) >= self._limit:
            return False
        self._until[key] = now + self.settle_s
        return True

    def held(self, key: Hashable, quantity: int, wanted: int) -> httpx.Response | None:
        """The answer that holds a figure set below the hub's, or None where it is taken as
        set (``hold``)."""
        if self.settle_s is None or not self.hold(key):
            return None
        return capped(quantity, wanted, self.settle_s)

    def done(self, key: Hashable) -> None:
        """A figure set as the hub computed it: the key may be held again."""
        self._until.pop(key, None)

    def forget(self) -> None:
        """Hold nothing from before (a lease taken back)."""
        self._until.clear()


def capped(quantity: int, wanted: int, settle_s: float) -> httpx.Response:
    """The answer to a stock set held below the hub's figure (the shop sold units the hub
    has not seen yet): try again after a while, unless a newer figure takes its place."""
    return httpx.Response(
        409,
        headers={"Retry-After": f"{settle_s:g}"},
        text=f"set to {quantity}, not {wanted}: the shop sold units the hub has not seen yet",
    )


def signing_secret(settings: Mapping[str, str]) -> str | None:
    """The channel's shared secret for signing what the hub sends, if its config has one."""
    for name in SECRET_SETTINGS:
        if settings.get(name):
            return settings[name]
    return None


def sign(secret: str, body: bytes) -> str:
    """``sha256=<hex>`` HMAC of the body, as GitHub-style receivers check it."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def native_body(event: CloudEvent, translator: OutboundTranslator) -> bytes | None:
    """The adapter's payload for the event, as JSON, or None when the channel needs no call for
    it; NotDeliverable says why it has none."""
    if event.type not in translator.outbound_types():
        raise NotDeliverable(
            f"adapter {translator.name!r} cannot write {event.type!r} "
            f"(it writes {', '.join(sorted(translator.outbound_types()))})"
        )
    model = model_for(event.type)
    if model is None:
        raise NotDeliverable(f"type {event.type!r} is not a canonical type")
    try:
        payload: dict[str, Any] | None = translator.from_canonical(model.model_validate(event.data))
        return None if payload is None else orjson.dumps(payload)
    except (ValidationError, TranslationError, TypeError, ValueError) as exc:
        raise NotDeliverable(f"{translator.name} cannot write {event.type}: {exc}") from exc


def build_request(
    event: CloudEvent, raw_body: bytes, translator: OutboundTranslator | None, secret: str | None
) -> Request | None:
    """The channel's native payload when its adapter writes one, else the CloudEvent as sent;
    None when its adapter says the channel needs no call for this message.

    The message id is the ``Idempotency-Key``, so a retry (or a redelivery after a crash) has
    its effect once at an API that honours it; the type travels in a header because a native
    payload does not carry it.
    """
    if translator is None:
        body, content_type = raw_body, CONTENT_TYPE
    else:
        native = native_body(event, translator)
        if native is None:
            return None
        body, content_type = native, NATIVE_CONTENT_TYPE
    headers = {
        "Content-Type": content_type,
        "Idempotency-Key": event.id,
        "X-Hub-Message-Type": event.type,
    }
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, body)
    return Request(body, headers)


Fate = Literal["ok", "retry", "refused"]


@dataclass(frozen=True)
class Verdict:
    """What one attempt's outcome means: done, try again (not before ``retry_after``), give up."""

    fate: Fate
    status: str
    reason: str
    retry_after: float | None = None


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None if absent."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def snippet(text: str) -> str:
    """The start of a response body on one line, for the parked message's reason."""
    return one_line(ValueError(text), SNIPPET_CHARS) if text.strip() else "(empty body)"


def judge(response: httpx.Response, now: datetime | None = None) -> Verdict:
    """2xx is done; 408, 409, 429 and 5xx are worth another try; any other status is final."""
    code = response.status_code
    status = str(code)
    what = f"HTTP {code} {response.reason_phrase}".rstrip()
    if 200 <= code < 300:
        return Verdict("ok", status, what)
    reason = f"{what}: {snippet(response.text)}"
    if code >= 500 or code in RETRYABLE_4XX:
        wait = retry_after_s(response.headers.get("Retry-After"), now)
        return Verdict("retry", status, reason, wait)
    return Verdict("refused", status, reason)


def judge_error(exc: httpx.HTTPError) -> Verdict:
    """No answer (refused connection, reset, timeout): the API may be back in a moment."""
    status = "timeout" if isinstance(exc, httpx.TimeoutException) else "error"
    return Verdict("retry", status, f"{type(exc).__name__}: {one_line(exc)}")
