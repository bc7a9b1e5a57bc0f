"""Commercial and billing objects: contracts, rate cards, time, expenses, invoice drafts."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from msgspec import Meta

from contracts.common import Currency, FrozenStruct, Hours, Money, Struct

__all__ = [
    "Contract",
    "Expense",
    "InvoiceDraft",
    "InvoiceLine",
    "RateCard",
    "RateCardLine",
    "TimeEntry",
]


class RateCardLine(FrozenStruct, frozen=True):
    role: str
    hourly_rate: Money


class RateCard(Struct):
    """Bill rates by role for one legal entity and currency, valid over a date range."""

    id: str
    name: str
    legal_entity_code: str
    currency: Currency
    valid_from: dt.date
    valid_to: dt.date | None = None
    lines: list[RateCardLine] = []


class Contract(Struct):
    """The commercial agreement behind a project: billing type, rate card, cap."""

    id: str
    opportunity_id: str
    account_id: str
    legal_entity_code: str
    billing_type: Literal["time_and_materials", "fixed_fee", "mixed"]
    rate_card_id: str | None
    value: Money
    start_date: dt.date
    end_date: dt.date | None = None


class TimeEntry(Struct):
    id: str
    worker_id: str
    project_id: str
    date: dt.date
    hours: Hours
    billable: bool
    status: Literal["draft", "submitted", "approved", "rejected"]
    role: str | None = None
    notes: str | None = None
    approved_at: dt.datetime | None = None


class Expense(Struct):
    id: str
    worker_id: str
    project_id: str
    date: dt.date
    category: str
    amount: Money
    billable: bool
    status: Literal["draft", "submitted", "approved", "rejected"]


class InvoiceLine(FrozenStruct, frozen=True):
    kind: Literal["time", "milestone", "expense", "credit"]
    description: str
    quantity: Annotated[Hours, Meta(description="Hours for time lines, 1 otherwise.")]
    unit_price: Money
    amount: Money
    source_ids: list[str] = []


class InvoiceDraft(Struct):
    id: str
    project_id: str
    customer_id: str
    legal_entity_code: str
    period: Annotated[str, Meta(pattern=r"^\d{4}-\d{2}$", description="Billing period YYYY-MM.")]
    currency: Currency
    lines: list[InvoiceLine]
    total: Money
    status: Literal["draft", "approved", "posted", "void"] = "draft"
