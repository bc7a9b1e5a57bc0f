"""The time-to-bill half of the ERP system API on Xero: summarised time, invoices, credit notes.

Lookups Xero needs by id (the organisation, the project of an external id, a project's rate tasks,
the integration user, the Project tracking category) are cached per adapter: ids never change.
The organisation's lock date is read again on every posting, Xero enforces it on every write too.
A refusal for a locked period comes back as a 422 problem with code ``period_closed``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, Final, TypeVar

import msgspec

from contracts.billing import (
    CreditMemo,
    CreditMemoUpsert,
    Invoice,
    InvoiceUpsert,
    PostedTime,
    TimePostingBatch,
    TimePostingJob,
    TimePostingResult,
)
from contracts.common import Money, Page
from contracts.erp import ErpRefusalReason
from contracts.problems import ProblemError
from foundation.paging import decode_position, encode_position
from system_apis._internal.http import VendorRejected
from system_apis.xero._summary import (
    DESCRIPTION_PREFIX,
    SummaryLine,
    SummaryStore,
    group_key,
    minutes,
    summary_key,
)
from system_apis.xero.client import ACCOUNTING, PROJECTS, XeroClient, idempotency_key
from system_apis.xero.mapping import (
    PROJECT_TRACKING,
    MappingError,
    credit_memo_from_note,
    credit_note_from_upsert,
    invoice_from_record,
    invoice_from_upsert,
    project_external_id,
    rate_task_name,
    xero_date,
)

__all__ = ["XeroBilling", "not_found", "vendor_data_invalid"]

T = TypeVar("T")
_LOCK_WORDS: Final = ("lock date", "period lock")


def vendor_data_invalid(exc: MappingError) -> ProblemError:
    """Xero answered, but with a record psconnect cannot read (e.g. made by hand in Xero)."""
    return ProblemError(502, "vendor-data-invalid", "Vendor record unreadable", str(exc), code="vendor_data_invalid")


def not_found(kind: str, ident: str) -> ProblemError:
    return ProblemError(404, "not-found", "Not found", f"No {kind} with id {ident!r}.", code="not_found")


def _locked(exc: VendorRejected) -> bool:
    return any(word in str(exc).lower() for word in _LOCK_WORDS)


def _period_end(period: str) -> dt.date:
    year, month = (int(x) for x in period.split("-"))
    return dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)


class _Offset(msgspec.Struct, frozen=True):
    q: str
    offset: int


class XeroBilling:
    """Mixed into `XeroErp`."""

    def __init__(self, client: XeroClient, summaries: SummaryStore, *, connection: str) -> None:
        self.client = client
        self.summaries = summaries
        self.connection = connection
        self._projects_by_eid: dict[str, dict[str, Any]] | None = None
        self._rate_tasks: dict[tuple[str, str], str] = {}
        self._user_id: str | None = None
        self._tracking: tuple[str, set[str]] | None = None

    # ------------------------------------------------------------------ shared lookups

    async def _organisation(self) -> dict[str, Any]:
        body = await self.client.get(f"{ACCOUNTING}/Organisation")
        found = body.get("Organisations") or []
        if not found:
            raise vendor_data_invalid(MappingError("Xero answered no organisation for this tenant"))
        return dict(found[0])

    async def _lock_date(self) -> dt.date | None:
        org = await self._organisation()
        return xero_date(org["PeriodLockDate"]) if org.get("PeriodLockDate") else None

    async def _projects(self, *, fresh: bool = False) -> dict[str, dict[str, Any]]:
        if self._projects_by_eid is None or fresh:
            found: dict[str, dict[str, Any]] = {}
            async for page in self.client.projects_pages("/Projects", {"states": "INPROGRESS,CLOSED"}):
                for record in page:
                    external_id = project_external_id(record)
                    if external_id is not None:
                        found[external_id] = dict(record)
            self._projects_by_eid = found
        return self._projects_by_eid

    async def _project_record(self, external_id: str) -> dict[str, Any] | None:
        """The project of an external id; a miss reads Xero again (another worker may have made it since)."""
        found = (await self._projects()).get(external_id)
        return found if found is not None else (await self._projects(fresh=True)).get(external_id)

    def _remember(self, external_id: str, record: dict[str, Any]) -> None:
        if self._projects_by_eid is not None:
            self._projects_by_eid[external_id] = record

    async def _write(self, call: Callable[[], Awaitable[T]]) -> T:
        """A write; Xero's refusal for a locked period keeps its business meaning: ``period_closed``."""
        try:
            return await call()
        except VendorRejected as exc:
            if _locked(exc):
                raise ProblemError(422, "period-closed", "Accounting period closed",
                                   f"Xero refused the period: {exc}", code="period_closed") from exc
            if exc.status in (400, 422):
                raise ProblemError(422, "validation-error", "Refused by the ERP", f"Xero refused the write: {exc}",
                                   code="validation_failed") from exc
            raise

    async def _ensure_tracking_option(self, option: str) -> None:
        """The Project tracking category's option for `option` (Xero refuses a line naming an unknown option)."""
        if self._tracking is None or option not in self._tracking[1]:  # a miss: another worker may have added it
            body = await self.client.get(f"{ACCOUNTING}/TrackingCategories")
            category = next((c for c in body.get("TrackingCategories") or [] if c.get("Name") == PROJECT_TRACKING),
                            None)
            if category is None:
                raise vendor_data_invalid(MappingError(f"Xero has no tracking category {PROJECT_TRACKING!r}"))
            self._tracking = (str(category["TrackingCategoryID"]),
                              {str(o.get("Name")) for o in category.get("Options") or []})
        category_id, options = self._tracking
        if option not in options:
            await self._write(lambda: self.client.request(
                "PUT", f"{ACCOUNTING}/TrackingCategories/{category_id}/Options", json={"Name": option},
                key=idempotency_key("tracking", option)))
            options.add(option)

    async def _user(self) -> str:
        if self._user_id is None:
            body = await self.client.get(f"{PROJECTS}/ProjectsUsers", {"page": 1, "pageSize": 50})
            users = body.get("items") or []
            if not users:
                raise vendor_data_invalid(MappingError("Xero has no projects user to post time as"))
            self._user_id = str(users[0]["userId"])
        return self._user_id

    async def _rate_task(self, project_id: str, line: SummaryLine, rate: Money) -> str:
        name = rate_task_name(rate if line.billable else None)
        if (project_id, name) not in self._rate_tasks:
            async for page in self.client.projects_pages(f"/Projects/{project_id}/Tasks"):
                for task in page:
                    self._rate_tasks[(project_id, str(task.get("name")))] = str(task["taskId"])
            if (project_id, name) not in self._rate_tasks:
                try:
                    task = await self.client.request(
                        "POST", f"{PROJECTS}/Projects/{project_id}/Tasks",
                        json={"name": name, "rate": {"currency": rate.currency,
                                                     "value": rate.amount if line.billable else 0},
                              "chargeType": "TIME" if line.billable else "NON_CHARGEABLE"},
                        key=idempotency_key("task", project_id, name))
                except VendorRejected:  # made meanwhile by another worker: use it
                    async for page in self.client.projects_pages(f"/Projects/{project_id}/Tasks"):
                        for found in page:
                            self._rate_tasks[(project_id, str(found.get("name")))] = str(found["taskId"])
                    if (project_id, name) not in self._rate_tasks:
                        raise
                else:
                    self._rate_tasks[(project_id, name)] = str(task["taskId"])
        return self._rate_tasks[(project_id, name)]

    # ------------------------------------------------------------------ time posting

    async def post_time(self, batch: TimePostingBatch) -> TimePostingJob:
        seen = self.summaries.batch(self.connection, batch.batch_key)
        if not seen or any(ln.time_entry_id is None and ln.error is None for ln in seen):
            await self._post(batch, replay=bool(seen))
        result = await self.get_time_posting(batch.batch_key)
        return TimePostingJob(batch_key=batch.batch_key, job_id=batch.batch_key, status=result.status)

    async def _post(self, batch: TimePostingBatch, *, replay: bool) -> None:
        rates = {ln.line_key: ln.rate for ln in batch.lines}
        lines = [SummaryLine(batch_key=batch.batch_key, line_key=ln.line_key,
                             summary_key=summary_key(batch.batch_key, ln), group_key=group_key(ln),
                             project_external_id=ln.project_external_id,
                             employee_external_id=ln.employee_external_id, date=ln.date, hours=ln.hours,
                             amount=str(ln.amount.amount), currency=ln.amount.currency, billable=ln.billable)
                 for ln in batch.lines]
        self.summaries.record(self.connection, lines)  # the composition, before anything reaches Xero
        lines = self.summaries.batch(self.connection, batch.batch_key)
        lock = await self._lock_date()
        refused: dict[str, tuple[str, ErpRefusalReason]] = {}
        projects: dict[str, dict[str, Any] | None] = {}
        for line in lines:
            if line.time_entry_id is not None or line.error is not None:
                continue
            if line.project_external_id not in projects:
                projects[line.project_external_id] = await self._project_record(line.project_external_id)
            project = projects[line.project_external_id]
            if minutes(line.hours) is None:
                refused[line.line_key] = (f"{line.hours} h is not a whole number of minutes", "validation")
            elif lock is not None and line.date <= lock:
                refused[line.line_key] = (f"the period is locked up to {lock}", "period_closed")
            elif project is None:
                refused[line.line_key] = (f"Xero has no project {line.project_external_id!r}", "validation")
            elif project.get("status") == "CLOSED":
                refused[line.line_key] = (f"the project {line.project_external_id} is closed", "project_inactive")
        for (error, refusal), keys in _by_reason(refused).items():
            self.summaries.failed(self.connection, batch.batch_key, keys, error, refusal)
        groups: dict[str, list[SummaryLine]] = {}
        for line in lines:
            if line.time_entry_id is None and line.error is None and line.line_key not in refused:
                groups.setdefault(line.summary_key, []).append(line)
        for key, members in groups.items():
            project = projects[members[0].project_external_id]
            assert project is not None
            await self._post_summary(batch.batch_key, key, members, project, rates, replay=replay)

    async def _post_summary(self, batch_key: str, key: str, members: list[SummaryLine], project: dict[str, Any],
                            rates: dict[str, Money], *, replay: bool) -> None:
        project_id = str(project["projectId"])
        total = sum(minutes(m.hours) or 0 for m in members)
        keys = [m.line_key for m in members]
        if total <= 0:
            await self._fold(batch_key, key, members, project_id, total)
            return
        if replay:  # a crash after Xero took the entry, before we recorded it: find it by its description
            entry_id = await self._find_entry(project_id, key)
            if entry_id is not None:
                self.summaries.posted(self.connection, key, entry_id)
                return
        first = members[0]
        rate = rates.get(first.line_key) or Money(amount=Decimal(0), currency=first.currency)
        body = {"userId": await self._user(), "taskId": await self._rate_task(project_id, first, rate),
                "dateUtc": f"{max(m.date for m in members).isoformat()}T00:00:00Z", "duration": total,
                "description": f"{DESCRIPTION_PREFIX}{key} {first.employee_external_id} ({len(members)} lines)"}
        try:
            entry = await self.client.request("POST", f"{PROJECTS}/Projects/{project_id}/Time", json=body,
                                              key=idempotency_key("time", self.client.tenant, key))
        except VendorRejected as exc:
            reason: ErpRefusalReason = "period_closed" if _locked(exc) else "rejected"
            self.summaries.failed(self.connection, batch_key, keys, str(exc), reason)
            return
        self.summaries.posted(self.connection, key, str(entry["timeEntryId"]))

    async def _fold(self, batch_key: str, key: str, members: list[SummaryLine], project_id: str, total: int) -> None:
        """Reversals: add the summary's (negative) minutes to an earlier entry of its group that can take them."""
        keys = [m.line_key for m in members]
        held = self.summaries.entry_lines(self.connection, members[0].group_key)
        for entry_id, posted in sorted(held.items()):
            theirs = [p for p in posted if p.summary_key != key]
            duration = sum(minutes(p.hours) or 0 for p in theirs) + total
            if duration < 1:
                continue
            entry = await self.client.find(f"{PROJECTS}/Projects/{project_id}/Time/{entry_id}")
            if not entry:
                continue
            body = {"userId": entry["userId"], "taskId": entry["taskId"], "dateUtc": entry["dateUtc"],
                    "duration": duration, "description": entry.get("description") or ""}
            try:
                await self.client.request("PUT", f"{PROJECTS}/Projects/{project_id}/Time/{entry_id}", json=body,
                                          key=idempotency_key("fold", self.client.tenant, key, str(duration)))
            except VendorRejected as exc:  # e.g. the entry is invoiced or locked in Xero
                self.summaries.failed(self.connection, batch_key, keys, str(exc), "rejected")
                return
            self.summaries.posted(self.connection, key, entry_id)
            return
        self.summaries.failed(self.connection, batch_key, keys,
                              f"the lines add up to {total} minutes and no earlier entry of theirs can take them: "
                              "Xero holds time of at least one minute", "validation")

    async def _find_entry(self, project_id: str, key: str) -> str | None:
        async for page in self.client.projects_pages(f"/Projects/{project_id}/Time"):
            for entry in page:
                if str(entry.get("description") or "").startswith(f"{DESCRIPTION_PREFIX}{key} "):
                    return str(entry["timeEntryId"])
        return None

    async def get_time_posting(self, batch_key: str) -> TimePostingResult:
        lines = self.summaries.batch(self.connection, batch_key)
        if not lines:
            raise not_found("time posting with batch key", batch_key)
        posted = {ln.line_key: ln.time_entry_id for ln in lines if ln.time_entry_id is not None}
        failed = {ln.line_key: ln.error for ln in lines if ln.error is not None and ln.time_entry_id is None}
        refusals: dict[str, ErpRefusalReason] = {
            ln.line_key: ln.refusal for ln in lines  # type: ignore[misc]
            if ln.error is not None and ln.time_entry_id is None and ln.refusal is not None}
        done = len(posted) + len(failed) == len(lines)
        status = ("failed" if not posted else "complete") if done else "pending"
        return TimePostingResult(batch_key=batch_key, status=status, posted=posted,  # type: ignore[arg-type]
                                 failed=failed, refusals=refusals)

    async def list_posted_time(self, project_external_id: str | None, date_from: dt.date | None,
                               date_to: dt.date | None, limit: int, cursor: str | None) -> Page[PostedTime]:
        q = hashlib.sha256(f"{project_external_id}|{date_from}|{date_to}".encode()).hexdigest()[:24]
        offset = 0
        if cursor is not None:
            position = decode_position(cursor, _Offset, "erp.xero.posted")
            if position.q != q or position.offset < 0:
                raise ProblemError(400, "invalid-cursor", "Invalid cursor", "The cursor is not one this list issued.",
                                   code="invalid_cursor")
            offset = position.offset
        if project_external_id is not None:
            record = await self._project_record(project_external_id)
            projects = {project_external_id: record} if record is not None else {}
        else:
            projects = await self._projects(fresh=True)
        items: list[PostedTime] = []
        for external_id, found in sorted(projects.items()):
            items += await self._posted(external_id, found, date_from, date_to)
        items.sort(key=lambda p: (p.date, p.line_key))
        following = offset + limit
        return Page(items=items[offset:following],
                    next_cursor=encode_position(_Offset(q=q, offset=following), "erp.xero.posted")
                    if following < len(items) else None)

    async def _posted(self, external_id: str, record: dict[str, Any], date_from: dt.date | None,
                      date_to: dt.date | None) -> list[PostedTime]:
        """A project's time as Xero holds it, each summary expanded into the lines it was made of."""
        project_id = str(record["projectId"])
        params: dict[str, str | int] = {}
        if date_from is not None:  # a summary is dated at its last line, within its month
            params["dateAfterUtc"] = f"{date_from.replace(day=1).isoformat()}T00:00:00Z"
        if date_to is not None:
            params["dateBeforeUtc"] = f"{_period_end(f'{date_to:%Y-%m}').isoformat()}T23:59:59Z"
        entries = [e async for page in self.client.projects_pages(f"/Projects/{project_id}/Time", params)
                   for e in page]
        ours = {str(e["timeEntryId"]) for e in entries
                if str(e.get("description") or "").startswith(DESCRIPTION_PREFIX)}
        compositions = self.summaries.by_entry(self.connection, ours)
        tasks: dict[str, dict[str, Any]] | None = None
        out: list[PostedTime] = []
        for entry in entries:
            entry_id = str(entry["timeEntryId"])
            if entry_id in ours:
                members = compositions.get(entry_id, [])
                total = sum(minutes(m.hours) or 0 for m in members)
                if total != int(entry.get("duration") or 0):
                    raise vendor_data_invalid(MappingError(
                        f"Xero time entry {entry_id} holds {entry.get('duration')} minutes, its {len(members)} "
                        f"lines {total}: the summary was changed in Xero"))
                out += [PostedTime(id=entry_id, line_key=m.line_key, project_external_id=m.project_external_id,
                                   employee_external_id=m.employee_external_id, date=m.date, hours=m.hours,
                                   amount=Money(amount=Decimal(m.amount), currency=m.currency), billable=m.billable)
                        for m in members if _within(m.date, date_from, date_to)]
                continue
            # Time entered in Xero by hand: one line, priced at its task's rate.
            if tasks is None:
                tasks = {str(t["taskId"]): t async for page in
                         self.client.projects_pages(f"/Projects/{project_id}/Tasks") for t in page}
            task = tasks.get(str(entry.get("taskId")), {})
            rate = task.get("rate") or {}
            day = xero_date(entry.get("dateUtc"))
            hours = Decimal(int(entry.get("duration") or 0)) / 60
            if _within(day, date_from, date_to):
                out.append(PostedTime(
                    id=entry_id, line_key=entry_id, project_external_id=external_id,
                    employee_external_id=str(entry.get("userId")), date=day, hours=str(hours.normalize()),
                    amount=Money(amount=(hours * Decimal(str(rate.get("value") or 0))).quantize(Decimal("0.01")),
                                 currency=str(rate.get("currency") or record.get("currencyCode"))),
                    billable=task.get("chargeType") == "TIME"))
        return out

    # ------------------------------------------------------------------ invoices and credit notes

    async def _document(self, collection: str, number_field: str, number: str) -> dict[str, Any] | None:
        body = await self.client.get(f"{ACCOUNTING}/{collection}", {"where": f'{number_field}=="{number}"'})
        found = body.get(collection) or []
        return dict(found[0]) if found else None

    async def upsert_invoice(self, external_id: str, data: InvoiceUpsert) -> tuple[Invoice, bool]:
        if await self._project_record(data.project_external_id) is None:
            raise ProblemError(422, "unknown-project", "Refused by the ERP",
                               f"Xero has no project {data.project_external_id!r}.", code="unknown_project")
        await self._ensure_tracking_option(data.project_external_id)
        existing = await self._document("Invoices", "InvoiceNumber", external_id)
        body = invoice_from_upsert(external_id, data, invoice_id=existing.get("InvoiceID") if existing else None,
                                   date=_period_end(data.period))
        key = idempotency_key("invoice", external_id, hashlib.sha256(msgspec.json.encode(data)).hexdigest()[:16])
        saved = await self._write(lambda: self.client.request("POST", f"{ACCOUNTING}/Invoices",
                                                              json={"Invoices": [body]}, key=key))
        try:
            return invoice_from_record(dict(saved["Invoices"][0]), tenant=self.client.tenant), existing is None
        except MappingError as exc:
            raise vendor_data_invalid(exc) from exc

    async def upsert_credit_memo(self, external_id: str, data: CreditMemoUpsert) -> tuple[CreditMemo, bool]:
        if await self._document("Invoices", "InvoiceNumber", data.invoice_external_id) is None:
            raise ProblemError(422, "unknown-invoice", "Refused by the ERP",
                               f"Xero has no invoice {data.invoice_external_id!r}.", code="unknown_invoice")
        await self._ensure_tracking_option(data.project_external_id)
        existing = await self._document("CreditNotes", "CreditNoteNumber", external_id)
        body = credit_note_from_upsert(external_id, data, date=_period_end(data.period),
                                       credit_note_id=existing.get("CreditNoteID") if existing else None)
        key = idempotency_key("credit", external_id, hashlib.sha256(msgspec.json.encode(data)).hexdigest()[:16])
        saved = await self._write(lambda: self.client.request("POST", f"{ACCOUNTING}/CreditNotes",
                                                              json={"CreditNotes": [body]}, key=key))
        try:
            return credit_memo_from_note(dict(saved["CreditNotes"][0])), existing is None
        except MappingError as exc:
            raise vendor_data_invalid(exc) from exc

    async def _documents(self, collection: str, where: str, limit: int, cursor: str | None,
                         q: str) -> tuple[list[dict[str, Any]], str | None]:
        records = [r async for page in self.client.accounting_pages(collection, {"where": where} if where else None)
                   for r in page]
        offset = 0
        if cursor is not None:
            position = decode_position(cursor, _Offset, f"erp.xero.{collection}")
            if position.q != q or position.offset < 0:
                raise ProblemError(400, "invalid-cursor", "Invalid cursor", "The cursor is not one this list issued.",
                                   code="invalid_cursor")
            offset = position.offset
        following = offset + limit
        return records[offset:following], (encode_position(_Offset(q=q, offset=following), f"erp.xero.{collection}")
                                            if following < len(records) else None)

    @staticmethod
    def _where(kind: str, project_external_id: str | None, period: str | None) -> str:
        clauses = [f'Type=="{kind}"']
        if project_external_id is not None and period is not None:
            clauses.append(f'Reference.StartsWith("{project_external_id} {period}")')
        elif project_external_id is not None:
            clauses.append(f'Reference.StartsWith("{project_external_id} ")')
        return " AND ".join(clauses)

    async def list_invoices(self, project_external_id: str | None, period: str | None, limit: int,
                            cursor: str | None) -> Page[Invoice]:
        where = self._where("ACCREC", project_external_id, period)
        records, following = await self._documents("Invoices", where, limit, cursor, f"{where}|{period}")
        try:
            items = [invoice_from_record(r, tenant=self.client.tenant) for r in records]
        except MappingError as exc:
            raise vendor_data_invalid(exc) from exc
        return Page(items=[i for i in items if period is None or i.period == period], next_cursor=following)

    async def list_credit_memos(self, project_external_id: str | None, period: str | None, limit: int,
                                cursor: str | None) -> Page[CreditMemo]:
        where = self._where("ACCRECCREDIT", project_external_id, period)
        records, following = await self._documents("CreditNotes", where, limit, cursor, f"{where}|{period}")
        try:
            items = [credit_memo_from_note(r) for r in records]
        except MappingError as exc:
            raise vendor_data_invalid(exc) from exc
        return Page(items=[m for m in items if period is None or m.period == period], next_cursor=following)


def _within(day: dt.date, date_from: dt.date | None, date_to: dt.date | None) -> bool:
    return (date_from is None or day >= date_from) and (date_to is None or day <= date_to)


def _by_reason(refused: dict[str, tuple[str, ErpRefusalReason]]) -> dict[tuple[str, ErpRefusalReason], list[str]]:
    out: dict[tuple[str, ErpRefusalReason], list[str]] = {}
    for key, reason in refused.items():
        out.setdefault(reason, []).append(key)
    return out
