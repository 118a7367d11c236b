"""A token bucket per channel: the rate its API accepts, shared by all of its deliveries."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

_EPSILON = 1e-9  # float refills land a hair below a whole token


class TokenBucket:
    """At most ``burst`` requests at once, ``rate`` per second sustained; ``pause`` stops all.

    Waiters are served first come, first served (the lock is held while waiting), so a retry
    and a first attempt queue fairly behind each other.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1 (got {rate}, {burst})")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._last = clock()
        self._resume_at = self._last
        self._lock = asyncio.Lock()

    def pause(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (Retry-After), then restart at the sustained rate.

        No burst after a pause: the API has just said we were too fast. A shorter pause than
        one already running changes nothing.
        """
        resume_at = self._clock() + max(0.0, seconds)
        if resume_at > self._resume_at:
            self._resume_at = resume_at
            self._tokens = 0.0
            self._last = resume_at

    @property
    def paused_for(self) -> float:
        """Seconds left of the current pause (0 when not paused)."""
        return max(0.0, self._resume_at - self._clock())

    async def acquire(self) -> None:
        """Wait for a token and take it; waits out any pause first."""
        async with self._lock:
            while True:
                now = self._clock()
                if now < self._resume_at:
                    await self._sleep(self._resume_at - now)
                    continue
                if now > self._last:
                    self._tokens = min(
                        float(self.burst), self._tokens + (now - self._last) * self.rate
                    )
                    self._last = now
                if self._tokens >= 1 - _EPSILON:
                    self._tokens = max(0.0, self._tokens - 1)
                    return
                await self._sleep((1 - self._tokens) / self.rate)
