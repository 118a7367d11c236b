"""An operator's hand on orders the process cannot move: list, ask again, give up."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hub.cli import app
from hub.orders import store
from hub.orders.operator import OperatorRefused, act
from hub.orders.timeouts import sweep_once
from hub.settings import Settings

sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures" / "orders"))
from order_kit import World, open_world, order_data, parties, silent

pytestmark = pytest.mark.integration


@pytest.fixture
async def world(isolated: Settings, bus: Any) -> AsyncIterator[World]:
    async with open_world(isolated, bus) as w:
        yield w


async def stall_at_the_carrier(world: World, seen: dict[str, Any], coid: str) -> None:
    """Packed goods and a silent carrier: the order stalls once its retries are spent."""
    rules = world.hub.config.channels["carrier"].orders
    await world.place("bolcom", order_data("bolcom", coid, [("LAMP-1", 1, "25.50")]))
    await seen["carrier"].wait("shipment.request")
    for _ in range(rules.max_retries + 1):
        world.clock.advance(rules.warehouse_timeout_seconds + 1)
        assert await sweep_once(world.hub, world.clock.now) == 1
    await world.state("bolcom", coid, "stalled")


async def cli(isolated: Settings, *args: str) -> Any:
    env = {
        "HUB_DATABASE_URL": isolated.database_url,
        "HUB_BROKER_URL": isolated.broker_url,
        "HUB_NAME_PREFIX": isolated.name_prefix,
        "HUB_CONFIG_PATH": str(isolated.config_path),
    }
    return await asyncio.to_thread(CliRunner().invoke, app, ["orders", *args], env=env)


async def test_a_stalled_order_is_listed_asked_again_then_given_up(
    world: World, isolated: Settings
) -> None:
    async with parties(world, carrier=silent) as seen:
        await stall_at_the_carrier(world, seen, "B-OP1")
        asked = len(seen["carrier"].of("shipment.request"))

        listed = await cli(isolated, "list", "--state", "stalled")
        assert listed.exit_code == 0, listed.output
        assert "B-OP1" in listed.output and "carrier" in listed.output
        assert "1 order(s)" in listed.output
        none = await cli(isolated, "list", "--state", "stalled", "--channel", "webshop-nl")
        assert "0 order(s)" in none.output

        # The carrier is back: ask again; the clock and the retries start over.
        retried = await cli(isolated, "retry", "bolcom", "B-OP1")
        assert retried.exit_code == 0, retried.output
        assert "stalled, 1 message(s) sent" in retried.output
        await seen["carrier"].wait("shipment.request", asked + 1)
        row = await world.order("bolcom", "B-OP1")
        assert row is not None and row["deadline"] is not None and row["attempts"] == 0
        assert row["awaiting"] == "carrier"

        # It will not ship after all: give it up.
        done = await act(
            world.hub.settings, world.hub.config, "bolcom", "B-OP1", "cancel", "carrier gone"
        )
        assert done.state == "cancelled" and done.sent >= 3
        await world.state("bolcom", "B-OP1", "cancelled")
        assert await world.held("LAMP-1") == 0
        [erp_cancel] = await seen["erp"].wait("salesorder.cancel")
        assert erp_cancel["data"]["reason"] == "cancelled by an operator: carrier gone"
        await seen["warehouse"].wait("pick.cancel")
        told = [b["data"] for b in await seen["bolcom"].wait("order.status")]
        cancelled = [t for t in told if t["status"] == "cancelled"]
        assert cancelled and cancelled[-1]["cancelled"]["by"] == "hub"
        assert cancelled[-1]["cancelled"]["whole_order"] is True

        # Nothing left to do for it now.
        again = await cli(isolated, "cancel", "bolcom", "B-OP1", "--reason", "twice")
        assert (
            again.exit_code == 1
            and "bolcom order B-OP1 is cancelled: nothing to cancel" in again.output
        )
        with pytest.raises(OperatorRefused, match="waits for no answer"):
            await act(world.hub.settings, world.hub.config, "bolcom", "B-OP1", "retry")
        with pytest.raises(OperatorRefused, match="no order 'NOPE'"):
            await act(world.hub.settings, world.hub.config, "bolcom", "NOPE", "retry")


async def test_a_shipped_order_is_not_given_up_by_an_operator(world: World) -> None:
    async with parties(world) as seen:
        await world.place("bolcom", order_data("bolcom", "B-OP2", [("DESK-1", 1, "199.00")]))
        await seen["bolcom"].wait("shipment.tracking")
        await world.state("bolcom", "B-OP2", "shipped")
        with pytest.raises(OperatorRefused, match="is shipped: nothing to cancel"):
            await act(world.hub.settings, world.hub.config, "bolcom", "B-OP2", "cancel", "x")


def packs_one_unit_once() -> Any:
    """A warehouse that packs one unit of the first pick it is asked, then falls silent."""
    asked: list[str] = []

    def reply(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        if body["type"] != "pick.request":
            return []
        asked.append(body["id"])
        if len(asked) > 1:
            return []
        data = body["data"]
        lines = [{**line, "quantity": 1} for line in data["lines"]]
        return [("pick.completed", {"order_id": data["order_id"], "lines": lines})]

    return reply


async def test_the_unshipped_rest_of_a_stalled_order_is_given_up_and_what_shipped_kept(
    world: World, isolated: Settings
) -> None:
    async with parties(world, warehouse=packs_one_unit_once()) as seen:
        await world.place("bolcom", order_data("bolcom", "B-OP3", [("DESK-1", 3, "199.00")]))
        await seen["bolcom"].wait("shipment.tracking")
        await world.state("bolcom", "B-OP3", "partially_shipped")
        rules = world.hub.config.channels["warehouse"].orders
        for _ in range(rules.max_retries + 1):
            world.clock.advance(rules.warehouse_timeout_seconds + 1)
            assert await sweep_once(world.hub, world.clock.now) == 1
        await world.state("bolcom", "B-OP3", "stalled")  # packed goods left: not rejected

        done = await cli(isolated, "cancel", "bolcom", "B-OP3", "--reason", "out of stock")
        assert done.exit_code == 0, done.output
        await world.state("bolcom", "B-OP3", "shipped")
        rest = [{"line_id": "L1", "sku": "DESK-1", "quantity": 2}]
        [erp_cancel] = await seen["erp"].wait("salesorder.cancel")
        assert erp_cancel["data"]["lines"] == rest
        assert "out of stock" in erp_cancel["data"]["reason"]
        [pick_cancel] = await seen["warehouse"].wait("pick.cancel")
        assert pick_cancel["data"]["lines"] == rest
        assert await world.held("DESK-1") == 1  # the shipped unit, until the ERP counts it
        for _ in range(100):  # the status is sent once the change committed
            told = [b["data"] for b in seen["bolcom"].of("order.status")]
            if told[-1].get("cancelled"):
                break
            await asyncio.sleep(0.05)
        assert told[-1]["status"] == "shipped"
        assert told[-1]["cancelled"] == {"by": "hub", "whole_order": False, "lines": rest}
        row = await world.order("bolcom", "B-OP3")
        assert row is not None and row["awaiting"] is None and row["deadline"] is None
        async with world.hub.pool.acquire() as conn:
            order = await store.find(conn, "bolcom", "B-OP3")
        assert order is not None and order.withdrawn == {"L1": 2} and not order.unshipped()
        await asyncio.sleep(0.3)
        assert not seen["erp"].of("return.requested")  # the buyer keeps what shipped
        again = await cli(isolated, "cancel", "bolcom", "B-OP3", "--reason", "twice")
        assert again.exit_code == 1 and "is shipped: nothing to cancel" in again.output
