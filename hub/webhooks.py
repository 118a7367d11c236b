"""Webhook ingress: a channel's HTTP push becomes a CloudEvent on hub.in, signature checked.

``POST /webhooks/<channel>/<event>``: ``<event>`` is a canonical type (``order.placed``) or the
native event name of the channel's adapter (``orders-create`` -> ``native.shopify.orders-create``).
The body is checked against the channel's ``webhook_secret`` setting (HMAC-SHA256, as Shopify's
``X-Shopify-Hmac-Sha256``, WooCommerce's ``X-WC-Webhook-Signature``, Sendcloud's
``Sendcloud-Signature`` or ``X-Hub-Signature-256``)
and published to hub.in with a broker confirm before 202 is answered, so an accepted webhook is
never lost; validation then happens on the bus like any message (bad data is parked with its
reason). The sender's delivery id (or a hash of the body) is the idempotency key, so webhook
retries have their effect once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from adapters import registry as adapter_registry
from hub.bus import Publisher
from hub.errors import PublishNotConfirmed
from hub.intake import MAX_BODY_BYTES
from hub.outgoing import to_hub
from hub.topology import Names
from routes.config import HubConfig
from schemas.envelope import TYPE_PATTERN, CloudEvent
from schemas.registry import model_for

SIGNATURE_HEADERS: dict[str, Callable[[bytes], str]] = {
    "x-shopify-hmac-sha256": lambda digest: base64.b64encode(digest).decode(),
    "x-wc-webhook-signature": lambda digest: base64.b64encode(digest).decode(),
    "x-hub-signature-256": lambda digest: "sha256=" + digest.hex(),
    "sendcloud-signature": lambda digest: digest.hex(),
}
"""Each sender's signature header and how it writes the body's HMAC-SHA256 (base64, GitHub's
``sha256=<hex>``, Sendcloud's bare hex)."""
DELIVERY_ID_HEADERS = ("x-shopify-webhook-id", "x-wc-webhook-delivery-id", "x-request-id")


def signature_ok(secret: str, body: bytes, request_headers: dict[str, str]) -> bool:
    """True when any supported signature header carries the body's HMAC-SHA256."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return any(
        hmac.compare_digest(
            given.strip().lower() if header == "sendcloud-signature" else given, written(digest)
        )
        for header, written in SIGNATURE_HEADERS.items()
        if (given := request_headers.get(header))
    )


class WebhookIngress:
    """Accepts channel webhooks and publishes them to hub.in with a confirm."""

    def __init__(self, config: HubConfig, names: Names, publisher: Publisher) -> None:
        self._config = config
        self._names = names
        self._publisher = publisher

    def routes(self) -> list[BaseRoute]:
        """The Starlette routes the hub's HTTP side mounts."""
        return [Route("/webhooks/{channel}/{event}", self.receive, methods=["POST"])]

    async def receive(self, request: Request) -> Response:
        """Check, wrap and publish one webhook; 202 only once the broker has it."""
        channel_name = request.path_params["channel"]
        event_name = request.path_params["event"]
        channel = self._config.channels.get(channel_name)
        if channel is None:
            return _error(404, f"unknown channel {channel_name!r}")
        secret = channel.settings.get("webhook_secret", "")
        if not secret:
            return _error(403, f"channel {channel_name!r} has no webhook_secret configured")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _error(413, f"body of {len(body)} bytes exceeds {MAX_BODY_BYTES}")
        headers = {k.lower(): v for k, v in request.headers.items()}
        if not signature_ok(secret, body, headers):
            return _error(401, "signature missing or wrong")
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return _error(400, f"body is not JSON: {exc}")
        if not isinstance(data, dict):
            return _error(400, "body must be a JSON object")
        if model_for(event_name) is not None:
            type_ = event_name
        else:
            type_ = f"native.{adapter_registry.native_name(channel.adapter)}.{event_name}"
        if not re.fullmatch(TYPE_PATTERN, type_):  # no such event can exist: not a 500
            return _error(404, f"unknown event {event_name[:100]!r}")
        delivery_id = next((headers[h] for h in DELIVERY_ID_HEADERS if headers.get(h)), None)
        event_id = (
            f"{channel_name}:{delivery_id}"
            if delivery_id
            else (f"{channel_name}:sha256:{hashlib.sha256(event_name.encode() + body).hexdigest()}")
        )
        event = CloudEvent(
            # At most 200 bytes: the id is also the AMQP message-id (a short string, 255 bytes).
            id=event_id.encode()[:200].decode("utf-8", "ignore"),
            source=channel_name,
            type=type_,
            time=datetime.now(UTC),
            data=data,
        )
        envelope = to_hub(self._names, event, {"x-hub-ingress": "webhook"})
        try:
            await self._publisher.publish(envelope)
        except PublishNotConfirmed as exc:
            return _error(503, f"not accepted, retry later: {exc}")
        return JSONResponse({"accepted": True, "id": event.id, "type": type_}, status_code=202)


def _error(status: int, message: str) -> Response:
    return JSONResponse({"accepted": False, "error": message}, status_code=status)
