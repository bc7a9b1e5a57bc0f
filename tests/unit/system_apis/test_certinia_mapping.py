"""Certinia records <-> canonical objects, and the SOQL subset the platform simulators share (IN, parent paths)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from contracts.common import Money
from contracts.psa import PsaMilestone, PsaProjectUpsert
from system_apis._internal.force_soql import SoqlError, matches, parse
from system_apis.certinia.mapping import (
    MappingError,
    day_entries,
    milestone_key,
    project_fields,
    project_of,
    rate_cards_of,
    role_key,
    role_name,
    submission_of,
    uninvoiced_of,
)


def timecard(**fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "Id": "a0tCa0000000001IAA", "pse__Resource__c": "003Ca0000000001IAA",
        "pse__Resource__r": {"attributes": {"type": "Contact"}, "Email": "ana@meridian.example"},
        "pse__Project__r": {"External_Id__c": "PRJ-A0001", "Name": "Delivery 1"},
        "pse__Assignment__r": {"pse__Role__c": "Senior Consultant", "pse__Bill_Rate__c": Decimal("180.5")},
        "pse__Start_Date__c": "2026-09-28", "pse__End_Date__c": "2026-10-04", "pse__Monday_Hours__c": Decimal("8"),
        "pse__Tuesday_Hours__c": 0, "pse__Wednesday_Hours__c": None, "pse__Thursday_Hours__c": Decimal("7.5"),
        "pse__Friday_Hours__c": Decimal("4"), "pse__Saturday_Hours__c": 0, "pse__Sunday_Hours__c": Decimal("1"),
        "pse__Status__c": "Approved", "pse__Billable__c": True, "pse__Billed__c": False, "CurrencyIsoCode": "CAD",
        "LastModifiedDate": "2026-10-05T18:00:00.000+0000"}
    record.update(fields)
    return record


class TestTimecards:
    def test_a_week_becomes_one_entry_per_day_with_hours(self) -> None:
        entries = day_entries(timecard())
        assert [(e.date.isoformat(), e.hours) for e in entries] == [
            ("2026-09-28", Decimal("8")), ("2026-10-01", Decimal("7.5")), ("2026-10-02", Decimal("4")),
            ("2026-10-04", Decimal("1"))]
        first = entries[0]
        assert first.id == "a0tCa0000000001IAA-20260928" and first.source == "certinia"
        assert first.user_email == "ana@meridian.example" and first.project_code == "PRJ-A0001"
        assert first.status == "approved" and first.task == "senior_consultant"
        assert first.billable_rate == Money(amount=Decimal("180.50"), currency="CAD")
        assert first.updated_at == dt.datetime(2026, 10, 5, 18, tzinfo=dt.UTC) == first.approved_at

    @pytest.mark.parametrize(("status", "canonical"), [("Saved", "draft"), ("Submitted", "submitted"),
                                                       ("Approved", "approved"), ("Rejected", "rejected")])
    def test_status(self, status: str, canonical: str) -> None:
        assert {e.status for e in day_entries(timecard(pse__Status__c=status))} == {canonical}

    def test_non_billable_time_carries_no_rate_and_unknown_status_is_refused(self) -> None:
        assert all(e.billable_rate is None for e in day_entries(timecard(pse__Billable__c=False)))
        with pytest.raises(MappingError):
            day_entries(timecard(pse__Status__c="Draft-ish"))

    def test_submission_lists_its_day_entries(self) -> None:
        submission = submission_of(timecard(pse__Status__c="Submitted"))
        assert submission.status == "pending" and submission.decided_at is None
        assert submission.period_start == dt.date(2026, 9, 28) and submission.period_end == dt.date(2026, 10, 4)
        assert len(submission.time_entry_ids) == 4
        with pytest.raises(MappingError):
            submission_of(timecard(pse__Status__c="Saved"))

    def test_uninvoiced_counts_only_approved_billable_unbilled_days_in_range(self) -> None:
        rows = uninvoiced_of([timecard(), timecard(Id="a0tCa0000000002IAA", pse__Billed__c=True),
                              timecard(Id="a0tCa0000000003IAA", pse__Billable__c=False),
                              timecard(Id="a0tCa0000000004IAA", pse__Status__c="Submitted")],
                             dt.date(2026, 10, 1), dt.date(2026, 10, 31))
        assert len(rows) == 1
        assert rows[0].uninvoiced_hours == Decimal("12.5")  # Thursday, Friday, Sunday of the week
        assert rows[0].uninvoiced_amount == Money(amount=Decimal("2256.25"), currency="CAD")


class TestProjectsAndCards:
    def test_project_reads_stage_billing_and_rolled_up_budget(self) -> None:
        project = project_of({"Id": "a0lCa0000000001IAA", "Name": "P", "External_Id__c": "PRJ-1",
                              "pse__Account__r": {"Name": "Client"}, "pse__Stage__c": "Completed",
                              "pse__Billing_Type__c": "Fixed Price", "pse__Bookings__c": Decimal("1000.0"),
                              "CurrencyIsoCode": "CAD", "pse__Start_Date__c": "2026-01-01"},
                             [{"Name": "B", "pse__Target_Date__c": "2026-03-01", "pse__Milestone_Amount__c": 5},
                              {"Name": "A", "pse__Target_Date__c": "2026-02-01", "pse__Milestone_Amount__c": None}])
        assert (project.status, project.billing_terms, project.client_name) == ("completed", "fixed_fee", "Client")
        assert project.budget == Money(amount=Decimal("1000.00"), currency="CAD")
        assert [m.name for m in project.milestones] == ["A", "B"]
        assert project.milestones[1].amount == Money(amount=Decimal("5.00"), currency="CAD")

    def test_milestone_priced_in_another_currency_is_refused(self) -> None:
        data = PsaProjectUpsert(title="T", client_name="C", budget=Money(amount=Decimal(1), currency="CAD"),
                                billing_terms="fixed_fee",
                                milestones=[PsaMilestone(name="M", due_date=dt.date(2026, 1, 1),
                                                         amount=Money(amount=Decimal(1), currency="USD"))])
        with pytest.raises(MappingError) as caught:
            project_fields(data, account_id=None)
        assert caught.value.field == "/milestones/0/amount/currency"

    def test_milestone_key_is_stable_and_distinct(self) -> None:
        day = dt.date(2026, 12, 1)
        assert milestone_key("PRJ-1", "Go-live", day) == milestone_key("PRJ-1", " go-live ", day)
        assert milestone_key("PRJ-1", "Go-live", day) != milestone_key("PRJ-1", "Go-live", dt.date(2026, 12, 2))

    def test_role_rates_group_into_cards(self) -> None:
        region = {"External_Id__c": "CA01"}
        cards = rate_cards_of([
            {"Name": "CA01 2026 - Analyst", "Rate_Card_Code__c": "RC-CA01-2026", "pse__Role__c": "Analyst",
             "pse__Suggested_Bill_Rate__c": Decimal("120"), "pse__Start_Date__c": "2026-01-01",
             "pse__End_Date__c": "2026-12-31", "pse__Region__r": region, "CurrencyIsoCode": "CAD"},
            {"Name": "CA01 2026 - Director", "Rate_Card_Code__c": "RC-CA01-2026", "pse__Role__c": "Director",
             "pse__Suggested_Bill_Rate__c": Decimal("300"), "pse__Start_Date__c": "2026-01-01",
             "pse__End_Date__c": "2026-12-31", "pse__Region__r": region, "CurrencyIsoCode": "CAD"},
            {"Name": "orphan", "Rate_Card_Code__c": None, "pse__Role__c": "Analyst"}])
        assert len(cards) == 1
        card = cards[0]
        assert (card.id, card.name, card.legal_entity_code, card.currency) == ("RC-CA01-2026", "CA01 2026", "CA01",
                                                                               "CAD")
        assert [(line.role, line.hourly_rate.amount) for line in card.lines] == [
            ("analyst", Decimal("120.00")), ("director", Decimal("300.00"))]
        assert role_key(role_name("senior_consultant")) == "senior_consultant"


class TestSoqlSubset:
    SCHEMA = {"T": frozenset({"Id", "Status", "pse__Project__r.External_Id__c", "LastModifiedDate"})}

    def test_in_list_and_parent_path(self) -> None:
        query = parse("SELECT Id FROM T WHERE Status IN ('Submitted', 'Approved') AND "
                      "pse__Project__r.External_Id__c = 'PRJ-1'", self.SCHEMA)
        assert matches({"Status": "Approved", "pse__Project__r.External_Id__c": "PRJ-1"}, query.where)
        assert not matches({"Status": "Saved", "pse__Project__r.External_Id__c": "PRJ-1"}, query.where)

    def test_datetime_literal_compares_in_time_order(self) -> None:
        query = parse("SELECT Id FROM T WHERE LastModifiedDate >= 2026-10-05T18:00:00Z", self.SCHEMA)
        assert matches({"LastModifiedDate": "2026-10-05T18:00:00.000+0000"}, query.where)
        assert not matches({"LastModifiedDate": "2026-10-05T17:59:59.999+0000"}, query.where)

    def test_unknown_parent_field_is_invalid_field(self) -> None:
        with pytest.raises(SoqlError) as caught:
            parse("SELECT pse__Project__r.Secret__c FROM T", self.SCHEMA)
        assert caught.value.code == "INVALID_FIELD"
