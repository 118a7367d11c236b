"""The router's copy for a channel with SKUs of its own: its data and subject renamed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import yaml

from hub.handlers import Inbound
from hub.router import Router
from hub.topology import Names
from routes import EXAMPLE_CONFIG, RouteTable
from routes.config import HubConfig
from schemas.catalog import ProductUpserted
from schemas.envelope import CloudEvent

EAN = "8712345678906"


def routed(sku_map: dict[str, str]) -> dict[str, dict[str, Any]]:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["channels"]["bolcom"]["sku_map"] = sku_map
    config = HubConfig.model_validate(data, context={"env": {}})
    router = Router(RouteTable.from_config(config), Names("t."), config)
    product = ProductUpserted.model_validate({"sku": "DESK-1", "name": "Desk", "version": 3})
    event = CloudEvent(
        id="p-1",
        source="erp",
        type=ProductUpserted.TYPE,
        time=datetime.now(UTC),
        subject="DESK-1",
        data=product.model_dump(mode="json"),
    )
    seen: dict[str, dict[str, Any]] = {}
    for envelope in router.envelopes(Inbound(event=event, message=product, routing_key="erp.x")):
        body = orjson.loads(envelope.body)
        keys = [envelope.routing_key, *envelope.headers.get("CC", ())]
        seen.update({key.split(".", 1)[0]: body for key in keys})
    return seen


def test_only_the_mapped_channel_gets_a_copy_of_its_own() -> None:
    seen = routed({EAN: "DESK-1"})
    assert seen["bolcom"]["data"]["sku"] == EAN and seen["bolcom"]["subject"] == EAN
    others = {name: body for name, body in seen.items() if name != "bolcom"}
    assert others and all(b["data"]["sku"] == "DESK-1" for b in others.values())
    assert all(b["subject"] == "DESK-1" for b in others.values())
    assert len({b["id"] for b in seen.values()}) == 1  # the same event, told two ways


def test_a_map_without_this_sku_keeps_the_channel_in_the_shared_publish() -> None:
    assert all(b["data"]["sku"] == "DESK-1" for b in routed({EAN: "LAMP-1"}).values())


def test_an_erp_sku_that_names_another_product_on_a_channel_is_not_routed_there() -> None:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["channels"]["bolcom"]["sku_map"] = {EAN: "DESK-1", "LAMP-1": "LAMP-1"}
    table = RouteTable.from_config(HubConfig.model_validate(data, context={"env": {}}))
    to_all = table.destinations("erp", "product.upserted", skus=("DESK-1",))
    assert "bolcom" in to_all
    clashing = table.destinations("erp", "product.upserted", skus=(EAN,))
    assert "bolcom" not in clashing and "webshop-nl" in clashing
    assert "bolcom" in table.destinations("erp", "product.upserted", skus=("LAMP-1",))
    assert table.taken("bolcom", [EAN]) and not table.taken("bolcom", [EAN, "DESK-1"])
    assert table.sku_names_taken() == {"bolcom": frozenset({EAN})}
