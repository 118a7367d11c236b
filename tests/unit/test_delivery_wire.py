"""What the delivery worker sends, how it reads the answer, and how long it waits to retry."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import orjson
import pytest

from adapters import registry
from adapters.base import OutboundTranslator
from hub.delivery.policy import DeliveryPolicy
from hub.delivery.service import DeliveryService, http_channels, outbound_translator
from hub.delivery.wire import (
    NotDeliverable,
    build_request,
    judge,
    judge_error,
    retry_after_s,
    signing_secret,
)
from routes.config import DeliveryConfig, HubConfig
from schemas.envelope import CONTENT_TYPE, CloudEvent, new_event

OUTBOUND = Path(__file__).resolve().parents[2] / "adapters" / "fixtures" / "shopify" / "outbound"
NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def shopify() -> OutboundTranslator:
    translator = registry.load("shopify")
    assert isinstance(translator, OutboundTranslator)
    return translator


def fixture_event(name: str) -> CloudEvent:
    doc = json.loads((OUTBOUND / f"{name}.canonical.json").read_text())
    return new_event(source="hub", type=doc["type"], data=doc["data"])


def test_a_channel_with_an_outbound_adapter_gets_its_native_payload_signed():
    event = fixture_event("stock.availability")
    request = build_request(event, event.to_bytes(), shopify(), "s3cret")
    assert request is not None
    native = json.loads((OUTBOUND / "stock.availability.json").read_text())
    assert orjson.loads(request.body) == native
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Idempotency-Key"] == event.id
    assert request.headers["X-Hub-Message-Type"] == "stock.availability"
    expected = hmac.new(b"s3cret", request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Hub-Signature-256"] == f"sha256={expected}"


def test_a_canonical_channel_gets_the_cloudevent_exactly_as_published_unsigned():
    event = new_event(source="hub", type="pick.request", data={"anything": 1})
    raw = event.to_bytes()
    request = build_request(event, raw, None, None)
    assert request is not None
    assert request.body == raw
    assert request.headers["Content-Type"] == CONTENT_TYPE
    assert "X-Hub-Signature-256" not in request.headers


def test_a_type_the_adapter_cannot_write_or_bad_data_is_not_deliverable():
    with pytest.raises(NotDeliverable, match=r"cannot write 'invoice\.issued'"):
        event = new_event(source="hub", type="invoice.issued", data={})
        build_request(event, event.to_bytes(), shopify(), None)
    broken = new_event(source="hub", type="stock.availability", data={"sku": "X"})
    with pytest.raises(NotDeliverable, match=r"shopify cannot write stock\.availability"):
        build_request(broken, broken.to_bytes(), shopify(), None)


def test_a_message_the_channel_needs_no_call_for_builds_no_request():
    accepted = fixture_event("order.accepted")
    assert build_request(accepted, accepted.to_bytes(), shopify(), "s3cret") is None
    broken = new_event(source="hub", type="order.accepted", data={})
    with pytest.raises(NotDeliverable, match=r"shopify cannot write order\.accepted"):
        build_request(broken, broken.to_bytes(), shopify(), None)  # still validated first


def test_the_signing_secret_comes_from_either_setting_and_empty_means_none():
    assert signing_secret({"webhook_secret": "a"}) == "a"
    assert signing_secret({"signing_secret": "b"}) == "b"
    assert signing_secret({"webhook_secret": "", "access_token": "t"}) is None


@pytest.mark.parametrize("code", [200, 201, 202, 204])
def test_2xx_is_done(code: int):
    assert judge(httpx.Response(code)).fate == "ok"


@pytest.mark.parametrize("code", [408, 409, 429, 500, 502, 503, 504])
def test_throttling_server_errors_timeouts_and_conflicts_are_retried(code: int):
    verdict = judge(httpx.Response(code, text="busy"))
    assert (verdict.fate, verdict.status) == ("retry", str(code))


@pytest.mark.parametrize("code", [301, 400, 401, 403, 404, 410, 422])
def test_other_statuses_are_refused_with_the_start_of_the_body(code: int):
    body = '{"errors": "inventory item\n not found"}' + "x" * 500
    verdict = judge(httpx.Response(code, text=body))
    assert verdict.fate == "refused"
    assert verdict.reason.startswith(f"HTTP {code} ")
    assert '"errors": "inventory item not found"' in verdict.reason
    assert len(verdict.reason) < 260 and "\n" not in verdict.reason


def test_no_answer_is_retried_and_labelled():
    request = httpx.Request("POST", "http://127.0.0.1:9/")
    assert judge_error(httpx.ConnectError("refused", request=request)).status == "error"
    timed_out = judge_error(httpx.ReadTimeout("slow", request=request))
    assert (timed_out.fate, timed_out.status) == ("retry", "timeout")


def test_retry_after_in_seconds_or_as_an_http_date():
    assert retry_after_s("1") == 1.0
    assert retry_after_s(" 2.5 ") == 2.5
    assert retry_after_s("-3") == 0.0
    later = format_datetime(NOW + timedelta(seconds=30), usegmt=True)
    assert retry_after_s(later, NOW) == pytest.approx(30.0)
    assert retry_after_s(format_datetime(NOW - timedelta(hours=1), usegmt=True), NOW) == 0.0
    assert retry_after_s("soon") is None
    assert retry_after_s(None) is None
    response = httpx.Response(429, headers={"Retry-After": "7"})
    assert judge(response).retry_after == 7.0


def test_back_off_doubles_honours_retry_after_and_is_capped():
    policy = DeliveryPolicy(first_delay_s=1.0, max_delay_s=60.0, jitter=0.2)
    assert [policy.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 32, 60]
    assert policy.delay(1, retry_after=5.0) == 5.0
    assert policy.delay(3, retry_after=1.0) == 4.0
    assert policy.delay(1, retry_after=3600.0) == 60.0
    assert 2.0 <= policy.delay(2, spread=0.99) <= 2.4
    assert policy.delay(1000) == 60.0
    with pytest.raises(ValueError):
        DeliveryPolicy(max_attempts=0)


def test_only_http_channels_get_a_worker_and_none_means_no_connection(
    example_config: HubConfig,
):
    assert http_channels(example_config) == {}
    fake_hub = SimpleNamespace(config=example_config)
    service = DeliveryService(cast(Any, fake_hub))
    service.start()
    assert service.channels == {} and service._task is None

    nl = example_config.channels["webshop-nl"]
    switched = nl.model_copy(
        update={"delivery": DeliveryConfig(transport="http", url="http://127.0.0.1:1/")}
    )
    config = example_config.model_copy(
        update={"channels": {**example_config.channels, "webshop-nl": switched}}
    )
    assert list(http_channels(config)) == ["webshop-nl"]
    assert outbound_translator(switched) is registry.load("shopify")
    assert outbound_translator(example_config.channels["warehouse"]) is None
