"""The console's dashboards charts: one chart per currency (never one axis across currencies), a null
ratio left undrawn rather than shown as 0 %, aging buckets always in age order, readable exact figures."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from decimal import Decimal

from contracts.common import Money
from contracts.dashboards import (
    AgingBucket,
    AgingBucketName,
    AgingReport,
    BacklogPage,
    Count,
    ProjectBacklog,
    SyncHealth,
    UtilizationFigures,
    UtilizationGroup,
    UtilizationReport,
)
from web.console.dashboard_charts import (
    aging_charts,
    backlog_charts,
    health_charts,
    hours,
    money,
    percent,
    utilization_charts,
)

SVG = "{http://www.w3.org/2000/svg}"


def drawn(svg: str) -> list[tuple[str, str, str]]:
    return [(r.attrib["data-label"], r.attrib["data-series"], r.attrib["data-value"])
            for r in ET.fromstring(svg).iter(f"{SVG}rect")]


def figures(capacity: str, billable: str, ratio: str | None) -> UtilizationFigures:
    r = None if ratio is None else Decimal(ratio)
    return UtilizationFigures(capacity_hours=Decimal(capacity), planned_hours=Decimal("10"), actual_hours=Decimal("9"),
                              billable_hours=Decimal(billable), planned_utilization=r, actual_utilization=r)


def backlog(project: str, remaining: str, currency: str) -> ProjectBacklog:
    m = Money(amount=Decimal(remaining), currency=currency)
    return ProjectBacklog(project=project, legal_entity_code="US01", practice="strategy", contracted=m, delivered=m,
                          remaining=m)


def test_amounts_in_two_currencies_get_two_charts() -> None:
    page = BacklogPage(items=[backlog("PRJ-1", "100.00", "USD"), backlog("PRJ-2", "80.00", "GBP"),
                              backlog("PRJ-3", "-5.00", "USD")], totals=[])
    usd, gbp = backlog_charts(page)
    assert ET.fromstring(usd).attrib["id"] == "chart-backlog-USD"
    assert drawn(usd) == [("PRJ-1", "remaining", "100.00"), ("PRJ-3", "remaining", "-5.00")]
    assert drawn(gbp) == [("PRJ-2", "remaining", "80.00")]


def test_a_group_without_capacity_is_not_drawn_as_zero_percent() -> None:
    report = UtilizationReport(period="2026-10", totals=figures("160", "120", "0.7500"), by_practice=[
        UtilizationGroup(key="strategy", figures=figures("160", "120", "0.7500")),
        UtilizationGroup(key="bench", figures=figures("0", "0", None))], by_legal_entity=[])
    practice, entity = utilization_charts(report)
    assert drawn(practice) == [("strategy", "planned", "0.7500"), ("strategy", "actual", "0.7500")]
    assert drawn(entity) == [] and "No data" in entity
    assert percent(None) == "—" and percent(Decimal("0.8125")) == "81.25 %"


def test_aging_buckets_are_drawn_in_age_order_per_currency() -> None:
    def bucket(name: AgingBucketName, amount: str) -> AgingBucket:
        return AgingBucket(bucket=name, currency="EUR", hours=Decimal(1),
                           amount=Money(amount=Decimal(amount), currency="EUR"))
    report = AgingReport(as_of=dt.date(2026, 11, 20), buckets=[
        bucket("90+", "4"), bucket("0-30", "1"), bucket("61-90", "3"), bucket("31-60", "2")])
    (eur,) = aging_charts(report)
    assert [label for label, _, _ in drawn(eur)] == ["0-30", "31-60", "61-90", "90+"]
    assert [value for _, _, value in drawn(eur)] == ["1", "2", "3", "4"]


def test_sync_health_counts_one_chart_per_breakdown() -> None:
    health = SyncHealth(exceptions_by_reason=[Count(key="missing_rate", count=3)], exceptions_by_age=[],
                        exceptions_by_owner=[Count(key="finance", count=2), Count(key="delivery", count=1)],
                        failed_runs=[], dead_letters=0, last_good_run=[])
    charts = {ET.fromstring(svg).attrib["id"]: drawn(svg) for svg in health_charts(health)}
    assert charts == {"chart-health-reason": [("missing_rate", "count", "3")], "chart-health-age": [],
                      "chart-health-owner": [("finance", "count", "2"), ("delivery", "count", "1")],
                      "chart-health-failed": []}


def test_figures_read_in_fixed_point_even_when_the_api_sends_exponents() -> None:
    assert hours(Decimal("1.056E+4")) == "10,560 h"
    assert money(Money(amount=Decimal("1234567.50"), currency="EUR")) == "1,234,567.50 EUR"
    assert "1,200 USD" in backlog_charts(BacklogPage(items=[backlog("PRJ-1", "1.2E+3", "USD")], totals=[]))[0]
