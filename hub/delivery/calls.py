"""How a delivery reaches a channel: one POST of the payload to its url (a gateway or the
channel's own receiver), or the calls of the system's own REST API where the hub has a client
for it (``delivery.api``), with its authentication, paths and id lookups.

A caller answers with the API's last response; a lookup that finds nothing answers 404 with
the reason, so the worker's judgement (retry, park) applies to every step alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import httpx

from hub.delivery.bolcom_api import BolcomApi
from hub.delivery.sendcloud_api import SendcloudApi
from hub.delivery.shopify_api import ShopifyApi
from hub.delivery.wire import Request, seconds
from hub.delivery.woocommerce_api import WooCommerceApi


class Caller(Protocol):
    """Sends one delivery request and answers with the response that decides its fate.

    A caller whose system answers with a document the hub reads (Sendcloud's labelled
    parcel) names its native event per message type in ``answer_events``; the worker hands
    a 2xx body to the hub as that event from the channel."""

    async def call(self, client: httpx.AsyncClient, request: Request) -> httpx.Response:
        """One attempt at the delivery."""
        ...


class PostToUrl:
    """The payload POSTed as it is to the channel's url."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def call(self, client: httpx.AsyncClient, request: Request) -> httpx.Response:
        """One POST."""
        return await client.post(self.url, content=request.body, headers=request.headers)


API_CREDENTIALS: dict[str, tuple[str, ...]] = {
    "shopify": ("access_token",),
    "woocommerce": ("consumer_key", "consumer_secret"),
    "sendcloud": ("api_key", "api_secret"),
    "bolcom": ("client_id", "client_secret"),
}
"""The settings each API client authenticates with."""
API_CLIENTS = frozenset(API_CREDENTIALS)
"""The adapters whose system's own API the hub calls (``delivery.api: true``)."""


def caller_for(
    adapter: str, url: str, api: bool, settings: Mapping[str, str], *, coalesce: bool = True
) -> Caller:
    """The caller a channel's delivery config asks for; a shop's stock client holds a capped
    figure for a newer one only where stock figures are coalesced (``shopify_stock``)."""
    settle = seconds(settings, "stock_settle_s", 10.0) if coalesce else None
    if not api:
        return PostToUrl(url)
    if adapter == "woocommerce":
        return WooCommerceApi(
            url,
            settings.get("consumer_key", ""),
            settings.get("consumer_secret", ""),
            settle,
        )
    if adapter == "shopify":
        return ShopifyApi(url, settings, settle)
    if adapter == "bolcom":
        return BolcomApi(url, settings)
    if adapter == "sendcloud":
        return SendcloudApi(url, settings.get("api_key", ""), settings.get("api_secret", ""))
    known = ", ".join(sorted(API_CLIENTS))
    raise LookupError(f"the hub has no API client for adapter {adapter!r} (it has: {known})")
