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
from events import stock_level
from loopback import Loopback, until

pytestmark = pytest.mark.integration

SHOP = "webshop-uk"  # adapter woocommerce
KEY, SECRET = "ck_test", "cs_test"


class Shop:
    """A WooCommerce REST API on a loopback port: products by id, found by SKU; orders."""

    def __init__(self) -> None:
        self.products: dict[str, int] = {"DESK-1": 101, "LAMP-1": 102}
        self.calls: list[tuple[str, str, Any]] = []
        self._api = Loopback(
            [
                Route("/wp-json/wc/v3/products", self._find, methods=["GET"]),
                Route("/wp-json/wc/v3/products/{id:int}", self._update, methods=["PUT"]),
                Route("/wp-json/wc/v3/orders/{id:int}", self._order, methods=["PUT"]),
                Route(
                    "/wp-json/wc-shipment-tracking/v3/orders/{id:int}/shipment-trackings",
                    self._tracking,
                    methods=["POST"],
                ),
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
        found = [{"id": i, "sku": s} for s, i in self.products.items() if s == sku]
        return JSONResponse(found)

    async def _update(self, request: Request) -> Response:
        if not self._authorised(request):
            return JSONResponse({"code": "woocommerce_rest_cannot_edit"}, status_code=401)
        product_id = request.path_params["id"]
        body = orjson.loads(await request.body())
        self.calls.append(("PUT", f"products/{product_id}", body))
        if product_id not in self.products.values():
            return JSONResponse({"code": "woocommerce_rest_product_invalid_id"}, status_code=404)
        return JSONResponse({"id": product_id, **body})

    async def _order(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.calls.append(("PUT", f"orders/{request.path_params['id']}", body))
        return JSONResponse({"id": request.path_params["id"], **body})

    async def _tracking(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.calls.append(("POST", f"orders/{request.path_params['id']}/shipment-trackings", body))
        return JSONResponse({"tracking_id": "t1", **body}, status_code=201)

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
    assert "no product with SKU 'NOT-IN-SHOP' in the shop" in parked.headers["x-hub-error"]
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
    await until(lambda: len(shop.calls) == 2)
    assert shop.of("PUT", "orders/7001") == [("PUT", "orders/7001", {"status": "processing"})]
    [(_, _, posted)] = shop.of("POST", "orders/7001/shipment-trackings")
    assert posted["tracking_number"] == "JD0001"
    assert posted["custom_tracking_link"] == "https://track.example/JD0001"
