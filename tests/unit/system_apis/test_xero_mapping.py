"""Xero records <-> canonical objects, and the grouping of summarised time (pure functions)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec
import pytest

from contracts.billing import CreditMemoUpsert, InvoiceLine, InvoiceUpsert, PaymentUpsert, TimePostingLine
from contracts.common import Money
from system_apis.xero._summary import minutes, summary_key
from system_apis.xero.client import if_modified_since
from system_apis.xero.mapping import (
    MappingError,
    credit_memo_from_note,
    credit_note_from_upsert,
    due_date,
    invoice_from_record,
    invoice_from_upsert,
    invoice_status,
    legal_entity_from_organisation,
    month_periods,
    payment_from_record,
    payment_from_upsert,
    project_external_id,
    project_from_record,
    xero_date,
    xero_instant,
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
        with pytest.raises(MappingError):
            xero_instant("yesterday")

    def test_updated_date_utc_keeps_its_milliseconds_and_is_utc(self) -> None:
        assert xero_instant("/Date(1573755038314+0000)/") == dt.datetime(2019, 11, 14, 18, 10, 38, 314000,
                                                                          tzinfo=dt.UTC)
        assert xero_instant("2026-11-20T10:00:00") == dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC)
        assert xero_instant("2026-11-20T12:00:00+02:00") == dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC)

    def test_if_modified_since_is_utc_to_the_second_rounded_down(self) -> None:
        instant = dt.datetime(2026, 11, 20, 12, 0, 5, 999000, tzinfo=dt.timezone(dt.timedelta(hours=2)))
        assert if_modified_since(instant) == "2026-11-20T10:00:05"
        assert if_modified_since(dt.datetime(2026, 11, 20, 10, 0, 5)) == "2026-11-20T10:00:05"


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


def _record(status: str, **fields: object) -> dict[str, object]:
    return {"InvoiceID": "i-1", "InvoiceNumber": "INV-1", "Type": "ACCREC", "Reference": "PRJ-1 2026-10",
            "CurrencyCode": GBP, "Contact": {"ContactID": "c-1"}, "Status": status,
            "LineItems": [{"Description": "October", "Quantity": Decimal("1"), "UnitAmount": Decimal("1000.00"),
                           "LineAmount": Decimal("1000.00"), "AccountCode": "4000"}],
            "AmountPaid": Decimal("0.00"), "AmountCredited": Decimal("0.00"), "AmountDue": Decimal("1000.00"),
            "Date": "/Date(1793404800000+0000)/", "DueDate": "/Date(1795996800000+0000)/",
            "UpdatedDateUTC": "/Date(1795610096123+0000)/", **fields}


class TestInvoiceStatus:
    @pytest.mark.parametrize(("status", "fields", "expected"), [
        ("DRAFT", {}, "draft"),
        ("SUBMITTED", {}, "draft"),  # awaiting approval: not in the ledger yet
        ("AUTHORISED", {}, "posted"),
        ("AUTHORISED", {"SentToContact": True}, "sent"),
        ("AUTHORISED", {"SentToContact": True, "AmountPaid": Decimal("400.00")}, "partially_paid"),
        ("AUTHORISED", {"AmountCredited": Decimal("400.00"), "AmountDue": Decimal("600.00")}, "posted"),
        ("PAID", {"AmountPaid": Decimal("1000.00"), "AmountDue": Decimal("0.00")}, "paid"),
        ("PAID", {"AmountPaid": Decimal("300.00"), "AmountCredited": Decimal("700.00"), "AmountDue": 0}, "paid"),
        ("PAID", {"AmountCredited": Decimal("1000.00"), "AmountDue": Decimal("0.00")}, "credited"),
        ("VOIDED", {}, "void"),
        ("DELETED", {}, "void"),  # a deleted draft
    ])
    def test_each_xero_status_is_a_canonical_one(self, status: str, fields: dict[str, object], expected: str) -> None:
        assert invoice_status(_record(status, **fields)) == expected
        assert invoice_from_record(_record(status, **fields), tenant="t-1").status == expected

    def test_an_unknown_status_is_a_mapping_error(self) -> None:
        with pytest.raises(MappingError):
            invoice_status(_record("ARCHIVED"))

    def test_amounts_dates_and_the_last_change_come_from_xeros_record(self) -> None:
        invoice = invoice_from_record(_record("AUTHORISED", AmountPaid=Decimal("250.00"), AmountCredited=Decimal(
            "100.00"), AmountDue=Decimal("650.00")), tenant="t-1")
        assert (invoice.total, invoice.amount_paid, invoice.amount_due) == (
            _money("1000.00"), _money("250.00"), _money("650.00"))  # a credit lowers what is due, not what is paid
        assert (invoice.issue_date, invoice.due_date) == (dt.date(2026, 10, 31), dt.date(2026, 11, 30))
        assert invoice.updated_at == dt.datetime(2026, 11, 25, 12, 34, 56, 123000, tzinfo=dt.UTC)

    def test_a_void_invoice_owes_nothing_and_a_draft_owes_its_total(self) -> None:
        assert invoice_from_record(_record("VOIDED"), tenant="t").amount_due == _money("0.00")
        draft = invoice_from_record(_record("DRAFT", AmountDue=None, AmountPaid=None), tenant="t")
        assert (draft.amount_paid, draft.amount_due) == (_money("0"), _money("1000.00"))


class TestPaymentTerms:
    @pytest.mark.parametrize(("terms", "expected"), [
        (None, dt.date(2026, 11, 30)),
        ({"Day": 14, "Type": "DAYSAFTERBILLDATE"}, dt.date(2026, 11, 14)),
        ({"Day": 10, "Type": "DAYSAFTERBILLMONTH"}, dt.date(2026, 11, 10)),
        ({"Day": 20, "Type": "OFFOLLOWINGMONTH"}, dt.date(2026, 11, 20)),
        ({"Day": 31, "Type": "OFFOLLOWINGMONTH"}, dt.date(2026, 11, 30)),  # past the month's end: its last day
        ({"Day": 15, "Type": "OFCURRENTMONTH"}, dt.date(2026, 10, 31)),  # never before the invoice date
    ])
    def test_xeros_sales_terms_give_the_due_date(self, terms: dict[str, object] | None, expected: dt.date) -> None:
        assert due_date(dt.date(2026, 10, 31), terms) == expected

    def test_an_unknown_terms_type_is_a_mapping_error(self) -> None:
        with pytest.raises(MappingError):
            due_date(dt.date(2026, 10, 31), {"Day": 1, "Type": "WHENEVER"})


class TestPayments:
    def test_the_reference_carries_the_external_id_and_reads_back(self) -> None:
        data = PaymentUpsert(invoice_external_id="INV-1", legal_entity_id="t-1", date=dt.date(2026, 11, 20),
                             amount=_money("400.00"), reference="remittance 1")
        body = payment_from_upsert("PAY-1", data, invoice_id="i-1", account_code="090")
        assert body == {"Invoice": {"InvoiceID": "i-1"}, "Account": {"Code": "090"}, "Date": "2026-11-20",
                        "Amount": Decimal("400.00"), "Reference": "PAY-1 remittance 1"}
        record = {**body, "PaymentID": "p-1", "Date": "/Date(1795132800000+0000)/",
                  "Invoice": {"InvoiceID": "i-1", "InvoiceNumber": "INV-1", "CurrencyCode": GBP}}
        payment = payment_from_record(record, tenant="t-1")
        assert (payment.id, payment.external_id, payment.invoice_external_id, payment.date, payment.amount,
                payment.reference) == ("p-1", "PAY-1", "INV-1", dt.date(2026, 11, 20), _money("400.00"),
                                       "remittance 1")
        bare = payment_from_upsert("PAY-2", msgspec.structs.replace(data, reference=None), invoice_id="i-1",
                                   account_code="090")
        assert bare["Reference"] == "PAY-2"
        assert payment_from_record({**record, "Reference": "PAY-2"}, tenant="t-1").reference is None

    def test_a_payment_made_in_xero_without_a_reference_is_a_mapping_error(self) -> None:
        with pytest.raises(MappingError):
            payment_from_record({"PaymentID": "p", "Invoice": {"InvoiceNumber": "INV-1", "CurrencyCode": GBP}},
                                tenant="t")


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
