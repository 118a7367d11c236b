"""Which event loop runs the hub: uvloop where installed (lower latency at load), else asyncio."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


def run(main: Coroutine[Any, Any, None], event_loop: str) -> None:
    """Run ``main`` on uvloop when asked for and installed, else on asyncio's loop."""
    if event_loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            log.info("uvloop is not installed; running on asyncio")
        else:
            uvloop.run(main)
            return
    asyncio.run(main)
