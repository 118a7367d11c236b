"""Parking and delayed retry: where a message goes when it cannot be handled now."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from hub.bus import Envelope, Publisher
from hub.errors import HubError, one_line
from hub.metrics import Metrics
from hub.topology import RETRY_DELAYS_S, Names

ATTEMPTS = "x-hub-attempts"


def _header_str(headers: Mapping[str, Any], key: str) -> str | None:
    value = headers.get(key)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value) if value is not None else None


def attempts_so_far(raw: AbstractIncomingMessage) -> int:
    """How many times the hub has already failed this message (0 on first arrival)."""
    value = (raw.headers or {}).get(ATTEMPTS, 0)
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else 0


def failure_headers(
    error: HubError,
    failed_queue: str,
    attempts: int,
    *,
    first_failed_at: str,
    last_failed_at: str,
    exchange: str,
    routing_key: str,
) -> dict[str, Any]:
    """The headers an operator (and ``hub dlq replay``) needs to understand and resend a
    message the hub failed: why, where, how often, and where it was first addressed."""
    return {
        "x-hub-error": one_line(error),
        "x-hub-error-type": error.error_type,
        "x-hub-failed-queue": failed_queue,
        ATTEMPTS: attempts,
        "x-hub-first-failed-at": first_failed_at,
        "x-hub-last-failed-at": last_failed_at,
        "x-hub-original-exchange": exchange,
        "x-hub-original-routing-key": routing_key,
    }


def _envelope(
    raw: AbstractIncomingMessage, exchange: str, routing_key: str, headers: dict[str, Any]
) -> Envelope:
    return Envelope(
        message_id=raw.message_id or "",
        exchange=exchange,
        routing_key=routing_key,
        message_type=raw.type or "",
        source=raw.app_id or "",
        body=raw.body,
        correlation_id=raw.correlation_id,
        reply_to=raw.reply_to,
        headers=headers,
    )


class FaultHandler:
    """Parks permanent failures with the bus contract's fault headers; retries transient ones."""

    def __init__(
        self,
        publisher: Publisher,
        names: Names,
        metrics: Metrics,
        max_attempts: int = len(RETRY_DELAYS_S) + 1,
    ) -> None:
        self._publisher = publisher
        self._names = names
        self._metrics = metrics
        self.max_attempts = max_attempts

    def fault_headers(
        self, raw: AbstractIncomingMessage, error: HubError, failed_queue: str, attempts: int
    ) -> dict[str, Any]:
        """The headers an operator (and ``hub dlq replay``) needs to understand and resend."""
        headers = dict(raw.headers or {})
        now = datetime.now(UTC).isoformat()
        headers.update(
            failure_headers(
                error,
                failed_queue,
                attempts,
                first_failed_at=_header_str(headers, "x-hub-first-failed-at") or now,
                last_failed_at=now,
                exchange=_header_str(headers, "x-hub-original-exchange") or raw.exchange or "",
                routing_key=_header_str(headers, "x-hub-original-routing-key")
                or raw.routing_key
                or "",
            )
        )
        return headers

    async def park(self, raw: AbstractIncomingMessage, error: HubError, failed_queue: str) -> None:
        """Send to hub.dead with the reason; raises if the broker does not confirm."""
        headers = self.fault_headers(raw, error, failed_queue, attempts_so_far(raw) + 1)
        routing_key = str(headers["x-hub-original-routing-key"]) or "unknown"
        await self._publisher.publish(
            _envelope(raw, self._names.dead_exchange, routing_key, headers)
        )
        self._metrics.parked.labels(error.error_type).inc()

    async def retry_or_park(
        self, raw: AbstractIncomingMessage, error: HubError, failed_queue: str
    ) -> str:
        """Delay the message by the next back-off step, or park it once attempts run out."""
        attempts = attempts_so_far(raw) + 1
        if attempts >= self.max_attempts:
            await self.park(raw, error, failed_queue)
            return "parked"
        delay = RETRY_DELAYS_S[min(attempts - 1, len(RETRY_DELAYS_S) - 1)]
        headers = self.fault_headers(raw, error, failed_queue, attempts)
        # Back to where it came from, with its routing key: the delay queue dead-letters to hub.in.
        routing_key = str(headers["x-hub-original-routing-key"])
        await self._publisher.publish(
            _envelope(raw, self._names.retry_queue(delay), routing_key, headers)
        )
        self._metrics.retried.labels(error.error_type).inc()
        return f"retry in {delay}s"
