"""The simulator's expenses: expenses, expense report submissions and receipt attachments, filtered and seeded.

Wire shapes follow the Kantata OX reference: an expense (https://developer.kantata.com/tag/Expenses) has
`date`, `category`, `amount_in_cents` with `currency` and `currency_base_unit`, `is_billable`,
`is_invoiced`, `reimbursable`, `notes`, `user_id`, `workspace_id`, `receipt_id` and
`active_submission_id`; an expense report submission
(https://developer.kantata.com/tag/Expense-Report-Submissions) holds expenses of one workspace with a
`status` (pending, approved, rejected) and `resolved_at`. Filters: `approved` (present means true: on an
approved submission, or unsubmitted on a workspace whose `require_expense_approvals` is off),
`date_expensed_between`, `workspace_id` and `user_id` (comma-separated ids). Seeded workspaces require
expense approvals.

Seeded, when the simulator seeds time, from `demo_delivery.expenses` for the period plus
`defect_expenses`, one submission per person, workspace, week and state, like the time's.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Protocol

from system_apis.demo_delivery import defect_expenses, expenses
from system_apis.demo_firm import DemoFirm
from system_apis.kantata.mapping import base_unit
from system_apis.kantata.simulator._delivery import Record

__all__ = ["EXPENSE_TABLES", "expense_filter", "seed_expenses"]

EXPENSE_TABLES = ("expenses", "expense_report_submissions", "attachments")
_SUBMISSION_STATUS = {"submitted": "pending", "approved": "approved", "rejected": "rejected"}


class _Store(Protocol):
    tables: dict[str, dict[str, Record]]

    def _insert(self, table: str, record: Record) -> str: ...


def expense_filter(table: str, rows: list[Record], query: dict[str, str], submissions: dict[str, Record],
                   workspaces: dict[str, Record]) -> list[Record]:
    if table != "expenses":
        return rows
    for name in ("workspace_id", "user_id"):
        if name in query:
            wanted = set(query[name].split(","))
            rows = [r for r in rows if str(r.get(name)) in wanted]
    if "approved" in query:  # present means true, whatever the value: on an approved report, or needing none
        rows = [r for r in rows if submissions.get(str(r.get("active_submission_id")), {}).get("status") == "approved"
                or (r.get("active_submission_id") is None
                    and workspaces.get(str(r["workspace_id"]), {}).get("require_expense_approvals") is False)]
    if "date_expensed_between" in query:
        start, _, end = query["date_expensed_between"].partition(":")
        rows = [r for r in rows if (start or "0000-01-01") <= r["date"] <= (end or "9999-12-31")]
    return rows


def seed_expenses(sim: _Store, firm: DemoFirm, period: tuple[dt.date, dt.date], users: dict[str, str],
                  workspaces: dict[str, str], resolved_at: str) -> None:
    """The period's expenses and the deliberate defects in it, each submission decided at `resolved_at`."""
    weeks: defaultdict[tuple[str, str, str, str], list[str]] = defaultdict(list)
    for seed in [*expenses(firm.projects, firm.workers, *period), *defect_expenses(firm.projects, firm.workers)]:
        if seed.project_external_id not in workspaces or seed.worker_id not in users:
            continue
        wid, uid = workspaces[seed.project_external_id], users[seed.worker_id]
        receipt = sim._insert("attachments", {"filename": f"{seed.id}.pdf", "attachment_type": "receipt"}) \
            if seed.has_receipt else None
        unit = base_unit(seed.currency)
        eid = sim._insert("expenses", {
            "workspace_id": wid, "user_id": uid, "date": seed.date.isoformat(), "category": seed.category,
            "amount_in_cents": int(seed.amount * unit), "currency": seed.currency, "currency_base_unit": unit,
            "is_billable": seed.billable, "is_invoiced": False, "reimbursable": True, "notes": seed.notes,
            "receipt_id": receipt, "active_submission_id": None})
        if seed.status != "draft":
            monday = seed.date - dt.timedelta(days=seed.date.weekday())
            weeks[wid, uid, monday.isoformat(), seed.status].append(eid)
    for (wid, uid, _, status), ids in weeks.items():
        state = _SUBMISSION_STATUS[status]
        sid = sim._insert("expense_report_submissions", {
            "workspace_id": wid, "user_id": uid, "status": state, "expense_ids": ids,
            "resolved_at": resolved_at if state != "pending" else None})
        for eid in ids:
            sim.tables["expenses"][eid]["active_submission_id"] = sid
