"""The hub calling bol.com's Retailer API (``delivery.api``), with the real broker, database and
hub, against a Retailer API served on loopback: its token, its offer export and its process
statuses, shipments and one-item cancellations."""

from __future__ import annotations

import asyncio
import base64
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aio_pika
import orjson
import pytest
import yaml
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from hub.runtime import Hub
from routes import EXAMPLE_CONFIG
from routes.config import HubConfig

sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures"))
from events import erp_event, stock_level
from loopback import Loopback, until

pytestmark = pytest.mark.integration

SHOP = "bolcom"
CLIENT_ID, SECRET = "bol-client", "bol-secret"
JSON = "application/vnd.retailer.v10+json"
HEADER = (
    "offerId,ean,conditionName,conditionCategory,conditionComment,bundlePricesPrice,"
    "fulfilmentDeliveryCode,stockAmount,onHoldByRetailer,fulfilmentType,mutationDateTime,"
    "referenceCode"
)


class Bol:
    """bol.com's Retailer API on a loopback port, as far as the hub uses it."""

    def __init__(self) -> None:
        self.offers: dict[str, str] = {"DESK-1": "offer-desk", "LAMP-1": "offer-lamp"}
        self.order_items: dict[str, dict[str, int]] = {}  # order item id -> quantities
        self.returns: dict[str, list[dict[str, Any]]] = {}  # return id -> its items
        self.shipments: list[dict[str, Any]] = []
        self.fail_next: str | None = None  # the errorMessage of the next write's FAILURE
        self.slow_returns = False  # return confirmations stay PENDING, their items not handled
        self.confirming: set[str] = set()  # rma ids whose confirmation is being processed
        self.down_once: set[str] = set()  # rma ids whose next confirmation answers 503
        self.open_orders: dict[str, dict[str, Any]] = {}  # order id -> the order resource
        self.listed_returns: list[dict[str, Any]] = []  # unhandled FBR returns, as listed
        self.busy_lists = 0  # list calls still to answer 429 (Retry-After 1)
        self.broken_orders: dict[str, int] = {}  # order id -> reads still to refuse (403)
        self.status_down = 0  # process status reads still to answer 503
        self.tokens: list[str] = []
        self.valid: set[str] = set()
        self.statuses: dict[str, list[dict[str, Any]]] = {}  # polled in turn, the last stays
        self.calls: list[tuple[str, str, Any]] = []
        self._api = Loopback(
            [
                Route("/token", self._token, methods=["POST"]),
                Route("/retailer/offers/export", self._export, methods=["POST"]),
                Route("/retailer/offers/export/{report}", self._report, methods=["GET"]),
                Route("/retailer/offers/{offer}/{what}", self._offer, methods=["PUT"]),
                Route("/retailer/shipments", self._shipments, methods=["GET", "POST"]),
                Route("/retailer/orders", self._list_orders, methods=["GET"]),
                Route("/retailer/orders/cancellation", self._cancel, methods=["PUT"]),
                Route("/retailer/transports/{id}", self._transport, methods=["PUT"]),
                Route("/retailer/returns", self._list_returns, methods=["GET"]),
                Route("/retailer/returns/{id}", self._return, methods=["GET", "PUT"]),
                Route("/retailer/orders/{order}", self._order, methods=["GET"]),
                Route("/shared/process-status/{id}", self._status, methods=["GET"]),
            ]
        )

    @property
    def port(self) -> int:
        return self._api.port

    def of(self, method: str, prefix: str) -> list[tuple[str, str, Any]]:
        return [c for c in self.calls if c[0] == method and c[1].startswith(prefix)]

    def expire_tokens(self) -> None:
        self.valid.clear()

    async def _token(self, request: Request) -> Response:
        basic = "Basic " + base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
        form = (await request.body()).decode()
        if request.headers.get("authorization") != basic or form != "grant_type=client_credentials":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        token = f"tok-{len(self.tokens) + 1}"
        self.tokens.append(token)
        self.valid.add(token)
        granted = {"access_token": token, "token_type": "Bearer", "expires_in": 299}
        return JSONResponse({**granted, "scope": "RETAILER"})

    def _refused(self, request: Request, accept: str = JSON) -> Response | None:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in self.valid:
            return JSONResponse({"status": 401, "detail": "JWT expired"}, status_code=401)
        if request.headers.get("accept") != accept:
            return JSONResponse({"status": 406, "title": "Not Acceptable"}, status_code=406)
        return None

    def _process(self, event: str, entity: str, then: dict[str, Any]) -> JSONResponse:
        status_id = f"ps-{len(self.statuses) + 1}"
        pending = {"processStatusId": status_id, "eventType": event, "status": "PENDING"}
        self.statuses[status_id] = [{**pending, "entityId": entity, **then}]
        return JSONResponse({**pending, "description": event, "links": []}, status_code=202)

    def _outcome(self) -> dict[str, Any]:
        if self.fail_next is None:
            return {"status": "SUCCESS"}
        failed, self.fail_next = self.fail_next, None
        return {"status": "FAILURE", "errorMessage": failed}

    async def _status(self, request: Request) -> Response:
        if refused := self._refused(request):
            return refused
        if self.status_down > 0:
            self.status_down -= 1
            return JSONResponse({"status": 503, "title": "Service Unavailable"}, status_code=503)
        queue = self.statuses.get(request.path_params["id"])
        if queue is None:
            return JSONResponse({"status": 404}, status_code=404)
        self.calls.append(("GET", f"process-status/{request.path_params['id']}", None))
        return JSONResponse(queue.pop(0) if len(queue) > 1 else queue[0])

    async def _export(self, request: Request) -> Response:
        if refused := self._refused(request):
            return refused
        self.calls.append(("POST", "offers/export", orjson.loads(await request.body())))
        # Still being prepared at the first look, ready at the second.
        response = self._process("CREATE_OFFER_EXPORT", "", {"status": "SUCCESS"})
        status_id = orjson.loads(bytes(response.body))["processStatusId"]
        ready = {**self.statuses[status_id][0], "entityId": "report-1"}
        self.statuses[status_id] = [{**ready, "status": "PENDING"}, ready]
        return response

    async def _report(self, request: Request) -> Response:
        if refused := self._refused(request, "application/vnd.retailer.v10+csv"):
            return refused
        self.calls.append(("GET", f"offers/export/{request.path_params['report']}", None))
        rows = [
            f"{offer},871234567890{i},NEW,NEW,,10.00,1-2d,5,false,FBR,2026-01-01,{reference}"
            for i, (reference, offer) in enumerate(self.offers.items())
        ]
        return PlainTextResponse("\n".join([HEADER, *rows]) + "\n")

    async def _offer(self, request: Request) -> Response:
        if refused := self._refused(request):
            return refused
        offer, what = request.path_params["offer"], request.path_params["what"]
        self.calls.append(("PUT", f"offers/{offer}/{what}", orjson.loads(await request.body())))
        if offer not in self.offers.values():
            return JSONResponse({"status": 404, "title": "Not Found"}, status_code=404)
        return self._process(f"UPDATE_OFFER_{what.upper()}", offer, {"status": "SUCCESS"})

    async def _shipments(self, request: Request) -> Response:
        if refused := self._refused(request):
            return refused
        if request.method == "GET":
            order = request.query_params["order-id"]
            self.calls.append(("GET", f"shipments?order-id={order}", None))
            return JSONResponse({"shipments": self.shipments})
        body = orjson.loads(await request.body())
        self.calls.append(("POST", "shipments", body))
        outcome = self._outcome()
        if outcome["status"] == "SUCCESS":
            transport = {"transportId": 9000 + len(self.shipments)}
            self.shipments.append({"shipmentId": "1", **body, "transport": transport})
        return self._process("CONFIRM_SHIPMENT", body["orderItems"][0]["orderItemId"], outcome)

    async def _transport(self, request: Request) -> Response:
        if refused := self._refused(request):
            return refused
        body = orjson.loads(await request.body())
        self.calls.append(("PUT", f"transports/{request.path_params['id']}", body))
        return self._process("CHANGE_TRANSPORT", request.path_params["id"], self._outcome())

    async def _return(self, request: Request) -> Response:
        if refused := self._refused(request):
            return refused
        key = request.path_params["id"]
        if request.method == "GET":
            self.calls.append(("GET", f"returns/{key}", None))
            if key not in self.returns:
                return JSONResponse({"status": 404}, status_code=404)
            return JSONResponse({"returnId": key, "returnItems": self.returns[key]})
        body = orjson.loads(await request.body())
        self.calls.append(("PUT", f"returns/{key}", body))
        if key in self.down_once:
            self.down_once.discard(key)
            return JSONResponse({"status": 503, "title": "Service Unavailable"}, status_code=503)
        if key in self.confirming:
            detail = f"Return item {key} is already being handled."
            return JSONResponse({"status": 400, "detail": detail}, status_code=400)
        if self.slow_returns:
            self.confirming.add(key)
            return self._process("HANDLE_RETURN_ITEM", key, {"status": "PENDING"})
        for item in (i for items in self.returns.values() for i in items):
            if item["rmaId"] == key:
                item["handled"] = True
        return self._process("HANDLE_RETURN_ITEM", key, self._outcome())

    def _busy(self) -> Response | None:
        if self.busy_lists <= 0:
            return None
        self.busy_lists -= 1
        detail = {"title": "Too Many Requests", "status": 429, "detail": "retry in 1 second"}
        return JSONResponse(detail, status_code=429, headers={"Retry-After": "1"})

    async def _list_orders(self, request: Request) -> Response:
        if refused := self._refused(request) or self._busy():
            return refused
        query = dict(request.query_params)
        self.calls.append(("GET", "orders?", query))
        assert query["fulfilment-method"] == "FBR" and query["status"] == "OPEN"
        page = int(query.get("page", "1"))
        listed = [
            {
                "orderId": order["orderId"],
                "orderPlacedDateTime": order["orderPlacedDateTime"],
                "orderItems": [
                    {
                        "orderItemId": item["orderItemId"],
                        "ean": item["product"]["ean"],
                        "fulfilmentMethod": "FBR",
                        "fulfilmentStatus": "OPEN",
                        "quantity": item["quantity"],
                        "quantityShipped": item.get("quantityShipped", 0),
                        "quantityCancelled": item.get("quantityCancelled", 0),
                        "cancellationRequest": item["cancellationRequest"],
                        "latestChangedDateTime": item["latestChangedDateTime"],
                    }
                    for item in order["orderItems"]
                ],
            }
            for order in self.open_orders.values()
        ][(page - 1) * 50 : page * 50]
        return JSONResponse({"orders": listed} if listed else {})  # bol.com: {} when none

    async def _list_returns(self, request: Request) -> Response:
        if refused := self._refused(request) or self._busy():
            return refused
        query = dict(request.query_params)
        self.calls.append(("GET", "returns?", query))
        assert query["handled"] == "false" and query["fulfilment-method"] == "FBR"
        page = int(query.get("page", "1"))
        listed = self.listed_returns[(page - 1) * 50 : page * 50]
        return JSONResponse({"returns": listed} if listed else {})

    async def _order(self, request: Request) -> Response:
        if refused := self._refused(request):
            return refused
        self.calls.append(("GET", f"orders/{request.path_params['order']}", None))
        if self.broken_orders.get(request.path_params["order"], 0) > 0:
            self.broken_orders[request.path_params["order"]] -= 1
            return JSONResponse({"status": 403, "title": "Forbidden"}, status_code=403)
        if request.path_params["order"] in self.open_orders:
            return JSONResponse(self.open_orders[request.path_params["order"]])
        items = [{"orderItemId": i, **q} for i, q in self.order_items.items()]
        return JSONResponse({"orderId": request.path_params["order"], "orderItems": items})

    async def _cancel(self, request: Request) -> Response:
        if refused := self._refused(request):
            return refused
        body = orjson.loads(await request.body())
        self.calls.append(("PUT", "orders/cancellation", body))
        if len(body["orderItems"]) != 1:
            return JSONResponse({"status": 400, "detail": "one item per request"}, status_code=400)
        item = body["orderItems"][0]
        return self._process("CANCEL_ORDER", item["orderItemId"], self._outcome())

    async def start(self) -> Bol:
        await self._api.start()
        return self

    async def stop(self) -> None:
        await self._api.stop()


@pytest.fixture
async def bol() -> AsyncIterator[Bol]:
    started = await Bol().start()
    yield started
    await started.stop()


def over_the_api(port: int, **settings: str) -> HubConfig:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    channel = data["channels"][SHOP]
    channel["delivery"] = {
        "transport": "http",
        "url": f"http://127.0.0.1:{port}",
        "api": True,
        "rate_per_second": 100,
        "burst": 100,
    }
    channel["settings"].update(
        {
            "login_url": f"http://127.0.0.1:{port}/token",
            "process_poll_s": "0.05",
            "offer_export_wait_s": "5",
            **settings,
        }
    )
    env = {"BOLCOM_CLIENT_ID": CLIENT_ID, "BOLCOM_CLIENT_SECRET": SECRET}
    return HubConfig.model_validate(data, context={"env": env})


StartHub = Callable[..., Awaitable[Hub]]


async def test_stock_and_prices_reach_the_offers_found_in_one_export(
    start_hub: StartHub, bus: Any, bol: Bol
) -> None:
    await start_hub(over_the_api(bol.port))
    await bus.publish("erp.stock.level", stock_level("DESK-1", 100, 1))
    await bus.publish("erp.stock.level", stock_level("LAMP-1", 20, 1))
    await until(lambda: len(bol.of("PUT", "offers/")) == 2)
    price = {
        "sku": "DESK-1",
        "price_list": "nl-retail",
        "price": {"amount": "8.2645", "currency": "EUR"},
        "includes_vat": False,
        "vat_rate": "0.21",
        "version": 2,
    }
    await bus.publish("erp.price.changed", erp_event("price.changed", price))
    await until(lambda: len(bol.of("PUT", "offers/offer-desk/price")) == 1)
    stock = {c[1]: c[2] for c in bol.of("PUT", "offers/") if c[1].endswith("/stock")}
    # (100 - 3) x 40% and (20 - 3) x 40%, bol.com's rules in the example config.
    assert stock == {
        "offers/offer-desk/stock": {"amount": 38, "managedByRetailer": True},
        "offers/offer-lamp/stock": {"amount": 6, "managedByRetailer": True},
    }
    [(_, _, priced)] = bol.of("PUT", "offers/offer-desk/price")
    assert priced == {"pricing": {"bundlePrices": [{"quantity": 1, "unitPrice": 10.0}]}}
    assert len(bol.of("POST", "offers/export")) == 1  # one export serves every reference
    assert bol.of("GET", "offers/export/report-1")
    assert bol.tokens == ["tok-1"]  # one token for every call


async def test_a_reference_missing_from_a_fresh_export_is_parked_with_the_reason(
    start_hub: StartHub, bus: Any, bol: Bol
) -> None:
    hub = await start_hub(over_the_api(bol.port))
    await bus.publish("erp.stock.level", stock_level("DESK-1", 100, 1))
    await until(lambda: len(bol.of("PUT", "offers/")) == 1)
    await bus.publish("erp.stock.level", stock_level("CHAIR-1", 30, 1))
    [parked] = await bus.drain(bus.names.dead_queue, expect=1, timeout=15)
    assert parked.headers["x-hub-error-type"] == "delivery_refused"
    assert "no offer with reference 'CHAIR-1' on bol.com" in parked.headers["x-hub-error"]
    assert len(bol.of("POST", "offers/export")) == 1  # the export was fresh: not asked again
    outcome = {"channel": SHOP, "outcome": "parked"}
    assert hub.metrics.registry.get_sample_value("hub_deliveries_total", outcome) == 1


async def test_an_expired_token_is_replaced_and_the_call_made_again(
    start_hub: StartHub, bus: Any, bol: Bol
) -> None:
    await start_hub(over_the_api(bol.port))
    await bus.publish("erp.stock.level", stock_level("DESK-1", 100, 1))
    await until(lambda: len(bol.of("PUT", "offers/")) == 1)
    bol.expire_tokens()
    await bus.publish("erp.stock.level", stock_level("DESK-1", 50, 2))
    await until(lambda: len(bol.of("PUT", "offers/")) == 2)
    assert bol.tokens == ["tok-1", "tok-2"]
    assert bol.of("PUT", "offers/")[1][2]["amount"] == 18  # (50 - 3) x 40%


def tracking(shipment_id: str) -> dict[str, Any]:
    return {
        "order_id": "o-1",
        "channel": SHOP,
        "channel_order_id": "A2K8JV0XL3",
        "shipment_id": shipment_id,
        "carrier": "postnl",
        "tracking_number": f"3S{shipment_id}",
        "lines": [{"line_id": "2814032941", "sku": "DESK-1", "quantity": 1}],
    }


async def test_a_shipment_is_confirmed_once_and_a_refusal_parked_in_bols_words(
    start_hub: StartHub, bus: Any, bol: Bol
) -> None:
    await start_hub(over_the_api(bol.port))
    await bus.put_out(SHOP, "shipment.tracking", tracking("S1"))
    await until(lambda: len(bol.shipments) == 1)
    [(_, _, sent)] = bol.of("POST", "shipments")
    assert sent == {
        "orderItems": [{"orderItemId": "2814032941", "quantity": 1}],
        "shipmentReference": "S1",
        "transport": {"transporterCode": "TNT", "trackAndTrace": "3SS1"},
    }
    await bus.put_out(SHOP, "shipment.tracking", tracking("S1"))  # sent again
    await until(lambda: len(bol.of("GET", "shipments?order-id=A2K8JV0XL3")) == 2)
    later = {**tracking("S1"), "tracking_number": "3SLATER", "replaces_tracking_number": "3SS1"}
    await bus.put_out(SHOP, "shipment.tracking", later)  # the carrier's later number
    await until(lambda: len(bol.of("PUT", "transports/")) == 1)
    assert bol.of("PUT", "transports/9000") == [
        ("PUT", "transports/9000", {"transporterCode": "TNT", "trackAndTrace": "3SLATER"})
    ]
    bol.fail_next = "Order item 2814032941 is already cancelled."
    await bus.put_out(SHOP, "shipment.tracking", tracking("S2"))
    [parked] = await bus.drain(bus.names.dead_queue, expect=1, timeout=15)
    assert parked.headers["x-hub-error-type"] == "delivery_refused"
    assert "already cancelled" in parked.headers["x-hub-error"]
    assert len(bol.of("POST", "shipments")) == 2  # S1 once, S2 refused


async def test_a_cancellation_cancels_each_open_item_in_its_own_request(
    start_hub: StartHub, bus: Any, bol: Bol
) -> None:
    await start_hub(over_the_api(bol.port))
    bol.order_items = {
        "2814032941": {"quantity": 2, "quantityShipped": 0, "quantityCancelled": 0},
        "2814032942": {"quantity": 1, "quantityShipped": 0, "quantityCancelled": 1},
        "2814032943": {"quantity": 1, "quantityShipped": 0, "quantityCancelled": 0},
    }
    lines = [
        {"line_id": "2814032941", "sku": "DESK-1", "quantity": 2},
        {"line_id": "2814032942", "sku": "LAMP-1", "quantity": 1},
        {"line_id": "2814032943", "sku": "LAMP-1", "quantity": 1},
    ]
    status = {
        "order_id": "o-2",
        "channel": SHOP,
        "channel_order_id": "A2K8JV0XL4",
        "status": "cancelled",
        "detail": "cancelled by channel: buyer changed mind",
        "cancelled": {"by": "channel", "whole_order": True, "lines": lines},
    }
    await bus.put_out(SHOP, "order.status", status)
    await until(lambda: len(bol.of("PUT", "orders/cancellation")) == 2)
    sent = [c[2]["orderItems"] for c in bol.of("PUT", "orders/cancellation")]
    assert sent == [
        [{"orderItemId": "2814032941", "reasonCode": "REQUESTED_BY_CUSTOMER"}],
        [{"orderItemId": "2814032943", "reasonCode": "REQUESTED_BY_CUSTOMER"}],
    ]  # the item cancelled already is not asked again
    assert bol.of("GET", "orders/A2K8JV0XL4")


async def test_an_offer_made_again_under_a_new_id_is_found_in_a_new_export(
    start_hub: StartHub, bus: Any, bol: Bol
) -> None:
    await start_hub(over_the_api(bol.port, offer_reexport_after_s="0.2"))
    await bus.publish("erp.stock.level", stock_level("DESK-1", 100, 1))
    await until(lambda: len(bol.of("PUT", "offers/")) == 1)
    bol.offers["DESK-1"] = "offer-desk-2"  # deleted on bol.com and listed again
    await asyncio.sleep(0.3)  # past offer_reexport_after_s: the export may be out of date
    await bus.publish("erp.stock.level", stock_level("DESK-1", 50, 2))
    await until(lambda: len(bol.of("PUT", "offers/offer-desk-2/stock")) == 1)
    assert [c[1] for c in bol.of("PUT", "offers/")] == [
        "offers/offer-desk/stock",
        "offers/offer-desk/stock",
        "offers/offer-desk-2/stock",
    ]
    assert len(bol.of("POST", "offers/export")) == 2


async def test_an_offer_gone_from_a_fresh_export_is_parked_not_looked_up_again(
    start_hub: StartHub, bus: Any, bol: Bol
) -> None:
    await start_hub(over_the_api(bol.port))
    await bus.publish("erp.stock.level", stock_level("DESK-1", 100, 1))
    await until(lambda: len(bol.of("PUT", "offers/")) == 1)
    del bol.offers["DESK-1"]  # deleted on bol.com a moment after the export
    await bus.publish("erp.stock.level", stock_level("DESK-1", 50, 2))
    [parked] = await bus.drain(bus.names.dead_queue, expect=1, timeout=15)
    assert parked.headers["x-hub-error-type"] == "delivery_refused"
    assert "404" in parked.headers["x-hub-error"]
    assert len(bol.of("POST", "offers/export")) == 1


async def test_calls_refused_together_for_an_expired_token_ask_for_one_new_token(
    start_hub: StartHub, bus: Any, bol: Bol
) -> None:
    await start_hub(over_the_api(bol.port))
    await bus.publish("erp.stock.level", stock_level("DESK-1", 100, 1))
    await bus.publish("erp.stock.level", stock_level("LAMP-1", 100, 1))
    await until(lambda: len(bol.of("PUT", "offers/")) == 2)
    bol.expire_tokens()
    await bus.publish("erp.stock.level", stock_level("DESK-1", 50, 2))
    await bus.publish("erp.stock.level", stock_level("LAMP-1", 50, 2))
    await until(lambda: len(bol.of("PUT", "offers/")) == 4)
    assert bol.tokens == ["tok-1", "tok-2"]


def deliveries(hub: Hub, outcome: str) -> float:
    labels = {"channel": SHOP, "outcome": outcome}
    return hub.metrics.registry.get_sample_value("hub_deliveries_total", labels) or 0.0


def received(return_id: str, *units: int) -> dict[str, Any]:
    return {
        "order_id": "o-9",
        "channel": SHOP,
        "channel_order_id": "A2K8JV0XL9",
        "return_id": return_id,
        "lines": [
            {"sku": f"SKU-{i}", "quantity": n, "condition": "sellable"} for i, n in enumerate(units)
        ],
    }


def rma(rma_id: str, expected: int) -> dict[str, Any]:
    return {
        "rmaId": rma_id,
        "orderId": "A2K8JV0XL9",
        "expectedQuantity": expected,
        "handled": False,
    }


async def test_goods_back_are_confirmed_on_the_return_items_bol_has_not_seen_handled(
    start_hub: StartHub, bus: Any, bol: Bol
) -> None:
    await start_hub(over_the_api(bol.port))
    bol.returns = {"1001": [rma("31234567", 2)], "1002": [rma("41", 1), rma("42", 2)]}
    await bus.put_out(SHOP, "return.received", received("1001", 2))
    await until(lambda: len(bol.of("PUT", "returns/")) == 1)
    assert bol.of("PUT", "returns/31234567") == [
        ("PUT", "returns/31234567", {"handlingResult": "RETURN_RECEIVED", "quantityReturned": 2})
    ]
    await bus.put_out(SHOP, "return.received", received("1001", 2))  # again: handled already
    await bus.put_out(SHOP, "return.received", received("1002", 1, 2))  # both items, as expected
    await bus.put_out(SHOP, "return.received", received("R-o-9", 1))  # the hub's own: not bol's
    await bus.put_out(SHOP, "return.received", received("1009", 1))  # one bol.com lacks
    await until(lambda: len(bol.of("GET", "returns/")) == 4)
    await until(lambda: len(bol.of("PUT", "returns/")) == 3)
    assert [c[2]["quantityReturned"] for c in bol.of("PUT", "returns/4")] == [1, 2]
    assert not bol.of("GET", "returns/R-o-9")
    bol.returns["1003"] = [rma("51", 1), rma("52", 2)]
    await bus.put_out(SHOP, "return.received", received("1003", 1))  # which item is it?
    [parked] = await bus.drain(bus.names.dead_queue, expect=1, timeout=15)
    reason = parked.headers["x-hub-error"]
    assert "1 unit(s) back for bol.com return 1003, whose 2 items expect 3" in reason
    assert len(bol.of("PUT", "returns/")) == 3


async def test_an_item_bol_is_still_confirming_is_not_confirmed_again_on_a_retry(
    start_hub: StartHub, bus: Any, bol: Bol
) -> None:
    """bol.com lists an item as not handled until it has processed its confirmation; when the
    next item's confirmation fails for a moment, the retry asks after the first one's process
    instead of confirming it again (which bol.com refuses)."""
    hub = await start_hub(over_the_api(bol.port, process_wait_s="0.2"))
    bol.returns = {"2001": [rma("61", 1), rma("62", 2)]}
    bol.slow_returns, bol.down_once = True, {"62"}
    await bus.put_out(SHOP, "return.received", received("2001", 1, 2))
    await until(lambda: deliveries(hub, "ok") == 1, timeout=15)
    assert [c[1] for c in bol.of("PUT", "returns/")] == ["returns/61", "returns/62", "returns/62"]
    assert bol.confirming == {"61", "62"}

    # bol.com cannot say how the first went just now: tried again later, not confirmed twice.
    bol.returns["2002"] = [rma("71", 1), rma("72", 1)]
    bol.down_once, bol.status_down = {"72"}, 0
    await bus.put_out(SHOP, "return.received", received("2002", 1, 1))
    await until(lambda: len(bol.of("PUT", "returns/72")) == 1, timeout=10)
    bol.status_down = 1
    await until(lambda: deliveries(hub, "ok") == 2, timeout=20)
    assert [c[1] for c in bol.of("PUT", "returns/7")] == ["returns/71", "returns/72", "returns/72"]
    assert await bus.drain(bus.names.dead_queue, expect=0, settle=0.3) == []


BOL_FIXTURES = Path(__file__).parents[2] / "adapters" / "fixtures" / "bolcom"


async def watch_hub_in(bus: Any) -> Any:
    """A queue of the test's own that gets a copy of bol.com's native events on hub.in (the
    exchange declared as the hub's topology declares it, before the hub starts polling)."""
    assert bus.channel is not None
    exchange = await bus.channel.declare_exchange(
        bus.names.inbound_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    seen = await bus.channel.declare_queue(exclusive=True)
    await seen.bind(exchange, routing_key=f"{SHOP}.native.{SHOP}.#")
    return seen


async def test_new_orders_cancellation_requests_and_returns_are_polled_into_the_hub(
    start_hub: StartHub, bus: Any, bol: Bol
) -> None:
    """bol.com pushes nothing: the hub delivering it lists open FBR orders and unhandled
    returns, reads each new order whole, and hands each find to the hub once, as the
    adapter's native event; a busy API (429) is waited out."""
    order = orjson.loads((BOL_FIXTURES / "order.json").read_bytes())
    ret = orjson.loads((BOL_FIXTURES / "return.json").read_bytes())
    many = {  # two pages, each order its own copy
        f"B{n:03d}": {**orjson.loads(orjson.dumps(order)), "orderId": f"B{n:03d}"}
        for n in range(51)
    }
    bol.open_orders = {order["orderId"]: order, **many}
    bol.listed_returns = [ret]
    bol.busy_lists = 1
    seen = await watch_hub_in(bus)

    hub = await start_hub(over_the_api(bol.port, poll_s="0.2"))
    got = await bus.bodies(seen.name, expect=53, timeout=20)
    types = [m["type"] for m in got]
    assert types == ["native.bolcom.order"] * 52 + ["native.bolcom.return"]
    assert got[0]["data"] == order and got[-1]["data"] == ret
    assert {m["source"] for m in got} == {SHOP}

    # The buyer asks to cancel one item: the order is read again and handed over as such.
    order["orderItems"][0]["cancellationRequest"] = True
    [asked] = await bus.bodies(seen.name, expect=1, timeout=10)
    assert asked["type"] == "native.bolcom.cancellation-request"
    assert asked["data"]["orderItems"][0]["cancellationRequest"] is True
    polls = len(bol.of("GET", "returns?"))
    await until(lambda: len(bol.of("GET", "returns?")) >= polls + 3, timeout=10)
    assert await bus.drain(seen.name, expect=0, settle=0.3) == []  # nothing twice
    polled = {"channel": SHOP, "event": "order"}
    assert hub.metrics.registry.get_sample_value("hub_channel_polled_total", polled) == 52
    failed = {"channel": SHOP, "outcome": "failed"}
    assert hub.metrics.registry.get_sample_value("hub_channel_polls_total", failed) == 1


async def test_an_order_bol_cannot_read_now_holds_up_no_other_and_comes_next_time(
    start_hub: StartHub, bus: Any, bol: Bol
) -> None:
    order = orjson.loads((BOL_FIXTURES / "order.json").read_bytes())
    other = {**orjson.loads(orjson.dumps(order)), "orderId": "B-OTHER"}
    bol.open_orders = {order["orderId"]: order, "B-OTHER": other}
    bol.broken_orders = {order["orderId"]: 1}
    seen = await watch_hub_in(bus)
    await start_hub(over_the_api(bol.port, poll_s="0.2"))
    got = await bus.bodies(seen.name, expect=2, timeout=10)
    assert [m["data"]["orderId"] for m in got] == ["B-OTHER", order["orderId"]]


async def test_a_restarted_hub_polls_the_same_events_which_the_hub_takes_once(
    start_hub: StartHub, bus: Any, bol: Bol
) -> None:
    """The same find has the same event id on every poll, so a hub that starts again (or a
    standby that takes the channel over) hands over duplicates the inbox drops."""
    ret = orjson.loads((BOL_FIXTURES / "return.json").read_bytes())
    bol.listed_returns = [ret]
    seen = await watch_hub_in(bus)
    first = await start_hub(over_the_api(bol.port, poll_s="0.2"))
    [once] = await bus.bodies(seen.name, expect=1, timeout=10)
    await first.stop()
    await start_hub(over_the_api(bol.port, poll_s="0.2"))
    [again] = await bus.bodies(seen.name, expect=1, timeout=10)
    assert again["id"] == once["id"] and again["type"] == "native.bolcom.return"


async def test_a_later_track_and_trace_waits_for_its_shipment_to_be_listed(
    start_hub: StartHub, bus: Any, bol: Bol
) -> None:
    await start_hub(over_the_api(bol.port))
    later = {**tracking("S7"), "tracking_number": "3SLATER7", "replaces_tracking_number": "3SS7"}
    await bus.put_out(SHOP, "shipment.tracking", later)  # bol.com lists no S7 yet
    await until(lambda: len(bol.of("GET", "shipments?order-id=A2K8JV0XL3")) == 1)
    bol.shipments.append(
        {"shipmentId": "7", "shipmentReference": "S7", "transport": {"transportId": 9007}}
    )
    await until(lambda: len(bol.of("PUT", "transports/9007")) == 1, 20)
    assert not bol.of("POST", "shipments")  # not confirmed a second time
    assert bol.of("PUT", "transports/9007")[0][2]["trackAndTrace"] == "3SLATER7"
