"""Kantata wire records <-> canonical PSA objects: exact money, status, billing terms, missing fields."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from contracts.common import Money
from contracts.psa import PsaMilestone, PsaProjectUpsert
from system_apis.kantata.client import filter_params
from system_apis.kantata.mapping import (
    MappingError,
    billing_terms_of,
    format_price,
    from_minor,
    milestone_key,
    milestone_to_story,
    project_to_workspace,
    status_of,
    story_to_milestone,
    to_minor,
    workspace_to_project,
)

WORKSPACE = {
    "id": "1201", "title": "Northwind — Strategy 2026", "description": "", "archived": False, "budgeted": True,
    "price_in_cents": 12_500_050, "price": "$125,000.50", "currency": "USD", "currency_base_unit": 100,
    "start_date": "2026-11-16", "due_date": "2027-03-16", "status": {"key": 310, "message": "Active",
                                                                     "color": "green"},
    "stories_are_fixed_fee_by_default": False, "workspace_group_ids": ["7"],
    "created_at": "2026-11-02T10:00:00.000Z", "updated_at": "2026-11-02T10:00:00.000Z",
}
REFS = [{"id": "9", "subject_type": "Workspace", "subject_id": "1201", "service_name": "psconnect",
         "service_model": "project", "service_model_ref": "OPP-0003"},
        {"id": "10", "subject_type": "Workspace", "subject_id": "1201", "service_name": "erp",
         "service_model": "project", "service_model_ref": "JOB-77"}]
GROUPS = [{"id": "7", "name": "Northwind Holdings", "company": True}]
STORIES: list[dict[str, Any]] = [
    {"id": "1", "workspace_id": "1201", "title": "Kick-off", "story_type": "milestone", "due_date": "2026-12-01",
     "fixed_fee": True, "budget_estimate_in_cents": 2_500_000},
    {"id": "2", "workspace_id": "1201", "title": "Analysis", "story_type": "task", "due_date": "2026-12-05"},
    {"id": "3", "workspace_id": "1201", "title": "Readout", "story_type": "milestone", "due_date": "2026-11-20",
     "fixed_fee": False, "budget_estimate_in_cents": None},
]


class TestWorkspaceToProject:
    def test_full_record(self) -> None:
        project = workspace_to_project(WORKSPACE, external_references=REFS, workspace_groups=GROUPS,
                                       stories=STORIES)
        assert project.id == "1201"
        assert project.external_id == "OPP-0003"
        assert project.erp_project_id == "JOB-77"
        assert project.client_name == "Northwind Holdings"
        assert project.budget == Money(amount=Decimal("125000.50"), currency="USD")
        assert project.status == "active"
        assert project.billing_terms == "mixed"
        assert project.start_date == dt.date(2026, 11, 16)
        # milestones only (the task is not one), ordered by due date; only fixed-fee ones carry an amount
        assert project.milestones == [
            PsaMilestone(name="Readout", due_date=dt.date(2026, 11, 20)),
            PsaMilestone(name="Kick-off", due_date=dt.date(2026, 12, 1),
                         amount=Money(amount=Decimal("25000.00"), currency="USD")),
        ]

    def test_missing_optional_fields(self) -> None:
        bare = {"id": "5", "title": "Internal", "currency": "EUR"}
        project = workspace_to_project(bare, external_references=[], workspace_groups=[], stories=[])
        assert project.budget == Money(amount=Decimal("0.00"), currency="EUR")
        assert (project.external_id, project.client_name, project.erp_project_id) == ("", "", None)
        assert project.start_date is None
        assert project.due_date is None
        assert project.milestones == []
        assert project.status == "active"
        assert project.billing_terms == "time_and_materials"

    def test_unbudgeted_workspace_has_zero_budget_even_with_a_price(self) -> None:
        project = workspace_to_project({**WORKSPACE, "budgeted": False}, external_references=[],
                                       workspace_groups=[], stories=[])
        assert project.budget.amount == Decimal("0.00")

    def test_zero_decimal_currency_uses_base_unit(self) -> None:
        project = workspace_to_project({**WORKSPACE, "currency": "JPY", "currency_base_unit": 1,
                                        "price_in_cents": 1_500_000}, external_references=[],
                                       workspace_groups=[], stories=[])
        assert project.budget == Money(amount=Decimal("1500000"), currency="JPY")

    def test_group_that_is_not_a_company_is_not_the_client(self) -> None:
        project = workspace_to_project(WORKSPACE, external_references=[], stories=[],
                                       workspace_groups=[{"id": "7", "name": "EMEA portfolio", "company": False}])
        assert project.client_name == ""


class TestStatus:
    @pytest.mark.parametrize(("status", "expected"), [
        ({"key": 110, "message": "Not Started", "color": "grey"}, "not_started"),
        ({"key": 999, "message": "Custom okay", "color": "light_green"}, "active"),
        ({"key": 345, "message": "At risk", "color": "red"}, "active"),
        ({"key": 510, "message": "Completed", "color": "blue"}, "completed"),
        ("Completed", "completed"),
        ("Not Started", "not_started"),
        (None, "active"),
    ])
    def test_status_by_colour_or_label(self, status: object, expected: str) -> None:
        assert status_of(status) == expected


class TestMoney:
    def test_round_trip_is_exact(self) -> None:
        money = Money(amount=Decimal("0.10"), currency="USD")
        assert to_minor(money) == 10
        assert from_minor(to_minor(money), "USD") == money

    def test_three_decimal_currency(self) -> None:
        assert to_minor(Money(amount=Decimal("1.234"), currency="KWD")) == 1234

    def test_sub_cent_amount_is_refused_not_rounded(self) -> None:
        with pytest.raises(MappingError) as info:
            to_minor(Money(amount=Decimal("10.005"), currency="USD"), "budget.amount")
        assert info.value.field == "budget.amount"

    def test_price_display_string(self) -> None:
        assert format_price(12_500_050, "USD") == "$125,000.50"
        assert format_price(100, "CHF") == "CHF 1.00"


UPSERT = PsaProjectUpsert(title="Contoso — Technology 2026", client_name="Contoso Holdings",
                          budget=Money(amount=Decimal("80000.00"), currency="GBP"), billing_terms="fixed_fee",
                          start_date=dt.date(2026, 12, 1), due_date=dt.date(2027, 3, 1),
                          milestones=[PsaMilestone(name="Design", due_date=dt.date(2027, 1, 15),
                                                   amount=Money(amount=Decimal("30000.00"), currency="GBP"))])


class TestProjectToWorkspace:
    def test_attributes(self) -> None:
        attrs = project_to_workspace(UPSERT, workspace_group_id="7")
        assert attrs == {"title": UPSERT.title, "budgeted": True, "currency": "GBP", "price": "80000.00",
                         "start_date": "2026-12-01", "due_date": "2027-03-01",
                         "stories_are_fixed_fee_by_default": True, "workspace_group_ids": ["7"]}
        assert not any(isinstance(v, float) for v in attrs.values())

    def test_due_before_start_is_refused(self) -> None:
        bad = PsaProjectUpsert(**{**{f: getattr(UPSERT, f) for f in UPSERT.__struct_fields__},
                                  "due_date": dt.date(2026, 1, 1)})
        with pytest.raises(MappingError, match="due_date"):
            project_to_workspace(bad, workspace_group_id=None)

    def test_milestone_round_trip(self) -> None:
        story = milestone_to_story(UPSERT.milestones[0], "1201", currency="GBP", terms="fixed_fee")
        assert story == {"workspace_id": "1201", "title": "Design", "story_type": "milestone",
                         "due_date": "2027-01-15", "fixed_fee": True, "budget_estimate_in_cents": 3_000_000}
        assert story_to_milestone(story, "GBP") == UPSERT.milestones[0]

    def test_milestone_in_another_currency_is_refused(self) -> None:
        milestone = PsaMilestone(name="X", due_date=dt.date(2027, 1, 1),
                                 amount=Money(amount=Decimal("1.00"), currency="USD"))
        with pytest.raises(MappingError) as info:
            milestone_to_story(milestone, "1", currency="GBP", terms="mixed", index=2)
        assert info.value.field == "milestones[2].amount.currency"

    def test_billing_terms_survive_the_round_trip(self) -> None:
        for terms in ("time_and_materials", "fixed_fee", "mixed"):
            ws = {"stories_are_fixed_fee_by_default": terms == "fixed_fee"}
            stories = [milestone_to_story(m, "1", currency="GBP", terms=terms) for m in UPSERT.milestones]
            assert billing_terms_of(ws, stories) == terms

    def test_milestone_key_ignores_case_and_time(self) -> None:
        assert milestone_key(" Design ", "2027-01-15T00:00:00Z") == milestone_key("design", dt.date(2027, 1, 15))


class TestFilterParams:
    def test_false_boolean_filters_are_never_sent(self) -> None:
        assert filter_params({"archived": False, "company": True, "only": ["1", "2"], "search": None}) == \
            {"company": "true", "only": "1,2"}


class TestDeliveryMapping:
    """Staffing, rate cards, users, time and timesheets (system_apis/kantata/_delivery_mapping.py)."""

    def test_role_names_round_trip(self) -> None:
        from system_apis.kantata._delivery_mapping import role_key, role_name
        for key in ("analyst", "senior_consultant", "director"):
            assert role_key(role_name(key)) == key
        assert role_key("  Senior   Consultant ") == "senior_consultant"

    def test_minutes_and_hours_are_exact(self) -> None:
        from system_apis.kantata._delivery_mapping import hours_of, minutes_of
        assert hours_of(330) == Decimal("5.5") and hours_of(None) == Decimal(0)
        assert minutes_of(Decimal("6.5")) == 390
        with pytest.raises(MappingError):
            minutes_of(Decimal("0.001"))

    def test_rate_card_uses_the_version_in_force_and_its_references(self) -> None:
        from system_apis.kantata._delivery_mapping import rate_card_of
        card = {"id": "5", "title": "US01 standard rates 2026", "currency": "USD"}
        refs = [{"service_name": "psconnect", "service_model": "rate_card", "service_model_ref": "RC-US01-2026"},
                {"service_name": "erp", "service_model": "legal_entity", "service_model_ref": "US01"}]
        versions = [{"id": "6", "effective_date": "2026-01-01"}, {"id": "7", "effective_date": "2027-01-01"}]
        rates: list[tuple[dict[str, Any], dict[str, Any] | None]] = [
            ({"rate_card_version_id": "6", "rate": 27500}, {"name": "Senior Consultant"}),
            ({"rate_card_version_id": "7", "rate": 29000}, {"name": "Senior Consultant"})]
        got = rate_card_of(card, refs=refs, versions=versions, rates=rates, on=dt.date(2026, 10, 1))
        assert (got.id, got.legal_entity_code, got.valid_from, got.valid_to) == \
            ("RC-US01-2026", "US01", dt.date(2026, 1, 1), dt.date(2026, 12, 31))
        assert [(line.role, line.hourly_rate.amount) for line in got.lines] == \
            [("senior_consultant", Decimal("275.00"))]
        unref = rate_card_of(card, refs=[], versions=versions[:1], rates=[], on=dt.date(2026, 10, 1))
        assert (unref.id, unref.legal_entity_code, unref.valid_to, unref.lines) == ("5", "", None, [])
        with pytest.raises(MappingError):
            rate_card_of(card, refs=refs, versions=[], rates=[])

    def test_time_entry_status_from_approval_and_submission(self) -> None:
        from system_apis.kantata._delivery_mapping import time_entry_of
        entry = {"id": "9", "user_id": "3", "workspace_id": "4", "date_performed": "2026-10-05", "time_in_minutes": 90,
                 "billable": True, "approved": False, "rate_in_cents": 21000, "updated_at": "2026-10-06T10:00:00.000Z"}
        common: dict[str, Any] = {"user": {"email_address": "a@b.example"}, "workspace": {"currency": "GBP"},
                                  "story": None, "project_code": "PRJ-A0002"}
        assert time_entry_of(entry, submission=None, **common).status == "draft"
        assert time_entry_of(entry, submission={"status": "pending"}, **common).status == "submitted"
        assert time_entry_of(entry, submission={"status": "rejected"}, **common).status == "rejected"
        done = time_entry_of({**entry, "approved": True},
                             submission={"status": "approved", "resolved_at": "2026-10-09T18:00:00.000Z"}, **common)
        assert (done.status, done.hours, done.billable_rate) == \
            ("approved", Decimal("1.5"), Money(amount=Decimal("210.00"), currency="GBP"))
        assert done.approved_at == dt.datetime(2026, 10, 9, 18, tzinfo=dt.UTC)
        internal = time_entry_of({**entry, "billable": False}, submission=None, **common)
        assert internal.billable_rate is None and internal.task is None

    def test_user_attributes_round_trip(self) -> None:
        from contracts.workforce import PsaUserUpsert
        from system_apis.kantata._delivery_mapping import psa_user_of, user_attributes
        data = PsaUserUpsert(name="Ana Ahmed", email="ana@meridian.example", role="manager", practice="strategy",
                             cost_rate=Money(amount=Decimal("142.80"), currency="EUR"), active=False)
        attrs = user_attributes(data)
        assert attrs["headline"] == "Manager" and attrs["disabled"] is True
        got = psa_user_of({"id": "77", **attrs}, external_id="W-00001")
        assert (got.name, got.email, got.role, got.practice, got.cost_rate, got.active) == \
            (data.name, data.email, data.role, data.practice, data.cost_rate, data.active)
        bare = psa_user_of({"id": "78", "full_name": "X", "headline": "Senior Consultant"}, external_id="W-2")
        assert (bare.role, bare.active, bare.cost_rate.amount) == ("senior_consultant", True, Decimal("0.00"))

    def test_submission_and_assignment(self) -> None:
        from system_apis.kantata._delivery_mapping import assignment_of, submission_of
        sub = submission_of({"id": "1", "status": "approved", "start_date": "2026-10-05", "end_date": "2026-10-11",
                             "time_entry_ids": [5, 6], "resolved_at": "2026-10-12T09:00:00Z"},
                            user={"email_address": "a@b.example"}, project_external_id="PRJ-A0001")
        assert (sub.time_entry_ids, sub.decided_at) == (["5", "6"], dt.datetime(2026, 10, 12, 9, tzinfo=dt.UTC))
        with pytest.raises(MappingError):
            submission_of({"id": "2", "status": "canceled", "start_date": "2026-10-05", "end_date": "2026-10-11"},
                          user=None, project_external_id="")
        allocations = [{"start_date": "2026-06-01", "end_date": "2026-08-31", "minutes": 4800},
                       {"start_date": "2026-09-01", "end_date": "2027-03-31", "minutes": 2400}]
        got = assignment_of({"id": "8", "label": "Analyst"}, user=None, role=None, allocations=allocations,
                            project_external_id="PRJ-A0001", worker_id=None)
        assert (got.role, got.start_date, got.end_date, got.planned_hours) == \
            ("analyst", dt.date(2026, 6, 1), dt.date(2027, 3, 31), Decimal("120"))
        with pytest.raises(MappingError):
            assignment_of({"id": "9"}, user=None, role=None, allocations=[], project_external_id="", worker_id=None)
