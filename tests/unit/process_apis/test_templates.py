"""Templates turn a deal's value into tasks and milestones without losing a cent."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from contracts.common import Money
from process_apis.provisioning.templates import TEMPLATES

START, END = dt.date(2026, 11, 1), dt.date(2027, 4, 30)


@given(cents=st.integers(min_value=1, max_value=10**11), name=st.sampled_from(sorted(TEMPLATES)))
def test_milestones_never_exceed_value_and_fixed_fee_adds_up_exactly(cents: int, name: str) -> None:
    value = Money(amount=Decimal(cents) / 100, currency="EUR")
    template = TEMPLATES[name]
    milestones = template.plan_milestones(value, START, END)
    total = sum((m.amount.amount for m in milestones), Decimal(0))
    shares = sum((share for _, _, share in template.milestones), Decimal(0))
    assert total == (value.amount if shares == 1 else total)
    assert total <= value.amount
    assert all(m.amount.currency == "EUR" and START <= m.due_date <= END for m in milestones)


def test_fixed_fee_template_schedules_kickoff_midpoint_and_acceptance() -> None:
    milestones = TEMPLATES["fixed_fee_milestones"].plan_milestones(
        Money(amount=Decimal("100000.01"), currency="USD"), START, END)
    assert [m.name for m in milestones] == ["Kick-off", "Mid-point review", "Final acceptance"]
    assert [m.amount.amount for m in milestones] == [Decimal("20000.00"), Decimal("40000.00"), Decimal("40000.01")]
    assert milestones[0].due_date == START and milestones[-1].due_date == END


def test_time_and_materials_has_no_milestones_and_plans_hours_from_value() -> None:
    template = TEMPLATES["tm_standard"]
    value = Money(amount=Decimal("250000"), currency="USD")
    assert template.plan_milestones(value, START, END) == []
    hours = [Decimal(t.planned_hours) for t in template.plan_tasks(value)]
    assert sum(hours) == Decimal("1000")  # 250,000 at the blended 250/h
