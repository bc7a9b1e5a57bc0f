"""NetSuite expense reports and psconnect's expense batch record <-> canonical expense postings. Pure.

Wire choices:

- One ``expenseReport`` per posting line, upserted by external id (``PUT /expenseReport/eid:{key}``,
  ``replace=expense``): the external id is unique per record type, so a line posts once however often it
  is sent, and ``replace`` keeps a retried PUT from appending its line a second time.
  Body: ``entity`` = the employee, ``subsidiary``, ``tranDate`` = the expense date, ``postingPeriod`` (the
  period of that date; NetSuite only takes it on an accounting-approved report), ``expenseReportCurrency``
  = the project's currency, ``complete`` / ``supervisorApproval`` / ``accountingApproval`` set (the
  expense was approved upstream; only an accounting-approved report posts its cost to the GL),
  ``memo``, and ``custbody_psc_line_key`` / ``custbody_psc_batch_key`` (the line key verbatim, and the
  batch that first posted it).
  One ``expense`` sublist line: ``expenseDate``, ``category`` (an ``expenseCategory`` by internal id),
  ``amount`` (in the report's currency; negative reverses an earlier line), ``currency`` +
  ``foreignAmount`` + ``exchangeRate`` (what was spent, in its own currency: ``original_amount``, else the
  amount itself), ``customer`` = the job, ``isBillable``, ``memo``, ``receipt`` (checked when a receipt
  exists) and ``custcol_psc_receipt_url`` (the receipt's address: NetSuite's own ``expMediaItem`` takes
  a File Cabinet file, not a URL).
- ``customrecord_psc_expense_batch`` (psconnect SuiteCloud bundle): one per batch key, external id = the
  key, ``custrecord_psc_eb_results`` = JSON ``{posted, failed, refusals}`` as first answered.
- External ids are the keys themselves when they fit NetSuite's safe alphabet (``[A-Za-z0-9_.:-]``, at
  most 80), else ``psc-`` + a digest of the key (the key itself travels in a custom field).

Docs: https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/section_3746635562.html (expense
sublist fields), https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/section_156335203191.html
(upsert by external id).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from decimal import Decimal
from typing import Any, Final

import msgspec

from contracts.billing import ExpensePostingLine, ExpensePostingResult, PostedExpense
from contracts.common import Money
from contracts.erp import ErpRefusalReason
from system_apis.netsuite.mapping import MappingError, _currency_ref, _decimal

__all__ = [
    "EXPENSE_BATCH_RECORD",
    "EXPENSE_REPORT",
    "RATE_PLACES",
    "LineRefs",
    "expense_batch_to_record",
    "expense_external_id",
    "expense_report_to_record",
    "expense_result_from_record",
    "posted_expense_from_row",
    "vendor_refusal",
]

Record = dict[str, Any]

EXPENSE_REPORT: Final = "expenseReport"
EXPENSE_BATCH_RECORD: Final = "customrecord_psc_expense_batch"
RATE_PLACES: Final = Decimal("1E-10")
"""An exchange rate precise enough that ``foreignAmount x exchangeRate`` rounds back to the exact amount."""
_SAFE: Final = re.compile(r"^[A-Za-z0-9_.:-]{1,80}$")


def expense_external_id(key: str) -> str:
    """The external id a line or batch key is stored under (quote-free, so SuiteQL can embed it)."""
    if _SAFE.match(key):
        return key
    return "psc-" + hashlib.sha256(key.encode()).hexdigest()[:40]


class LineRefs(msgspec.Struct, frozen=True, kw_only=True):
    """The NetSuite internal ids a line names, resolved by the adapter."""

    employee_id: str
    job_id: str
    category_id: str
    period_id: str


def _rate(line: ExpensePostingLine) -> tuple[Money, Decimal]:
    spent = line.original_amount
    if spent is None or spent.currency == line.amount.currency or spent.amount == 0:
        return line.amount, Decimal(1)
    return spent, (line.amount.amount / spent.amount).quantize(RATE_PLACES)


def expense_report_to_record(line: ExpensePostingLine, refs: LineRefs, *, legal_entity_id: str,
                             batch_key: str) -> Record:
    """The body of ``PUT /expenseReport/eid:{external id}`` (sent with ``replace=expense``)."""
    spent, rate = _rate(line)
    memo = line.memo or ""
    item: Record = {
        "expenseDate": line.date.isoformat(), "category": {"id": refs.category_id}, "amount": line.amount.amount,
        "currency": _currency_ref(spent.currency), "foreignAmount": spent.amount, "exchangeRate": rate,
        "customer": {"id": refs.job_id}, "isBillable": line.billable, "memo": memo,
        "receipt": line.receipt_url is not None,
    }
    if line.receipt_url is not None:
        item["custcol_psc_receipt_url"] = line.receipt_url
    return {
        "externalId": expense_external_id(line.line_key), "entity": {"id": refs.employee_id},
        "subsidiary": {"id": legal_entity_id}, "tranDate": line.date.isoformat(),
        "postingPeriod": {"id": refs.period_id}, "expenseReportCurrency": _currency_ref(line.amount.currency),
        "useMultiCurrency": spent.currency != line.amount.currency, "memo": memo, "complete": True,
        "supervisorApproval": True, "accountingApproval": True, "custbody_psc_line_key": line.line_key,
        "custbody_psc_batch_key": batch_key, "expense": {"items": [item]},
    }


class _Results(msgspec.Struct):
    posted: dict[str, str] = {}
    failed: dict[str, str] = {}
    refusals: dict[str, ErpRefusalReason] = {}


def expense_batch_to_record(result: ExpensePostingResult, legal_entity_id: str) -> Record:
    """The body of ``PUT /customrecord_psc_expense_batch/eid:{batch key}``: the result as first answered."""
    results = _Results(posted=result.posted, failed=result.failed, refusals=result.refusals)
    return {"name": result.batch_key[:300], "custrecord_psc_eb_subsidiary": {"id": legal_entity_id},
            "custrecord_psc_eb_results": msgspec.json.encode(results).decode()}


def expense_result_from_record(record: Record, batch_key: str) -> ExpensePostingResult:
    try:
        results = msgspec.json.decode(record.get("custrecord_psc_eb_results") or "", type=_Results)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MappingError(f"expense batch {record.get('id')} has unreadable results: {exc}") from exc
    return ExpensePostingResult(batch_key=batch_key, posted=results.posted, failed=results.failed,
                                refusals=results.refusals)


def vendor_refusal(code: str | None, path: str | None) -> ErpRefusalReason:
    """Why NetSuite refused one expense report, from its ``o:errorCode`` and ``o:errorPath``.

    A reference NetSuite will not take on ``entity`` is the employee (unknown or inactive), on a line's
    ``customer`` the job (unknown or closed).
    """
    if code == "PERIOD_CLOSED":
        return "period_closed"
    if code == "INVALID_KEY_OR_REF" and path == "entity":
        return "worker_inactive"
    if code == "INVALID_KEY_OR_REF" and (path or "").endswith(".customer"):
        return "project_inactive"
    if code in ("INVALID_KEY_OR_REF", "INVALID_FLD_VALUE", "INVALID_PARAMETER"):
        return "validation"
    return "rejected"


def posted_expense_from_row(row: Record) -> PostedExpense:
    """One row of ``netsuite._queries.posted_expenses_query`` (every value a string) as a posted expense."""
    try:
        return PostedExpense(
            id=str(row["id"]), line_key=str(row["linekey"]), project_external_id=str(row["job"]),
            employee_external_id=str(row["employee"]), date=dt.date.fromisoformat(str(row["trandate"])[:10]),
            category=str(row["category"]),
            amount=Money(amount=_decimal(row["amount"], "amount"), currency=str(row["currency"])),
            billable=str(row["isbillable"]).upper() in ("T", "TRUE"))
    except (KeyError, ValueError, msgspec.ValidationError) as exc:
        raise MappingError(f"expense report row {row.get('id')} unreadable: {exc!r}") from exc
