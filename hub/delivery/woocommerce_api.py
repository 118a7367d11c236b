"""The WooCommerce REST API (``wp-json/wc/v3``) as the hub calls it: the adapter's payloads
(``adapters.woocommerce``) sent to their resource, with the shop's API key.

Products are found by SKU (``GET products?sku=``) once and remembered; a product that is gone
(404 on the update) is looked up again once. Tracking goes to the Shipment Tracking
extension's endpoint. Variations are not looked up: a SKU that only a variation carries is
answered 404, and the message is parked with that reason.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from hub.delivery.wire import Request, api_headers

REST = "/wp-json/wc/v3"
TRACKING = "/wp-json/wc-shipment-tracking/v3"
PRODUCT_TYPES = frozenset({"stock.availability", "price.changed", "product.upserted"})
ORDER_TYPES = frozenset({"order.accepted", "order.rejected", "order.status"})


class WooCommerceApi:
    """Calls a shop's REST API for each delivery, authenticated with its consumer key."""

    def __init__(self, base_url: str, consumer_key: str, consumer_secret: str) -> None:
        self._base = base_url.rstrip("/")
        self._auth = httpx.BasicAuth(consumer_key, consumer_secret)
        self._product_ids: dict[str, int] = {}

    async def call(self, client: httpx.AsyncClient, request: Request) -> httpx.Response:
        """The API call (after a lookup, for a product) that delivers the payload."""
        kind = request.headers.get("X-Hub-Message-Type", "")
        body: dict[str, Any] = orjson.loads(request.body)
        if kind in PRODUCT_TYPES:
            return await self._update_product(client, request, body)
        if kind in ORDER_TYPES:
            order_id = body.pop("id")
            return await self._send(client, "PUT", f"{REST}/orders/{order_id}", body, request)
        if kind == "shipment.tracking":
            order_id = body.pop("order_id")
            path = f"{TRACKING}/orders/{order_id}/shipment-trackings"
            return await self._send(client, "POST", path, body, request)
        return _answer(400, f"the hub has no WooCommerce call for {kind!r}")

    async def _update_product(
        self, client: httpx.AsyncClient, request: Request, body: dict[str, Any]
    ) -> httpx.Response:
        sku = str(body["sku"])
        for fresh in (False, True):
            found = await self._product_id(client, sku, fresh)
            if isinstance(found, httpx.Response):
                return found
            path = f"{REST}/products/{found}"
            response = await self._send(client, "PUT", path, body, request)
            if response.status_code != 404 or fresh:
                return response
            self._product_ids.pop(sku, None)  # deleted or re-created in the shop: look again
        raise AssertionError("unreachable")  # pragma: no cover

    async def _product_id(
        self, client: httpx.AsyncClient, sku: str, fresh: bool
    ) -> int | httpx.Response:
        """The shop's product id for a SKU, or the response that says why there is none."""
        if not fresh and sku in self._product_ids:
            return self._product_ids[sku]
        response = await client.get(
            f"{self._base}{REST}/products", params={"sku": sku}, auth=self._auth
        )
        if response.status_code != 200:
            return response
        matches = [p for p in response.json() if str(p.get("sku")) == sku]
        if not matches:
            return _answer(404, f"no product with SKU {sku!r} in the shop")
        product_id = int(matches[0]["id"])
        self._product_ids[sku] = product_id
        return product_id

    async def _send(
        self,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        body: dict[str, Any],
        request: Request,
    ) -> httpx.Response:
        headers = api_headers(request)
        return await client.request(
            method,
            f"{self._base}{path}",
            content=orjson.dumps(body),
            headers=headers,
            auth=self._auth,
        )


def _answer(status: int, reason: str) -> httpx.Response:
    """A response of the hub's own, for a step that cannot be called (judged like the API's)."""
    return httpx.Response(status, text=reason)
