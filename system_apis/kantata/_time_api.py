"""The time system API on Kantata OX: time entries, expenses, projects and uninvoiced time as Kantata holds them.

A firm that captures time and expenses in Kantata rather than a separate time tool routes an entity's
`time` domain to its Kantata account (the connections file), as CA01 does to its Certinia org; the
billing process then reads approved time and expenses from Kantata through the same contract.

Paging: Kantata pages by page number, at most 200 records a page, sorted by its own order. A canonical
page of `limit` items reads as many Kantata pages as it needs and may end inside one: the cursor
carries the Kantata page, its size, how many of its records were already returned, and the whole
query. Kantata filters approved records (`approved`), spent dates and the workspace itself; the other
statuses and `updated_since` are picked from each page here (Kantata's `approved` cannot be negated and
its change-time filter is not documented for these lists), so such pages may hold fewer than `limit`.
Page-number paging over a list that changes while it is read can show a record twice; the billing
process keys every line, so a repeat is never posted twice.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Awaitable, Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Generic, Protocol, TypeVar

import msgspec

from contracts.common import Money, Page
from contracts.problems import invalid_cursor
from contracts.time import Expense, TimeEntry, TimeEntryStatus, TimeProject, UninvoicedProject
from foundation.clock import as_utc
from foundation.paging import decode_position, encode_position
from system_apis.domains.time import TimeEntryQuery
from system_apis.kantata._delivery_api import not_found, project_codes, time_entries_of, unreadable, workspace_of
from system_apis.kantata._delivery_mapping import hours_of
from system_apis.kantata._expense_mapping import expense_of
from system_apis.kantata._wire import Record
from system_apis.kantata.client import MAX_PER_PAGE, KantataClient, KantataPage
from system_apis.kantata.mapping import SERVICE_MODEL, SERVICE_NAME, MappingError, from_minor, status_of

__all__ = ["KantataTime"]

T = TypeVar("T", TimeEntry, Expense)


class Fetch(Protocol):
    """A client list of the time system's (`list_time_entries`, `list_expenses`): one numbered Kantata page."""

    def __call__(self, *, page: int, per_page: int, approved: bool, start: dt.date | None, end: dt.date | None,
                 workspace_ids: list[str] | None) -> Awaitable[KantataPage]: ...


class _Position(msgspec.Struct, frozen=True, kw_only=True):
    page: int
    per_page: int
    skip: int = 0
    status: TimeEntryStatus | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    updated_since: dt.datetime | None = None
    project_code: str | None = None


class _Lister(Generic[T]):
    """One canonical list over a Kantata collection: the paging and filtering of the module docstring."""

    def __init__(self, list_id: str, fetch: Fetch,
                 convert: Callable[[KantataPage, list[Record]], Awaitable[list[T]]]) -> None:
        self.list_id = list_id
        self.fetch = fetch
        self.convert: Callable[[KantataPage, list[Record]], Awaitable[list[T]]] = convert

    def _position(self, query: TimeEntryQuery, limit: int, cursor: str | None) -> _Position:
        if not cursor:  # an instant without an offset is read as UTC, as the other time systems send it
            return _Position(page=1, per_page=min(limit, MAX_PER_PAGE), status=query.status, start=query.start,
                             end=query.end, updated_since=as_utc(query.updated_since),
                             project_code=query.project_code)
        position = decode_position(cursor, _Position, self.list_id)
        if position.page < 1 or not 1 <= position.per_page <= MAX_PER_PAGE or \
                not 0 <= position.skip < position.per_page:
            raise invalid_cursor("The cursor is out of range.")
        return position

    async def page(self, client: KantataClient, query: TimeEntryQuery, limit: int, cursor: str | None) -> Page[T]:
        at = self._position(query, limit, cursor)
        workspaces: list[str] | None = None
        if at.project_code is not None:
            workspace = await workspace_of(client, at.project_code)
            if workspace is None:
                return Page(items=[])
            workspaces = [workspace]
        items: list[T] = []
        number, skip, taken = at.page, at.skip, 0
        while True:
            page = await self.fetch(page=number, per_page=at.per_page, approved=at.status == "approved",
                                    start=at.start, end=at.end, workspace_ids=workspaces)
            rest = page.records[skip:]
            take = rest[:limit - taken]
            items += [x for x in await self.convert(page, take)
                      if (at.status is None or x.status == at.status)
                      and (at.updated_since is None or x.updated_at >= at.updated_since)]
            taken += len(take)
            if len(take) < len(rest):  # the canonical page ends inside this Kantata page
                following = msgspec.structs.replace(at, page=number, skip=skip + len(take))
                break
            if not page.has_next:
                return Page(items=items)
            number, skip = number + 1, 0
            if taken >= limit:
                following = msgspec.structs.replace(at, page=number, skip=0)
                break
        return Page(items=items, next_cursor=encode_position(following, self.list_id))


class KantataTime:
    """`TimeSystem` on one Kantata account (`system_apis/domains/time.py`)."""

    def __init__(self, client: KantataClient) -> None:
        self.client = client
        self._entries = _Lister[TimeEntry]("time.kantata.time_entries", client.list_time_entries, self._time_entries)
        self._expenses = _Lister[Expense]("time.kantata.expenses", client.list_expenses, self._expense_items)

    # --- time entries ---------------------------------------------------------------------------------

    async def _time_entries(self, page: KantataPage, records: list[Record]) -> list[TimeEntry]:
        return time_entries_of(page, records, await project_codes(self.client, {str(e["workspace_id"])
                                                                                for e in records}))

    async def list_time_entries(self, query: TimeEntryQuery, limit: int, cursor: str | None) -> Page[TimeEntry]:
        return await self._entries.page(self.client, query, limit, cursor)

    async def get_time_entry(self, entry_id: str) -> TimeEntry:
        if not entry_id.isdigit():
            raise not_found("time entry", entry_id)
        page = await self.client.get_time_entry(entry_id)
        return (await self._time_entries(page, page.records))[0]

    # --- expenses -------------------------------------------------------------------------------------

    async def _expense_items(self, page: KantataPage, records: list[Record]) -> list[Expense]:
        codes = await project_codes(self.client, {str(e["workspace_id"]) for e in records})
        users, submissions = page.included.get("users", {}), page.included.get("expense_report_submissions", {})
        workspaces = page.included.get("workspaces", {})
        try:
            return [expense_of(e, user=users.get(str(e.get("user_id"))),
                               submission=submissions.get(str(e.get("active_submission_id"))),
                               workspace=workspaces.get(str(e.get("workspace_id"))),
                               project_code=codes.get(str(e.get("workspace_id")), ""))
                    for e in records]
        except MappingError as exc:
            raise unreadable(exc, "expense") from exc

    async def list_expenses(self, query: TimeEntryQuery, limit: int, cursor: str | None) -> Page[Expense]:
        return await self._expenses.page(self.client, query, limit, cursor)

    async def get_expense(self, expense_id: str) -> Expense:
        if not expense_id.isdigit():
            raise not_found("expense", expense_id)
        page = await self.client.get_expense(expense_id)
        return (await self._expense_items(page, page.records))[0]

    # --- projects and uninvoiced time -----------------------------------------------------------------

    async def list_projects(self, limit: int, cursor: str | None) -> Page[TimeProject]:
        """Unarchived workspaces; one is billable when it has a rate card (without one Kantata prices no hour)."""
        at = decode_position(cursor, _Position, "time.kantata.projects") if cursor else \
            _Position(page=1, per_page=min(limit, MAX_PER_PAGE))
        if at.page < 1 or not 1 <= at.per_page <= MAX_PER_PAGE:
            raise invalid_cursor("The cursor is out of range.")
        page = await self.client.list_workspaces(page=at.page, per_page=at.per_page,
                                                 include=["external_references", "workspace_groups"])
        items = []
        for w in page.records:
            refs = page.associated(w, "external_references", "external_reference_ids")
            code = next((str(r["service_model_ref"]) for r in refs if r.get("service_name") == SERVICE_NAME
                         and r.get("service_model") == SERVICE_MODEL), "")
            company = next((g for g in page.associated(w, "workspace_groups", "workspace_group_ids")
                            if g.get("company")), None)
            items.append(TimeProject(id=str(w["id"]), code=code, name=str(w.get("title") or ""),
                                     client_name=str(company["name"]) if company else "",
                                     is_active=status_of(w.get("status")) != "completed",
                                     is_billable=w.get("rate_card_id") is not None,
                                     currency=str(w.get("currency") or "USD")))
        following = msgspec.structs.replace(at, page=at.page + 1)
        return Page(items=items, next_cursor=encode_position(following, "time.kantata.projects")
                    if page.has_next else None)

    async def uninvoiced_report(self, start: dt.date, end: dt.date) -> Page[UninvoicedProject]:
        """Approved billable time of the dates on no Kantata invoice, per workspace: hours, and each entry's
        minutes at its rate rounded half-up to the minor unit, summed."""
        hours: defaultdict[str, Decimal] = defaultdict(Decimal)
        minor: defaultdict[str, Decimal] = defaultdict(Decimal)
        workspaces: dict[str, Record] = {}
        async for page in self.client.iterate("time_entries", filters={
                "approved": True, "date_performed_between": f"{start.isoformat()}:{end.isoformat()}",
                "include": ["workspace"]}):
            workspaces.update(page.included.get("workspaces", {}))
            for e in page.records:
                if not e.get("billable") or e.get("invoice_id") or e.get("rate_in_cents") is None:
                    continue
                wid = str(e["workspace_id"])
                hours[wid] += hours_of(e.get("time_in_minutes"))
                minor[wid] += (Decimal(int(e.get("time_in_minutes") or 0)) * int(e["rate_in_cents"]) / 60).quantize(
                    Decimal(1), ROUND_HALF_UP)
        codes = await project_codes(self.client, set(hours))
        rows = []
        for wid in sorted(hours, key=lambda w: codes.get(w, "")):
            workspace = workspaces.get(wid, {})
            currency = str(workspace.get("currency") or "USD")
            unit = workspace.get("currency_base_unit")
            amount: Money = from_minor(int(minor[wid]), currency, int(unit) if unit else None)
            rows.append(UninvoicedProject(
                project_code=codes.get(wid, ""), project_name=str(workspace.get("title") or ""), currency=currency,
                uninvoiced_hours=hours[wid], uninvoiced_amount=amount))
        return Page(items=rows)
