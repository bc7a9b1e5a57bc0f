"""The CloudEvents 1.0 JSON envelope and the event types psconnect publishes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Final, Generic, TypeVar

import msgspec
from msgspec import Meta

__all__ = ["BILLING_RUN_FINISHED", "CLOSED_WON", "CREDIT_MEMO_ISSUED", "EVENT_TYPES", "EXCEPTION_OPENED",
           "EXCEPTION_RESOLVED", "EXPENSE_POSTED", "INVOICE_DRAFTED", "INVOICE_POSTED", "PAYMENT_RECEIVED",
           "PROJECT_PROVISIONED", "REVENUE_RECOGNIZED", "TIME_POSTED", "WORKER_SYNCED", "CloudEvent"]

PROJECT_PROVISIONED: Final = "psconnect.project.provisioned"
CLOSED_WON: Final = "psconnect.crm.opportunity.closed_won"
WORKER_SYNCED: Final = "psconnect.worker.synced"
TIME_POSTED: Final = "psconnect.time.posted"
EXPENSE_POSTED: Final = "psconnect.expense.posted"
INVOICE_DRAFTED: Final = "psconnect.invoice.drafted"
CREDIT_MEMO_ISSUED: Final = "psconnect.credit_memo.issued"
INVOICE_POSTED: Final = "psconnect.invoice.posted"
PAYMENT_RECEIVED: Final = "psconnect.payment.received"
REVENUE_RECOGNIZED: Final = "psconnect.revenue.recognized"
BILLING_RUN_FINISHED: Final = "psconnect.billing_run.finished"
EXCEPTION_OPENED: Final = "psconnect.exception.opened"
EXCEPTION_RESOLVED: Final = "psconnect.exception.resolved"
EVENT_TYPES: Final = frozenset({PROJECT_PROVISIONED, WORKER_SYNCED, TIME_POSTED, INVOICE_DRAFTED, CREDIT_MEMO_ISSUED,
                                BILLING_RUN_FINISHED, EXCEPTION_OPENED, EXCEPTION_RESOLVED, INVOICE_POSTED,
                                PAYMENT_RECEIVED, REVENUE_RECOGNIZED, EXPENSE_POSTED})
"""What the processes publish, and so what a webhook subscription may name."""

D = TypeVar("D")


class CloudEvent(msgspec.Struct, Generic[D], kw_only=True, forbid_unknown_fields=False):
    """A CloudEvents 1.0 structured-mode JSON event; unknown extension attributes are kept out."""

    specversion: Annotated[str, Meta(pattern=r"^1\.0$")] = "1.0"
    id: Annotated[str, Meta(min_length=1, max_length=200)]
    source: Annotated[str, Meta(min_length=1, max_length=500)]
    type: Annotated[str, Meta(min_length=1, max_length=200, examples=[PROJECT_PROVISIONED])]
    subject: str | None = None
    time: dt.datetime | None = None
    datacontenttype: str = "application/json"
    data: D
