"""Margin in a group currency: each project's revenue and cost converted on its own, then added.

Each project's figures are converted at its legal entity's rate for the period's last day
(`process_apis/exchange_rates.py`) and rounded half-up to the cent; the group total is the sum of
those converted figures, so the page's projects and the total agree to the cent whatever the
currencies. The rates used are returned with their dates and sources.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec

from contracts.common import Money
from contracts.currency import ConvertedMoney, ExchangeRate, convert
from contracts.dashboards import MarginPage, MarginTotal
from experience_apis.dashboards.store import ratio
from process_apis.exchange_rates import RateBook
from process_apis.time_to_bill.billing_facts import from_units

__all__ = ["margin_in"]


def _cents(units: int, currency: str) -> Money:
    return Money(amount=from_units(units).quantize(Decimal("0.01")), currency=currency)


async def margin_in(page: MarginPage, rows: list[tuple[str, str, str, int, int]], rates: RateBook, currency: str,
                    on: dt.date) -> MarginPage:
    """`page` with each item's converted revenue and cost, the group total over `rows` and the rates used."""
    used: dict[tuple[str, str], ExchangeRate] = {}
    converted: dict[str, tuple[ConvertedMoney, ConvertedMoney]] = {}
    for project, entity, cur, revenue, cost in rows:
        if (entity, cur) not in used:
            used[(entity, cur)] = await rates.rate(entity, cur, currency, on)
        rate = used[(entity, cur)]
        converted[project] = (convert(_cents(revenue, cur), rate), convert(_cents(cost, cur), rate))
    revenue_total = sum((r.amount.amount for r, _ in converted.values()), Decimal(0))
    cost_total = sum((c.amount.amount for _, c in converted.values()), Decimal(0))
    items = [msgspec.structs.replace(i, converted_revenue=converted[i.project][0],
                                     converted_cost=converted[i.project][1]) if i.project in converted else i
             for i in page.items]
    group = MarginTotal(currency=currency, revenue=Money(amount=revenue_total, currency=currency),
                        cost=Money(amount=cost_total, currency=currency),
                        margin=Money(amount=revenue_total - cost_total, currency=currency),
                        margin_ratio=ratio(revenue_total - cost_total, revenue_total))
    return msgspec.structs.replace(page, items=items, group_total=group, rates=[used[k] for k in sorted(used)])
