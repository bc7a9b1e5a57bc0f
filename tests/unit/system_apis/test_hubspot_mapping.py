"""HubSpot deal and company properties <-> canonical CRM objects: strings to Decimal, stages, dates, defaults."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from contracts.crm import AccountUpsert, Address
from system_apis.demo_firm import demo_firm
from system_apis.hubspot.mapping import (
    MappingError,
    account_from_company,
    account_upsert_to_properties,
    company_properties,
    deal_properties,
    is_hubspot_id,
    opportunity_from_deal,
    stage_from_hubspot,
)


def test_a_seeded_opportunity_survives_the_round_trip_through_deal_properties() -> None:
    for opp in demo_firm().opportunities[:12]:
        props: dict[str, str | None] = {k: v or None for k, v in deal_properties(opp, external_id=opp.id).items()}
        props["hs_is_closed_won"] = "true" if opp.stage == "closed_won" else "false"
        back = opportunity_from_deal("20000000001", props, [opp.account_id], default_currency="CAD")
        assert back.amount == opp.amount and back.stage == opp.stage and back.close_date == opp.close_date
        assert (back.legal_entity_code, back.practice, back.start_date) == (opp.legal_entity_code, opp.practice,
                                                                           opp.start_date)


def test_amount_stays_decimal_and_currency_falls_back_to_the_connections() -> None:
    opp = opportunity_from_deal("1", {"dealname": "Maple", "amount": "125000.10", "closedate": "2026-10-15T00:00:00Z",
                                      "dealstage": "contractsent"}, [], default_currency="CAD")
    assert opp.amount.amount == Decimal("125000.10") and opp.amount.currency == "CAD"
    assert opp.stage == "negotiation" and not opp.is_won and opp.account_id == ""


@pytest.mark.parametrize(("stage", "won", "expected"), [
    ("closedwon", False, "closed_won"), ("a1b2c3-custom-won", True, "closed_won"),
    ("a1b2c3-custom-open", False, "prospecting"), ("decisionmakerboughtin", False, "proposal"),
    ("closedlost", False, "closed_lost"),
])
def test_stages_of_custom_pipelines_read_through_hs_is_closed_won(stage: str, won: bool, expected: str) -> None:
    assert stage_from_hubspot(stage, won) == expected


@pytest.mark.parametrize("closedate", ["2026-10-15T00:00:00Z", "2026-10-15", "1792022400000"])
def test_close_date_in_any_of_hubspots_forms(closedate: str) -> None:
    opp = opportunity_from_deal("1", {"dealname": "x", "closedate": closedate}, [], default_currency="CAD")
    assert opp.close_date == dt.date(2026, 10, 15)


def test_a_deal_without_close_date_or_with_a_bad_amount_is_a_mapping_error() -> None:
    with pytest.raises(MappingError):
        opportunity_from_deal("1", {"dealname": "x"}, [], default_currency="CAD")
    with pytest.raises(MappingError):
        opportunity_from_deal("1", {"dealname": "x", "closedate": "2026-10-15", "amount": "12k"}, [],
                              default_currency="CAD")


def test_company_country_names_become_iso_codes_and_unset_values_clear() -> None:
    props = account_upsert_to_properties(AccountUpsert(name="Maple", currency="CAD",
                                                       billing_address=Address(city="Toronto", country="CA")))
    assert props["country"] == "Canada" and props["zip"] == "" and props["psconnect_tax_id"] == ""
    account = account_from_company("7", {**props, "zip": None}, default_currency="USD")
    assert account.billing_address.country == "CA" and account.billing_address.postal_code is None
    assert account.currency == "CAD" and account.tax_id is None


def test_seeded_account_keeps_its_external_id() -> None:
    source = demo_firm().accounts[0]
    account = account_from_company("7", {k: v or None for k, v in company_properties(source).items()},
                                   default_currency="CAD")
    assert account.external_id == source.id and account.currency == source.currency


def test_hubspot_ids_are_numbers() -> None:
    assert is_hubspot_id("20000000001") and not is_hubspot_id("OPP-0001") and not is_hubspot_id("")
