"""HTTP delivery against real APIs on loopback, with the real broker, database and hub.

Each test runs a small Starlette app under uvicorn as the channel's API: it records every
request (arrival time, headers, body) and answers as the test scripts it (200, 429 with
Retry-After, 503, 400), so what is asserted is what a channel would have seen.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import orjson
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.app import HANDLER_FACTORIES
from hub.bus import Envelope
from hub.delivery import DeliveryPolicy, DeliveryService
from hub.outgoing import to_channel
from hub.runtime import Hub
from hub.settings import Settings
from routes.config import DeliveryConfig, HubConfig
from schemas.envelope import CONTENT_TYPE, derived_id, new_event
from schemas.inventory import StockAvailability

sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures"))
sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures" / "orders"))
from events import stock_level
from loopback import Loopback, until
from order_kit import erp_creates, erp_refuses, open_world, order_data, orders_config, responder

pytestmark = pytest.mark.integration

SHOP = "webshop-nl"  # adapter shopify: stock goes out as {"sku", "available"}
Answer = Callable[["Seen"], tuple[int, dict[str, str], bytes]]
OK: tuple[int, dict[str, str], bytes] = (200, {}, b'{"ok": true}')


@dataclass
class Seen:
    """One request as the channel's API received it, and what it answered."""

    at: float
    headers: dict[str, str]
    body: bytes
    tries: int
    status: int = 0

    @property
    def key(self) -> str:
        return self.headers["idempotency-key"]

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


class ChannelApi:
    """A channel's HTTP API on a loopback port: records requests, answers as scripted."""

    def __init__(self, answer: Answer | None = None, port: int = 0) -> None:
        self.seen: list[Seen] = []
        self.tries: Counter[str] = Counter()
        self.answer = answer or (lambda _: OK)
        self._api = Loopback([Route("/{path:path}", self._handle, methods=["POST"])], port)

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        key = request.headers.get("idempotency-key", "")
        self.tries[key] += 1
        seen = Seen(time.monotonic(), dict(request.headers), body, self.tries[key])
        self.seen.append(seen)
        status, headers, text = self.answer(seen)
        seen.status = status
        return Response(text, status_code=status, headers=headers)

    @property
    def port(self) -> int:
        return self._api.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/admin/api/inventory_levels/set.json"

    async def start(self) -> ChannelApi:
        await self._api.start()
        return self

    async def stop(self) -> None:
        await self._api.stop()

    def ok(self) -> list[Seen]:
        return [s for s in self.seen if 200 <= s.status < 300]

    async def wait_ok(self, n: int, timeout: float = 15.0) -> list[Seen]:
        await until(lambda: len(self.ok()) >= n, timeout)
        return self.ok()


@pytest.fixture
async def api() -> AsyncIterator[Callable[..., Awaitable[ChannelApi]]]:
    started: list[ChannelApi] = []

    async def factory(answer: Answer | None = None, port: int = 0) -> ChannelApi:
        server = await ChannelApi(answer, port).start()
        started.append(server)
        return server

    yield factory
    for server in started:
        await server.stop()


@pytest.fixture
async def hub_with(isolated: Settings) -> AsyncIterator[Callable[..., Awaitable[Hub]]]:
    """A real hub whose delivery service uses the given policy (the others use the default)."""
    running: list[Hub] = []

    async def factory(config: HubConfig, policy: DeliveryPolicy, **settings: Any) -> Hub:
        hub = Hub(
            isolated.model_copy(update=settings),
            config,
            handler_factories=HANDLER_FACTORIES,
            service_factories=(partial(DeliveryService, policy=policy),),
        )
        await hub.start()
        running.append(hub)
        return hub

    yield factory
    for hub in reversed(running):
        await hub.stop()


def over_http(
    config: HubConfig, url: str, channel: str = SHOP, secret: str | None = None, **delivery: Any
) -> HubConfig:
    """The config with one channel's delivery switched to the hub's HTTP worker."""
    ch = config.channels[channel]
    settings = {**ch.settings, "webhook_secret": secret} if secret else ch.settings
    switched = ch.model_copy(
        update={
            "delivery": DeliveryConfig(transport="http", url=url, **delivery),
            "settings": settings,
        }
    )
    return config.model_copy(update={"channels": {**config.channels, channel: switched}})


def figure(hub: Hub, sku: str, available: int, version: int = 1) -> Envelope:
    """A stock.availability for the shop, as the hub puts it on hub.out."""
    message = StockAvailability(
        channel=SHOP, sku=sku, available=available, computed_at=datetime.now(UTC), version=version
    )
    event = new_event(source="hub", type=message.TYPE, data=message.model_dump(mode="json"))
    return to_channel(hub.names, SHOP, event)


async def put_out(bus: Any, *envelopes: Envelope) -> None:
    exchange = await bus.channel.get_exchange(bus.names.outbound_exchange, ensure=False)
    for e in envelopes:
        message = aio_pika.Message(
            e.body, message_id=e.message_id, type=e.message_type, delivery_mode=2
        )
        await exchange.publish(message, routing_key=e.routing_key)


def count(hub: Hub, name: str, **labels: str) -> float:
    return hub.metrics.registry.get_sample_value(name, labels) or 0.0


def outcome(hub: Hub, what: str) -> float:
    return count(hub, "hub_deliveries_total", channel=SHOP, outcome=what)


async def test_a_figure_the_hub_publishes_is_posted_in_shopify_format_and_signed(
    start_hub, bus, example_config, api
):
    shop = await api()
    hub = await start_hub(over_http(example_config, shop.url, secret="s3cret"))
    level = stock_level("DESK-1", 10, 1)
    await bus.publish("erp.stock.level", level)

    [seen] = await shop.wait_ok(1)
    assert seen.json == {"sku": "DESK-1", "available": 8}  # safety buffer 2
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["x-hub-message-type"] == "stock.availability"
    assert seen.key == derived_id(level["id"], "availability/webshop-nl/DESK-1/1")
    mac = hmac.new(b"s3cret", seen.body, hashlib.sha256).hexdigest()
    assert seen.headers["x-hub-signature-256"] == f"sha256={mac}"
    await until(lambda: outcome(hub, "ok") == 1)
    assert count(hub, "hub_delivery_responses_total", channel=SHOP, status="200") == 1
    assert count(hub, "hub_delivery_seconds_count", channel=SHOP) == 1
    # Channels still on AMQP keep getting their queue as before.
    [uk] = await bus.bodies(bus.names.channel_queue("webshop-uk"), expect=1)
    assert uk["data"]["sku"] == "DESK-1"


async def test_a_canonical_channel_gets_the_cloudevent_as_published(
    start_hub, bus, example_config, api
):
    wms = await api()
    hub = await start_hub(over_http(example_config, wms.url, channel="warehouse"))
    event = new_event(source="hub", type="pick.request", data={"pick_id": "P-1"})
    await put_out(bus, to_channel(hub.names, "warehouse", event))
    [seen] = await wms.wait_ok(1)
    assert seen.body == event.to_bytes()
    assert seen.headers["content-type"] == CONTENT_TYPE
    assert seen.key == event.id and "x-hub-signature-256" not in seen.headers


async def test_the_token_bucket_caps_the_rate(start_hub, bus, example_config, api):
    shop = await api()
    hub = await start_hub(over_http(example_config, shop.url, rate_per_second=10, burst=5))
    await put_out(bus, *(figure(hub, f"RATE-{i}", i) for i in range(20)))

    seen = await shop.wait_ok(20)
    times = sorted(s.at for s in seen)
    assert times[-1] - times[0] >= 1.4  # 5 at once, then 15 at 10/s: 1.5 s
    assert sum(1 for t in times if t < times[0] + 1.0) <= 5 + 10 + 1
    assert {s.json["sku"]: s.json["available"] for s in seen} == {f"RATE-{i}": i for i in range(20)}
    await until(lambda: outcome(hub, "ok") == 20)


async def test_429_with_retry_after_pauses_the_channel_then_all_arrive(
    start_hub, bus, example_config, api
):
    def throttle_first(s: Seen) -> tuple[int, dict[str, str], bytes]:
        first = s.json["sku"] == "T-0" and s.tries == 1
        return (429, {"Retry-After": "1"}, b"slow down") if first else OK

    shop = await api(throttle_first)
    hub = await start_hub(over_http(example_config, shop.url, rate_per_second=50, burst=1))
    await put_out(bus, *(figure(hub, f"T-{i}", i) for i in range(5)))

    ok = await shop.wait_ok(5)
    assert sorted(s.json["sku"] for s in ok) == [f"T-{i}" for i in range(5)]
    [throttled] = [s for s in shop.seen if s.status == 429]
    [retried] = [s for s in ok if s.key == throttled.key]
    assert retried.at - throttled.at >= 1.0
    # Nothing new went out during the pause (a request already on its way may land just after).
    assert not [s for s in shop.seen if throttled.at + 0.25 <= s.at < throttled.at + 1.0]
    assert count(hub, "hub_delivery_responses_total", channel=SHOP, status="429") == 1
    await until(lambda: outcome(hub, "ok") == 5)
    assert outcome(hub, "retry") == 1 and outcome(hub, "parked") == 0
    assert await bus.drain(bus.names.dead_queue, expect=0, settle=0.2) == []


async def test_503_is_retried_with_growing_back_off_without_holding_up_others(
    start_hub, bus, example_config, api
):
    def twice_down(s: Seen) -> tuple[int, dict[str, str], bytes]:
        return (503, {}, b"maintenance") if s.json["sku"] == "F-1" and s.tries <= 2 else OK

    shop = await api(twice_down)
    hub = await start_hub(over_http(example_config, shop.url))
    await put_out(bus, figure(hub, "F-1", 1))
    await until(lambda: len(shop.seen) >= 1)
    await put_out(bus, figure(hub, "G-1", 7))

    ok = await shop.wait_ok(2)
    tries = [s for s in shop.seen if s.json["sku"] == "F-1"]
    assert [s.status for s in tries] == [503, 503, 200]
    assert len({s.key for s in tries}) == 1  # the same message, the same Idempotency-Key
    first_gap, second_gap = tries[1].at - tries[0].at, tries[2].at - tries[1].at
    assert first_gap >= 1.0 and second_gap >= 2.0  # doubling from the default 1 s
    assert [s.json["sku"] for s in ok] == ["G-1", "F-1"]  # the other went meanwhile
    await until(lambda: outcome(hub, "ok") == 2)
    assert outcome(hub, "retry") == 2


async def test_a_permanent_400_is_parked_with_the_status_and_body(
    start_hub, bus, example_config, api
):
    reply = b'{"errors": {"inventory_item_id": ["expected Integer to be a id"]}}'
    shop = await api(lambda s: (400, {}, reply) if s.json["sku"] == "BAD-1" else OK)
    hub = await start_hub(over_http(example_config, shop.url))
    bad = figure(hub, "BAD-1", 3)
    await put_out(bus, bad, figure(hub, "GOOD-1", 4))

    [parked] = await bus.drain(bus.names.dead_queue, expect=1)
    h = parked.headers
    assert h["x-hub-error-type"] == "delivery_refused"
    assert "HTTP 400" in h["x-hub-error"] and "expected Integer to be a id" in h["x-hub-error"]
    assert h["x-hub-failed-queue"] == bus.names.channel_queue(SHOP)
    assert h["x-hub-attempts"] == 1
    assert h["x-hub-original-exchange"] == bus.names.outbound_exchange
    assert h["x-hub-original-routing-key"] == "webshop-nl.stock.availability"
    assert parked.body == bad.body and parked.message_id == bad.message_id
    await shop.wait_ok(1)
    assert [s.json["sku"] for s in shop.seen].count("BAD-1") == 1  # never retried
    await until(lambda: outcome(hub, "parked") == 1 and outcome(hub, "ok") == 1)


async def test_what_cannot_be_sent_is_parked_without_a_request(start_hub, bus, example_config, api):
    shop = await api()
    hub = await start_hub(over_http(example_config, shop.url))
    invoice = new_event(source="hub", type="invoice.issued", data={"order_id": "O-1"})
    await put_out(bus, to_channel(hub.names, SHOP, invoice))
    await bus.publish("webshop-nl.order.status", b"not json", exchange=bus.names.outbound_exchange)

    parked = await bus.drain(bus.names.dead_queue, expect=2)
    reasons = {m.headers["x-hub-error-type"]: m.headers["x-hub-error"] for m in parked}
    assert set(reasons) == {"not_deliverable", "malformed"}
    assert "cannot write 'invoice.issued'" in reasons["not_deliverable"]
    await until(lambda: outcome(hub, "parked") == 2)
    assert shop.seen == []


async def test_a_backlog_of_figures_is_coalesced_to_the_latest_per_sku(
    start_hub, bus, example_config, api
):
    shop = await api()
    hub = await start_hub(over_http(example_config, shop.url, rate_per_second=2, burst=1))
    skus = ("CO-A", "CO-B", "CO-C")
    for i in range(50):
        await bus.publish("erp.stock.level", stock_level(skus[i % 3], 100 + i, i + 1))
    final = {sku: 100 + max(i for i in range(50) if skus[i % 3] == sku) - 2 for sku in skus}

    def latest() -> dict[str, int]:
        return {s.json["sku"]: s.json["available"] for s in shop.ok()}

    await until(lambda: latest() == final, timeout=30)
    async with hub.pool.acquire() as conn:
        sent = await conn.fetchval(
            "SELECT sum(version) FROM stock_published WHERE channel = $1", SHOP
        )
    # Every figure is delivered or coalesced; hub.out is at-least-once, so a few may come twice.
    await until(lambda: outcome(hub, "ok") + outcome(hub, "coalesced") >= sent)
    assert len(shop.seen) < 50 and outcome(hub, "coalesced") > 0
    assert latest() == final
    for sku in skus:  # a figure never overtook a newer one
        figures = [s.json["available"] for s in shop.ok() if s.json["sku"] == sku]
        assert figures == sorted(figures)


async def test_after_the_last_attempt_a_failing_message_is_parked(
    hub_with, bus, example_config, api
):
    shop = await api(lambda s: (503, {}, b"down"))
    policy = DeliveryPolicy(max_attempts=3, first_delay_s=0.1)
    hub = await hub_with(over_http(example_config, shop.url), policy)
    await put_out(bus, figure(hub, "DOWN-1", 1))

    [parked] = await bus.drain(bus.names.dead_queue, expect=1)
    assert parked.headers["x-hub-error-type"] == "delivery_failed"
    assert parked.headers["x-hub-attempts"] == 3
    assert "no 2xx after 3 attempts" in parked.headers["x-hub-error"]
    assert "503" in parked.headers["x-hub-error"]
    assert [s.status for s in shop.seen] == [503, 503, 503]
    await until(lambda: outcome(hub, "parked") == 1)
    assert outcome(hub, "retry") == 2


async def test_an_api_that_is_not_up_yet_gets_the_message_once_it_is(
    start_hub, bus, example_config, api
):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/stock"
    hub = await start_hub(over_http(example_config, url))
    await put_out(bus, figure(hub, "LATE-1", 5))
    labels = {"channel": SHOP, "status": "error"}
    await until(lambda: count(hub, "hub_delivery_responses_total", **labels) >= 1)

    shop = await api(port=port)
    [seen] = await shop.wait_ok(1, timeout=20)
    assert seen.json == {"sku": "LATE-1", "available": 5}
    await until(lambda: outcome(hub, "ok") == 1)
    assert outcome(hub, "parked") == 0


async def test_stopping_hands_held_messages_back_to_the_queue(isolated, bus, example_config, api):
    shop = await api(lambda s: (503, {}, b"down"))
    service = partial(DeliveryService, policy=DeliveryPolicy(first_delay_s=30))
    hub = Hub(isolated, over_http(example_config, shop.url), service_factories=(service,))
    await hub.start()
    try:
        await put_out(bus, *(figure(hub, f"HOLD-{i}", i) for i in range(3)))
        await until(lambda: len(shop.seen) == 3)
    finally:
        started = time.monotonic()
        await hub.stop()
    assert time.monotonic() - started < 10  # held retries do not delay the stop
    back = await bus.drain(bus.names.channel_queue(SHOP), expect=3)
    assert sorted(orjson.loads(m.body)["data"]["sku"] for m in back) == [
        f"HOLD-{i}" for i in range(3)
    ]


# --- order answers ----------------------------------------------------------------------------

SHOPIFY_OUT = Path(__file__).parents[2] / "adapters" / "fixtures" / "shopify" / "outbound"


async def test_an_answer_shopify_has_no_call_for_is_acked_without_a_request(
    start_hub, bus, example_config, api
):
    shop = await api()
    hub = await start_hub(over_http(example_config, shop.url))
    answers = [
        _answer(hub, "order.accepted"),
        _answer(hub, "order.status", status="confirmed", cancelled=None),
    ]
    answers.append(_answer(hub, "order.status"))  # cancelled by the ERP: cancel it on Shopify
    await put_out(bus, *answers)

    [seen] = await shop.wait_ok(1)
    assert seen.json == {
        "order_id": 5841203740712,
        "cancel": {"reason": "other", "email": True, "restock": False},
    }
    assert seen.headers["x-hub-message-type"] == "order.status"
    await until(lambda: outcome(hub, "not_needed") == 2 and outcome(hub, "ok") == 1)
    await asyncio.sleep(0.3)
    assert len(shop.seen) == 1
    assert outcome(hub, "parked") == 0


def price_changed(amount: str, includes_vat: bool, version: int) -> dict[str, Any]:
    data = {
        "sku": "DESK-1",
        "price_list": "nl-retail",
        "price": {"amount": amount, "currency": "EUR"},
        "includes_vat": includes_vat,
        "vat_rate": "0.21",
        "version": version,
    }
    event = new_event(source="erp", type="price.changed", data=data)
    return orjson.loads(event.to_bytes())


async def test_a_net_list_price_reaches_the_gross_shop_and_bolcom_with_vat(
    start_hub, bus, example_config, api
):
    """The example's Shopify shop keeps prices with VAT, as bol.com does: the ERP's net price
    reaches both with 21% added; a gross price goes as it is."""
    shop = await api()
    hub = await start_hub(over_http(example_config, shop.url))
    await bus.publish("erp.price.changed", price_changed("8.2645", False, 1))
    [net] = await shop.wait_ok(1)
    assert net.json == {"variant": {"sku": "DESK-1", "price": "10.00"}}
    await bus.publish("erp.price.changed", price_changed("12.10", True, 2))
    gross = (await shop.wait_ok(2))[1]
    assert gross.json == {"variant": {"sku": "DESK-1", "price": "12.10"}}

    marketplace = await bus.bodies(bus.names.channel_queue("bolcom"), expect=2)
    told = [(m["data"]["price"]["amount"], m["data"]["includes_vat"]) for m in marketplace]
    assert told == [("10.00", True), ("12.10", True)]
    kept = await hub.pool.fetchval(
        "SELECT amount FROM catalog_prices WHERE sku = 'DESK-1' AND price_list = 'nl-retail'"
    )
    assert kept == Decimal("12.10")  # the hub keeps the ERP's price, not a channel's
    assert outcome(hub, "parked") == 0


async def test_a_retried_price_never_lands_after_the_newer_one(start_hub, bus, example_config, api):
    """The shop is down for the first price; the ERP's next price ends its retry and is the one
    the shop keeps. (Before, the newer went past it and the retried old price landed last.)"""

    def old_price_down_twice(s: Seen) -> tuple[int, dict[str, str], bytes]:
        return (503, {}, b"busy") if s.json["variant"]["price"] == "10.00" and s.tries <= 2 else OK

    shop = await api(old_price_down_twice)
    hub = await start_hub(over_http(example_config, shop.url))
    await bus.publish("erp.price.changed", price_changed("10.00", True, 1))
    await until(lambda: len(shop.seen) >= 1)
    await bus.publish("erp.price.changed", price_changed("12.10", True, 2))

    [kept] = await shop.wait_ok(1)
    assert kept.json == {"variant": {"sku": "DESK-1", "price": "12.10"}}
    await until(lambda: outcome(hub, "coalesced") == 1)
    await asyncio.sleep(2.5)  # past the old price's next attempt, had it been kept
    assert [s.json["variant"]["price"] for s in shop.seen] == ["10.00", "12.10"]
    assert outcome(hub, "parked") == 0


def _answer(hub: Hub, type_: str, **changes: Any) -> Envelope:
    """An order answer for the Shopify shop, from its golden fixture."""
    document = json.loads((SHOPIFY_OUT / f"{type_}.canonical.json").read_text())
    event = new_event(source="hub", type=type_, data={**document["data"], **changes})
    return to_channel(hub.names, SHOP, event)


def bolcom_over_http(url: str) -> HubConfig:
    """The order kit's config with bol.com on its own adapter, delivered by the hub over HTTP."""

    def edit(data: dict[str, Any]) -> None:
        bol = data["channels"]["bolcom"]
        bol["adapter"] = "bolcom"
        bol["delivery"] = {"transport": "http", "url": url, "rate_per_second": 100, "burst": 100}

    return orders_config(edit)


def buyer_asks(order_id: str) -> dict[str, Any]:
    """bol.com's order resource, polled again after the buyer asked to cancel its one item."""
    fixture = Path(__file__).parents[2] / "adapters/fixtures/bolcom/cancellation-request.json"
    order: dict[str, Any] = json.loads(fixture.read_text())
    item = {**order["orderItems"][0], "orderItemId": "L1", "quantity": 1}
    item["offer"] = {**item["offer"], "reference": "DESK-1"}
    return {**order, "orderId": order_id, "orderItems": [item]}


def cancellations(api: ChannelApi) -> list[Any]:
    answers = ("order.rejected", "order.status")
    return [s.json for s in api.ok() if s.headers["x-hub-message-type"] in answers]


async def test_an_order_the_erp_refuses_is_cancelled_on_bolcom_item_by_item(isolated, bus, api):
    bol = await api()
    config = bolcom_over_http(bol.url)
    async with (
        open_world(isolated, bus, config, services=(DeliveryService,)) as world,
        responder(bus.connection, bus.names, "erp", erp_refuses),
    ):
        order = order_data("bolcom", "B-REF", [("LAMP-1", 1, "25.50"), ("DESK-1", 1, "199.00")])
        await world.place("bolcom", order)
        await until(lambda: bool(cancellations(bol)))
        await world.state("bolcom", "B-REF", "rejected")
        assert cancellations(bol) == [
            {
                "orderId": "B-REF",  # for the gateway to find the items still open
                "orderItems": [
                    {"orderItemId": "L1", "reasonCode": "OTHER"},
                    {"orderItemId": "L2", "reasonCode": "OTHER"},
                ],
            }
        ]
        accepted = {"channel": "bolcom", "outcome": "not_needed"}  # bol.com has no such call
        await until(lambda: count(world.hub, "hub_deliveries_total", **accepted) == 1)


async def test_a_buyers_cancellation_is_confirmed_on_bolcom_and_the_erps_is_made_there(
    isolated, bus, api
):
    bol = await api()
    config = bolcom_over_http(bol.url)
    async with (
        open_world(isolated, bus, config, services=(DeliveryService,)) as world,
        responder(bus.connection, bus.names, "erp", erp_creates),
    ):
        for coid in ("B-BUYER", "B-ERP"):
            await world.place("bolcom", order_data("bolcom", coid, [("DESK-1", 1, "199.00")]))
            await world.state("bolcom", coid, "picking")
        await world.send("bolcom", "native.bolcom.cancellation-request", buyer_asks("B-BUYER"))
        erp = {"channel": "bolcom", "channel_order_id": "B-ERP", "reason": "no longer made"}
        await world.send("erp", "order.cancelled", {**erp, "cancelled_by": "erp"})

        await until(lambda: len(cancellations(bol)) == 2)
        codes = sorted(i["reasonCode"] for c in cancellations(bol) for i in c["orderItems"])
        assert codes == ["OTHER", "REQUESTED_BY_CUSTOMER"]
        assert all(c["orderItems"][0]["orderItemId"] == "L1" for c in cancellations(bol))


# --- one hub per channel ----------------------------------------------------------------------


async def test_of_two_hubs_one_delivers_a_channel_and_the_other_takes_over_when_it_stops(
    hub_with, bus, example_config, api
):
    shop = await api()
    config = over_http(example_config, shop.url, rate_per_second=1000, burst=1000)
    policy = DeliveryPolicy(lease_interval_s=0.2)
    first, second = await hub_with(config, policy), await hub_with(config, policy)

    def active(hub: Hub) -> float:
        return count(hub, "hub_delivery_active", channel=SHOP)

    await until(lambda: active(first) + active(second) == 1)
    await asyncio.sleep(0.6)  # a few lease rounds: the standby keeps standing by
    assert active(first) + active(second) == 1
    holder, standby = (first, second) if active(first) else (second, first)

    await put_out(bus, *(figure(holder, f"SKU-{i}", i) for i in range(20)))
    await shop.wait_ok(20)
    assert count(standby, "hub_deliveries_total", channel=SHOP, outcome="ok") == 0

    await holder.stop()
    await until(lambda: active(standby) == 1, timeout=5)
    await put_out(bus, figure(standby, "SKU-LATE", 5))
    seen = await shop.wait_ok(21)
    assert seen[-1].json["sku"] == "SKU-LATE"
    assert len({s.key for s in seen}) == 21  # each once


async def test_a_holder_that_lost_its_session_is_waited_for_before_the_standby_sends(
    hub_with, bus, example_config, api
):
    shop = await api()
    config = over_http(example_config, shop.url, rate_per_second=1000, burst=1000)
    policy = DeliveryPolicy(lease_interval_s=0.2, stop_grace_s=2.0)  # fence: 3.4 s
    slow = {"reconnect_interval_s": 30.0}  # the old holder stays away: the fence must hold
    first, second = await hub_with(config, policy, **slow), await hub_with(config, policy, **slow)

    def active(hub: Hub) -> float:
        return count(hub, "hub_delivery_active", channel=SHOP)

    await until(lambda: active(first) + active(second) == 1)
    holder, standby = (first, second) if active(first) else (second, first)
    [service] = [s for s in holder._services if isinstance(s, DeliveryService)]
    assert service.fence_s == pytest.approx(3.4)

    db = await asyncpg.connect(holder.settings.database_url)
    try:  # the holder's database session ends under it (a failover, a network cut)
        ended = await db.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = $1",
            f"commerce-hub lease {service.holder}",
        )
    finally:
        await db.close()
    assert ended == 1
    lost_at = time.monotonic()
    await until(lambda: active(holder) == 0, timeout=5)  # it notices and stops
    await asyncio.sleep(max(0.0, lost_at + 1.5 - time.monotonic()))
    assert active(standby) == 0  # the lock is free, but the old holder may still be sending
    await until(lambda: active(standby) == 1, timeout=10)
    assert time.monotonic() - lost_at >= 3.0  # about the fence after the last heartbeat
    await put_out(bus, figure(standby, "SKU-AFTER", 3))
    [seen] = await shop.wait_ok(1)
    assert seen.json["sku"] == "SKU-AFTER"
