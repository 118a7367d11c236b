"""What one step of the order process sends, addressed by the route table with stable ids."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from hub.bus import Envelope
from hub.intake import routing_facts
from hub.outgoing import caused_event, to_channel
from hub.topology import Names
from routes.matching import RouteTable
from schemas.base import Message
from schemas.envelope import CloudEvent


@dataclass
class Outgoing:
    """The messages a transition causes; they commit with it through the outbox.

    Ids derive from the cause's id and a step key, so a re-run of the same input produces the
    same ids and the channel can drop a repeat.
    """

    table: RouteTable
    names: Names
    cause: CloudEvent
    now: datetime
    envelopes: list[Envelope] = field(default_factory=list)

    def send(
        self,
        message: Message,
        *,
        key: str,
        origin: str,
        subject: str,
        about: Message | None = None,
        only: Callable[[str], bool] | None = None,
    ) -> int:
        """Send a message the hub originates to where the routes take it (of those, ``only``
        the channels it accepts); how many copies. Route filters see the message's own SKUs
        (a shipment's lines, say) or else those of ``about`` (the order), its value, and the
        market of the channel it came from."""
        channels = self._channels("hub", message, about, origin)
        if only is not None:
            channels = tuple(channel for channel in channels if only(channel))
        data = message.model_dump(mode="json")
        for channel in channels:
            event = caused_event(
                self.cause,
                message,
                key=f"{key}/{channel}",
                subject=subject,
                time=self.now,
                data=self.table.as_channel_sees_it(channel, data),
            )
            self.envelopes.append(to_channel(self.names, channel, event))
        return len(channels)

    def forward(
        self, event: CloudEvent, message: Message, *, origin: str, about: Message | None = None
    ) -> int:
        """Pass a message on as its source sent it (invoice, return), like the Router does;
        route filters see what ``send`` shows them."""
        found = self._channels(event.source, message, about, origin)
        channels = [ch for ch in found if ch != event.source]
        for channel in channels:
            data = self.table.as_channel_sees_it(channel, event.data)
            copy = caused_event(event, None, key=channel, source=event.source, data=data)
            self.envelopes.append(to_channel(self.names, channel, copy))
        return len(channels)

    def _channels(
        self, source: str, message: Message, about: Message | None, origin: str
    ) -> tuple[str, ...]:
        """Where the routes take the message; their filters see SKUs, order value and market,
        worked out only when a route for this (source, type) has filters: the message's own
        SKUs or else the order's, the order's value, its channel's market."""
        skus: tuple[str, ...] = ()
        value: Decimal | None = None
        market: str | None = None
        if self.table.filters_on_data(source, message.TYPE):
            own = routing_facts(message)
            facts = routing_facts(about) if about is not None else own
            skus, value = own["skus"] or facts["skus"], facts["order_value"]
            market = self.table.market_of(origin)
        return self.table.destinations(
            source,
            message.TYPE,
            origin=origin,
            market=market,
            skus=skus,
            order_value=value,
            narrow=False,
        )

    def extend(self, envelopes: list[Envelope]) -> None:
        """Add messages built elsewhere (stock availability after a reservation)."""
        self.envelopes.extend(envelopes)
