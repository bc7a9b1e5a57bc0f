"""Billing facts: the reporting projection of the ledger that the dashboards read.

The ledger holds one row per time-entry version (440,000 at a large firm's month-end);
a dashboard must answer from a few hundred rows. So after the ledger changes, the
time-to-bill process recomputes one (legal entity, period) slice of these tables from the
ledger and the run's reference data, and replaces that slice in one transaction: readers
see the old figures or the new ones, never half of each.

Arithmetic is `Decimal`, in Python. Amounts and hours are stored as integers of 1/10,000
(`UNIT`): exact for cents and for hours to four places, and summable by SQL on SQLite and
PostgreSQL alike without a float in sight (SQLite has no exact decimal type).

What the figures mean (the dashboards contract, `contracts/dashboards.py`):
- hours and value count *current approved versions* (`kind = time`, not superseded);
  revenue, delivered value and cost only those that passed validation (validated, posted,
  invoiced); utilization hours also those held in exceptions, since the work was done;
- the legal entity of hours, revenue and readiness is the project's (as in the ledger);
  capacity (8 h per weekday employed) belongs to the worker's HR legal entity, planned
  hours (PSA assignment hours prorated over weekdays) to the project's;
- a project's practice is that of the workers carrying most of its planned hours;
- cost is hours x the worker's HR cost rate, counted only when the rate is in the project's
  currency (there is no FX source to convert by);
- unbilled (readiness, aging) is billable time, expenses (their billed amount, no hours) and
  reversals validated or posted but not invoiced; held hours are lines parked on exceptions.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any, Final

import msgspec
import sqlalchemy as sa

from foundation.db import metadata
from foundation.periods import month_bounds
from foundation.units import UNIT, from_units, to_units
from process_apis.time_to_bill.ledger import TIME_KINDS, ledger
from process_apis.time_to_bill.rules import CENT, Reference, period_of

__all__ = [
    "UNIT",
    "BillingFacts",
    "RefreshOutcome",
    "capacity_hours",
    "fact_contracts",
    "fact_entities",
    "fact_projects",
    "fact_unbilled_days",
    "fact_workers",
    "from_units",
    "planned_in_period",
    "project_practices",
    "slices_of",
    "to_units",
    "weekdays",
    "window_start",
]

HOURS_PER_DAY: Final = Decimal(8)
VALUED: Final = ("validated", "posted", "invoiced")
UNBILLED: Final = ("validated", "posted")

fact_workers = sa.Table(
    "ttb_fact_workers", metadata,
    sa.Column("legal_entity_code", sa.String(10), primary_key=True),
    sa.Column("period", sa.String(7), primary_key=True),
    sa.Column("worker_id", sa.String(120), primary_key=True),
    sa.Column("worker_entity", sa.String(10), nullable=False),
    sa.Column("practice", sa.String(60), nullable=False),
    sa.Column("capacity", sa.BigInteger, nullable=False),
    sa.Column("planned", sa.BigInteger, nullable=False),
    sa.Column("actual", sa.BigInteger, nullable=False),
    sa.Column("billable", sa.BigInteger, nullable=False),
    sa.Index("ix_ttb_fact_workers_period", "period", "worker_id"),
)

fact_projects = sa.Table(
    "ttb_fact_projects", metadata,
    sa.Column("legal_entity_code", sa.String(10), primary_key=True),
    sa.Column("period", sa.String(7), primary_key=True),
    sa.Column("project", sa.String(80), primary_key=True),
    sa.Column("practice", sa.String(60), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("revenue", sa.BigInteger, nullable=False),
    sa.Column("cost", sa.BigInteger, nullable=False),
    sa.Column("unbilled_hours", sa.BigInteger, nullable=False),
    sa.Column("unbilled", sa.BigInteger, nullable=False),
    sa.Column("posted_uninvoiced", sa.BigInteger, nullable=False),
    sa.Column("held_hours", sa.BigInteger, nullable=False),
    sa.Column("lines", sa.Integer, nullable=False),
    sa.Column("oldest_date", sa.Date),
    sa.Index("ix_ttb_fact_projects_period", "period", "project"),
)

fact_contracts = sa.Table(
    "ttb_fact_contracts", metadata,
    sa.Column("project", sa.String(80), primary_key=True),
    sa.Column("legal_entity_code", sa.String(10), nullable=False, index=True),
    sa.Column("practice", sa.String(60), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("contracted", sa.BigInteger, nullable=False),
)

fact_unbilled_days = sa.Table(
    "ttb_fact_unbilled_days", metadata,
    sa.Column("legal_entity_code", sa.String(10), primary_key=True),
    sa.Column("period", sa.String(7), primary_key=True),
    sa.Column("practice", sa.String(60), primary_key=True),
    sa.Column("currency", sa.String(3), primary_key=True),
    sa.Column("date", sa.Date, primary_key=True),
    sa.Column("hours", sa.BigInteger, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
)

fact_entities = sa.Table(
    "ttb_fact_entities", metadata,
    sa.Column("code", sa.String(10), primary_key=True),
    sa.Column("erp_id", sa.String(120), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
)


@lru_cache(maxsize=4096)
def weekdays(start: dt.date, end: dt.date) -> int:
    """Monday-to-Friday days in [start, end] (0 when empty), in constant time."""
    if end < start:
        return 0
    full, rest = divmod((end - start).days + 1, 7)
    first = start.weekday()
    return full * 5 + sum(1 for i in range(rest) if (first + i) % 7 < 5)


def capacity_hours(period: str, hire_date: dt.date | None, termination_date: dt.date | None) -> Decimal:
    """8 h per weekday of the period on which the worker was employed."""
    start, end = month_bounds(period)
    lo = max(start, hire_date) if hire_date else start
    hi = min(end, termination_date) if termination_date else end
    return HOURS_PER_DAY * weekdays(lo, hi)


def planned_in_period(period: str, start_date: dt.date, end_date: dt.date, planned: Decimal) -> Decimal:
    """An assignment's planned hours prorated over its weekdays: the share falling in the period, to 0.01 h."""
    total = weekdays(start_date, end_date)
    if total == 0:
        return Decimal(0)
    lo, hi = month_bounds(period)
    share = weekdays(max(lo, start_date), min(hi, end_date))
    return (planned * share / total).quantize(CENT, ROUND_HALF_UP)


def project_practices(ref: Reference) -> dict[str, str]:
    """Project -> the practice of the workers carrying most of its planned hours (ties: alphabetical)."""
    practice_of = {w.id: w.practice for w in ref.workers.values()}
    weight: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for plan in ref.plans:
        weight[plan.project][practice_of.get(plan.worker_id, "")] += plan.planned_hours
    out: dict[str, str] = {}
    for project, counts in weight.items():
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        out[project] = ranked[0][0] if ranked else ""
    return out


class RefreshOutcome(msgspec.Struct, kw_only=True):
    legal_entity_code: str
    period: str
    ledger_rows: int
    workers: int
    projects: int
    seconds: float


class _Project:
    __slots__ = ("cost_hours", "held", "lines", "oldest", "posted", "revenue", "unbilled", "unbilled_hours")

    def __init__(self) -> None:
        self.revenue = self.unbilled = self.posted = Decimal(0)
        self.unbilled_hours = self.held = Decimal(0)
        self.lines = 0
        self.oldest: dt.date | None = None
        self.cost_hours: dict[str, Decimal] = defaultdict(Decimal)


class BillingFacts:
    """Recomputes and replaces slices of the billing facts; the dashboards store reads them."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def periods_with_work(self, legal_entity_code: str, since: str) -> list[str]:
        """Ledger periods of an entity from `since` on: what a run may have changed (its catch-up window)."""
        with self.engine.connect() as conn:
            return sorted(conn.execute(sa.select(ledger.c.period).distinct().where(
                ledger.c.legal_entity_code == legal_entity_code, ledger.c.period >= since)).scalars())

    def refresh_many(self, ref: Reference, slices: Iterable[tuple[str, str]]) -> list[RefreshOutcome]:
        return [self.refresh(ref, entity, period) for entity, period in sorted(set(slices))]

    def refresh(self, ref: Reference, legal_entity_code: str, period: str) -> RefreshOutcome:
        """Recompute the (legal entity, period) slice from the ledger and replace it in one transaction."""
        started = dt.datetime.now(dt.UTC)
        e = legal_entity_code
        cols = (ledger.c.kind, ledger.c.state, ledger.c.project, ledger.c.worker_id, ledger.c.date, ledger.c.hours,
                ledger.c.amount, ledger.c.billable)
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(*cols).where(
                ledger.c.legal_entity_code == e, ledger.c.period == period, ledger.c.kind != "milestone",
                ledger.c.state != "superseded")).all()
        workers_by_id = {w.id: w for w in ref.workers.values()}
        practices = project_practices(ref)
        actual: dict[str, Decimal] = defaultdict(Decimal)
        billable: dict[str, Decimal] = defaultdict(Decimal)
        projects: dict[str, _Project] = defaultdict(_Project)
        days: dict[tuple[str, str, dt.date], list[Decimal]] = {}
        for kind, state, project, worker_id, day, hours_s, amount_s, is_billable in rows:
            hours = Decimal(hours_s) if kind in TIME_KINDS else Decimal(0)  # an expense is money, not hours
            fact = projects[project]
            if kind == "time":
                if worker_id in workers_by_id:
                    actual[worker_id] += hours
                    if is_billable:
                        billable[worker_id] += hours
                if state in VALUED:
                    fact.revenue += Decimal(amount_s)
                    fact.cost_hours[worker_id] += hours
                elif state == "exception":
                    fact.held += hours
            if state in UNBILLED and is_billable:
                amount = Decimal(amount_s)
                fact.unbilled_hours += hours
                fact.unbilled += amount
                fact.lines += 1
                fact.oldest = day if fact.oldest is None or day < fact.oldest else fact.oldest
                if state == "posted":
                    fact.posted += amount
                ref_project = ref.projects.get(project)
                key = (practices.get(project, ""), ref_project.currency if ref_project else "XXX", day)
                sums = days.setdefault(key, [Decimal(0), Decimal(0)])
                sums[0] += hours
                sums[1] += amount

        planned: dict[str, Decimal] = defaultdict(Decimal)
        for plan in ref.plans:
            project_ref = ref.projects.get(plan.project)
            if project_ref is not None and project_ref.legal_entity_code == e:
                planned[plan.worker_id] += planned_in_period(period, plan.start_date, plan.end_date,
                                                             plan.planned_hours)
        worker_rows: list[dict[str, Any]] = []
        for worker in workers_by_id.values():
            capacity = capacity_hours(period, worker.hire_date, worker.termination_date) \
                if worker.legal_entity_code == e else Decimal(0)
            if capacity or worker.id in actual or planned.get(worker.id):
                worker_rows.append({
                    "legal_entity_code": e, "period": period, "worker_id": worker.id,
                    "worker_entity": worker.legal_entity_code, "practice": worker.practice,
                    "capacity": to_units(capacity), "planned": to_units(planned.get(worker.id, Decimal(0))),
                    "actual": to_units(actual.get(worker.id, Decimal(0))),
                    "billable": to_units(billable.get(worker.id, Decimal(0)))})

        project_rows: list[dict[str, Any]] = []
        for code, fact in sorted(projects.items()):
            project_ref = ref.projects.get(code)
            currency = project_ref.currency if project_ref else "XXX"
            cost = Decimal(0)
            for worker_id, hours in fact.cost_hours.items():
                w = workers_by_id.get(worker_id)
                if w is not None and w.cost_rate is not None and w.cost_currency == currency:
                    cost += (hours * w.cost_rate).quantize(CENT, ROUND_HALF_UP)
            project_rows.append({
                "legal_entity_code": e, "period": period, "project": code, "practice": practices.get(code, ""),
                "currency": currency, "revenue": to_units(fact.revenue), "cost": to_units(cost),
                "unbilled_hours": to_units(fact.unbilled_hours), "unbilled": to_units(fact.unbilled),
                "posted_uninvoiced": to_units(fact.posted), "held_hours": to_units(fact.held), "lines": fact.lines,
                "oldest_date": fact.oldest})
        contract_rows = [{"project": p.external_id, "legal_entity_code": e,
                          "practice": practices.get(p.external_id, ""), "currency": p.currency,
                          "contracted": to_units(p.budget or Decimal(0))}
                         for p in ref.projects.values() if p.legal_entity_code == e]
        day_rows = [{"legal_entity_code": e, "period": period, "practice": practice, "currency": currency,
                     "date": day, "hours": to_units(s[0]), "amount": to_units(s[1])}
                    for (practice, currency, day), s in days.items()]
        entity_rows = [{"code": code, "erp_id": ref.entity_ids.get(code, f"LE-{code}"), "currency": currency}
                       for code, currency in ref.entity_currency.items()]
        with self.engine.begin() as conn:
            for table in (fact_workers, fact_projects, fact_unbilled_days):
                conn.execute(table.delete().where(table.c.legal_entity_code == e, table.c.period == period))
            conn.execute(fact_contracts.delete().where(fact_contracts.c.legal_entity_code == e))
            if entity_rows:
                conn.execute(fact_entities.delete())
                conn.execute(fact_entities.insert(), entity_rows)
            for table, batch in ((fact_workers, worker_rows), (fact_projects, project_rows),
                                 (fact_contracts, contract_rows), (fact_unbilled_days, day_rows)):
                if batch:
                    conn.execute(table.insert(), batch)
        seconds = (dt.datetime.now(dt.UTC) - started).total_seconds()
        return RefreshOutcome(legal_entity_code=e, period=period, ledger_rows=len(rows), workers=len(worker_rows),
                              projects=len(project_rows), seconds=round(seconds, 3))


def slices_of(lines: Sequence[Any]) -> set[tuple[str, str]]:
    """(legal entity, period) slices a batch of ledger outcomes touched (unknown projects' '?' excluded)."""
    return {(o.legal_entity_code, o.period) for o in lines if o.legal_entity_code != "?"}


def window_start(period: str, months_back: int) -> str:
    year, month = (int(x) for x in period.split("-"))
    back_year, back_month = divmod(year * 12 + month - 1 - months_back, 12)
    return period_of(dt.date(back_year, back_month + 1, 1))
