"""Expense costs on NetSuite: one accounting-approved ``expenseReport`` per line, posted once, read back by SuiteQL.

A batch is answered at once (NetSuite's record API writes synchronously) and its result kept in a
``customrecord_psc_expense_batch`` under the batch key, so the same key answers the first result and writes
nothing. A line posts once across batches because its report's external id is the line key: a batch first
reads which of its keys NetSuite already holds (one SuiteQL statement) and reports those posted with their
first report, and the write itself is an upsert by external id with ``replace=expense``, which a retry (after a
timeout or a 5xx; ``PUT`` is retried as idempotent) or a racing batch applies to the same report instead of
creating a second one or appending a second line.

Before writing, each line is checked against what NetSuite holds, read fresh for the batch (flags change;
ids never do): the period of its date (closed, A/R- or A/P-locked: ``period_closed``; the process refuses A/R
locks too, NetSuite itself only closed and A/P-locked periods for an A/P transaction), the job (unknown or
closed: ``project_inactive``; of another subsidiary, or in another currency than the line: ``validation``),
the employee (unknown or inactive: ``worker_inactive``) and the expense category (unknown or inactive:
``validation``; categories are accounting's set-up, so psconnect never creates one). A refused line is not
sent; NetSuite's own refusal of a line that was sent is mapped the same way (``_expenses_mapping``).

Docs: https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/section_3746635562.html
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from typing import Any, Final

import msgspec

from contracts.billing import ExpensePostingBatch, ExpensePostingLine, ExpensePostingResult, PostedExpense
from contracts.common import Page
from contracts.erp import ErpRefusalReason
from contracts.problems import ProblemError, invalid_cursor
from foundation.paging import decode_position, encode_position
from system_apis._internal.http import VendorRejected
from system_apis.netsuite._billing_api import NetSuiteBilling, not_found, vendor_data_invalid
from system_apis.netsuite._expenses_mapping import (
    EXPENSE_BATCH_RECORD,
    EXPENSE_REPORT,
    LineRefs,
    expense_batch_to_record,
    expense_external_id,
    expense_report_to_record,
    expense_result_from_record,
    posted_expense_from_row,
    vendor_refusal,
)
from system_apis.netsuite._queries import (
    EXPENSE_CATEGORIES_QUERY,
    EXPENSE_EMPLOYEES_SELECT,
    EXPENSE_JOBS_SELECT,
    EXPENSE_KEYS_SELECT,
    external_ids_query,
    posted_expenses_query,
)
from system_apis.netsuite.client import MAX_PAGE
from system_apis.netsuite.mapping import JOB_STATUSES, MappingError, _currency

__all__ = ["NetSuiteExpenses"]

Record = dict[str, Any]
Refusal = tuple[ErpRefusalReason, str]
_CLOSED_JOB: Final = JOB_STATUSES["closed"][0]
_LIST: Final = "erp.postedExpenses"


class _QueryPosition(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    q: str  # digest of the statement, so a cursor only resumes the list (filters) that issued it
    o: int


class _Books(msgspec.Struct, kw_only=True):
    """What one batch's lines name, as NetSuite holds it now (None: NetSuite has none)."""

    jobs: dict[str, Record | None]
    employees: dict[str, Record | None]
    categories: dict[str, tuple[str, bool]]
    periods: dict[str, str | Refusal]
    posted: dict[str, str]


class NetSuiteExpenses(NetSuiteBilling):
    """Mixed into `NetSuiteErp`: `ErpSystem`'s expense postings and posted expenses."""

    # ------------------------------------------------------------------ posting

    async def post_expenses(self, batch: ExpensePostingBatch) -> ExpensePostingResult:
        batch_eid = expense_external_id(batch.batch_key)
        first = await self.client.find_by_external_id(EXPENSE_BATCH_RECORD, batch_eid)
        if first is not None:
            return self._expense_result(first, batch.batch_key)
        books = await self._books(batch)
        outcomes = await asyncio.gather(*(self._post_line(batch, line, books) for line in batch.lines))
        posted: dict[str, str] = {}
        failed: dict[str, str] = {}
        refusals: dict[str, ErpRefusalReason] = {}
        for line, outcome in zip(batch.lines, outcomes, strict=True):
            if isinstance(outcome, str):
                posted[line.line_key] = outcome
            else:
                refusals[line.line_key], failed[line.line_key] = outcome
        result = ExpensePostingResult(batch_key=batch.batch_key, posted=posted, failed=failed, refusals=refusals)
        # Kept last: a call that fails before this point leaves no batch, and its retry finds the lines it
        # posted already (reported with their reports' ids), never posting them twice.
        await self.client.upsert(EXPENSE_BATCH_RECORD, batch_eid,
                                 expense_batch_to_record(result, batch.legal_entity_id))
        return result

    async def get_expense_posting(self, batch_key: str) -> ExpensePostingResult:
        record = await self.client.find_by_external_id(EXPENSE_BATCH_RECORD, expense_external_id(batch_key))
        if record is None:
            raise not_found("expense posting", batch_key)
        return self._expense_result(record, batch_key)

    @staticmethod
    def _expense_result(record: Record, batch_key: str) -> ExpensePostingResult:
        try:
            return expense_result_from_record(record, batch_key)
        except MappingError as exc:
            raise vendor_data_invalid(exc) from exc

    async def _books(self, batch: ExpensePostingBatch) -> _Books:
        lines = batch.lines
        jobs = sorted({line.project_external_id for line in lines})
        employees = sorted({line.employee_external_id for line in lines})
        months = sorted({line.date.strftime("%Y-%m") for line in lines})
        keys = sorted({expense_external_id(line.line_key) for line in lines})
        found_jobs, found_employees, categories, periods, posted = await asyncio.gather(
            self._listed(EXPENSE_JOBS_SELECT, jobs, _job_from_row),
            self._listed(EXPENSE_EMPLOYEES_SELECT, employees, _employee_from_row),
            self._categories(),
            asyncio.gather(*(self._open_period(batch.legal_entity_id, month) for month in months)),
            self._posted_reports(keys))
        return _Books(jobs={eid: found_jobs.get(eid) for eid in jobs},
                      employees={eid: found_employees.get(eid) for eid in employees},
                      categories=categories, periods=dict(zip(months, periods, strict=True)), posted=posted)

    async def _listed(self, select: str, external_ids: Sequence[str],
                      as_record: Callable[[Record], Record]) -> dict[str, Record]:
        """The records among these external ids, by external id, read with one SuiteQL statement per page; an id
        outside the upsert alphabet names no record (none can have been written with it)."""
        safe = [eid for eid in external_ids if expense_external_id(eid) == eid]
        found: dict[str, Record] = {}
        for start in range(0, len(safe), MAX_PAGE):
            page = await self.client.suiteql(external_ids_query(select, safe[start:start + MAX_PAGE]), limit=MAX_PAGE)
            found.update({str(row["externalid"]): as_record(row) for row in page.rows})
        return found

    async def _categories(self) -> dict[str, tuple[str, bool]]:
        """Expense category name -> (internal id, inactive); read per batch (accounting may add or retire one)."""
        found: dict[str, tuple[str, bool]] = {}
        offset: int | None = 0
        while offset is not None:
            page = await self.client.suiteql(EXPENSE_CATEGORIES_QUERY, limit=MAX_PAGE, offset=offset)
            for row in page.rows:
                found.setdefault(str(row.get("name")), (str(row.get("id")),
                                                        str(row.get("isinactive")).upper() in ("T", "TRUE")))
            offset = offset + len(page.rows) if page.has_more and page.rows else None
        return found

    async def _open_period(self, legal_entity_id: str, month: str) -> str | Refusal:
        """The accounting period id of a month, or why nothing may post in it (flags read fresh)."""
        try:
            period_id, _end = await self._period(legal_entity_id, month)
        except ProblemError:
            return "period_closed", f"PERIOD_CLOSED: NetSuite has no accounting period {month} for subsidiary " \
                                    f"{legal_entity_id}."
        period = await self.client.get("accountingPeriod", period_id)
        if period.get("isClosed") or period.get("arLocked") or period.get("apLocked"):
            return "period_closed", f"PERIOD_CLOSED: The accounting period {period.get('periodName')} is closed " \
                                    "or locked."
        return period_id

    async def _posted_reports(self, external_ids: Sequence[str]) -> dict[str, str]:
        """Which of these external ids NetSuite already holds an expense report for: eid -> internal id."""
        reports = await self._listed(EXPENSE_KEYS_SELECT, external_ids, lambda row: row)
        return {eid: str(row["id"]) for eid, row in reports.items()}

    @staticmethod
    def _check_line(batch: ExpensePostingBatch, line: ExpensePostingLine, books: _Books) -> Refusal | LineRefs:
        period = books.periods[line.date.strftime("%Y-%m")]
        if isinstance(period, tuple):
            return period
        job = books.jobs[line.project_external_id]
        if job is None or str((job.get("entityStatus") or {}).get("id")) == _CLOSED_JOB:
            return "project_inactive", f"JOB_CLOSED: NetSuite has no open project {line.project_external_id!r}."
        employee = books.employees[line.employee_external_id]
        if employee is None or employee.get("isInactive"):
            return "worker_inactive", f"EMPLOYEE_INACTIVE: NetSuite has no active employee " \
                                      f"{line.employee_external_id!r}."
        subsidiaries = {str((job.get("subsidiary") or {}).get("id")), str((employee.get("subsidiary") or {}).get("id"))}
        if subsidiaries != {batch.legal_entity_id}:
            return "validation", f"INVALID_FLD_VALUE: The project or the employee belongs to another subsidiary " \
                                 f"than {batch.legal_entity_id}."
        try:
            currency = _currency(job)
        except MappingError:
            currency = ""
        if line.amount.currency != currency:
            return "validation", f"INVALID_FLD_VALUE: The amount is in {line.amount.currency}, the project in " \
                                 f"{currency or 'no currency'}."
        category = books.categories.get(line.category)
        if category is None or category[1]:
            return "validation", f"INVALID_KEY_OR_REF: NetSuite has no active expense category {line.category!r}."
        return LineRefs(employee_id=str(employee["id"]), job_id=str(job["id"]), category_id=category[0],
                        period_id=period)

    async def _post_line(self, batch: ExpensePostingBatch, line: ExpensePostingLine,
                         books: _Books) -> str | Refusal:
        """The internal id of the line's expense report (posted now or before), or why it was refused."""
        eid = expense_external_id(line.line_key)
        if eid in books.posted:
            return books.posted[eid]
        refs = self._check_line(batch, line, books)
        if isinstance(refs, tuple):
            return refs
        body = expense_report_to_record(line, refs, legal_entity_id=batch.legal_entity_id,
                                        batch_key=batch.batch_key)
        try:
            return await self.client.upsert(EXPENSE_REPORT, eid, body, replace=("expense",))
        except VendorRejected as exc:
            # A retried PUT may meet a report its lost first attempt wrote (and NetSuite may refuse to edit an
            # approved one): that report is this line, posted.
            again = await self.client.find_by_external_id(EXPENSE_REPORT, eid)
            if again is not None:
                return str(again["id"])
            path, detail = _error_detail(exc.body)
            return vendor_refusal(exc.code, path), f"{exc.code or exc.status}: {detail or exc}"

    # ------------------------------------------------------------------ reading back

    async def list_posted_expenses(self, project_external_id: str | None, date_from: dt.date | None,
                                   date_to: dt.date | None, limit: int, cursor: str | None) -> Page[PostedExpense]:
        if project_external_id is not None and expense_external_id(project_external_id) != project_external_id:
            return Page(items=[])  # no job can carry an id outside the upsert alphabet
        query = posted_expenses_query(project_external_id, date_from, date_to)
        digest = hashlib.sha256(query.encode()).hexdigest()[:24]
        offset = 0
        if cursor is not None:
            position = decode_position(cursor, _QueryPosition, _LIST)
            if position.q != digest or position.o < 0:
                raise invalid_cursor("The cursor is not one this list issued.")
            offset = position.o
        page = await self.client.suiteql(query, limit=limit, offset=offset)
        try:
            items = [posted_expense_from_row(row) for row in page.rows]
        except MappingError as exc:
            raise vendor_data_invalid(exc) from exc
        following = (encode_position(_QueryPosition(q=digest, o=offset + len(page.rows)), _LIST)
                     if page.has_more and page.rows else None)
        return Page(items=items, next_cursor=following)


def _job_from_row(row: Record) -> Record:
    """A SuiteQL job row in the shape of the job record the line checks read (references as ``{"id": …}``)."""
    return {"id": str(row["id"]), "entityStatus": {"id": str(row.get("entitystatus"))},
            "subsidiary": {"id": str(row.get("subsidiary"))}, "currency": {"id": str(row.get("currency"))}}


def _employee_from_row(row: Record) -> Record:
    return {"id": str(row["id"]), "subsidiary": {"id": str(row.get("subsidiary"))},
            "isInactive": str(row.get("isinactive")).upper() in ("T", "TRUE")}


def _error_detail(body: object) -> tuple[str | None, str | None]:
    """``o:errorPath`` and ``detail`` of NetSuite's first error detail."""
    details = body.get("o:errorDetails") if isinstance(body, dict) else None
    if isinstance(details, list) and details and isinstance(details[0], dict):
        path, detail = details[0].get("o:errorPath"), details[0].get("detail")
        return (str(path) if path else None), (str(detail) if detail else None)
    return None, None
