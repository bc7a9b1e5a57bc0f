"""PSA domain objects: delivery projects with milestones and budget. PSA owns delivery."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from contracts.common import FrozenStruct, Money, Struct

__all__ = ["PsaMilestone", "PsaProject", "PsaProjectUpsert"]


class PsaMilestone(FrozenStruct, frozen=True):
    name: str
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


class PsaProjectUpsert(Struct):
    title: str
    client_name: str
    budget: Money
    billing_terms: Literal["time_and_materials", "fixed_fee", "mixed"]
    start_date: dt.date | None = None
    due_date: dt.date | None = None
    milestones: list[PsaMilestone] = []
    erp_project_id: str | None = None
