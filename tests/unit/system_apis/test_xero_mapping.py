"""Xero records <-> canonical objects, and the grouping of summarised time (pure functions)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from contracts.billing import CreditMemoUpsert, InvoiceLine, InvoiceUpsert, TimePostingLine
from contracts.common import Money
from system_apis.xero._summary import minutes, summary_key
from system_apis.xero.mapping import (
    MappingError,
    credit_memo_from_note,
    credit_note_from_upsert,
    invoice_from_record,
    invoice_from_upsert,
    legal_entity_from_organisation,
    month_periods,
    project_external_id,
    project_from_record,
    xero_date,
)

GBP = "GBP"


def _money(value: str) -> Money:
    return Money(amount=Decimal(value), currency=GBP)


def _line(key: str, **changes: object) -> TimePostingLine:
    fields: dict[str, object] = {"line_key": key, "project_external_id": "PRJ-1", "employee_external_id": "W-1",
                                 "date": dt.date(2026, 10, 5), "hours": "7.5", "rate": _money("150"),
                                 "amount": _money("1125.00"), "billable": True, **changes}
    return TimePostingLine(**fields)  # type: ignore[arg-type]


class TestDates:
    def test_accounting_ms_dates_and_iso_dates_read_alike(self) -> None:
        assert xero_date("/Date(1539993600000+0000)/") == dt.date(2018, 10, 20)
        assert xero_date("2026-10-31T00:00:00Z") == dt.date(2026, 10, 31)

    def test_anything_else_is_a_mapping_error(self) -> None:
        with pytest.raises(MappingError):
            xero_date("yesterday")


class TestOrganisation:
    def test_the_tenant_is_the_legal_entity_and_the_lock_date_closes_periods(self) -> None:
        org = {"Name": "Meridian Advisory Pty Ltd", "CountryCode": "AU", "BaseCurrency": "AUD",
               "TaxNumber": "ABN 51 824 753 556", "PeriodLockDate": "/Date(1788134400000+0000)/"}
        entity = legal_entity_from_organisation(org, code="AU01", tenant="t-1")
        assert (entity.id, entity.code, entity.currency, entity.requires_customer_tax_id) == ("t-1", "AU01", "AUD",
                                                                                              False)
        periods = month_periods(org, tenant="t-1", through=dt.date(2026, 11, 2))
        assert [p.id for p in periods if p.is_closed][-1] == "t-1:2026-08"
        assert not next(p for p in periods if p.id == "t-1:2026-09").is_closed


class TestProjects:
    def test_the_external_id_travels_in_the_name_and_rate_tasks_are_not_planning_tasks(self) -> None:
        record = {"projectId": "p-1", "contactId": "c-1", "name": "PRJ-1 · Finance transformation",
                  "currencyCode": GBP, "status": "INPROGRESS", "estimate": {"currency": GBP, "value": 5000},
                  "deadlineUtc": "2026-12-31T00:00:00Z"}
        tasks = [{"name": "Discovery", "estimateMinutes": 2400}, {"name": "Time @ 150.00 GBP", "estimateMinutes": 0}]
        project = project_from_record(record, tasks, tenant="t-1")
        assert (project.external_id, project.name, project.status) == ("PRJ-1", "Finance transformation", "active")
        assert [(t.name, t.planned_hours) for t in project.tasks] == [("Discovery", "40")]
        assert project.budget == _money("5000") and project.end_date == dt.date(2026, 12, 31)

    def test_a_project_made_by_hand_has_no_external_id(self) -> None:
        assert project_external_id({"name": "Website refresh"}) is None
        with pytest.raises(MappingError):
            project_from_record({"projectId": "p", "name": "Website refresh"}, [], tenant="t")


class TestDocuments:
    def test_an_invoice_round_trips_kind_period_and_project(self) -> None:
        lines = [InvoiceLine(kind="time", description="October", quantity="10", unit_price=_money("150"),
                             amount=_money("1500")),
                 InvoiceLine(kind="milestone", description="M1", quantity="1", unit_price=_money("2000"),
                             amount=_money("2000"))]
        data = InvoiceUpsert(customer_id="c-1", project_external_id="PRJ-1", legal_entity_id="t-1", period="2026-10",
                             currency=GBP, lines=lines)
        body = invoice_from_upsert("INV-1", data, invoice_id=None, date=dt.date(2026, 10, 31))
        assert body["Reference"] == "PRJ-1 2026-10" and body["Date"] == "2026-10-31"
        assert [ln["AccountCode"] for ln in body["LineItems"]] == ["4000", "4010"]
        read = invoice_from_record({**body, "InvoiceID": "i-1", "Date": "/Date(1793404800000+0000)/"}, tenant="t-1")
        assert [ln.kind for ln in read.lines] == ["time", "milestone"]
        assert (read.project_external_id, read.period, read.total) == ("PRJ-1", "2026-10", _money("3500"))

    def test_a_credit_note_is_positive_in_xero_and_negative_again_when_read(self) -> None:
        data = CreditMemoUpsert(customer_id="c-1", project_external_id="PRJ-1", legal_entity_id="t-1",
                                period="2026-10", currency=GBP, invoice_external_id="INV-1", reason="reversal",
                                lines=[InvoiceLine(kind="credit", description="reversal", quantity="-2.5",
                                                   unit_price=_money("150"), amount=_money("-375.00"))])
        body = credit_note_from_upsert("CM-1", data, credit_note_id=None, date=dt.date(2026, 10, 31))
        assert body["LineItems"][0]["LineAmount"] == Decimal("375.00") and body["LineItems"][0]["Quantity"] == 2.5
        memo = credit_memo_from_note({**body, "CreditNoteID": "cn-1"})
        assert memo.lines[0].amount == _money("-375.00") and memo.lines[0].quantity == "-2.5"
        assert (memo.invoice_external_id, memo.total) == ("INV-1", _money("-375.00"))

    def test_a_document_without_our_reference_is_a_mapping_error(self) -> None:
        with pytest.raises(MappingError):
            invoice_from_record({"InvoiceID": "i", "InvoiceNumber": "INV-9", "Reference": "typed by hand",
                                 "CurrencyCode": GBP}, tenant="t")


class TestSummaries:
    @pytest.mark.parametrize(("hours", "expected"), [("7.5", 450), ("0.25", 15), ("-1.5", -90), ("0.333", None)])
    def test_hours_become_whole_minutes_or_nothing(self, hours: str, expected: int | None) -> None:
        assert minutes(hours) == expected

    def test_lines_group_per_project_worker_rate_billable_and_month(self) -> None:
        base = summary_key("b-1", _line("a"))
        assert summary_key("b-1", _line("b", date=dt.date(2026, 10, 20), hours="1")) == base
        for changed in ({"employee_external_id": "W-2"}, {"project_external_id": "PRJ-2"},
                        {"rate": _money("175")}, {"billable": False}, {"date": dt.date(2026, 11, 2)}):
            assert summary_key("b-1", _line("c", **changed)) != base
        assert summary_key("b-2", _line("a")) != base
