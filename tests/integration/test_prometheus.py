"""A real Prometheus scrapes the hub's /metrics; the shipped alert rules are valid PromQL."""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
import yaml

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_shipped_alert_rules_are_valid() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool not installed: run scripts/setup.sh as root"
    result = subprocess.run(
        [promtool, "check", "rules", str(ROOT / "deploy/alerts.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


_SERIES_SUFFIX = re.compile(r"_(total|bucket|sum|count|created)$")


def _metrics_named_in(texts: list[str]) -> set[str]:
    return {_SERIES_SUFFIX.sub("", name) for t in texts for name in re.findall(r"\bhub_\w+", t)}


async def test_every_metric_the_alerts_and_dashboard_name_is_exported(start_hub) -> None:
    hub = await start_hub()
    exported = {family.name for family in hub.metrics.registry.collect()}
    rules = yaml.safe_load((ROOT / "deploy/alerts.yml").read_text())
    alerts = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    dashboard = orjson.loads((ROOT / "deploy/grafana/dashboards/commerce-hub.json").read_bytes())
    panels = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    named = _metrics_named_in(alerts + panels)
    assert {"hub_orders", "hub_order_timeouts", "hub_parked_waiting"} <= named
    assert named <= exported, f"not exported by the hub: {sorted(named - exported)}"


async def test_prometheus_scrapes_hub_counters(start_hub, bus, tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    assert binary, "prometheus not installed: run scripts/setup.sh as root"
    hub_port, prom_port = free_port(), free_port()
    hub = await start_hub(http_port=hub_port)
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: hub\n    static_configs: [{{targets: ['127.0.0.1:{hub_port}']}}]\n"
    )
    prom = await asyncio.create_subprocess_exec(
        binary,
        f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{prom_port}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for i in range(3):
            await bus.publish(
                "erp.product.upserted",
                {
                    "specversion": "1.0",
                    "id": str(uuid.uuid4()),
                    "source": "erp",
                    "type": "product.upserted",
                    "time": datetime.now(UTC).isoformat(),
                    "data": {"sku": f"PROM-{i}", "name": "Scraped", "version": 1},
                },
            )
        await bus.publish("erp.product.upserted", b"not json at all")
        query = f"http://127.0.0.1:{prom_port}/api/v1/query"
        received = parked = None
        async with httpx.AsyncClient(timeout=2) as client:
            for _ in range(60):
                await asyncio.sleep(0.5)
                try:
                    r1 = await client.get(
                        query,
                        params={
                            "query": 'sum(hub_messages_received_total{type="product.upserted"})'
                        },
                    )
                    r2 = await client.get(
                        query,
                        params={"query": 'sum(hub_messages_parked_total{error_type="malformed"})'},
                    )
                except httpx.TransportError:
                    continue
                res1, res2 = r1.json()["data"]["result"], r2.json()["data"]["result"]
                if res1 and res2:
                    received, parked = float(res1[0]["value"][1]), float(res2[0]["value"][1])
                    if received == 3 and parked == 1:
                        break
        assert (received, parked) == (3.0, 1.0)
        assert hub.metrics.received.labels("erp", "product.upserted")._value.get() == 3
    finally:
        prom.terminate()
        await asyncio.wait_for(prom.wait(), timeout=10)
