"""The pure handler: a message goes to every channel the route table names, unchanged but for
a channel that names SKUs its own way or keeps prices on another VAT basis (its own copy).

Every destination receives the same event, so it is published once: the first channel's
routing key, the others in the ``CC`` header (RabbitMQ's sender-selected distribution routes
one publish to every listed key). One publish, one confirm and one outbox row per input,
whatever the fan-out, where a plain relay pays N of each.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hub.bus import Envelope
from hub.errors import Unroutable
from hub.handlers import Inbound
from hub.intake import routing_facts
from hub.outgoing import caused_event, to_channel
from hub.price_basis import PriceBases
from hub.topology import Names
from routes.config import HubConfig
from routes.matching import RouteTable
from schemas.envelope import CloudEvent


class Router:
    """Fans a validated message out to its destination channels in one envelope."""

    def __init__(self, table: RouteTable, names: Names, config: HubConfig | None = None) -> None:
        self._table = table
        self._names = names
        self._price_bases = PriceBases(config)
        self._markets_of_price_list: dict[str, tuple[str, ...]] = {}
        for name, market in config.markets.items() if config else ():
            shown = self._markets_of_price_list.get(market.price_list, ())
            self._markets_of_price_list[market.price_list] = (*shown, name)

    def takes(self, source: str, type: str) -> bool:
        """Whether any route takes this (source, type): what none takes is parked, not acted on."""
        return self._table.routed(source, type)

    def hands_to_hub(self, source: str, type: str) -> bool:
        """Whether a route hands this (source, type) to the hub's own handlers (``to: hub``)."""
        return self._table.to_hub(source, type)

    def envelopes(self, inbound: Inbound) -> list[Envelope]:
        """One envelope for all destinations (none without any); its id derives from the input."""
        event = inbound.event
        destinations = self.destinations(inbound)
        if not destinations:
            return []
        own: list[Envelope] = []
        if self._table.renames_skus or self._price_bases.converts(event.type):
            destinations, own = self._own_copies(event, destinations)
            if not destinations:
                return own
        out = caused_event(event, None, key="route", source=event.source, data=event.data)
        envelope = to_channel(self._names, destinations[0], out)
        if len(destinations) == 1:
            return [envelope, *own]
        cc = [f"{channel}.{event.type}" for channel in destinations[1:]]
        return [replace(envelope, headers={**envelope.headers, "CC": cc}), *own]

    def destinations(self, inbound: Inbound) -> tuple[str, ...]:
        """The channels the routes send this message to (Unroutable if no route takes it)."""
        event = inbound.event
        if not self._table.routed(event.source, event.type):
            raise Unroutable(f"no route takes {event.type!r} from {event.source!r}")
        facts = routing_facts(inbound.message)
        price_list = getattr(inbound.message, "price_list", None)
        markets: tuple[str | None, ...] = (None,)
        if price_list:
            # Every market that shows the list (NL and BE on one euro list, say); a list no
            # market shows (B2B) is a market of its own: no market-bound channel gets it.
            markets = self._markets_of_price_list.get(price_list, (f"price list {price_list}",))
        found = [
            self._table.destinations(
                event.source,
                event.type,
                market=market,
                skus=facts["skus"],
                order_value=facts["order_value"],
            )
            for market in markets
        ]
        return found[0] if len(found) == 1 else tuple(dict.fromkeys(sum(found, ())))

    def as_channel_sees_it(self, channel: str, type_: str, data: dict[str, Any]) -> dict[str, Any]:
        """Message data in the channel's words: its own SKUs, prices on its VAT basis."""
        data = self._table.as_channel_sees_it(channel, data)
        return self._price_bases.as_channel_keeps_it(channel, type_, data)

    def _own_copies(
        self, event: CloudEvent, destinations: tuple[str, ...]
    ) -> tuple[tuple[str, ...], list[Envelope]]:
        """The channels that see the data as it is, and a copy for each that names its SKUs
        its own way or keeps prices on another VAT basis (same id: it is the same event, told
        in the channel's words)."""
        shared: list[str] = []
        own: list[Envelope] = []
        for channel in destinations:
            data = self.as_channel_sees_it(channel, event.type, event.data)
            if data is event.data or data == event.data:
                shared.append(channel)
                continue
            subject = event.subject and self._table.channel_sku(channel, event.subject)
            copy = caused_event(
                event, None, key="route", source=event.source, data=data, subject=subject
            )
            own.append(to_channel(self._names, channel, copy))
        return tuple(shared), own
