"""Dashboard figures in a group currency, without a stack: what the demo firm cannot show.

The demo firm bills each currency from one legal entity, so its dashboards never meet two entities converting
the same currency at different rates, a draft of a project the readiness page does not list, or a figure that
rounds differently half-up and half-even. A stand-in rate book gives each entity its own rate.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, cast

from contracts.common import Money
from contracts.currency import ExchangeRate
from contracts.dashboards import (
    AgingBucket,
    AgingReport,
    MarginPage,
    ProjectMargin,
    ProjectReadiness,
    ReadinessPage,
    ReadinessTotal,
)
from experience_apis.dashboards.group_currency import aging_in, margin_in, readiness_in
from foundation.periods import month_bounds
from process_apis.exchange_rates import RateBook

ON = dt.date(2026, 10, 31)
CENT = Decimal("0.01")
RATES = {("IE01", "EUR"): Decimal("1.1"), ("DE01", "EUR"): Decimal("1.2"), ("UK01", "GBP"): Decimal("1.3"),
         ("US01", "GBP"): Decimal("2")}


class Book:
    """Each legal entity's rate into USD, dated the day before the day asked; every call recorded."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, str, dt.date]] = []

    async def rate(self, legal_entity: str, base: str, quote: str, on: dt.date) -> ExchangeRate:
        self.asked.append((legal_entity, base, quote, on))
        return ExchangeRate(base=base, quote=quote, rate=RATES[(legal_entity, base)], date=on - dt.timedelta(days=1),
                            source="rate_table")


def book() -> tuple[Book, RateBook]:
    fake = Book()
    return fake, cast(Any, fake)


def eur(amount: str) -> Money:
    return Money(amount=Decimal(amount), currency="EUR")


async def test_a_bucket_adds_each_entitys_share_converted_at_its_own_rate() -> None:
    fake, rates = book()
    report = AgingReport(as_of=ON, buckets=[AgingBucket(bucket=b, currency="EUR", hours=Decimal("1E+1"),
                                                        amount=eur("0")) for b in ("0-30", "31-60", "61-90", "90+")])
    rows: list[Any] = [("0-30", "DE01", "EUR", (200_500,)), ("31-60", "DE01", "EUR", (0,)),
                       ("0-30", "IE01", "EUR", (100_500,)), ("31-60", "IE01", "EUR", (0,))]
    got = await aging_in(report, rows, rates, "USD")
    first = got.group_buckets[0]
    # 20.05 x 1.2 = 24.06 and 10.05 x 1.1 = 11.055 -> 11.06: 35.12 (at one EUR rate it would be 36.18 or 33.17)
    assert [(p.legal_entity_code, p.converted.amount.amount, p.converted.rate) for p in first.parts] == \
        [("DE01", Decimal("24.06"), Decimal("1.2")), ("IE01", Decimal("11.06"), Decimal("1.1"))]
    assert first.amount == Money(amount=Decimal("35.12"), currency="USD") and first.currency == "USD"
    assert [b.bucket for b in got.group_buckets] == ["0-30", "31-60", "61-90", "90+"]
    assert [str(b.amount.amount) for b in got.group_buckets] == ["35.12", "0.00", "0.00", "0.00"]
    assert [len(b.parts) for b in got.group_buckets] == [2, 2, 0, 0]
    assert str(first.hours) == "10"  # the bucket's hours over every currency, never "1E+1"
    assert [(r.base, r.rate) for r in got.rates] == [("EUR", Decimal("1.2")), ("EUR", Decimal("1.1"))]
    assert {on for *_, on in fake.asked} == {ON} and len(fake.asked) == 2  # at `as_of`, once per entity and currency


async def test_readiness_adds_the_drafts_of_projects_it_does_not_list() -> None:
    _, rates = book()
    gbp = Money(amount=Decimal("0.00"), currency="GBP")
    item = ProjectReadiness(project="PRJ-1", legal_entity_code="UK01", practice="technology",
                            approved_unbilled_hours=Decimal("7.5"), approved_unbilled=Money(amount=Decimal("100.01"),
                                                                                            currency="GBP"),
                            posted_uninvoiced=gbp, held_hours=Decimal(0), lines=2,
                            drafted_unposted=Money(amount=Decimal("10.00"), currency="GBP"))
    totals = [ReadinessTotal(currency="GBP", approved_unbilled_hours=Decimal("7.5"), approved_unbilled=gbp,
                             posted_uninvoiced=gbp, held_hours=Decimal("2.5"), lines=2, drafted_unposted=gbp),
              ReadinessTotal(currency="EUR", approved_unbilled_hours=Decimal("0.5"), approved_unbilled=gbp,
                             posted_uninvoiced=gbp, held_hours=Decimal(0), lines=1, drafted_unposted=gbp)]
    page = ReadinessPage(items=[item], totals=totals)
    rows: list[Any] = [("PRJ-1", "UK01", "GBP", (1_000_100, 0, 100_000)),
                       (("PRJ-9", "UK01", "GBP"), "UK01", "GBP", (0, 0, 333_300))]
    got = await readiness_in(page, rows, rates, "USD", ON)
    [shown] = got.items
    assert shown.converted_approved_unbilled is not None and shown.converted_drafted_unposted is not None
    assert shown.converted_approved_unbilled.amount.amount == Decimal("130.01")  # 100.01 x 1.3 = 130.013
    assert shown.converted_drafted_unposted.original == item.drafted_unposted
    group = got.group_total
    assert group is not None
    assert group.drafted_unposted.amount == Decimal("13.00") + Decimal("43.33")  # 33.33 x 1.3 = 43.329
    assert (group.lines, str(group.approved_unbilled_hours), str(group.held_hours)) == (3, "8", "2.5")


async def test_a_figure_is_converted_as_the_widget_shows_it_rounded_half_up() -> None:
    _, rates = book()
    item = ProjectMargin(project="PRJ-1", legal_entity_code="US01", practice="technology",
                         revenue=Money(amount=Decimal("1.01"), currency="GBP"),
                         cost=Money(amount=Decimal("0.00"), currency="GBP"),
                         margin=Money(amount=Decimal("1.01"), currency="GBP"), margin_ratio=Decimal(1))
    got = await margin_in(MarginPage(items=[item], totals=[]), [("PRJ-1", "US01", "GBP", (10_050, 0))], rates,
                          "USD", ON)
    converted = got.items[0].converted_revenue
    assert converted is not None and converted.original == item.revenue  # 1.005 is 1.01 on the page, not 1.00
    assert converted.amount.amount == (Decimal("1.01") * 2).quantize(CENT, ROUND_HALF_UP)
    assert got.group_total is not None and got.group_total.revenue.amount == Decimal("2.02")


async def test_nothing_to_convert_is_a_zero_group_total_and_no_rates() -> None:
    fake, rates = book()
    got = await readiness_in(ReadinessPage(items=[], totals=[]), [], rates, "USD", ON)
    assert got.group_total is not None and str(got.group_total.approved_unbilled.amount) == "0.00"
    assert got.rates == [] and fake.asked == []


def test_a_period_ends_on_its_last_day_even_in_the_last_year() -> None:
    assert [month_bounds(p)[1] for p in ("2026-10", "2026-12", "2028-02", "9999-12")] == \
        [dt.date(2026, 10, 31), dt.date(2026, 12, 31), dt.date(2028, 2, 29), dt.date(9999, 12, 31)]
