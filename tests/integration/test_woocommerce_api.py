"""The hub calling a WooCommerce shop's own REST API (``delivery.api``), with the real broker,
database and hub, against a shop served on loopback: its paths, its key, its product ids."""

from __future__ import annotations

import base64
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
from events import erp_event, stock_level
from loopback import Loopback, until

pytestmark = pytest.mark.integration

SHOP = "webshop-uk"  # adapter woocommerce
KEY, SECRET = "ck_test", "cs_test"


class Shop:
    """A WooCommerce REST API on a loopback port: products and a variable product's
    variations by id, both found by SKU; orders and their tracking items."""

    def __init__(self) -> None:
        self.products: dict[str, int] = {"DESK-1": 101, "LAMP-1": 102}
        self.variations: dict[str, tuple[int, int]] = {"SHIRT-M": (55, 301)}  # parent, id
        self.trackings: dict[int, list[dict[str, Any]]] = {}
        self.stock: dict[int, int] = {}  # product id -> stock quantity
        self.fail_next_delete = False
        self.calls: list[tuple[str, str, Any]] = []
        trackings = "/wp-json/wc-shipment-tracking/v3/orders/{id:int}/shipment-trackings"
        self._api = Loopback(
            [
                Route("/wp-json/wc/v3/products", self._find, methods=["GET"]),
                Route("/wp-json/wc/v3/products/{id:int}", self._update, methods=["PUT"]),
                Route("/wp-json/wc/v3/products/{id:int}", self._read, methods=["GET"]),
                Route(
                    "/wp-json/wc/v3/products/{parent:int}/variations/{id:int}",
                    self._update_variation,
                    methods=["PUT"],
                ),
                Route("/wp-json/wc/v3/orders/{id:int}", self._order, methods=["PUT"]),
                Route(trackings, self._tracking, methods=["GET", "POST"]),
                Route(trackings + "/{tid}", self._untrack, methods=["DELETE"]),
            ]
        )

    @property
    def port(self) -> int:
        return self._api.port

    def _authorised(self, request: Request) -> bool:
        expected = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
        return request.headers.get("authorization") == expected

    async def _find(self, request: Request) -> Response:
        if not self._authorised(request):
            return JSONResponse({"code": "woocommerce_rest_cannot_view"}, status_code=401)
        sku = request.query_params["sku"]
        self.calls.append(("GET", f"products?sku={sku}", None))
        found: list[dict[str, Any]] = [
            {"id": i, "sku": s, "type": "simple", "parent_id": 0}
            for s, i in self.products.items()
            if s == sku
        ]
        found += [
            {"id": i, "sku": s, "type": "variation", "parent_id": parent}
            for s, (parent, i) in self.variations.items()
            if s == sku
        ]
        return JSONResponse(found)

    async def _update(self, request: Request) -> Response:
        if not self._authorised(request):
            return JSONResponse({"code": "woocommerce_rest_cannot_edit"}, status_code=401)
        product_id = request.path_params["id"]
        body = orjson.loads(await request.body())
        self.calls.append(("PUT", f"products/{product_id}", body))
        if product_id not in self.products.values():
            return JSONResponse({"code": "woocommerce_rest_product_invalid_id"}, status_code=404)
        if "stock_quantity" in body:
            self.stock[product_id] = body["stock_quantity"]
        return JSONResponse({"id": product_id, **body})

    async def _read(self, request: Request) -> Response:
        product_id = request.path_params["id"]
        fields = request.query_params.get("_fields")
        self.calls.append(("GET", f"products/{product_id}?_fields={fields}", None))
        return JSONResponse({"stock_quantity": self.stock.get(product_id)})

    async def _update_variation(self, request: Request) -> Response:
        parent, variation = request.path_params["parent"], request.path_params["id"]
        body = orjson.loads(await request.body())
        self.calls.append(("PUT", f"products/{parent}/variations/{variation}", body))
        if (parent, variation) not in self.variations.values():
            return JSONResponse({"code": "woocommerce_rest_invalid_id"}, status_code=404)
        return JSONResponse({"id": variation, "parent_id": parent, **body})

    async def _order(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.calls.append(("PUT", f"orders/{request.path_params['id']}", body))
        return JSONResponse({"id": request.path_params["id"], **body})

    async def _tracking(self, request: Request) -> Response:
        order_id = request.path_params["id"]
        items = self.trackings.setdefault(order_id, [])
        if request.method == "GET":
            self.calls.append(("GET", f"orders/{order_id}/shipment-trackings", None))
            return JSONResponse(items)
        body = orjson.loads(await request.body())
        self.calls.append(("POST", f"orders/{order_id}/shipment-trackings", body))
        item = {"tracking_id": f"t{len(self.calls)}", **body}
        items.append(item)
        return JSONResponse(item, status_code=201)

    async def _untrack(self, request: Request) -> Response:
        order_id, tracking_id = request.path_params["id"], request.path_params["tid"]
        self.calls.append(("DELETE", f"orders/{order_id}/shipment-trackings/{tracking_id}", None))
        if self.fail_next_delete:
            self.fail_next_delete = False
            return JSONResponse({"code": "internal_error"}, status_code=503)
        items = self.trackings.get(order_id, [])
        kept = [item for item in items if item["tracking_id"] != tracking_id]
        if len(kept) == len(items):
            return JSONResponse({"code": "invalid_tracking_id"}, status_code=404)
        self.trackings[order_id] = kept
        return JSONResponse({"message": "Tracking deleted"})

    async def start(self) -> Shop:
        await self._api.start()
        return self

    async def stop(self) -> None:
        await self._api.stop()

    def of(self, method: str, prefix: str) -> list[tuple[str, str, Any]]:
        return [c for c in self.calls if c[0] == method and c[1].startswith(prefix)]


@pytest.fixture
async def shop() -> AsyncIterator[Shop]:
    started = await Shop().start()
    yield started
    await started.stop()


def over_the_api(port: int, key: str = KEY) -> HubConfig:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["channels"][SHOP]["delivery"] = {
        "transport": "http",
        "url": f"http://127.0.0.1:{port}",
        "api": True,
    }
    env = {"WOO_UK_CONSUMER_KEY": key, "WOO_UK_CONSUMER_SECRET": SECRET}
    return HubConfig.model_validate(data, context={"env": env})


def tracking_of(order: str, number: str, **more: Any) -> dict[str, Any]:
    """A shipment.tracking for the shop's order ``order`` (its id in the shop) and one line."""
    return {
        "order_id": f"o-{order}",
        "channel": SHOP,
        "channel_order_id": order,
        "shipment_id": f"s-{order}",
        "carrier": "postnl",
        "tracking_number": number,
        "lines": [{"line_id": "1", "sku": "DESK-1", "quantity": 1}],
        **more,
    }


StartHub = Callable[..., Awaitable[Hub]]


async def test_stock_reaches_the_product_found_by_sku_once(
    start_hub: StartHub, bus: Any, shop: Shop
) -> None:
    await start_hub(over_the_api(shop.port))
    await bus.publish("erp.stock.level", stock_level("DESK-1", 100, 1))
    await until(lambda: len(shop.of("PUT", "products/")) == 1)
    await bus.publish("erp.stock.level", stock_level("DESK-1", 50, 2))
    await until(lambda: len(shop.of("PUT", "products/")) == 2)
    puts = shop.of("PUT", "products/")
    assert [c[1] for c in puts] == ["products/101", "products/101"]
    # 60% of what is left after a safety buffer of 5, as the UK shop's rules say.
    assert [c[2]["stock_quantity"] for c in puts] == [57, 27]
    assert puts[0][2]["manage_stock"] is True
    assert shop.of("GET", "products?sku=DESK-1") == [("GET", "products?sku=DESK-1", None)]


async def test_a_product_recreated_in_the_shop_is_looked_up_again(
    start_hub: StartHub, bus: Any, shop: Shop
) -> None:
    await start_hub(over_the_api(shop.port))
    await bus.publish("erp.stock.level", stock_level("LAMP-1", 20, 1))
    await until(lambda: len(shop.of("PUT", "products/")) == 1)
    shop.products["LAMP-1"] = 202  # deleted and made again under a new id
    await bus.publish("erp.stock.level", stock_level("LAMP-1", 30, 2))
    await until(lambda: len(shop.of("PUT", "products/202")) == 1)
    assert [c[1] for c in shop.of("PUT", "products/")] == [
        "products/102",
        "products/102",
        "products/202",
    ]
    assert len(shop.of("GET", "products?sku=LAMP-1")) == 2


async def test_a_sku_the_shop_lacks_is_parked_with_the_reason(
    start_hub: StartHub, bus: Any, shop: Shop
) -> None:
    hub = await start_hub(over_the_api(shop.port))
    await bus.publish("erp.stock.level", stock_level("NOT-IN-SHOP", 10, 1))
    [parked] = await bus.drain(bus.names.dead_queue, expect=1, timeout=15)
    assert parked.headers["x-hub-error-type"] == "delivery_refused"
    reason = parked.headers["x-hub-error"]
    assert "no product or variation with SKU 'NOT-IN-SHOP' in the shop" in reason
    assert not shop.of("PUT", "products/")
    outcome = {"channel": SHOP, "outcome": "parked"}
    assert hub.metrics.registry.get_sample_value("hub_deliveries_total", outcome) == 1


async def test_a_wrong_key_is_refused_by_the_shop_and_parked(
    start_hub: StartHub, bus: Any, shop: Shop
) -> None:
    await start_hub(over_the_api(shop.port, key="ck_wrong"))
    await bus.publish("erp.stock.level", stock_level("DESK-1", 10, 1))
    [parked] = await bus.drain(bus.names.dead_queue, expect=1, timeout=15)
    assert parked.headers["x-hub-error-type"] == "delivery_refused"
    assert "401" in parked.headers["x-hub-error"]


async def test_order_answers_and_tracking_reach_the_order(
    start_hub: StartHub, bus: Any, shop: Shop
) -> None:
    await start_hub(over_the_api(shop.port))
    ids = {"order_id": "o-1", "channel": SHOP, "channel_order_id": "7001"}
    await bus.put_out(SHOP, "order.accepted", ids)
    tracking = {
        **ids,
        "shipment_id": "s-1",
        "carrier": "dhl",
        "tracking_number": "JD0001",
        "tracking_url": "https://track.example/JD0001",
        "lines": [{"line_id": "1", "sku": "DESK-1", "quantity": 1}],
    }
    await bus.put_out(SHOP, "shipment.tracking", tracking)
    await until(lambda: len(shop.of("POST", "orders/")) == 1 and len(shop.of("PUT", "orders/")))
    assert shop.of("PUT", "orders/7001") == [("PUT", "orders/7001", {"status": "processing"})]
    [(_, _, posted)] = shop.of("POST", "orders/7001/shipment-trackings")
    assert posted["tracking_number"] == "JD0001"
    assert posted["custom_tracking_link"] == "https://track.example/JD0001"


async def test_a_variations_sku_reaches_the_variation_in_its_own_terms(
    start_hub: StartHub, bus: Any, shop: Shop
) -> None:
    await start_hub(over_the_api(shop.port))
    await bus.publish("erp.stock.level", stock_level("SHIRT-M", 40, 1))
    path = "products/55/variations/301"
    await until(lambda: len(shop.of("PUT", path)) == 1)
    assert shop.of("PUT", path)[0][2]["stock_quantity"] == 21  # 60% of 40 - 5
    product = {
        "sku": "SHIRT-M",
        "name": "Linen shirt, M",
        "description": "Washed linen.",
        "active": False,
        "attributes": {"Size": "M"},
        "image_urls": ["https://img.example/shirt-m.jpg", "https://img.example/back.jpg"],
        "version": 1,
    }
    await bus.publish("erp.product.upserted", erp_event("product.upserted", product))
    await until(lambda: any("status" in c[2] for c in shop.of("PUT", path)))
    [written] = [c[2] for c in shop.of("PUT", path) if "status" in c[2]]
    assert written["status"] == "private"  # a variation is disabled, not drafted
    assert written["image"] == {"src": "https://img.example/shirt-m.jpg"}
    assert not {"name", "attributes", "images"} & written.keys()
    assert written["description"] == "<p>Washed linen.</p>"
    assert len(shop.of("GET", "products?sku=SHIRT-M")) == 1
    assert {c[1] for c in shop.of("PUT", "products/")} == {path}


async def test_tracking_is_added_once_and_a_later_number_replaces_the_first(
    start_hub: StartHub, bus: Any, shop: Shop
) -> None:
    await start_hub(over_the_api(shop.port))
    tracking = tracking_of("7002", "3S0001")
    await bus.put_out(SHOP, "shipment.tracking", tracking)
    await until(lambda: len(shop.of("POST", "orders/7002")) == 1)
    await bus.put_out(SHOP, "shipment.tracking", tracking)  # sent again: added once
    await until(lambda: len(shop.of("GET", "orders/7002")) == 2)
    later = {**tracking, "tracking_number": "3S0002", "replaces_tracking_number": "3S0001"}
    await bus.put_out(SHOP, "shipment.tracking", later)
    await until(lambda: len(shop.of("DELETE", "orders/7002")) == 1)
    assert [item["tracking_number"] for item in shop.trackings[7002]] == ["3S0002"]
    assert len(shop.of("POST", "orders/7002")) == 2


async def test_units_the_shop_sold_meanwhile_are_not_put_back_on_sale(
    start_hub: StartHub, bus: Any, shop: Shop
) -> None:
    await start_hub(over_the_api(shop.port))
    await bus.publish("erp.stock.level", stock_level("DESK-1", 100, 1))
    await until(lambda: shop.stock.get(101) == 57)
    assert not shop.of("GET", "products/101")  # nothing set yet: nothing to compare with
    shop.stock[101] = 54  # three sold on the shop, their order not at the hub yet
    await bus.publish("erp.stock.level", stock_level("DESK-1", 110, 2))  # 63 wanted
    await until(lambda: len(shop.of("PUT", "products/101")) == 2)
    assert shop.stock[101] == 54  # the shop's 54, not 63: what it sold stays sold
    await bus.publish("erp.stock.level", stock_level("DESK-1", 100, 3))  # the order counted
    await until(lambda: len(shop.of("PUT", "products/101")) == 3)
    assert shop.stock[101] == 57
    assert shop.of("GET", "products/101") == [
        ("GET", "products/101?_fields=stock_quantity", None),
        ("GET", "products/101?_fields=stock_quantity", None),
    ]


async def test_a_new_tracking_page_for_the_same_number_replaces_the_item(
    start_hub: StartHub, bus: Any, shop: Shop
) -> None:
    await start_hub(over_the_api(shop.port))
    tracking = tracking_of("7003", "3S0003")
    await bus.put_out(SHOP, "shipment.tracking", tracking)
    await until(lambda: len(shop.of("POST", "orders/7003")) == 1)
    page = {
        **tracking,
        "tracking_url": "https://track.example/3S0003",
        "replaces_tracking_number": "3S0003",
    }
    await bus.put_out(SHOP, "shipment.tracking", page)
    await until(lambda: len(shop.of("DELETE", "orders/7003")) == 1)
    [item] = shop.trackings[7003]
    assert item["tracking_number"] == "3S0003"
    assert item["custom_tracking_link"] == "https://track.example/3S0003"
    await bus.put_out(SHOP, "shipment.tracking", page)  # sent again: nothing changes
    await until(lambda: len(shop.of("GET", "orders/7003")) == 3)
    assert len(shop.of("POST", "orders/7003")) == 2 and len(shop.trackings[7003]) == 1


async def test_a_replaced_number_is_deleted_even_when_the_first_delete_failed(
    start_hub: StartHub, bus: Any, shop: Shop
) -> None:
    await start_hub(over_the_api(shop.port))
    tracking = tracking_of("7004", "3S0004")
    await bus.put_out(SHOP, "shipment.tracking", tracking)
    await until(lambda: len(shop.of("POST", "orders/7004")) == 1)
    shop.fail_next_delete = True
    later = {**tracking, "tracking_number": "3S0005", "replaces_tracking_number": "3S0004"}
    await bus.put_out(SHOP, "shipment.tracking", later)
    await until(lambda: len(shop.of("DELETE", "orders/7004")) == 2, 20)  # failed, then again
    assert [item["tracking_number"] for item in shop.trackings[7004]] == ["3S0005"]
    assert len(shop.of("POST", "orders/7004")) == 2  # the new number added once
