"""Approved expenses posted to Xero as project costs: one bill (a reversal: a supplier credit note) per line.

What a line becomes in Xero: see `_expense_mapping`. A batch is posted in as few calls as Xero allows: the
employees, then the bills and credit notes already holding any of its line keys are read in lists, and the new
ones are created in one ``PUT /Invoices`` and one ``PUT /CreditNotes`` with ``summarizeErrors=false``, so Xero
answers each document on its own (200 with ``HasErrors`` / ``ValidationErrors`` per element;
https://developer.xero.com/documentation/api/accounting/invoices#put-invoices).

Once per line key, however the call is repeated:

- the same batch key answers its first result (`_expense_store`) and sends nothing once every line is settled;
- a line key some earlier batch posted is answered with that document: found in the store, else in Xero itself
  by its number (``InvoiceNumbers`` / ``where CreditNoteNumber==``), which also covers a write Xero took whose
  answer was lost before it was recorded (a timeout, a crash);
- the create call carries an ``Idempotency-Key`` of the batch and the lines it sends, so the client's own retry
  of a lost answer is answered by Xero with the first answer and creates nothing twice
  (https://developer.xero.com/documentation/guides/idempotent-requests/idempotency/).

Refused per line, before anything is sent (and again by Xero's own checks, per element): a date on or before
the organisation's period lock date (``period_closed``; Xero keeps one lock date for AR and AP), an unknown or
closed project (``project_inactive``), an unknown or archived employee contact (``worker_inactive``), an amount
not in the project's currency or one Xero cannot hold exactly (``validation``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any, Final

from contracts.billing import ExpensePostingBatch, ExpensePostingLine, ExpensePostingResult, PostedExpense
from contracts.common import Page
from contracts.erp import ErpRefusalReason
from contracts.problems import ProblemError
from system_apis._internal.http import VendorRejected
from system_apis.xero._expense_mapping import (
    BILL,
    CREDIT,
    EXPENSE_PREFIX,
    POSTED_STATUSES,
    Collection,
    collection_of,
    document_from_line,
    expense_number,
    line_key_of,
    line_problem,
    posted_expense_from_record,
)
from system_apis.xero._expense_store import ExpenseLine, ExpenseStore
from system_apis.xero._lookups import XeroLookups, locked, not_found, vendor_data_invalid
from system_apis.xero.client import ACCOUNTING, idempotency_key
from system_apis.xero.mapping import MappingError, employee_number

__all__ = ["XeroExpenses"]

_CHUNK: Final = 40
"""Keys per look-up call: well inside a URL's length, and 200 lines (a batch's most) in five calls."""
_LIST_ID: Final = "erp.xero.posted-expenses"
_NUMBER_FIELD: Final = {"Invoices": "InvoiceNumber", "CreditNotes": "CreditNoteNumber"}
_ID_FIELD: Final = {"Invoices": "InvoiceID", "CreditNotes": "CreditNoteID"}
_TYPE: Final = {"Invoices": BILL, "CreditNotes": CREDIT}
Refusals = dict[str, tuple[str, ErpRefusalReason]]


def _chunks(items: Sequence[str]) -> list[Sequence[str]]:
    return [items[i:i + _CHUNK] for i in range(0, len(items), _CHUNK)]


def _ors(field: str, values: Sequence[str]) -> str:
    return " OR ".join(f'{field}=="{v}"' for v in values)


def _where_date(field: str, op: str, day: dt.date) -> str:
    return f"{field}{op}DateTime({day.year},{day.month:02d},{day.day:02d})"


class XeroExpenses(XeroLookups):
    """Expense postings and posted expenses; mixed into `XeroErp`, which sets `expenses` and `code`."""

    expenses: ExpenseStore
    code: str

    # ------------------------------------------------------------------ posting

    async def post_expenses(self, batch: ExpensePostingBatch) -> ExpensePostingResult:
        if batch.legal_entity_id not in (self.client.tenant, self.code):
            raise ProblemError(422, "unknown-legal-entity", "Unknown legal entity",
                               f"This Xero organisation is legal entity {self.code} ({self.client.tenant}), "
                               f"not {batch.legal_entity_id!r}.", code="unknown_legal_entity")
        seen = self.expenses.batch(self.connection, batch.batch_key)
        if not seen or not all(line.settled for line in seen):
            self.expenses.record(self.connection, batch.batch_key, [ln.line_key for ln in batch.lines])
            settled = {ln.line_key for ln in self.expenses.batch(self.connection, batch.batch_key) if ln.settled}
            lines = {ln.line_key: ln for ln in batch.lines}  # a key twice in a batch: one line
            await self._post_expense_lines(batch.batch_key, [ln for k, ln in lines.items() if k not in settled])
        return await self.get_expense_posting(batch.batch_key)

    async def _post_expense_lines(self, batch_key: str, lines: list[ExpensePostingLine]) -> None:
        before = self.expenses.posted_before(self.connection, [ln.line_key for ln in lines])
        lines = [ln for ln in lines if ln.line_key not in before]
        before.update(await self._expenses_in_xero(lines))
        self.expenses.posted(self.connection, batch_key, before)
        lines = [ln for ln in lines if ln.line_key not in before]
        if not lines:
            return
        refused, contacts = await self._expense_refusals(lines)
        self.expenses.failed(self.connection, batch_key, refused)
        sendable = [ln for ln in lines if ln.line_key not in refused]
        for collection in ("Invoices", "CreditNotes"):
            members = [ln for ln in sendable if collection_of(ln) == collection]
            if members:
                await self._create_expenses(batch_key, collection, members, contacts)

    async def _expenses_in_xero(self, lines: Sequence[ExpensePostingLine]) -> dict[str, str]:
        """The documents Xero already holds for these line keys (posted by another batch, or whose answer was
        lost), by line key."""
        found: dict[str, str] = {}
        for collection in ("Invoices", "CreditNotes"):
            numbers = [expense_number(ln.line_key) for ln in lines if collection_of(ln) == collection]
            for chunk in _chunks(numbers):
                params: dict[str, str | int] = (
                    {"InvoiceNumbers": ",".join(chunk), "where": f'Type=="{BILL}"'} if collection == "Invoices"
                    else {"where": _ors("CreditNoteNumber", chunk)})
                body = await self.client.get(f"{ACCOUNTING}/{collection}", params)
                for record in body.get(collection) or []:
                    key = line_key_of(record.get(_NUMBER_FIELD[collection]))
                    if key is not None and record.get("Type") == _TYPE[collection] \
                            and record.get("Status") in POSTED_STATUSES:
                        found.setdefault(key, str(record[_ID_FIELD[collection]]))
        return found

    async def _employee_contacts(self, external_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        numbers = [employee_number(e) for e in dict.fromkeys(external_ids)]
        for chunk in _chunks(numbers):
            body = await self.client.get(f"{ACCOUNTING}/Contacts", {"where": _ors("ContactNumber", chunk),
                                                                    "includeArchived": "true"})
            for contact in body.get("Contacts") or []:
                number = str(contact.get("ContactNumber") or "")
                out[number.removeprefix("EMP:")] = dict(contact)
        return out

    async def _expense_refusals(self, lines: list[ExpensePostingLine]) -> tuple[Refusals, dict[str, str]]:
        """The lines Xero would refuse, with why; and the ContactID of each active employee."""
        lock = await self._lock_date()
        known = await self._projects(fresh=True)  # closed in Xero since it was last read: never posted to
        projects = {p: known.get(p) for p in dict.fromkeys(ln.project_external_id for ln in lines)}
        contacts = await self._employee_contacts([ln.employee_external_id for ln in lines])
        refused: Refusals = {}
        for line in lines:
            project = projects[line.project_external_id]
            contact = contacts.get(line.employee_external_id)
            problem = line_problem(line)
            if problem is not None:
                refused[line.line_key] = (problem, "validation")
            elif lock is not None and line.date <= lock:
                refused[line.line_key] = (f"the period is locked up to {lock}", "period_closed")
            elif project is None or project.get("status") == "CLOSED":
                state = "closed" if project is not None else "unknown"
                refused[line.line_key] = (f"the project {line.project_external_id} is {state} in Xero",
                                          "project_inactive")
            elif line.amount.currency != project.get("currencyCode"):
                refused[line.line_key] = (f"the amount is in {line.amount.currency}, the project in "
                                          f"{project.get('currencyCode')}", "validation")
            elif contact is None or contact.get("ContactStatus", "ACTIVE") != "ACTIVE":
                state = "archived" if contact is not None else "unknown"
                refused[line.line_key] = (f"the employee {line.employee_external_id} is {state} in Xero",
                                          "worker_inactive")
        return refused, {e: str(c["ContactID"]) for e, c in contacts.items()}

    async def _create_expenses(self, batch_key: str, collection: Collection, lines: list[ExpensePostingLine],
                      contacts: dict[str, str]) -> None:
        for project in dict.fromkeys(ln.project_external_id for ln in lines):
            await self._ensure_tracking_option(project)
        documents = [document_from_line(ln, contacts[ln.employee_external_id]) for ln in lines]
        numbers = "\x1f".join(expense_number(ln.line_key) for ln in lines)
        key = idempotency_key("expenses", self.client.tenant, batch_key, collection,
                              hashlib.sha256(numbers.encode()).hexdigest()[:24])
        try:
            body = await self.client.request("PUT", f"{ACCOUNTING}/{collection}", params={"summarizeErrors": "false"},
                                             json={collection: documents}, key=key)
        except VendorRejected as exc:  # the request as a whole (not an element of it) was refused
            reason: ErpRefusalReason = "period_closed" if locked(exc) else "rejected"
            self.expenses.failed(self.connection, batch_key, {ln.line_key: (str(exc), reason) for ln in lines})
            return
        answered = {line_key_of(r.get(_NUMBER_FIELD[collection])): r for r in body.get(collection) or []}
        posted: dict[str, str] = {}
        refused: dict[str, tuple[str, str]] = {}
        for line in lines:
            record = answered.get(line.line_key)
            if record is None:
                refused[line.line_key] = ("Xero answered nothing for this document", "rejected")
            elif record.get("HasErrors") or record.get("ValidationErrors"):
                message = "; ".join(str(e.get("Message")) for e in record.get("ValidationErrors") or [])
                error = f"Xero refused the document: {message or 'a validation error'}"
                refused[line.line_key] = (error, "period_closed" if "lock date" in message.lower() else "validation")
            else:
                posted[line.line_key] = str(record[_ID_FIELD[collection]])
        self.expenses.posted(self.connection, batch_key, posted)
        self.expenses.failed(self.connection, batch_key, refused)

    async def get_expense_posting(self, batch_key: str) -> ExpensePostingResult:
        lines: list[ExpenseLine] = self.expenses.batch(self.connection, batch_key)
        if not lines:
            raise not_found("expense posting with batch key", batch_key)
        failed = {ln.line_key: ln.error for ln in lines if ln.record_id is None and ln.error is not None}
        refusals: dict[str, ErpRefusalReason] = {
            ln.line_key: ln.refusal for ln in lines  # type: ignore[misc]
            if ln.record_id is None and ln.error is not None and ln.refusal is not None}
        return ExpensePostingResult(batch_key=batch_key,
                                    posted={ln.line_key: ln.record_id for ln in lines if ln.record_id is not None},
                                    failed=failed, refusals=refusals)

    # ------------------------------------------------------------------ posted expenses

    async def list_posted_expenses(self, project_external_id: str | None, date_from: dt.date | None,
                                   date_to: dt.date | None, limit: int, cursor: str | None) -> Page[PostedExpense]:
        q = hashlib.sha256(f"{project_external_id}|{date_from}|{date_to}".encode()).hexdigest()[:24]

        async def read() -> list[PostedExpense]:
            records: list[dict[str, Any]] = []
            for collection in ("Invoices", "CreditNotes"):
                clauses = [f'Type=="{_TYPE[collection]}"',
                           f'{_NUMBER_FIELD[collection]}.StartsWith("{EXPENSE_PREFIX}")']
                if date_from is not None:
                    clauses.append(_where_date("Date", ">=", date_from))
                if date_to is not None:
                    clauses.append(_where_date("Date", "<=", date_to))
                async for page in self.client.accounting_pages(collection, {"where": " AND ".join(clauses)}):
                    records += [r for r in page if r.get("Status") in POSTED_STATUSES]
            employees = await self._employees_by_contact({str((r.get("Contact") or {}).get("ContactID"))
                                                          for r in records})
            try:
                items = [posted_expense_from_record(r, employees) for r in records]
            except (MappingError, KeyError) as exc:
                raise vendor_data_invalid(MappingError(str(exc))) from exc
            items = [i for i in items if project_external_id in (None, i.project_external_id)
                     and (date_from is None or i.date >= date_from) and (date_to is None or i.date <= date_to)]
            items.sort(key=lambda p: (p.date, p.line_key))
            return items

        return await self.listings.page(_LIST_ID, q, limit, cursor, read)

    async def _employees_by_contact(self, contact_ids: set[str]) -> dict[str, str]:
        """The employee external id of each contact (``ContactNumber`` ``EMP:<id>``), read by ``IDs``."""
        out: dict[str, str] = {}
        for chunk in _chunks(sorted(contact_ids)):
            body = await self.client.get(f"{ACCOUNTING}/Contacts", {"IDs": ",".join(chunk), "includeArchived": "true"})
            for contact in body.get("Contacts") or []:
                number = str(contact.get("ContactNumber") or "")
                if number.startswith("EMP:"):
                    out[str(contact["ContactID"])] = number.removeprefix("EMP:")
        return out
