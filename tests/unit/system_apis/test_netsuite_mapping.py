"""NetSuite records <-> canonical ERP objects: round trips, optional fields, malformed records."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from contracts.billing import InvoiceLine, InvoiceUpsert, PaymentUpsert, TimePostingBatch, TimePostingLine
from contracts.common import Money
from contracts.crm import Address
from contracts.erp import (
    AccountingPeriod,
    BillingMilestone,
    BillingSchedule,
    CustomerUpsert,
    ErpProjectUpsert,
    LegalEntity,
    ProjectTask,
)
from contracts.workforce import EmployeeUpsert
from system_apis.netsuite._billing_mapping import (
    batch_to_record,
    employee_from_record,
    employee_to_record,
    invoice_from_record,
    invoice_to_record,
    posted_time_from_row,
    posting_result_from_record,
)
from system_apis.netsuite._queries import applications_query, exchange_rate_query
from system_apis.netsuite._receivables_mapping import (
    NOTHING_APPLIED,
    Applied,
    applications_from_rows,
    payment_from_record,
    payment_terms_days,
    payment_to_record,
    rate_from_rows,
)
from system_apis.netsuite.client import decode, encode
from system_apis.netsuite.mapping import (
    MappingError,
    accounting_period_to_record,
    customer_from_record,
    customer_to_record,
    format_instant,
    legal_entity_to_subsidiary,
    period_from_record,
    project_from_record,
    project_to_record,
    subsidiary_from_record,
)


def _as_vendor_stores(record: dict[str, Any], internal_id: str) -> dict[str, Any]:
    """What NetSuite gives back for a body we sent: same fields plus its internal id, via real JSON."""
    return {**decode(encode(record)), "id": internal_id}


def _project(**changes: Any) -> ErpProjectUpsert:
    fields: dict[str, Any] = {
        "name": "Northwind — Strategy 2026", "customer_id": "1001", "legal_entity_id": "2", "currency": "GBP",
        "budget": Money(amount=Decimal("123456.78"), currency="GBP"),
        "start_date": dt.date(2026, 11, 16), "end_date": dt.date(2027, 3, 16),
        "tasks": [ProjectTask(name="Discovery", planned_hours="40"),
                  ProjectTask(name="Delivery", planned_hours="312.5")],
        "billing": BillingSchedule(billing_type="fixed_fee", payment_terms_days=45, milestones=[
            BillingMilestone(name="Kick-off", due_date=dt.date(2026, 12, 1),
                             amount=Money(amount=Decimal("61728.39"), currency="GBP"))]),
    }
    fields.update(changes)
    return ErpProjectUpsert(**fields)


class TestSubsidiary:
    def test_round_trip_keeps_everything_but_the_id(self) -> None:
        entity = LegalEntity(id="LE-UK01", code="UK01", name="Meridian Advisory Ltd", country="GB", currency="GBP",
                             tax_regime="uk_vat", tax_registration="GB123456789", requires_customer_tax_id=True)
        record = legal_entity_to_subsidiary(entity, "2")
        assert record["externalId"] == "LE-UK01"
        back = subsidiary_from_record(record)
        assert back.id == "2"
        assert back == LegalEntity(**{**{f: getattr(entity, f) for f in entity.__struct_fields__}, "id": "2"})

    def test_currency_falls_back_to_internal_id_without_ref_name(self) -> None:
        record = legal_entity_to_subsidiary(LegalEntity(
            id="LE-DE01", code="DE01", name="GmbH", country="DE", currency="EUR", tax_regime="eu_vat",
            tax_registration="DE1", requires_customer_tax_id=True), "3")
        record["currency"] = {"id": "4"}
        assert subsidiary_from_record(record).currency == "EUR"

    def test_missing_code_is_a_mapping_error(self) -> None:
        with pytest.raises(MappingError, match="custrecord_psc_code"):
            subsidiary_from_record({"id": "9", "name": "x", "country": "US", "currency": {"refName": "USD"},
                                    "custrecord_psc_tax_regime": "us_sales_tax"})


class TestCustomer:
    def test_round_trip_with_address(self) -> None:
        data = CustomerUpsert(name="Contoso Holdings", legal_entity_id="2", currency="GBP", tax_id="GB987654321",
                              billing_address=Address(street="12 Market Street", city="London",
                                                      postal_code="EC1A 1BB", country="GB"))
        sent = customer_to_record("ACC-0002", data)
        assert sent["externalId"] == "ACC-0002"
        assert sent["subsidiary"] == {"id": "2"}
        customer = customer_from_record(_as_vendor_stores(sent, "1001"))
        assert (customer.id, customer.external_id, customer.name) == ("1001", "ACC-0002", "Contoso Holdings")
        assert (customer.legal_entity_id, customer.currency, customer.tax_id) == ("2", "GBP", "GB987654321")
        assert customer.billing_address == data.billing_address

    def test_optional_fields_absent(self) -> None:
        customer = customer_from_record({"id": "7", "externalId": "ACC-9", "companyName": "Lone",
                                         "subsidiary": {"id": "1"}, "currency": {"refName": "USD"}})
        assert customer.tax_id is None
        assert customer.billing_address is None

    def test_empty_vat_number_reads_as_no_tax_id(self) -> None:
        sent = customer_to_record("ACC-1", CustomerUpsert(name="A", legal_entity_id="1", currency="USD"))
        assert customer_from_record(_as_vendor_stores(sent, "5")).tax_id is None

    def test_unexpanded_address_book_reads_as_no_address(self) -> None:
        record = {"id": "7", "externalId": "ACC-9", "companyName": "Lone", "subsidiary": {"id": "1"},
                  "currency": {"refName": "USD"}, "addressBook": {"links": [{"rel": "self", "href": "x"}]}}
        assert customer_from_record(record).billing_address is None

    def test_customer_without_external_id_is_refused(self) -> None:
        with pytest.raises(MappingError, match="externalId"):
            customer_from_record({"id": "7", "companyName": "Made by hand", "subsidiary": {"id": "1"},
                                  "currency": {"refName": "USD"}})


class TestProject:
    def test_round_trip_keeps_money_tasks_and_milestones_exact(self) -> None:
        data = _project()
        sent = project_to_record("OPP-0001", data)
        assert sent["custentity_psc_budget_amount"] == "123456.78"
        assert sent["startDate"] == "2026-11-16"
        stored = _as_vendor_stores(sent, "1002")
        stored["entityStatus"] = {"id": "4", "refName": "Pending"}
        project = project_from_record(stored)
        assert project.budget == Money(amount=Decimal("123456.78"), currency="GBP")
        assert project.tasks == data.tasks
        assert project.billing == data.billing
        assert (project.start_date, project.end_date) == (data.start_date, data.end_date)
        assert (project.customer_id, project.legal_entity_id, project.status) == ("1001", "2", "pending")

    def test_planned_work_travels_as_a_json_number_not_a_float(self) -> None:
        wire = encode(project_to_record("OPP-1", _project(
            tasks=[ProjectTask(name="T", planned_hours="0.1")])))
        assert b'"plannedWork":0.1' in wire
        assert decode(wire)["projectTask"]["items"][0]["plannedWork"] == Decimal("0.1")

    def test_optional_fields_absent(self) -> None:
        project = project_from_record({"id": "9", "externalId": "OPP-9", "companyName": "Bare",
                                       "parent": {"id": "1001"}, "subsidiary": {"id": "1"},
                                       "currency": {"refName": "USD"}})
        assert project.billing is None
        assert project.tasks == []
        assert project.start_date is None
        assert project.status == "pending"
        assert project.budget == Money(amount=Decimal("0"), currency="USD")

    @pytest.mark.parametrize(("status", "expected"), [
        ({"id": "2", "refName": "In Progress"}, "active"),
        ({"id": "1"}, "closed"),
        ({"id": "99", "refName": "closed"}, "closed"),
        ({"refName": "Pending"}, "pending"),
    ])
    def test_status_by_id_or_name(self, status: dict[str, str], expected: str) -> None:
        record = project_to_record("OPP-1", _project())
        record.update(id="1", entityStatus=status)
        assert project_from_record(record).status == expected

    def test_unknown_status_is_a_mapping_error(self) -> None:
        record = project_to_record("OPP-1", _project())
        record.update(id="1", entityStatus={"id": "77", "refName": "On hold"})
        with pytest.raises(MappingError, match="status"):
            project_from_record(record)

    def test_budget_in_another_currency_is_refused(self) -> None:
        with pytest.raises(MappingError, match="currency"):
            project_to_record("OPP-1", _project(budget=Money(amount=Decimal("10"), currency="USD")))

    def test_exponent_amounts_are_written_positionally(self) -> None:
        sent = project_to_record("OPP-1", _project(budget=Money(amount=Decimal("1E+5"), currency="GBP")))
        assert sent["custentity_psc_budget_amount"] == "100000"

    def test_unreadable_milestones_are_a_mapping_error(self) -> None:
        record = project_to_record("OPP-1", _project())
        record.update(id="1", custentity_psc_billing_milestones="[{not json")
        with pytest.raises(MappingError, match="billing"):
            project_from_record(record)


class TestAccountingPeriod:
    def test_round_trip(self) -> None:
        period = AccountingPeriod(id="AP-US01-2026-10", name="Oct 2026", start_date=dt.date(2026, 10, 1),
                                  end_date=dt.date(2026, 10, 31), is_closed=False, ar_locked=True,
                                  legal_entity_id="LE-US01")
        back = period_from_record(accounting_period_to_record(period, "110", "1"))
        assert (back.id, back.legal_entity_id, back.name) == ("110", "1", "Oct 2026")
        assert (back.start_date, back.end_date, back.is_closed, back.ar_locked, back.ap_locked) == \
            (period.start_date, period.end_date, False, True, False)

    def test_period_without_subsidiary(self) -> None:
        record = {"id": "5", "periodName": "FY 2026", "startDate": "2026-01-01", "endDate": "2026-12-31"}
        assert period_from_record(record).legal_entity_id is None

    def test_missing_dates_are_a_mapping_error(self) -> None:
        with pytest.raises(MappingError):
            period_from_record({"id": "5", "periodName": "?"})


def test_instants_use_netsuite_output_format() -> None:
    instant = dt.datetime(2026, 11, 2, 9, 30, 5, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert format_instant(instant) == "2026-11-02T08:30:05Z"


class TestBillingRecords:
    """Employees, time batches, SuiteQL rows, invoices and credit memos (system_apis.netsuite._billing_mapping)."""

    def test_employee_round_trip_keeps_cost_rate_exact(self) -> None:
        data = EmployeeUpsert(name="Ana Ahmed Costa", email="ana@x.example", legal_entity_id="2",
                              cost_center="CC-UK01-1", cost_rate=Money(amount=Decimal("61.0500"), currency="GBP"),
                              active=False)
        record = {**employee_to_record("W-00001", data), "id": "1500"}
        back = employee_from_record(record)
        assert (back.name, back.cost_rate, back.active, back.external_id) == (
            "Ana Ahmed Costa", data.cost_rate, False, "W-00001")

    def test_time_batch_lines_are_compact_arrays_keyed_by_the_batch(self) -> None:
        usd = Money(amount=Decimal("250.00"), currency="USD")
        line = TimePostingLine(line_key="TE-1-v2", project_external_id="PRJ-A0001", employee_external_id="W-00001",
                               date=dt.date(2026, 10, 5), hours="-1.5", rate=usd,
                               amount=Money(amount=Decimal("-375.00"), currency="USD"), billable=True)
        record = batch_to_record(TimePostingBatch(batch_key="US01-2026-10-1", legal_entity_id="1", lines=[line]))
        assert record["externalId"] == "US01-2026-10-1"
        assert msgspec.json.decode(record["custrecord_psc_tb_lines"]) == [
            ["TE-1-v2", "PRJ-A0001", "W-00001", "2026-10-05", "-1.5", "250.00", "USD", True, None]]

    def test_posting_result_reads_status_and_results(self) -> None:
        result = posting_result_from_record({"id": "9", "externalId": "B-00000001", "custrecord_psc_tb_status":
                                             "COMPLETE", "custrecord_psc_tb_results":
                                             '{"posted": {"a": "1000001"}, "failed": {"b": "PERIOD_CLOSED: x"}}'})
        assert (result.status, result.posted, result.failed) == ("complete", {"a": "1000001"},
                                                                 {"b": "PERIOD_CLOSED: x"})
        pending = posting_result_from_record({"id": "9", "externalId": "B-00000001"})
        assert (pending.status, pending.posted) == ("pending", {})

    def test_refusal_codes_map_to_the_canonical_reasons(self) -> None:
        failed = {"a": "PERIOD_CLOSED: x", "b": "JOB_CLOSED: x", "c": "EMPLOYEE_INACTIVE: x",
                  "d": "INVALID_KEY_OR_REF: x", "e": "INVALID_FLD_VALUE: x", "f": "DUP_RCRD: x", "g": "SSS_USAGE: x"}
        result = posting_result_from_record({"id": "9", "externalId": "B-00000001", "custrecord_psc_tb_status":
                                             "COMPLETE", "custrecord_psc_tb_results":
                                             msgspec.json.encode({"posted": {}, "failed": failed}).decode()})
        assert result.refusals == {"a": "period_closed", "b": "project_inactive", "c": "worker_inactive",
                                   "d": "validation", "e": "validation", "f": "duplicate", "g": "rejected"}

    def test_unreadable_results_are_a_mapping_error(self) -> None:
        with pytest.raises(MappingError):
            posting_result_from_record({"id": "9", "externalId": "B", "custrecord_psc_tb_results": "{oops"})

    def test_suiteql_row_reads_strings_and_reversals(self) -> None:
        row = {"id": "1000001", "externalid": "TE-1-v2", "job": "PRJ-A0001", "employee": "W-00001",
               "trandate": "2026-10-05", "hours": "-1.5", "rate": "250.00", "isbillable": "T", "currency": "USD"}
        posted = posted_time_from_row(row)
        assert (posted.hours, posted.amount, posted.billable) == (
            "-1.5", Money(amount=Decimal("-375.00"), currency="USD"), True)
        with pytest.raises(MappingError):
            posted_time_from_row({**row, "trandate": "10/05/2026"})

    def test_invoice_round_trip_keeps_lines_and_period(self) -> None:
        from system_apis.netsuite._billing_mapping import invoice_from_record

        usd = Money(amount=Decimal("250.00"), currency="USD")
        data = InvoiceUpsert(customer_id="1001", project_external_id="PRJ-A0001", legal_entity_id="1",
                             period="2026-10", currency="USD", lines=[InvoiceLine(
                                 kind="time", description="10 h", quantity="10", unit_price=usd,
                                 amount=Money(amount=Decimal("2500.00"), currency="USD"), source_keys=["a", "b"])])
        record = invoice_to_record("INV-1", data, job_id="1002", period_id="110", tran_date=dt.date(2026, 10, 31))
        assert "approvalStatus" not in record  # never reset an approved invoice to draft on update
        back = invoice_from_record({**record, "id": "77", "total": Decimal("2500.00")},
                                   project_external_id="PRJ-A0001")
        assert (back.period, back.lines, back.status, back.total.amount) == (
            "2026-10", data.lines, "draft", Decimal("2500.00"))

    def test_invoice_line_with_a_foreign_item_is_a_mapping_error(self) -> None:
        record = {"id": "7", "externalId": "INV", "entity": {"id": "1"}, "subsidiary": {"id": "1"},
                  "currency": {"refName": "USD"}, "custbody_psc_period": "2026-10",
                  "item": {"items": [{"item": {"id": "999"}, "quantity": 1, "rate": 1, "amount": 1}]}}
        with pytest.raises(MappingError):
            invoice_from_record(record, project_external_id="PRJ-A0001")


class TestReceivablesRecords:
    """Invoice standing, customer payments and currency rates (system_apis.netsuite._receivables_mapping)."""

    @staticmethod
    def _invoice(**fields: Any) -> dict[str, Any]:
        return {"id": "77", "externalId": "INV-1", "entity": {"id": "1001"}, "subsidiary": {"id": "1"},
                "currency": {"refName": "USD"}, "custbody_psc_period": "2026-10", "total": Decimal("1000.00"),
                "tranDate": "2026-10-31", "item": {"items": []}, **fields}

    @pytest.mark.parametrize(("fields", "applied", "expected"), [
        ({"status": {"id": "D", "refName": "Pending Approval"}, "approvalStatus": {"id": "1"}}, NOTHING_APPLIED,
         ("draft", "0", "1000.00")),
        ({"status": {"id": "A", "refName": "Open"}, "amountRemaining": Decimal("1000.00")}, NOTHING_APPLIED,
         ("posted", "0", "1000.00")),
        ({"status": {"id": "A", "refName": "Open"}, "amountPaid": Decimal("400"), "amountRemaining": Decimal("600")},
         Applied(Decimal("400"), Decimal("0")), ("partially_paid", "400", "600")),
        ({"status": {"id": "A", "refName": "Open"}, "amountPaid": Decimal("300"), "amountRemaining": Decimal("700")},
         Applied(Decimal("0"), Decimal("300")), ("posted", "0", "700")),
        ({"status": {"id": "B", "refName": "Paid In Full"}, "amountPaid": Decimal("1000"), "amountRemaining": 0},
         Applied(Decimal("700"), Decimal("300")), ("paid", "700", "0")),
        ({"status": {"id": "B", "refName": "Paid In Full"}, "amountPaid": Decimal("1000"), "amountRemaining": 0},
         Applied(Decimal("0"), Decimal("1000")), ("credited", "0", "0")),
        ({"status": {"id": "V", "refName": "Voided"}, "amountRemaining": 0}, NOTHING_APPLIED, ("void", "0", "0")),
        ({"status": {"id": "E", "refName": "Rejected"}}, NOTHING_APPLIED, ("void", "0", "0")),
        ({"status": {"id": "B"}, "amountRemaining": 0}, Applied(Decimal("1000"), Decimal("0")), ("paid", "1000", "0")),
        ({"status": {"id": "Paid In Full"}, "amountRemaining": 0}, Applied(Decimal("0"), Decimal("1000")),
         ("credited", "0", "0")),
        ({"approvalStatus": {"id": "2"}, "amountRemaining": "1000.00"}, NOTHING_APPLIED, ("posted", "0", "1000.00")),
        ({"approvalStatus": {"id": "3"}}, NOTHING_APPLIED, ("void", "0", "0")),
        ({}, NOTHING_APPLIED, ("draft", "0", "1000.00")),
    ])
    def test_each_netsuite_status_reads_as_the_canonical_one(self, fields: dict[str, Any], applied: Applied,
                                                             expected: tuple[str, str, str]) -> None:
        invoice = invoice_from_record(self._invoice(**fields), project_external_id="PRJ-A0001", applied=applied)
        assert invoice.amount_paid is not None and invoice.amount_due is not None
        assert (invoice.status, invoice.amount_paid.amount, invoice.amount_due.amount) == (
            expected[0], Decimal(expected[1]), Decimal(expected[2]))
        assert invoice.amount_due.currency == "USD"

    def test_an_unknown_status_is_a_mapping_error(self) -> None:
        with pytest.raises(MappingError):
            invoice_from_record(self._invoice(status={"id": "Z", "refName": "Partially Fulfilled"}),
                                project_external_id="PRJ-A0001")

    def test_dates_and_last_change_come_from_netsuite(self) -> None:
        invoice = invoice_from_record(self._invoice(dueDate="2026-11-30", lastModifiedDate="2026-11-20T09:00:01Z"),
                                      project_external_id="PRJ-A0001")
        assert (invoice.issue_date, invoice.due_date) == (dt.date(2026, 10, 31), dt.date(2026, 11, 30))
        assert invoice.updated_at == dt.datetime(2026, 11, 20, 9, 0, 1, tzinfo=dt.UTC)
        with pytest.raises(MappingError):
            invoice_from_record(self._invoice(lastModifiedDate="yesterday"), project_external_id="PRJ-A0001")

    def test_applications_sum_per_invoice_and_type(self) -> None:
        rows = [{"invoice": "77", "type": "CustPymt", "amount": "400.00"},
                {"invoice": "77", "type": "CustCred", "amount": "-300.00"},
                {"invoice": "78", "type": "CustPymt", "amount": "1"}]
        assert applications_from_rows(rows) == {"77": Applied(Decimal("400.00"), Decimal("300.00")),
                                                "78": Applied(Decimal("1"), Decimal("0"))}
        with pytest.raises(ValueError, match="internal ids"):
            applications_query(["77", "1 OR 1=1"])

    def test_payment_round_trip_keeps_the_amount_exact(self) -> None:
        data = PaymentUpsert(invoice_external_id="INV-1", legal_entity_id="1", date=dt.date(2026, 11, 20),
                             amount=Money(amount=Decimal("400.10"), currency="USD"), reference=None)
        record = payment_to_record("PAY-1", data, customer_id="1001", invoice_id="77")
        assert b'"payment":400.10' in encode(record)
        back = payment_from_record(_as_vendor_stores(record, "301"), invoice_external_id="INV-1")
        assert (back.id, back.amount, back.date, back.reference, back.legal_entity_id) == (
            "301", data.amount, data.date, None, "1")

    def test_a_payment_applied_to_nothing_is_a_mapping_error(self) -> None:
        with pytest.raises(MappingError):
            payment_from_record({"id": "301", "externalId": "PAY-1", "apply": {"links": []}},
                                invoice_external_id="INV-1")

    def test_payment_terms_default_to_thirty_days(self) -> None:
        assert payment_terms_days({}) == 30 and payment_terms_days({"custentity_psc_payment_terms_days": 45}) == 45
        with pytest.raises(MappingError):
            payment_terms_days({"id": "1002", "custentity_psc_payment_terms_days": "net 30"})


class TestExchangeRateRows:
    """NetSuite's exchangeRate is units of its base currency per ONE unit of the transaction currency."""

    @staticmethod
    def _row(base: str, transaction: str, rate: str, day: str, ident: str = "1") -> dict[str, Any]:
        return {"id": ident, "basecurrency": base, "transactioncurrency": transaction, "exchangerate": rate,
                "effectivedate": day}

    def test_a_stored_row_is_the_canonical_rate_from_transaction_to_base_currency(self) -> None:
        rate = rate_from_rows([self._row("USD", "EUR", "1.08", "2026-10-01")], "EUR", "USD")
        assert rate is not None and (rate.base, rate.quote, rate.rate, rate.date, rate.source) == (
            "EUR", "USD", Decimal("1.08"), dt.date(2026, 10, 1), "erp")

    def test_the_inverse_is_derived_to_ten_places(self) -> None:
        rate = rate_from_rows([self._row("USD", "EUR", "1.08", "2026-10-01")], "USD", "EUR")
        assert rate is not None and rate.rate == Decimal("0.9259259259")

    def test_the_latest_day_wins_and_on_a_tie_the_stored_direction(self) -> None:
        rows = [self._row("GBP", "EUR", "0.86", "2026-10-01", "9"), self._row("EUR", "GBP", "1.15", "2026-10-01", "8"),
                self._row("GBP", "EUR", "0.85", "2026-09-01", "7")]
        rate = rate_from_rows(rows, "GBP", "EUR")
        assert rate is not None and (rate.rate, rate.date) == (Decimal("1.15"), dt.date(2026, 10, 1))
        older = rate_from_rows(rows[2:], "GBP", "EUR")
        assert older is not None and (older.rate, older.date) == (Decimal("1.1764705882"), dt.date(2026, 9, 1))

    def test_other_pairs_are_ignored_and_bad_rates_refused(self) -> None:
        assert rate_from_rows([self._row("USD", "CAD", "0.74", "2026-10-01")], "EUR", "USD") is None
        with pytest.raises(MappingError):
            rate_from_rows([self._row("USD", "EUR", "0", "2026-10-01")], "EUR", "USD")
        with pytest.raises(ValueError, match="ISO 4217"):
            exchange_rate_query("usd", "EUR", dt.date(2026, 10, 1))
