"""Workforce objects: workers (HR owns identity) and assignments (PSA owns staffing)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from msgspec import Meta

from contracts.common import Hours, Money, Struct

__all__ = ["Assignment", "Worker"]


class Worker(Struct):
    id: Annotated[str, Meta(description="HR id of the worker (system of record).")]
    name: str
    email: str
    legal_entity_code: str
    role: Annotated[str, Meta(examples=["senior_consultant"])]
    practice: str
    cost_center: str
    status: Literal["active", "on_leave", "terminated"]
    cost_rate: Annotated[Money, Meta(description="Hourly cost rate.")]
    hire_date: dt.date
    termination_date: dt.date | None = None


class Assignment(Struct):
    id: str
    project_id: str
    worker_id: str
    role: str
    start_date: dt.date
    end_date: dt.date
    planned_hours: Hours
