"""PSA domain objects: delivery projects with milestones and budget. PSA owns delivery."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from contracts.common import FrozenStruct, Money, NonEmpty, Struct

__all__ = ["PsaMilestone", "PsaProject", "PsaProjectUpsert", "TimesheetSubmission"]


class PsaMilestone(FrozenStruct, frozen=True):
    name: NonEmpty
    due_date: dt.date
    amount: Money | None = None


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
