"""The hub calling a Shopify shop's own Admin API (``delivery.api``), with the real broker,
database and hub, against a shop served on loopback: its token, its ids found by SKU, its
locations and fulfillment orders."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.runtime import Hub
from routes import EXAMPLE_CONFIG
from routes.config import HubConfig

sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures"))
from events import erp_event as erp
from loopback import Loopback, until

pytestmark = pytest.mark.integration

SHOP = "webshop-nl"  # adapter shopify
TOKEN = "shpat_test"
API = "/admin/api/2024-07"
ORDER, LINE = 5841203740712, 14729384720424


class Shopify:
    """The Admin API on a loopback port: variants found by SKU, locations, orders."""

    def __init__(self) -> None:
        # sku -> (variant, product, inventory item); DESK-1-B shows the search is fuzzy
        self.variants = {"DESK-1": (31, 21, 41), "DESK-1-B": (32, 22, 42), "LAMP-1": (33, 23, 43)}
        self.fulfillment_status = "open"
        self.fulfillments: list[dict[str, Any]] = []
        self.throttle_next = False
        self.levels = {(41, 7): 0, (43, 7): 0}  # (inventory item, location) -> available
        self.sets: list[dict[str, int]] = []  # what each inventorySetQuantities asked
        self.calls: list[tuple[str, str, Any]] = []
        post, put, get = ["POST"], ["PUT"], ["GET"]
        self._api = Loopback(
            [
                Route(f"{API}/graphql.json", self._graphql, methods=post),
                Route(f"{API}/locations.json", self._locations, methods=get),
                Route(f"{API}/variants/{{id:int}}.json", self._variant, methods=put),
                Route(f"{API}/products/{{id:int}}.json", self._record, methods=put),
                Route(f"{API}/orders/{{id:int}}/fulfillment_orders.json", self._fos, methods=get),
                Route(f"{API}/fulfillments.json", self._fulfil, methods=post),
                Route(f"{API}/orders/{{id:int}}/fulfillments.json", self._done, methods=get),
                Route(
                    f"{API}/fulfillments/{{id:int}}/update_tracking.json",
                    self._retrack,
                    methods=post,
                ),
                Route(f"{API}/orders/{{id:int}}/refunds.json", self._record, methods=post),
                Route(f"{API}/orders/{{id:int}}/cancel.json", self._record, methods=post),
            ]
        )

    @property
    def port(self) -> int:
        return self._api.port

    async def _seen(self, request: Request) -> Any:
        if request.headers.get("x-shopify-access-token") != TOKEN:
            return None
        raw = await request.body()
        body = orjson.loads(raw) if raw else None
        self.calls.append((request.method, request.url.path.removeprefix(API), body))
        return body if body is not None else {}

    async def _graphql(self, request: Request) -> Response:
        body = await self._seen(request)
        if body is None:
            return JSONResponse({"errors": "Invalid API key or access token"}, 401)
        if self.throttle_next:  # GraphQL's own error, with HTTP 200
            self.throttle_next = False
            throttled = {"message": "Throttled", "extensions": {"code": "THROTTLED"}}
            return JSONResponse({"errors": [throttled]})
        if "inventorySetQuantities" in body["query"]:
            return JSONResponse({"data": {"inventorySetQuantities": self._set(body["variables"])}})
        if "inventoryItem(" in body["query"]:
            return JSONResponse({"data": self._level(body["variables"])})
        wanted = body["variables"]["q"].removeprefix("sku:'").removesuffix("'")
        edges = [
            {
                "node": {
                    "legacyResourceId": str(v),
                    "sku": sku,
                    "product": {"legacyResourceId": str(p)},
                    "inventoryItem": {"legacyResourceId": str(i)},
                }
            }
            for sku, (v, p, i) in self.variants.items()
            if sku.startswith(wanted)
        ]
        return JSONResponse({"data": {"productVariants": {"edges": edges}}})

    def _set(self, variables: dict[str, Any]) -> dict[str, Any]:
        [asked] = variables["input"]["quantities"]
        key = (_id(asked["inventoryItemId"]), _id(asked["locationId"]))
        self.sets.append({"item": key[0], "location": key[1], **asked})
        if asked["compareQuantity"] != self.levels[key]:
            stale = {"code": "COMPARE_QUANTITY_STALE", "field": ["input"], "message": "stale"}
            return {"userErrors": [stale]}
        self.levels[key] = asked["quantity"]
        return {"userErrors": []}

    def _level(self, variables: dict[str, Any]) -> dict[str, Any]:
        key = (_id(variables["item"]), _id(variables["location"]))
        if key not in self.levels:
            return {"inventoryItem": {"inventoryLevel": None}}
        level = {"quantities": [{"quantity": self.levels[key]}]}
        return {"inventoryItem": {"inventoryLevel": level}}

    async def _locations(self, request: Request) -> Response:
        if await self._seen(request) is None:
            return JSONResponse({"errors": "Unauthorized"}, 401)
        return JSONResponse({"locations": [{"id": 9, "active": False}, {"id": 7, "active": True}]})

    async def _record(self, request: Request) -> Response:
        if await self._seen(request) is None:
            return JSONResponse({"errors": "Unauthorized"}, 401)
        return JSONResponse({})

    async def _variant(self, request: Request) -> Response:
        if await self._seen(request) is None:
            return JSONResponse({"errors": "Unauthorized"}, 401)
        known = {v for v, _, _ in self.variants.values()}
        if request.path_params["id"] not in known:
            return JSONResponse({"errors": "Not Found"}, 404)
        return JSONResponse({})

    async def _fos(self, request: Request) -> Response:
        await self._seen(request)
        line = {"id": 9001, "line_item_id": LINE, "fulfillable_quantity": 2}
        fos = [{"id": 555, "status": self.fulfillment_status, "line_items": [line]}]
        return JSONResponse({"fulfillment_orders": fos})

    async def _fulfil(self, request: Request) -> Response:
        body = await self._seen(request)
        self.fulfillment_status = "closed"
        number = body["fulfillment"]["tracking_info"]["number"]
        made = {"id": 1 + len(self.fulfillments), "status": "success", "tracking_numbers": [number]}
        self.fulfillments.append(made)
        return JSONResponse({"fulfillment": made}, 201)

    async def _done(self, request: Request) -> Response:
        await self._seen(request)
        return JSONResponse({"fulfillments": self.fulfillments})

    async def _retrack(self, request: Request) -> Response:
        body = await self._seen(request)
        made = self.fulfillments[request.path_params["id"] - 1]
        made["tracking_numbers"] = [body["fulfillment"]["tracking_info"]["number"]]
        return JSONResponse({"fulfillment": made})

    async def start(self) -> Shopify:
        await self._api.start()
        return self

    async def stop(self) -> None:
        await self._api.stop()

    def of(self, method: str, path: str) -> list[Any]:
        return [body for m, p, body in self.calls if m == method and p == path]


def _id(gid: str) -> int:
    return int(gid.rsplit("/", 1)[1])


@pytest.fixture
async def shopify() -> AsyncIterator[Shopify]:
    started = await Shopify().start()
    yield started
    await started.stop()


def over_the_api(port: int, settle_s: str = "1", coalesce: bool = True) -> HubConfig:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["channels"][SHOP]["delivery"] = {
        "transport": "http",
        "url": f"http://127.0.0.1:{port}",
        "api": True,
        "coalesce_stock": coalesce,
    }
    data["channels"][SHOP]["settings"]["stock_settle_s"] = settle_s
    return HubConfig.model_validate(data, context={"env": {"SHOPIFY_NL_TOKEN": TOKEN}})


async def desk_stock(bus: Any, on_hand: int, version: int) -> None:
    """The ERP's stock level of DESK-1 at the main location."""
    level = {"sku": "DESK-1", "location": "main", "on_hand": on_hand, "version": version}
    await bus.publish("erp.stock.level", erp("stock.level", level))


StartHub = Callable[..., Awaitable[Hub]]


async def test_stock_is_set_on_the_variants_inventory_item_at_the_active_location(
    start_hub: StartHub, bus: Any, shopify: Shopify
) -> None:
    await start_hub(over_the_api(shopify.port))
    await desk_stock(bus, 10, 1)
    await until(lambda: shopify.levels[(41, 7)] == 8)
    await desk_stock(bus, 4, 2)
    await until(lambda: shopify.levels[(41, 7)] == 2)
    # DESK-1 exactly (not DESK-1-B), at the first active location; safety buffer 2, and a
    # figure at or below 1 is shown as 0 in the example's NL shop. The first figure is set
    # against what the shop showed, the next against the figure the hub set.
    assert [
        (s["item"], s["location"], s["quantity"], s["compareQuantity"]) for s in shopify.sets
    ] == [
        (41, 7, 8, 0),
        (41, 7, 2, 8),
    ]
    searches = [b for b in shopify.of("POST", "/graphql.json") if "productVariants" in b["query"]]
    assert len(searches) == 1  # found once, remembered
    assert len(shopify.of("GET", "/locations.json")) == 1


async def test_units_the_shop_sold_meanwhile_are_not_put_back_on_sale(
    start_hub: StartHub, bus: Any, shopify: Shopify
) -> None:
    await start_hub(over_the_api(shopify.port, settle_s="60"))
    await desk_stock(bus, 10, 1)
    await until(lambda: shopify.levels[(41, 7)] == 8)
    shopify.levels[(41, 7)] = 5  # three sold on the shop, their order not at the hub yet
    await desk_stock(bus, 12, 2)
    await until(lambda: len(shopify.sets) == 3)
    # 10 wanted (12 - 2) against the 8 the hub set: stale, so the shop's 5 stays for now.
    assert [(s["quantity"], s["compareQuantity"]) for s in shopify.sets] == [
        (8, 0),
        (10, 8),
        (5, 5),
    ]
    assert shopify.levels[(41, 7)] == 5
    # Held for a minute, the figure holds up no other SKU.
    lamp = {"sku": "LAMP-1", "location": "main", "on_hand": 4, "version": 1}
    await bus.publish("erp.stock.level", erp("stock.level", lamp))
    await until(lambda: shopify.levels[(43, 7)] == 2, 5)
    # The order comes in (its units taken off: 9 - 2 = 7) and its figure takes the held
    # one's place at once, set against the 5.
    await desk_stock(bus, 9, 3)
    await until(lambda: shopify.levels[(41, 7)] == 7, 5)
    desk = [s for s in shopify.sets if s["item"] == 41]
    assert (desk[-1]["quantity"], desk[-1]["compareQuantity"]) == (7, 5)
    assert len(desk) == 4  # the held figure was dropped, not sent


async def test_the_hubs_figure_follows_when_no_newer_one_comes_after_a_capped_set(
    start_hub: StartHub, bus: Any, shopify: Shopify
) -> None:
    await start_hub(over_the_api(shopify.port))
    await desk_stock(bus, 10, 1)
    await until(lambda: shopify.levels[(41, 7)] == 8)
    shopify.levels[(41, 7)] = 6  # a sale the hub will not hear of (say, made by hand)
    await desk_stock(bus, 12, 2)
    await until(lambda: shopify.levels[(41, 7)] == 10, 10)  # after the settle time
    assert [(s["quantity"], s["compareQuantity"]) for s in shopify.sets] == [
        (8, 0),
        (10, 8),
        (6, 6),
        (10, 6),
    ]


async def test_price_and_product_data_reach_the_variant_and_its_product(
    start_hub: StartHub, bus: Any, shopify: Shopify
) -> None:
    await start_hub(over_the_api(shopify.port))
    price = {
        "sku": "DESK-1",
        "price_list": "nl-retail",
        "price": {"amount": "8.2645", "currency": "EUR"},
        "includes_vat": False,
        "vat_rate": "0.21",
        "version": 1,
    }
    await bus.publish("erp.price.changed", erp("price.changed", price))
    await until(lambda: len(shopify.of("PUT", "/variants/31.json")) == 1)
    assert shopify.of("PUT", "/variants/31.json") == [{"variant": {"id": 31, "price": "10.00"}}]
    product = {
        "sku": "DESK-1",
        "name": "Oak desk",
        "gtin": "8712345678906",
        "weight_grams": 38500,
        "version": 1,
    }
    await bus.publish("erp.product.upserted", erp("product.upserted", product))
    await until(lambda: len(shopify.of("PUT", "/variants/31.json")) == 2)
    [updated] = shopify.of("PUT", "/products/21.json")
    assert updated["product"]["id"] == 21 and updated["product"]["title"] == "Oak desk"
    assert "variants" not in updated["product"]  # a product update would replace them all
    assert shopify.of("PUT", "/variants/31.json")[1] == {
        "variant": {"id": 31, "barcode": "8712345678906", "weight": 38500, "weight_unit": "g"}
    }


async def test_tracking_fulfils_the_lines_from_the_orders_fulfillment_order_once(
    start_hub: StartHub, bus: Any, shopify: Shopify
) -> None:
    hub = await start_hub(over_the_api(shopify.port))
    tracking = {
        "order_id": "o-1",
        "channel": SHOP,
        "channel_order_id": str(ORDER),
        "shipment_id": "s-1",
        "carrier": "postnl",
        "tracking_number": "3SABCD0123456789",
        "lines": [{"line_id": str(LINE), "sku": "DESK-1", "quantity": 2}],
    }
    await bus.put_out(SHOP, "shipment.tracking", tracking)
    await until(lambda: len(shopify.of("POST", "/fulfillments.json")) == 1)
    [fulfilment] = shopify.of("POST", "/fulfillments.json")
    assert fulfilment["fulfillment"]["line_items_by_fulfillment_order"] == [
        {"fulfillment_order_id": 555, "fulfillment_order_line_items": [{"id": 9001, "quantity": 2}]}
    ]
    assert fulfilment["fulfillment"]["tracking_info"]["number"] == "3SABCD0123456789"
    assert fulfilment["fulfillment"]["notify_customer"] is True
    # The same tracking again (a redelivery after the ack was lost): already fulfilled.
    await bus.put_out(SHOP, "shipment.tracking", tracking)
    ok = {"channel": SHOP, "outcome": "ok"}
    await until(lambda: hub.metrics.registry.get_sample_value("hub_deliveries_total", ok) == 2)
    assert len(shopify.of("POST", "/fulfillments.json")) == 1
    # The carrier's later number for that parcel updates its fulfillment, fulfils nothing more.
    later = {**tracking, "tracking_number": "3SNEW", "replaces_tracking_number": "3SABCD0123456789"}
    await bus.put_out(SHOP, "shipment.tracking", later)
    await until(lambda: len(shopify.of("POST", "/fulfillments/1/update_tracking.json")) == 1)
    [retracked] = shopify.of("POST", "/fulfillments/1/update_tracking.json")
    assert retracked["fulfillment"]["tracking_info"]["number"] == "3SNEW"
    assert len(shopify.of("POST", "/fulfillments.json")) == 1


async def test_a_refused_order_is_cancelled_and_an_unknown_sku_parked(
    start_hub: StartHub, bus: Any, shopify: Shopify
) -> None:
    await start_hub(over_the_api(shopify.port))
    refused = {
        "order_id": "o-2",
        "channel": SHOP,
        "channel_order_id": str(ORDER),
        "reasons": [{"code": "out_of_stock", "message": "short"}],
        "lines": [{"line_id": str(LINE), "sku": "DESK-1", "quantity": 2}],
    }
    await bus.put_out(SHOP, "order.rejected", refused)
    await until(lambda: len(shopify.of("POST", f"/orders/{ORDER}/cancel.json")) == 1)
    [cancel] = shopify.of("POST", f"/orders/{ORDER}/cancel.json")
    assert cancel == {"reason": "inventory", "email": True, "restock": False}

    level = {"sku": "NOT-IN-SHOP", "location": "main", "on_hand": 10, "version": 1}
    await bus.publish("erp.stock.level", erp("stock.level", level))
    [parked] = await bus.drain(bus.names.dead_queue, expect=1, timeout=15)
    assert parked.headers["x-hub-error-type"] == "delivery_refused"
    assert "no variant with SKU 'NOT-IN-SHOP' in the shop" in parked.headers["x-hub-error"]


async def test_a_throttled_lookup_is_tried_again_and_a_withdrawal_names_its_location(
    start_hub: StartHub, bus: Any, shopify: Shopify
) -> None:
    hub = await start_hub(over_the_api(shopify.port))
    shopify.throttle_next = True
    level = {"sku": "LAMP-1", "location": "main", "on_hand": 10, "version": 1}
    await bus.publish("erp.stock.level", erp("stock.level", level))
    await until(lambda: len(shopify.sets) == 1, 20)
    searches = [b for b in shopify.of("POST", "/graphql.json") if "productVariants" in b["query"]]
    assert len(searches) == 2  # throttled, then answered
    retried = {"channel": SHOP, "outcome": "retry"}
    assert hub.metrics.registry.get_sample_value("hub_deliveries_total", retried) == 1

    withdrawn = {
        "order_id": "o-3",
        "channel": SHOP,
        "channel_order_id": str(ORDER),
        "status": "cancelled",
        "cancelled": {
            "by": "erp",
            "whole_order": False,
            "lines": [{"line_id": str(LINE), "sku": "DESK-1", "quantity": 1}],
        },
    }
    await bus.put_out(SHOP, "order.status", withdrawn)
    await until(lambda: len(shopify.of("POST", f"/orders/{ORDER}/refunds.json")) == 1)
    [refund] = shopify.of("POST", f"/orders/{ORDER}/refunds.json")
    [line] = refund["refund"]["refund_line_items"]
    assert line["line_item_id"] == LINE and line["restock_type"] == "cancel"
    assert line["location_id"] == 7


async def test_an_item_not_stocked_at_the_location_is_parked_with_the_reason(
    start_hub: StartHub, bus: Any, shopify: Shopify
) -> None:
    await start_hub(over_the_api(shopify.port))
    level = {"sku": "DESK-1-B", "location": "main", "on_hand": 10, "version": 1}
    await bus.publish("erp.stock.level", erp("stock.level", level))
    [parked] = await bus.drain(bus.names.dead_queue, expect=1, timeout=15)
    assert parked.headers["x-hub-error-type"] == "delivery_refused"
    reason = parked.headers["x-hub-error"]
    assert "gid://shopify/InventoryItem/42 is not stocked at gid://shopify/Location/7" in reason
    assert not shopify.sets


async def test_without_coalescing_a_capped_set_is_not_held(
    start_hub: StartHub, bus: Any, shopify: Shopify
) -> None:
    """Nothing newer could take a held figure's place: the cap stands until the next one."""
    hub = await start_hub(over_the_api(shopify.port, settle_s="60", coalesce=False))
    await desk_stock(bus, 10, 1)
    await until(lambda: shopify.levels[(41, 7)] == 8)
    shopify.levels[(41, 7)] = 5
    await desk_stock(bus, 12, 2)
    await desk_stock(bus, 9, 3)
    await until(lambda: shopify.levels[(41, 7)] == 7, 5)  # not held behind a minute's wait
    retried = {"channel": SHOP, "outcome": "retry"}
    assert not hub.metrics.registry.get_sample_value("hub_deliveries_total", retried)
