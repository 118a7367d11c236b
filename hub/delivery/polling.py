"""Asking a channel's API for what it has no webhook for (bol.com's new orders, cancellation
requests and returns) and handing each to the hub as the channel's native event.

The delivery worker that holds the channel's lease polls, so one hub of a deployment asks,
at the channel's ``poll_s`` interval. Each find has an id derived from what it is (the order,
the items whose cancellation was asked, the return), so asking again after a restart, or
another hub taking the lease over, brings the same events, which the hub's inbox takes once;
the order itself is also taken once per channel order id. Finds are handed over one by one
as they are read, and each is marked as handed over only once the broker has confirmed it,
so nothing found is lost to a failed publish or a later failing call: the next poll finds
it again. A poll the API refuses or cannot answer is logged and counted, and the next one
waits at least its Retry-After.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import httpx

from hub.errors import HubError
from hub.metrics import Metrics
from schemas.envelope import CloudEvent, derived_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Found:
    """One thing a poll found: the adapter's native event name, what identifies it, its data."""

    event: str
    key: str
    data: dict[str, Any] = field(hash=False)


class PollFailed(Exception):
    """The API did not answer a poll usefully; ``retry_after_s`` when it said how long to wait."""

    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


@runtime_checkable
class Polls(Protocol):
    """A caller that also polls its system for events the system pushes to no webhook."""

    poll_s: float
    """Seconds between polls; 0 does not poll."""

    def poll(self, client: httpx.AsyncClient) -> AsyncGenerator[Found, None]:
        """What is new since the finds marked handed over, as it is read; raises PollFailed."""
        ...

    def handed_over(self, found: Found) -> None:
        """The hub has it: a later poll does not bring it again."""
        ...


def event_for(channel: str, adapter: str, found: Found, now: datetime) -> CloudEvent:
    """The channel's native event for a find, with an id that is the same on every poll."""
    return CloudEvent(
        id=derived_id("poll", channel, found.event, found.key),
        source=channel,
        type=f"native.{adapter}.{found.event}",
        time=now,
        data=found.data,
    )


@dataclass
class ChannelPoll:
    """One channel's polling: what it asks, with what, and where its finds go."""

    channel: str
    adapter: str
    caller: Polls
    client: httpx.AsyncClient
    publish: Callable[[CloudEvent], Awaitable[None]]
    metrics: Metrics

    async def once(self) -> float | None:
        """One poll, each find handed to the hub as it is read; how long the API asked to
        wait, if it refused."""
        channel, count = self.channel, self.metrics
        try:
            async with contextlib.aclosing(self.caller.poll(self.client)) as finds:
                async for each in finds:
                    try:
                        await self.publish(
                            event_for(channel, self.adapter, each, datetime.now(UTC))
                        )
                    except HubError as exc:  # not confirmed: the next poll finds it again
                        count.polls.labels(channel, "failed").inc()
                        log.warning(
                            "%s: %s %s not handed over: %s", channel, each.event, each.key, exc
                        )
                        return None
                    self.caller.handed_over(each)
                    count.polled.labels(channel, each.event).inc()
        except (PollFailed, httpx.HTTPError) as exc:
            count.polls.labels(channel, "failed").inc()
            log.warning("%s: poll failed: %s", channel, exc)
            return exc.retry_after_s if isinstance(exc, PollFailed) else None
        count.polls.labels(channel, "ok").inc()
        return None

    async def forever(self) -> None:
        """Poll at the caller's interval until cancelled (the worker stops)."""
        while True:
            wait: float | None = None
            try:
                wait = await self.once()
            except Exception:  # a bug must not end polling for good: try again next interval
                self.metrics.polls.labels(self.channel, "failed").inc()
                log.exception("%s: poll failed unexpectedly", self.channel)
            await asyncio.sleep(max(self.caller.poll_s, wait or 0.0))
