"""Chaos test machinery: a real ``hub run`` process, service restarts, a stubborn publisher."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

HUB_BIN = Path(sys.executable).parent / "hub"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HubProcess:
    """``hub run`` as a child process, killed and restarted at will."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.port = int(env["HUB_HTTP_PORT"])
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.lifetimes = 0

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(HUB_BIN), "run"], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        self.lifetimes += 1

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 60) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    async def ready(self) -> bool:
        try:
            async with httpx.AsyncClient(timeout=1.0) as client:
                r = await client.get(f"http://127.0.0.1:{self.port}/readyz")
        except httpx.HTTPError:
            return False
        return r.status_code == 200

    async def wait_ready(self, timeout: float = 90) -> float:
        """Seconds until /readyz answers 200."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"hub exited with {self.proc.returncode}; see {self.log_path}")
            if await self.ready():
                return time.monotonic() - started
            await asyncio.sleep(0.1)
        raise TimeoutError(f"hub not ready after {timeout}s; see {self.log_path}")


class MetricsScraper:
    """Reads the hub's counters every few hundred ms; a counter dies with its process, so the
    last value read in each lifetime is kept (what happened after it, before a kill, is not)."""

    COUNTERS = {
        "duplicates": ("hub_duplicates_dropped_total", None),
        "order duplicates": ("hub_orders_total", ("outcome", "duplicate")),
        "stale levels": ("hub_stock_stale_dropped_total", None),
        "retried": ("hub_messages_retried_total", None),
        "parked": ("hub_messages_parked_total", None),
        "relayed": ("hub_outbox_relayed_total", None),
        "oversell": ("hub_oversell_total", None),
    }

    def __init__(self, hub: HubProcess, interval_s: float = 0.3) -> None:
        self.hub = hub
        self.interval_s = interval_s
        self.by_lifetime: dict[int, dict[str, float]] = {}

    async def scrape(self) -> None:
        lifetime, proc = self.hub.lifetimes, self.hub.proc
        try:
            async with httpx.AsyncClient(timeout=1.0) as client:
                text = (await client.get(f"http://127.0.0.1:{self.hub.port}/metrics")).text
        except httpx.HTTPError:
            return
        if proc is not self.hub.proc or proc is None or proc.poll() is not None:
            return  # killed (and maybe replaced) while we asked: not sure whose answer it is
        values: dict[str, float] = dict.fromkeys(self.COUNTERS, 0.0)
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                for name, (metric, label) in self.COUNTERS.items():
                    if sample.name != metric:
                        continue
                    if label is None or sample.labels.get(label[0]) == label[1]:
                        values[name] += sample.value
        seen = self.by_lifetime.setdefault(lifetime, {})
        for name, value in values.items():
            seen[name] = max(seen.get(name, 0.0), value)

    def total(self, name: str) -> int:
        return int(sum(seen.get(name, 0.0) for seen in self.by_lifetime.values()))

    async def run(self) -> None:
        while True:
            await self.scrape()
            await asyncio.sleep(self.interval_s)


def _run(*cmd: str, timeout: float = 120) -> None:
    subprocess.run(list(cmd), check=True, timeout=timeout, capture_output=True)


async def _port_answers(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"nothing answers on port {port}")


async def restart_rabbitmq(broker_url: str) -> float:
    """Stop and start the node; returns the seconds it was away. Waits until AMQP works."""
    started = time.monotonic()
    await asyncio.to_thread(_run, "rabbitmqctl", "stop")
    await asyncio.to_thread(_run, "rabbitmq-server", "-detached")
    await ensure_rabbitmq(broker_url)
    return time.monotonic() - started


async def ensure_rabbitmq(broker_url: str, timeout: float = 120) -> None:
    """Start RabbitMQ if it is not running and wait until a connection succeeds."""
    deadline = time.monotonic() + timeout
    tried_start = False
    while time.monotonic() < deadline:
        try:
            conn = await aio_pika.connect(broker_url, timeout=3)
            await conn.close()
            return
        except Exception:
            if not tried_start and time.monotonic() > deadline - timeout + 20:
                tried_start = True
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(_run, "rabbitmq-server", "-detached")
            await asyncio.sleep(0.5)
    raise TimeoutError("RabbitMQ did not come back")


async def restart_postgres() -> float:
    """Restart the cluster and wait until it accepts connections; returns the seconds it took."""
    started = time.monotonic()
    await asyncio.to_thread(
        _run, "pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "restart"
    )
    await ensure_postgres()
    return time.monotonic() - started


async def ensure_postgres(timeout: float = 60) -> None:
    """Wait until PostgreSQL accepts connections (starting it if it is down)."""
    deadline = time.monotonic() + timeout
    started = False
    while time.monotonic() < deadline:
        check = await asyncio.create_subprocess_exec("pg_isready", "-h", "127.0.0.1", "-q")
        rc = await check.wait()
        if rc == 0:
            return
        if rc == 2 and not started:
            started = True
            with contextlib.suppress(Exception):
                await asyncio.to_thread(
                    _run, "pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "start"
                )
        await asyncio.sleep(0.3)
    raise TimeoutError("PostgreSQL did not come back")


def with_heartbeat(url: str, seconds: int = 5) -> str:
    """The broker URL with a short heartbeat, so a dead link is noticed in seconds."""
    return f"{url}{'&' if '?' in url else '?'}heartbeat={seconds}"


class StubbornPublisher:
    """Publishes as an adapter would: confirmed, retried until the broker takes it.

    A plain connection, dropped and made anew after any failure (a robust connection can sit
    on a channel whose confirms never come after a broker restart). A publish that failed may
    still have reached the broker: the retry is a duplicate with the same id, as in real life.
    """

    def __init__(self, broker_url: str, exchange: str, name: str = "chaos-adapter") -> None:
        self.broker_url = broker_url
        self.exchange_name = exchange
        self.name = name
        self.connection: Any = None
        self.exchange: Any = None
        self.retries = 0
        self._connecting = asyncio.Lock()  # concurrent publishes share one connection

    async def _connect(self) -> None:
        async with self._connecting:
            if self.exchange is not None:
                return
            await self.close()
            self.connection = await aio_pika.connect(
                with_heartbeat(self.broker_url),
                timeout=3,
                client_properties={"connection_name": self.name},
            )
            channel = await self.connection.channel(publisher_confirms=True)
            self.exchange = await channel.get_exchange(self.exchange_name, ensure=False)

    async def publish(self, routing_key: str, body: bytes, message_id: str) -> None:
        while True:
            exchange = self.exchange
            try:
                if exchange is None:
                    await self._connect()
                    continue
                msg = aio_pika.Message(body, message_id=message_id, delivery_mode=2)
                await exchange.publish(msg, routing_key=routing_key, timeout=5)
                return
            except Exception:
                self.retries += 1
                if self.exchange is exchange:
                    self.exchange = None  # connect anew (once for all publishes that failed)
                await asyncio.sleep(0.3)

    async def close(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(Exception):
                await self.connection.close()
            self.connection = None


def hub_env(database_url: str, broker_url: str, prefix: str, config: Path) -> dict[str, str]:
    """Environment for a hub child process with its own database and names."""
    return {
        **os.environ,
        "HUB_DATABASE_URL": database_url,
        "HUB_BROKER_URL": broker_url,
        "HUB_NAME_PREFIX": prefix,
        "HUB_CONFIG_PATH": str(config),
        "HUB_HTTP_PORT": str(free_port()),
        "HUB_OUTBOX_GRACE_S": "3",
        "HUB_OUTBOX_POLL_S": "0.5",
        "HUB_PUBLISH_TIMEOUT_S": "5",
        "HUB_LOG_LEVEL": "WARNING",
    }


AUDIT_SQL = """
CREATE TABLE chaos_audit (
    seq            bigserial PRIMARY KEY,
    kind           text   NOT NULL,
    sku            text   NOT NULL,
    location       text,
    reservation_id text,
    qty            int    NOT NULL DEFAULT 0,
    on_hand        int    NOT NULL DEFAULT 0,
    committed      int    NOT NULL DEFAULT 0,
    version        bigint NOT NULL DEFAULT 0
);
CREATE FUNCTION chaos_audit_level() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chaos_audit (kind, sku, location, on_hand, committed, version)
    VALUES ('level', NEW.sku, NEW.location, NEW.on_hand, NEW.committed, NEW.version);
    RETURN NULL;
END $$;
CREATE TRIGGER chaos_audit_level AFTER INSERT OR UPDATE ON stock_ledger
    FOR EACH ROW EXECUTE FUNCTION chaos_audit_level();
CREATE FUNCTION chaos_audit_hold() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.active AND (TG_OP = 'INSERT' OR NOT OLD.active) THEN
        INSERT INTO chaos_audit (kind, sku, reservation_id, qty)
        VALUES ('hold', NEW.sku, NEW.reservation_id, NEW.quantity);
    ELSIF TG_OP = 'UPDATE' AND OLD.active AND NOT NEW.active THEN
        INSERT INTO chaos_audit (kind, sku, reservation_id, qty)
        VALUES ('unhold', NEW.sku, NEW.reservation_id, OLD.quantity);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER chaos_audit_hold AFTER INSERT OR UPDATE ON stock_reservation_lines
    FOR EACH ROW EXECUTE FUNCTION chaos_audit_hold();
"""
"""The test's own witness in the hub's database: every applied stock level and every hold
taken or given back, numbered by a sequence. The hub changes a SKU's ledger rows and holds only
under that SKU's lock (held to commit), so per SKU the numbers follow the order in which the
changes were serialised, and a replay can check each grant against the stock of its moment."""


class ErpResponder:
    """Plays the ERP: consumes hub.out.erp and answers each salesorder.create with a
    salesorder.created (confirmed publish, then ack). Idempotent like a real ERP: the answer's
    id and number derive from the order id, so a repeated request gets the same answer."""

    def __init__(self, broker_url: str, queue: str, exchange: str, answer_id: Any) -> None:
        self.broker_url = broker_url
        self.queue = queue
        self.answer_id = answer_id
        self.publisher = StubbornPublisher(broker_url, exchange, name="chaos-erp-answers")
        self.seen: list[tuple[str, str, dict[str, Any]]] = []  # (message id, type, data)
        self.reconnects = 0

    async def _answer(self, msg: Any) -> None:
        event = orjson.loads(msg.body)
        self.seen.append((msg.message_id or event["id"], event["type"], event["data"]))
        if event["type"] == "salesorder.create":
            data = event["data"]
            answer_id = self.answer_id(data["order_id"])
            reply = {
                "specversion": "1.0",
                "id": answer_id,
                "source": "erp",
                "type": "salesorder.created",
                "time": datetime.now(UTC).isoformat(),
                "data": {
                    "order_id": data["order_id"],
                    "erp_order_number": f"SO-{data['channel_order_id']}",
                },
            }
            await self.publisher.publish("erp.salesorder.created", orjson.dumps(reply), answer_id)
        await msg.ack()

    async def run(self) -> None:
        """Consume until cancelled; any failure (broker restart, no confirm) means reconnect."""
        while True:
            try:
                conn = await aio_pika.connect(
                    with_heartbeat(self.broker_url),
                    timeout=3,
                    client_properties={"connection_name": "chaos-erp"},
                )
                try:
                    ch = await conn.channel()
                    await ch.set_qos(prefetch_count=100)
                    q = await ch.declare_queue(self.queue, passive=True, timeout=5)
                    inbox: asyncio.Queue[Any] = asyncio.Queue()
                    await q.consume(inbox.put, timeout=5)
                    while not ch.is_closed:  # a broker restart closes it: connect again
                        try:
                            msg = await asyncio.wait_for(inbox.get(), timeout=0.5)
                        except TimeoutError:
                            continue
                        await asyncio.wait_for(self._answer(msg), timeout=30)
                finally:
                    with contextlib.suppress(Exception):
                        await conn.close()
            except asyncio.CancelledError:
                raise
            except Exception:
                pass
            self.reconnects += 1
            await asyncio.sleep(0.5)

    async def close(self) -> None:
        await self.publisher.close()


async def queue_depths(broker_url: str, queues: list[str]) -> dict[str, int]:
    """Ready messages per queue (passive declare)."""
    conn = await aio_pika.connect(broker_url, timeout=3)
    try:
        ch = await conn.channel()
        depths = {}
        for q in queues:
            declared = await ch.declare_queue(q, passive=True)
            depths[q] = declared.declaration_result.message_count or 0
        return depths
    finally:
        await conn.close()


async def drain(broker_url: str, queue: str, idle_s: float = 2.0) -> list[Any]:
    """Every message left in a queue as (message id, type, data); the queue ends empty."""
    conn = await aio_pika.connect(broker_url)
    got: list[Any] = []
    try:
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=2000)
        q = await ch.declare_queue(queue, passive=True)
        async with q.iterator(timeout=idle_s) as it:
            try:
                async for msg in it:
                    try:
                        event = orjson.loads(msg.body)
                        item = (msg.message_id or event.get("id"), event["type"], event["data"])
                    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
                        item = (msg.message_id, "?", {"raw": msg.body[:200]})
                    got.append(item)
                    await msg.ack()
            except TimeoutError:
                pass
    finally:
        await conn.close()
    return got
