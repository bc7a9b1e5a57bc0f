"""Each expense rule holds an expense a finance team would not bill, names who fixes it, and prices what passes."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.common import Money
from contracts.currency import ExchangeRate
from contracts.runs import Violation
from process_apis.time_to_bill.expense_rules import expense_key, validate_expense
from process_apis.time_to_bill.rules import PricedLine, WorkerRef
from tests.unit.time_to_bill.ttb_factory import AS_OF, TERMS, expense, project, reference

GBP_USD = ExchangeRate(base="GBP", quote="USD", rate=Decimal("1.2658"), date=dt.date(2026, 10, 6), source="erp")


def _violations(result: PricedLine | tuple[Violation, ...]) -> dict[str, str]:
    assert not isinstance(result, PricedLine), f"expected violations, got {result}"
    return {v.code: v.owner for v in result}


def test_a_billable_expense_is_priced_at_cost_plus_the_contracts_markup() -> None:
    line = validate_expense(expense(amount=Money(amount=Decimal("215.45"), currency="USD")), reference(), AS_OF, None)
    assert isinstance(line, PricedLine)
    assert line.kind == "expense" and line.role == "Travel" and line.hours == 1
    assert line.rate == Decimal("215.45")  # the cost the ERP posts
    assert line.amount == Decimal("237.00")  # 215.45 x 1.10 = 236.995, half-up to the cent
    assert line.entry_id == "expense:EX-1" and line.line_key.startswith("expense:EX-1:")


def test_at_cost_and_not_billable() -> None:
    terms = msgspec.structs.replace(TERMS, markup_percent=Decimal(0))
    at_cost = reference(projects={"PRJ-A0001": project(expense_terms=terms)})
    line = validate_expense(expense(), at_cost, AS_OF, None)
    assert isinstance(line, PricedLine) and line.amount == Decimal("120.00")
    internal = validate_expense(expense(category="Software", billable=False), reference(), AS_OF, None)
    assert isinstance(internal, PricedLine) and internal.amount == 0 and internal.rate == Decimal("120.00")


@pytest.mark.parametrize(("changes", "code", "owner"), [
    ({"status": "submitted"}, "expense_not_approved", "delivery-operations"),
    ({"date": dt.date(2026, 11, 20)}, "future_dated", "delivery-operations"),
    ({"receipt_url": None, "amount": Money(amount=Decimal("75.01"), currency="USD")}, "receipt_missing",
     "delivery-operations"),
    ({"category": "Entertainment"}, "expense_not_billable", "commercial-finance"),
    ({"category": "Lodging", "amount": Money(amount=Decimal("400.01"), currency="USD")}, "expense_over_cap",
     "commercial-finance"),
    ({"date": dt.date(2026, 8, 27)}, "period_closed", "finance-close"),
    ({"amount": Money(amount=Decimal("50.00"), currency="JPY")}, "expense_currency_unhandled", "finance-master-data"),
    ({"project_code": "PRJ-NOPE"}, "unknown_project", "delivery-operations"),
    ({"user_email": "nobody@example.com"}, "worker_inactive", "hr-operations"),
])
def test_each_rule_holds_its_expense(changes: dict[str, Any], code: str, owner: str) -> None:
    violations = _violations(validate_expense(expense(**changes), reference(), AS_OF, None))
    assert violations.get(code) == owner, violations


def test_the_limits_are_inclusive_and_a_receipt_below_the_threshold_is_not_needed() -> None:
    at_cap = expense(category="Lodging", amount=Money(amount=Decimal("400.00"), currency="USD"))
    assert isinstance(validate_expense(at_cap, reference(), AS_OF, None), PricedLine)
    small = expense(receipt_url=None, amount=Money(amount=Decimal("75.00"), currency="USD"))
    assert isinstance(validate_expense(small, reference(), AS_OF, None), PricedLine)
    internal_over_cap = expense(category="Lodging", billable=False,
                                amount=Money(amount=Decimal("900.00"), currency="USD"))
    assert isinstance(validate_expense(internal_over_cap, reference(), AS_OF, None), PricedLine)  # caps bill only


def test_a_worker_not_staffed_on_the_day_and_a_project_without_terms() -> None:
    ref = reference()
    ref.plans = ()
    assert "worker_not_assigned" in _violations(validate_expense(expense(), ref, AS_OF, None))
    bare = reference(projects={"PRJ-A0001": project(expense_terms=None)})
    assert _violations(validate_expense(expense(), bare, AS_OF, None)) == {"expense_not_billable": "commercial-finance"}
    assert isinstance(validate_expense(expense(billable=False), bare, AS_OF, None), PricedLine)
    gone = reference(workers={"ana@example.com": WorkerRef(id="W-00001", email="ana@example.com", status="terminated",
                                                           termination_date=dt.date(2026, 10, 1))})
    assert "worker_inactive" in _violations(validate_expense(expense(), gone, AS_OF, None))


def test_an_expense_in_another_currency_is_converted_at_the_entitys_rate() -> None:
    spent = expense(amount=Money(amount=Decimal("100.00"), currency="GBP"), date=dt.date(2026, 10, 6))
    line = validate_expense(spent, reference(), AS_OF, GBP_USD)
    assert isinstance(line, PricedLine) and line.currency == "USD"
    assert line.rate == Decimal("126.58") and line.amount == Decimal("139.24")  # 126.58 x 1.1 = 139.238
    wrong_pair = ExchangeRate(base="EUR", quote="USD", rate=Decimal("1.1"), date=dt.date(2026, 10, 6), source="erp")
    assert "expense_currency_unhandled" in _violations(validate_expense(spent, reference(), AS_OF, wrong_pair))
    # The threshold and the cap apply to the converted amount.
    lodging = expense(category="Lodging", amount=Money(amount=Decimal("320.00"), currency="GBP"))
    assert "expense_over_cap" in _violations(validate_expense(lodging, reference(), AS_OF, GBP_USD))


def test_a_changed_expense_gets_a_new_key_and_an_unchanged_one_the_same() -> None:
    base = expense()
    assert expense_key(base) == expense_key(expense(updated_at=dt.datetime(2026, 10, 9, tzinfo=dt.UTC)))
    for changed in (expense(amount=Money(amount=Decimal("120.01"), currency="USD")), expense(billable=False),
                    expense(category="Meals"), expense(date=dt.date(2026, 10, 8)), expense(receipt_url=None)):
        assert expense_key(changed) != expense_key(base)


@given(st.decimals(min_value=Decimal("0.01"), max_value=Decimal("399.99"), places=2),
       st.sampled_from([Decimal(0), Decimal(5), Decimal(10), Decimal("12.5")]))
def test_billed_is_cost_times_one_plus_markup_to_the_cent(amount: Decimal, markup: Decimal) -> None:
    ref = reference(projects={"PRJ-A0001": project(expense_terms=msgspec.structs.replace(TERMS,
                                                                                         markup_percent=markup))})
    line = validate_expense(expense(amount=Money(amount=amount, currency="USD")), ref, AS_OF, None)
    assert isinstance(line, PricedLine)
    exact = amount * (1 + markup / 100)
    assert abs(line.amount - exact) <= Decimal("0.005") and line.amount == line.amount.quantize(Decimal("0.01"))
