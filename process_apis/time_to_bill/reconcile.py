"""Reconciliation per project and period: the time system vs the ERP's posted time vs what was invoiced.

Approved billable hours and their amounts (priced by the same rules the run uses) in the
time system, the billable hours and amounts the ERP holds as posted time, and invoiced
minus credited. Entries held in the exception queue are counted, not hidden: they are the
expected difference until someone fixes and replays them.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from contracts.common import Struct
from process_apis.time_to_bill.rules import PricedLine, Reference, period_of, validate
from process_apis.time_to_bill.runtime import runtime

__all__ = ["Reconciliation", "reconcile_project"]


class Reconciliation(Struct):
    project: str
    period: str
    currency: str
    approved_hours: str
    approved_amount: str
    held_in_exceptions: int
    posted_hours: str
    posted_amount: str
    invoiced_amount: str
    credited_amount: str
    milestone_amount: str
    discrepancies: list[str]

    @property
    def clean(self) -> bool:
        return not self.discrepancies


def _bounds(period: str) -> tuple[dt.date, dt.date]:
    year, month = (int(x) for x in period.split("-"))
    end = dt.date(year, 12, 31) if month == 12 else dt.date(year, month + 1, 1) - dt.timedelta(days=1)
    return dt.date(year, month, 1), end


async def reconcile_project(project_code: str, period: str, ref: Reference, as_of: dt.date) -> Reconciliation:
    rt = runtime()
    start, end = _bounds(period)
    project = ref.projects[project_code]
    hours, amount, held = Decimal(0), Decimal(0), 0
    cursor: str | None = None
    params: dict[str, str | int] = {"status": "approved", "from": start.isoformat(), "to": end.isoformat(),
                                    "project_code": project_code, "limit": rt.page_size}
    while True:
        page = await rt.time.entries(params, cursor)
        for entry in page.items:
            priced = validate(entry, ref, as_of)
            if not isinstance(priced, PricedLine):
                held += 1
            elif priced.billable:
                hours += priced.hours
                amount += priced.amount
        cursor = page.next_cursor
        if not cursor:
            break
    entity = project.legal_entity_code  # the project's ERP account only: another account's outage is not ours
    posted = [p for p in await rt.erp.posted_time(project_code, start.isoformat(), end.isoformat(), entity)
              if p.billable]
    posted_hours = sum((Decimal(str(p.hours)) for p in posted), Decimal(0))
    posted_amount = sum((p.amount.amount for p in posted), Decimal(0))
    invoices = await rt.erp.invoices(project_code, period, entity)
    credits = await rt.erp.credit_memos(project_code, period, entity)
    invoiced = sum((ln.amount.amount for inv in invoices for ln in inv.lines if ln.kind == "time"), Decimal(0))
    milestones = sum((ln.amount.amount for inv in invoices for ln in inv.lines if ln.kind == "milestone"), Decimal(0))
    credited = sum((ln.amount.amount for memo in credits for ln in memo.lines), Decimal(0))
    due = sum((m.amount.amount for m in project.milestones if period_of(m.due_date) == period), Decimal(0)) \
        if project.billing_type in ("fixed_fee", "mixed") else Decimal(0)
    expected_time = amount if project.billing_type != "fixed_fee" else Decimal(0)
    out: list[str] = []
    if hours != posted_hours:
        out.append(f"approved billable hours {hours} != posted {posted_hours}")
    if amount != posted_amount:
        out.append(f"approved amount {amount} != posted {posted_amount}")
    if invoiced + credited != expected_time:
        out.append(f"invoiced time {invoiced} + credits {credited} != billable {expected_time}")
    if milestones != due:
        out.append(f"invoiced milestones {milestones} != due {due}")
    return Reconciliation(project=project_code, period=period, currency=project.currency, approved_hours=str(hours),
                          approved_amount=str(amount), held_in_exceptions=held, posted_hours=str(posted_hours),
                          posted_amount=str(posted_amount), invoiced_amount=str(invoiced + milestones),
                          credited_amount=str(credited), milestone_amount=str(milestones), discrepancies=out)
