"""The order process: a channel's order validated, reserved and driven to the buyer's door.

``order_handlers`` is the handler factory the composition root registers (``hub.app``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

import asyncpg

from hub.bus import Envelope
from hub.db import Connection
from hub.errors import PermanentError, TransientError
from hub.handlers import Handler, Inbound
from hub.orders import aftercare, intake, steps
from hub.orders.context import OrderDeps, OrderMetrics
from hub.orders.messages import Outgoing
from hub.orders.prices import PriceHandler
from hub.router import Router
from hub.stock.availability import StockContext
from schemas.billing import InvoiceIssued
from schemas.catalog import PriceChanged
from schemas.erp import SalesOrderCreated, SalesOrderRefused
from schemas.fulfilment import PickCompleted, ShipmentCreated, ShipmentTracking
from schemas.orders import OrderCancelled, OrderPlaced
from schemas.returns import ReturnReceived, ReturnRequested

if TYPE_CHECKING:
    from hub.runtime import Hub

Step = Callable[[Connection, OrderDeps, Inbound, datetime], Awaitable[Outgoing]]
ManyStep = Callable[[Connection, OrderDeps, Sequence[Inbound], datetime], Awaitable[list[Outgoing]]]

_DEPS: WeakKeyDictionary[Hub, OrderDeps] = WeakKeyDictionary()


@contextlib.asynccontextmanager
async def _contention() -> AsyncIterator[None]:
    """Two batches locking the same order or stock rows: retry the message, never lose it."""
    try:
        yield
    except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError) as exc:
        raise TransientError(f"order rows contended: {exc}") from exc


class OrderStep:
    """One order message type bound to its step function, as the runtime's Handler."""

    stateful = True

    def __init__(self, deps: OrderDeps, step: Step, many: ManyStep | None = None) -> None:
        self._deps = deps
        self._step = step
        if many is not None:
            self._many = many
            self.handle_many = self._handle_many

    def lock_keys(self, inbound: Inbound) -> Iterable[str]:
        """The SKUs a new order reserves (later steps find theirs in the order, mid-batch), and
        the order itself for an order and a cancellation: one that overtakes the order must
        meet it, even when two hubs take them at the same moment."""
        msg = inbound.message
        if isinstance(msg, OrderPlaced):
            order_key = f"order:{intake.order_id_for(msg.channel, msg.channel_order_id)}"
            return [order_key, *(line.sku for line in msg.lines)]
        if isinstance(msg, OrderCancelled):
            return [f"order:{intake.order_id_for(msg.channel, msg.channel_order_id)}"]
        return ()

    async def handle(
        self, inbound: Inbound, conn: Connection | None, now: datetime
    ) -> Sequence[Envelope]:
        """Run the step in the batch transaction; its messages go out through the outbox."""
        if conn is None:  # pragma: no cover - the committer always passes one
            raise PermanentError("order handlers need a database connection")
        async with _contention():
            return (await self._step(conn, self._deps, inbound, now)).envelopes

    async def _handle_many(
        self, inbounds: Sequence[Inbound], conn: Connection | None, now: datetime
    ) -> list[Sequence[Envelope]]:
        """A run of messages of this step's type in one go (order intake)."""
        if conn is None:  # pragma: no cover - the committer always passes one
            raise PermanentError("order handlers need a database connection")
        async with _contention():
            return [out.envelopes for out in await self._many(conn, self._deps, inbounds, now)]


def deps_of(hub: Hub) -> OrderDeps:
    """The order process's dependencies built for this hub (the sweeper and CLI need them)."""
    deps = _DEPS.get(hub)
    if deps is None:
        deps = OrderDeps(
            config=hub.config,
            table=hub.table,
            names=hub.names,
            metrics=OrderMetrics(hub.metrics.registry),
            stock=StockContext.from_hub(hub),
        )
        _DEPS[hub] = deps
    return deps


def order_handlers(hub: Hub) -> Mapping[str, Handler]:
    """Every message type the order process takes, mapped to its handler."""
    deps = deps_of(hub)
    steps_by_type: dict[str, Step] = {
        OrderPlaced.TYPE: intake.place,
        SalesOrderCreated.TYPE: steps.erp_created,
        SalesOrderRefused.TYPE: steps.erp_refused,
        PickCompleted.TYPE: steps.picked,
        ShipmentCreated.TYPE: steps.shipped,
        OrderCancelled.TYPE: aftercare.cancel,
        ReturnReceived.TYPE: aftercare.returned,
        ReturnRequested.TYPE: aftercare.return_requested,
        ShipmentTracking.TYPE: steps.tracking_updated,
        InvoiceIssued.TYPE: aftercare.invoiced,
    }
    handlers: dict[str, Handler] = {t: OrderStep(deps, s) for t, s in steps_by_type.items()}
    handlers[OrderPlaced.TYPE] = OrderStep(deps, intake.place, intake.place_many)
    router = Router(hub.table, hub.names, hub.config)
    handlers[PriceChanged.TYPE] = PriceHandler(
        router, hub.metrics.stale_catalog, hub.config.markets, hub.metrics.price_schedule
    )
    return handlers
