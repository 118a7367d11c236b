"""The pure handler: a message goes unchanged to every channel the route table names."""

from __future__ import annotations

from hub.bus import Envelope
from hub.handlers import Inbound
from hub.intake import routing_facts
from hub.outgoing import caused_event, to_channel
from hub.topology import Names
from routes.matching import RouteTable


class Router:
    """Fans a validated message out to its destination channels, one envelope per channel."""

    def __init__(self, table: RouteTable, names: Names) -> None:
        self._table = table
        self._names = names

    def envelopes(self, inbound: Inbound) -> list[Envelope]:
        """One envelope per destination; ids derive from the input id, so re-runs repeat them."""
        event = inbound.event
        facts = routing_facts(inbound.message)
        destinations = self._table.destinations(
            event.source, event.type, skus=facts["skus"], order_value=facts["order_value"]
        )
        return [
            to_channel(
                self._names,
                channel,
                caused_event(event, None, key=channel, source=event.source, data=event.data),
            )
            for channel in destinations
        ]
