"""The benchmark's smoke mode: through the raw relay and the hub every message arrives once."""

from __future__ import annotations

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
