"""Dashboard widgets in a group currency: each figure converted on its own at its entity's rate, then added.

Margin, work in progress, backlog and invoice readiness convert each project's money figures at its legal
entity's rate for the period's last day, unbilled aging each entity's amount per currency and bucket at its
rate for `as_of` (`process_apis/exchange_rates.py`); every figure is rounded half-up to the cent on its own
(`contracts/currency.convert`) and a group figure is the sum of those converted figures, so the items, the
parts and the group figures agree to the cent whatever the currencies. The rates used are returned with their
dates and sources. Only the rows the store read for the caller's legal entities are converted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import TypeVar

import msgspec

from contracts.common import Money
from contracts.currency import CENT, ConvertedMoney, ExchangeRate, convert
from contracts.dashboards import (
    AgingConversion,
    AgingGroupBucket,
    AgingReport,
    BacklogPage,
    BacklogTotal,
    MarginPage,
    MarginTotal,
    ProjectBacklog,
    ProjectMargin,
    ProjectReadiness,
    ReadinessPage,
    ReadinessTotal,
    WipItem,
    WipPage,
    WipTotal,
)
from experience_apis.dashboards.store import AGING, Figures, plain_hours, ratio
from foundation.units import from_units
from process_apis.exchange_rates import RateBook

__all__ = ["aging_in", "backlog_in", "margin_in", "readiness_in", "wip_in"]

Converted = list[tuple[Hashable, str, tuple[ConvertedMoney, ...]]]
"""(key, legal entity, the row's figures converted), in the order of the rows."""
Item = TypeVar("Item", ProjectMargin, WipItem, ProjectBacklog, ProjectReadiness)


def _cents(units: int, currency: str) -> Money:
    """The figure as the widget shows it (rounded half-up to the cent, like the store), which is what is converted."""
    return Money(amount=from_units(units).quantize(CENT, ROUND_HALF_UP), currency=currency)


async def _converted(rows: Sequence[Figures], rates: RateBook, currency: str,
                     on: dt.date) -> tuple[Converted, list[ExchangeRate]]:
    """Each row's figures converted at its entity's rate for `on`, and the rates used (one per entity and currency)."""
    used: dict[tuple[str, str], ExchangeRate] = {}
    converted: Converted = []
    for key, entity, cur, figures in rows:
        if (entity, cur) not in used:
            used[(entity, cur)] = await rates.rate(entity, cur, currency, on)
        converted.append((key, entity, tuple(convert(_cents(units, cur), used[(entity, cur)]) for units in figures)))
    return converted, [used[k] for k in sorted(used)]


def _sums(converted: Converted, width: int) -> list[Decimal]:
    """The sum of each of the `width` converted figures over every row: a group total."""
    return [sum((figures[n].amount.amount for _, _, figures in converted), Decimal(0)) for n in range(width)]


def _with_converted(items: list[Item], converted: Converted, *names: str) -> list[Item]:
    """`items` with their converted figures set, in order, under `names` (an item is found by its project)."""
    by_project = {key: figures for key, _, figures in converted}
    return [msgspec.structs.replace(i, **dict(zip(names, by_project[i.project], strict=True)))
            if i.project in by_project else i for i in items]


def _money(amount: Decimal, currency: str) -> Money:
    """A group figure: a sum of cents, written to the cent ("0.00" when nothing was added, not "0")."""
    return Money(amount=amount.quantize(CENT), currency=currency)


async def margin_in(page: MarginPage, rows: list[Figures], rates: RateBook, currency: str,
                    on: dt.date) -> MarginPage:
    """`page` with each item's converted revenue and cost, the group total over `rows` and the rates used."""
    converted, used = await _converted(rows, rates, currency, on)
    revenue, cost = _sums(converted, 2)
    group = MarginTotal(currency=currency, revenue=_money(revenue, currency), cost=_money(cost, currency),
                        margin=_money(revenue - cost, currency), margin_ratio=ratio(revenue - cost, revenue))
    return msgspec.structs.replace(page, group_total=group, rates=used, items=_with_converted(
        page.items, converted, "converted_revenue", "converted_cost"))


async def wip_in(page: WipPage, rows: list[Figures], rates: RateBook, currency: str,
                 on: dt.date) -> WipPage:
    """`page` with each item's converted recognised and billed amounts, the group total over `rows` and the rates."""
    converted, used = await _converted(rows, rates, currency, on)
    recognised, billed = _sums(converted, 2)
    group = WipTotal(currency=currency, recognised=_money(recognised, currency), billed=_money(billed, currency),
                     work_in_progress=_money(recognised - billed, currency))
    return msgspec.structs.replace(page, group_total=group, rates=used, items=_with_converted(
        page.items, converted, "converted_recognised", "converted_billed"))


async def backlog_in(page: BacklogPage, rows: list[Figures], rates: RateBook, currency: str,
                     on: dt.date) -> BacklogPage:
    """`page` with each item's converted contracted and delivered values, the group total over `rows` and the rates;
    remaining is the difference of the converted sums (a difference converted on its own would not add up)."""
    converted, used = await _converted(rows, rates, currency, on)
    contracted, delivered = _sums(converted, 2)
    group = BacklogTotal(currency=currency, contracted=_money(contracted, currency),
                         delivered=_money(delivered, currency), remaining=_money(contracted - delivered, currency))
    return msgspec.structs.replace(page, group_total=group, rates=used, items=_with_converted(
        page.items, converted, "converted_contracted", "converted_delivered"))


async def readiness_in(page: ReadinessPage, rows: list[Figures], rates: RateBook, currency: str,
                       on: dt.date) -> ReadinessPage:
    """`page` with each item's converted approved unbilled, posted uninvoiced and drafted unposted values, the group
    total over `rows` (drafts of projects not listed included, as in `totals`) and the rates.

    Hours and lines are not money: the group total's are those of every currency's total added."""
    converted, used = await _converted(rows, rates, currency, on)
    unbilled, posted, drafted = _sums(converted, 3)
    group = ReadinessTotal(
        currency=currency, approved_unbilled=_money(unbilled, currency), posted_uninvoiced=_money(posted, currency),
        drafted_unposted=_money(drafted, currency), lines=sum(t.lines for t in page.totals),
        approved_unbilled_hours=plain_hours(sum((t.approved_unbilled_hours for t in page.totals), Decimal(0))),
        held_hours=plain_hours(sum((t.held_hours for t in page.totals), Decimal(0))))
    return msgspec.structs.replace(page, group_total=group, rates=used, items=_with_converted(
        page.items, converted, "converted_approved_unbilled", "converted_posted_uninvoiced",
        "converted_drafted_unposted"))


async def aging_in(report: AgingReport, rows: list[Figures], rates: RateBook, currency: str) -> AgingReport:
    """`report` with every bucket in the group currency: each entity's amount per currency in the bucket converted at
    its rate for `as_of` (a part), the bucket's amount the sum of its parts; and the rates used."""
    converted, used = await _converted(rows, rates, currency, report.as_of)
    buckets: list[AgingGroupBucket] = []
    for name in AGING:
        parts = [AgingConversion(legal_entity_code=entity, converted=figures[0])
                 for key, entity, figures in converted if key == name]
        hours = sum((b.hours for b in report.buckets if b.bucket == name), Decimal(0))
        amount = sum((p.converted.amount.amount for p in parts), Decimal(0))
        buckets.append(AgingGroupBucket(bucket=name, currency=currency, hours=plain_hours(hours),
                                        amount=_money(amount, currency), parts=parts))
    return msgspec.structs.replace(report, group_buckets=buckets, rates=used)
