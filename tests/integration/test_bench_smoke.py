"""The benchmark's smoke mode: through the raw relay and the hub every message arrives once."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest

# bench/ is a tool at the repository root, not an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.run import smoke

pytestmark = pytest.mark.integration


@pytest.mark.timeout(60)
async def test_bench_smoke_every_message_arrives() -> None:
    counts = await smoke(count=150, fanout=3)
    relay_out, relay_expected = counts["relay"]
    hub_out, hub_expected = counts["hub"]
    latency_out, latency_sent = counts["latency"]
    assert relay_expected == hub_expected == 450
    assert relay_out == relay_expected
    assert hub_out == hub_expected
    assert latency_out == latency_sent > 0


@pytest.mark.timeout(90)
async def test_the_broker_wal_rolls_over_before_a_latency_window() -> None:
    """The benchmark starts each latency run with an empty quorum WAL (``bench.wal``): the
    broker's own files say the WAL changed and the one written before is flushed and gone."""
    from bench.wal import roll_over

    def wal_files() -> list[str]:
        out = subprocess.run(
            [
                "rabbitmqctl",
                "-q",
                "eval",
                "{ok, Fs} = file:list_dir(maps:get(wal_data_dir,"
                " ra_system:fetch(quorum_queues))),"
                ' lists:sort([F || F <- Fs, filename:extension(F) == ".wal"]).',
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return re.findall(r'"(\d+\.wal)"', out.stdout)

    before = await asyncio.to_thread(wal_files)
    assert before
    assert await asyncio.to_thread(roll_over) is None
    after = await asyncio.to_thread(wal_files)
    assert after and not set(after) & set(before)


@pytest.mark.timeout(90)
async def test_stock_latency_times_every_channel_of_the_fan_out() -> None:
    """Issue 3's benchmark: each stock change is timed on all five channel queues, by one raw
    receiver per queue, and the figures it reports are the ones it measured."""
    from bench.stock_latency import run

    # 300 SKUs: none changes twice in the 3 s sent, so every change is its own availability
    result = await run(rate=100, seconds=1.0, skus=300)
    assert result["stock_levels_measured"] == 100
    assert result["availability_received"] == result["availability_expected"] == 500
    per_channel = result["per_channel_p99_ms"]
    assert isinstance(per_channel, dict)
    assert all(isinstance(v, float) and v > 0 for v in per_channel.values())
