"""The fate of each message taken from hub.in: validate, commit, then ack, park or retry."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from aio_pika.abc import AbstractIncomingMessage

from hub.acks import AckCoalescer
from hub.committer import BatchCommitter, Outcome
from hub.errors import HubError, PermanentError, TransientError
from hub.faults import FaultHandler
from hub.handlers import Handler
from hub.intake import Validator
from hub.metrics import Metrics, labelled
from hub.router import Router

log = logging.getLogger(__name__)


class InboundConsumer:
    """Never raises on input: every message ends acked after its effect, parked, or retried."""

    def __init__(
        self,
        validator: Validator,
        router: Router,
        handlers: Mapping[str, Handler],
        committer: BatchCommitter,
        faults: FaultHandler,
        metrics: Metrics,
        queue_name: str,
    ) -> None:
        self._validator = validator
        self._router = router
        self._handlers = handlers
        self._committer = committer
        self._faults = faults
        self._metrics = metrics
        self._queue = queue_name
        self._acks = AckCoalescer()

    async def __call__(self, raw: AbstractIncomingMessage) -> None:
        """Called once per delivery, concurrently up to the prefetch."""
        self._acks.received(raw)
        started = time.perf_counter()
        kind = "invalid"
        try:
            inbound = self._validator.validate(raw.body, raw.routing_key or "", raw.reply_to)
            kind = inbound.event.type
            labelled(self._metrics.received, inbound.event.source, kind).inc()
            handler = self._handlers.get(kind)
            if handler is not None:
                outcome = await self._committer.submit(inbound, handler)
            else:
                outcome = await self._committer.submit_pure(
                    inbound, self._router.envelopes(inbound)
                )
        except HubError as exc:
            outcome = Outcome("failed", exc)
        await self._settle(raw, outcome)
        labelled(self._metrics.handle_seconds, kind).observe(time.perf_counter() - started)

    async def _settle(self, raw: AbstractIncomingMessage, outcome: Outcome) -> None:
        try:
            if outcome.kind == "duplicate":
                self._metrics.duplicates.labels(self._queue).inc()
            elif isinstance(outcome.error, PermanentError):
                log.info("parked %s: %s", raw.message_id, outcome.error.error_type)
                await self._faults.park(raw, outcome.error, self._queue)
            elif isinstance(outcome.error, TransientError):
                fate = await self._faults.retry_or_park(raw, outcome.error, self._queue)
                log.warning(
                    "message %s failed transiently (%s): %s", raw.message_id, outcome.error, fate
                )
            elif outcome.error is not None:  # pragma: no cover - every HubError is one of those
                await self._faults.park(raw, outcome.error, self._queue)
        except HubError as exc:
            # Parking or retrying did not get a confirm: hand the message back to the broker.
            log.error("could not park or retry %s (%s); requeueing", raw.message_id, exc)
            await raw.nack(requeue=True)  # before it counts as settled: no ack may cover it
            self._acks.settled_elsewhere(raw)
            return
        await self._acks.ack(raw)
