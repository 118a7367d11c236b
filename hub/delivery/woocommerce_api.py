"""The WooCommerce REST API (``wp-json/wc/v3``) as the hub calls it: the adapter's payloads
(``adapters.woocommerce``) sent to their resource, with the shop's API key.

Products are found by SKU (``GET products?sku=``, which also finds a variable product's
variations) once and remembered; a product that is gone (404 on the update) is looked up again
once. A variation is written at ``products/{parent}/variations/{id}`` in its own terms: one
image, no name or attributes of its own (those are the variable product's, and its attributes
say which variation it is), and ``private`` rather than ``draft`` when the ERP retires it.

Stock guards what the shop sold meanwhile: WooCommerce takes an order's units off when it is
paid, before its webhook brings the order to the hub, so a figure computed in between would
list them again. Once the hub has set a SKU's stock, it reads the shop's before the next set
(``_fields=stock_quantity``); if the shop's is lower than what the hub set, it sets the lower
of its figure and the shop's and, where the channel coalesces stock, holds the message once
(409 with Retry-After ``stock_settle_s``), as ``shopify_stock`` describes. (WooCommerce has
no compare-and-swap: the read and the write are a moment apart, not atomic.)

Tracking goes to the Shipment Tracking extension's endpoint, once per number: the order's
tracking items are read first, so a delivery sent again adds nothing, and a later number of the
same parcel (``replaces_tracking_number``) is added and the one it replaces deleted.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from hub.delivery.wire import Holds, Request, api_headers

REST = "/wp-json/wc/v3"
TRACKING = "/wp-json/wc-shipment-tracking/v3"
PRODUCT_TYPES = frozenset({"stock.availability", "price.changed", "product.upserted"})
ORDER_TYPES = frozenset({"order.accepted", "order.rejected", "order.status"})


class WooCommerceApi:
    """Calls a shop's REST API for each delivery, authenticated with its consumer key."""

    def __init__(
        self,
        base_url: str,
        consumer_key: str,
        consumer_secret: str,
        settle_s: float | None = 10.0,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._holds = Holds(settle_s)
        self._auth = httpx.BasicAuth(consumer_key, consumer_secret)
        self._product_paths: dict[str, str] = {}
        self._told: dict[str, int] = {}  # SKU -> the stock quantity the hub last set

    def forget(self) -> None:
        """Remember no figure: another hub may have set the shop's since (a lease taken)."""
        self._told.clear()
        self._holds.forget()

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
            return await self._track(client, request, body)
        return _answer(400, f"the hub has no WooCommerce call for {kind!r}")

    async def _update_product(
        self, client: httpx.AsyncClient, request: Request, body: dict[str, Any]
    ) -> httpx.Response:
        sku = str(body["sku"])
        for fresh in (False, True):
            found = await self._product_path(client, sku, fresh)
            if isinstance(found, httpx.Response):
                return found
            sent = _as_variation(body) if "/variations/" in found else body
            if "stock_quantity" in sent:
                sent = await self._unsold(client, sku, found, sent)
            response = await self._send(client, "PUT", found, sent, request)
            if response.is_success and "stock_quantity" in sent:
                self._told[sku] = int(sent["stock_quantity"])
                set_to, wanted = sent["stock_quantity"], body["stock_quantity"]
                lower = set_to < wanted
                if lower and (held := self._holds.held(sku, set_to, wanted)):
                    return held
                if not lower:
                    self._holds.done(sku)
            if response.status_code != 404 or fresh:
                return response
            self._product_paths.pop(sku, None)  # deleted or re-created in the shop: look again
        raise AssertionError("unreachable")  # pragma: no cover

    async def _unsold(
        self, client: httpx.AsyncClient, sku: str, path: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """The stock body lowered to what the shop has left, if it sold units since the hub's
        last figure (unchanged when the hub set none yet, or the shop cannot be read)."""
        told = self._told.get(sku)
        if told is None:
            return body
        shown = await client.get(
            f"{self._base}{path}", params={"_fields": "stock_quantity"}, auth=self._auth
        )
        if shown.status_code != 200:
            return body
        try:
            current = shown.json().get("stock_quantity")
        except (ValueError, AttributeError):  # not the product document: set as computed
            return body
        if not isinstance(current, int) or current >= told:
            return body
        return {**body, "stock_quantity": max(min(int(body["stock_quantity"]), current), 0)}

    async def _product_path(
        self, client: httpx.AsyncClient, sku: str, fresh: bool
    ) -> str | httpx.Response:
        """The path of the product or variation that carries a SKU, or the response that says
        why there is none."""
        if not fresh and sku in self._product_paths:
            return self._product_paths[sku]
        response = await client.get(
            f"{self._base}{REST}/products", params={"sku": sku}, auth=self._auth
        )
        if response.status_code != 200:
            return response
        matches = [p for p in response.json() if str(p.get("sku")) == sku]
        if not matches:
            return _answer(404, f"no product or variation with SKU {sku!r} in the shop")
        found = matches[0]
        parent = int(found.get("parent_id") or 0)
        if parent and found.get("type", "variation") == "variation":
            path = f"{REST}/products/{parent}/variations/{int(found['id'])}"
        else:
            path = f"{REST}/products/{int(found['id'])}"
        self._product_paths[sku] = path
        return path

    async def _track(
        self, client: httpx.AsyncClient, request: Request, body: dict[str, Any]
    ) -> httpx.Response:
        """Adds the parcel's tracking number to the order unless it is there already, then
        deletes the number it replaces."""
        order_id = body.pop("order_id")
        replaces = body.pop("replaces_tracking_number", None)
        number = str(body["tracking_number"])
        path = f"{TRACKING}/orders/{order_id}/shipment-trackings"
        listed = await client.get(f"{self._base}{path}", auth=self._auth)
        if listed.status_code != 200:
            return listed
        try:
            items = [i for i in listed.json() if isinstance(i, dict)]
        except (ValueError, TypeError):
            return _answer(502, f"unreadable tracking items: {listed.text[:200]}")
        same = [i for i in items if str(i.get("tracking_number")) == number]
        link = body.get("custom_tracking_link")
        if replaces == number:  # the same number, a new page: the item is replaced
            missing = not any(i.get("custom_tracking_link") == link for i in same)
            old = [i for i in same if i.get("custom_tracking_link") != link]
        else:
            missing = not same
            old = [i for i in items if replaces and str(i.get("tracking_number")) == replaces]
        answer = _answer(200, "the order already carries this tracking item")
        if missing:
            answer = await self._send(client, "POST", path, body, request)
            if not answer.is_success:
                return answer
        for item in old:  # the new item is in first, so the order is never without one
            url = f"{self._base}{path}/{item.get('tracking_id')}"
            gone = await client.delete(url, headers=api_headers(request), auth=self._auth)
            if not gone.is_success and gone.status_code != 404:
                return gone
        return answer

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


def _as_variation(body: dict[str, Any]) -> dict[str, Any]:
    """A product body in a variation's terms: its first image, no name or attributes, and a
    retired variation ``private`` (WooCommerce's "not enabled")."""
    sent = {k: v for k, v in body.items() if k not in ("name", "attributes", "images")}
    if body.get("images"):
        sent["image"] = body["images"][0]
    if sent.get("status") == "draft":
        sent["status"] = "private"
    return sent


def _answer(status: int, reason: str) -> httpx.Response:
    """A response of the hub's own, for a step that cannot be called (judged like the API's)."""
    return httpx.Response(status, text=reason)
