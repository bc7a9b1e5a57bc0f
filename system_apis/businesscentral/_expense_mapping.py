"""Expense costs <-> Business Central general journal lines and psconnect's records of them. Pure: no I/O.

An expense line is one general journal line (``journals({id})/journalLines``, API v2.0) on the project expense
G/L account, balanced by the journal batch's balancing account (employee reimbursements payable), and after
posting two ``generalLedgerEntries``. Where each canonical field goes:

- ``documentNumber`` (Code[20]): ``PSX`` + a digest of the line key. Business Central upper-cases Code fields and
  line keys are case-sensitive and up to 200 characters, so the key itself cannot be the number; the digest is
  unique per line, so each expense is its own document in the ledger and its entries are found by it.
- ``externalDocumentNumber`` (35): the project's external id (the job; the API's journal line has no job field).
- ``description`` (100): category, employee and memo (or the line key when there is no memo).
- ``comment`` (250): the amount originally spent, in its currency, and the receipt URL, as far as they fit.
- ``amount``: the cost in the company's currency; a negative amount credits the expense account (the
  reversal of an earlier line is the credit form of the same journal line).

All of it, uncut, with the line key, billable flag and category, is kept in the ``psconnectRecords`` record
``expenseLine``/<line key> (``ExpenseMeta``), whose ``targetId`` is the posted expense G/L entry's id.

Docs: https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/api-reference/v2.0/resources/dynamics_journalline
https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/api-reference/v2.0/resources/dynamics_generalledgerentry
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import msgspec

from contracts.billing import ExpensePostingLine, ExpensePostingResult, PostedExpense
from contracts.common import Money
from contracts.erp import ErpRefusalReason
from system_apis.businesscentral.mapping import MappingError

__all__ = [
    "DOCUMENT_PREFIX",
    "DOCUMENT_PREFIX_END",
    "EXPENSE_BATCH",
    "EXPENSE_LINE",
    "ExpenseMeta",
    "expense_document_number",
    "expense_journal_line",
    "expense_meta",
    "expense_result",
    "meta_of",
    "posted_expense",
    "refused_line_number",
]

Record = dict[str, Any]
EXPENSE_LINE: Final = "expenseLine"
"""``psconnectRecords`` type of one expense line (key: the line key): its idempotency key in Business Central."""
EXPENSE_BATCH: Final = "expenseBatch"
"""``psconnectRecords`` type of a finished batch (key: the batch key): the result answered again for the key."""
DOCUMENT_PREFIX: Final = "PSX"
DOCUMENT_PREFIX_END: Final = "PSY"
"""Every expense document number starts with ``DOCUMENT_PREFIX`` and sorts below ``DOCUMENT_PREFIX_END``."""
_LINE_NUMBER: Final = re.compile(r"Line No\.\s*[=:]\s*'?(\d+)")


class ExpenseMeta(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An ``expenseLine`` record's data: the line as posted, for results and reconciliation."""

    batch_key: str
    document_number: str
    account: str
    project: str
    employee: str
    date: dt.date
    category: str
    amount: str
    currency: str
    billable: bool
    original_amount: str | None = None
    original_currency: str | None = None
    receipt_url: str | None = None
    memo: str | None = None


def expense_document_number(line_key: str) -> str:
    """The journal line's ``documentNumber`` (Code[20]): ``PSX`` and 17 hex digits of the key's SHA-256."""
    return DOCUMENT_PREFIX + hashlib.sha256(line_key.encode()).hexdigest()[:17].upper()


def _comment(line: ExpensePostingLine) -> str:
    parts = []
    if line.original_amount is not None:
        parts.append(f"spent {line.original_amount.amount} {line.original_amount.currency}")
    if line.receipt_url:
        parts.append(f"receipt {line.receipt_url}")
    return "; ".join(parts)[:250]


def expense_journal_line(line: ExpensePostingLine, *, account_number: str) -> Record:
    """The general journal line of one expense cost on the expense G/L account (see the module docstring)."""
    return {"accountType": "G/L Account", "accountNumber": account_number, "postingDate": line.date.isoformat(),
            "documentNumber": expense_document_number(line.line_key),
            "externalDocumentNumber": line.project_external_id[:35],
            "amount": line.amount.amount,
            "description": f"{line.category} {line.employee_external_id}: {line.memo or line.line_key}"[:100],
            "comment": _comment(line)}


def expense_meta(line: ExpensePostingLine, batch_key: str, *, account_number: str) -> ExpenseMeta:
    original = line.original_amount
    return ExpenseMeta(batch_key=batch_key, document_number=expense_document_number(line.line_key),
                       account=account_number, project=line.project_external_id,
                       employee=line.employee_external_id, date=line.date,
                       category=line.category, amount=str(line.amount.amount), currency=line.amount.currency,
                       billable=line.billable, original_amount=str(original.amount) if original else None,
                       original_currency=original.currency if original else None, receipt_url=line.receipt_url,
                       memo=line.memo)


def meta_of(record: Record) -> ExpenseMeta:
    """The data of an ``expenseLine`` record; MappingError when it is not one psconnect wrote."""
    try:
        return msgspec.json.decode(str(record.get("data") or ""), type=ExpenseMeta)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MappingError(f"expenseLine {record.get('recordKey')}: {exc}") from exc


def posted_expense(record: Record) -> PostedExpense:
    """A posted ``expenseLine`` record as the canonical posted expense; MappingError when unreadable."""
    meta = meta_of(record)
    try:
        amount = Decimal(meta.amount)
    except InvalidOperation as exc:
        raise MappingError(f"expenseLine {record.get('recordKey')}: amount {meta.amount!r}") from exc
    return PostedExpense(id=str(record["targetId"]), line_key=str(record["recordKey"]),
                         project_external_id=meta.project, employee_external_id=meta.employee, date=meta.date,
                         category=meta.category, amount=Money(amount=amount, currency=meta.currency),
                         billable=meta.billable)


def expense_result(batch_key: str, data: Record) -> ExpensePostingResult:
    """The result stored on an ``expenseBatch`` record."""
    return ExpensePostingResult(
        batch_key=batch_key, posted={str(k): str(v) for k, v in dict(data.get("posted") or {}).items()},
        failed={str(k): str(v) for k, v in dict(data.get("failed") or {}).items()},
        refusals=msgspec.convert(data.get("refusals") or {}, dict[str, ErpRefusalReason]))


def refused_line_number(message: str) -> int | None:
    """The ``Line No.`` a journal posting error names (Business Central names the line it stopped at, as
    ``Line No.=10000`` or ``Line No.='10000'`` depending on the message)."""
    match = _LINE_NUMBER.search(message)
    return int(match[1]) if match else None
