"""Keeping the inbox to a retention window, so deduplication does not grow the database for ever.

Every message the hub handles leaves a row (consumer, message id) that turns away its copies:
broker redeliveries come within seconds, an adapter's retries (a webhook sent again, a feed
polled twice) within hours or a couple of days. Past the retention window a row has nothing
left to turn away, yet at a thousand messages a second the table would gain 86 million rows a
day. The pruner deletes rows older than the window in bounded chunks (short transactions, no
long lock on a busy table); several hub processes may prune side by side.

A channel's cancellation kept for an order that has not arrived goes at the same age: an order
that late would find its duplicates unremembered too. Each is logged (channel and order
number only): a cancelled order the hub never saw may be one a channel failed to send.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from prometheus_client import Counter

from hub.background import Background

log = logging.getLogger(__name__)

# One chunk: the oldest rows past the window, skipping rows another pruner holds. The
# received_at index makes it a range scan however large the table is.
_PRUNE = """
DELETE FROM inbox WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM inbox WHERE received_at < now() - make_interval(secs => $1)
    ORDER BY received_at LIMIT $2 FOR UPDATE SKIP LOCKED))
"""

# Kept cancellations whose order never came, as old as the inbox window (a handful at most).
_AGE_OUT_CANCELLATIONS = """
DELETE FROM early_cancellations WHERE at < now() - make_interval(secs => $1)
RETURNING channel, channel_order_id
"""


class InboxPruner(Background):
    """Deletes inbox rows older than the retention window, now and then, in chunks.

    Its first pass comes at start: a hub that was down may have a backlog.
    """

    task_name = "inbox-pruner"

    def __init__(
        self,
        pool: asyncpg.Pool,
        retention_s: float,
        interval_s: float,
        pruned: Counter | None = None,
        chunk: int = 10_000,
        pause_s: float = 0.05,
    ) -> None:
        super().__init__()
        self._pool = pool
        self._retention_s = retention_s
        self._interval_s = interval_s
        self._pruned = pruned
        self._chunk = chunk
        self._pause_s = pause_s

    async def prune_once(self) -> int:
        """Delete every row past the window, a chunk per transaction, and the kept
        cancellations as old; returns how many inbox rows went."""
        total = 0
        while True:
            status = await self._pool.execute(_PRUNE, self._retention_s, self._chunk)
            deleted = int(status.rsplit(" ", 1)[1])
            total += deleted
            if self._pruned is not None:
                self._pruned.inc(deleted)
            if deleted < self._chunk:
                break
            await asyncio.sleep(self._pause_s)  # a large backlog must not crowd out live work
        for row in await self._pool.fetch(_AGE_OUT_CANCELLATIONS, self._retention_s):
            log.warning(
                "cancellation of %s order %s kept since before the retention window: its order"
                " never arrived; dropped",
                row["channel"],
                row["channel_order_id"],
            )
        return total

    async def _run(self) -> None:
        while True:
            try:
                deleted = await self.prune_once()
                if deleted:
                    log.info("inbox: deleted %d entries past the retention window", deleted)
            except Exception as exc:  # pruning must outlive any one failure
                log.warning("inbox pruning failed: %s; will retry", exc)
            await asyncio.sleep(self._interval_s)
