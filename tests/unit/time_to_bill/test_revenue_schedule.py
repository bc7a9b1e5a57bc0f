"""Revenue recognition's pure core, property-tested: whatever the ledger holds, a fixed fee never recognises more
than its contract value, time and materials recognises exactly what was posted, and the schedule adds up."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from contracts.common import Money
from contracts.erp import BillingMilestone
from process_apis.time_to_bill.revenue import LedgerFigures, method_of, schedule
from process_apis.time_to_bill.rules import ProjectRef

PERIODS = [f"2026-{m:02d}" for m in range(1, 13)]
amounts = st.decimals(min_value=Decimal("-5000"), max_value=Decimal("50000"), places=2)
hours = st.decimals(min_value=Decimal("0"), max_value=Decimal("400"), places=2)
figures = st.dictionaries(st.sampled_from(PERIODS), st.builds(
    LedgerFigures, posted_value=amounts, posted_hours=hours, milestones=st.decimals(
        min_value=Decimal("0"), max_value=Decimal("80000"), places=2), billed=amounts), min_size=1, max_size=12)


def project(billing_type: str, *, budget: Decimal | None, milestones: int = 0) -> ProjectRef:
    return ProjectRef(external_id="PRJ-1", legal_entity_code="US01", legal_entity_id="1", customer_id="C1",
                      currency="USD", status="active", billing_type=billing_type, rate_card_id=None, budget=budget,
                      milestones=tuple(BillingMilestone(name=f"M{i}", due_date=dt.date(2026, i + 1, 28),
                                                        amount=Money(amount=Decimal("10000"), currency="USD"))
                                       for i in range(milestones)))


@given(figures, st.decimals(min_value=Decimal("1"), max_value=Decimal("500000"), places=2),
       st.decimals(min_value=Decimal("0"), max_value=Decimal("3000"), places=1), st.booleans())
def test_a_fixed_fee_never_recognises_more_than_its_contract_value(
        by_period: dict[str, LedgerFigures], value: Decimal, planned: Decimal, with_milestones: bool) -> None:
    lines = schedule(project("fixed_fee", budget=value, milestones=3 if with_milestones else 0), by_period, planned)
    assert all(line.cumulative.amount <= value for line in lines)
    assert all(line.recognised.amount >= 0 for line in lines)  # progress only moves forward
    assert {line.method for line in lines} == {"milestones" if with_milestones else "percent_complete"}


@given(figures)
def test_time_and_materials_recognises_what_was_posted_and_the_schedule_adds_up(
        by_period: dict[str, LedgerFigures]) -> None:
    lines = schedule(project("time_and_materials", budget=None), by_period, Decimal(0))
    assert [line.period for line in lines] == sorted(by_period)
    assert [line.recognised.amount for line in lines] == [by_period[p].posted_value for p in sorted(by_period)]
    running = billed = Decimal(0)
    for line in lines:
        running += line.recognised.amount
        billed += by_period[line.period].billed
        assert line.cumulative.amount == running and line.billed_cumulative.amount == billed
        assert line.work_in_progress.amount == running - billed


def test_percent_complete_follows_hours_over_plan_and_stops_at_the_value() -> None:
    ff = project("fixed_fee", budget=Decimal("90000"))
    lines = schedule(ff, {"2026-09": LedgerFigures(posted_hours=Decimal(100)),
                          "2026-10": LedgerFigures(posted_hours=Decimal(200)),
                          "2026-11": LedgerFigures(posted_hours=Decimal(500))}, Decimal(600))
    assert [line.recognised.amount for line in lines] == [Decimal("15000.00"), Decimal("30000.00"),
                                                          Decimal("45000.00")]  # 1/6, 1/2, then capped at all
    assert method_of(ff) == "percent_complete"


def test_mixed_recognises_its_time_and_its_accepted_milestones() -> None:
    mixed = project("mixed", budget=Decimal("100000"), milestones=1)
    [line] = schedule(mixed, {"2026-10": LedgerFigures(posted_value=Decimal("1200.50"),
                                                       milestones=Decimal("10000"))}, Decimal(0))
    assert line.recognised.amount == Decimal("11200.50") and line.method == "mixed"
