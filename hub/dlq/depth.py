"""How many parked messages wait for an operator: the DLQ depth the shipped alert watches.

``hub_messages_parked_total`` says that messages were parked; once its increase leaves the
alert window, nothing says they are still there. The gauge counts what waits, in hub.dead
(not yet swept into the store) and in the store (not yet replayed or purged).
"""

from __future__ import annotations

import logging

import asyncpg
from prometheus_client import Gauge

from hub.background import Poller
from hub.bus import Publisher

log = logging.getLogger(__name__)


class ParkedDepth(Poller):
    """Sets the parked-messages gauge every ``interval_s``."""

    task_name = "parked-depth"

    def __init__(
        self,
        pool: asyncpg.Pool,
        publisher: Publisher,
        dead_queue: str,
        gauge: Gauge,
        interval_s: float,
    ) -> None:
        super().__init__(interval_s)
        self._pool = pool
        self._publisher = publisher
        self._dead_queue = dead_queue
        self._gauge = gauge

    async def measure(self) -> int | None:
        """Count what waits and set the gauge; None (gauge unchanged) when the broker is away."""
        in_queue = await self._publisher.queue_depth(self._dead_queue)
        if in_queue is None:
            return None
        stored = await self._pool.fetchval("SELECT count(*) FROM parked WHERE status = 'parked'")
        waiting = in_queue + int(stored)
        self._gauge.set(waiting)
        return waiting

    async def tick(self) -> None:
        """One count; a failure is logged and the next tick tries again."""
        try:
            await self.measure()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("counting parked messages failed: %s; will retry", exc)
