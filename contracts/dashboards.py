"""Dashboard objects: the figures finance operations watch between and at month-end.

One Struct per widget of the dashboards experience API (`/experience/dashboards/v1`).
Money is `Money` (decimal string + currency) and totals are kept per currency, never
added across currencies; hours are decimal strings (`Hours`); ratios are decimal
strings with four places ("0.8125"), null when the denominator is zero, so a chart
never shows a made-up 0 % or a float artefact.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from msgspec import Meta

from contracts.common import MONTH_PATTERN, Currency, Hours, Money, Struct
from contracts.currency import ConvertedMoney, ExchangeRate

__all__ = [
    "AgingBucket",
    "AgingBucketName",
    "AgingConversion",
    "AgingGroupBucket",
    "AgingReport",
    "ArBucket",
    "ArBucketName",
    "ArRow",
    "ArTotal",
    "BacklogPage",
    "BacklogTotal",
    "Count",
    "FlowRun",
    "MarginPage",
    "MarginTotal",
    "ProjectBacklog",
    "ProjectMargin",
    "ProjectReadiness",
    "Ratio",
    "ReadinessPage",
    "ReadinessTotal",
    "ReceivablesReport",
    "SyncHealth",
    "UtilizationFigures",
    "UtilizationGroup",
    "UtilizationReport",
    "WipItem",
    "WipPage",
    "WipTotal",
    "WorkerUtilization",
    "WorkerUtilizationPage",
]

Ratio = Annotated[Decimal | None, Meta(
    description="Decimal ratio with four places; null when the denominator is zero.", examples=["0.8125"])]
DashPeriod = Annotated[str, Meta(pattern=MONTH_PATTERN, description="Period YYYY-MM.", examples=["2026-10"])]
NextCursor = Annotated[str | None, Meta(description="Opaque cursor of the next page; null on the last page.")]
AgingBucketName = Literal["0-30", "31-60", "61-90", "90+"]
ArBucketName = Literal["current", "1-30", "31-60", "61-90", "90+"]


# --- 1, 2: utilization -------------------------------------------------------------------------


class UtilizationFigures(Struct):
    """Hours of a group of workers in one period, and the two utilization ratios."""

    capacity_hours: Annotated[Hours, Meta(description="8 h per weekday of the period the worker was employed.")]
    planned_hours: Annotated[Hours, Meta(description="Assignment hours prorated over the period's weekdays.")]
    actual_hours: Annotated[Hours, Meta(description="Approved hours worked in the period.")]
    billable_hours: Annotated[Hours, Meta(description="Approved billable hours worked in the period.")]
    planned_utilization: Annotated[Ratio, Meta(description="planned_hours / capacity_hours.")]
    actual_utilization: Annotated[Ratio, Meta(description="billable_hours / capacity_hours.")]


class UtilizationGroup(Struct):
    key: Annotated[str, Meta(description="The practice or legal entity code of the group.")]
    figures: UtilizationFigures


class UtilizationReport(Struct):
    period: DashPeriod
    totals: UtilizationFigures
    by_practice: list[UtilizationGroup]
    by_legal_entity: list[UtilizationGroup]


class WorkerUtilization(Struct):
    worker_id: Annotated[str, Meta(description="HR id of the worker.")]
    legal_entity_code: str
    practice: str
    figures: UtilizationFigures


class WorkerUtilizationPage(Struct):
    items: list[WorkerUtilization]
    next_cursor: NextCursor = None


# --- 3: backlog --------------------------------------------------------------------------------


class ProjectBacklog(Struct):
    """Contracted value of a project not yet delivered by the end of the period."""

    project: Annotated[str, Meta(description="The ERP project's external id (PRJ-…).")]
    legal_entity_code: str
    practice: str
    contracted: Money
    delivered: Annotated[Money, Meta(description="Value of approved time delivered up to the period's end.")]
    remaining: Annotated[Money, Meta(description="contracted - delivered (negative when overrun).")]
    converted_contracted: Annotated[ConvertedMoney | None, Meta(
        description="Contracted in the requested `currency` at the entity's rate for the period's last day.")] = None
    converted_delivered: Annotated[ConvertedMoney | None, Meta(
        description="Delivered in the requested `currency`, at the same rate (converted on its own).")] = None


class BacklogTotal(Struct):
    currency: Currency
    contracted: Money
    delivered: Money
    remaining: Money


class BacklogPage(Struct):
    items: list[ProjectBacklog]
    totals: Annotated[list[BacklogTotal], Meta(description="One per currency, over all pages.")]
    next_cursor: NextCursor = None
    group_total: Annotated[BacklogTotal | None, Meta(description=(
        "Every project of every page in the requested `currency`: the sums of the projects' converted contracted "
        "and delivered values (each converted and rounded on its own); remaining is their difference."))] = None
    rates: Annotated[list[ExchangeRate], Meta(description="Each rate used, with its date and source.")] = []


# --- 4: invoice readiness ----------------------------------------------------------------------


class ProjectReadiness(Struct):
    """What of a project's approved time can be invoiced now, and what holds it back."""

    project: str
    legal_entity_code: str
    practice: str
    approved_unbilled_hours: Annotated[Hours, Meta(description="Approved hours not yet invoiced.")]
    approved_unbilled: Annotated[Money, Meta(description="Their billable value.")]
    posted_uninvoiced: Annotated[Money, Meta(description="Value posted to the ERP but not yet invoiced.")]
    held_hours: Annotated[Hours, Meta(description="Hours of lines held in exceptions.")]
    lines: Annotated[int, Meta(ge=0, description="Approved, not yet invoiced lines.")]
    drafted_unposted: Annotated[Money, Meta(description=(
        "Invoice drafts of the period the ERP holds but has not posted to receivables (as last read back)."))]
    oldest_date: Annotated[dt.date | None, Meta(description="Work date of the oldest such line.")] = None
    converted_approved_unbilled: Annotated[ConvertedMoney | None, Meta(
        description="Approved unbilled in the requested `currency` at the entity's rate for the period's last "
                    "day.")] = None
    converted_posted_uninvoiced: Annotated[ConvertedMoney | None, Meta(
        description="Posted uninvoiced in the requested `currency`, at the same rate (converted on its own).")] = None
    converted_drafted_unposted: Annotated[ConvertedMoney | None, Meta(
        description="Drafted unposted in the requested `currency`, at the same rate (converted on its own).")] = None


class ReadinessTotal(Struct):
    currency: Currency
    approved_unbilled_hours: Hours
    approved_unbilled: Money
    posted_uninvoiced: Money
    held_hours: Hours
    lines: int
    drafted_unposted: Money


class ReadinessPage(Struct):
    items: list[ProjectReadiness]
    totals: Annotated[list[ReadinessTotal], Meta(description="One per currency, over all pages.")]
    next_cursor: NextCursor = None
    group_total: Annotated[ReadinessTotal | None, Meta(description=(
        "What `totals` adds, in the requested `currency`: each project's approved unbilled, posted uninvoiced and "
        "drafted unposted values converted and rounded on their own, then added; hours and lines over every "
        "currency."))] = None
    rates: Annotated[list[ExchangeRate], Meta(description="Each rate used, with its date and source.")] = []


# --- 5: unbilled aging -------------------------------------------------------------------------


class AgingBucket(Struct):
    bucket: Annotated[AgingBucketName, Meta(description="Age in days of the work date at `as_of`.")]
    currency: Currency
    hours: Hours
    amount: Money


class AgingConversion(Struct):
    """One legal entity's unbilled amount in one currency and bucket, converted on its own at that entity's rate."""

    legal_entity_code: str
    converted: ConvertedMoney


class AgingGroupBucket(Struct):
    """One bucket in the requested group currency: what every entity and currency holds in it, converted and added."""

    bucket: Annotated[AgingBucketName, Meta(description="Age in days of the work date at `as_of`.")]
    currency: Annotated[Currency, Meta(description="The requested group currency.")]
    hours: Annotated[Hours, Meta(description="The bucket's hours over every currency.")]
    amount: Annotated[Money, Meta(description="The sum of `parts`' converted amounts, to the cent.")]
    parts: Annotated[list[AgingConversion], Meta(description=(
        "Per legal entity and currency present, zeros too: its amount in the bucket at its entity's rate for "
        "`as_of`, with the rate, its date and its source."))]


class AgingReport(Struct):
    as_of: dt.date
    buckets: Annotated[list[AgingBucket], Meta(description="Every bucket of every currency present, zeros too.")]
    group_buckets: Annotated[list[AgingGroupBucket], Meta(description=(
        "With a requested `currency`, every bucket in it, zeros too: a currency's buckets span legal entities "
        "that may convert at different rates, so each entity's share is converted on its own and then added."))] \
        = []
    rates: Annotated[list[ExchangeRate], Meta(description="Each rate used, with its date and source.")] = []


# --- 6: margin ---------------------------------------------------------------------------------


class ProjectMargin(Struct):
    project: str
    legal_entity_code: str
    practice: str
    revenue: Annotated[Money, Meta(description="Billable value of approved time in the period.")]
    cost: Annotated[Money, Meta(description="Hours x worker cost rate in the period.")]
    margin: Money
    margin_ratio: Annotated[Ratio, Meta(description="margin / revenue.")]
    converted_revenue: Annotated[ConvertedMoney | None, Meta(
        description="Revenue in the requested `currency` at the entity's rate for the period's last day.")] = None
    converted_cost: ConvertedMoney | None = None


class MarginTotal(Struct):
    currency: Currency
    revenue: Money
    cost: Money
    margin: Money
    margin_ratio: Ratio


class MarginPage(Struct):
    items: list[ProjectMargin]
    totals: Annotated[list[MarginTotal], Meta(description="One per currency, over all pages.")]
    next_cursor: NextCursor = None
    group_total: Annotated[MarginTotal | None, Meta(description=(
        "Every project of every page in the requested `currency`: the sums of the projects' converted revenue "
        "and cost (each converted and rounded on its own)."))] = None
    rates: Annotated[list[ExchangeRate], Meta(description="Each rate used, with its date and source.")] = []


# --- 7: sync health ----------------------------------------------------------------------------


class Count(Struct):
    key: str
    count: Annotated[int, Meta(ge=0)]


class FlowRun(Struct):
    process: str
    run_id: str
    finished_at: dt.datetime


class SyncHealth(Struct):
    exceptions_by_reason: Annotated[list[Count], Meta(description="Open exceptions by reason code.")]
    exceptions_by_age: Annotated[list[Count], Meta(description='Open exceptions by age: "<1h","1-24h","1-7d",">7d".')]
    exceptions_by_owner: Annotated[list[Count], Meta(description="Open exceptions by owning team.")]
    failed_runs: Annotated[list[Count], Meta(description="Failed runs per process.")]
    dead_letters: Annotated[int, Meta(ge=0, description="Ledger lines the ERP rejected permanently.")]
    last_good_run: Annotated[list[FlowRun], Meta(description="Latest succeeded run per process.")]


# --- 8: receivables (AR aging and days sales outstanding) ---------------------------------------


class ArBucket(Struct):
    bucket: Annotated[ArBucketName, Meta(description="Days past the due date at `as_of` (current: not yet due).")]
    amount: Money
    converted: Annotated[ConvertedMoney | None, Meta(
        description="In the requested `currency` (the sum of the bucket's invoices converted one by one).")] = None


class ArRow(Struct):
    """One legal entity's receivables from one customer, in the invoices' currency."""

    legal_entity_code: str
    customer_id: str
    currency: Currency
    open: Annotated[Money, Meta(description="Amount due on posted, unpaid invoices at `as_of`.")]
    overdue: Money
    buckets: list[ArBucket]
    invoiced: Annotated[Money, Meta(description="Invoices issued in the `days` up to `as_of`.")]
    dso: Annotated[Decimal | None, Meta(description="Days sales outstanding: open / invoiced x days, one place; "
                                                    "null when nothing was invoiced in the window.")]
    open_invoices: Annotated[int, Meta(ge=0)]
    converted_open: ConvertedMoney | None = None


class ArTotal(Struct):
    """One legal entity's receivables, in one currency (an entity billing in two currencies has two)."""

    legal_entity_code: str
    currency: Currency
    open: Money
    overdue: Money
    buckets: list[ArBucket]
    invoiced: Money
    dso: Annotated[Decimal | None, Meta(description="open / invoiced x days, one place; null without invoices.")]
    converted_open: ConvertedMoney | None = None


class ReceivablesReport(Struct):
    as_of: dt.date
    days: Annotated[int, Meta(description="The DSO window in days.")]
    entities: Annotated[list[ArTotal], Meta(description="Per legal entity and currency, over all customers.")]
    items: Annotated[list[ArRow], Meta(description="Per legal entity, customer and currency; paged.")]
    currency: Annotated[Currency | None, Meta(description="The group currency asked for, if any.")] = None
    group_open: Annotated[Money | None, Meta(description="Every entity's open receivables in `currency` (the sum "
                                                         "of the converted invoices), when a currency was asked.")] \
        = None
    group_overdue: Money | None = None
    rates: Annotated[list[ExchangeRate], Meta(description="Each rate used, with its date and source.")] = []
    next_cursor: NextCursor = None


# --- 9: work in progress (revenue recognised but not yet billed) ------------------------------


class WipItem(Struct):
    project: str
    legal_entity_code: str
    method: Annotated[str, Meta(description="How the contract recognises revenue (see the revenue schedule).")]
    recognised: Annotated[Money, Meta(description="Recognised to the end of the period.")]
    billed: Annotated[Money, Meta(description="Invoiced, less credits, to the end of the period.")]
    work_in_progress: Annotated[Money, Meta(description="recognised - billed (negative: billed ahead).")]
    as_of_period: Annotated[str, Meta(description="The latest period with revenue, at or before the one asked.")]
    converted_recognised: Annotated[ConvertedMoney | None, Meta(
        description="Recognised in the requested `currency` at the entity's rate for the period's last day.")] = None
    converted_billed: ConvertedMoney | None = None


class WipTotal(Struct):
    currency: Currency
    recognised: Money
    billed: Money
    work_in_progress: Money


class WipPage(Struct):
    items: list[WipItem]
    totals: Annotated[list[WipTotal], Meta(description="One per currency, over all pages.")]
    next_cursor: NextCursor = None
    group_total: Annotated[WipTotal | None, Meta(description=(
        "Every project of every page in the requested `currency`: the sums of the projects' converted recognised "
        "and billed amounts (each converted and rounded on its own); work in progress is their difference."))] = None
    rates: Annotated[list[ExchangeRate], Meta(description="Each rate used, with its date and source.")] = []
