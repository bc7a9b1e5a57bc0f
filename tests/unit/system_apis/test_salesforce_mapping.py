"""Salesforce records <-> canonical CRM objects, and the SOQL text the adapter writes and the simulator reads."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from contracts.crm import AccountUpsert, Address, OpportunityStage
from system_apis._internal.force_soql import SoqlError, matches, parse
from system_apis.demo_firm import demo_firm
from system_apis.salesforce.client import decode_json, soql_literal
from system_apis.salesforce.mapping import (
    ACCOUNT_FIELDS,
    EXTERNAL_ID_FIELD,
    OPPORTUNITY_FIELDS,
    account_from_sf,
    account_to_sf,
    account_upsert_to_sf,
    is_salesforce_id,
    opportunity_from_sf,
    opportunity_to_sf,
    stage_from_sf,
    stage_to_sf,
)

SCHEMA = {"Account": frozenset(ACCOUNT_FIELDS), "Opportunity": frozenset(OPPORTUNITY_FIELDS)}


class TestAccount:
    def test_every_demo_account_survives_a_round_trip(self) -> None:
        for account in demo_firm().accounts:
            record = {"attributes": {"type": "Account", "url": "/x"}, "Id": account.id, **account_to_sf(account)}
            assert account_from_sf(record) == account

    def test_external_id_is_the_seed_key_and_id_the_salesforce_id(self) -> None:
        record = {"Id": "001Hs0000000001IAA", "Name": "Acme", EXTERNAL_ID_FIELD: "ACC-0001",
                  "CurrencyIsoCode": "GBP"}
        account = account_from_sf(record)
        assert (account.id, account.external_id, account.currency) == ("001Hs0000000001IAA", "ACC-0001", "GBP")

    def test_missing_optional_fields_read_as_absent(self) -> None:
        account = account_from_sf({"Id": "001Hs0000000001IAA", "Name": "Acme"}, default_currency="EUR")
        assert account.billing_address == Address()
        assert account.currency == "EUR"  # single-currency org: no CurrencyIsoCode field
        assert (account.tax_id, account.industry, account.external_id) == (None, None, None)

    def test_empty_strings_read_as_absent(self) -> None:
        account = account_from_sf({"Id": "001Hs0000000001IAA", "Name": "Acme", "Tax_Id__c": "", "BillingCity": ""})
        assert account.tax_id is None
        assert account.billing_address.city is None

    @pytest.mark.parametrize(("wire", "canonical"), [
        ("US", "US"), ("gb", "GB"), ("United States", "US"), ("United Kingdom", "GB"), ("Germany", "DE"),
        ("Atlantis", "Atlantis"), (None, None),
    ])
    def test_billing_country_becomes_alpha2_where_known(self, wire: str | None, canonical: str | None) -> None:
        account = account_from_sf({"Id": "001Hs0000000001IAA", "Name": "A", "BillingCountry": wire})
        assert account.billing_address.country == canonical

    def test_upsert_body_sets_every_owned_field_and_never_the_external_id(self) -> None:
        data = AccountUpsert(name="Acme", billing_address=Address(city="Berlin", country="DE"), currency="EUR")
        body = account_upsert_to_sf(data)
        assert EXTERNAL_ID_FIELD not in body
        assert body["Name"] == "Acme"
        assert body["BillingCity"] == "Berlin"
        assert body["CurrencyIsoCode"] == "EUR"
        # None clears the value in Salesforce, so a removed tax id does not linger.
        assert "Tax_Id__c" in body
        assert body["Tax_Id__c"] is None


class TestOpportunity:
    def test_every_demo_opportunity_survives_a_round_trip(self) -> None:
        for opp in demo_firm().opportunities:
            record = {"Id": opp.id, **opportunity_to_sf(opp, external_id=opp.id)}
            assert opportunity_from_sf(record) == opp

    def test_account_id_override_is_the_salesforce_account(self) -> None:
        opp = demo_firm().opportunities[0]
        assert opportunity_to_sf(opp, account_id="001Hs0000000001IAA")["AccountId"] == "001Hs0000000001IAA"

    def _record(self, **fields: Any) -> dict[str, Any]:
        return {"Id": "006Hs0000000001IAA", "Name": "Deal", "StageName": "Prospecting", "CloseDate": "2026-11-30",
                "AccountId": "001Hs0000000001IAA", **fields}

    @pytest.mark.parametrize(("wire", "amount"), [
        (Decimal("125000.10"), Decimal("125000.10")),
        (125000.1, Decimal("125000.1")),   # a float that slipped through keeps its repr, not binary noise
        (90000, Decimal("90000")),
        (None, Decimal("0.00")),
    ])
    def test_amount_is_decimal_never_float(self, wire: object, amount: Decimal) -> None:
        opp = opportunity_from_sf(self._record(Amount=wire, CurrencyIsoCode="USD"))
        assert opp.amount.amount == amount
        assert isinstance(opp.amount.amount, Decimal)
        assert str(opp.amount.amount) == str(amount)

    def test_amount_decoded_from_json_keeps_its_digits(self) -> None:
        record = decode_json(b'{"Id":"006Hs0000000001IAA","Name":"D","StageName":"Closed Won","IsWon":true,'
                             b'"CloseDate":"2026-10-01","Amount":1234567.89,"CurrencyIsoCode":"GBP"}')
        opp = opportunity_from_sf(record)
        assert str(opp.amount.amount) == "1234567.89"
        assert opp.amount.currency == "GBP"

    def test_missing_optional_fields(self) -> None:
        opp = opportunity_from_sf(self._record(), default_currency="EUR")
        assert opp.amount.currency == "EUR"
        assert (opp.legal_entity_code, opp.project_template, opp.practice) == (None, None, None)
        assert (opp.start_date, opp.end_date) == (None, None)
        assert opp.close_date == dt.date(2026, 11, 30)

    def test_private_opportunity_without_account_keeps_the_page_readable(self) -> None:
        assert opportunity_from_sf(self._record(AccountId=None)).account_id == ""

    def test_close_date_is_required(self) -> None:
        with pytest.raises(ValueError, match="CloseDate"):
            opportunity_from_sf(self._record(CloseDate=None))

    def test_is_won_is_not_written_back(self) -> None:
        # Salesforce derives IsWon from the stage; the simulator refuses it in writes like the real org does.
        body = opportunity_to_sf(demo_firm().opportunities[0])
        assert body["IsWon"] is True
        assert body["StageName"] == "Closed Won"


class TestStage:
    @pytest.mark.parametrize(("canonical", "wire"), [
        ("prospecting", "Prospecting"), ("qualification", "Qualification"), ("proposal", "Proposal/Price Quote"),
        ("negotiation", "Negotiation/Review"), ("closed_won", "Closed Won"), ("closed_lost", "Closed Lost"),
    ])
    def test_standard_stages_map_both_ways(self, canonical: OpportunityStage, wire: str) -> None:
        assert stage_to_sf(canonical) == wire
        assert stage_from_sf(wire, wire == "Closed Won") == canonical

    def test_unknown_won_stage_is_closed_won(self) -> None:
        assert stage_from_sf("Signed Contract", True) == "closed_won"

    def test_unknown_open_stage_cannot_start_provisioning(self) -> None:
        assert stage_from_sf("Value Proposition", False) == "prospecting"
        assert stage_from_sf(None, None) == "prospecting"


class TestIds:
    @pytest.mark.parametrize(("value", "prefix", "expected"), [
        ("001Hs0000000001IAA", "001", True),
        ("001Hs0000000001", "001", True),
        ("006Hs0000000001IAA", "001", False),
        ("ACC-0001", None, False),
        ("001Hs0000000001IA", None, False),
        ("001Hs0000000001IAA' OR Name != '", None, False),
    ])
    def test_salesforce_id_shape(self, value: str, prefix: str | None, expected: bool) -> None:
        assert is_salesforce_id(value, prefix) is expected


class TestSoql:
    @pytest.mark.parametrize("value", ["O'Brien", "a\\' OR Name != '", "line\nbreak", "back\\slash", 'q"uote'])
    def test_literal_round_trips_through_the_parser(self, value: str) -> None:
        query = parse(f"SELECT Id FROM Account WHERE Name = {soql_literal(value)}", SCHEMA)
        assert query.where[0].value == value
        assert len(query.where) == 1  # the value never became a second condition

    def test_booleans_and_null(self) -> None:
        assert (soql_literal(True), soql_literal(False), soql_literal(None)) == ("true", "false", "null")

    def test_full_subset(self) -> None:
        query = parse("SELECT Id, Name FROM Opportunity WHERE IsWon = true AND Id > '006Hs0000000001IAA' "
                      "ORDER BY Id LIMIT 51", SCHEMA)
        assert query.sobject == "Opportunity"
        assert query.fields == ["Id", "Name"]
        assert query.limit == 51
        assert query.order_by == "Id"
        assert matches({"IsWon": True, "Id": "006Hs0000000002IAA"}, query.where)
        assert not matches({"IsWon": True, "Id": "006Hs0000000001IAA"}, query.where)
        assert not matches({"IsWon": False, "Id": "006Hs0000000009IAA"}, query.where)

    def test_text_equality_ignores_case_like_salesforce(self) -> None:
        query = parse("SELECT Id FROM Account WHERE External_Id__c = 'acc-0001'", SCHEMA)
        assert matches({EXTERNAL_ID_FIELD: "ACC-0001"}, query.where)

    @pytest.mark.parametrize(("soql", "code"), [
        ("SELECT Id FROM Lead", "INVALID_TYPE"),
        ("SELECT Id, Secret__c FROM Account", "INVALID_FIELD"),
        ("SELECT Id FROM Account WHERE Bogus = 'x'", "INVALID_FIELD"),
        ("SELECT Id FROM Account WHERE Name = 'x' OR Name = 'y'", "MALFORMED_QUERY"),
        ("DELETE FROM Account", "MALFORMED_QUERY"),
    ])
    def test_refusals_carry_salesforce_codes(self, soql: str, code: str) -> None:
        with pytest.raises(SoqlError) as caught:
            parse(soql, SCHEMA)
        assert caught.value.code == code
