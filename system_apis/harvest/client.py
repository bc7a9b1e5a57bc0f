"""Harvest API v2 wire protocol (https://help.getharvest.com/api-v2/): auth, link paging, errors.

Error tree raised here (all from `system_apis._internal.http`)::

    VendorError
    ├── VendorRateLimited    429 — 100 requests per 15 s (reports: 100 per 15 min), Retry-After
    │                        says when to come back; Harvest has no separate concurrency error
    ├── VendorUnavailable    5xx, timeouts, connection failures
    ├── CircuitOpenError     too many transient failures in a row
    └── VendorRejected       400/401/403/404/422; `code` = the body's `error` ("invalid_token")
                             or the status's name ("not_found", "unprocessable_entity")

Every request carries `Authorization: Bearer …`, `Harvest-Account-Id` and a
`User-Agent` naming the application and a contact — Harvest answers 400 without one
(https://help.getharvest.com/api-v2/introduction/overview/general/#api-requests).
Lists are followed through `links.next` only, never by counting pages: Harvest moves
to cursor paging after the first page, where `page`/`next_page` are null
(https://help.getharvest.com/api-v2/introduction/overview/pagination/). A next link is
re-based onto this client's own base URL, so a forged or proxied link can never carry
our token to another host. Everything used here is a read, so every call is retried.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final, TypeVar

import httpx
import msgspec

from foundation.retry import RetryPolicy
from system_apis._internal.http import Sleep, VendorError, VendorHttp, VendorRejected, error_body, transient_error
from system_apis._internal.instants import utc_text
from system_apis.harvest import _wire as wire
from system_apis.pacing import Pacer, VendorBudget

__all__ = [
    "API_PREFIX",
    "BASE_URL",
    "DEFAULT_ACCOUNT_ID",
    "MAX_PER_PAGE",
    "RATE_LIMIT",
    "USER_AGENT",
    "VENDOR",
    "HarvestClient",
    "classify",
    "split_link",
]

VENDOR: Final = "harvest"
BASE_URL: Final = "https://api.harvestapp.com"
API_PREFIX: Final = "/v2"
MAX_PER_PAGE: Final = 2000
DEFAULT_ACCOUNT_ID: Final = "1000001"
USER_AGENT: Final = "psconnect (integration@meridian.example)"
RATE_LIMIT: Final = VendorBudget(100, 15.0)
"""Harvest's limit for one account, all our consumers together
(https://help.getharvest.com/api-v2/introduction/overview/general/#rate-limiting); the client paces to it."""

P = TypeVar("P", bound=wire.PageMeta)
T = TypeVar("T", bound=msgspec.Struct)
Params = dict[str, str | int]

_CODES: Final = {400: "bad_request", 401: "invalid_token", 403: "forbidden", 404: "not_found",
                 422: "unprocessable_entity"}
_DECODERS: dict[type[Any], msgspec.json.Decoder[Any]] = {}


def _decoder(kind: type[T]) -> msgspec.json.Decoder[T]:
    decoder = _DECODERS.get(kind)
    if decoder is None:
        decoder = _DECODERS[kind] = msgspec.json.Decoder(kind)
    return decoder


def classify(response: httpx.Response) -> VendorError | None:
    """Harvest's error bodies (`{code, message}` or OAuth's `{error, error_description}`) to the tree."""
    status = response.status_code
    if status < 400:
        return None
    body = error_body(response)
    fields = body if isinstance(body, dict) else {}
    message = str(fields.get("message") or fields.get("error_description") or fields.get("error")
                  or f"HTTP {status}")
    transient = transient_error(VENDOR, response, message, body)
    if transient is not None:
        return transient
    code = str(fields["error"]) if isinstance(fields.get("error"), str) else _CODES.get(status, f"http_{status}")
    return VendorRejected(VENDOR, message, status=status, code=code, body=body)


def split_link(link: str, *, expected_path: str | None = None) -> tuple[str, Params]:
    """A `links.next` URL as (path, params) relative to our base URL; refuses links off the API."""
    url = httpx.URL(link)
    if not url.path.startswith(f"{API_PREFIX}/") or (expected_path is not None and url.path != expected_path):
        raise ValueError(f"not a Harvest {expected_path or API_PREFIX} link: {url.path!r}")
    return url.path, dict(url.params.items())


def _day(value: dt.date) -> str:
    return value.isoformat()


class HarvestClient:
    """Harvest API v2 over `VendorHttp`; requests go wherever `http`'s transport points."""

    def __init__(self, http: httpx.AsyncClient, *, token: str = "sim-token", retry: RetryPolicy | None = None,
                 sleep: Sleep = asyncio.sleep, account_id: str = DEFAULT_ACCOUNT_ID,
                 user_agent: str = USER_AGENT, budget: VendorBudget | None = RATE_LIMIT) -> None:
        self.http = VendorHttp(VENDOR, http, classify=classify, retry=retry, sleep=sleep,
                               pacer=Pacer(budget) if budget is not None else None)
        self._headers = {"Authorization": f"Bearer {token}", "Harvest-Account-Id": account_id,
                         "User-Agent": user_agent, "Accept": "application/json"}

    async def get(self, path: str, kind: type[T], params: Mapping[str, str | int] | None = None) -> T:
        """GET `path` (under /v2 unless already absolute) and decode the body straight into `kind`."""
        url = path if path.startswith(f"{API_PREFIX}/") else f"{API_PREFIX}/{path}"
        response = await self.http.request("GET", url, params=params, headers=self._headers)
        try:
            return _decoder(kind).decode(response.content)
        except msgspec.ValidationError as exc:
            raise VendorRejected(VENDOR, f"unreadable {kind.__name__}: {exc}", status=502,
                                 code="unreadable_response") from exc

    async def page(self, path: str, kind: type[P], *, params: Mapping[str, str | int] | None = None,
                   link: str | None = None) -> P:
        """One page: the first (from `params`) or the one a previous page's `links.next` names."""
        if link is not None:
            path, params = split_link(link, expected_path=f"{API_PREFIX}/{path}")
        return await self.get(path, kind, params)

    async def pages(self, path: str, kind: type[P], params: Mapping[str, str | int] | None = None,
                    ) -> AsyncIterator[P]:
        """Every page of a list, following `links.next` until it is null."""
        current = await self.page(path, kind, params={"per_page": MAX_PER_PAGE, **(params or {})})
        while True:
            yield current
            if not current.links.next:
                return
            current = await self.page(path, kind, link=current.links.next)

    # --- time entries ---------------------------------------------------------------------------------

    @staticmethod
    def time_entry_params(*, start: dt.date | None = None, end: dt.date | None = None,
                          updated_since: dt.datetime | None = None, project_id: int | None = None,
                          user_id: int | None = None, is_billed: bool | None = None,
                          per_page: int = MAX_PER_PAGE) -> Params:
        """Query of `GET /v2/time_entries` (only the spec's parameters; `from`/`to` are spent dates)."""
        params: Params = {"per_page": min(per_page, MAX_PER_PAGE)}
        if start is not None:
            params["from"] = _day(start)
        if end is not None:
            params["to"] = _day(end)
        if updated_since is not None:
            params["updated_since"] = f"{utc_text(updated_since)}Z"
        if project_id is not None:
            params["project_id"] = project_id
        if user_id is not None:
            params["user_id"] = user_id
        if is_billed is not None:
            params["is_billed"] = "true" if is_billed else "false"
        return params

    async def time_entries_page(self, *, params: Mapping[str, str | int] | None = None,
                                link: str | None = None) -> wire.TimeEntriesPage:
        """One page of time entries (spent date, newest first).

        Docs: https://help.getharvest.com/api-v2/timesheets-api/timesheets/time-entries/#list-all-time-entries
        """
        return await self.page("time_entries", wire.TimeEntriesPage, params=params, link=link)

    async def iter_time_entries(self, **filters: Any) -> AsyncIterator[wire.TimeEntry]:
        """Every time entry matching `time_entry_params(**filters)`.

        Docs: https://help.getharvest.com/api-v2/timesheets-api/timesheets/time-entries/#list-all-time-entries
        """
        async for page in self.pages("time_entries", wire.TimeEntriesPage, self.time_entry_params(**filters)):
            for entry in page.time_entries:
                yield entry

    async def get_time_entry(self, entry_id: int) -> wire.TimeEntry:
        """Docs: https://help.getharvest.com/api-v2/timesheets-api/timesheets/time-entries/#retrieve-a-time-entry"""
        return await self.get(f"time_entries/{entry_id}", wire.TimeEntry)

    # --- expenses -------------------------------------------------------------------------------------

    @staticmethod
    def expense_params(*, client_id: int | None = None, **filters: Any) -> Params:
        """Query of `GET /v2/expenses`: the time-entry filters (same names, `from`/`to` are spent dates) and
        `client_id` — the spec declares the same set for both lists.

        Docs: https://help.getharvest.com/api-v2/expenses-api/expenses/expenses/#list-all-expenses
        """
        params = HarvestClient.time_entry_params(**filters)
        if client_id is not None:
            params["client_id"] = client_id
        return params

    async def expenses_page(self, *, params: Mapping[str, str | int] | None = None,
                            link: str | None = None) -> wire.ExpensesPage:
        """One page of expenses (spent date, newest first).

        Docs: https://help.getharvest.com/api-v2/expenses-api/expenses/expenses/#list-all-expenses
        """
        return await self.page("expenses", wire.ExpensesPage, params=params, link=link)

    async def iter_expenses(self, **filters: Any) -> AsyncIterator[wire.Expense]:
        """Every expense matching `expense_params(**filters)`.

        Docs: https://help.getharvest.com/api-v2/expenses-api/expenses/expenses/#list-all-expenses
        """
        async for page in self.pages("expenses", wire.ExpensesPage, self.expense_params(**filters)):
            for expense in page.expenses:
                yield expense

    async def get_expense(self, expense_id: int) -> wire.Expense:
        """Docs: https://help.getharvest.com/api-v2/expenses-api/expenses/expenses/#retrieve-an-expense"""
        return await self.get(f"expenses/{expense_id}", wire.Expense)

    async def iter_expense_categories(self) -> AsyncIterator[wire.ExpenseCategory]:
        """Names, unit names and unit prices of the account's expense categories (archived ones too: an old
        expense may still name one).

        Docs: https://help.getharvest.com/api-v2/expenses-api/expenses/expense-categories/#list-all-expense-categories
        """
        async for page in self.pages("expense_categories", wire.ExpenseCategoriesPage):
            for category in page.expense_categories:
                yield category

    # --- projects, clients, assignments ---------------------------------------------------------------

    async def projects_page(self, *, per_page: int = MAX_PER_PAGE, link: str | None = None,
                            is_active: bool | None = None) -> wire.ProjectsPage:
        """Docs: https://help.getharvest.com/api-v2/projects-api/projects/projects/#list-all-projects"""
        params: Params = {"per_page": min(per_page, MAX_PER_PAGE)}
        if is_active is not None:
            params["is_active"] = "true" if is_active else "false"
        return await self.page("projects", wire.ProjectsPage, params=params, link=link)

    async def iter_projects(self) -> AsyncIterator[wire.Project]:
        """Docs: https://help.getharvest.com/api-v2/projects-api/projects/projects/#list-all-projects"""
        async for page in self.pages("projects", wire.ProjectsPage):
            for project in page.projects:
                yield project

    async def get_project(self, project_id: int) -> wire.Project:
        """Docs: https://help.getharvest.com/api-v2/projects-api/projects/projects/#retrieve-a-project"""
        return await self.get(f"projects/{project_id}", wire.Project)

    async def iter_clients(self) -> AsyncIterator[wire.Client]:
        """Docs: https://help.getharvest.com/api-v2/clients-api/clients/clients/#list-all-clients"""
        async for page in self.pages("clients", wire.ClientsPage):
            for client in page.clients:
                yield client

    async def iter_user_assignments(self) -> AsyncIterator[wire.UserAssignment]:
        """Who may book to which project, at what hourly rate (projects billed by person).

        Docs: https://help.getharvest.com/api-v2/projects-api/projects/user-assignments/#list-all-user-assignments
        """
        async for page in self.pages("user_assignments", wire.UserAssignmentsPage):
            for assignment in page.user_assignments:
                yield assignment

    async def iter_task_assignments(self) -> AsyncIterator[wire.TaskAssignment]:
        """Tasks open on each project, billable or not, with the task's hourly rate.

        Docs: https://help.getharvest.com/api-v2/projects-api/projects/task-assignments/#list-all-task-assignments
        """
        async for page in self.pages("task_assignments", wire.TaskAssignmentsPage):
            for assignment in page.task_assignments:
                yield assignment

    # --- users, reports, connectivity -----------------------------------------------------------------

    async def iter_users(self) -> AsyncIterator[wire.User]:
        """Docs: https://help.getharvest.com/api-v2/users-api/users/users/#list-all-users"""
        async for page in self.pages("users", wire.UsersPage):
            for user in page.users:
                yield user

    async def me(self) -> wire.User:
        """Docs: https://help.getharvest.com/api-v2/users-api/users/users/#retrieve-the-currently-authenticated-user"""
        return await self.get("users/me", wire.User)

    async def iter_uninvoiced(self, start: dt.date, end: dt.date) -> AsyncIterator[wire.UninvoicedResult]:
        """Billable time and expenses not yet invoiced, per project; the range may not exceed a year.

        Reports take dates as YYYYMMDD and have their own, tighter rate limit (100 per 15 minutes).
        Docs: https://help.getharvest.com/api-v2/reports-api/reports/uninvoiced-report/
        """
        params: Params = {"from": start.isoformat().replace("-", ""), "to": end.isoformat().replace("-", "")}
        async for page in self.pages("reports/uninvoiced", wire.UninvoicedPage, params):
            for row in page.results:
                yield row

    async def check(self) -> bool:
        """Connectivity probe: the token and account id are accepted and the API answers."""
        try:
            await self.me()
        except VendorError:
            return False
        return True
