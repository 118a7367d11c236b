"""The parking lot on the real broker and database: store, list, show, replay (by id, by filter,
dry-run), purge, and the ``hub dlq`` command itself."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from hub.bus import Envelope
from hub.db import Connection
from hub.dlq.service import envelope_for, parking_lot
from hub.dlq.store import Selection
from hub.errors import BusinessRuleViolation
from hub.handlers import Handler, Inbound
from hub.router import Router
from hub.runtime import Hub
from hub.settings import Settings
from routes.loader import load_config

pytestmark = pytest.mark.integration
HUB_BIN = Path(sys.executable).parent / "hub"


def product_event(sku: str, event_id: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "erp",
        "type": "product.upserted",
        "time": datetime.now(UTC).isoformat(),
        "subject": sku,
        "data": {"sku": sku, "name": "Oak desk 160", "version": 1},
    }


class Switchable:
    """Refuses SKU-BROKEN while ``broken`` (a business rule), routes everything else."""

    stateful = True
    forwards = True  # keeps nothing of its own: routes product.upserted on

    def __init__(self, hub: Hub) -> None:
        self.router = Router(hub.table, hub.names)
        self.broken = True

    async def handle(
        self, inbound: Inbound, conn: Connection | None, now: datetime
    ) -> Sequence[Envelope]:
        if self.broken and getattr(inbound.message, "sku", "") == "SKU-BROKEN":
            raise BusinessRuleViolation("SKU-BROKEN is not in the ERP catalog")
        return self.router.envelopes(inbound)


async def inbox_has(settings: Settings, message_id: str) -> int:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return int(
            await conn.fetchval("SELECT count(*) FROM inbox WHERE message_id = $1", message_id)
        )
    finally:
        await conn.close()


async def test_parked_messages_are_stored_listed_replayed_and_purged(isolated, bus) -> None:
    holder: dict[str, Switchable] = {}

    def handlers(hub: Hub) -> dict[str, Handler]:
        holder["h"] = Switchable(hub)
        return {"product.upserted": holder["h"]}

    hub = Hub(isolated, load_config(isolated.config_path), handler_factories=(handlers,))
    await hub.start()
    try:
        channel = next(iter(hub.table.destinations("erp", "product.upserted")))
        out_queue = bus.names.channel_queue(channel)
        await bus.publish("erp.product.upserted", product_event("SKU-BROKEN", "broken-1"),
                          message_id="broken-1")  # fmt: skip
        await bus.publish("webshop-nl.order.placed", b"{not json", message_id="junk-1")
        await bus.publish("erp.product.upserted", product_event("SKU-OK", "ok-1"))
        # A channel's adapter rejects a message: RabbitMQ dead-letters it with x-death.
        [delivered] = await bus.drain(out_queue, expect=1)
        assert bus.channel is not None
        out = await bus.channel.get_queue(out_queue, ensure=False)
        await bus.publish(delivered.routing_key or "", delivered.body,
                          exchange=bus.names.outbound_exchange, message_id="to-reject")  # fmt: skip
        for _ in range(50):
            msg = await out.get(no_ack=False, fail=False)
            if msg is not None:
                await msg.reject(requeue=False)
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        assert await inbox_has(isolated, "broken-1") == 0  # failed ids leave the inbox

        async with parking_lot(isolated.database_url, isolated.broker_url, bus.names) as lot:
            assert await lot.sweep() == 3
            assert await lot.sweep() == 0  # idempotent: the queue is empty, nothing repeats
            groups = {g["error_type"]: g["count"] for g in await lot.groups(Selection())}
            assert groups == {"business_rule": 1, "malformed": 1, "broker_rejected": 1}
            in_nl = await lot.rows(Selection(channel="webshop-nl"))
            assert "malformed" in {r["error_type"] for r in in_nl}
            assert all(r["channel"] == "webshop-nl" for r in in_nl)
            [junk] = await lot.rows(Selection(channel="webshop-nl", error_type="malformed"))
            assert junk["error_type"] == "malformed" and bytes(junk["body"]) == b"{not json"
            [rejected] = await lot.rows(Selection(error_type="broker_rejected"))
            assert rejected["original_exchange"] == bus.names.outbound_exchange
            assert rejected["failed_queue"] == out_queue
            assert await lot.rows(Selection(since=datetime.now(UTC) + timedelta(hours=1))) == []
            assert await lot.rows(Selection(until=datetime.now(UTC) - timedelta(hours=1))) == []
            window = Selection(
                since=datetime.now(UTC) - timedelta(hours=1),
                until=datetime.now(UTC) + timedelta(minutes=1),
            )
            assert len(await lot.rows(window)) == 3
            types = {r["message_type"] for r in await lot.rows(Selection())}
            for message_type in types - {None}:
                chosen = await lot.rows(Selection(message_type=message_type))
                assert chosen and all(r["message_type"] == message_type for r in chosen)
            assert await lot.rows(Selection(message_type="no.such.type")) == []

            # Dry run: nothing is sent, nothing changes.
            planned = await lot.replay(Selection(), actor="test", dry_run=True)
            assert len(planned) == 3
            assert len(await lot.rows(Selection())) == 3
            assert await bus.drain(out_queue, expect=0, settle=0.3) == []

            # Fix the cause, replay by id: handled anew, same id, effect once.
            holder["h"].broken = False
            [broken] = await lot.rows(Selection(error_type="business_rule"))
            assert broken["message_id"] == "broken-1"
            [done] = await lot.replay(Selection(ids=(broken["id"],)), actor="test", dry_run=False)
            assert done.routing_key == "erp.product.upserted"
            [fixed] = await bus.bodies(out_queue, expect=1)
            assert fixed["causationid"] == "broken-1" and fixed["data"]["sku"] == "SKU-BROKEN"
            assert await inbox_has(isolated, "broken-1") == 1
            # Replaying the same message again is absorbed by the inbox: no second effect.
            await hub.publisher.publish(envelope_for(await lot.show(broken["id"])))
            assert await bus.drain(out_queue, expect=0, settle=0.5) == []
            assert hub.metrics.duplicates.labels(bus.names.inbound_queue)._value.get() == 1

            # Replay by filter: the rejected channel message goes back to its channel queue.
            await lot.replay(Selection(error_type="broker_rejected"), actor="test", dry_run=False)
            [back] = await bus.drain(out_queue, expect=1)
            assert back.message_id == "to-reject"
            assert "x-death" not in (back.headers or {})

            assert {g["error_type"] for g in await lot.groups(Selection())} == {"malformed"}
            with pytest.raises(ValueError, match="needs ids or a filter"):
                await lot.purge(Selection(), actor="test")
            assert await lot.purge(Selection(error_type="malformed"), actor="test") == 1
            assert await lot.groups(Selection()) == []
        conn = await asyncpg.connect(isolated.database_url)
        try:
            actions = await conn.fetch("SELECT action, actor FROM parked_audit ORDER BY id")
            assert [a["action"] for a in actions] == ["replay", "replay", "purge"]
            replayed = await conn.fetchval("SELECT count(*) FROM parked WHERE status = 'replayed'")
            assert replayed == 2
        finally:
            await conn.close()
    finally:
        await hub.stop()


async def hub_cli(settings: Settings, *args: str) -> tuple[int, str]:
    env = {
        **os.environ,
        "HUB_DATABASE_URL": settings.database_url,
        "HUB_BROKER_URL": settings.broker_url,
        "HUB_NAME_PREFIX": settings.name_prefix,
        "HUB_CONFIG_PATH": str(settings.config_path),
        "COLUMNS": "200",
    }
    proc = await asyncio.create_subprocess_exec(
        str(HUB_BIN), "dlq", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_hub_dlq_command(start_hub, bus, isolated) -> None:
    await start_hub()
    for i in range(3):
        await bus.publish("erp.product.upserted", b"garbage", message_id=f"g-{i}")
    await bus.publish(
        "erp.product.upserted", orjson.dumps({**product_event("S", "u"), "type": "x.y"})
    )
    await asyncio.sleep(1.0)

    code, out = await hub_cli(isolated, "list")
    assert code == 0, out
    assert "moved 4 message(s)" in out
    assert "malformed" in out and "unknown_type" in out and "total parked: 4" in out
    code, out = await hub_cli(isolated, "list", "--type", "unknown_type", "--since", "1h")
    assert "total parked: 1" in out
    code, out = await hub_cli(isolated, "list", "--message-type", "x.y")  # the event's type
    assert code == 0 and "total parked: 1" in out, out
    code, out = await hub_cli(isolated, "list", "--message-type", "product.upserted")
    assert code == 0 and "total parked: 3" in out, out  # unreadable: the routing key's type
    code, out = await hub_cli(isolated, "replay", "--since", "1h", "--until", "1m", "--dry-run")
    assert code == 0 and "would replay 0 message(s)" in out, out  # all parked within a minute
    code, out = await hub_cli(isolated, "replay", "--until", "soon", "--dry-run")
    assert code != 0 and "--until" in out, out

    code, out = await hub_cli(isolated, "replay", "--type", "malformed", "--dry-run")
    assert code == 0 and "would replay 3 message(s)" in out, out
    code, out = await hub_cli(isolated, "show", "1")
    assert code == 0 and "status: parked" in out and "garbage" in out, out

    code, out = await hub_cli(isolated, "purge", "--type", "malformed")
    assert code == 2 and "--yes" in out
    code, out = await hub_cli(isolated, "purge", "--type", "malformed", "--yes")
    assert code == 0 and "purged 3 message(s)" in out, out
    code, out = await hub_cli(isolated, "list")
    assert "total parked: 1" in out


async def test_a_copy_one_channel_rejected_is_replayed_to_that_channel_only(
    start_hub, bus, isolated
) -> None:
    hub = await start_hub()
    channels = hub.table.destinations("erp", "product.upserted")
    second = channels[1]
    await bus.publish("erp.product.upserted", product_event("SKU-CC", "cc-1"), message_id="cc-1")
    for channel in channels:
        if channel != second:
            assert len(await bus.drain(bus.names.channel_queue(channel), expect=1)) == 1
    assert bus.channel is not None
    queue = await bus.channel.get_queue(bus.names.channel_queue(second), ensure=False)
    for _ in range(100):  # the second channel's adapter refuses it: the broker dead-letters it
        msg = await queue.get(no_ack=False, fail=False)
        if msg is not None:
            assert msg.headers.get("CC")  # it came as a CC copy of one publish
            await msg.reject(requeue=False)
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    async with parking_lot(isolated.database_url, isolated.broker_url, bus.names) as lot:
        assert await lot.sweep() == 1
        [row] = await lot.rows(Selection(message_type="product.upserted"))
        assert row["channel"] == second
        await lot.replay(Selection(ids=(row["id"],)), actor="test", dry_run=False)
    [again] = await bus.bodies(bus.names.channel_queue(second), expect=1)
    assert again["data"]["sku"] == "SKU-CC"
    for channel in channels:
        if channel != second:  # nobody else gets it a second time
            assert await bus.drain(bus.names.channel_queue(channel), expect=0, settle=0.3) == []


async def test_upgrading_files_older_parked_messages_by_their_routing_keys_type(isolated) -> None:
    from hub.db import ensure_database, migrate

    await ensure_database(isolated.database_url)
    conn = await asyncpg.connect(isolated.database_url)
    try:
        await migrate(conn)
        rows = [  # parked by an older hub: no type; a CC copy under the first channel's key
            ("f-1", "t_hub.in", "webshop-nl.order.placed", "t_hub.in"),
            ("f-2", "t_hub.out", "bolcom.stock.availability", "t_hub.out.bolcom"),
            ("f-3", "", "t_hub.rpc", "t_hub.rpc"),
            ("f-4", "t_hub.out", "webshop-nl.product.upserted", "t_hub.out.webshop-uk"),
        ]
        for fingerprint, exchange, key, queue in rows:
            await conn.execute(
                "INSERT INTO parked (fingerprint, error_type, error, original_exchange,"
                " original_routing_key, failed_queue, channel, headers, body, attempts,"
                " first_failed_at, parked_at) VALUES ($1, 'malformed', 'x', $2, $3, $4,"
                " split_part($3, '.', 1), '{}', '\\x00', 1, now(), now())",
                fingerprint,
                exchange,
                key,
                queue,
            )
        await conn.execute("DELETE FROM schema_migrations WHERE name = '015_parked_types.sql'")
        assert await migrate(conn) == ["015_parked_types.sql"]
        found = {
            r["fingerprint"]: tuple(r.values())[1:]
            for r in await conn.fetch(
                "SELECT fingerprint, message_type, channel, original_routing_key FROM parked"
            )
        }
        assert found == {
            "f-1": ("order.placed", "webshop-nl", "webshop-nl.order.placed"),
            "f-2": ("stock.availability", "bolcom", "bolcom.stock.availability"),
            "f-3": (None, "t_hub", "t_hub.rpc"),
            "f-4": ("product.upserted", "webshop-uk", "webshop-uk.product.upserted"),
        }
    finally:
        await conn.close()


async def test_a_parked_message_is_resubmitted_with_its_data_corrected(
    start_hub, bus, isolated, tmp_path: Path
) -> None:
    hub = await start_hub()
    wrong = product_event("DESK-9", "fix-me")
    wrong["data"] = {"sku": "DESK-9", "version": 1}  # the ERP left the name out
    await bus.publish("erp.product.upserted", orjson.dumps(wrong), message_id="fix-me")
    await asyncio.sleep(1.0)
    code, out = await hub_cli(isolated, "list")
    assert code == 0 and "schema_violation" in out and "total parked: 1" in out, out

    fixed = tmp_path / "data.json"
    fixed.write_bytes(orjson.dumps({"sku": "DESK-9", "name": "Desk nine", "version": 1}))
    both = await hub_cli(isolated, "resubmit", "1", "--data", str(fixed), "--body", str(fixed))
    assert both[0] != 0 and "not both" in both[1]
    code, out = await hub_cli(isolated, "resubmit", "1", "--data", str(fixed))
    assert code == 0 and "resubmitted #1 fix-me" in out, out
    for _ in range(100):
        if await hub.pool.fetchval("SELECT count(*) FROM stock_products WHERE sku = 'DESK-9'"):
            break
        await asyncio.sleep(0.05)
    stored = await hub.pool.fetchval(
        "SELECT data->>'name' FROM stock_products WHERE sku = 'DESK-9'"
    )
    assert stored == "Desk nine"
    audit = await hub.pool.fetchval("SELECT action FROM parked_audit ORDER BY id DESC LIMIT 1")
    assert audit == "resubmit"
    code, out = await hub_cli(isolated, "resubmit", "99", "--data", str(fixed))
    assert code == 1 and "no parked message #99" in out
