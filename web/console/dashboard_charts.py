"""Each dashboards widget drawn as inline SVG, and the formats its tables use.

Money is never drawn across currencies on one axis: a widget with amounts in two
currencies gets one chart per currency. A ratio that is null (no capacity, no revenue)
is not drawn as a made-up 0 %: its group is left out of the chart and shows "—" in the
table beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any, TypeVar

from contracts.common import Money
from contracts.dashboards import (
    AgingBucketName,
    AgingReport,
    BacklogPage,
    Count,
    MarginPage,
    ReadinessPage,
    SyncHealth,
    UtilizationGroup,
    UtilizationReport,
    WipPage,
    WorkerUtilizationPage,
)
from web.portal.charts import column_chart, horizontal_bar_chart

__all__ = [
    "AGING_BUCKETS",
    "TEMPLATE_HELPERS",
    "aging_charts",
    "backlog_charts",
    "health_charts",
    "hours",
    "margin_charts",
    "money",
    "percent",
    "readiness_charts",
    "utilization_charts",
    "wip_charts",
    "workers_chart",
]

AGING_BUCKETS: tuple[AgingBucketName, ...] = ("0-30", "31-60", "61-90", "90+")
T = TypeVar("T")


# Fixed-point (",f") everywhere: a normalised Decimal such as 1.056E+4 still reads 10,560.
def money(value: Money) -> str:
    return f"{value.amount:,f} {value.currency}"


def percent(ratio: Decimal | None) -> str:
    return "—" if ratio is None else f"{ratio * 100:.2f} %"


def hours(value: Decimal) -> str:
    return f"{value:,f} h"


def _amount(currency: str) -> Callable[[Decimal], str]:
    return lambda amount: f"{amount:,f} {currency}"


def _ratio(value: Decimal) -> str:
    return percent(value)


def _by_currency(items: Iterable[T], amount: Callable[[T], Money]) -> dict[str, list[T]]:
    """Items grouped by the currency of the amount drawn, currencies in order of first appearance."""
    groups: dict[str, list[T]] = {}
    for item in items:
        groups.setdefault(amount(item).currency, []).append(item)
    return groups


def _utilization(groups: Sequence[UtilizationGroup], *, title: str, chart_id: str, what: str) -> str:
    drawn = [g for g in groups if g.figures.actual_utilization is not None]
    return column_chart([g.key for g in drawn], {
        "planned": [g.figures.planned_utilization or Decimal(0) for g in drawn],
        "actual": [g.figures.actual_utilization or Decimal(0) for g in drawn],
    }, title=title, chart_id=chart_id, fmt=_ratio,
        description=f"Planned (planned ÷ capacity hours) and actual (billable ÷ capacity hours) utilization by {what}.")


def utilization_charts(report: UtilizationReport) -> list[str]:
    return [_utilization(report.by_practice, title=f"Utilization by practice, {report.period}",
                         chart_id="chart-utilization-practice", what="practice"),
            _utilization(report.by_legal_entity, title=f"Utilization by legal entity, {report.period}",
                         chart_id="chart-utilization-entity", what="legal entity")]


def workers_chart(page: WorkerUtilizationPage) -> str:
    drawn = [w for w in page.items if w.figures.actual_utilization is not None]
    return horizontal_bar_chart([w.worker_id for w in drawn], {
        "planned": [w.figures.planned_utilization or Decimal(0) for w in drawn],
        "actual": [w.figures.actual_utilization or Decimal(0) for w in drawn],
    }, title="Utilization by worker (this page)", chart_id="chart-workers", fmt=_ratio, row_height=14,
        description="Planned and actual utilization of each worker on this page, ordered by worker id.")


def backlog_charts(page: BacklogPage) -> list[str]:
    return [horizontal_bar_chart([p.project for p in items], {"remaining": [p.remaining.amount for p in items]},
                                 title=f"Backlog remaining by project, {currency} (this page)",
                                 chart_id=f"chart-backlog-{currency}", fmt=_amount(currency),
                                 description=f"Contracted value in {currency} not yet delivered, per project.")
            for currency, items in _by_currency(page.items, lambda p: p.remaining).items()]


def readiness_charts(page: ReadinessPage) -> list[str]:
    return [horizontal_bar_chart([p.project for p in items],
                                 {"approved unbilled": [p.approved_unbilled.amount for p in items]},
                                 title=f"Ready to invoice by project, {currency} (this page)",
                                 chart_id=f"chart-readiness-{currency}", fmt=_amount(currency),
                                 description=f"Billable value in {currency} of approved time not yet invoiced.")
            for currency, items in _by_currency(page.items, lambda p: p.approved_unbilled).items()]


def aging_charts(report: AgingReport) -> list[str]:
    charts = []
    for currency, buckets in _by_currency(report.buckets, lambda b: b.amount).items():
        amounts = {b.bucket: b.amount.amount for b in buckets}
        charts.append(column_chart(list(AGING_BUCKETS), {currency: [amounts.get(k, Decimal(0)) for k in AGING_BUCKETS]},
                                   title=f"Unbilled {currency} by age in days, as of {report.as_of}",
                                   chart_id=f"chart-aging-{currency}", fmt=_amount(currency), height=220,
                                   description=f"Approved, not yet invoiced amount in {currency} by age of the work "
                                               "date: 0-30, 31-60, 61-90 and over 90 days."))
    return charts


def margin_charts(page: MarginPage) -> list[str]:
    return [horizontal_bar_chart([p.project for p in items], {"margin": [p.margin.amount for p in items]},
                                 title=f"Margin by project, {currency} (this page)",
                                 chart_id=f"chart-margin-{currency}", fmt=_amount(currency),
                                 description=f"Revenue minus cost in {currency} per project; a loss extends left.")
            for currency, items in _by_currency(page.items, lambda p: p.margin).items()]


def wip_charts(page: WipPage) -> list[str]:
    return [horizontal_bar_chart([p.project for p in items], {"recognised": [p.recognised.amount for p in items],
                                                               "billed": [p.billed.amount for p in items]},
                                 title=f"Revenue recognised and billed by project, {currency} (this page)",
                                 chart_id=f"chart-wip-{currency}", fmt=_amount(currency),
                                 description=f"Revenue recognised to the period's end and invoiced, in {currency}; "
                                             "the difference is work in progress.")
            for currency, items in _by_currency(page.items, lambda p: p.recognised).items()]


def _counts(counts: Sequence[Count], *, title: str, chart_id: str, description: str) -> str:
    return horizontal_bar_chart([c.key for c in counts], {"count": [c.count for c in counts]}, title=title,
                                chart_id=chart_id, description=description, width=500, row_height=18)


def health_charts(health: SyncHealth) -> list[str]:
    return [_counts(health.exceptions_by_reason, title="Open exceptions by reason", chart_id="chart-health-reason",
                    description="Open exceptions of every process, by reason code."),
            _counts(health.exceptions_by_age, title="Open exceptions by age", chart_id="chart-health-age",
                    description="Open exceptions by time since raised: under 1 hour, 1-24 hours, 1-7 days, over 7."),
            _counts(health.exceptions_by_owner, title="Open exceptions by owner", chart_id="chart-health-owner",
                    description="Open exceptions by the team that owns them."),
            _counts(health.failed_runs, title="Failed runs by process", chart_id="chart-health-failed",
                    description="Runs that ended failed, per process.")]


# What the dashboards template draws and formats with; passed to it by name.
TEMPLATE_HELPERS: dict[str, Any] = {
    "utilization_charts": utilization_charts, "workers_chart": workers_chart, "backlog_charts": backlog_charts,
    "readiness_charts": readiness_charts, "aging_charts": aging_charts, "margin_charts": margin_charts,
    "wip_charts": wip_charts,
    "health_charts": health_charts, "money": money, "percent": percent, "hours": hours,
}
