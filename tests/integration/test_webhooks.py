"""Webhook ingress over real HTTP on loopback: signed pushes reach the bus once, bad ones don't."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import socket
from datetime import UTC, datetime

import httpx
import orjson
import pytest

from routes import EXAMPLE_CONFIG
from routes.loader import load_config

pytestmark = pytest.mark.integration
SECRET = "test-webhook-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sign(body: bytes) -> str:
    return base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()


def product(sku: str) -> bytes:
    return orjson.dumps({"sku": sku, "name": "Pushed by webhook", "version": 1})


@pytest.fixture
def config(isolated):
    env = {**os.environ, "SHOPIFY_NL_WEBHOOK_SECRET": SECRET}
    return load_config(isolated.config_path, env=env)


async def test_signed_webhook_is_published_once_and_checked(start_hub, bus, config) -> None:
    port = free_port()
    await start_hub(config, http_port=port)
    url = f"http://127.0.0.1:{port}/webhooks/webshop-nl"
    async with httpx.AsyncClient(timeout=5) as client:
        body = orjson.dumps({"channel": "webshop-nl", "not": "an order"})
        headers = {"X-Shopify-Hmac-Sha256": sign(body), "X-Shopify-Webhook-Id": "wh-1"}
        first = await client.post(f"{url}/order.placed", content=body, headers=headers)
        retry = await client.post(f"{url}/order.placed", content=body, headers=headers)
        unsigned = await client.post(f"{url}/order.placed", content=body)
        forged = await client.post(
            f"{url}/order.placed", content=body, headers={"X-Shopify-Hmac-Sha256": sign(b"x")}
        )
        not_json = await client.post(
            f"{url}/order.placed", content=b"{", headers={"X-Shopify-Hmac-Sha256": sign(b"{")}
        )
        unknown = await client.post(
            f"http://127.0.0.1:{port}/webhooks/nobody/order.placed", content=body
        )
        no_secret = await client.post(
            f"http://127.0.0.1:{port}/webhooks/webshop-uk/order.placed",
            content=body,
            headers={"X-Shopify-Hmac-Sha256": sign(body)},
        )
    assert first.status_code == 202 and retry.status_code == 202
    assert first.json()["id"] == retry.json()["id"] == "webshop-nl:wh-1"
    assert first.json()["type"] == "order.placed"
    assert [unsigned.status_code, forged.status_code, not_json.status_code] == [401, 401, 400]
    assert unknown.status_code == 404 and no_secret.status_code == 403
    # Both deliveries are on the bus under the sender's delivery id (so a valid order's retry is
    # absorbed by the inbox); this one is invalid, so each copy is parked with its reason.
    parked = await bus.drain(bus.names.dead_queue, expect=2, settle=0.5)
    assert len(parked) == 2
    assert {p.headers["x-hub-error-type"] for p in parked} == {"schema_violation"}
    assert {orjson.loads(p.body)["id"] for p in parked} == {"webshop-nl:wh-1"}


async def test_native_event_name_maps_to_the_channels_adapter(start_hub, config) -> None:
    port = free_port()
    hub = await start_hub(config, http_port=port)
    body = orjson.dumps({"id": 1, "created_at": datetime.now(UTC).isoformat()})
    async with httpx.AsyncClient(timeout=5) as client:
        answer = await client.post(
            f"http://127.0.0.1:{port}/webhooks/webshop-nl/orders-create",
            content=body,
            headers={"X-Shopify-Hmac-Sha256": sign(body)},
        )
    assert answer.status_code == 202
    adapter = hub.config.channels["webshop-nl"].adapter
    assert answer.json()["type"] == f"native.{adapter}.orders-create"
    assert answer.json()["id"].startswith("webshop-nl:sha256:")


def test_example_config_declares_a_webhook_secret_slot() -> None:
    config = load_config(EXAMPLE_CONFIG, env={"SHOPIFY_NL_WEBHOOK_SECRET": "s"})
    assert config.channels["webshop-nl"].settings["webhook_secret"] == "s"


async def test_a_sendcloud_parcel_update_signed_in_its_own_way_is_taken(
    start_hub, bus, isolated
) -> None:
    """Sendcloud signs with the bare hex HMAC in ``Sendcloud-Signature`` (its documented
    example: secret "secretkey", body '{"key": "value"}' -> 1eed4b3d...)."""
    env = {**os.environ, "SENDCLOUD_WEBHOOK_SECRET": "secretkey"}
    port = free_port()
    await start_hub(load_config(isolated.config_path, env=env), http_port=port)
    documented = b'{"key": "value"}'
    vector = "1eed4b3d41f4653ac64fd56f1bf1cbfd349e4482cbc11dff7134bd93e5da4b0a"
    url = f"http://127.0.0.1:{port}/webhooks/carrier/parcel-status-changed"
    async with httpx.AsyncClient(timeout=5) as client:
        taken = await client.post(url, content=documented, headers={"Sendcloud-Signature": vector})
        forged = await client.post(
            url, content=b'{"key": "other"}', headers={"Sendcloud-Signature": vector}
        )
    assert taken.status_code == 202 and forged.status_code == 401
    assert taken.json()["type"] == "native.sendcloud.parcel-status-changed"
    # Not a parcel: parked with its reason on the bus, like any bad message.
    [parked] = await bus.drain(bus.names.dead_queue, expect=1, settle=0.5)
    assert parked.headers["x-hub-error-type"] == "schema_violation"
