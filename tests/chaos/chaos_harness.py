"""Chaos test machinery: a real ``hub run`` process, service restarts, a stubborn publisher."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aio_pika
import httpx

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
        self.duplicates_seen: list[float] = []  # last duplicates counter of each lifetime

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(HUB_BIN), "run"], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        self.duplicates_seen.append(0.0)

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
                m = await client.get(f"http://127.0.0.1:{self.port}/metrics")
        except httpx.HTTPError:
            return False
        found = re.findall(r"^hub_duplicates_dropped_total\{[^}]*\} ([0-9.e+]+)$", m.text, re.M)
        if found:
            self.duplicates_seen[-1] = max(self.duplicates_seen[-1], sum(map(float, found)))
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


class StubbornPublisher:
    """Publishes as an adapter would: confirmed, retried until the broker takes it."""

    def __init__(self, broker_url: str, exchange: str) -> None:
        self.broker_url = broker_url
        self.exchange_name = exchange
        self.connection: Any = None
        self.exchange: Any = None
        self.retries = 0

    async def _connect(self) -> None:
        self.connection = await aio_pika.connect_robust(self.broker_url, reconnect_interval=0.5)
        channel = await self.connection.channel(publisher_confirms=True)
        self.exchange = await channel.get_exchange(self.exchange_name, ensure=False)

    async def publish(self, routing_key: str, body: bytes, message_id: str) -> None:
        while True:
            try:
                if self.exchange is None:
                    await self._connect()
                msg = aio_pika.Message(body, message_id=message_id, delivery_mode=2)
                await self.exchange.publish(msg, routing_key=routing_key, timeout=5)
                return
            except Exception:
                self.retries += 1
                await asyncio.sleep(0.3)
                if self.connection is not None and self.connection.is_closed:
                    self.exchange = None

    async def close(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(Exception):
                await self.connection.close()


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
