"""The hub creating parcels through Sendcloud's own API (``delivery.api``): the labelled
parcel Sendcloud answers with comes back to the hub as the carrier's event, and the order
ships, with the real broker, database and hub and Sendcloud served on loopback."""

from __future__ import annotations

import base64
import contextlib
import sys
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.delivery import DeliveryPolicy, DeliveryService
from hub.settings import Settings
from schemas.fulfilment import ShipmentRequest

sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures"))
sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures" / "orders"))
from loopback import Loopback
from order_kit import ADDRESS_NL, World, open_world, order_data, orders_config, parties

pytestmark = pytest.mark.integration

KEY, SECRET = "sc_public", "sc_secret"


class Sendcloud:
    """``POST /api/v2/parcels`` on a loopback port: labels each parcel asked for."""

    def __init__(self) -> None:
        self.asked: list[dict[str, Any]] = []
        self.made: list[dict[str, Any]] = []
        self.cancelled: list[int] = []
        self._api = Loopback(
            [
                Route("/api/v2/parcels", self._create, methods=["POST"]),
                Route("/api/v2/parcels", self._list, methods=["GET"]),
                Route("/api/v2/parcels/{id:int}/cancel", self._cancel, methods=["POST"]),
            ]
        )

    @property
    def port(self) -> int:
        return self._api.port

    async def _create(self, request: Request) -> Response:
        expected = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return JSONResponse({"error": {"code": 401, "message": "Unauthorized"}}, 401)
        parcel = orjson.loads(await request.body())["parcel"]
        self.asked.append(parcel)
        number = f"3SHUB{len(self.asked):08d}"
        labelled = {
            **parcel,
            "id": 900 + len(self.asked),
            "tracking_number": number,
            "tracking_url": f"https://tracking.sendcloud.sc/forward?code={number}",
            "label": {"label_printer": f"https://panel.sendcloud.sc/labels/{number}"},
            "status": {"id": 1000, "message": "Ready to send"},
            "carrier": {"code": "postnl"},
        }
        self.made.append(labelled)
        return JSONResponse({"parcel": labelled})

    async def _cancel(self, request: Request) -> Response:
        expected = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return JSONResponse({"error": {"code": 401, "message": "Unauthorized"}}, 401)
        [parcel] = [p for p in self.made if p["id"] == request.path_params["id"]]
        parcel["status"] = {"id": 1999, "message": "Cancellation requested"}
        self.cancelled.append(parcel["id"])
        return JSONResponse({"status": "queued", "message": "Parcel cancellation is queued"}, 202)

    async def _list(self, request: Request) -> Response:
        expected = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return JSONResponse({"error": {"code": 401, "message": "Unauthorized"}}, 401)
        number = request.query_params.get("order_number")
        return JSONResponse({"parcels": [p for p in self.made if p["order_number"] == number]})

    async def start(self) -> Sendcloud:
        await self._api.start()
        return self

    async def stop(self) -> None:
        await self._api.stop()


@pytest.fixture
async def sendcloud() -> AsyncIterator[Sendcloud]:
    started = await Sendcloud().start()
    yield started
    await started.stop()


def carrier_over_the_api(port: int) -> Any:
    def edit(data: dict[str, Any]) -> None:
        data["channels"]["carrier"] = {
            "kind": "carrier",
            "adapter": "sendcloud",
            "delivery": {"transport": "http", "url": f"http://127.0.0.1:{port}", "api": True},
            "settings": {"api_key": "${SC_KEY}", "api_secret": "${SC_SECRET}"},
        }

    return orders_config(edit, env={"SC_KEY": KEY, "SC_SECRET": SECRET})


@contextlib.asynccontextmanager
async def carrier_on_sendcloud(
    isolated: Settings, bus: Any, sendcloud: Sendcloud
) -> AsyncIterator[tuple[World, dict[str, Any]]]:
    """A world whose carrier is Sendcloud's API, called by the hub's HTTP delivery (so no
    responder consumes the carrier's queue)."""
    service = partial(DeliveryService, policy=DeliveryPolicy(lease_interval_s=0.2))
    async with (
        open_world(isolated, bus, carrier_over_the_api(sendcloud.port), (service,)) as world,
        parties(world, served_by_hub=("carrier",)) as seen,
    ):
        yield world, seen


async def test_a_packed_order_gets_its_label_from_sendcloud_and_ships(
    isolated: Settings, bus: Any, sendcloud: Sendcloud
) -> None:
    async with carrier_on_sendcloud(isolated, bus, sendcloud) as (world, seen):
        await world.place("bolcom", order_data("bolcom", "B-SC1", [("DESK-1", 2, "199.00")]))
        [tracking] = await seen["bolcom"].wait("shipment.tracking", timeout=20)
        [asked] = sendcloud.asked
        assert asked["order_number"] == tracking["data"]["order_id"]
        assert asked["parcel_items"][0]["sku"] == "DESK-1"
        assert tracking["data"]["tracking_number"] == "3SHUB00000001"
        assert tracking["data"]["carrier"] == "postnl"
        await world.state("bolcom", "B-SC1", "shipped")
        [label] = await seen["warehouse"].wait("shipment.created")
        assert label["data"]["label_url"] == "https://panel.sendcloud.sc/labels/3SHUB00000001"
        assert label["source"] == "hub"


async def test_a_shipment_request_sent_again_answers_with_the_parcel_made_before(
    isolated: Settings, bus: Any, sendcloud: Sendcloud
) -> None:
    """Sendcloud bills every label: a redelivered request (its answer lost, the hub restarted)
    finds the parcel by the order's number and its shipment id, and makes none."""
    async with carrier_on_sendcloud(isolated, bus, sendcloud) as (world, seen):
        await world.place("bolcom", order_data("bolcom", "B-SC2", [("LAMP-1", 1, "25.50")]))
        await seen["bolcom"].wait("shipment.tracking", timeout=20)
        [asked] = sendcloud.asked
        request = ShipmentRequest.model_validate(
            {
                "order_id": asked["order_number"],
                "shipment_id": asked["external_reference"],
                "ship_to": ADDRESS_NL,
                "parcels": [{}],
                "lines": [{"line_id": "L1", "sku": "LAMP-1", "quantity": 1}],
            }
        )
        await bus.put_out("carrier", request.TYPE, request.model_dump(mode="json"))
        ok = {"channel": "carrier", "outcome": "ok"}
        await world.counted("hub_deliveries_total", ok, 2)
        assert len(sendcloud.asked) == 1  # one label, not two


async def test_a_shipment_cancel_cancels_the_parcel_made_for_it_and_nothing_else(
    isolated: Settings, bus: Any, sendcloud: Sendcloud
) -> None:
    async with carrier_on_sendcloud(isolated, bus, sendcloud) as (world, seen):
        await world.place("bolcom", order_data("bolcom", "B-SC3", [("LAMP-1", 1, "25.50")]))
        await seen["bolcom"].wait("shipment.tracking", timeout=20)
        [made] = sendcloud.made
        drop = {
            "order_id": made["order_number"],
            "shipment_id": made["external_reference"],
            "reason": "cancelled before it left",
            "lines": [{"line_id": "L1", "sku": "LAMP-1", "quantity": 1}],
        }
        await bus.put_out("carrier", "shipment.cancel", drop)
        await world.counted("hub_deliveries_total", {"channel": "carrier", "outcome": "ok"}, 2)
        assert sendcloud.cancelled == [made["id"]]
        # A shipment Sendcloud never made a parcel for has nothing to cancel: done, no call.
        await bus.put_out("carrier", "shipment.cancel", {**drop, "shipment_id": "S-NONE"})
        await world.counted("hub_deliveries_total", {"channel": "carrier", "outcome": "ok"}, 3)
        assert sendcloud.cancelled == [made["id"]]
        # A cancel's answer is nothing for the hub: not taken for a parcel, nothing parked.
        assert await bus.drain(bus.names.dead_queue, expect=0, settle=0.5) == []
