"""The fate of each message taken from hub.in: validate, commit, then ack, park or retry.

Everything up to the commit is synchronous, and so is what follows a commit that went well:
a delivery costs no task, future or message wrapper of its own (at thousands a second those
were a third of the hub's CPU, bench/findings.md). Only a failure, rare by design, takes a
task: parking or retrying publishes and waits for the broker's confirm before the ack.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping

from aio_pika import IncomingMessage
from aiormq.abc import DeliveredMessage

from hub.acks import AckCoalescer
from hub.committer import BatchCommitter, Outcome
from hub.errors import HubError, PermanentError, TransientError, Unroutable, one_line
from hub.faults import FaultHandler
from hub.handlers import FORWARDS, Handler
from hub.intake import NothingForTheHub, Validator
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
        self._failing: set[asyncio.Task[None]] = set()

    def __call__(self, raw: DeliveredMessage) -> None:
        """Called once per delivery, in the order they arrive; the outcome comes later."""
        self._acks.received(raw)
        started = time.perf_counter()
        try:
            inbound = self._validator.validate(
                raw.body, raw.routing_key or "", raw.header.properties.reply_to
            )
        except HubError as exc:
            self._settle(raw, "invalid", started, Outcome("failed", exc))
            return
        except NothingForTheHub as nothing:
            labelled(self._metrics.native_ignored, nothing.source, nothing.native_type).inc()
            self._settle(raw, nothing.native_type, started, Outcome("done"))
            return
        except Exception as exc:  # a bug in a translator, say: retried, then parked, not lost
            log.exception("validating %s failed unexpectedly", raw.header.properties.message_id)
            self._settle(raw, "invalid", started, Outcome("failed", TransientError(one_line(exc))))
            return
        kind = inbound.event.type
        try:
            labelled(self._metrics.received, inbound.event.source, kind).inc()
            handler = self._handlers.get(kind)
            if handler is not None and not self._may_hand(handler, inbound.event.source, kind):
                raise Unroutable(  # a channel may only drive the steps its routes give it
                    f"no route takes {kind!r} from {inbound.event.source!r}"
                    + ("" if getattr(handler, FORWARDS, False) else " to the hub")
                )
            if handler is None and self._router.hands_to_hub(inbound.event.source, kind):
                raise Unroutable(  # acking it would drop it: the route's hub leg goes nowhere
                    f"a route hands {kind!r} from {inbound.event.source!r} to the hub,"
                    " which has no handler for it"
                )
            envelopes = () if handler is not None else self._router.envelopes(inbound)
        except HubError as exc:
            self._settle(raw, kind, started, Outcome("failed", exc))
            return
        except Exception as exc:  # never left unsettled: it would hold the ack frontier
            log.exception("routing %s failed unexpectedly", inbound.event.id)
            self._settle(raw, kind, started, Outcome("failed", TransientError(one_line(exc))))
            return
        self._committer.enqueue(
            inbound,
            handler,
            envelopes,
            lambda outcome: self._settle(raw, kind, started, outcome),
        )

    def _may_hand(self, handler: Handler, source: str, kind: str) -> bool:
        """A route from the sender must take the message: to the hub for the hub's own steps
        (a catch-all route to channels must not let a shop answer for the ERP), to anywhere
        for what the hub keeps and passes on (products, prices)."""
        if getattr(handler, FORWARDS, False):
            return self._router.takes(source, kind)
        return self._router.hands_to_hub(source, kind)

    async def drained(self) -> None:
        """Wait until every delivery taken so far is acked, parked or handed back."""
        while self._failing:
            await asyncio.gather(*self._failing, return_exceptions=True)
        await self._acks.drained()

    def _settle(self, raw: DeliveredMessage, kind: str, started: float, outcome: Outcome) -> None:
        if outcome.kind == "duplicate":
            self._metrics.duplicates.labels(self._queue).inc()
        if outcome.error is None:
            self._acks.settle(raw)
        else:
            task = asyncio.ensure_future(self._fail(raw, outcome.error))
            self._failing.add(task)
            task.add_done_callback(self._failing.discard)
        labelled(self._metrics.handle_seconds, kind).observe(time.perf_counter() - started)

    async def _fail(self, delivery: DeliveredMessage, error: HubError) -> None:
        raw = IncomingMessage(delivery)  # the message API parking and retrying use
        try:
            if isinstance(error, PermanentError):
                log.info("parked %s: %s", raw.message_id, error.error_type)
                await self._faults.park(raw, error, self._queue)
            elif isinstance(error, TransientError):
                fate = await self._faults.retry_or_park(raw, error, self._queue)
                log.warning("message %s failed transiently (%s): %s", raw.message_id, error, fate)
            else:  # pragma: no cover - every HubError is one of those
                await self._faults.park(raw, error, self._queue)
        except HubError as exc:
            # Parking or retrying did not get a confirm: hand the message back to the broker.
            log.error("could not park or retry %s (%s); requeueing", raw.message_id, exc)
            try:
                await raw.nack(requeue=True)  # before it counts as settled: no ack may cover it
            except Exception as nack_error:
                # Unless the channel closes, a later multiple-ack would cover (and lose) it:
                # closing it hands back every unacked delivery; the inbox absorbs repeats.
                log.warning("could not requeue %s: %s", raw.message_id, nack_error)
                with contextlib.suppress(Exception):
                    await delivery.channel.close()
            self._acks.settle(delivery, ack=False)
            return
        self._acks.settle(delivery)
