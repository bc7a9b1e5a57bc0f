"""What each dashboard widget should say, computed independently: straight from the ledger rows and the demo firm.

Deliberately naive (day-by-day loops, one pass over the ledger, no shared code with
`process_apis/time_to_bill/facts.py`), so a wrong projection cannot agree with itself.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa

from process_apis.time_to_bill.ledger import ledger
from system_apis.demo_firm import demo_firm

__all__ = ["FIRM", "Expected", "days", "money"]

FIRM = demo_firm()
CENT = Decimal("0.01")


def days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(n) for n in range((end - start).days + 1)]


def weekdays(start: dt.date, end: dt.date) -> list[dt.date]:
    return [d for d in days(start, end) if d.weekday() < 5]


def money(value: Decimal) -> str:
    return str(value.quantize(CENT, ROUND_HALF_UP))


def month(period: str) -> tuple[dt.date, dt.date]:
    year, mon = map(int, period.split("-"))
    nxt = dt.date(year + (mon == 12), mon % 12 + 1, 1)
    return dt.date(year, mon, 1), nxt - dt.timedelta(days=1)


class Expected:
    def __init__(self, engine: sa.Engine) -> None:
        with engine.connect() as conn:
            self.rows = [dict(r._mapping) for r in conn.execute(sa.select(ledger))]
        self.workers = {w.id: w for w in FIRM.workers}
        self.projects = {p.external_id: p for p in FIRM.projects}
        weight: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        for p in FIRM.projects:
            for a in p.assignments:
                weight[p.external_id][self.workers[a.worker_id].practice] += a.planned_hours
        self.practice = {p: min(w.items(), key=lambda kv: (-kv[1], kv[0]))[0] for p, w in weight.items()}

    def current(self, entity: str, period: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["legal_entity_code"] == entity and r["kind"] != "milestone"
                and r["state"] != "superseded" and (period is None or r["period"] == period)]

    # --- utilization ------------------------------------------------------------------------------------------

    def worker_figures(self, entity: str, period: str) -> dict[str, dict[str, Decimal]]:
        start, end = month(period)
        out: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        for w in FIRM.workers:
            if w.legal_entity_code != entity:
                continue
            employed = [d for d in weekdays(start, end) if (w.hire_date is None or d >= w.hire_date)
                        and (w.termination_date is None or d <= w.termination_date)]
            out[w.id]["capacity"] = Decimal(8 * len(employed))
        for p in FIRM.projects:
            if p.legal_entity_code != entity:
                continue
            for a in p.assignments:
                whole = weekdays(a.start_date, a.end_date)
                inside = [d for d in whole if start <= d <= end]
                if whole:
                    out[a.worker_id]["planned"] += (a.planned_hours * len(inside) / len(whole)).quantize(
                        CENT, ROUND_HALF_UP)
        for r in self.current(entity, period):
            if r["kind"] == "time" and r["worker_id"] in self.workers:
                out[r["worker_id"]]["actual"] += Decimal(r["hours"])
                if r["billable"]:
                    out[r["worker_id"]]["billable"] += Decimal(r["hours"])
        return out

    # --- per project --------------------------------------------------------------------------------------------

    def margin(self, entity: str, period: str) -> dict[str, dict[str, Decimal]]:
        out: dict[str, dict[str, Decimal]] = {}
        hours: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for r in self.current(entity, period):
            out.setdefault(r["project"], defaultdict(Decimal))
            if r["kind"] == "time" and r["state"] in ("validated", "posted", "invoiced"):
                out[r["project"]]["revenue"] += Decimal(r["amount"])
                hours[(r["project"], r["worker_id"])] += Decimal(r["hours"])
        for (project, worker_id), h in hours.items():
            w = self.workers[worker_id]
            if w.cost_rate.currency == self.projects[project].currency:
                out[project]["cost"] += (h * w.cost_rate.amount).quantize(CENT, ROUND_HALF_UP)
        return out

    def delivered(self, entity: str, period: str) -> dict[str, Decimal]:
        out: dict[str, Decimal] = defaultdict(Decimal)
        for r in self.current(entity):
            if r["period"] <= period and r["kind"] == "time" and r["state"] in ("validated", "posted", "invoiced"):
                out[r["project"]] += Decimal(r["amount"])
        return out

    def readiness(self, entity: str, period: str) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for r in self.current(entity, period):
            fig = out.setdefault(r["project"], {"hours": Decimal(0), "amount": Decimal(0), "posted": Decimal(0),
                                                "held": Decimal(0), "lines": 0, "oldest": None})
            if r["state"] == "exception" and r["kind"] == "time":
                fig["held"] += Decimal(r["hours"])
            if r["state"] in ("validated", "posted") and r["billable"]:
                fig["hours"] += Decimal(r["hours"])
                fig["amount"] += Decimal(r["amount"])
                fig["lines"] += 1
                fig["oldest"] = min(filter(None, (fig["oldest"], r["date"])))
                if r["state"] == "posted":
                    fig["posted"] += Decimal(r["amount"])
        return {p: f for p, f in out.items() if f["lines"] or f["held"]}

    def aging(self, entity: str, period: str, as_of: dt.date) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
        out: dict[tuple[str, str], list[Decimal]] = {}
        for r in self.current(entity):
            if r["period"] > period or r["state"] not in ("validated", "posted") or not r["billable"]:
                continue
            age = (as_of - r["date"]).days
            bucket = "0-30" if age <= 30 else "31-60" if age <= 60 else "61-90" if age <= 90 else "90+"
            currency = self.projects[r["project"]].currency
            for b in ("0-30", "31-60", "61-90", "90+"):
                out.setdefault((currency, b), [Decimal(0), Decimal(0)])
            out[(currency, bucket)][0] += Decimal(r["hours"])
            out[(currency, bucket)][1] += Decimal(r["amount"])
        return {k: (v[0], v[1]) for k, v in out.items()}
