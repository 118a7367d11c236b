"""Billing messages: the ERP's invoice, passed on to the channel the order came from."""

from __future__ import annotations

from typing import ClassVar

from pydantic import AwareDatetime, model_validator

from schemas.base import Message
from schemas.common import Identifier, Money, Url, same_currency


class InvoiceIssued(Message):
    """The ERP invoiced an order; a negative total is a credit note."""

    TYPE: ClassVar[str] = "invoice.issued"

    order_id: Identifier
    invoice_number: Identifier
    issued_at: AwareDatetime
    total: Money
    vat_total: Money
    pdf_url: Url | None = None

    @model_validator(mode="after")
    def _one_currency(self) -> InvoiceIssued:
        """Total and VAT are in the same currency, or the invoice is nonsense."""
        same_currency(self.total.currency, self.vat_total)
        return self
