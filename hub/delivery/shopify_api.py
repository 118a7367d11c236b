"""The Shopify Admin API as the hub calls it: the adapter's payloads (``adapters.shopify``) sent
to their REST resources with the shop's access token, the ids Shopify wants found first.

- A SKU's variant, product and inventory item: one GraphQL ``productVariants`` search (exact
  SKU match), remembered; looked up again when an update answers 404.
- Stock: GraphQL ``inventorySetQuantities``, compare-and-swap (``shopify_stock``), at the
  channel's ``location_id`` setting, or the shop's first active location.
- Price: ``variants/{id}``; product data: ``products/{id}`` (without its variants, which a
  product update would replace) then ``variants/{id}`` for barcode and weight.
- Tracking: the order's fulfillments are read first (a number already on one is done; a
  later number updates the one that carries the number it replaces), then the shipped lines
  are fulfilled from its open fulfillment orders.
- Cancel and refund: ``orders/{id}/cancel`` and ``orders/{id}/refunds``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from hub.delivery.shopify_stock import StockLevels
from hub.delivery.wire import Request

VERSION = "2024-07"
VARIANT_BY_SKU = """
query ($q: String!) {
  productVariants(first: 5, query: $q) {
    edges { node { legacyResourceId sku
                   inventoryItem { legacyResourceId } product { legacyResourceId } } }
  }
}
"""


@dataclass(frozen=True)
class Variant:
    """What Shopify calls one SKU: its variant, product and inventory item ids."""

    variant_id: int
    product_id: int
    inventory_item_id: int


class ShopifyApi:
    """Calls a shop's Admin API for each delivery, with its access token."""

    def __init__(
        self, base_url: str, settings: Mapping[str, str], settle_s: float | None = 10.0
    ) -> None:
        self._base = f"{base_url.rstrip('/')}/admin/api/{VERSION}"
        self._token = settings.get("access_token", "")
        self._location = settings.get("location_id") or None
        self._variants: dict[str, Variant] = {}
        self._levels = StockLevels(settle_s)

    def forget(self) -> None:
        """Remember no stock figure: another hub may have set the shop's since."""
        self._levels.forget()

    async def call(self, client: httpx.AsyncClient, request: Request) -> httpx.Response:
        """The API calls (after any lookups) that deliver the payload."""
        kind = request.headers.get("X-Hub-Message-Type", "")
        body: dict[str, Any] = orjson.loads(request.body)
        if kind == "stock.availability":
            return await self._with_variant(client, str(body["sku"]), self._set_level, body)
        if kind == "price.changed":
            sku = str(body["variant"]["sku"])
            return await self._with_variant(client, sku, self._set_price, body)
        if kind == "product.upserted":
            sku = str(body["product"]["variants"][0]["sku"])
            return await self._with_variant(client, sku, self._set_product, body)
        if kind == "shipment.tracking":
            return await self._fulfil(client, body)
        if kind in ("order.rejected", "order.status") and "cancel" in body:
            path = f"/orders/{body['order_id']}/cancel.json"
            return await self._send(client, "POST", path, body["cancel"])
        if kind == "order.status" and "refund" in body:
            return await self._refund(client, body)
        return httpx.Response(400, text=f"the hub has no Shopify call for {kind!r}")

    async def _with_variant(
        self, client: httpx.AsyncClient, sku: str, update: Any, body: dict[str, Any]
    ) -> httpx.Response:
        """Find the SKU's ids (again, once, if the update answers 404) and run the update."""
        for fresh in (False, True):
            found = await self._variant(client, sku, fresh)
            if isinstance(found, httpx.Response):
                return found
            response: httpx.Response = await update(client, found, body)
            if response.status_code != 404 or fresh:
                return response
            self._variants.pop(sku, None)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _variant(
        self, client: httpx.AsyncClient, sku: str, fresh: bool
    ) -> Variant | httpx.Response:
        if not fresh and sku in self._variants:
            return self._variants[sku]
        data = await self._graphql(client, VARIANT_BY_SKU, {"q": f"sku:'{sku}'"})
        if isinstance(data, httpx.Response):
            return data
        edges = (data.get("productVariants") or {}).get("edges", [])
        nodes = [e["node"] for e in edges if e["node"].get("sku") == sku]
        if not nodes:
            return httpx.Response(404, text=f"no variant with SKU {sku!r} in the shop")
        node = nodes[0]
        variant = Variant(
            int(node["legacyResourceId"]),
            int(node["product"]["legacyResourceId"]),
            int(node["inventoryItem"]["legacyResourceId"]),
        )
        self._variants[sku] = variant
        return variant

    async def _set_level(
        self, client: httpx.AsyncClient, variant: Variant, body: dict[str, Any]
    ) -> httpx.Response:
        location = await self._location_id(client)
        if isinstance(location, httpx.Response):
            return location

        async def graphql(query: str, variables: dict[str, Any]) -> dict[str, Any] | httpx.Response:
            return await self._graphql(client, query, variables)

        available = int(body["available"])
        return await self._levels.set(graphql, variant.inventory_item_id, location, available)

    async def _graphql(
        self, client: httpx.AsyncClient, query: str, variables: dict[str, Any]
    ) -> dict[str, Any] | httpx.Response:
        """A GraphQL query's ``data``, or the response that says why there is none."""
        response = await self._send(
            client, "POST", "/graphql.json", {"query": query, "variables": variables}
        )
        if response.status_code != 200:
            return response
        try:
            document = response.json()
        except ValueError:
            return httpx.Response(502, text=f"unreadable GraphQL answer: {response.text[:200]}")
        if not isinstance(document, dict):
            return httpx.Response(502, text=f"unreadable GraphQL answer: {response.text[:200]}")
        if document.get("errors"):  # Shopify answers GraphQL errors with 200
            return _graphql_error(document["errors"])
        data: dict[str, Any] = document.get("data") or {}
        return data

    async def _location_id(self, client: httpx.AsyncClient) -> int | httpx.Response:
        """The location stock is set at: the channel's setting, else the first active one."""
        if self._location is not None:
            return int(self._location)
        response = await self._send(client, "GET", "/locations.json", None)
        if response.status_code != 200:
            return response
        active = [loc for loc in response.json().get("locations", []) if loc.get("active")]
        if not active:
            return httpx.Response(404, text="the shop has no active location to set stock at")
        self._location = str(active[0]["id"])
        return int(self._location)

    async def _refund(self, client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
        """Take the rest off an order as refund line items; Shopify wants the location the
        cancelled units are restocked at."""
        location = await self._location_id(client)
        if isinstance(location, httpx.Response):
            return location
        refund = dict(body["refund"])
        refund["refund_line_items"] = [
            {**line, "location_id": location} for line in refund["refund_line_items"]
        ]
        path = f"/orders/{body['order_id']}/refunds.json"
        return await self._send(client, "POST", path, {"refund": refund})

    async def _set_price(
        self, client: httpx.AsyncClient, variant: Variant, body: dict[str, Any]
    ) -> httpx.Response:
        update = {"variant": {"id": variant.variant_id, "price": body["variant"]["price"]}}
        return await self._send(client, "PUT", f"/variants/{variant.variant_id}.json", update)

    async def _set_product(
        self, client: httpx.AsyncClient, variant: Variant, body: dict[str, Any]
    ) -> httpx.Response:
        product = dict(body["product"])
        [own] = product.pop("variants")
        product["id"] = variant.product_id
        path = f"/products/{variant.product_id}.json"
        response = await self._send(client, "PUT", path, {"product": product})
        if response.status_code >= 300:
            return response
        fields = {k: v for k, v in own.items() if k != "sku"}
        if not fields:
            return response
        update = {"variant": {"id": variant.variant_id, **fields}}
        return await self._send(client, "PUT", f"/variants/{variant.variant_id}.json", update)

    async def _fulfil(self, client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
        """Fulfil the shipped lines from the order's open fulfillment orders; a number already
        on a fulfillment is done (a retry); a later number updates the fulfillment that
        carries the one it replaces."""
        order_id = body["order_id"]
        done = await self._send(client, "GET", f"/orders/{order_id}/fulfillments.json", None)
        if done.status_code != 200:
            return done
        fulfillments = done.json().get("fulfillments", [])
        info = body["fulfillment"]["tracking_info"]
        replaces = body.get("replaces_tracking_number")
        if not replaces and _tracked(fulfillments, info["number"]) is not None:
            return httpx.Response(200, text="already fulfilled with this tracking number")
        if replaces:  # a later number or page of a parcel told before (a repeat is harmless)
            earlier = _tracked(fulfillments, replaces) or _tracked(fulfillments, info["number"])
            if earlier is None:
                return httpx.Response(
                    404, text=f"order {order_id}: no fulfillment tracked as {replaces!r}"
                )
            update = {
                "fulfillment": {
                    "tracking_info": info,
                    "notify_customer": body["fulfillment"].get("notify_customer", True),
                }
            }
            path = f"/fulfillments/{earlier}/update_tracking.json"
            return await self._send(client, "POST", path, update)
        return await self._fulfil_lines(client, body)

    async def _fulfil_lines(
        self, client: httpx.AsyncClient, body: dict[str, Any]
    ) -> httpx.Response:
        order_id = body["order_id"]
        found = await self._send(client, "GET", f"/orders/{order_id}/fulfillment_orders.json", None)
        if found.status_code != 200:
            return found
        wanted = {
            int(line["id"]): int(line["quantity"]) for line in body["fulfillment"]["line_items"]
        }
        by_order: dict[int, list[dict[str, int]]] = {}
        for fulfillment_order in found.json().get("fulfillment_orders", []):
            if fulfillment_order.get("status") not in ("open", "in_progress"):
                continue
            for line in fulfillment_order.get("line_items", []):
                left = wanted.get(int(line["line_item_id"]), 0)
                take = min(left, int(line.get("fulfillable_quantity", 0)))
                if take > 0:
                    by_order.setdefault(int(fulfillment_order["id"]), []).append(
                        {"id": int(line["id"]), "quantity": take}
                    )
                    wanted[int(line["line_item_id"])] = left - take
        if not by_order or any(wanted.values()):
            missing = sorted(line for line, n in wanted.items() if n)
            return httpx.Response(
                422, text=f"order {order_id}: no open fulfillment order holds line(s) {missing}"
            )
        fulfillment = {
            key: value for key, value in body["fulfillment"].items() if key != "line_items"
        }
        fulfillment["line_items_by_fulfillment_order"] = [
            {"fulfillment_order_id": fo, "fulfillment_order_line_items": lines}
            for fo, lines in by_order.items()
        ]
        return await self._send(client, "POST", "/fulfillments.json", {"fulfillment": fulfillment})

    async def _send(
        self, client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None
    ) -> httpx.Response:
        headers = {"X-Shopify-Access-Token": self._token, "Content-Type": "application/json"}
        content = orjson.dumps(body) if body is not None else None
        return await client.request(method, f"{self._base}{path}", content=content, headers=headers)


def _tracked(fulfillments: list[dict[str, Any]], number: str) -> int | None:
    """The fulfillment that carries this tracking number, if one does."""
    for fulfillment in fulfillments:
        numbers = fulfillment.get("tracking_numbers") or [fulfillment.get("tracking_number")]
        if number in numbers and fulfillment.get("status") != "cancelled":
            return int(fulfillment["id"])
    return None


def _graphql_error(errors: Any) -> httpx.Response:
    """A GraphQL error as the HTTP answer it stands for: a throttled query is retried after a
    pause, any other (a missing scope, a bad query) is refused with Shopify's own words."""
    listed: list[dict[str, Any]] = [
        e if isinstance(e, dict) else {"message": str(e)}
        for e in (errors if isinstance(errors, list) else [errors])
    ]
    codes = {str((e.get("extensions") or {}).get("code", "")) for e in listed}
    text = "; ".join(str(e.get("message", "")) for e in listed)
    if "THROTTLED" in codes:
        return httpx.Response(429, headers={"Retry-After": "2"}, text=f"GraphQL: {text}")
    status = 403 if "ACCESS_DENIED" in codes else 400
    return httpx.Response(status, text=f"GraphQL: {text}")
