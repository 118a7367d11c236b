"""The port every channel adapter implements: native payload <-> canonical model, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from schemas.base import Message


class TranslationError(ValueError):
    """A native payload that cannot become a canonical message; the reason names the field."""


class Translator(Protocol):
    """Pure translation for one external product (Shopify, bol.com, Odoo, ...)."""

    name: str

    def native_events(self) -> frozenset[str]:
        """The native event names this adapter reads, as in ``native.<adapter>.<event>``."""
        ...

    def to_canonical(self, event: str, payload: Mapping[str, Any], channel: str) -> Message | None:
        """Translate one native payload into its canonical message, None when it holds nothing
        for the hub, or raise TranslationError."""
        ...


@runtime_checkable
class OutboundTranslator(Protocol):
    """The other direction, for a channel whose API wants its own payloads rather than ours."""

    name: str

    def outbound_types(self) -> frozenset[str]:
        """The canonical types this adapter can write, so config checks can refuse the rest."""
        ...

    def from_canonical(self, message: Message) -> dict[str, Any] | None:
        """The JSON-ready native payload for one canonical message, None when the system needs
        no call for it, or raise TranslationError."""
        ...
