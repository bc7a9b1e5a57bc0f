"""Workforce objects: workers (HR owns identity) and assignments (PSA owns staffing)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from msgspec import Meta

from contracts.common import Email, Hours, Money, NonEmpty, Struct

__all__ = ["Assignment", "CostCenter", "Employee", "EmployeeUpsert", "PsaUser", "PsaUserUpsert", "Worker"]


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
    """A worker staffed on a project in a role (PSA owns staffing); the role prices the time."""

    id: str
    project_external_id: Annotated[str, Meta(description="The ERP project's external id (PRJ-…).")]
    worker_email: str
    role: str
    start_date: dt.date
    end_date: dt.date
    planned_hours: Hours
    worker_id: Annotated[str | None, Meta(description="HR id, when the PSA user carries it.")] = None


class CostCenter(Struct):
    id: str
    name: str
    legal_entity_code: str


class EmployeeUpsert(Struct):
    """A worker as the ERP needs it to post time against (NetSuite employee)."""

    name: NonEmpty
    email: NonEmpty
    legal_entity_id: NonEmpty
    cost_center: NonEmpty
    cost_rate: Money
    active: bool


class Employee(Struct):
    id: str
    external_id: str
    name: str
    email: str
    legal_entity_id: str
    cost_center: str
    cost_rate: Money
    active: bool


class PsaUserUpsert(Struct):
    """A worker as the PSA needs it to staff and price (Kantata user)."""

    name: NonEmpty
    email: Email
    role: NonEmpty
    practice: NonEmpty
    cost_rate: Money
    active: bool


class PsaUser(Struct):
    id: str
    external_id: str
    name: str
    email: str
    role: str
    practice: str
    cost_rate: Money
    active: bool
