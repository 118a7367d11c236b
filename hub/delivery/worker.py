"""One channel's HTTP delivery: consume ``hub.out.<channel>``, POST each message, then settle it.

2xx acks, and so does a message the channel's adapter needs no call for (``not_needed``).
4xx (but 408/409/429) parks at once with the status and the start of the body.
429, 5xx, 408/409 and no answer are retried with exponential back-off, waiting at least the
Retry-After, which also pauses the whole channel (its token bucket), except after a 409 (a
conflict of that one resource); after the last attempt the message is parked. Every outcome
is counted per channel.

Why retries are held here rather than sent through delay queues: ``hub.retry.<N>s`` feed
``hub.in``, not the channel queues, and a per-channel delay route would let a retried stock
figure arrive after a newer one and put sold stock back on sale. Held in the worker, a
message keeps its SKU's turn: nothing newer for that SKU goes before it, and when a newer
figure arrives meanwhile (with ``coalesce_stock``; a product or price version always) the
wait ends and the held one is dropped instead of retried. The cost is an unacked
message per held retry: a crash hands it back to the broker (sent again, with the same
Idempotency-Key), ``max_in_flight`` bounds how many are held, and ``DeliveryPolicy`` bounds
how long, well inside RabbitMQ's consumer timeout. Nack-and-requeue is never used to retry:
it would hot-loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiormq
import httpx
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from adapters.base import OutboundTranslator
from hub.background import cancel_and_wait
from hub.delivery.bucket import TokenBucket
from hub.delivery.calls import Caller, PostToUrl
from hub.delivery.coalesce import Backlog, Item, turn_key
from hub.delivery.policy import DeliveryPolicy
from hub.delivery.polling import ChannelPoll, Polls
from hub.delivery.wire import (
    DeliveryFailed,
    DeliveryRefused,
    Request,
    Verdict,
    build_request,
    judge,
    judge_error,
)
from hub.errors import HubError, PermanentError
from hub.faults import ATTEMPTS, FaultHandler, attempts_so_far
from hub.intake import decode_event
from hub.metrics import Metrics
from schemas.envelope import CloudEvent, derived_id

log = logging.getLogger(__name__)
SUPERSEDED_POLL_S = 0.25  # how often a waiting retry looks for a newer version of its SKU

_AMQP_ERRORS = (aiormq.exceptions.AMQPError, RuntimeError, ConnectionError)


class ChannelWorker:
    """Delivers one channel's queue to its API one version per SKU at a time."""

    def __init__(
        self,
        channel: str,
        *,
        url: str,
        queue: str,
        bucket: TokenBucket,
        coalesce: bool,
        translator: OutboundTranslator | None,
        secret: str | None,
        client: httpx.AsyncClient,
        faults: FaultHandler,
        metrics: Metrics,
        policy: DeliveryPolicy,
        caller: Caller | None = None,
        answers: Callable[[CloudEvent], Awaitable[None]] | None = None,
        polled: Callable[[CloudEvent], Awaitable[None]] | None = None,
    ) -> None:
        self.channel = channel
        self.url = url
        self._caller = caller or PostToUrl(url)
        self._answer_events: Mapping[str, str] = getattr(self._caller, "answer_events", {})
        self._answers = answers
        self._polled = polled
        self._poller: asyncio.Task[None] | None = None
        self.queue_name = queue
        self.bucket = bucket
        self.backlog = Backlog(coalesce)
        self._translator = translator
        self._secret = secret
        self._client = client
        self._faults = faults
        self._metrics = metrics
        self._policy = policy
        self._slots = asyncio.Semaphore(policy.max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._amqp: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None

    async def start(self, amqp: AbstractChannel, queue_arguments: dict[str, Any]) -> None:
        """Consume the channel's queue and start dispatching.

        The queue is declared as the topology declares it (same arguments), so that the robust
        channel can declare it again after a broker restart and resume consuming.
        """
        self._amqp = amqp
        await amqp.set_qos(prefetch_count=self._policy.prefetch)
        self._queue = await amqp.declare_queue(
            self.queue_name, durable=True, arguments=queue_arguments
        )
        self._dispatcher = asyncio.create_task(self._dispatch(), name=f"deliver {self.channel}")
        self._consumer_tag = await self._queue.consume(self.on_message)
        caller = self._caller
        if isinstance(caller, Polls) and caller.poll_s > 0 and self._polled is not None:
            adapter = self._translator.name if self._translator is not None else self.channel
            poll = ChannelPoll(
                self.channel, adapter, caller, self._client, self._polled, self._metrics
            )
            self._poller = asyncio.create_task(poll.forever(), name=f"poll {self.channel}")

    async def stop(self) -> None:
        """Stop taking messages, let requests in flight finish, hand the rest back unacked."""
        self._stopping.set()
        await cancel_and_wait(self._poller)
        if self._queue is not None and self._consumer_tag is not None:
            with contextlib.suppress(*_AMQP_ERRORS):
                await self._queue.cancel(self._consumer_tag)
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self._policy.stop_grace_s)
        for task in set(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.backlog.clear()
        if self._amqp is not None:
            with contextlib.suppress(*_AMQP_ERRORS):
                await self._amqp.close()  # unacked messages go back to the queue

    async def on_message(self, raw: AbstractIncomingMessage) -> None:
        """Queue a message for its turn; a body that is no CloudEvent is parked at once."""
        try:
            event = decode_event(raw.body)
        except PermanentError as exc:
            await self._park(raw, exc, attempts=1, prior=attempts_so_far(raw))
            return
        item = Item(raw, event, received=time.monotonic(), prior_attempts=attempts_so_far(raw))
        found = turn_key(event)
        if found is not None:
            item.key, item.order = found
        for dropped in self.backlog.add(item):
            await self._coalesced(dropped)

    async def _dispatch(self) -> None:
        while True:
            await self._slots.acquire()
            try:
                # The item waits in the line until a token is free, so newer figures can replace it.
                await self.backlog.wait_ready()
                await self.bucket.acquire()
                item = self.backlog.take()
            except BaseException:
                self._slots.release()
                raise
            if item is None:  # pragma: no cover - only this task takes, so a ready item stays
                self._slots.release()
                continue
            task = asyncio.create_task(self._deliver(item), name=f"deliver {item.event.id}")
            self._tasks.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def _deliver(self, item: Item) -> None:
        try:
            request = build_request(item.event, item.raw.body, self._translator, self._secret)
        except PermanentError as exc:
            await self._park(item.raw, exc, attempts=1, prior=item.prior_attempts)
            self.backlog.done(item)
            return
        if request is None:  # the channel has no call for it: delivered by doing nothing
            self.backlog.done(item, delivered=True)
            await self._ack(item.raw)
            self._count("not_needed")
            return
        try:
            await self._attempts(item, request)
        except Exception:  # a bug must not strand the message; the delivery limit bounds it
            log.exception("delivery of %s to %s failed unexpectedly", item.event.id, self.channel)
            with contextlib.suppress(*_AMQP_ERRORS):
                await item.raw.nack(requeue=True)
        finally:
            self.backlog.done(item)

    async def _attempts(self, item: Item, request: Request) -> None:
        attempt = 0
        while True:
            attempt += 1
            if not _alive(item.raw):  # the connection was lost: the broker sends it again
                return
            verdict, response = await self._post(request)
            self._metrics.delivery_responses.labels(self.channel, verdict.status).inc()
            if verdict.fate == "ok":
                if response is not None:
                    await self._hand_answer(item, response)
                self.backlog.done(item, delivered=True)
                await self._ack(item.raw)
                self._count("ok")
                self._metrics.delivery_seconds.labels(self.channel).observe(
                    time.monotonic() - item.received
                )
                return
            if verdict.fate == "refused":
                error = DeliveryRefused(
                    f"{self.channel} refused {item.event.type}: {verdict.reason}"
                )
                await self._park(item.raw, error, attempt, item.prior_attempts)
                return
            if attempt >= self._policy.max_attempts:
                failed = DeliveryFailed(
                    f"{self.channel}: no 2xx after {attempt} attempts; last {verdict.reason}"
                )
                await self._park(item.raw, failed, attempt, item.prior_attempts)
                return
            if not await self._back_off(item, attempt, verdict):
                return
            if self.backlog.superseded(item):
                await self._coalesced(item)
                return
            await self.bucket.acquire()

    async def _post(self, request: Request) -> tuple[Verdict, httpx.Response | None]:
        try:
            response = await self._caller.call(self._client, request)
        except httpx.HTTPError as exc:
            return judge_error(exc), None
        return judge(response), response

    async def _hand_answer(self, item: Item, response: httpx.Response) -> None:
        """Give the hub what the system answered, when the caller says it is a document the
        hub reads (Sendcloud's labelled parcel). The call has had its effect: if the answer
        cannot be handed over, the system's webhook still brings it, so the message is acked."""
        answer_event = self._answer_events.get(item.event.type)
        if answer_event is None or self._answers is None or self._translator is None:
            return
        try:
            data = response.json()
        except ValueError:
            log.warning(
                "%s: the answer to %s is not JSON; left to the webhook", self.channel, item.event.id
            )
            return
        if not isinstance(data, dict):
            return
        answer = CloudEvent(
            id=derived_id(item.event.id, "answer"),
            source=self.channel,
            type=f"native.{self._translator.name}.{answer_event}",
            time=datetime.now(UTC),
            correlationid=item.event.correlationid or item.event.id,
            causationid=item.event.id,
            data=data,
        )
        try:
            await self._answers(answer)
        except HubError as exc:
            log.warning(
                "%s: answer to %s not handed to the hub (%s); left to the webhook",
                self.channel,
                item.event.id,
                exc,
            )

    async def _back_off(self, item: Item, attempt: int, verdict: Verdict) -> bool:
        """Wait before the next attempt, or until a newer version of the item's SKU takes its
        place; False when the worker stops meanwhile."""
        wait = self._policy.delay(attempt, verdict.retry_after, random.random())
        if verdict.status == "429" or (verdict.retry_after is not None and verdict.status != "409"):
            # The API speaks for the whole channel; a conflict (409) only for this resource.
            self.bucket.pause(wait)
        self._count("retry")
        log.warning(
            "%s: %s for %s (attempt %d), next in %.1fs",
            self.channel,
            verdict.reason,
            item.event.id,
            attempt,
            wait,
        )
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0 and not self.backlog.superseded(item):
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=min(left, SUPERSEDED_POLL_S))
            except TimeoutError:
                continue
            return False
        return True

    async def _coalesced(self, item: Item) -> None:
        await self._ack(item.raw)
        self._count("coalesced")

    async def _park(
        self, raw: AbstractIncomingMessage, error: HubError, attempts: int, prior: int
    ) -> None:
        # FaultHandler counts attempts from the header; ours happened here, not through hub.in.
        raw.headers[ATTEMPTS] = prior + attempts - 1
        try:
            await self._faults.park(raw, error, self.queue_name)
        except HubError as exc:
            log.error("could not park %s (%s); handing it back", raw.message_id, exc)
            with contextlib.suppress(*_AMQP_ERRORS):
                await raw.nack(requeue=True)
            return
        log.info("%s: parked %s: %s", self.channel, raw.message_id, error)
        await self._ack(raw)
        self._count("parked")

    async def _ack(self, raw: AbstractIncomingMessage) -> None:
        try:
            await raw.ack()
        except _AMQP_ERRORS as exc:  # channel gone: the broker redelivers; the key dedupes
            log.warning("%s: could not ack %s: %s", self.channel, raw.message_id, exc)

    def _count(self, outcome: str) -> None:
        self._metrics.deliveries.labels(self.channel, outcome).inc()


def _alive(raw: AbstractIncomingMessage) -> bool:
    """False for a message whose channel closed (it is already back in the queue)."""
    try:
        return not raw.channel.is_closed
    except _AMQP_ERRORS:
        return False
