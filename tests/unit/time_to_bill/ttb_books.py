"""An in-test ERP book for driving the ledger through post/invoice cycles without HTTP.

It keeps what an ERP would: time records and expense costs by line key (a key posted twice is
recorded as a duplicate), invoices and credit memos upserted by external id. The ledger under test is
the real one, on SQLite.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from process_apis.time_to_bill.invoicing import credit_memos, invoice_draft
from process_apis.time_to_bill.ledger import EXPENSE_KINDS, TIME_KINDS, Ledger
from process_apis.time_to_bill.rules import ProjectRef

__all__ = ["Books"]


class Books:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.posted: dict[str, Decimal] = {}
        """Time: line key -> billed amount posted."""
        self.costs: dict[str, Decimal] = {}
        """Expenses: line key -> cost posted (negative for a reversal)."""
        self.post_calls: Counter[str] = Counter()
        self.batches: dict[str, dict[str, str]] = {}
        self.invoices: dict[str, Decimal] = {}
        self.credits: dict[str, Decimal] = {}

    def post(self, run: str, legal_entity_code: str = "US01", *, crash_after_erp: bool = False) -> int:
        """Post every validated line in batches of 3, time then expenses, like a run's posting steps.

        `crash_after_erp` stops after the ERP accepted the first batch but before the ledger
        heard back — a process killed mid-step; calling again with the same run resumes.
        """
        total = 0
        for tag, kinds in (("b", TIME_KINDS), ("e", EXPENSE_KINDS)):
            n = 0
            while True:
                n += 1
                claim = f"{run}:{tag}{n}"
                rows = self.ledger.claim(legal_entity_code, claim, limit=3, kinds=kinds)
                if not rows:
                    break
                key = claim + ":" + "|".join(r.line_key for r in rows)
                if key not in self.batches:  # the ERP posts a batch key once
                    result = {}
                    for r in rows:
                        self.post_calls[r.line_key] += 1
                        if r.kind in TIME_KINDS:
                            self.posted[r.line_key] = r.amount
                        else:
                            self.costs[r.line_key] = r.rate if r.kind == "expense" else -r.rate
                        result[r.line_key] = f"TB-{len(self.post_calls)}"
                    self.batches[key] = result
                if crash_after_erp:
                    return total
                self.ledger.mark_posted(self.batches[key], {})
                total += len(rows)
        return total

    def invoice(self, project: ProjectRef, period: str) -> None:
        draft = invoice_draft(project, period, self.ledger.invoiceable(project.external_id, period),
                              self.ledger.billed_milestones(project.external_id))
        if draft is not None:
            self.invoices[draft.external_id] = sum((ln.amount.amount for ln in draft.invoice.lines), Decimal(0))
            self.ledger.mark_invoiced(draft.time_keys, draft.external_id, draft.milestones)
        for external_id, memo, keys in credit_memos(project, period,
                                                    self.ledger.creditable(project.external_id, period)):
            self.credits[external_id] = sum((ln.amount.amount for ln in memo.lines), Decimal(0))
            self.ledger.mark_invoiced(keys, external_id)

    def net_invoiced(self, project: str) -> Decimal:
        inv = sum((v for k, v in self.invoices.items() if k.startswith(f"INV-{project}-")), Decimal(0))
        return inv + sum((v for k, v in self.credits.items() if k.startswith(f"CM-{project}-")), Decimal(0))

    @property
    def duplicates(self) -> list[str]:
        return [k for k, n in self.post_calls.items() if n > 1]
