"""The time-to-bill half of the ERP system API on NetSuite: employees, time posting, invoices, credits.

Lookups NetSuite needs by internal id (the job of a project, the accounting period of a
subsidiary and month, the invoice a credit applies to) are cached per adapter instance: external
ids and period ids never change, so the cache cannot go stale; period *flags* are not cached —
NetSuite enforces them on every write. Refusals for a closed or AR-locked period come back as a
422 problem with code ``period_closed``.

Every invoice returned is read through ``_invoices``: NetSuite's own standing (status, amount
remaining, dates, last change) plus, for invoices something has applied to, one SuiteQL read of the
applications that tells payments from credits. The status poll filters on ``lastModifiedDate``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from collections.abc import Callable
from typing import Any, Final, TypeVar

import msgspec

from contracts.billing import (
    CreditMemo,
    CreditMemoUpsert,
    Invoice,
    InvoiceUpsert,
    PostedTime,
    PostedTimeTotal,
    TimePostingBatch,
    TimePostingJob,
    TimePostingResult,
)
from contracts.common import Page
from contracts.problems import ProblemError, invalid_cursor
from contracts.workforce import Employee, EmployeeUpsert
from system_apis._internal.http import VendorRejected
from system_apis.netsuite._billing_mapping import (
    BATCH_RECORD,
    batch_to_record,
    credit_memo_from_record,
    credit_memo_to_record,
    employee_from_record,
    employee_to_record,
    invoice_from_record,
    invoice_to_record,
    posted_time_from_row,
    posted_total_from_row,
    posting_result_from_record,
)
from system_apis.netsuite._intercompany_mapping import is_intercompany
from system_apis.netsuite._queries import applications_query, posted_time_query, posted_time_totals_query
from system_apis.netsuite._receivables_mapping import NOTHING_APPLIED, applications_from_rows, has_applications
from system_apis.netsuite.client import MAX_PAGE, NetSuiteClient
from system_apis.netsuite.mapping import INSTANT_FORMAT, MappingError

__all__ = ["NetSuiteBilling", "not_found", "vendor_data_invalid"]

Record = dict[str, Any]
T = TypeVar("T")
_EXTERNAL_ID: Final = re.compile(r"^[A-Za-z0-9_.:-]{1,80}$")
_BATCH_KEY: Final = re.compile(r"^[A-Za-z0-9_.:-]{8,120}$")


def not_found(kind: str, ident: str) -> ProblemError:
    """The canonical 404 for a record or posting NetSuite does not hold."""
    return ProblemError(404, "not-found", "Not found", f"No {kind} with id {ident!r}.", code="not_found")


def vendor_data_invalid(exc: MappingError) -> ProblemError:
    """NetSuite answered, but with a record psconnect cannot read (e.g. made by hand without an external id)."""
    return ProblemError(502, "vendor-data-invalid", "Vendor record unreadable", str(exc), code="vendor_data_invalid")


def _unprocessable(code: str, detail: str, title: str = "Refused by the ERP") -> ProblemError:
    return ProblemError(422, code.replace("_", "-"), title, detail, code=code)


def _refusal(exc: VendorRejected) -> ProblemError | None:
    """NetSuite's period refusal keeps its business meaning for the process: ``period_closed``."""
    if exc.code == "PERIOD_CLOSED":
        return _unprocessable("period_closed", f"NetSuite refused the posting period: {exc}",
                              "Accounting period closed")
    return None


class _QueryCursor(msgspec.Struct, frozen=True):
    query: str
    offset: int


class NetSuiteBilling:
    """Mixed into `NetSuiteErp`; needs ``self.client``."""

    client: NetSuiteClient

    def __init__(self, client: NetSuiteClient) -> None:
        self.client = client
        self._job_ids: dict[str, str] = {}
        self._job_eids: dict[str, str] = {}
        self._periods: dict[str, dict[str, tuple[str, dt.date]]] = {}
        self._invoice_eids: dict[str, str] = {}

    # ------------------------------------------------------------------ lookups

    async def _job_id(self, project_external_id: str) -> str:
        if project_external_id not in self._job_ids:
            record = (await self.client.find_by_external_id("job", project_external_id)
                      if _EXTERNAL_ID.match(project_external_id) else None)
            if record is None:
                raise _unprocessable("unknown_project", f"NetSuite has no project {project_external_id!r}.")
            self._job_ids[project_external_id] = str(record["id"])
            self._job_eids[str(record["id"])] = project_external_id
        return self._job_ids[project_external_id]

    async def _job_eid(self, job_id: str) -> str:
        if job_id not in self._job_eids:
            record = await self.client.get("job", job_id)
            self._job_eids[job_id] = str(record.get("externalId") or "")
        return self._job_eids[job_id]

    async def _period(self, legal_entity_id: str, period: str) -> tuple[str, dt.date]:
        if legal_entity_id not in self._periods:
            found: dict[str, tuple[str, dt.date]] = {}
            if legal_entity_id.isdigit():
                async for ident in self.client.iter_ids("accountingPeriod",
                                                        q=f"custrecord_psc_subsidiary EQUAL {legal_entity_id}"):
                    record = await self.client.get("accountingPeriod", ident)
                    found[str(record["startDate"])[:7]] = (ident, dt.date.fromisoformat(str(record["endDate"])))
            self._periods[legal_entity_id] = found
        if period not in self._periods[legal_entity_id]:
            raise _unprocessable("period_closed", f"NetSuite has no accounting period {period} for legal entity "
                                 f"{legal_entity_id}.", "Accounting period closed")
        return self._periods[legal_entity_id][period]

    async def _invoice_eid(self, invoice_id: str) -> str:
        if invoice_id not in self._invoice_eids:
            self._invoice_eids[invoice_id] = str((await self.client.get("invoice", invoice_id)).get("externalId"))
        return self._invoice_eids[invoice_id]

    async def _write(self, record_type: str, external_id: str, body: Record, replace: tuple[str, ...]) -> Record:
        try:
            internal = await self.client.upsert(record_type, external_id, body, replace=replace)
        except VendorRejected as exc:
            problem = _refusal(exc)
            if problem is None:
                raise
            raise problem from exc
        return await self.client.get(record_type, internal, expand=True)

    # ------------------------------------------------------------------ employees

    async def upsert_employee(self, external_id: str, data: EmployeeUpsert) -> tuple[Employee, bool]:
        existing = await self.client.find_by_external_id("employee", external_id)
        record = await self._write("employee", external_id, employee_to_record(external_id, data), ())
        try:
            return employee_from_record(record), existing is None
        except MappingError as exc:
            raise vendor_data_invalid(exc) from exc

    # ------------------------------------------------------------------ time posting

    async def post_time(self, batch: TimePostingBatch) -> TimePostingJob:
        job_id = await self.client.submit_async(BATCH_RECORD, batch_to_record(batch), key=batch.batch_key)
        job = await self.client.wait_job(job_id)
        if job.completed and job.progress != "succeeded":
            try:
                await self.client.job_result(job_id)
            except VendorRejected:
                # A batch record with this key exists already (a replay after NetSuite forgot the
                # idempotency key): that batch is this one, so report it instead of failing.
                if await self.client.find_by_external_id(BATCH_RECORD, batch.batch_key) is None:
                    raise
        record = await self.client.find_by_external_id(BATCH_RECORD, batch.batch_key)
        if record is None:
            return TimePostingJob(batch_key=batch.batch_key, job_id=job_id, status="pending")
        result = self._result(record)
        return TimePostingJob(batch_key=batch.batch_key, job_id=job_id, status=result.status)

    @staticmethod
    def _result(record: Record) -> TimePostingResult:
        try:
            return posting_result_from_record(record)
        except MappingError as exc:
            raise vendor_data_invalid(exc) from exc

    async def get_time_posting(self, batch_key: str) -> TimePostingResult:
        record = (await self.client.find_by_external_id(BATCH_RECORD, batch_key)
                  if _BATCH_KEY.match(batch_key) else None)
        if record is None:
            raise ProblemError(404, "not-found", "Not found", f"No time posting with batch key {batch_key!r}.",
                               code="not_found")
        return self._result(record)

    async def list_posted_time(self, project_external_id: str | None, date_from: dt.date | None,
                               date_to: dt.date | None, limit: int, cursor: str | None) -> Page[PostedTime]:
        if project_external_id is not None and not _EXTERNAL_ID.match(project_external_id):
            return Page(items=[])  # no job can carry an id outside the upsert alphabet
        return await self._rows(posted_time_query(project_external_id, date_from, date_to), limit, cursor,
                                posted_time_from_row)

    async def list_posted_time_totals(self, project_external_id: str | None, date_from: dt.date | None,
                                      date_to: dt.date | None, limit: int,
                                      cursor: str | None) -> Page[PostedTimeTotal]:
        """Summed by SuiteQL: a row per job, not the account's every timebill."""
        if project_external_id is not None and not _EXTERNAL_ID.match(project_external_id):
            return Page(items=[])
        return await self._rows(posted_time_totals_query(project_external_id, date_from, date_to), limit, cursor,
                                posted_total_from_row)

    async def _rows(self, query: str, limit: int, cursor: str | None, mapped: Callable[[Record], T]) -> Page[T]:
        """A page of a SuiteQL statement's rows, mapped; the cursor holds the statement's digest and the offset."""
        digest = hashlib.sha256(query.encode()).hexdigest()[:24]
        offset = 0
        if cursor is not None:
            try:
                state = msgspec.json.decode(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)),
                                            type=_QueryCursor)
            except (ValueError, msgspec.DecodeError, msgspec.ValidationError):
                raise invalid_cursor("The cursor is not one this list issued.") from None
            if state.query != digest or state.offset < 0:
                raise invalid_cursor("The cursor is not one this list issued.")
            offset = state.offset
        page = await self.client.suiteql(query, limit=limit, offset=offset)
        try:
            items = [mapped(row) for row in page.rows]
        except MappingError as exc:
            raise vendor_data_invalid(exc) from exc
        following = None
        if page.has_more:
            following = base64.urlsafe_b64encode(msgspec.json.encode(
                _QueryCursor(query=digest, offset=offset + len(page.rows)))).decode().rstrip("=")
        return Page(items=items, next_cursor=following)

    # ------------------------------------------------------------------ invoices and credit memos

    async def upsert_invoice(self, external_id: str, data: InvoiceUpsert) -> tuple[Invoice, bool]:
        job_id = await self._job_id(data.project_external_id)
        period_id, end = await self._period(data.legal_entity_id, data.period)
        existing = await self.client.find_by_external_id("invoice", external_id)
        body = invoice_to_record(external_id, data, job_id=job_id, period_id=period_id, tran_date=end)
        record = await self._write("invoice", external_id, body, ("item",))
        return (await self._invoices([record]))[0], existing is None

    async def upsert_credit_memo(self, external_id: str, data: CreditMemoUpsert) -> tuple[CreditMemo, bool]:
        job_id = await self._job_id(data.project_external_id)
        period_id, end = await self._period(data.legal_entity_id, data.period)
        invoice = (await self.client.find_by_external_id("invoice", data.invoice_external_id)
                   if _EXTERNAL_ID.match(data.invoice_external_id) else None)
        if invoice is None:
            raise _unprocessable("unknown_invoice", f"NetSuite has no invoice {data.invoice_external_id!r}.")
        existing = await self.client.find_by_external_id("creditMemo", external_id)
        body = credit_memo_to_record(external_id, data, job_id=job_id, period_id=period_id,
                                     invoice_id=str(invoice["id"]), tran_date=end)
        record = await self._write("creditMemo", external_id, body, ("item",))
        try:
            return credit_memo_from_record(record, project_external_id=data.project_external_id,
                                           invoice_external_id=data.invoice_external_id), existing is None
        except MappingError as exc:
            raise vendor_data_invalid(exc) from exc

    async def _transactions(self, record_type: str, project_external_id: str | None,
                            period: str | None, updated_since: dt.datetime | None = None) -> str | None:
        """The ``q`` for a project/period/last-change filter, or ``None`` when nothing can match."""
        conditions = []
        if project_external_id is not None:
            if not _EXTERNAL_ID.match(project_external_id):
                return None
            try:
                conditions.append(f"job EQUAL {await self._job_id(project_external_id)}")
            except ProblemError:
                return None
        if period is not None:
            conditions.append(f'custbody_psc_period IS "{period}"')
        if updated_since is not None:
            conditions.append(f'lastModifiedDate ON_OR_AFTER "{_whole_second(updated_since)}"')
        return " AND ".join(conditions)

    async def list_invoices(self, project_external_id: str | None, period: str | None, limit: int,
                            cursor: str | None, updated_since: dt.datetime | None = None) -> Page[Invoice]:
        q = await self._transactions("invoice", project_external_id, period, updated_since)
        if q is None:
            return Page(items=[])
        records = await self._records("invoice", q, limit, cursor)
        # Intercompany receivables are invoices too (``_intercompany_api``), but not client invoices: a page
        # may come back shorter than ``limit`` for them, its cursor still leads on.
        clients = [r for r in records.items if not is_intercompany(r)]
        return Page(items=await self._invoices(clients), next_cursor=records.next_cursor)

    async def _invoices(self, records: list[Record]) -> list[Invoice]:
        """Expanded ``invoice`` records as canonical invoices, payments told from credits.

        Only invoices NetSuite says something applied to (``amountPaid`` not zero) are looked up, all
        in one SuiteQL read; it answers two rows at most per invoice, so one page holds them all.
        """
        try:
            touched = [str(r["id"]) for r in records if has_applications(r)]
            applied = (applications_from_rows((await self.client.suiteql(applications_query(touched),
                                                                         limit=MAX_PAGE)).rows)
                       if touched else {})
            return [invoice_from_record(r, project_external_id=await self._job_eid(str(r["job"]["id"])),
                                        applied=applied.get(str(r["id"]), NOTHING_APPLIED)) for r in records]
        except (MappingError, KeyError, TypeError) as exc:
            raise vendor_data_invalid(MappingError(str(exc))) from exc

    async def list_credit_memos(self, project_external_id: str | None, period: str | None, limit: int,
                                cursor: str | None) -> Page[CreditMemo]:
        q = await self._transactions("creditMemo", project_external_id, period)
        if q is None:
            return Page(items=[])
        records = await self._records("creditMemo", q, limit, cursor)
        try:
            items = [credit_memo_from_record(r, project_external_id=await self._job_eid(str(r["job"]["id"])),
                                             invoice_external_id=await self._invoice_eid(str(r["createdFrom"]["id"])))
                     for r in records.items]
        except (MappingError, KeyError, TypeError) as exc:
            raise vendor_data_invalid(MappingError(str(exc))) from exc
        return Page(items=items, next_cursor=records.next_cursor)

    async def _records(self, record_type: str, q: str, limit: int, cursor: str | None) -> Page[Record]:
        raise NotImplementedError  # NetSuiteErp provides the shared id-collection paging


def _whole_second(instant: dt.datetime) -> str:
    """``instant`` in NetSuite's instant format, rounded UP to the second.

    NetSuite stamps ``lastModifiedDate`` to the second, so a record stamped in the second of a
    fractional ``instant`` may have changed before it; rounding up keeps "changed at or after" true of
    everything returned (a naive instant is taken as UTC).
    """
    aware = instant if instant.tzinfo else instant.replace(tzinfo=dt.UTC)
    whole = aware.replace(microsecond=0)
    if whole < aware:
        whole += dt.timedelta(seconds=1)
    return whole.astimezone(dt.UTC).strftime(INSTANT_FORMAT)
