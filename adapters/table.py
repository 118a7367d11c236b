"""The one translator shape: an adapter is a table of what it reads and what it writes.

Each adapter module keeps only its mapping functions and declares ``TRANSLATOR`` from these,
so the dispatch, the refusals of unknown events and types, and the lists the config check and
the HTTP delivery ask for are written once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_args, get_type_hints

from adapters._native import Native, check_event, refuse_type
from schemas.base import Message

Reader = Callable[[Native, str], Message | None]
"""Native payload (wrapped for located errors) and the channel name -> canonical message, or
None when the event holds nothing for the hub (an order update that is not a cancellation)."""

Writer = Callable[[Any], dict[str, Any] | None]
"""One canonical message (of the type it is registered for) -> the system's native body, or
None when the system has nothing to do with it (Shopify has no call to accept an order)."""


@dataclass(frozen=True)
class Reads:
    """A translator that only reads: native events into canonical messages (an ERP, say)."""

    name: str
    readers: Mapping[str, Reader]

    def native_events(self) -> frozenset[str]:
        """The native event names this adapter reads, as in ``native.<adapter>.<event>``."""
        return frozenset(self.readers)

    def canonical_types(self, event: str) -> tuple[str, ...]:
        """The canonical types a native event may become (its reader's return type), so parked
        native messages can be found by the type an operator knows them as."""
        reader = self.readers.get(event)
        made = get_type_hints(reader).get("return") if reader is not None else None
        found: list[str] = []
        for kind in (made, *get_args(made)):  # OrderCancelled, or OrderPlaced | ... | None
            type_ = getattr(kind, "TYPE", None)
            if isinstance(type_, str):
                found.append(type_)
        return tuple(found)

    def to_canonical(self, event: str, payload: Mapping[str, Any], channel: str) -> Message | None:
        """Translate one native payload (None: nothing in it for the hub), or refuse an event
        this adapter does not read."""
        check_event(self.name, event, self.readers)
        return self.readers[event](Native(payload), channel)


@dataclass(frozen=True)
class ReadsAndWrites(Reads):
    """A translator that also writes canonical messages in the system's native form."""

    writers: Mapping[type[Message], Writer] = field(default_factory=dict)
    prices_include_vat: bool | None = None
    """The one VAT basis the system keeps prices on (bol.com: with VAT), which the hub converts
    ``price.changed`` to; None where a setting of the shop's decides (the channel's config)."""

    def outbound_types(self) -> frozenset[str]:
        """The canonical types this adapter can write."""
        return frozenset(kind.TYPE for kind in self.writers)

    def from_canonical(self, message: Message) -> dict[str, Any] | None:
        """The native body for one canonical message (None: no call is needed), or refuse a
        type it cannot write."""
        writer = self.writers.get(type(message))
        if writer is None:
            raise refuse_type(self.name, message, self.outbound_types())
        return writer(message)


def nothing_to_write(message: Message) -> None:
    """The system takes this type but needs no call for it, so it is delivered by doing nothing
    (a type it cannot write would be parked for an operator each time)."""
