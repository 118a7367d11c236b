"""What waits in each channel's queue and whether anything takes it: the sync lag nobody sees.

``hub_stock_propagation_seconds`` ends where the hub hands a figure to ``hub.out.<channel>``.
An adapter that stopped consuming leaves every later figure and order answer in its queue,
and nothing else would say so: these gauges (messages and consumers per channel queue, read
with a passive declare) are what the shipped ``ChannelNotConsumed`` and ``ChannelBacklog``
alerts watch.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from prometheus_client import Gauge

from hub.background import Poller
from hub.bus import Publisher

log = logging.getLogger(__name__)


class ChannelQueues(Poller):
    """Sets the per-channel queue gauges every ``interval_s``."""

    task_name = "channel-queues"

    def __init__(
        self,
        publisher: Publisher,
        queues: Mapping[str, str],
        messages: Gauge,
        consumers: Gauge,
        interval_s: float,
    ) -> None:
        super().__init__(interval_s)
        self._publisher = publisher
        self._queues = queues
        self._messages = messages
        self._consumers = consumers

    async def measure(self) -> dict[str, tuple[int, int]]:
        """Read every channel queue and set its gauges; a queue the broker does not answer
        for keeps its last figures."""
        seen: dict[str, tuple[int, int]] = {}
        for channel, queue in self._queues.items():
            state = await self._publisher.queue_state(queue)
            if state is None:
                continue
            seen[channel] = state
            self._messages.labels(channel).set(state[0])
            self._consumers.labels(channel).set(state[1])
        return seen

    async def tick(self) -> None:
        """One reading; a failure is logged and the next tick tries again."""
        try:
            await self.measure()
        except Exception as exc:  # the gauges must go on: a frozen one hides a dead adapter
            log.warning("reading the channel queues failed: %s; will retry", exc)
