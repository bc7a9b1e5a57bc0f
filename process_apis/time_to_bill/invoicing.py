"""Invoice drafts and credit memos from ledger lines: pure functions, so the amounts are provable.

An invoice holds only posted, not yet invoiced lines of one project and period (partial
billing leaves the rest billable later), one time-and-materials line per worker, role and
rate (its amount is the sum of the entries' cent-quantized amounts, so the invoice, the
ERP postings and the ledger agree to the cent), plus milestone lines due in the period, plus one
pass-through line per billable expense at its cost with the contract's markup (the ledger's billed
amount, so the invoice shows each receipt's line and the markup is never recomputed).
The external id hashes the billed keys: a retried step upserts the same draft, never a second.
Fixed-fee projects bill by milestone only; their time is posted for cost, not invoiced — but their
billable expenses pass through (at cost, or with the markup the contract names).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import msgspec

from contracts.billing import CreditMemoUpsert, InvoiceLine, InvoiceUpsert
from contracts.common import Money
from contracts.erp import BillingMilestone
from process_apis.time_to_bill.expense_rules import EXPENSE, EXPENSE_REVERSAL
from process_apis.time_to_bill.ledger import LedgerRow
from process_apis.time_to_bill.rules import ProjectRef, period_of

__all__ = ["EXPENSE_CREDIT", "InvoiceDraft", "credit_memos", "invoice_draft", "milestone_key"]

EXPENSE_CREDIT = "reversal of expense "
"""How a credit line that reverses an expense begins: every ERP keeps a line's description (not every one keeps
its source keys or kind on a credit note), so reconciliation tells expense credits from time credits by it."""


class InvoiceDraft(msgspec.Struct, frozen=True, kw_only=True):
    external_id: str
    invoice: InvoiceUpsert
    time_keys: tuple[str, ...]
    milestones: tuple[dict[str, Any], ...]


def milestone_key(project: str, milestone: BillingMilestone) -> str:
    return f"MS:{project}:{milestone.due_date}:{milestone.name}"


def _digest(keys: Sequence[str]) -> str:
    return hashlib.blake2b("\n".join(sorted(keys)).encode(), digest_size=5).hexdigest()


def _money(amount: Decimal, currency: str) -> Money:
    return Money(amount=amount, currency=currency)


def invoice_draft(project: ProjectRef, period: str, rows: Sequence[LedgerRow],
                  billed_milestones: set[str]) -> InvoiceDraft | None:
    """The draft for what is billable now, or None when nothing is."""
    currency = project.currency
    groups: dict[tuple[str, str, Decimal], list[LedgerRow]] = {}
    open_rows = [r for r in rows if r.billable and r.state == "posted" and r.invoice_id is None]
    if project.billing_type != "fixed_fee":
        for row in open_rows:
            if row.kind == "time":
                groups.setdefault((row.worker_id, row.role, row.rate), []).append(row)
    lines: list[InvoiceLine] = []
    time_keys: list[str] = []
    for (worker, role, rate), members in sorted(groups.items()):
        keys = [m.line_key for m in members]
        time_keys += keys
        lines.append(InvoiceLine(
            kind="time", description=f"{role.replace('_', ' ')} — {worker}",
            quantity=str(sum(m.hours for m in members)),
            unit_price=_money(rate, currency), amount=_money(sum((m.amount for m in members), Decimal("0.00")),
                                                             currency), source_keys=keys))
    for row in (r for r in open_rows if r.kind == EXPENSE):
        time_keys.append(row.line_key)
        lines.append(InvoiceLine(kind="expense", description=f"{row.role} — {row.worker_id}, {row.date}",
                                 quantity="1", unit_price=_money(row.amount, currency),
                                 amount=_money(row.amount, currency), source_keys=[row.line_key]))
    milestones: list[dict[str, Any]] = []
    if project.billing_type in ("fixed_fee", "mixed"):
        for ms in project.milestones:
            key = milestone_key(project.external_id, ms)
            if period_of(ms.due_date) == period and key not in billed_milestones:
                lines.append(InvoiceLine(kind="milestone", description=ms.name, quantity="1",
                                         unit_price=ms.amount, amount=ms.amount, source_keys=[key]))
                milestones.append(_milestone_row(project, period, ms, key))
    if not lines:
        return None
    all_keys = time_keys + [m["line_key"] for m in milestones]
    external_id = f"INV-{project.external_id}-{period}-{_digest(all_keys)}"
    invoice = InvoiceUpsert(customer_id=project.customer_id, project_external_id=project.external_id,
                            legal_entity_id=project.legal_entity_id, period=period, currency=currency, lines=lines,
                            memo=f"{project.external_id} {period}")
    return InvoiceDraft(external_id=external_id, invoice=invoice, time_keys=tuple(time_keys),
                        milestones=tuple(milestones))


def credit_memos(project: ProjectRef, period: str,
                 reversals: Sequence[tuple[LedgerRow, str]]) -> list[tuple[str, CreditMemoUpsert, tuple[str, ...]]]:
    """One credit memo per invoice whose lines were reversed (a changed or withdrawn entry)."""
    by_invoice: dict[str, list[LedgerRow]] = {}
    for row, invoice_id in reversals:
        by_invoice.setdefault(invoice_id, []).append(row)
    out: list[tuple[str, CreditMemoUpsert, tuple[str, ...]]] = []
    for invoice_id, rows in sorted(by_invoice.items()):
        keys = tuple(r.line_key for r in rows)
        lines = [_credit_line(r) for r in rows]
        memo = CreditMemoUpsert(customer_id=project.customer_id, project_external_id=project.external_id,
                                legal_entity_id=project.legal_entity_id, period=period, currency=project.currency,
                                invoice_external_id=invoice_id, lines=lines,
                                reason="Time entries or expenses changed after invoicing")
        out.append((f"CM-{project.external_id}-{period}-{_digest(list(keys))}", memo, keys))
    return out


def _credit_line(row: LedgerRow) -> InvoiceLine:
    """An expense credits what it billed (one unit at its marked-up amount), time its hours at their rate."""
    if row.kind == EXPENSE_REVERSAL:
        return InvoiceLine(kind="credit", description=f"{EXPENSE_CREDIT}{row.reverses}", quantity="-1",
                           unit_price=_money(-row.amount, row.currency), amount=_money(row.amount, row.currency),
                           source_keys=[row.line_key])
    return InvoiceLine(kind="credit", description=f"reversal of {row.reverses}", quantity=str(row.hours),
                       unit_price=_money(row.rate, row.currency), amount=_money(row.amount, row.currency),
                       source_keys=[row.line_key])


def _milestone_row(project: ProjectRef, period: str, ms: BillingMilestone, key: str) -> dict[str, Any]:
    return {"line_key": key, "entry_id": key, "reverses": None, "project": project.external_id, "worker_id": "",
            "legal_entity_code": project.legal_entity_code, "period": period, "date": ms.due_date, "hours": "1",
            "rate": str(ms.amount.amount), "amount": str(ms.amount.amount), "currency": ms.amount.currency,
            "billable": True, "role": "milestone", "claim": None, "erp_time_id": None, "exception_id": None,
            "reason": None, "payload": None}

