"""The hub's event loop: uvloop by default where installed, asyncio's when asked for."""

from __future__ import annotations

import asyncio

import pytest

from hub import eventloop
from hub.settings import Settings


def _loop_module_under(event_loop: str) -> str:
    seen: list[str] = []

    async def main() -> None:
        seen.append(type(asyncio.get_running_loop()).__module__)

    eventloop.run(main(), event_loop)
    return seen[0]


def test_the_hub_runs_on_uvloop_by_default() -> None:
    assert Settings().event_loop == "uvloop"
    assert _loop_module_under("uvloop").startswith("uvloop")


def test_asyncio_when_asked_for() -> None:
    assert _loop_module_under("asyncio").startswith("asyncio")


def test_an_unknown_loop_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_EVENT_LOOP", "trio")
    with pytest.raises(ValueError, match="event_loop"):
        Settings()
