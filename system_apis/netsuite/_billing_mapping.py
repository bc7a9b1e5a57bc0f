"""NetSuite employee, time-batch, timeBill, invoice and creditMemo records <-> canonical objects. Pure.

Wire choices (see ``system_apis.netsuite.client`` for the batch carrier):

- ``employee``: ``externalId`` = the HR worker id; cost rate in ``laborCost`` (the field NetSuite
  project costing reads) with the employee's ``currency``; cost center in ``custentity_psc_cost_center``;
  ``isInactive`` + ``releaseDate`` for leavers.
- ``customrecord_psc_time_batch``: one batch of time lines as compact JSON arrays in a long-text field
  (``custrecord_psc_tb_lines``); the account's map/reduce script writes ``custrecord_psc_tb_status``
  (``PENDING``/``COMPLETE``/``FAILED``) and ``custrecord_psc_tb_results`` (JSON ``{posted, failed}``).
- SuiteQL rows of ``timebill`` come back with every value as a string, dates as ``YYYY-MM-DD``.
- ``invoice`` / ``creditMemo``: ``entity`` (customer), ``job``, ``subsidiary``, ``postingPeriod``,
  ``currency``, ``approvalStatus`` (1 Pending Approval = draft), ``item`` sublist lines with
  ``quantity``/``rate``/``amount`` as JSON numbers; ``createdFrom`` on a credit memo names the invoice.
  An invoice's standing (status, amounts, dates) is read in ``netsuite._receivables_mapping``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

import msgspec

from contracts.billing import (
    CreditMemo,
    CreditMemoUpsert,
    Invoice,
    InvoiceLine,
    InvoiceUpsert,
    PostedTime,
    PostedTimeTotal,
    TimePostingBatch,
    TimePostingLine,
    TimePostingResult,
)
from contracts.common import Money
from contracts.erp import ErpRefusalReason
from contracts.workforce import Employee, EmployeeUpsert
from system_apis.netsuite._receivables_mapping import NOTHING_APPLIED, Applied, invoice_dates, invoice_standing
from system_apis.netsuite.mapping import (
    MappingError,
    _currency,
    _currency_ref,
    _decimal,
    _decimal_text,
    _ref_id,
    parse_instant,
)

__all__ = [
    "BATCH_RECORD",
    "ITEM_IDS",
    "REFUSAL_REASONS",
    "BatchLine",
    "batch_lines",
    "batch_to_record",
    "credit_memo_from_record",
    "credit_memo_to_record",
    "employee_from_record",
    "employee_to_record",
    "invoice_from_record",
    "invoice_to_record",
    "posted_time_from_row",
    "posting_result_from_record",
    "refusal_reason",
]

Record = dict[str, Any]

BATCH_RECORD: Final = "customrecord_psc_time_batch"
ITEM_IDS: Final = {"time": "501", "milestone": "502", "expense": "503", "credit": "504"}
"""Service items of the account, one per canonical line kind."""
_KIND_BY_ITEM: Final = {v: k for k, v in ITEM_IDS.items()}
_BATCH_STATUS: Final = {"PENDING": "pending", "COMPLETE": "complete", "FAILED": "failed"}
REFUSAL_REASONS: Final[dict[str, ErpRefusalReason]] = {
    "PERIOD_CLOSED": "period_closed", "JOB_CLOSED": "project_inactive", "EMPLOYEE_INACTIVE": "worker_inactive",
    "DUP_RCRD": "duplicate", "INVALID_KEY_OR_REF": "validation", "INVALID_FLD_VALUE": "validation",
}
"""The map/reduce script's per-line refusal codes (the ``CODE: message`` of ``failed``) -> canonical reason."""

BatchLine = tuple[str, str, str, str, str, str, str, bool, str | None]
"""(line_key, job eid, employee eid, date, hours, rate, currency, billable, memo) — one line on the wire."""


# ---------------------------------------------------------------- employee


def employee_to_record(external_id: str, data: EmployeeUpsert) -> Record:
    """The body of ``PUT /employee/eid:{worker id}``."""
    first, _, last = data.name.strip().partition(" ")
    return {
        "externalId": external_id, "entityId": external_id, "firstName": first, "lastName": last or first,
        "email": data.email, "subsidiary": {"id": data.legal_entity_id},
        "currency": _currency_ref(data.cost_rate.currency), "laborCost": data.cost_rate.amount,
        "custentity_psc_cost_center": data.cost_center, "isInactive": not data.active,
    }


def employee_from_record(record: Record) -> Employee:
    if not record.get("externalId"):
        raise MappingError(f"employee {record.get('id')} has no externalId; it was not created by psconnect")
    name = " ".join(p for p in (record.get("firstName"), record.get("lastName")) if p)
    currency = _currency(record)
    return Employee(
        id=str(record["id"]), external_id=str(record["externalId"]), name=name or str(record.get("entityId")),
        email=str(record.get("email") or ""), legal_entity_id=_ref_id(record, "subsidiary"),
        cost_center=str(record.get("custentity_psc_cost_center") or ""),
        cost_rate=Money(amount=_decimal(record.get("laborCost") or 0, "laborCost"), currency=currency),
        active=not bool(record.get("isInactive", False)),
    )


# ---------------------------------------------------------------- time batches and timeBills


def _line(line: TimePostingLine) -> BatchLine:
    return (line.line_key, line.project_external_id, line.employee_external_id, line.date.isoformat(), line.hours,
            _decimal_text(line.rate.amount), line.rate.currency, line.billable, line.memo)


def batch_lines(batch: TimePostingBatch) -> bytes:
    """The lines as compact JSON arrays: 1,000 lines stay ~120 kB, well inside a long-text field."""
    return msgspec.json.encode([_line(line) for line in batch.lines])


def batch_to_record(batch: TimePostingBatch) -> Record:
    """The body of the async ``POST /customrecord_psc_time_batch``; the batch key is its external id."""
    return {"externalId": batch.batch_key, "name": batch.batch_key[:300],
            "custrecord_psc_tb_subsidiary": {"id": batch.legal_entity_id},
            "custrecord_psc_tb_lines": batch_lines(batch).decode()}


class _Results(msgspec.Struct):
    posted: dict[str, str] = {}
    failed: dict[str, str] = {}


def posting_result_from_record(record: Record) -> TimePostingResult:
    key = record.get("externalId")
    raw_status = str(record.get("custrecord_psc_tb_status") or "PENDING").upper()
    if not key or raw_status not in _BATCH_STATUS:
        raise MappingError(f"time batch {record.get('id')} lacks its key or has status {raw_status!r}")
    try:
        results = msgspec.json.decode(record.get("custrecord_psc_tb_results") or "{}", type=_Results)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MappingError(f"time batch {key} has unreadable results: {exc}") from exc
    return TimePostingResult(batch_key=str(key), status=_BATCH_STATUS[raw_status],  # type: ignore[arg-type]
                             posted=results.posted, failed=results.failed,
                             refusals={k: refusal_reason(v) for k, v in results.failed.items()})


def refusal_reason(error: str) -> ErpRefusalReason:
    """The canonical reason of one ``failed`` entry (``CODE: message``); an unknown code is ``rejected``."""
    return REFUSAL_REASONS.get(error.split(":", 1)[0].strip(), "rejected")


def posted_time_from_row(row: Record) -> PostedTime:
    """One SuiteQL ``timebill`` row (see ``netsuite._queries.posted_time_query``) as posted time."""
    try:
        hours = _decimal(row["hours"], "hours")
        rate = _decimal(row["rate"], "rate")
        currency = str(row["currency"])
        return PostedTime(
            id=str(row["id"]), line_key=str(row["externalid"]), project_external_id=str(row["job"]),
            employee_external_id=str(row["employee"]), date=dt.date.fromisoformat(str(row["trandate"])[:10]),
            hours=_decimal_text(hours),
            # Accounting rounds half up (as the process does); Decimal's default, half-even, drifts by a cent.
            amount=Money(amount=(hours * rate).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP), currency=currency),
            billable=str(row["isbillable"]).upper() in ("T", "TRUE"),
        )
    except (KeyError, ValueError) as exc:
        raise MappingError(f"timebill row {row.get('id')} unreadable: {exc!r}") from exc


def posted_total_from_row(row: Record) -> PostedTimeTotal:
    """One row of the summed ``timebill`` statement (``netsuite._queries.posted_time_totals_query``)."""
    try:
        return PostedTimeTotal(project_external_id=str(row["job"]),
                               billable_hours=_decimal_text(_decimal(row["hours"], "hours")),
                               billable_amount=Money(amount=_decimal(row["amount"], "amount"),
                                                     currency=str(row["currency"])),
                               lines=int(str(row["lines"])))
    except (KeyError, ValueError) as exc:
        raise MappingError(f"summed timebill row of job {row.get('job')} unreadable: {exc!r}") from exc


# ---------------------------------------------------------------- invoice and credit memo


def _items(lines: Sequence[InvoiceLine]) -> Record:
    return {"items": [{
        "item": {"id": ITEM_IDS[line.kind]}, "description": line.description, "quantity": Decimal(line.quantity),
        "rate": line.unit_price.amount, "amount": line.amount.amount, "custcol_psc_kind": line.kind,
        "custcol_psc_source_keys": ",".join(line.source_keys)} for line in lines]}


def _lines(record: Record, currency: str) -> list[InvoiceLine]:
    sub = record.get("item")
    items = sub.get("items") if isinstance(sub, dict) else None
    lines = []
    for i in items or []:
        kind: Any = i.get("custcol_psc_kind") or _KIND_BY_ITEM.get(str((i.get("item") or {}).get("id")))
        if kind not in ITEM_IDS:
            raise MappingError(f"{record.get('id')}: line item {i.get('item')!r} is not a psconnect service item")
        keys = str(i.get("custcol_psc_source_keys") or "")
        lines.append(InvoiceLine(
            kind=kind, description=str(i.get("description") or ""),
            quantity=_decimal_text(_decimal(i.get("quantity") or 0, "quantity")),
            unit_price=Money(amount=_decimal(i.get("rate") or 0, "rate"), currency=currency),
            amount=Money(amount=_decimal(i.get("amount") or 0, "amount"), currency=currency),
            source_keys=[k for k in keys.split(",") if k]))
    return lines


def _transaction(external_id: str, customer_id: str, legal_entity_id: str, currency: str, job_id: str,
                 period_id: str, tran_date: dt.date, lines: Sequence[InvoiceLine], memo: str | None,
                 period: str) -> Record:
    # custbody_psc_period keeps the billing period filterable across subsidiaries (each has its own
    # accountingPeriod ids), which the reconciliation lists need.
    return {"externalId": external_id, "tranId": external_id, "entity": {"id": customer_id},
            "job": {"id": job_id}, "subsidiary": {"id": legal_entity_id}, "postingPeriod": {"id": period_id},
            "currency": _currency_ref(currency), "tranDate": tran_date.isoformat(), "memo": memo or "",
            "custbody_psc_period": period, "item": _items(lines)}


def invoice_to_record(external_id: str, data: InvoiceUpsert, *, job_id: str, period_id: str,
                      tran_date: dt.date) -> Record:
    """The body of ``PUT /invoice/eid:{external_id}`` (sent with ``replace=item``).

    ``approvalStatus`` is not sent: NetSuite starts a new invoice as Pending Approval (a draft), and an
    update must not reset an invoice someone already approved.
    """
    return _transaction(external_id, data.customer_id, data.legal_entity_id, data.currency, job_id, period_id,
                        tran_date, data.lines, data.memo, data.period)


def _total(record: Record, currency: str) -> Money:
    return Money(amount=_decimal(record.get("total") or 0, "total"), currency=currency)


def _period(record: Record) -> str:
    period = record.get("custbody_psc_period")
    if not isinstance(period, str) or len(period) != 7:
        raise MappingError(f"{record.get('id')} lacks custbody_psc_period")
    return period


def invoice_from_record(record: Record, *, project_external_id: str, applied: Applied = NOTHING_APPLIED) -> Invoice:
    """An ``invoice`` read with ``expandSubResources=true``; job, period and applications are resolved by the
    caller (``applied``: see ``netsuite._receivables_mapping.invoice_standing``)."""
    if not record.get("externalId"):
        raise MappingError(f"invoice {record.get('id')} has no externalId; it was not created by psconnect")
    currency = _currency(record)
    total = _total(record, currency)
    status, paid, due = invoice_standing(record, total, applied)
    issued, due_date = invoice_dates(record)
    return Invoice(id=str(record["id"]), external_id=str(record["externalId"]), customer_id=_ref_id(record, "entity"),
                   project_external_id=project_external_id, legal_entity_id=_ref_id(record, "subsidiary"),
                   period=_period(record), currency=currency, lines=_lines(record, currency), total=total,
                   status=status, amount_paid=paid, amount_due=due, issue_date=issued, due_date=due_date,
                   updated_at=parse_instant(record.get("lastModifiedDate")))


def credit_memo_to_record(external_id: str, data: CreditMemoUpsert, *, job_id: str, period_id: str,
                          invoice_id: str, tran_date: dt.date) -> Record:
    """The body of ``PUT /creditMemo/eid:{external_id}``; ``createdFrom`` ties it to the invoice it credits."""
    record = _transaction(external_id, data.customer_id, data.legal_entity_id, data.currency, job_id, period_id,
                          tran_date, data.lines, data.reason, data.period)
    record["createdFrom"] = {"id": invoice_id}
    return record


def credit_memo_from_record(record: Record, *, project_external_id: str, invoice_external_id: str) -> CreditMemo:
    if not record.get("externalId"):
        raise MappingError(f"creditMemo {record.get('id')} has no externalId; it was not created by psconnect")
    currency = _currency(record)
    return CreditMemo(id=str(record["id"]), external_id=str(record["externalId"]),
                      invoice_external_id=invoice_external_id, project_external_id=project_external_id,
                      period=_period(record), currency=currency, lines=_lines(record, currency),
                      total=_total(record, currency))
