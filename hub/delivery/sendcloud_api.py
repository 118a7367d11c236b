"""The Sendcloud API (``api/v2``) as the hub calls it: a shipment request becomes a parcel,
announced at once, with the integration's public and secret key.

Sendcloud answers the request with the labelled parcel: the same body as its
``parcel-created`` event, which the delivery worker hands to the hub (``answer_event``), so the
label and tracking number arrive without waiting for the webhook.
"""

from __future__ import annotations

import httpx

from hub.delivery.wire import Request

PARCELS = "/api/v2/parcels"


class SendcloudApi:
    """Creates parcels through Sendcloud's API, authenticated with the integration's keys."""

    answer_event = "parcel-created"
    """The native event a 2xx answer's body is (``native.sendcloud.parcel-created``)."""

    def __init__(self, base_url: str, public_key: str, secret_key: str) -> None:
        self._base = base_url.rstrip("/")
        self._auth = httpx.BasicAuth(public_key, secret_key)

    async def call(self, client: httpx.AsyncClient, request: Request) -> httpx.Response:
        """``POST parcels`` for a shipment request; nothing else has a call here."""
        kind = request.headers.get("X-Hub-Message-Type", "")
        if kind != "shipment.request":
            return httpx.Response(400, text=f"the hub has no Sendcloud call for {kind!r}")
        headers = {k: v for k, v in request.headers.items() if k != "X-Hub-Signature-256"}
        return await client.post(
            f"{self._base}{PARCELS}", content=request.body, headers=headers, auth=self._auth
        )
