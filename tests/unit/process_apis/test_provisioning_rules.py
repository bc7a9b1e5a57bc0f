"""Provisioning rules: each broken rule is reported with its owner; clean deals pass."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from contracts.common import Money
from contracts.crm import Account, Address, Opportunity
from process_apis.provisioning.rules import validate
from system_apis.demo_firm import BROKEN_OPPORTUNITIES, LEGAL_ENTITIES, demo_firm


def _opp(**changes: object) -> Opportunity:
    base = {"id": "006A", "name": "Deal", "account_id": "001A", "stage": "closed_won", "is_won": True,
                "amount": Money(amount=Decimal("120000.00"), currency="GBP"), "close_date": dt.date(2026, 10, 1),
                "legal_entity_code": "UK01", "project_template": "tm_standard", "start_date": dt.date(2026, 10, 15),
                "end_date": dt.date(2027, 1, 15)}
    base.update(changes)
    return Opportunity(**base)  # type: ignore[arg-type]


def _account(**changes: object) -> Account:
    base = {"id": "001A", "name": "Northwind Ltd", "currency": "GBP", "tax_id": "GB123456789",
                "billing_address": Address(city="London", country="GB")}
    base.update(changes)
    return Account(**base)  # type: ignore[arg-type]


def codes(opp: Opportunity, account: Account) -> list[str]:
    """The violations against every entity of the demo firm (the acquired CA01 and AU01 too)."""
    return [v.code for v in validate(opp, account, demo_firm().legal_entities).violations]


def test_clean_deal_passes_and_resolves_entity_and_template() -> None:
    verdict = validate(_opp(), _account(), LEGAL_ENTITIES)
    assert verdict.ok
    assert verdict.legal_entity is not None and verdict.legal_entity.code == "UK01"
    assert verdict.template is not None and verdict.template.billing_type == "time_and_materials"


@pytest.mark.parametrize(("opp_changes", "account_changes", "expected", "owner"), [
    ({"stage": "negotiation", "is_won": False}, {}, "opportunity_not_won", "sales-operations"),
    ({"legal_entity_code": "FR01"}, {}, "unknown_legal_entity", "finance-master-data"),
    ({"legal_entity_code": None}, {}, "unknown_legal_entity", "finance-master-data"),
    ({"amount": Money(amount=Decimal("5000"), currency="USD")}, {}, "currency_mismatch", "sales-operations"),
    ({}, {"tax_id": None}, "missing_tax_id", "finance-master-data"),
    ({}, {"tax_id": "12345"}, "invalid_tax_id", "finance-master-data"),
    ({}, {"billing_address": Address(country="GB")}, "incomplete_customer_master", "finance-master-data"),
    ({"project_template": "moonshot"}, {}, "unknown_project_template", "delivery-operations"),
    ({"end_date": dt.date(2026, 1, 1)}, {}, "invalid_dates", "sales-operations"),
    ({"amount": Money(amount=Decimal("0"), currency="GBP")}, {}, "invalid_amount", "sales-operations"),
])
def test_each_rule_names_its_reason_and_owner(opp_changes: dict[str, object], account_changes: dict[str, object],
                                              expected: str, owner: str) -> None:
    violations = validate(_opp(**opp_changes), _account(**account_changes), LEGAL_ENTITIES).violations
    assert [(v.code, v.owner) for v in violations] == [(expected, owner)]


def test_all_violations_reported_at_once() -> None:
    got = codes(_opp(project_template="x", stage="proposal", is_won=False), _account(tax_id=None))
    assert set(got) == {"opportunity_not_won", "missing_tax_id", "unknown_project_template"}


def test_us_entity_does_not_require_a_tax_id() -> None:
    us = _opp(legal_entity_code="US01", amount=Money(amount=Decimal("10"), currency="USD"))
    assert codes(us, _account(tax_id=None, currency="USD", billing_address=Address(city="NYC", country="US"))) == []


def test_demo_firm_broken_deals_fail_for_the_documented_reason_and_others_pass() -> None:
    firm = demo_firm()
    accounts = {a.id: a for a in firm.accounts}
    for opp in (o for o in firm.opportunities if o.is_won):
        got = codes(opp, accounts[opp.account_id])
        assert got == ([BROKEN_OPPORTUNITIES[opp.id]] if opp.id in BROKEN_OPPORTUNITIES else []), opp.id
