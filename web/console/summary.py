"""The row an operations lead reads first on the dashboards page: a handful of figures, each with its trend.

The detail tables answer "which project, which worker"; this row answers "is anything
wrong, and is it getting worse". Utilization and billable hours carry the last few
periods (one utilization call per earlier period, through the same gateway route the
widgets use); the queue figures (open exceptions, dead letters, failed runs, work over
90 days unbilled) are as of now, so their trend is the age split beside them.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import msgspec

from contracts.dashboards import UtilizationReport
from contracts.problems import ProblemError
from web.console.dashboards import DASHBOARDS, Dashboard, Fetch

__all__ = ["TREND_PERIODS", "Figure", "Trend", "summary"]

TREND_PERIODS = 3
"""The periods a trend spans, the one shown included."""


class Trend(msgspec.Struct, frozen=True, kw_only=True):
    period: str
    value: str


class Figure(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    label: str
    value: str
    trend: tuple[Trend, ...] = ()
    direction: str = ""
    """"up", "down" or "flat" against the previous period; empty when there is no previous figure."""
    note: str = ""


def earlier_periods(period: str, count: int) -> list[str]:
    """The `count` months before `period` (YYYY-MM), oldest first."""
    year, month = (int(p) for p in period.split("-"))
    out: list[str] = []
    for _ in range(count):
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
        out.append(f"{year:04d}-{month:02d}")
    return out[::-1]


def _direction(values: list[Decimal | None]) -> str:
    known = [v for v in values if v is not None]
    if len(known) < 2:
        return ""
    return "up" if known[-1] > known[-2] else "down" if known[-1] < known[-2] else "flat"


def _pct(value: Decimal | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


async def summary(fetch: Fetch, board: Dashboard) -> list[Figure]:
    """The summary figures for the board's filters, with the earlier periods fetched side by side.

    An earlier period the API refuses (before the firm's first figures) is left out of the trend.
    """
    shown = board.utilization
    params: dict[str, str | int] = {k: v for k, v in board.filters.common().items() if k != "period"}

    async def one(period: str) -> UtilizationReport | None:
        try:
            return await fetch(f"{DASHBOARDS}/utilization", {**params, "period": period}, UtilizationReport)
        except ProblemError as problem:
            if problem.problem.status >= 500:
                raise
            return None

    earlier = await asyncio.gather(*(one(p) for p in earlier_periods(shown.period, TREND_PERIODS - 1)))
    reports = [r for r in earlier if r is not None] + [shown]
    actual = [r.totals.actual_utilization for r in reports]
    billable = [r.totals.billable_hours for r in reports]
    health = board.health
    open_count = sum(c.count for c in health.exceptions_by_reason)
    week_old = sum(c.count for c in health.exceptions_by_age if c.key in ("1-7d", ">7d"))
    failed = sum(c.count for c in health.failed_runs)
    unbilled = ", ".join(f"{t.approved_unbilled.amount:,f} {t.currency}" for t in board.readiness.totals) or "0"
    old = ", ".join(f"{b.amount.amount:,f} {b.currency}" for b in board.aging.buckets if b.bucket == "90+") or "0"
    return [
        Figure(key="actual-utilization", label="Actual utilization", value=_pct(actual[-1]),
               trend=tuple(Trend(period=r.period, value=_pct(v)) for r, v in zip(reports, actual, strict=True)),
               direction=_direction(actual)),
        Figure(key="billable-hours", label="Billable hours", value=f"{billable[-1]:,f} h",
               trend=tuple(Trend(period=r.period, value=f"{v:,f} h") for r, v in zip(reports, billable, strict=True)),
               direction=_direction(list(billable))),
        Figure(key="approved-unbilled", label="Approved, not invoiced", value=unbilled),
        Figure(key="unbilled-90", label="Unbilled over 90 days", value=old),
        Figure(key="open-exceptions", label="Open exceptions", value=str(open_count),
               note=f"{week_old} older than a day"),
        Figure(key="failed-runs", label="Failed runs", value=str(failed),
               note=f"{health.dead_letters} dead-lettered ledger lines"),
    ]
