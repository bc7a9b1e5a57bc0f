"""Margin and work in progress in a group currency: each project's two figures converted on their own, then added.

Each project's figures are converted at its legal entity's rate for the period's last day
(`process_apis/exchange_rates.py`) and rounded half-up to the cent; the group total is the sum of
those converted figures, so the page's projects and the total agree to the cent whatever the
currencies. The rates used are returned with their dates and sources.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TypeVar

import msgspec

from contracts.common import Money
from contracts.currency import ConvertedMoney, ExchangeRate, convert
from contracts.dashboards import MarginPage, MarginTotal, ProjectMargin, WipItem, WipPage, WipTotal
from experience_apis.dashboards.store import ProjectFigures, ratio
from process_apis.exchange_rates import RateBook
from process_apis.time_to_bill.billing_facts import from_units

__all__ = ["margin_in", "wip_in"]

Converted = dict[str, tuple[ConvertedMoney, ConvertedMoney]]
Item = TypeVar("Item", ProjectMargin, WipItem)


def _cents(units: int, currency: str) -> Money:
    return Money(amount=from_units(units).quantize(Decimal("0.01")), currency=currency)


async def _converted(rows: list[ProjectFigures], rates: RateBook, currency: str,
                     on: dt.date) -> tuple[Converted, list[ExchangeRate], Decimal, Decimal]:
    """Each project's two figures converted, the rates used and the sums of the converted figures."""
    used: dict[tuple[str, str], ExchangeRate] = {}
    converted: Converted = {}
    for project, entity, cur, first, second in rows:
        if (entity, cur) not in used:
            used[(entity, cur)] = await rates.rate(entity, cur, currency, on)
        rate = used[(entity, cur)]
        converted[project] = (convert(_cents(first, cur), rate), convert(_cents(second, cur), rate))
    firsts = sum((a.amount.amount for a, _ in converted.values()), Decimal(0))
    seconds = sum((b.amount.amount for _, b in converted.values()), Decimal(0))
    return converted, [used[k] for k in sorted(used)], firsts, seconds


def _with_converted(items: list[Item], converted: Converted, first: str, second: str) -> list[Item]:
    """`items` with their two converted figures set under the names `first` and `second`."""
    return [msgspec.structs.replace(i, **{first: converted[i.project][0], second: converted[i.project][1]})
            if i.project in converted else i for i in items]


async def margin_in(page: MarginPage, rows: list[ProjectFigures], rates: RateBook, currency: str,
                    on: dt.date) -> MarginPage:
    """`page` with each item's converted revenue and cost, the group total over `rows` and the rates used."""
    converted, used, revenue, cost = await _converted(rows, rates, currency, on)
    group = MarginTotal(currency=currency, revenue=Money(amount=revenue, currency=currency),
                        cost=Money(amount=cost, currency=currency),
                        margin=Money(amount=revenue - cost, currency=currency),
                        margin_ratio=ratio(revenue - cost, revenue))
    return msgspec.structs.replace(page, group_total=group, rates=used, items=_with_converted(
        page.items, converted, "converted_revenue", "converted_cost"))


async def wip_in(page: WipPage, rows: list[ProjectFigures], rates: RateBook, currency: str,
                 on: dt.date) -> WipPage:
    """`page` with each item's converted recognised and billed amounts, the group total over `rows` and the rates."""
    converted, used, recognised, billed = await _converted(rows, rates, currency, on)
    group = WipTotal(currency=currency, recognised=Money(amount=recognised, currency=currency),
                     billed=Money(amount=billed, currency=currency),
                     work_in_progress=Money(amount=recognised - billed, currency=currency))
    return msgspec.structs.replace(page, group_total=group, rates=used, items=_with_converted(
        page.items, converted, "converted_recognised", "converted_billed"))
