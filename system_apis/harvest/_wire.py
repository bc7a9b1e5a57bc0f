"""Harvest v2 records as the client decodes them: typed msgspec Structs, unknown fields skipped.

A month-end read moves ~440,000 time entries through here, so each wire page is decoded
once, straight into these Structs (numbers to `Decimal`, dates and instants parsed by
msgspec in C), and only the fields psconnect reads are declared — msgspec skips the rest
(`user_assignment`, `task_assignment`, timers, …) without building objects for them.
Field meanings: https://help.getharvest.com/api-v2/timesheets-api/timesheets/time-entries/ and
https://help.getharvest.com/api-v2/expenses-api/expenses/expenses/ (expenses and their categories).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec

__all__ = [
    "Client",
    "ClientRef",
    "ClientsPage",
    "Expense",
    "ExpenseCategoriesPage",
    "ExpenseCategory",
    "ExpenseCategoryRef",
    "ExpensesPage",
    "ExternalReference",
    "Links",
    "PageMeta",
    "Project",
    "ProjectRef",
    "ProjectsPage",
    "Receipt",
    "Ref",
    "TaskAssignment",
    "TaskAssignmentsPage",
    "TimeEntriesPage",
    "TimeEntry",
    "UninvoicedPage",
    "UninvoicedResult",
    "User",
    "UserAssignment",
    "UserAssignmentsPage",
    "UsersPage",
]


class Ref(msgspec.Struct, frozen=True, kw_only=True):
    """`{id, name}` — how Harvest points from one record to another."""

    id: int
    name: str | None = None


class ProjectRef(Ref, frozen=True, kw_only=True):
    code: str | None = None


class ClientRef(Ref, frozen=True, kw_only=True):
    currency: str | None = None


class ExternalReference(msgspec.Struct, kw_only=True):
    id: str | None = None
    group_id: str | None = None
    account_id: str | None = None
    permalink: str | None = None
    service: str | None = None
    service_icon_url: str | None = None


class TimeEntry(msgspec.Struct, kw_only=True):
    id: int
    spent_date: dt.date
    user: Ref
    project: Ref
    hours: Decimal
    created_at: dt.datetime
    updated_at: dt.datetime
    client: Ref | None = None
    task: Ref | None = None
    notes: str | None = None
    is_locked: bool | None = None
    locked_reason: str | None = None
    is_closed: bool | None = None
    is_billed: bool | None = None
    billable: bool | None = None
    billable_rate: Decimal | None = None
    cost_rate: Decimal | None = None
    external_reference: ExternalReference | None = None


class ExpenseCategoryRef(Ref, frozen=True, kw_only=True):
    """The category an expense names; the spec types `unit_price` here as a string (a number in the category
    list), so it is decoded to `Decimal` from either."""

    unit_price: Decimal | None = None
    unit_name: str | None = None


class Receipt(msgspec.Struct, frozen=True, kw_only=True):
    url: str | None = None
    file_name: str | None = None
    file_size: int | None = None
    content_type: str | None = None


class Expense(msgspec.Struct, kw_only=True):
    """An expense; `units` is 1 on a category without a unit price, the quantity (miles) on one with it."""

    id: int
    spent_date: dt.date
    user: Ref
    project: Ref
    updated_at: dt.datetime
    client: ClientRef | None = None
    expense_category: ExpenseCategoryRef | None = None
    receipt: Receipt | None = None
    notes: str | None = None
    units: Decimal | None = None
    total_cost: Decimal | None = None
    billable: bool | None = None
    is_closed: bool | None = None
    is_locked: bool | None = None
    is_billed: bool | None = None
    locked_reason: str | None = None
    created_at: dt.datetime | None = None


class ExpenseCategory(msgspec.Struct, kw_only=True):
    id: int
    name: str
    unit_name: str | None = None
    unit_price: Decimal | None = None
    is_active: bool | None = None


class Project(msgspec.Struct, kw_only=True):
    id: int
    name: str
    code: str | None = None
    client: ClientRef | None = None
    is_active: bool | None = None
    is_billable: bool | None = None
    is_fixed_fee: bool | None = None
    bill_by: str | None = None
    hourly_rate: Decimal | None = None
    fee: Decimal | None = None
    starts_on: dt.date | None = None
    ends_on: dt.date | None = None
    updated_at: dt.datetime | None = None


class User(msgspec.Struct, kw_only=True):
    id: int
    email: str
    first_name: str | None = None
    last_name: str | None = None
    is_active: bool | None = None
    default_hourly_rate: Decimal | None = None
    cost_rate: Decimal | None = None
    roles: list[str] | None = None
    updated_at: dt.datetime | None = None


class Client(msgspec.Struct, kw_only=True):
    id: int
    name: str
    currency: str | None = None
    is_active: bool | None = None


class UserAssignment(msgspec.Struct, kw_only=True):
    id: int
    project: ProjectRef
    user: Ref
    is_active: bool | None = None
    use_default_rates: bool | None = None
    hourly_rate: Decimal | None = None


class TaskAssignment(msgspec.Struct, kw_only=True):
    id: int
    project: ProjectRef
    task: Ref
    is_active: bool | None = None
    billable: bool | None = None
    hourly_rate: Decimal | None = None


class UninvoicedResult(msgspec.Struct, kw_only=True):
    project_id: int
    project_name: str | None = None
    client_id: int | None = None
    client_name: str | None = None
    currency: str
    total_hours: Decimal | None = None
    uninvoiced_hours: Decimal | None = None
    uninvoiced_expenses: Decimal | None = None
    uninvoiced_amount: Decimal | None = None


class Links(msgspec.Struct, kw_only=True):
    first: str | None = None
    next: str | None = None
    previous: str | None = None
    last: str | None = None


class PageMeta(msgspec.Struct, kw_only=True):
    """Paging fields every Harvest list answers with; `links.next` is the only one to follow.

    Under cursor paging `page`/`next_page`/`previous_page` are null on the pages between the
    first and the last (https://help.getharvest.com/api-v2/introduction/overview/pagination/).
    """

    links: Links
    per_page: int | None = None
    total_pages: int | None = None
    total_entries: int | None = None
    page: int | None = None
    next_page: int | None = None
    previous_page: int | None = None


class TimeEntriesPage(PageMeta, kw_only=True):
    time_entries: list[TimeEntry]


class ExpensesPage(PageMeta, kw_only=True):
    expenses: list[Expense]


class ExpenseCategoriesPage(PageMeta, kw_only=True):
    expense_categories: list[ExpenseCategory]


class ProjectsPage(PageMeta, kw_only=True):
    projects: list[Project]


class UsersPage(PageMeta, kw_only=True):
    users: list[User]


class ClientsPage(PageMeta, kw_only=True):
    clients: list[Client]


class UserAssignmentsPage(PageMeta, kw_only=True):
    user_assignments: list[UserAssignment]


class TaskAssignmentsPage(PageMeta, kw_only=True):
    task_assignments: list[TaskAssignment]


class UninvoicedPage(PageMeta, kw_only=True):
    results: list[UninvoicedResult]
