"""The Sendcloud API (``api/v2``) as the hub calls it: a shipment request becomes a parcel,
announced at once, with the integration's public and secret key; a shipment cancel cancels
the parcel made for it (``parcels/{id}/cancel``), if one was.

Sendcloud answers the request with the labelled parcel: the same body as its
``parcel-created`` event, which the delivery worker hands to the hub (``answer_events``), so the
label and tracking number arrive without waiting for the webhook.

Creating a parcel is not idempotent at Sendcloud (a second POST is a second, billed label), so
the order's parcels are read first (``GET parcels?order_number=``): one that already carries
the shipment's ``external_reference`` (a retry after a lost answer, a redelivery after a crash)
is answered with, not made again.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import httpx
import orjson

from adapters.sendcloud import CANCELLED
from hub.delivery.wire import Request, api_headers

PARCELS = "/api/v2/parcels"


class SendcloudApi:
    """Creates parcels through Sendcloud's API, authenticated with the integration's keys."""

    answer_events = MappingProxyType({"shipment.request": "parcel-created"})
    """What a 2xx answer's body is, per message type: the labelled parcel a shipment request
    made is ``native.sendcloud.parcel-created``; a cancel's answer is nothing for the hub."""

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
        headers = api_headers(request)
        return await client.post(
            f"{self._base}{PARCELS}", content=request.body, headers=headers, auth=self._auth
        )

    async def _cancel(self, client: httpx.AsyncClient, wanted: dict[str, Any]) -> httpx.Response:
        """Cancel every parcel made for the shipment (one per box of a multi-parcel one); none
        made, or all cancelled already, is done."""
        found = await self._parcels(client, wanted)
        if isinstance(found, httpx.Response):
            return found
        answer = httpx.Response(200, text="no parcel was made for this shipment")
        for parcel in found:
            answer = await client.post(
                f"{self._base}{PARCELS}/{parcel['id']}/cancel", auth=self._auth
            )
            if answer.status_code >= 300:
                return answer
        return answer

    async def _parcels(
        self, client: httpx.AsyncClient, wanted: dict[str, Any]
    ) -> list[dict[str, Any]] | httpx.Response:
        """The live parcels made for the shipment, or the failed lookup's response."""
        found = await client.get(
            f"{self._base}{PARCELS}",
            params={"order_number": wanted["order_number"]},
            auth=self._auth,
        )
        if found.status_code != 200:
            return found
        return [
            made
            for made in found.json().get("parcels", [])
            if made.get("external_reference") == wanted["external_reference"]
            and (made.get("status") or {}).get("id") not in CANCELLED
        ]

    async def _made_before(
        self, client: httpx.AsyncClient, parcel: dict[str, Any]
    ) -> httpx.Response | None:
        """The parcel made for this shipment already (as Sendcloud would answer its creation),
        the failed lookup's response, or None when there is none."""
        found = await self._parcels(client, parcel)
        if isinstance(found, httpx.Response):
            return found
        return httpx.Response(200, json={"parcel": found[0]}) if found else None
