"""Each validation rule: the entry it stops, the reason it gives and who owns the fix."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from contracts.common import Money
from process_apis.time_to_bill.rules import PricedLine, WorkerRef, line_key, validate
from tests.unit.time_to_bill.ttb_factory import AS_OF, entry, project, reference


def reasons(result: object) -> set[str]:
    assert isinstance(result, tuple), f"expected violations, got {result!r}"
    return {v.code for v in result}


class TestPricing:
    def test_approved_entry_is_priced_from_the_rate_card_by_role(self) -> None:
        line = validate(entry(hours=Decimal("6.5")), reference(), AS_OF)
        assert isinstance(line, PricedLine)
        assert (line.rate, line.amount, line.currency, line.role) == (Decimal("210"), Decimal("1365.00"), "USD",
                                                                      "consultant")
        assert (line.worker_id, line.legal_entity_code, line.period) == ("W-00001", "US01", "2026-10")

    def test_amount_is_quantized_to_cents_half_up(self) -> None:
        card = reference().rate_cards["RC-US01-2026"]
        card.lines[0] = type(card.lines[0])(role="consultant", hourly_rate=Money(amount=Decimal("118.55"),
                                                                                  currency="USD"))
        line = validate(entry(hours=Decimal("0.1")), reference(rate_cards={card.id: card}), AS_OF)
        assert isinstance(line, PricedLine) and line.amount == Decimal("11.86")

    def test_non_billable_time_posts_at_zero_amount(self) -> None:
        line = validate(entry(billable=False), reference(), AS_OF)
        assert isinstance(line, PricedLine) and line.amount == Decimal("0.00") and not line.billable

    def test_matching_time_system_rate_is_accepted(self) -> None:
        line = validate(entry(billable_rate=Money(amount=Decimal("210.00"), currency="USD")), reference(), AS_OF)
        assert isinstance(line, PricedLine)


class TestRules:
    @pytest.mark.parametrize("status", ["draft", "submitted", "rejected"])
    def test_unapproved_time_never_posts(self, status: str) -> None:
        assert reasons(validate(entry(status=status), reference(), AS_OF)) == {"entry_not_approved"}

    def test_future_dated_entry(self) -> None:
        result = validate(entry(date=dt.date(2026, 11, 20)), reference(), AS_OF)
        assert reasons(result) == {"future_dated"}
        assert isinstance(result, tuple) and result[0].owner == "delivery-operations"

    def test_inactive_project(self) -> None:
        ref = reference(projects={"PRJ-A0001": project(status="closed")})
        assert reasons(validate(entry(), ref, AS_OF)) == {"project_inactive"}

    def test_unknown_project(self) -> None:
        assert "unknown_project" in reasons(validate(entry(project_code="PRJ-NOPE"), reference(), AS_OF))

    def test_missing_rate_card(self) -> None:
        ref = reference(projects={"PRJ-A0001": project(rate_card_id=None)})
        result = validate(entry(), ref, AS_OF)
        assert reasons(result) == {"rate_card_missing"}
        assert isinstance(result, tuple) and result[0].owner == "commercial-finance"

    def test_role_without_a_rate(self) -> None:
        ref = reference(roles={("PRJ-A0001", "ana@example.com"): "partner"})
        assert reasons(validate(entry(), ref, AS_OF)) == {"rate_card_missing"}

    def test_time_system_rate_differs_from_rate_card(self) -> None:
        result = validate(entry(billable_rate=Money(amount=Decimal("1.00"), currency="USD")), reference(), AS_OF)
        assert reasons(result) == {"rate_card_mismatch"}

    def test_rate_card_in_another_currency_than_the_contract(self) -> None:
        ref = reference(projects={"PRJ-A0001": project(currency="EUR")}, entity_currency={"US01": "EUR"})
        assert reasons(validate(entry(), ref, AS_OF)) == {"rate_card_mismatch"}

    def test_rate_card_not_valid_on_the_date(self) -> None:
        assert "rate_card_not_valid" in reasons(validate(entry(date=dt.date(2025, 12, 31)), reference(), AS_OF))

    def test_closed_period(self) -> None:
        result = validate(entry(date=dt.date(2026, 8, 28)), reference(), AS_OF)
        assert reasons(result) == {"period_closed"}
        assert isinstance(result, tuple) and result[0].owner == "finance-close"

    def test_currency_differs_from_legal_entity(self) -> None:
        ref = reference(entity_currency={"US01": "GBP"})
        assert reasons(validate(entry(), ref, AS_OF)) == {"currency_mismatch"}

    def test_worker_terminated_before_the_date(self) -> None:
        ref = reference(workers={"ana@example.com": WorkerRef(id="W-00001", email="ana@example.com",
                                                              status="terminated",
                                                              termination_date=dt.date(2026, 10, 16))})
        assert isinstance(validate(entry(date=dt.date(2026, 10, 16)), ref, AS_OF), PricedLine)
        assert reasons(validate(entry(date=dt.date(2026, 10, 19)), ref, AS_OF)) == {"worker_inactive"}

    def test_unknown_worker(self) -> None:
        assert "worker_inactive" in reasons(validate(entry(user_email="ghost@example.com"), reference(), AS_OF))

    def test_all_broken_rules_are_reported_at_once(self) -> None:
        ref = reference(projects={"PRJ-A0001": project(status="closed")})
        result = validate(entry(status="submitted", date=dt.date(2026, 11, 20)), ref, AS_OF)
        assert reasons(result) == {"entry_not_approved", "future_dated", "project_inactive"}


class TestLineKey:
    def test_same_version_same_key(self) -> None:
        assert line_key(entry()) == line_key(entry(notes="typo fixed", updated_at=dt.datetime.now(dt.UTC)))

    @pytest.mark.parametrize("change", [{"hours": Decimal("7")}, {"date": dt.date(2026, 10, 6)},
                                        {"project_code": "PRJ-A0002"}, {"billable": False}])
    def test_a_billable_change_is_a_new_version(self, change: dict[str, Any]) -> None:
        key = line_key(entry(**change))
        assert key != line_key(entry()) and key.startswith("TE-1:")

    def test_trailing_zeros_do_not_make_a_new_version(self) -> None:
        assert line_key(entry(hours=Decimal("6.50"))) == line_key(entry(hours=Decimal("6.5")))
