"""Approved expenses posted as project costs on Business Central: general journal lines, once per line.

Why general journal lines and not purchase invoices. API v2.0 has no expense report; the two documented ways
to book a cost are a purchase invoice (``purchaseInvoices`` + ``purchaseInvoiceLines`` for a vendor, posted by
``purchaseInvoices({id})/Microsoft.NAV.post``) and a general journal line (``journals({id})/journalLines``,
posted by ``journals({id})/Microsoft.NAV.post``). A purchase invoice needs every employee set up as a vendor
and is posted per document: per-line idempotency would mean one invoice per expense line, three writes and an
action each. A journal line is one record per expense line, so the package's payment mechanism applies as
it is: the line and its ``psconnectRecords`` record ``expenseLine``/<line key> (the table's unique key) are
inserted in one transactional ``$batch`` (``Isolation: snapshot``), so a line key can be entered once only —
a second insert, by a retried ``$batch`` whose answer was lost, a retried call or another batch key, fails
with ``Internal_EntityWithSameKeyExists``, the transaction keeps nothing and the line is reported posted
with its first record. Lines go into a journal batch of psconnect's own (``PSCEXPENSE`` unless the
connection names another, created on first use and balanced to the employee reimbursements payable account),
because posting a journal posts every line in it: psconnect must never post what someone left in ``DEFAULT``.

The journal is posted once its lines are in. Posting is not retried on a lost answer (it is not idempotent);
the call fails instead, and its retry finds the lines' records, an empty journal, and nothing to post again.
A line's canonical record id is its expense-side ``generalLedgerEntries`` id, found after posting by the
line's document number (``_expense_mapping``) and written on its record (``targetId``); a record without one
is a line entered but not yet posted, which the next call posts. When Business Central refuses to post, its
error names the journal line it stopped at: that line and its record are withdrawn in one transaction
(``period_closed`` when the posting date is not allowed, else ``rejected``) and the rest is posted again.

Before anything is written each line is checked and refused per line with the canonical reason: an unknown
or closed project (``project_inactive``), an unknown or inactive employee (``worker_inactive``), an amount in
another currency than the project's — or a project in another currency than the company's, which the API's
journal line (no currency field) cannot post — (``validation``), a date in a closed or date-locked
accounting period (``period_closed``). When every line is settled the ``expenseBatch``/<batch key> record
stores the result, which the same batch key answers from without writing anything.

Docs: https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/api-reference/v2.0/resources/dynamics_journal
https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/api-reference/v2.0/api/dynamics_journal_post
https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/api-reference/v2.0/resources/dynamics_journalline
https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/api-reference/v2.0/resources/dynamics_purchaseinvoice
https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/webservices/use-odata-batch
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any, Final

import msgspec

from contracts.billing import ExpensePostingBatch, ExpensePostingLine, ExpensePostingResult, PostedExpense
from contracts.common import Page
from contracts.erp import AccountingPeriod, ErpRefusalReason
from contracts.problems import ProblemError
from system_apis._internal.http import VendorRejected
from system_apis.businesscentral._billing import LINES_PER_BATCH
from system_apis.businesscentral._expense_mapping import (
    DOCUMENT_PREFIX,
    DOCUMENT_PREFIX_END,
    EXPENSE_BATCH,
    EXPENSE_LINE,
    ExpenseMeta,
    expense_journal_line,
    expense_meta,
    expense_result,
    meta_of,
    posted_expense,
    refused_line_number,
)
from system_apis.businesscentral._index import EXISTS, RECORDS, data_of, not_found, odata_string
from system_apis.businesscentral._receivables import BusinessCentralReceivables
from system_apis.businesscentral.client import EXTENSION_PATH, BusinessCentralClient
from system_apis.businesscentral.mapping import MappingError

__all__ = ["BusinessCentralExpenses"]

Record = dict[str, Any]
_JOURNAL_SET: Final = "journals"
_UNSETTLED: Final = f"recordType eq '{EXPENSE_LINE}' and targetId eq ''"
_POSTED: Final = f"recordType eq '{EXPENSE_LINE}' and targetId ne ''"
"""A line is posted once its expense G/L entry's id is written on its record."""
_JSON: Final = {"Content-Type": "application/json"}


def _unreadable(detail: str) -> ProblemError:
    return ProblemError(502, "vendor-data-invalid", "Vendor record unreadable", detail, code="vendor_data_invalid")


class _Refusals:
    """What a batch could not post, per line key: Business Central's message and the canonical reason."""

    def __init__(self) -> None:
        self.failed: dict[str, str] = {}
        self.reasons: dict[str, ErpRefusalReason] = {}

    def add(self, key: str, reason: ErpRefusalReason, message: str) -> None:
        self.failed[key], self.reasons[key] = message, reason


class BusinessCentralExpenses(BusinessCentralReceivables):
    """Expense posting, its result and the posted expenses; `BusinessCentralErp` is the whole adapter.

    Args:
        expense_journal: the code (10 characters) of the general journal batch psconnect posts expenses in.
        expense_account: the G/L account number project expenses are booked to.
        expense_balancing_account: the G/L account that batch balances to (employee reimbursements payable),
            when psconnect creates it.
    """

    def __init__(self, client: BusinessCentralClient, *, revenue_account: str, payment_journal: str = "PSCONNECT",
                 payment_account: str = "10100", expense_journal: str = "PSCEXPENSE", expense_account: str = "60100",
                 expense_balancing_account: str = "20700") -> None:
        super().__init__(client, revenue_account=revenue_account, payment_journal=payment_journal,
                         payment_account=payment_account)
        self.expense_journal = expense_journal.upper()[:10]
        self.expense_account = expense_account
        self.expense_balancing_account = expense_balancing_account
        self._expense_journal_id: str | None = None
        self._expenses = asyncio.Lock()  # one journal batch: this adapter enters and posts one batch at a time

    # ------------------------------------------------------------------ posting

    async def post_expenses(self, batch: ExpensePostingBatch) -> ExpensePostingResult:
        await self._require_entity(batch.legal_entity_id)
        async with self._expenses:
            done = await self.index.find(EXPENSE_BATCH, batch.batch_key)
            if done is None:
                done = await self._post_expense_batch(batch)
        return expense_result(batch.batch_key, data_of(done))

    async def _post_expense_batch(self, batch: ExpensePostingBatch) -> Record:
        refusals = _Refusals()
        known: dict[str, str] = {}  # line key -> G/L entry id ("" until its line is posted)
        pending: list[ExpensePostingLine] = []
        queued: set[str] = set()
        periods = await self.periods()
        projects = await self._indexed("project")
        employees = await self._employees()
        # entered by an earlier call with this batch key (its answer lost, or it failed half-way): never again
        known.update(await self._own_lines(batch.batch_key))
        for line in batch.lines:
            if line.line_key in known or line.line_key in refusals.failed or line.line_key in queued:
                continue  # the same key twice in one batch: its first line stands
            reason, message = await self._check_expense(line, periods, projects, employees)
            if reason is None:
                queued.add(line.line_key)
                pending.append(line)  # entered under another batch key already: found when its insert is refused
                continue
            existing = await self.index.find(EXPENSE_LINE, line.line_key)
            if existing is not None:  # posted before under another batch key, valid then: reported, not refused
                known[line.line_key] = str(existing.get("targetId") or "")
            else:
                refusals.add(line.line_key, reason, message)
        journal = await self._expense_journal()
        for start in range(0, len(pending), LINES_PER_BATCH):
            known.update(await self._enter_expenses(batch.batch_key, journal, pending[start:start + LINES_PER_BATCH],
                                                    refusals))
        await self._post_expense_journal(journal, set(known), refusals)
        settled = await self._settle_expenses()
        posted: dict[str, str] = {}
        for key, entry in known.items():
            if key in refusals.failed:
                continue
            posted[key] = entry or settled.get(key, "")
            if not posted[key]:
                raise _unreadable(f"Expense line {key} is entered in Business Central but its G/L entry is not yet "
                                  "recorded; posting the batch again finishes it.")
        return await self.index.put(EXPENSE_BATCH, batch.batch_key, data={
            "posted": posted, "failed": refusals.failed, "refusals": refusals.reasons, "lines": len(batch.lines)})

    async def _own_lines(self, batch_key: str) -> dict[str, str]:
        """{line key: G/L entry id or ""} of the lines entered under ``batch_key``."""
        mine = f"recordType eq '{EXPENSE_LINE}' and parentKey eq {odata_string(batch_key)}"
        return {str(r["recordKey"]): str(r.get("targetId") or "")
                async for r in self.client.iter_all(await self.index.url(), filter=mine)}

    async def _check_expense(self, line: ExpensePostingLine, periods: list[AccountingPeriod],
                             projects: dict[str, Record],
                             employees: dict[str, Record]) -> tuple[ErpRefusalReason | None, str]:
        project, employee = projects.get(line.project_external_id), employees.get(line.employee_external_id)
        if project is None:
            return "project_inactive", f"Business Central has no project {line.project_external_id!r}."
        details = data_of(project)
        if details.get("status") == "closed":
            return "project_inactive", f"Project {line.project_external_id} is closed."
        if employee is None:
            return "worker_inactive", f"Business Central has no employee {line.employee_external_id!r}."
        if employee.get("status") != "Active":
            return "worker_inactive", f"Employee {line.employee_external_id} is not active."
        company_currency = (await self.entity()).currency
        currency = str(details.get("currency") or company_currency)
        if line.amount.currency != currency:
            return "validation", (f"The line is in {line.amount.currency}; project {line.project_external_id} is in "
                                  f"{currency}.")
        if currency != company_currency:
            return "validation", (f"Project {line.project_external_id} is in {currency}; Business Central's journal "
                                  f"lines post in the company's currency, {company_currency}.")
        if line.amount.amount == 0:
            return "validation", "Amount must have a value in a general journal line."
        period = next((p for p in periods if p.start_date <= line.date <= p.end_date), None)
        if period is None or period.is_closed or period.ar_locked:
            return "period_closed", f"Posting Date {line.date} is not within the allowed posting dates."
        return None, ""

    async def _indexed(self, record_type: str) -> dict[str, Record]:
        """{external id: keyed record} of one record type, read in pages: a batch names up to 200 employees and
        projects, and one read of each beats a lookup per line (Business Central's 6,000 calls per 5 minutes)."""
        return {str(r["recordKey"]): r async for r in self.client.iter_all(
            await self.index.url(), filter=f"recordType eq {odata_string(record_type)}")}

    async def _employees(self) -> dict[str, Record]:
        """{employee external id: Business Central employee}, from the keyed records and one read of employees."""
        targets = {key: str(r.get("targetId") or "") for key, r in (await self._indexed("employee")).items()}
        by_id = {str(e["id"]): e async for e in self.client.iter_all(await self.client.url("employees"))}
        return {key: by_id[target] for key, target in targets.items() if target in by_id}

    async def _enter_expenses(self, batch_key: str, journal: str, chunk: list[ExpensePostingLine],
                              refusals: _Refusals) -> dict[str, str]:
        """Each line with its record, one transaction per chunk: {line key: G/L entry id or ""} of the chunk.

        A line whose record exists already (an earlier answer of this very ``$batch`` was lost, or another call
        entered it meanwhile) is left out and the rest sent again; a line Business Central refuses is ``rejected``.
        """
        company = await self.client.company()
        records = f"{self.client.root}{EXTENSION_PATH}/companies({company})/{RECORDS}"
        lines = f"companies({company})/{_JOURNAL_SET}({journal})/journalLines"
        entered: dict[str, str] = {}
        while chunk:
            requests: list[Record] = []
            for i, line in enumerate(chunk):
                meta = expense_meta(line, batch_key, account_number=self.expense_account)
                requests.append({"id": f"m{i}", "method": "POST", "url": records, "headers": _JSON, "body": {
                    "recordType": EXPENSE_LINE, "recordKey": line.line_key, "targetId": "", "parentKey": batch_key,
                    "groupKey": line.project_external_id, "recordDate": line.date.isoformat(),
                    "data": msgspec.json.encode(meta).decode()}})
                requests.append({"id": f"l{i}", "method": "POST", "url": lines, "headers": _JSON,
                                 "body": expense_journal_line(line, account_number=self.expense_account)})
            answers = await self.client.batch(requests)
            errors = [(int(a["id"][1:]), a) for a in answers if int(a.get("status", 500)) >= 400
                      and int(a.get("status", 500)) != 424]
            if not errors:
                return {**entered, **{line.line_key: "" for line in chunk}}
            drop: set[int] = set()
            for i, answer in errors:
                error = (answer.get("body") or {}).get("error", {})
                code, line = str(error.get("code") or ""), chunk[i]
                if answer["id"].startswith("m") and code == EXISTS:
                    existing = await self.index.find(EXPENSE_LINE, line.line_key)
                    if existing is None:
                        raise _unreadable(f"Business Central reports expense line {line.line_key} entered but has "
                                          "no record of it.")
                    entered[line.line_key] = str(existing.get("targetId") or "")
                else:
                    refusals.add(line.line_key, "rejected", f"{code}: {error.get('message') or ''}")
                drop.add(i)
            if not drop:  # nothing to blame: the whole batch was refused
                raise _unreadable("Business Central refused an expense batch without naming an operation.")
            # the answer of an earlier send was lost: every line it entered is there now, not only the first
            mine = await self._own_lines(batch_key)
            for i, line in enumerate(chunk):
                if line.line_key in mine and line.line_key not in refusals.failed:
                    entered[line.line_key] = mine[line.line_key]
                    drop.add(i)
            chunk = [line for i, line in enumerate(chunk) if i not in drop]
        return entered

    async def _post_expense_journal(self, journal: str, keys: set[str], refusals: _Refusals) -> None:
        """Post psconnect's expense journal until it is empty, withdrawing each line Business Central refuses.

        ``keys`` are this batch's line keys: a refused line of another batch (left entered by a call that
        failed before posting) is withdrawn too, and refused when that batch is posted again.
        """
        lines_url = await self.client.url(f"{_JOURNAL_SET}({journal})/journalLines")
        post_url = await self.client.url(f"{_JOURNAL_SET}({journal})/Microsoft.NAV.post")
        while (await self.client.list_page(lines_url, page_size=1))[0]:
            try:
                await self.client.action(post_url)
                return
            except VendorRejected as exc:
                if "nothing to post" in str(exc).lower():  # posted meanwhile by another caller
                    return
                number = refused_line_number(str(exc))
                refused = await self.client.find(lines_url, f"lineNumber eq {number}") if number else None
                if refused is None:
                    raise
                key = await self._withdraw_expense(journal, refused)
                if key is not None and key in keys:
                    reason: ErpRefusalReason = "period_closed" if "allowed posting dates" in str(exc) else "rejected"
                    refusals.add(key, reason, f"{exc.code}: {exc}")

    async def _withdraw_expense(self, journal: str, line: Record) -> str | None:
        """Delete a refused journal line and its record in one transaction: the line key, if it had one."""
        company = await self.client.company()
        record = None
        async for candidate in self.client.iter_all(await self.index.url(), filter=_UNSETTLED):
            try:
                if meta_of(candidate).document_number == line.get("documentNumber"):
                    record = candidate
                    break
            except MappingError:
                continue  # not a record psconnect can read: not this line's
        requests: list[Record] = [{"id": "l", "method": "DELETE",
                                   "url": f"companies({company})/{_JOURNAL_SET}({journal})/journalLines({line['id']})",
                                   "headers": {"If-Match": str(line["@odata.etag"])}}]
        if record is not None:
            records = f"{self.client.root}{EXTENSION_PATH}/companies({company})/{RECORDS}"
            requests.append({"id": "x", "method": "DELETE", "url": f"{records}({record['id']})",
                             "headers": {"If-Match": str(record["@odata.etag"])}})
        answers = await self.client.batch(requests)
        errors = [a for a in answers if int(a.get("status", 500)) >= 400 and int(a.get("status", 500)) != 424]
        if errors:
            error = (errors[0].get("body") or {}).get("error", {})
            raise VendorRejected("businesscentral", f"{error.get('code')}: {error.get('message')}",
                                 status=int(errors[0]["status"]), code=error.get("code"))
        return str(record["recordKey"]) if record is not None else None

    async def _settle_expenses(self) -> dict[str, str]:
        """Write the expense G/L entry's id on every record whose line is posted: {line key: entry id}."""
        unsettled: list[tuple[Record, ExpenseMeta]] = []
        async for record in self.client.iter_all(await self.index.url(), filter=_UNSETTLED):
            try:
                unsettled.append((record, meta_of(record)))
            except MappingError as exc:
                raise _unreadable(str(exc)) from exc
        entries = await self._expense_entries([meta for _, meta in unsettled])
        found = [(record, entries[(meta.account, meta.document_number)]) for record, meta in unsettled
                 if (meta.account, meta.document_number) in entries]
        company = await self.client.company()
        records = f"{self.client.root}{EXTENSION_PATH}/companies({company})/{RECORDS}"
        settled: dict[str, str] = {}
        for start in range(0, len(found), 100):
            chunk = found[start:start + 100]
            answers = await self.client.batch([
                {"id": f"p{i}", "method": "PATCH", "url": f"{records}({record['id']})",
                 "headers": {**_JSON, "If-Match": str(record["@odata.etag"])}, "body": {"targetId": entry}}
                for i, (record, entry) in enumerate(chunk)], transactional=False)
            # a PATCH refused (412: written meanwhile) leaves its line to the next call, which reads the record
            settled.update({str(record["recordKey"]): entry for (record, entry), answer in zip(chunk, answers,
                                                                                             strict=True)
                            if int(answer.get("status", 500)) < 400})
        return settled

    async def _expense_entries(self, lines: list[ExpenseMeta]) -> dict[tuple[str, str], str]:
        """{(account, document number): G/L entry id} of psconnect's expense entries covering ``lines``.

        One query per account over the lines' dates and psconnect's document numbers (``PSX…``), not one per
        line: a batch of hundreds of lines settles in a page or two.
        """
        if not lines:
            return {}
        url = await self.client.url("generalLedgerEntries")
        found: dict[tuple[str, str], str] = {}
        for account in sorted({m.account for m in lines}):
            days = [m.date for m in lines if m.account == account]
            query = (f"accountNumber eq {odata_string(account)} and postingDate ge {min(days).isoformat()} and "
                     f"postingDate le {max(days).isoformat()} and documentNumber ge '{DOCUMENT_PREFIX}' and "
                     f"documentNumber lt '{DOCUMENT_PREFIX_END}'")
            async for entry in self.client.iter_all(url, filter=query):
                found.setdefault((account, str(entry.get("documentNumber"))), str(entry["id"]))
        return found

    async def _expense_journal(self) -> str:
        """The id of psconnect's expense journal batch, created (balanced to the payable account) on first use."""
        if self._expense_journal_id is None:
            url = await self.client.url(_JOURNAL_SET)
            code = f"code eq {odata_string(self.expense_journal)}"
            journal = await self.client.find(url, code)
            if journal is None:
                try:
                    journal = await self.client.create(url, {
                        "code": self.expense_journal, "displayName": "psconnect project expenses",
                        "balancingAccountNumber": self.expense_balancing_account})
                except VendorRejected as exc:
                    journal = await self.client.find(url, code) if exc.code == EXISTS else None
                    if journal is None:
                        raise
            self._expense_journal_id = str(journal["id"])
        return self._expense_journal_id

    # ------------------------------------------------------------------ reading back

    async def get_expense_posting(self, batch_key: str) -> ExpensePostingResult:
        """The stored result of a finished batch; a batch not (yet) finished is not found (posting it again
        finishes it)."""
        done = await self.index.find(EXPENSE_BATCH, batch_key)
        if done is None:
            raise not_found("expense posting", batch_key)
        return expense_result(batch_key, data_of(done))

    async def list_posted_expenses(self, project_external_id: str | None, date_from: dt.date | None,
                                   date_to: dt.date | None, limit: int, cursor: str | None) -> Page[PostedExpense]:
        terms = [_POSTED]
        if project_external_id is not None:
            terms.append(f"groupKey eq {odata_string(project_external_id)}")
        if date_from is not None:
            terms.append(f"recordDate ge {date_from.isoformat()}")
        if date_to is not None:
            terms.append(f"recordDate le {date_to.isoformat()}")
        records, following = await self._page(await self.index.url(), " and ".join(terms), limit, cursor,
                                              "postedExpenses")
        try:
            return Page(items=[posted_expense(r) for r in records], next_cursor=following)
        except (MappingError, KeyError) as exc:
            raise _unreadable(str(exc)) from exc
