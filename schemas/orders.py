"""Order messages: a channel's order in, and the hub's verdict and progress back to it."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, StringConstraints, model_validator

from schemas.base import CanonicalModel, Message
from schemas.common import (
    MAX_LINES,
    Address,
    ChannelName,
    CurrencyCode,
    Identifier,
    ItemCount,
    Money,
    PositiveQuantity,
    Price,
    ShortText,
    Sku,
    VatRate,
    same_currency,
)
from schemas.fulfilment import FulfilmentLine, Lines, RestLines


class OrderLine(CanonicalModel):
    """One line of an order as the buyer saw it: what, how many, at what unit price."""

    line_id: Identifier
    sku: Sku
    quantity: PositiveQuantity
    unit_price: Price
    vat_rate: VatRate | None = None

    @property
    def line_total(self) -> Money:
        """Unit price times quantity, unrounded."""
        return Money(
            amount=self.unit_price.amount * self.quantity, currency=self.unit_price.currency
        )


class OrderTotals(CanonicalModel):
    """The totals as the channel computed them; kept for the ERP and invoice, not recomputed."""

    total: Money
    shipping: Money | None = None
    discount: Money | None = None
    vat: Money | None = None


OrderLines = Annotated[tuple[OrderLine, ...], ItemCount(1, MAX_LINES)]


class OrderContent(CanonicalModel):
    """What an order says, shared by the channel's OrderPlaced and the ERP's SalesOrderCreate."""

    channel: ChannelName
    channel_order_id: Identifier
    placed_at: AwareDatetime
    currency: CurrencyCode
    prices_include_vat: bool = True
    lines: OrderLines
    shipping_address: Address
    billing_address: Address | None = None
    customer_ref: Identifier | None = None
    shipping_method: Identifier | None = None
    totals: OrderTotals | None = None

    @model_validator(mode="after")
    def _consistent(self) -> OrderContent:
        """Line ids must be unique and every amount in the order's currency."""
        ids = [line.line_id for line in self.lines]
        if len(set(ids)) != len(ids):
            raise ValueError("line_id values must be unique within an order")
        same_currency(self.currency, *(line.unit_price for line in self.lines))
        if self.totals is not None:
            t = self.totals
            same_currency(self.currency, t.total, t.shipping, t.discount, t.vat)
        return self


class OrderPlaced(OrderContent, Message):
    """A buyer placed an order on a channel; the hub validates, de-duplicates and reserves it."""

    TYPE: ClassVar[str] = "order.placed"


class OrderAccepted(Message):
    """The hub took the order: stock reserved, order id assigned, on its way to the ERP."""

    TYPE: ClassVar[str] = "order.accepted"

    order_id: Identifier
    channel: ChannelName
    channel_order_id: Identifier


# Well-known reason codes; others are allowed, so a new check needs no schema change.
REASON_CODES: frozenset[str] = frozenset(
    {
        "unknown_sku",
        "invalid_quantity",
        "price_mismatch",
        "currency_mismatch",
        "vat_mismatch",
        "address_incomplete",
        "out_of_stock",
        "erp_refused",
        "timeout",
        "invalid_order",
    }
)

ReasonCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class Reason(CanonicalModel):
    """Why an order was refused, machine-readable (code) and for a person (message)."""

    code: ReasonCode
    message: ShortText
    line_id: Identifier | None = None
    sku: Sku | None = None


class OrderRejected(Message):
    """The hub refused the order, with every reason, so nobody has to guess or retype it."""

    TYPE: ClassVar[str] = "order.rejected"
    SCHEMA_VERSION: ClassVar[str] = "1.1"  # lines

    channel: ChannelName
    channel_order_id: Identifier
    order_id: Identifier | None = None
    reasons: Annotated[tuple[Reason, ...], ItemCount(1, MAX_LINES)]
    lines: Annotated[tuple[FulfilmentLine, ...], ItemCount(0, MAX_LINES)] = ()
    """Every line of the refused order (none if the hub could not read them), so a channel
    that refuses per line, as bol.com does, needs no look-up."""


CancelledBy = Literal["channel", "erp", "hub"]


class OrderCancelled(Message):
    """The order, or with ``lines`` part of it, is cancelled by the channel, the ERP or the
    hub; the stock of what is cancelled goes back."""

    TYPE: ClassVar[str] = "order.cancelled"
    SCHEMA_VERSION: ClassVar[str] = "2.0"  # lines: only these units are cancelled

    channel: ChannelName
    channel_order_id: Identifier
    order_id: Identifier | None = None
    reason: ShortText
    cancelled_by: CancelledBy
    lines: RestLines = ()
    """When not the whole order (a marketplace buyer cancelling some items): the units of each
    line cancelled so far, this request included (a running total, so a request sent again,
    or one that adds a line, cancels only what is new); empty: the whole order."""

    def data_version(self) -> str:
        """2.0 only when ``lines`` withdraw a part: a 1.x reader would cancel the whole order."""
        return self.SCHEMA_VERSION if self.lines else "1.0"


OrderLifecycle = Literal[
    "accepted",
    "sent_to_erp",
    "confirmed",
    "picking",
    "shipped",
    "partially_shipped",
    "delivered",
    "cancelled",
    "returned",
    "rejected",
    "backordered",
    "stalled",
]
"""Every state an order can be in, as a channel is told it."""


class CancelledPart(CanonicalModel):
    """What a cancellation took off an order, so a channel can undo it in its own terms."""

    by: CancelledBy
    whole_order: bool
    """False when part of the order shipped or is packed: only ``lines`` are withdrawn."""
    lines: Lines
    """The lines and units withdrawn (every line of the order when it is the whole order)."""


class OrderStatus(Message):
    """Where an order is in its lifecycle, sent back to the channel it came from."""

    TYPE: ClassVar[str] = "order.status"
    SCHEMA_VERSION: ClassVar[str] = "1.1"  # cancelled

    order_id: Identifier
    channel: ChannelName
    channel_order_id: Identifier
    status: OrderLifecycle
    detail: ShortText | None = None
    cancelled: CancelledPart | None = None
    """Set when this status reports a cancellation: who cancelled and what it withdrew."""
