"""The time-to-bill half of the ERP system API on Business Central: employees, time, invoices, credits.

Time posting. Business Central has no asynchronous job and no idempotency header, so a batch posts
once this way: its lines go out in JSON ``$batch`` requests with ``Isolation: snapshot`` (one
transaction each), 50 lines per request, each line as two operations — the ``psconnectRecords``
record ``timeLine``/<line key> (the unique key of that table) and the ``timeRegistrationEntries``
record. A line already posted (by this batch before a crash, or by another batch) makes its
``timeLine`` insert fail with ``Internal_EntityWithSameKeyExists``; the transaction then keeps
nothing, the adapter reports that line as posted with the existing entry and sends the rest again.
So a retry — of a request, of ``post_time``, of the whole process — never registers a line twice.
After each transaction the entries' ids are written on their ``timeLine`` records; when that answer was
lost, the id is found again (the entry of the same project, employee, date and hours no other line claims).
When every line is done the ``timeBatch``/<batch key> record stores the outcome, and the same batch
key then answers from it without posting anything. The "job" is synchronous: ``post_time`` answers
``complete`` (or ``failed`` when no line could be posted); ``job_id`` is that record's id.

Lines are checked before they are sent (employee known and active, project known and not closed,
period open) and refused per line with the canonical reason; a refusal by Business Central itself
inside a transaction is reported for that line as ``rejected`` and the other lines are sent again.

Invoices and credit memos are drafts (``status: Draft``) until the bound action ``Microsoft.NAV.post``
posts them (``post_invoice``, in ``_receivables``); the canonical upsert only creates and replaces drafts,
and a posted document is never changed (409 ``document_posted``). A draft's lines are replaced, and
its ``psconnectRecords`` entry written, in one transactional ``$batch``. An invoice draft is dated the
period's last day and falls due the project's payment terms later (``BillingSchedule.payment_terms_days``,
30 without a schedule): psconnect's terms are written as the draft's ``dueDate``, which posting keeps,
rather than left to the customer's payment terms in Business Central. Refusals for a closed or
date-locked accounting period are the 422 problem ``period_closed``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from decimal import Decimal
from typing import Any, Final

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
    TimePostingLine,
    TimePostingResult,
)
from contracts.common import Money, Page
from contracts.erp import AccountingPeriod, BillingSchedule, ErpRefusalReason, LegalEntity
from contracts.problems import ProblemError
from contracts.workforce import Employee, EmployeeUpsert
from system_apis._internal.http import VendorRejected
from system_apis.businesscentral._index import EXISTS, RECORDS, Index, data_of, odata_string, unprocessable
from system_apis.businesscentral.client import API_PATH, EXTENSION_PATH, BusinessCentralClient
from system_apis.businesscentral.mapping import (
    POSTED_STATUSES,
    MappingError,
    credit_memo_from_records,
    document_line,
    employee_from_records,
    employee_to_record,
    invoice_from_records,
    invoice_header,
    line_meta,
    period_of,
    time_entry_body,
)
from system_apis.posted_totals import summed_listing

__all__ = ["LINES_PER_BATCH", "BusinessCentralBilling"]

Record = dict[str, Any]
LINES_PER_BATCH: Final = 50
"""Two operations per line; a $batch holds 100."""
_BATCH_KEY: Final = re.compile(r"^[A-Za-z0-9_.:-]{8,120}$")


class _Posted(msgspec.Struct):
    """A ``timeLine`` record's data: the line as posted, for results and reconciliation."""

    batch_key: str
    project: str
    employee: str
    date: dt.date
    hours: str
    amount: str
    currency: str
    billable: bool


class BusinessCentralBilling:
    """Mixed into `BusinessCentralErp`, which provides the company, periods and generic upserts."""

    def __init__(self, client: BusinessCentralClient, *, revenue_account: str) -> None:
        self.client = client
        self.index = Index(client)
        self.revenue_account = revenue_account
        self._entity: LegalEntity | None = None

    # provided by BusinessCentralErp
    async def entity(self) -> LegalEntity:
        raise NotImplementedError

    async def periods(self) -> list[AccountingPeriod]:
        raise NotImplementedError

    async def _require_entity(self, legal_entity_id: str, pointer: str = "/legal_entity_id") -> LegalEntity:
        raise NotImplementedError

    async def _upsert(self, entity_set: str, record_type: str, external_id: str, body: Record,
                      data: Record | None = None) -> tuple[Record, bool]:
        raise NotImplementedError

    # ------------------------------------------------------------------ employees

    async def upsert_employee(self, external_id: str, data: EmployeeUpsert) -> tuple[Employee, bool]:
        entity = await self._require_entity(data.legal_entity_id)
        extra = {"cost_rate": str(data.cost_rate.amount), "currency": data.cost_rate.currency,
                 "cost_center": data.cost_center}
        record, created = await self._upsert("employees", "employee", external_id,
                                             employee_to_record(external_id, data), extra)
        try:
            return employee_from_records(record, data.cost_rate, external_id=external_id, legal_entity_id=entity.id,
                                         cost_center=data.cost_center), created
        except (MappingError, KeyError) as exc:
            raise ProblemError(502, "vendor-data-invalid", "Vendor record unreadable", str(exc),
                               code="vendor_data_invalid") from exc

    # ------------------------------------------------------------------ time posting

    async def post_time(self, batch: TimePostingBatch) -> TimePostingJob:
        await self._require_entity(batch.legal_entity_id)
        done = await self.index.find("timeBatch", batch.batch_key)
        if done is None:
            done = await self._post_lines(batch)
        status = str(data_of(done).get("status") or "complete")
        return TimePostingJob(batch_key=batch.batch_key, job_id=str(done["id"]),
                              status="failed" if status == "failed" else "complete")

    async def _post_lines(self, batch: TimePostingBatch) -> Record:
        posted: dict[str, str] = {}
        failed: dict[str, str] = {}
        refusals: dict[str, ErpRefusalReason] = {}
        pending: list[tuple[TimePostingLine, str, str]] = []
        jobs: dict[str, Record | None] = {}
        employees: dict[str, Record | None] = {}
        periods = await self.periods()
        mine = f"recordType eq 'timeLine' and parentKey eq {odata_string(batch.batch_key)}"
        async for marker in self.client.iter_all(await self.index.url(), filter=mine):  # an earlier attempt's lines
            posted[str(marker["recordKey"])] = str(marker.get("targetId") or await self._resolve_entry(marker))
        queued: set[str] = set()
        for line in batch.lines:
            if line.line_key in posted or line.line_key in queued:
                continue
            queued.add(line.line_key)
            reason, message, job_id, employee_id = await self._check(line, jobs, employees, periods)
            if reason is not None:
                failed[line.line_key], refusals[line.line_key] = message, reason
            else:
                pending.append((line, job_id, employee_id))
        for start in range(0, len(pending), LINES_PER_BATCH):
            chunk = pending[start:start + LINES_PER_BATCH]
            await self._send_chunk(batch.batch_key, chunk, posted, failed, refusals)
        status = "failed" if failed and not posted else "complete"
        own = {r["recordKey"] async for r in self.client.iter_all(await self.index.url(), filter=mine)}
        # lines found posted under another batch key: reported as posted here too, never registered twice
        elsewhere = {k: v for k, v in posted.items() if k not in own}
        return await self.index.put("timeBatch", batch.batch_key, data={
            "status": status, "failed": failed, "refusals": refusals, "elsewhere": elsewhere,
            "lines": len(batch.lines)})

    async def _check(self, line: TimePostingLine, jobs: dict[str, Record | None], employees: dict[str, Record | None],
                     periods: list[AccountingPeriod]) -> tuple[ErpRefusalReason | None, str, str, str]:
        if line.project_external_id not in jobs:
            jobs[line.project_external_id] = await self.index.find("project", line.project_external_id)
        if line.employee_external_id not in employees:
            index = await self.index.find("employee", line.employee_external_id)
            employee = None
            if index is not None:
                try:
                    employee = await self.client.get(await self.client.url(f"employees({index['targetId']})"))
                except VendorRejected as exc:
                    if exc.status != 404:
                        raise
            employees[line.employee_external_id] = employee
        job, employee = jobs[line.project_external_id], employees[line.employee_external_id]
        if job is None:
            return "validation", f"Business Central has no project {line.project_external_id!r}.", "", ""
        if employee is None:
            return "validation", f"Business Central has no employee {line.employee_external_id!r}.", "", ""
        if employee.get("status") != "Active":
            return "worker_inactive", f"Employee {line.employee_external_id} is not active.", "", ""
        if data_of(job).get("status") == "closed":
            return "project_inactive", f"Project {line.project_external_id} is closed.", "", ""
        period = next((p for p in periods if p.start_date <= line.date <= p.end_date), None)
        if period is None or period.is_closed or period.ar_locked:
            return "period_closed", f"Posting Date {line.date} is not within the allowed posting dates.", "", ""
        return None, "", str(job["targetId"]), str(employee["id"])

    async def _send_chunk(self, batch_key: str, chunk: list[tuple[TimePostingLine, str, str]],
                          posted: dict[str, str], failed: dict[str, str],
                          refusals: dict[str, ErpRefusalReason]) -> None:
        company = await self.client.company()
        records = f"{self.client.root}{EXTENSION_PATH}/companies({company})/{RECORDS}"
        currency = (await self.entity()).currency
        while chunk:
            requests: list[Record] = []
            for i, (line, job_id, employee_id) in enumerate(chunk):
                meta = _Posted(batch_key=batch_key, project=line.project_external_id,
                               employee=line.employee_external_id, date=line.date, hours=line.hours,
                               amount=str(line.amount.amount), currency=line.amount.currency or currency,
                               billable=line.billable)
                requests.append({"id": f"m{i}", "method": "POST", "url": records,
                                 "headers": {"Content-Type": "application/json"},
                                 "body": {"recordType": "timeLine", "recordKey": line.line_key, "targetId": "",
                                          "parentKey": batch_key, "groupKey": line.project_external_id,
                                          "recordDate": line.date.isoformat(),
                                          "data": msgspec.json.encode(meta).decode()}})
                requests.append({"id": f"e{i}", "method": "POST",
                                 "url": f"companies({company})/timeRegistrationEntries",
                                 "headers": {"Content-Type": "application/json"},
                                 "body": time_entry_body(line, employee_id=employee_id, job_id=job_id)})
            answers = await self.client.batch(requests)
            errors = [(int(a["id"][1:]), a) for a in answers if int(a.get("status", 500)) >= 400
                      and int(a.get("status", 500)) != 424]
            if not errors:
                await self._record_entries(chunk, answers, posted)
                return
            drop: set[int] = set()
            for i, answer in errors:
                line = chunk[i][0]
                code = str((answer.get("body") or {}).get("error", {}).get("code") or "")
                if answer["id"].startswith("m") and code == EXISTS:
                    existing = await self.index.find("timeLine", line.line_key)
                    if existing is None:
                        raise ProblemError(502, "vendor-data-invalid", "Vendor answer unreadable",
                                           f"Business Central reports line {line.line_key} posted but has no record "
                                           "of it.", code="vendor_data_invalid")
                    posted[line.line_key] = str(existing.get("targetId") or await self._resolve_entry(existing))
                else:
                    message = str((answer.get("body") or {}).get("error", {}).get("message") or code)
                    failed[line.line_key], refusals[line.line_key] = f"{code}: {message}", "rejected"
                drop.add(i)
            if not drop:  # nothing to blame: the whole batch was refused
                raise ProblemError(502, "vendor-data-invalid", "Vendor answer unreadable",
                                   "Business Central refused a time batch without naming an operation.",
                                   code="vendor_data_invalid")
            chunk = [c for i, c in enumerate(chunk) if i not in drop]

    async def _resolve_entry(self, marker: Record) -> str:
        """The entry of a ``timeLine`` whose id was never written (the answer of its transaction was lost).

        The entry was committed with the marker; it is the one of the same project, employee, date and
        hours that no other ``timeLine`` claims. Found, it is written on the marker; else the marker's id.
        """
        try:
            line = msgspec.json.decode(str(marker.get("data") or ""), type=_Posted)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return str(marker["id"])
        job = await self.index.find("project", line.project)
        employee = await self.index.find("employee", line.employee)
        if job is None or employee is None:
            return str(marker["id"])
        day = line.date.isoformat()
        candidates = [e async for e in self.client.iter_all(
            await self.client.url("timeRegistrationEntries"),
            filter=f"jobId eq {job['targetId']} and employeeId eq {employee['targetId']} and date eq {day}")]
        claimed = {str(r.get("targetId")) async for r in self.client.iter_all(
            await self.index.url(), filter=f"recordType eq 'timeLine' and groupKey eq {odata_string(line.project)} "
                                           f"and recordDate eq {day}")}
        for entry in candidates:
            if str(entry["id"]) not in claimed and Decimal(str(entry.get("quantity"))) == Decimal(line.hours):
                try:
                    await self.client.patch(await self.index.url(str(marker["id"])), {"targetId": str(entry["id"])},
                                            str(marker["@odata.etag"]))
                except VendorRejected as exc:  # 412: written meanwhile (by our own retried PATCH, or a racer)
                    if exc.status != 412:
                        raise
                    return str((await self.client.get(await self.index.url(str(marker["id"])))).get("targetId")
                               or entry["id"])
                return str(entry["id"])
        return str(marker["id"])

    async def _record_entries(self, chunk: list[tuple[TimePostingLine, str, str]], answers: list[Record],
                              posted: dict[str, str]) -> None:
        """Write each new entry's id on its ``timeLine`` record (one non-transactional $batch of PATCHes)."""
        by_id = {a["id"]: a.get("body") or {} for a in answers}
        company = await self.client.company()
        patches = []
        for i, (line, _, _) in enumerate(chunk):
            marker, entry = by_id.get(f"m{i}", {}), by_id.get(f"e{i}", {})
            posted[line.line_key] = str(entry.get("id") or marker.get("id"))
            if marker.get("id") and entry.get("id"):
                patches.append({"id": f"p{i}", "method": "PATCH",
                                "url": f"{self.client.root}{EXTENSION_PATH}/companies({company})/"
                                       f"{RECORDS}({marker['id']})",
                                "headers": {"Content-Type": "application/json",
                                            "If-Match": str(marker.get("@odata.etag") or "*")},
                                "body": {"targetId": str(entry["id"])}})
        for start in range(0, len(patches), 100):
            await self.client.batch(patches[start:start + 100], transactional=False)

    async def get_time_posting(self, batch_key: str) -> TimePostingResult:
        if not _BATCH_KEY.match(batch_key):
            raise ProblemError(404, "not-found", "Not found", f"No time posting with batch key {batch_key!r}.",
                               code="not_found")
        done = await self.index.find("timeBatch", batch_key)
        posted = {str(r["recordKey"]): str(r.get("targetId") or r["id"]) async for r in self.client.iter_all(
            await self.index.url(), filter=f"recordType eq 'timeLine' and parentKey eq {odata_string(batch_key)}")}
        if done is None:
            if not posted:
                raise ProblemError(404, "not-found", "Not found", f"No time posting with batch key {batch_key!r}.",
                                   code="not_found")
            return TimePostingResult(batch_key=batch_key, status="pending", posted=posted)
        data = data_of(done)
        failed = {str(k): str(v) for k, v in dict(data.get("failed") or {}).items()}
        refusals = msgspec.convert(data.get("refusals") or {}, dict[str, ErpRefusalReason])
        posted.update({k: str(v) for k, v in dict(data.get("elsewhere") or {}).items()})
        return TimePostingResult(batch_key=batch_key, status="failed" if data.get("status") == "failed" else "complete",
                                 posted=posted, failed=failed, refusals=refusals)

    async def list_posted_time(self, project_external_id: str | None, date_from: dt.date | None,
                               date_to: dt.date | None, limit: int, cursor: str | None) -> Page[PostedTime]:
        terms = ["recordType eq 'timeLine'"]
        if project_external_id is not None:
            terms.append(f"groupKey eq {odata_string(project_external_id)}")
        if date_from is not None:
            terms.append(f"recordDate ge {date_from.isoformat()}")
        if date_to is not None:
            terms.append(f"recordDate le {date_to.isoformat()}")
        records, following = await self._page(await self.index.url(), " and ".join(terms), limit, cursor,
                                              "postedTime")
        items = []
        for record in records:
            try:
                line = msgspec.json.decode(str(record.get("data") or ""), type=_Posted)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise ProblemError(502, "vendor-data-invalid", "Vendor record unreadable",
                                   f"timeLine {record.get('recordKey')}: {exc}", code="vendor_data_invalid") from exc
            items.append(PostedTime(id=str(record.get("targetId") or record["id"]), line_key=str(record["recordKey"]),
                                    project_external_id=line.project, employee_external_id=line.employee,
                                    date=line.date, hours=line.hours,
                                    amount=Money(amount=Decimal(line.amount), currency=line.currency),
                                    billable=line.billable))
        return Page(items=items, next_cursor=following)

    async def list_posted_time_totals(self, project_external_id: str | None, date_from: dt.date | None,
                                      date_to: dt.date | None, limit: int,
                                      cursor: str | None) -> Page[PostedTimeTotal]:
        """Summed here: the API has no aggregate of posted time."""
        return await summed_listing(self.list_posted_time, project_external_id, date_from, date_to, limit, cursor,
                                    "erp.businesscentral.posted_totals")

    async def _page(self, url: str, filter: str | None, limit: int, cursor: str | None,
                    list_id: str) -> tuple[list[Record], str | None]:
        raise NotImplementedError

    # ------------------------------------------------------------------ invoices and credit memos

    async def _period_open(self, period: str) -> dt.date:
        """The period's last day (the document date); ``period_closed`` when BC would refuse posting in it."""
        found = next((p for p in await self.periods() if period_of(p.start_date) == period), None)
        if found is None or found.is_closed or found.ar_locked:
            raise unprocessable("period_closed", f"Accounting period {period} of Business Central is closed or "
                                "locked for receivables (or does not exist).", "Accounting period closed")
        return found.end_date

    async def upsert_invoice(self, external_id: str, data: InvoiceUpsert) -> tuple[Invoice, bool]:
        return await self._document("salesInvoices", "invoice", external_id, data, "invoiceDate",
                                    {"invoice_external_id": None})  # type: ignore[return-value]

    async def upsert_credit_memo(self, external_id: str, data: CreditMemoUpsert) -> tuple[CreditMemo, bool]:
        invoice = await self.index.find("invoice", data.invoice_external_id)
        if invoice is None:
            raise unprocessable("unknown_invoice", f"Business Central has no invoice {data.invoice_external_id!r}.")
        return await self._document("salesCreditMemos", "creditMemo", external_id, data, "creditMemoDate",
                                    {"invoice_external_id": data.invoice_external_id,
                                     "invoice_id": invoice["targetId"]})  # type: ignore[return-value]

    async def _document(self, entity_set: str, record_type: str, external_id: str,
                        data: InvoiceUpsert | CreditMemoUpsert, date_field: str,
                        extra: Record) -> tuple[Invoice | CreditMemo, bool]:
        entity = await self._require_entity(data.legal_entity_id)
        project = await self.index.find("project", data.project_external_id)
        if project is None:
            raise unprocessable("unknown_project", f"Business Central has no project {data.project_external_id!r}.")
        day = await self._period_open(data.period)
        due = day + dt.timedelta(days=_terms(project)) if record_type == "invoice" else None
        header = invoice_header(data, customer_id=data.customer_id, day=day, external_id=external_id,
                                company_currency=entity.currency, date_field=date_field, due=due)
        if extra.get("invoice_id"):
            header["invoiceId"] = extra["invoice_id"]
        index = await self.index.find(record_type, external_id)
        document: Record | None = None
        if index is not None:
            try:
                document = await self.client.get(await self.client.url(f"{entity_set}({index['targetId']})"))
            except VendorRejected as exc:
                if exc.status != 404:
                    raise
        if document is None:
            document = await self._orphan(entity_set, record_type, header)
        created = document is None
        try:
            if document is None:
                document = await self.client.create(await self.client.url(entity_set), header)
            elif document.get("status") != "Draft":
                raise ProblemError(409, "conflict", "Conflict", f"{record_type} {external_id} is posted in Business "
                                   "Central and cannot change; issue a credit memo instead.", code="document_posted")
            else:
                document = await self.client.patch(await self.client.url(f"{entity_set}({document['id']})"),
                                                   header, str(document["@odata.etag"]))
        except VendorRejected as exc:
            if exc.status == 400 and "customer" in str(exc).lower():
                raise unprocessable("unknown_customer", f"Business Central refused the customer: {exc}") from exc
            raise
        meta = {"project_external_id": data.project_external_id, "period": data.period,
                "lines": line_meta(list(data.lines)), **{k: v for k, v in extra.items() if v is not None}}
        await self._replace_lines(entity_set, record_type, external_id, document, data, meta, index)
        return await self._read_document(entity_set, record_type, external_id, str(document["id"])), created

    async def _orphan(self, entity_set: str, record_type: str, header: Record) -> Record | None:
        """A draft this upsert created before a crash lost its lines and index record: adopt it, never a second."""
        found = await self.client.find(await self.client.url(entity_set), " and ".join((
            f"externalDocumentNumber eq {odata_string(str(header['externalDocumentNumber']))}",
            f"customerId eq {header['customerId']}", "status eq 'Draft'")))
        if found is None or await self.index.by_target(record_type, str(found["id"])) is not None:
            return None
        return found

    async def _replace_lines(self, entity_set: str, record_type: str, external_id: str, document: Record,
                             data: InvoiceUpsert | CreditMemoUpsert, meta: Record, index: Record | None) -> None:
        """Old lines out, new lines in and the index record written: one transaction."""
        company = await self.client.company()
        lines_set = "salesInvoiceLines" if entity_set == "salesInvoices" else "salesCreditMemoLines"
        base = f"companies({company})/{entity_set}({document['id']})/{lines_set}"
        old, _ = await self.client.list_page(f"{self.client.root}{API_PATH}/{base}")
        requests: list[Record] = [{"id": f"d{i}", "method": "DELETE", "url": f"{base}({line['id']})",
                                   "headers": {"If-Match": str(line["@odata.etag"])}} for i, line in enumerate(old)]
        requests += [{"id": f"l{i}", "method": "POST", "url": base, "headers": {"Content-Type": "application/json"},
                      "body": document_line(line, account_number=self.revenue_account, sequence=10000 * (i + 1))}
                     for i, line in enumerate(data.lines)]
        body = {"recordType": record_type, "recordKey": external_id, "targetId": str(document["id"]),
                "parentKey": data.period, "groupKey": data.project_external_id, "recordDate": "",
                "data": msgspec.json.encode(meta).decode()}
        records = f"{self.client.root}{EXTENSION_PATH}/companies({company})/{RECORDS}"
        if index is None:
            requests.append({"id": "x", "method": "POST", "url": records,
                             "headers": {"Content-Type": "application/json"}, "body": body})
        else:
            requests.append({"id": "x", "method": "PATCH", "url": f"{records}({index['id']})",
                             "headers": {"Content-Type": "application/json", "If-Match": str(index["@odata.etag"])},
                             "body": body})
        if len(requests) > 100:
            raise ProblemError(422, "validation-error", "Validation failed", "Business Central takes one document "
                               "with at most 98 lines in one transaction.", code="validation_failed")
        answers = await self.client.batch(requests)
        errors = [a for a in answers if int(a.get("status", 500)) >= 400 and int(a.get("status", 500)) != 424]
        if errors:
            error = (errors[0].get("body") or {}).get("error", {})
            raise VendorRejected("businesscentral", f"{error.get('code')}: {error.get('message')}",
                                 status=int(errors[0]["status"]), code=error.get("code"))

    async def _read_document(self, entity_set: str, record_type: str, external_id: str, document_id: str,
                             index: Record | None = None, document: Record | None = None) -> Invoice | CreditMemo:
        entity = await self.entity()
        index = index or await self.index.find(record_type, external_id)
        if document is None:
            document = await self.client.get(await self.client.url(f"{entity_set}({document_id})"))
        lines_set = "salesInvoiceLines" if entity_set == "salesInvoices" else "salesCreditMemoLines"
        lines, _ = await self.client.list_page(await self.client.url(f"{entity_set}({document_id})/{lines_set}"))
        meta = data_of(index or {})
        try:
            if record_type == "invoice":
                return invoice_from_records(document, lines, meta, external_id=external_id,
                                            legal_entity_id=entity.id, company_currency=entity.currency,
                                            credited=await self._credited(document))
            return credit_memo_from_records(document, lines, meta, external_id=external_id,
                                            company_currency=entity.currency)
        except (MappingError, KeyError, TypeError) as exc:
            raise ProblemError(502, "vendor-data-invalid", "Vendor record unreadable", str(exc),
                               code="vendor_data_invalid") from exc

    async def _credited(self, invoice: Record) -> Decimal:
        """The total of the posted credit memos applied to a posted invoice (asked only when part is settled).

        A credit memo names the invoice it applies to (``invoiceId``); drafts and cancelled ones apply nothing.
        """
        settled = Decimal(str(invoice.get("totalAmountIncludingTax") or 0)) - \
            Decimal(str(invoice.get("remainingAmount") or 0))
        if invoice.get("status") not in POSTED_STATUSES or settled <= 0:
            return Decimal(0)
        memos = self.client.iter_all(await self.client.url("salesCreditMemos"), filter=f"invoiceId eq {invoice['id']}")
        return sum([Decimal(str(m.get("totalAmountIncludingTax") or 0)) async for m in memos
                    if m.get("status") in POSTED_STATUSES], Decimal(0))

    async def _documents(self, entity_set: str, record_type: str, project_external_id: str | None,
                         period: str | None, limit: int, cursor: str | None) -> tuple[list[Invoice | CreditMemo],
                                                                                       str | None]:
        terms = [f"recordType eq {odata_string(record_type)}"]
        if project_external_id is not None:
            terms.append(f"groupKey eq {odata_string(project_external_id)}")
        if period is not None:
            terms.append(f"parentKey eq {odata_string(period)}")
        records, following = await self._page(await self.index.url(), " and ".join(terms), limit, cursor,
                                              record_type)
        items = await asyncio.gather(*(self._read_document(entity_set, record_type, str(r["recordKey"]),
                                                           str(r["targetId"]), r) for r in records))
        return list(items), following

    async def list_credit_memos(self, project_external_id: str | None, period: str | None, limit: int,
                                cursor: str | None) -> Page[CreditMemo]:
        items, following = await self._documents("salesCreditMemos", "creditMemo", project_external_id, period,
                                                  limit, cursor)
        return Page(items=[i for i in items if isinstance(i, CreditMemo)], next_cursor=following)


def _terms(project: Record) -> int:
    """Days from invoice to due date: the project's billing schedule's payment terms (30 without one)."""
    billing = data_of(project).get("billing")
    try:
        return msgspec.convert(billing, BillingSchedule).payment_terms_days if billing else 30
    except msgspec.ValidationError:
        return 30
