"""Receivables as psconnect last read them from each ERP: every invoice's status, payments and what is owed.

The receivables process polls each legal entity's ERP for invoices changed since its cursor and keeps
one row per invoice here. The dashboards' accounts-receivable aging and days sales outstanding are
computed from these rows; the change events (`invoice.posted`, `payment.received`) are published as
each change is recorded.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from msgspec import Meta

from contracts.billing import InvoiceStatus
from contracts.common import Currency, Money, Struct

__all__ = ["ReceivableInvoice", "StartPoll"]


class ReceivableInvoice(Struct):
    external_id: Annotated[str, Meta(description="psconnect's invoice key (the draft's external id).")]
    erp_invoice_id: str
    legal_entity_code: Annotated[str, Meta(examples=["US01"])]
    customer_id: str
    project_external_id: str
    period: str
    currency: Currency
    status: InvoiceStatus
    total: Money
    amount_paid: Money
    amount_due: Money
    recorded_at: Annotated[dt.datetime, Meta(description="When psconnect recorded this state (UTC).")]
    issue_date: dt.date | None = None
    due_date: dt.date | None = None
    erp_updated_at: Annotated[dt.datetime | None, Meta(description="The ERP's last change (UTC).")] = None


class StartPoll(Struct):
    full: Annotated[bool, Meta(description="Read every invoice again, not only those changed since the last "
                                           "poll (after restoring the ERP, say).")] = False
