"""Thousands of generated and mutated messages at every entry point of a real hub (AMQP on hub.in
and the HTTP webhook ingress): no crash, each one either handled or parked with a reason, none
lost. Each test runs its own hub (own database, own broker names) and does its own accounting:

- AMQP: every message sent is parked (found in hub.dead by a test header) or its event id is in
  the inbox (handled, or a duplicate of a handled id); handled + parked + duplicates = sent.
- HTTP: every request gets an answer below 500 (503 would mean broker trouble; the broker is up
  here); every 202's event id is in the inbox or parked; handled + parked + duplicates = 202s.
- Afterwards a good message still flows through the hub.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import aio_pika
import asyncpg
import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub import db, topology
from hub.app import build_hub
from hub.intake import MAX_BODY_BYTES
from hub.runtime import Hub
from hub.settings import Settings
from hub.topology import Names
from routes.loader import load_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
HERE = Path(__file__).parent
CONFIG = HERE / "property.yaml"
SECRETS = {"shop-a": "prop-secret-a", "shop-b": "prop-secret-b"}
ENV = {
    "PROP_SHOP_A_WEBHOOK_SECRET": SECRETS["shop-a"],
    "PROP_SHOP_B_WEBHOOK_SECRET": SECRETS["shop-b"],
}
CHANNELS = ("erp", "shop-a", "shop-b", "market-c")
BROKER_URL = os.environ.get("HUB_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")
DATABASE_BASE = os.environ.get("HUB_TEST_DATABASE_BASE", "postgresql://postgres@127.0.0.1:5432")
SHOPIFY_ORDER = json.loads(
    (
        Path(__file__).parents[2] / "adapters" / "fixtures" / "shopify" / "orders-create.json"
    ).read_text()
)
REASONS = {
    "malformed",
    "unknown_type",
    "schema_violation",
    "unknown_channel",
    "no_route",
    "business_rule",
}
"""Why bad input is parked; a transient type here would mean retries ran out on bad input."""
SEQ = "x-prop-seq"
T = TypeVar("T")

# ------------------------------------------------------------------------------ generators

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text()
)
json_value = st.recursive(
    json_leaf,
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = ("specversion", "id", "source", "type", "time", "subject", "data")
sku_st = st.from_regex(r"[A-Z]{2,4}-[0-9]{1,5}", fullmatch=True)
ADDRESS = {
    "name": "A",
    "line1": "Dam 1",
    "postal_code": "1012 JS",
    "city": "Amsterdam",
    "country": "NL",
}


@st.composite
def canonical_data(draw: st.DrawFn, type_: str, channel: str) -> dict[str, Any]:
    """A valid payload of a canonical type (the hub may still refuse it for business reasons)."""
    sku = draw(sku_st)
    version = draw(st.integers(1, 10**6))
    if type_ == "product.upserted":
        return {"sku": sku, "name": "Desk", "version": version}
    if type_ == "stock.level":
        return {
            "sku": sku,
            "location": "main",
            "on_hand": draw(st.integers(0, 50)),
            "version": version,
        }
    if type_ == "order.cancelled":
        return {
            "channel": channel,
            "channel_order_id": draw(st.text(min_size=1, max_size=12)),
            "reason": "buyer",
            "cancelled_by": "channel",
        }
    return {
        "channel": channel,
        "channel_order_id": draw(st.text(min_size=1, max_size=12)),
        "placed_at": datetime.now(UTC).isoformat(),
        "currency": "EUR",
        "lines": [
            {
                "line_id": f"L{n}",
                "sku": draw(sku_st),
                "quantity": draw(st.integers(1, 3)),
                "unit_price": {"amount": "9.95", "currency": "EUR"},
            }
            for n in range(1, draw(st.integers(1, 3)) + 1)
        ],
        "shipping_address": ADDRESS,
    }


def mutate_dict(draw: st.DrawFn, data: dict[str, Any]) -> dict[str, Any]:
    """Drop a field, replace one with any JSON, or add one; sometimes inside a line."""
    data = json.loads(json.dumps(data))
    target = data
    if isinstance(data.get("lines") or data.get("line_items"), list) and draw(st.booleans()):
        items = data.get("lines") or data.get("line_items")
        if items and isinstance(items[0], dict):
            target = items[0]
    how = draw(st.sampled_from(["drop", "replace", "add"]))
    if how == "drop" and target:
        del target[draw(st.sampled_from(sorted(target)))]
    elif how == "replace" and target:
        target[draw(st.sampled_from(sorted(target)))] = draw(json_value)
    else:
        target[draw(st.text(max_size=8))] = draw(json_value)
    return data


AMQP_SOURCES = {
    "product.upserted": "erp",
    "stock.level": "erp",
    "order.placed": "shop-a",
    "order.cancelled": "market-c",
}


@st.composite
def amqp_messages(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid event of one of the hub's types, or one mutated the ways integrations break."""
    type_ = draw(st.sampled_from(sorted(AMQP_SOURCES)))
    source = AMQP_SOURCES[type_]
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": draw(st.sampled_from(["dup-a", "dup-b"]))
        if draw(st.integers(0, 19)) == 0
        else str(uuid.uuid4()),
        "source": source,
        "type": type_,
        "time": datetime.now(UTC).isoformat(),
        "subject": "s",
        "data": draw(canonical_data(type_, source)),
    }
    key = f"{source}.{type_}"
    mutation = draw(
        st.sampled_from(["none", "drop", "replace", "data", "bytes", "cut", "route", "ids"])
    )
    if mutation == "ids":  # long, non-ASCII or NUL-bearing ids: fine as JSON, not everywhere
        size = draw(st.sampled_from([1, 60, 90, 200]))
        text = draw(
            st.text(st.sampled_from("a\u00e9\u20ac\x00\U0001d11e"), min_size=size, max_size=size)
        )
        event[draw(st.sampled_from(["id", "correlationid", "causationid", "subject"]))] = text
    elif mutation == "drop":
        del event[draw(st.sampled_from(FIELDS))]
    elif mutation == "replace":
        event[draw(st.sampled_from(FIELDS))] = draw(json_value)
    elif mutation == "data":
        event["data"] = mutate_dict(draw, event["data"])
    elif mutation == "bytes":
        return key, draw(st.binary(max_size=200))
    elif mutation == "route":
        key = draw(st.sampled_from(["shop-a.product.upserted", "erp.x", "nobody.order.placed"]))
        event["source"] = draw(st.sampled_from(["erp", "shop-a", "market-c", "nobody"]))
    body = orjson.dumps(event)
    if mutation == "cut":
        body = body[: draw(st.integers(0, len(body) - 1))]
    return key, body


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes
    headers: dict[str, str | bytes]


header_text = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=60
)
event_names = st.sampled_from(
    [
        "order.placed",
        "order.cancelled",
        "product.upserted",
        "stock.level",
        "orders-create",
        "orders-cancelled",
        "order-created",
        "Orders-Create",
        "order.placed ",
        "x" * 140,
    ]
) | st.text(min_size=1, max_size=40)


@st.composite
def webhook_requests(draw: st.DrawFn) -> Request:
    """A channel's webhook push: signed or not, well-formed or mutated, with any event name."""
    channel = draw(st.sampled_from(["shop-a"] * 4 + ["shop-b"] * 4 + ["market-c", "nobody"]))
    if draw(st.sampled_from(["usual"] * 3 + ["any"])) == "usual":
        event = draw(st.sampled_from(["order.placed", "orders-create"]))
    else:
        event = draw(event_names)
    if channel == "shop-b" and draw(st.booleans()):
        data: Any = dict(SHOPIFY_ORDER, id=draw(st.integers(1, 10**12)))
    else:
        type_ = event if event in AMQP_SOURCES else "order.placed"
        data = draw(canonical_data(type_, channel))
    mutation = draw(st.sampled_from(["none"] * 4 + ["dict"] * 2 + ["json", "bytes", "cut"]))
    if draw(st.sampled_from([False] * 49 + [True])):
        mutation = "huge"  # around the 1 MiB limit, rarely: it costs a megabyte a time
    if mutation == "dict":
        data = mutate_dict(draw, data)
    if mutation == "json":
        body = orjson.dumps(draw(json_value))
    elif mutation == "bytes":
        body = draw(st.binary(max_size=300))
    elif mutation == "huge":
        body = b'{"pad": "' + b"x" * (MAX_BODY_BYTES + draw(st.integers(-20, 20))) + b'"}'
    else:
        body = orjson.dumps(data)
    if mutation == "cut":
        body = body[: draw(st.integers(0, len(body) - 1))]
    secret = SECRETS.get(channel, "no-secret")
    signed = body if draw(st.sampled_from([True] * 14 + [False])) else body + b" "
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    headers: dict[str, str | bytes] = {}
    how = draw(st.sampled_from(["shopify", "wc", "hub"] * 3 + ["none", "garbage", "wrong-secret"]))
    if how == "shopify":
        headers["X-Shopify-Hmac-Sha256"] = base64.b64encode(digest).decode()
    elif how == "wc":
        headers["X-WC-Webhook-Signature"] = base64.b64encode(digest).decode()
    elif how == "hub":
        headers["X-Hub-Signature-256"] = "sha256=" + digest.hex()
    elif how == "garbage":
        headers["X-Hub-Signature-256"] = draw(header_text)
    elif how == "wrong-secret":
        headers["X-Shopify-Hmac-Sha256"] = base64.b64encode(
            hmac.new(b"guess", body, hashlib.sha256).digest()
        ).decode()
    delivery = draw(st.sampled_from(["none", "none", "pool", "text", "latin1"]))
    name = draw(
        st.sampled_from(["X-Shopify-Webhook-Id", "X-WC-Webhook-Delivery-ID", "X-Request-Id"])
    )
    if delivery == "pool":
        headers[name] = draw(st.sampled_from(["wh-1", "wh-2"]))  # webhook retries
    elif delivery == "text":
        headers[name] = draw(header_text)
    elif delivery == "latin1":
        size = draw(st.sampled_from([1, 8, 40, 120, 200, 400]))  # ids are cut at 200 characters
        headers[name] = draw(
            st.binary(min_size=size, max_size=size).map(
                lambda b: bytes(c for c in b if c >= 0x21 and c != 0x7F) or b"z"
            )
        )
    if draw(st.integers(0, 4)) == 0:
        headers[draw(st.sampled_from(["Content-Type", "X-Foo", "Content-Encoding"]))] = draw(
            header_text
        )
    method = draw(st.sampled_from(["POST"] * 28 + ["GET", "PUT"]))
    path = f"/webhooks/{quote(channel, safe='')}/{quote(event, safe='')}"
    return Request(method, path, body, headers)


# ------------------------------------------------------------------------------ the hub


class LoopThread:
    """The hub in an event loop of its own, so hypothesis can drive it from a plain test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Running:
    lt: LoopThread
    hub: Hub
    exchange: Any
    base_url: str
    amqp_sent: list[tuple[int, str | None]] = field(default_factory=list)  # (seq, event id)
    accepted: list[str] = field(default_factory=list)  # event ids of 202 answers

    def publish(self, key: str, body: bytes) -> None:
        seq = len(self.amqp_sent)
        try:
            parsed = orjson.loads(body)
            event_id = parsed.get("id") if isinstance(parsed, dict) else None
        except orjson.JSONDecodeError:
            event_id = None
        message = aio_pika.Message(body, delivery_mode=2, headers={SEQ: seq})
        self.lt.run(self.exchange.publish(message, routing_key=key))
        self.amqp_sent.append((seq, event_id if isinstance(event_id, str) else None))


@contextlib.contextmanager
def running_hub() -> Iterator[Running]:
    """A hub of the test's own: database, broker names and HTTP port; removed afterwards."""
    tag = uuid.uuid4().hex[:8]
    port = free_port()
    s = Settings(
        broker_url=BROKER_URL,
        database_url=f"{DATABASE_BASE}/hub_prop_{tag}",
        name_prefix=f"p{tag}.",
        config_path=CONFIG,
        http_port=port,
    )
    lt = LoopThread()
    hub = build_hub(s, load_config(CONFIG, env=ENV))

    async def open_exchange() -> tuple[Any, Any]:
        await hub.start()
        conn = await aio_pika.connect(BROKER_URL)
        ch = await conn.channel(publisher_confirms=True)
        return conn, await ch.get_exchange(s.name_prefix + "hub.in", ensure=False)

    conn, exchange = lt.run(open_exchange())
    try:
        yield Running(lt, hub, exchange, f"http://127.0.0.1:{port}")
    finally:

        async def cleanup() -> BaseException | None:
            """Every step, even after one fails (a crashed hub must not leak its names)."""
            first: BaseException | None = None

            async def delete_names() -> None:
                await topology.delete_all(await conn.channel(), Names(s.name_prefix), CHANNELS)

            for step in (
                hub.stop,
                delete_names,
                conn.close,
                lambda: db.drop_database(s.database_url),
            ):
                try:
                    await step()
                except Exception as exc:
                    first = first or exc
            return first

        failed = lt.run(cleanup())
        lt.close()
        if failed is not None:
            raise failed


@pytest.fixture
def running() -> Iterator[Running]:
    with running_hub() as r:
        yield r


# ------------------------------------------------------------------------------ accounting


async def _counts(hub: Hub) -> tuple[set[str], int, int]:
    conn = await asyncpg.connect(hub.settings.database_url)
    try:
        handled = {r["message_id"] for r in await conn.fetch("SELECT message_id FROM inbox")}
    finally:
        await conn.close()
    parked = sum(
        sample.value
        for metric in hub.metrics.parked.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )
    dups = hub.metrics.duplicates.labels(hub.names.inbound_queue)._value.get()
    return handled, int(parked), int(dups)


async def _parked(hub: Hub) -> list[aio_pika.abc.AbstractIncomingMessage]:
    conn = await aio_pika.connect(BROKER_URL)
    got = []
    try:
        ch = await conn.channel()
        q = await ch.declare_queue(hub.names.dead_queue, passive=True)
        while (msg := await q.get(no_ack=True, fail=False)) is not None:
            got.append(msg)
    finally:
        await conn.close()
    return got


async def _flows(r: Running) -> bool:
    """A good product event still reaches a sales channel's queue."""
    sku = f"OK-{uuid.uuid4().hex[:6]}"
    body = orjson.dumps(
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "erp",
            "type": "product.upserted",
            "time": datetime.now(UTC).isoformat(),
            "data": {"sku": sku, "name": "Still works", "version": 1},
        }
    )
    await r.exchange.publish(aio_pika.Message(body), routing_key="erp.product.upserted")
    conn = await aio_pika.connect(BROKER_URL)
    try:
        q = await (await conn.channel()).declare_queue(
            r.hub.names.channel_queue("shop-a"), passive=True
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            msg = await q.get(no_ack=True, fail=False)
            if msg is None:
                await asyncio.sleep(0.05)
            elif orjson.loads(msg.body)["data"].get("sku") == sku:
                return True
        return False
    finally:
        await conn.close()


def assert_accounted(r: Running, timeout: float = 60) -> dict[str, Any]:
    """Wait until every input is handled, parked or absorbed, then check them one by one."""
    sent = len(r.amqp_sent) + len(r.accepted)
    deadline = time.monotonic() + timeout
    while True:
        handled, parked, dups = r.lt.run(_counts(r.hub))
        if len(handled) + parked + dups >= sent or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert len(handled) + parked + dups == sent, (len(handled), parked, dups, sent)
    dead = r.lt.run(_parked(r.hub))
    assert len(dead) == parked  # every parked message really is in hub.dead ...
    for msg in dead:  # ... with its reason
        headers = msg.headers or {}
        assert headers.get("x-hub-error-type") in REASONS, headers
        assert headers.get("x-hub-error"), headers
    parked_seqs = {m.headers[SEQ] for m in dead if m.headers and SEQ in m.headers}
    parked_ids = {m.message_id for m in dead if m.headers and SEQ not in m.headers}
    lost = [
        (seq, event_id)
        for seq, event_id in r.amqp_sent
        if seq not in parked_seqs and event_id not in handled
    ]
    lost += [("http", i) for i in r.accepted if i not in handled and i not in parked_ids]
    assert not lost, lost[:10]
    assert r.lt.run(r.hub.readiness()) == {"broker": True, "database": True}
    assert r.lt.run(_flows(r)), "a good message no longer flows"
    reasons = {m.headers["x-hub-error-type"] for m in dead if m.headers}
    return {
        "sent": sent,
        "handled": len(handled),
        "parked": parked,
        "duplicates": dups,
        "reasons": reasons,
    }


SETTINGS = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ------------------------------------------------------------------------------ the tests


def test_every_amqp_message_is_handled_or_parked(running: Running) -> None:
    @settings(SETTINGS, max_examples=600)
    @given(batch=st.lists(amqp_messages(), min_size=1, max_size=5))
    def send(batch: list[tuple[str, bytes]]) -> None:
        for key, body in batch:
            running.publish(key, body)

    send()
    figures = assert_accounted(running)
    assert figures["sent"] >= 1000
    assert figures["handled"] > 0 and figures["parked"] > 0


ALLOWED = {202, 400, 401, 403, 404, 405, 413}


def test_every_webhook_is_answered_and_each_202_handled_or_parked(running: Running) -> None:
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=running.base_url, timeout=10) as client:

        @settings(SETTINGS, max_examples=400)
        @given(batch=st.lists(webhook_requests(), min_size=1, max_size=4))
        def push(batch: list[Request]) -> None:
            for req in batch:
                answer = client.request(req.method, req.path, content=req.body, headers=req.headers)
                # No 5xx: 503 would mean "broker trouble, retry", and the broker is up here.
                assert answer.status_code in ALLOWED, (req, answer.status_code, answer.text)
                statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
                if answer.status_code == 202:
                    running.accepted.append(answer.json()["id"])

        push()
    assert statuses.get(202, 0) > 50 and statuses.get(401, 0) > 50, statuses
    figures = assert_accounted(running)
    assert figures["parked"] > 0 and figures["handled"] > 0


def test_none_lost_and_the_hub_still_works(running: Running) -> None:
    """A fixed mix of good and bad messages, each parking reason at least once: the accounting
    adds up on its own (no other test needs to run first) and a good message still flows."""

    def event(**over: Any) -> bytes:
        base: dict[str, Any] = {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "erp",
            "type": "product.upserted",
            "time": datetime.now(UTC).isoformat(),
            "data": {"sku": "FIX-1", "name": "Desk", "version": 1},
        }
        base.update(over)
        return orjson.dumps(base)

    same_id = str(uuid.uuid4())
    cases = [
        ("erp.product.upserted", event()),  # handled
        ("erp.product.upserted", event(id=same_id)),  # handled ...
        ("erp.product.upserted", event(id=same_id)),  # ... and its duplicate absorbed
        ("erp.product.upserted", b"\x00not json"),  # malformed
        ("erp.product.upserted", event(type="no.such.type")),  # unknown_type
        ("erp.product.upserted", event(data={"sku": "FIX-1"})),  # schema_violation
        ("nobody.product.upserted", event(source="nobody")),  # unknown_channel
        ("shop-a.product.upserted", event(source="shop-a")),  # no_route
        (
            "market-c.order.cancelled",
            event(
                source="market-c",
                type="order.cancelled",
                data={
                    "channel": "shop-a",
                    "channel_order_id": "A-1",
                    "reason": "not mine to cancel",
                    "cancelled_by": "channel",
                },
            ),
        ),  # business_rule
        # Found by the properties above; each parked at once, none fails its batch or the relay:
        ("erp.product.upserted", event(id="nul\x00id")),  # malformed (the inbox cannot hold it)
        ("erp.product.upserted", event(correlationid="\u00e9" * 150)),  # malformed (> 255 bytes)
        (
            "erp.stock.level",
            event(
                type="stock.level",
                data={"sku": "FIX-1", "location": "m\x00", "on_hand": 2**40, "version": 1},
            ),
        ),  # schema_violation (the database refuses the data)
    ]
    for key, body in cases:
        running.publish(key, body)
    figures = assert_accounted(running, timeout=20)
    assert figures == {"sent": 12, "handled": 2, "parked": 9, "duplicates": 1, "reasons": REASONS}
