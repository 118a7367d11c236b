"""The Sendcloud API (``api/v2``) as the hub calls it: a shipment request becomes a parcel,
announced at once, with the integration's public and secret key; a shipment cancel cancels
the parcel made for it (``parcels/{id}/cancel``), if one was.

Sendcloud answers the request with the labelled parcel: the same body as its
``parcel-created`` event, which the delivery worker hands to the hub (``answer_event``), so the
label and tracking number arrive without waiting for the webhook.

Creating a parcel is not idempotent at Sendcloud (a second POST is a second, billed label), so
the order's parcels are read first (``GET parcels?order_number=``): one that already carries
the shipment's ``external_reference`` (a retry after a lost answer, a redelivery after a crash)
is answered with, not made again.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from adapters.sendcloud import CANCELLED
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
        if kind == "shipment.cancel":
            return await self._cancel(client, orjson.loads(request.body)["cancel"])
        if kind != "shipment.request":
            return httpx.Response(400, text=f"the hub has no Sendcloud call for {kind!r}")
        parcel = orjson.loads(request.body)["parcel"]
        made = await self._made_before(client, parcel)
        if made is not None:
            return made
        headers = {k: v for k, v in request.headers.items() if k != "X-Hub-Signature-256"}
        return await client.post(
            f"{self._base}{PARCELS}", content=request.body, headers=headers, auth=self._auth
        )

    async def _cancel(self, client: httpx.AsyncClient, wanted: dict[str, Any]) -> httpx.Response:
        """Cancel the parcel made for the shipment; none made (or cancelled already) is done."""
        made = await self._made_before(client, wanted)
        if made is None:
            return httpx.Response(200, text="no parcel was made for this shipment")
        if made.status_code != 200:
            return made
        parcel_id = made.json()["parcel"]["id"]
        return await client.post(f"{self._base}{PARCELS}/{parcel_id}/cancel", auth=self._auth)

    async def _made_before(
        self, client: httpx.AsyncClient, parcel: dict[str, Any]
    ) -> httpx.Response | None:
        """The parcel made for this shipment already (as Sendcloud would answer its creation),
        the failed lookup's response, or None when there is none."""
        found = await client.get(
            f"{self._base}{PARCELS}",
            params={"order_number": parcel["order_number"]},
            auth=self._auth,
        )
        if found.status_code != 200:
            return found
        for made in found.json().get("parcels", []):
            cancelled = (made.get("status") or {}).get("id") in CANCELLED
            if made.get("external_reference") == parcel["external_reference"] and not cancelled:
                return httpx.Response(200, json={"parcel": made})
        return None
