"""How hard the HTTP delivery worker tries, and how much it holds at once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeliveryPolicy:
    """Attempts, back-off and limits, sized so a held message never outlives the broker's patience.

    A message being retried stays unacked; RabbitMQ closes a channel whose delivery is unacked
    for ``consumer_timeout`` (30 min by default). With these defaults a message is held at
    most (8 - 1) x 120 s of waiting + 8 x 10 s of requests, about 15 minutes, then parked.
    """

    max_attempts: int = 8
    first_delay_s: float = 1.0
    max_delay_s: float = 120.0  # caps the back-off and any Retry-After
    jitter: float = 0.2  # back-off grows by up to this fraction, never shrinks
    timeout_s: float = 10.0
    prefetch: int = 256  # messages taken off the queue: the window coalescing can see
    max_in_flight: int = 16  # requests (and held retries) per channel
    stop_grace_s: float = 10.0
    lease_interval_s: float = 2.0  # how often a standby hub asks for a channel, a holder checks

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.first_delay_s <= 0 or self.max_in_flight < 1:
            raise ValueError("max_attempts, first_delay_s and max_in_flight must be positive")

    def delay(self, attempt: int, retry_after: float | None = None, spread: float = 0.0) -> float:
        """Seconds before attempt ``attempt + 1``: doubling from ``first_delay_s``, at least the
        server's Retry-After, at most ``max_delay_s``; ``spread`` in [0, 1) adds the jitter."""
        backoff = self.first_delay_s * 2.0 ** min(attempt - 1, 30) * (1 + self.jitter * spread)
        return min(self.max_delay_s, max(backoff, retry_after or 0.0))
