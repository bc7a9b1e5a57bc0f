"""Time domain contract: `/system/time/v1` — time entries, expenses, projects and uninvoiced time as captured.

The time system is read here, never written: approval happens in the time system, and
the time-to-bill process takes approved entries from it. A page holds *at most* `limit`
entries and may hold fewer (even on a page that is not the last) when a filter the
vendor cannot apply itself (e.g. status on Harvest) drops entries; only an absent
`next_cursor` means the end. A cursor carries the whole query it was issued for, so the
filters of a request that passes `cursor` are taken from the cursor.

Legal-entity grant (`system_apis/grants.py`): the time system knows no entities; an entry,
a project and an uninvoiced row belong to the entity of the ERP project their project code
names (psconnect sets it to the ERP project's external id). A restricted caller sees only
those of granted entities; one whose project the ERP does not know is hidden from it.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Protocol

import msgspec
from litestar import Request, Router, get
from litestar.params import PathParameter, QueryParameter

from contracts.common import Page
from contracts.time import Expense, TimeEntry, TimeEntryStatus, TimeProject, UninvoicedProject
from foundation.paging import decode_cursor, encode_cursor
from system_apis.domains._entity import ENTITY_PARAMETER, bind_call
from system_apis.domains._params import Cursor, Limit
from system_apis.grants import kept, system_scope

__all__ = ["API", "EntryLimit", "TimeEntryQuery", "TimeSystem", "time_router"]

API = "system.time"

EntryLimit = Annotated[int, QueryParameter(ge=1, le=2000, description="Page size (entries).")]


class TimeEntryQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Which time entries to list; every field optional (None = no filter)."""

    status: TimeEntryStatus | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    updated_since: dt.datetime | None = None
    project_code: str | None = None


class TimeSystem(Protocol):
    """What a time-capture vendor adapter provides."""

    async def list_time_entries(self, query: TimeEntryQuery, limit: int, cursor: str | None) -> Page[TimeEntry]: ...

    async def get_time_entry(self, entry_id: str) -> TimeEntry: ...

    async def list_projects(self, limit: int, cursor: str | None) -> Page[TimeProject]: ...

    async def uninvoiced_report(self, start: dt.date, end: dt.date) -> Page[UninvoicedProject]: ...

    async def list_expenses(self, query: TimeEntryQuery, limit: int, cursor: str | None) -> Page[Expense]:
        """Expenses as captured, filtered like time entries (status, spent date, change time, project code)."""
        ...

    async def get_expense(self, expense_id: str) -> Expense: ...


def time_router(system: TimeSystem) -> Router:
    @get("/time-entries", operation_id="time.listTimeEntries", summary="List time entries")
    async def list_time_entries(
            request: Request[Any, Any, Any],
            status: Annotated[TimeEntryStatus | None, QueryParameter(description="Approval state.")] = None,
            start: Annotated[dt.date | None, QueryParameter(name="from", description="First spent date.")] = None,
            end: Annotated[dt.date | None, QueryParameter(name="to", description="Last spent date.")] = None,
            updated_since: Annotated[dt.datetime | None, QueryParameter(
                description="Only entries changed at or after this instant (ISO 8601).")] = None,
            project_code: Annotated[str | None, QueryParameter(max_length=80)] = None,
            limit: EntryLimit = 500, cursor: Cursor = None) -> Page[TimeEntry]:
        query = TimeEntryQuery(status=status, start=start, end=end, updated_since=updated_since,
                               project_code=project_code)
        allowed = await (await system_scope(request)).project_filter()
        return kept(await system.list_time_entries(query, limit, cursor), lambda e: allowed(e.project_code))

    @get("/time-entries/{entry_id:str}", operation_id="time.getTimeEntry", summary="Get a time entry")
    async def get_time_entry(request: Request[Any, Any, Any],
                             entry_id: Annotated[str, PathParameter(max_length=64)]) -> TimeEntry:
        scope = await system_scope(request)
        entry = await system.get_time_entry(entry_id)
        if not await scope.allows_project(entry.project_code):
            scope.grant.found(None, "Time entry", entry_id)
        return entry

    @get("/expenses", operation_id="time.listExpenses", summary="List expenses")
    async def list_expenses(
            request: Request[Any, Any, Any],
            status: Annotated[TimeEntryStatus | None, QueryParameter(description="Approval state.")] = None,
            start: Annotated[dt.date | None, QueryParameter(name="from", description="First spent date.")] = None,
            end: Annotated[dt.date | None, QueryParameter(name="to", description="Last spent date.")] = None,
            updated_since: Annotated[dt.datetime | None, QueryParameter(
                description="Only expenses changed at or after this instant (ISO 8601).")] = None,
            project_code: Annotated[str | None, QueryParameter(max_length=80)] = None,
            limit: EntryLimit = 500, cursor: Cursor = None) -> Page[Expense]:
        query = TimeEntryQuery(status=status, start=start, end=end, updated_since=updated_since,
                               project_code=project_code)
        allowed = await (await system_scope(request)).project_filter()
        return kept(await system.list_expenses(query, limit, cursor), lambda e: allowed(e.project_code))

    @get("/expenses/{expense_id:str}", operation_id="time.getExpense", summary="Get an expense")
    async def get_expense(request: Request[Any, Any, Any],
                          expense_id: Annotated[str, PathParameter(max_length=64)]) -> Expense:
        scope = await system_scope(request)
        expense = await system.get_expense(expense_id)
        if not await scope.allows_project(expense.project_code):
            scope.grant.found(None, "Expense", expense_id)
        return expense

    @get("/projects", operation_id="time.listProjects", summary="List the time system's projects")
    async def list_projects(request: Request[Any, Any, Any], limit: Limit = 100,
                            cursor: Cursor = None) -> Page[TimeProject]:
        allowed = await (await system_scope(request)).project_filter()
        return kept(await system.list_projects(limit, cursor), lambda p: allowed(p.code))

    @get("/reports/uninvoiced", operation_id="time.uninvoicedReport",
         summary="Billable time not yet invoiced, per project")
    async def uninvoiced_report(
            request: Request[Any, Any, Any],
            start: Annotated[dt.date, QueryParameter(name="from", description="First spent date.")],
            end: Annotated[dt.date, QueryParameter(name="to", description="Last spent date (≤ 1 year on).")],
            limit: Limit = 100, cursor: Cursor = None,
    ) -> Page[UninvoicedProject]:
        # The vendor reports every project at once; the contract pages it like every other list.
        allowed = await (await system_scope(request)).project_filter()
        rows = [r for r in (await system.uninvoiced_report(start, end)).items if allowed(r.project_code)]
        offset = decode_cursor(cursor, "time.uninvoiced")
        more = offset + limit < len(rows)
        following = encode_cursor(offset + limit, "time.uninvoiced") if more else None
        return Page(items=rows[offset:offset + limit], next_cursor=following)

    return Router(path="/system/time/v1", opt={"api": API}, tags=["time"], before_request=bind_call,
                  parameters=ENTITY_PARAMETER,
                  route_handlers=[list_time_entries, get_time_entry, list_expenses, get_expense, list_projects,
                                  uninvoiced_report])
