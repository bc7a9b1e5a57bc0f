"""Time-capture objects: time entries as the time system (Harvest, Kantata) holds them.

The time system knows its own users and projects, not HR ids or ERP ids, so an entry
names its user by time-system id and email and its project by the project code, which
psconnect sets to the ERP project's external id (`PRJ-…`). Enrichment resolves the
rest. `updated_at` and `version` let a change after approval be noticed and re-posted
as a difference, never twice.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from msgspec import Meta

from contracts.common import Hours, Money, Struct

__all__ = ["Expense", "TimeEntry", "TimeEntryStatus", "TimeProject", "UninvoicedProject"]

TimeEntryStatus = Literal["draft", "submitted", "approved", "rejected"]


class TimeEntry(Struct):
    id: Annotated[str, Meta(description="The time system's id of the entry.")]
    source: Annotated[str, Meta(examples=["harvest"])]
    user_id: Annotated[str, Meta(description="The time system's id of the person.")]
    user_email: str
    project_code: Annotated[str, Meta(description="The ERP project's external id, e.g. PRJ-…")]
    date: dt.date
    hours: Hours
    billable: bool
    status: TimeEntryStatus
    updated_at: dt.datetime
    task: str | None = None
    notes: str | None = None
    approved_at: dt.datetime | None = None
    billable_rate: Annotated[Money | None, Meta(description="Rate the time system applies, if it prices time.")] = None
    is_billed: bool = False


class Expense(Struct):
    """An expense as the time system (Harvest) or the PSA (Certinia) captured it, named like a time entry.

    ``amount`` is the total spent, in the currency it was spent in; a unit-priced category (mileage)
    also carries ``units`` and ``unit_price``. ``receipt_url`` is where the time system keeps the
    scanned receipt (null: none attached). `updated_at` notices a change after approval.
    """

    id: Annotated[str, Meta(description="The capturing system's id of the expense.")]
    source: Annotated[str, Meta(examples=["harvest"])]
    user_id: Annotated[str, Meta(description="The capturing system's id of the person.")]
    user_email: str
    project_code: Annotated[str, Meta(description="The ERP project's external id, e.g. PRJ-…")]
    date: dt.date
    category: Annotated[str, Meta(examples=["Travel", "Mileage"])]
    amount: Money
    billable: bool
    status: TimeEntryStatus
    updated_at: dt.datetime
    units: Annotated[Decimal | None, Meta(description="Quantity of a unit-priced category (miles).")] = None
    unit_price: Money | None = None
    receipt_url: str | None = None
    notes: str | None = None
    approved_at: dt.datetime | None = None
    is_billed: bool = False


class TimeProject(Struct):
    id: str
    code: str
    name: str
    client_name: str
    is_active: bool
    is_billable: bool
    currency: str


class UninvoicedProject(Struct):
    """One row of the time system's uninvoiced report."""

    project_code: str
    project_name: str
    currency: str
    uninvoiced_hours: Hours
    uninvoiced_amount: Money
