"""Return messages: a return announced on the channel, and the goods back in the warehouse."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from schemas.base import CanonicalModel, Message
from schemas.catalog import Gtin
from schemas.common import (
    MAX_LINES,
    ChannelName,
    Identifier,
    ItemCount,
    PositiveQuantity,
    ShortText,
    Sku,
)


class ReturnLine(CanonicalModel):
    """Units of a SKU the buyer sends back; line_id names the order line where known. A
    channel whose return names only the order line (Shopify's) or the product's EAN (bol.com's)
    leaves the SKU out, and the hub fills it in from the order before anyone else sees it."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [{"required": ["sku"]}, {"required": ["line_id"]}, {"required": ["gtin"]}]
        }
    )

    sku: Sku | None = None
    quantity: PositiveQuantity
    line_id: Identifier | None = None
    gtin: Gtin | None = Field(default=None, exclude_if=lambda value: value is None)
    """Left out of the data when unset, so a return the hub sends on reads as it did in 1.0."""

    @model_validator(mode="after")
    def _names_what(self) -> ReturnLine:
        """A line must say what comes back: its SKU, the order line it was sold on, or its EAN."""
        if self.sku is None and self.line_id is None and self.gtin is None:
            raise ValueError("give the sku, the line_id of the order line, or the gtin")
        return self


class ReturnRequested(Message):
    """A buyer announced a return on the channel; the ERP and warehouse expect the goods."""

    TYPE: ClassVar[str] = "return.requested"
    SCHEMA_VERSION: ClassVar[str] = "1.2"  # a line may name only its order line (1.1), its EAN

    channel: ChannelName
    channel_order_id: Identifier
    order_id: Identifier | None = None
    return_id: Identifier
    lines: Annotated[tuple[ReturnLine, ...], ItemCount(1, MAX_LINES)]
    reason: ShortText | None = None

    def data_version(self) -> str:
        """1.0 when every line names its SKU (as the hub sends it on): a 1.0 reader needs it."""
        if any(line.gtin is not None for line in self.lines):
            return self.SCHEMA_VERSION
        return "1.1" if any(line.sku is None for line in self.lines) else "1.0"


class ReceivedLine(CanonicalModel):
    """Units the warehouse received back, and whether they can be sold again."""

    sku: Sku
    quantity: PositiveQuantity
    condition: Literal["sellable", "damaged"]
    line_id: Identifier | None = None


class ReturnReceived(Message):
    """Returned goods arrived at the warehouse; the ERP books them and reports the new stock."""

    TYPE: ClassVar[str] = "return.received"

    order_id: Identifier | None = None
    channel: ChannelName | None = None
    channel_order_id: Identifier | None = None
    return_id: Identifier
    lines: Annotated[tuple[ReceivedLine, ...], ItemCount(1, MAX_LINES)]
    location: Identifier | None = None

    @model_validator(mode="after")
    def _names_the_order(self) -> ReturnReceived:
        """A return must name its order: the hub's order id, or the channel and its order id."""
        if self.order_id is None and (self.channel is None or self.channel_order_id is None):
            raise ValueError("give order_id, or both channel and channel_order_id")
        return self
