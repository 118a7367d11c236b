"""ERP messages: the hub asks the ERP for a sales order, and hears back its number or refusal."""

from __future__ import annotations

from typing import ClassVar

from schemas.base import Message
from schemas.common import Identifier, ShortText
from schemas.fulfilment import RestLines
from schemas.orders import OrderContent


class SalesOrderCreate(OrderContent, Message):
    """Create this accepted order in the ERP, so nobody types it in; order_id is the hub's."""

    TYPE: ClassVar[str] = "salesorder.create"

    order_id: Identifier
    reservation_id: Identifier | None = None
    price_list: Identifier | None = None


class SalesOrderCreated(Message):
    """The ERP created the sales order under its own number."""

    TYPE: ClassVar[str] = "salesorder.created"

    order_id: Identifier
    erp_order_number: Identifier


class SalesOrderRefused(Message):
    """The ERP would not create the sales order; the hub releases stock and tells the channel."""

    TYPE: ClassVar[str] = "salesorder.refused"

    order_id: Identifier
    reason: ShortText


class SalesOrderCancel(Message):
    """Cancel the sales order in the ERP (cancelled before it shipped, or its unshipped rest)."""

    TYPE: ClassVar[str] = "salesorder.cancel"
    SCHEMA_VERSION: ClassVar[str] = "2.0"  # lines: only these units are withdrawn

    order_id: Identifier
    erp_order_number: Identifier | None = None
    reason: ShortText
    lines: RestLines = ()

    def data_version(self) -> str:
        """2.0 only for a part (lines given): a whole-order cancel reads as it did in 1.0."""
        return self.SCHEMA_VERSION if self.lines else "1.0"
