"""The time system API on Harvest v2: time entries, expenses, projects and the uninvoiced report.

Harvest names an entry's user and project by id only, so the adapter keeps a small
reference cache — user id -> email, project id -> project (code, client currency) —
loaded from `/v2/users` and `/v2/projects` (a few requests even for 10,000 users) and
reloaded when it is older than `cache_ttl` or when an entry names an id it does not
hold, so a user or project created since the last load is picked up at once. Expense
categories (name, unit name, unit price) are cached the same way from
`/v2/expense_categories`, loaded only once an expense is read.

Paging: a domain cursor wraps the vendor's own `links.next` (path and query, re-based
onto our base URL) plus the one filter Harvest cannot apply — approval status — so
one domain page costs exactly the vendor pages it needs and no vendor page is read
twice. The vendor page size is the domain `limit` (≤ 2000, Harvest's cap); filtering
by status may leave a page short, and an empty vendor page is skipped rather than
returned (see `system_apis.domains.time`). Expenses page exactly like time entries,
under their own cursor kind (a time-entry cursor is refused on `/expenses`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import httpx
import msgspec
from litestar import Router

from contracts.common import Page
from contracts.problems import FieldError, ProblemError, invalid_cursor
from contracts.time import Expense, TimeEntry, TimeEntryStatus, TimeProject, UninvoicedProject
from foundation.paging import decode_position, encode_position
from foundation.retry import RetryPolicy
from system_apis._internal.http import VendorRejected
from system_apis.domains.time import TimeEntryQuery, time_router
from system_apis.harvest import _wire as wire
from system_apis.harvest.client import (
    API_PREFIX,
    DEFAULT_ACCOUNT_ID,
    MAX_PER_PAGE,
    RATE_LIMIT,
    VENDOR,
    HarvestClient,
    split_link,
)
from system_apis.harvest.mapping import (
    expense_to_canonical,
    project_to_canonical,
    status_of,
    time_entry_to_canonical,
    uninvoiced_to_canonical,
)
from system_apis.registry import Connection

__all__ = ["HarvestTime", "create_router"]

Params = dict[str, str | int]
W = TypeVar("W", wire.TimeEntry, wire.Expense)
C = TypeVar("C", TimeEntry, Expense)


class _Cursor(msgspec.Struct, frozen=True, kw_only=True):
    link: str
    """Path and query of the vendor page to read next (Harvest's `links.next`, host removed)."""
    status: TimeEntryStatus | None = None


def _encode_cursor(link: str, collection: str, status: TimeEntryStatus | None = None) -> str:
    url = httpx.URL(link)
    relative = url.raw_path.decode("ascii")
    return encode_position(_Cursor(link=relative, status=status), f"time.{collection}")


def _decode_cursor(value: str, collection: str) -> _Cursor:
    cursor = decode_position(value, _Cursor, f"time.{collection}")
    try:
        _, params = split_link(cursor.link, expected_path=f"{API_PREFIX}/{collection}")
        if not 1 <= int(params.get("per_page", MAX_PER_PAGE)) <= MAX_PER_PAGE:
            raise ValueError("page size out of range")
    except ValueError as exc:
        raise invalid_cursor() from exc
    return cursor


def _not_found(entry_id: str, what: str = "time entry") -> ProblemError:
    return ProblemError(404, "not-found", "Not found", f"No Harvest {what} {entry_id!r}.", code="not_found")


class HarvestTime:
    """`TimeSystem` on Harvest v2."""

    def __init__(self, client: HarvestClient, *, cache_ttl: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.cache_ttl = cache_ttl
        self._clock = clock
        self._lock = asyncio.Lock()
        self._loaded_at: float | None = None
        self.emails: dict[int, str] = {}
        self.projects: dict[int, wire.Project] = {}
        self.codes: dict[str, int] = {}
        self._categories_at: float | None = None
        self.categories: dict[int, wire.ExpenseCategory] = {}

    # --- reference cache ------------------------------------------------------------------------------

    MISS_RELOAD_AFTER = 10.0
    """Seconds a load answers misses for: a code Harvest did not have then reloads the references at most this
    often. Lists that merge every time connection ask each for projects it never had (a month-end
    reconciliation, once per project), and a reload reads every user and project."""

    def _age(self) -> float:
        return float("inf") if self._loaded_at is None else self._clock() - self._loaded_at

    def _fresh(self) -> bool:
        return self._age() < self.cache_ttl

    async def _reload(self) -> None:
        emails = {u.id: u.email async for u in self.client.iter_users()}
        projects = {p.id: p async for p in self.client.iter_projects()}
        self.emails, self.projects = emails, projects
        self.codes = {p.code: p.id for p in projects.values() if p.code}
        self._loaded_at = self._clock()

    async def refresh(self, *, force: bool = False, unless_newer_than: float = 0.0) -> None:
        """Load users and projects unless the cache is fresh (or reload anyway with `force`, unless the last load
        is younger than `unless_newer_than` seconds: concurrent misses then share one reload)."""
        async with self._lock:
            if not self._fresh() or (force and self._age() >= unless_newer_than):
                await self._reload()

    async def _ensure(self, records: Iterable[wire.TimeEntry | wire.Expense]) -> None:
        if not self._fresh():
            await self.refresh()
        if any(r.user.id not in self.emails or r.project.id not in self.projects for r in records):
            await self.refresh(force=True)

    async def _ensure_categories(self, expenses: Iterable[wire.Expense]) -> None:
        """Load the expense categories when stale or when an expense names one not held."""
        async with self._lock:
            stale = self._categories_at is None or self._clock() - self._categories_at >= self.cache_ttl
            if stale or any(e.expense_category is not None and e.expense_category.id not in self.categories
                            for e in expenses):
                self.categories = {c.id: c async for c in self.client.iter_expense_categories()}
                self._categories_at = self._clock()

    async def _project_id(self, code: str) -> int | None:
        """The Harvest id of the project whose code is `code` (reloading for a project created since, unless the
        references were loaded in the last `MISS_RELOAD_AFTER` seconds)."""
        await self.refresh()
        project_id = self.codes.get(code)
        if project_id is None:
            await self.refresh(force=True, unless_newer_than=self.MISS_RELOAD_AFTER)
            project_id = self.codes.get(code)
        return project_id

    def _owner(self, record: wire.TimeEntry | wire.Expense, what: str) -> tuple[str, str, str]:
        """(email, project code, currency) of a record: the currency is the project's client's, as Harvest prices
        both time and expenses of a project in it."""
        project, email = self.projects.get(record.project.id), self.emails.get(record.user.id)
        if project is None or email is None:
            raise VendorRejected(VENDOR, f"{what} {record.id} names an unknown user or project", status=502,
                                 code="unknown_reference")
        currency = project.client.currency if project.client is not None and project.client.currency else "USD"
        return email, project.code or "", currency

    def _map(self, entry: wire.TimeEntry) -> TimeEntry:
        email, code, currency = self._owner(entry, "time entry")
        return time_entry_to_canonical(entry, user_email=email, project_code=code, currency=currency)

    def _map_expense(self, expense: wire.Expense) -> Expense:
        email, code, currency = self._owner(expense, "expense")
        named = expense.expense_category
        return expense_to_canonical(expense, user_email=email, project_code=code, currency=currency,
                                    category=self.categories.get(named.id) if named is not None else None)

    # --- paging --------------------------------------------------------------------------------------

    async def _listed(self, collection: str, query: TimeEntryQuery, limit: int, cursor: str | None,
                      params_of: Callable[..., Params], fetch: Callable[[Params | None, str | None], Awaitable[
                          tuple[list[W], str | None]]], convert: Callable[[list[W]], Awaitable[list[C]]]) -> Page[C]:
        """One domain page of a Harvest list filtered by approval status after the read (time entries, expenses).

        Both lists take the same query (spent dates, change time, project id); `fetch` reads one vendor page and
        answers its records and `links.next`, `convert` maps records (loading the references they name).
        """
        link: str | None = None
        params: Params | None = None
        status = query.status
        if cursor:
            decoded = _decode_cursor(cursor, collection)
            link, status = decoded.link, decoded.status
        else:
            project_id: int | None = None
            if query.project_code is not None:
                project_id = await self._project_id(query.project_code)
                if project_id is None:
                    return Page(items=[])
            params = params_of(start=query.start, end=query.end, updated_since=query.updated_since,
                               project_id=project_id, per_page=limit)
        while True:
            records, following = await fetch(params, link)
            if status is not None:  # Harvest cannot filter by approval: keep the page's matches only
                records = [r for r in records if status_of(r.is_closed, r.is_locked) == status]
            items = await convert(records)
            if not following:
                return Page(items=items)
            if items:
                return Page(items=items, next_cursor=_encode_cursor(following, collection, status))
            link, params = following, None

    async def _time_entries_page(self, params: Params | None, link: str | None) -> tuple[list[wire.TimeEntry],
                                                                                          str | None]:
        page = await self.client.time_entries_page(params=params, link=link)
        return page.time_entries, page.links.next

    async def _time_entries(self, entries: list[wire.TimeEntry]) -> list[TimeEntry]:
        await self._ensure(entries)
        return [self._map(e) for e in entries]

    async def _expenses_page(self, params: Params | None, link: str | None) -> tuple[list[wire.Expense], str | None]:
        page = await self.client.expenses_page(params=params, link=link)
        return page.expenses, page.links.next

    async def _expenses(self, expenses: list[wire.Expense]) -> list[Expense]:
        await self._ensure(expenses)
        await self._ensure_categories(expenses)
        return [self._map_expense(e) for e in expenses]

    # --- TimeSystem -----------------------------------------------------------------------------------

    async def list_time_entries(self, query: TimeEntryQuery, limit: int, cursor: str | None) -> Page[TimeEntry]:
        return await self._listed("time_entries", query, limit, cursor, self.client.time_entry_params,
                                  self._time_entries_page, self._time_entries)

    async def get_time_entry(self, entry_id: str) -> TimeEntry:
        if not entry_id.isdigit():  # Harvest ids are integers; anything else cannot exist
            raise _not_found(entry_id)
        entry = await self.client.get_time_entry(int(entry_id))
        await self._ensure([entry])
        return self._map(entry)

    async def list_expenses(self, query: TimeEntryQuery, limit: int, cursor: str | None) -> Page[Expense]:
        return await self._listed("expenses", query, limit, cursor, self.client.expense_params,
                                  self._expenses_page, self._expenses)

    async def get_expense(self, expense_id: str) -> Expense:
        if not expense_id.isdigit():  # Harvest ids are integers; anything else cannot exist
            raise _not_found(expense_id, "expense")
        expense = await self.client.get_expense(int(expense_id))
        return (await self._expenses([expense]))[0]

    async def list_projects(self, limit: int, cursor: str | None) -> Page[TimeProject]:
        link = _decode_cursor(cursor, "projects").link if cursor else None
        page = await self.client.projects_page(per_page=limit, link=link)
        following = page.links.next
        return Page(items=[project_to_canonical(p) for p in page.projects],
                    next_cursor=_encode_cursor(following, "projects") if following else None)

    async def uninvoiced_report(self, start: dt.date, end: dt.date) -> Page[UninvoicedProject]:
        if end < start or (end - start).days > 365:
            raise ProblemError(422, "validation-error", "Validation failed",
                               "The report covers at most one year, from `from` to `to`.",
                               errors=[FieldError(pointer="to", detail="must be on or after from, within 365 days")],
                               code="invalid_range")
        rows = [row async for row in self.client.iter_uninvoiced(start, end)]
        if any(r.project_id not in self.projects for r in rows) or not self._fresh():
            await self.refresh(force=True)
        items = []
        for row in rows:
            project = self.projects.get(row.project_id)
            items.append(uninvoiced_to_canonical(row, project_code=(project.code or "") if project else ""))
        return Page(items=items)


def create_router(http: httpx.AsyncClient, *, token: str = "sim-token", retry: RetryPolicy | None = None) -> Router:
    """The `/system/time/v1` router backed by Harvest reached through `http`."""
    return time_router(HarvestTime(HarvestClient(http, token=token, retry=retry)))


def create_systems(http: httpx.AsyncClient, connection: Connection, *,
                   retry: RetryPolicy | None = None) -> dict[str, object]:
    """The time adapter on one harvest account (`connection`: token, tenant, pacing), for routing per legal entity."""
    return {"time": HarvestTime(HarvestClient(http, token=connection.credential("token", "sim-token"), retry=retry,
                                       account_id=connection.tenant or DEFAULT_ACCOUNT_ID,
                                       budget=connection.budget(RATE_LIMIT)))}
