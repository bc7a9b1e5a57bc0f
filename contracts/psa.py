"""PSA domain objects: delivery projects with milestones and budget. PSA owns delivery."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from msgspec import Meta

from contracts.common import FrozenStruct, Money, NonEmpty, Struct

__all__ = ["ExpenseTerms", "PsaMilestone", "PsaProject", "PsaProjectUpsert", "TimesheetSubmission"]


class PsaMilestone(FrozenStruct, frozen=True):
    name: NonEmpty
    due_date: dt.date
    amount: Money | None = None


class ExpenseTerms(FrozenStruct, frozen=True):
    """What the project's contract says about expenses: which are billed to the client, at what markup, with
    which receipts and within which caps. An expense outside these terms is not billed: it is an owned
    exception until the contract or the expense is corrected."""

    billable_categories: Annotated[list[str], Meta(description="Categories the client is billed for.")]
    markup_percent: Annotated[Decimal, Meta(description="Added to billed expenses (0: billed at cost).",
                                            examples=["10"])]
    receipt_required_above: Annotated[Money, Meta(
        description="An expense above this amount needs a receipt before it is posted or billed.")]
    caps: Annotated[dict[str, Money], Meta(
        description="Category -> the most one expense line of it may cost; none listed: no cap.")] = {}


class PsaProject(Struct):
    """A delivery project (a Kantata workspace)."""

    id: str
    external_id: str
    title: str
    client_name: str
    status: Literal["not_started", "active", "completed"]
    budget: Money
    billing_terms: Literal["time_and_materials", "fixed_fee", "mixed"]
    start_date: dt.date | None = None
    due_date: dt.date | None = None
    milestones: list[PsaMilestone] = []
    erp_project_id: str | None = None
    rate_card_id: str | None = None
    expense_terms: Annotated[ExpenseTerms | None, Meta(
        description="The contract's expense terms; null when the PSA holds none (no expense is then billable).")] \
        = None


class PsaProjectUpsert(Struct):
    title: NonEmpty
    client_name: NonEmpty
    budget: Money
    billing_terms: Literal["time_and_materials", "fixed_fee", "mixed"]
    start_date: dt.date | None = None
    due_date: dt.date | None = None
    milestones: list[PsaMilestone] = []
    erp_project_id: str | None = None
    rate_card_id: str | None = None


class TimesheetSubmission(Struct):
    """A submitted timesheet in the PSA (Kantata): one person, one project, one period of entries.

    A resubmitted rejected timesheet is a new submission, so approvals never carry over.
    """

    id: str
    user_email: str
    project_external_id: str
    period_start: dt.date
    period_end: dt.date
    status: Literal["pending", "approved", "rejected"]
    time_entry_ids: list[str]
    decided_at: dt.datetime | None = None
