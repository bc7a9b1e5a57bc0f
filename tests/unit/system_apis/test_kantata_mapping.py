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
