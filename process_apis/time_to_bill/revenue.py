"""Revenue recognition per project and period, from the ledger: what the firm has earned, beside what it billed.

The contract decides the method (`ProjectRef.billing_type` and its billing schedule):

- **time and materials** — recognised as time posts: a period's revenue is the billable value of the time
  lines (and reversals) its ERP holds, by work date;
- **fixed fee with milestones** — recognised on milestone acceptance: a milestone counts once it fell due and
  was invoiced (the customer accepted the deliverable it bills), in the period of its due date;
- **fixed fee without milestones** — percent complete on planned hours: the contract value x (hours posted to
  the end of the period / the PSA's planned hours), never above 100 %;
- **mixed** — its time as time and materials plus its milestones.

A fixed fee never recognises more than its contract value (the PSA budget, else the milestones' sum): what
would exceed it is left unrecognised. Pass-through expenses are neither: they are billed at cost (plus the
contract's markup) as they post, outside this schedule and its work in progress. Work in progress is
recognised minus billed, cumulative (negative: billed ahead of the work). Amounts are `Decimal`, rounded
half-up to the cent only where a percentage makes fractions. The schedule is kept per (project, period) in
`ttb_revenue`, recomputed with the billing facts at the end of every billing run; a period whose recognised
amount changes publishes `psconnect.revenue.recognized` in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

import msgspec
import sqlalchemy as sa

from contracts.common import Money
from contracts.events import REVENUE_RECOGNIZED
from contracts.revenue import RecognitionMethod, RevenuePeriod
from foundation.clock import utcnow
from foundation.db import metadata
from foundation.units import from_units, to_units
from process_apis._internal.events import event, publish_in
from process_apis.time_to_bill.ledger import EXPENSE_KINDS, ledger
from process_apis.time_to_bill.rules import CENT, ProjectRef, Reference, period_of

__all__ = ["LedgerFigures", "RevenueSchedule", "method_of", "schedule", "ttb_revenue"]

PROCESS: Final = "time_to_bill"

ttb_revenue = sa.Table(
    "ttb_revenue", metadata,
    sa.Column("project", sa.String(80), primary_key=True),
    sa.Column("period", sa.String(7), primary_key=True),
    sa.Column("legal_entity_code", sa.String(10), nullable=False, index=True),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("method", sa.String(20), nullable=False),
    sa.Column("recognised", sa.BigInteger, nullable=False),
    sa.Column("cumulative", sa.BigInteger, nullable=False),
    sa.Column("billed_cumulative", sa.BigInteger, nullable=False),
    sa.Column("contract_value", sa.BigInteger),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


class LedgerFigures(msgspec.Struct, kw_only=True):
    """One project's ledger in one period: what the ERP holds and what was invoiced."""

    posted_value: Decimal = Decimal(0)
    """Billable value of time and reversals posted to the ERP, by work date."""
    posted_hours: Decimal = Decimal(0)
    """Every hour posted (billable or not): the progress of a fixed fee."""
    milestones: Decimal = Decimal(0)
    """Milestones due in the period and invoiced (accepted)."""
    billed: Decimal = Decimal(0)
    """Invoiced in the period: time, milestones and credits."""


def method_of(project: ProjectRef) -> RecognitionMethod:
    if project.billing_type == "time_and_materials":
        return "time_and_materials"
    if project.billing_type == "mixed":
        return "mixed"
    return "milestones" if project.milestones else "percent_complete"


def contract_value(project: ProjectRef) -> Decimal | None:
    if project.billing_type == "time_and_materials":
        return project.budget
    milestones = sum((m.amount.amount for m in project.milestones), Decimal(0))
    return project.budget if project.budget is not None else (milestones or None)


def schedule(project: ProjectRef, figures: Mapping[str, LedgerFigures], planned_hours: Decimal) -> list[RevenuePeriod]:
    """The project's revenue per period, in period order (the pure core, property-tested)."""
    method = method_of(project)
    value = contract_value(project)
    cumulative = billed = hours = Decimal(0)
    out: list[RevenuePeriod] = []
    for period in sorted(figures):
        f = figures[period]
        hours += f.posted_hours
        billed += f.billed
        if method == "percent_complete":
            done = min(Decimal(1), hours / planned_hours) if planned_hours > 0 else Decimal(0)
            earned_to_date = ((value or Decimal(0)) * done).quantize(CENT, ROUND_HALF_UP)
        else:
            time_part = f.posted_value if method in ("time_and_materials", "mixed") else Decimal(0)
            milestone_part = f.milestones if method in ("milestones", "mixed") else Decimal(0)
            earned_to_date = cumulative + time_part + milestone_part
            if method == "milestones" and value is not None:
                earned_to_date = min(earned_to_date, value)
        recognised = earned_to_date - cumulative
        cumulative = earned_to_date
        out.append(RevenuePeriod(
            project=project.external_id, legal_entity_code=project.legal_entity_code, period=period,
            currency=project.currency, method=method, recognised=_money(recognised, project.currency),
            cumulative=_money(cumulative, project.currency), billed_cumulative=_money(billed, project.currency),
            work_in_progress=_money(cumulative - billed, project.currency),
            contract_value=None if value is None else _money(value, project.currency)))
    return out


def _money(amount: Decimal, currency: str) -> Money:
    return Money(amount=amount.quantize(CENT, ROUND_HALF_UP), currency=currency)


LedgerLine = tuple[str, str, str, dt.date, str, str, bool, str | None, str | None]
"""(project, kind, period, date, hours, amount, billable, ERP time id, invoice id) of a ledger row."""


def _figures(rows: Iterable[LedgerLine]) -> dict[str, dict[str, LedgerFigures]]:
    by: dict[str, dict[str, LedgerFigures]] = defaultdict(lambda: defaultdict(LedgerFigures))
    for project, kind, period, day, hours_s, amount_s, billable, erp_id, invoice_id in rows:
        if kind in EXPENSE_KINDS:
            continue
        amount, hours = Decimal(amount_s), Decimal(hours_s)
        if kind == "milestone":
            if invoice_id is not None:
                by[project][period_of(day)].milestones += amount
                by[project][period].billed += amount
            continue
        if erp_id is not None:  # posted to the ERP (a superseded line stays posted; its reversal offsets it)
            by[project][period_of(day)].posted_hours += hours
            if billable:
                by[project][period_of(day)].posted_value += amount
        if invoice_id is not None and billable:
            by[project][period].billed += amount
    return by


class RevenueSchedule:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def refresh(self, ref: Reference, entities: Sequence[str], run_id: str) -> int:
        """Recompute the schedule of every project of `entities`; publish the periods whose revenue changed."""
        projects = {p.external_id: p for p in ref.projects.values() if p.legal_entity_code in entities}
        planned: dict[str, Decimal] = defaultdict(Decimal)
        for plan in ref.plans:
            planned[plan.project] += plan.planned_hours
        c = ledger.c
        query = sa.select(c.project, c.kind, c.period, c.date, c.hours, c.amount, c.billable, c.erp_time_id,
                          c.invoice_id).where(c.legal_entity_code.in_(list(entities)))
        now = utcnow()
        with self.engine.begin() as conn:
            figures = _figures(tuple(r) for r in conn.execute(query))
            lines = [line for key, project in sorted(projects.items()) if key in figures
                     for line in schedule(project, figures[key], planned[key])]
            known = {(r.project, r.period): int(r.recognised) for r in conn.execute(
                sa.select(ttb_revenue.c.project, ttb_revenue.c.period, ttb_revenue.c.recognised)
                .where(ttb_revenue.c.legal_entity_code.in_(list(entities))))}
            conn.execute(ttb_revenue.delete().where(ttb_revenue.c.legal_entity_code.in_(list(entities))))
            if lines:
                conn.execute(ttb_revenue.insert(), [_row(line, now) for line in lines])
            for line in lines:
                units = to_units(line.recognised.amount)
                if known.get((line.project, line.period), 0) != units and (units or (line.project, line.period)
                                                                          in known):
                    data = {**msgspec.to_builtins(line), "legal_entity": line.legal_entity_code}
                    publish_in(conn, event(f"rev:{line.project}:{line.period}:{units}", REVENUE_RECOGNIZED, PROCESS,
                                           run_id, data))
        return len(lines)

    def read(self, entities: frozenset[str] | None, project: str | None, period: str | None, limit: int,
             offset: int) -> list[RevenuePeriod]:
        r = ttb_revenue
        query = sa.select(r)
        if entities is not None:
            query = query.where(r.c.legal_entity_code.in_(sorted(entities)))
        if project is not None:
            query = query.where(r.c.project == project)
        if period is not None:
            query = query.where(r.c.period == period)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(r.c.project, r.c.period).limit(limit).offset(offset)).mappings().all()
        return [_line(row) for row in rows]


def _row(line: RevenuePeriod, now: dt.datetime) -> dict[str, object]:
    return {"project": line.project, "period": line.period, "legal_entity_code": line.legal_entity_code,
            "currency": line.currency, "method": line.method, "recognised": to_units(line.recognised.amount),
            "cumulative": to_units(line.cumulative.amount),
            "billed_cumulative": to_units(line.billed_cumulative.amount),
            "contract_value": None if line.contract_value is None else to_units(line.contract_value.amount),
            "updated_at": now}


def _line(r: sa.RowMapping) -> RevenuePeriod:
    cur = r["currency"]

    def money(units: int) -> Money:
        return _money(from_units(units), cur)
    method: RecognitionMethod = r["method"]
    return RevenuePeriod(project=r["project"], legal_entity_code=r["legal_entity_code"], period=r["period"],
                         currency=cur, method=method, recognised=money(r["recognised"]),
                         cumulative=money(r["cumulative"]), billed_cumulative=money(r["billed_cumulative"]),
                         work_in_progress=money(int(r["cumulative"]) - int(r["billed_cumulative"])),
                         contract_value=None if r["contract_value"] is None else money(r["contract_value"]))
