"""Business Central records <-> canonical ERP objects: pure mapping, no simulator."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import httpx
import pytest

from contracts.billing import InvoiceLine, PaymentUpsert, TimePostingLine
from contracts.common import Money
from contracts.crm import Address
from contracts.erp import CustomerUpsert
from contracts.workforce import EmployeeUpsert
from system_apis.businesscentral._index import odata_instant
from system_apis.businesscentral.client import classify, split_base_url
from system_apis.businesscentral.mapping import (
    INVOICE_STATUSES,
    MappingError,
    accounting_periods,
    company_to_entity,
    customer_from_record,
    customer_to_record,
    document_line,
    employee_to_record,
    invoice_from_records,
    line_meta,
    payment_document_number,
    payment_line,
    rate_from_rows,
    receivable,
    tax_regime,
    time_entry_body,
)

COMPANY = "f4fb8097-1620-51aa-adfe-04278b49687b"


def _money(amount: str, currency: str = "CAD") -> Money:
    return Money(amount=Decimal(amount), currency=currency)


def test_a_company_is_a_legal_entity_coded_by_its_name() -> None:
    entity = company_to_entity({"id": COMPANY, "name": "CA01", "displayName": "Meridian Advisory Canada Inc."},
                               {"country": "CA", "currencyCode": "CAD", "taxRegistrationNumber": "123456789RT0001"})
    assert (entity.code, entity.country, entity.currency, entity.tax_regime) == ("CA01", "CA", "CAD", "ca_gst_hst")
    assert entity.requires_customer_tax_id is False
    with pytest.raises(MappingError, match="country or currency"):
        company_to_entity({"id": COMPANY, "name": "X"}, {"country": "", "currencyCode": "CAD"})


@pytest.mark.parametrize(("country", "regime"), [("GB", "uk_vat"), ("DE", "eu_vat"), ("US", "us_sales_tax"),
                                                 ("CA", "ca_gst_hst"), ("AU", "au_gst"), ("JP", "us_sales_tax")])
def test_tax_regime_follows_the_country(country: str, regime: str) -> None:
    assert tax_regime(country) == regime


def test_customer_round_trip_leaves_the_local_currency_blank_as_business_central_does() -> None:
    data = CustomerUpsert(name="Northwind", legal_entity_id=COMPANY, currency="CAD", tax_id="123",
                          billing_address=Address(street="1 King St", city="Toronto", postal_code="M5H",
                                                  country="CA"))
    record = customer_to_record("ACC-0001", data, company_currency="CAD")
    assert record["number"] == "ACC-0001" and record["currencyCode"] == ""
    assert "number" not in customer_to_record("A" * 21, data, company_currency="CAD")  # BC numbers hold 20
    back = customer_from_record({"id": "c1", **record}, external_id="ACC-0001", legal_entity_id=COMPANY,
                                currency="CAD")
    assert (back.currency, back.tax_id, back.billing_address) == ("CAD", "123", data.billing_address)
    foreign = customer_to_record("ACC-0002", CustomerUpsert(name="N", legal_entity_id=COMPANY, currency="USD"),
                                 company_currency="CAD")
    assert foreign["currencyCode"] == "USD"


def test_employee_status_and_cost_centre_use_standard_fields() -> None:
    record = employee_to_record("W-00001", EmployeeUpsert(
        name="Ana Becker Costa", email="ana@x.example", legal_entity_id=COMPANY, cost_center="CC-CA01-1",
        cost_rate=_money("80.00"), active=False))
    assert (record["givenName"], record["surname"], record["status"]) == ("Ana", "Becker Costa", "Inactive")
    assert record["statisticsGroupCode"] == "CC-CA01-1"


def test_periods_end_the_day_before_the_next_starts_and_closed_means_locked() -> None:
    periods = accounting_periods([
        {"id": "p2", "startingDate": "2026-11-01", "closed": False, "dateLocked": False},
        {"id": "p1", "startingDate": "2026-10-01", "closed": False, "dateLocked": True},
        {"id": "p0", "startingDate": "2026-09-01", "closed": True, "dateLocked": True},
    ], COMPANY)
    assert [(p.start_date.day, p.end_date) for p in periods] == [
        (1, dt.date(2026, 9, 30)), (1, dt.date(2026, 10, 31)), (1, dt.date(2026, 11, 30))]
    assert [(p.is_closed, p.ar_locked) for p in periods] == [(True, True), (False, True), (False, False)]


def test_time_and_invoice_lines_carry_decimals_never_floats() -> None:
    line = TimePostingLine(line_key="TE-1:1", project_external_id="PRJ-1", employee_external_id="W-1",
                           date=dt.date(2026, 10, 5), hours="7.25", rate=_money("200"), amount=_money("1450.00"),
                           billable=True)
    body = time_entry_body(line, employee_id="e", job_id="j")
    assert body == {"employeeId": "e", "jobId": "j", "date": "2026-10-05", "quantity": Decimal("7.25")}
    invoice_line = InvoiceLine(kind="time", description="consultant", quantity="7.25", unit_price=_money("200.00"),
                               amount=_money("1450.00"), source_keys=["TE-1:1"])
    sent = document_line(invoice_line, account_number="40100", sequence=10000)
    assert (sent["lineType"], sent["lineObjectNumber"], sent["quantity"]) == ("Account", "40100", Decimal("7.25"))
    invoice = invoice_from_records(
        {"id": "i1", "customerId": "c1", "currencyCode": "", "status": "Open",
         "totalAmountExcludingTax": Decimal("1450.00"), "totalAmountIncludingTax": Decimal("1450.00"),
         "remainingAmount": Decimal("1450.00")},
        [{"sequence": 10000, "description": "consultant", "quantity": Decimal("7.25"), "unitPrice": Decimal("200"),
          "amountExcludingTax": Decimal("1450.00")}],
        {"project_external_id": "PRJ-1", "period": "2026-10", "lines": line_meta([invoice_line])},
        external_id="INV-1", legal_entity_id=COMPANY, company_currency="CAD")
    assert invoice.status == "posted" and invoice.lines == [invoice_line]
    assert invoice.total == _money("1450.00")


def test_the_company_is_read_from_the_base_url() -> None:
    root = "https://api.businesscentral.dynamics.com/v2.0/tenant/production"
    assert split_base_url(f"{root}/api/v2.0/companies({COMPANY.upper()})/") == (root, COMPANY)
    assert split_base_url(root + "/") == (root, None)


def test_the_error_envelope_is_classified() -> None:
    request = httpx.Request("GET", "https://x.example")
    stale = classify(httpx.Response(412, json={"error": {"code": "Request_EntityChanged", "message": "changed"}},
                                    request=request))
    assert stale is not None and getattr(stale, "code", None) == "Request_EntityChanged"
    throttled = classify(httpx.Response(429, headers={"Retry-After": "7"}, request=request,
                                        json={"error": {"code": "Application_TooManyRequests", "message": "x"}}))
    assert throttled is not None and getattr(throttled, "retry_after", None) == 7
    assert classify(httpx.Response(204, request=request)) is None


# --- receivables ----------------------------------------------------------------------------------------------


def _bc_invoice(status: str, remaining: str | None = "1000.00", total: str = "1000.00") -> dict[str, object]:
    record: dict[str, object] = {"id": "i1", "number": "S-INV1001", "status": status,
                                 "totalAmountIncludingTax": Decimal(total)}
    if remaining is not None:
        record["remainingAmount"] = Decimal(remaining)
    return record


@pytest.mark.parametrize(("status", "remaining", "credited", "expected"), [
    ("Draft", "1000.00", "0", ("draft", "0", "1000.00")),
    ("In Review", "1000.00", "0", ("draft", "0", "1000.00")),  # awaiting approval: not in the ledger yet
    ("Open", "1000.00", "0", ("posted", "0", "1000.00")),
    ("Open", "600.00", "0", ("partially_paid", "400.00", "600.00")),
    ("Open", "700.00", "300.00", ("posted", "0.00", "700.00")),  # a credit memo reduces what is due, pays nothing
    ("Open", "500.00", "300.00", ("partially_paid", "200.00", "500.00")),
    ("Paid", "0", "0", ("paid", "1000.00", "0")),
    ("Paid", "0", "1000.00", ("credited", "0.00", "0")),  # closed by credit memos alone
    ("Paid", "0", "250.00", ("paid", "750.00", "0")),
    ("Canceled", "0", "1000.00", ("void", "0", "0")),
    ("Corrective", "0", "0", ("void", "0", "0")),
])
def test_each_business_central_status_reads_as_a_canonical_one(status: str, remaining: str, credited: str,
                                                                 expected: tuple[str, str, str]) -> None:
    canonical, paid, due = receivable(_bc_invoice(status, remaining), Decimal(credited))
    assert (canonical, paid, due) == (expected[0], Decimal(expected[1]), Decimal(expected[2]))


def test_every_documented_status_is_mapped_and_anything_else_is_refused() -> None:
    assert set(INVOICE_STATUSES) == {"Draft", "In Review", "Open", "Paid", "Canceled", "Corrective"}
    with pytest.raises(MappingError, match="unknown"):
        receivable(_bc_invoice("Posted"))
    with pytest.raises(MappingError, match="remainingAmount"):
        receivable(_bc_invoice("Open", remaining=None))


def test_an_invoice_carries_business_centrals_dates_and_last_change_in_utc() -> None:
    line = InvoiceLine(kind="milestone", description="Kick-off", quantity="1", unit_price=_money("1000.00"),
                       amount=_money("1000.00"), source_keys=["MS-1"])
    invoice = invoice_from_records(
        {**_bc_invoice("Open", "600.00"), "customerId": "c1", "currencyCode": "USD",
         "totalAmountExcludingTax": Decimal("1000.00"), "invoiceDate": "2026-10-31", "dueDate": "2026-11-30",
         "lastModifiedDateTime": "2026-11-20T10:15:30.123Z"},
        [{"sequence": 10000, "description": "Kick-off", "quantity": Decimal(1), "unitPrice": Decimal("1000"),
          "amountExcludingTax": Decimal("1000.00")}],
        {"project_external_id": "PRJ-1", "period": "2026-10", "lines": line_meta([line])},
        external_id="INV-1", legal_entity_id=COMPANY, company_currency="CAD")
    assert (invoice.status, invoice.amount_paid, invoice.amount_due) == (
        "partially_paid", _money("400.00", "USD"), _money("600.00", "USD"))
    assert (invoice.issue_date, invoice.due_date) == (dt.date(2026, 10, 31), dt.date(2026, 11, 30))
    assert invoice.updated_at == dt.datetime(2026, 11, 20, 10, 15, 30, 123000, tzinfo=dt.UTC)


def test_a_payment_line_credits_the_customer_and_names_psconnects_key() -> None:
    data = PaymentUpsert(invoice_external_id="INV-1", legal_entity_id=COMPANY, date=dt.date(2026, 11, 20),
                         amount=_money("400.00"), reference="remittance 1")
    line = payment_line("PAY-1", data, customer_id="c1", invoice_id="i1")
    assert line["amount"] == Decimal("-400.00") and isinstance(line["amount"], Decimal)
    assert (line["appliesToInvoiceId"], line["customerId"], line["postingDate"]) == ("i1", "c1", "2026-11-20")
    assert (line["documentNumber"], line["description"], line["externalDocumentNumber"]) == (
        "PAY-1", "Payment PAY-1", "remittance 1")
    long_key = "PAY-" + "x" * 60
    number = payment_document_number(long_key)
    assert len(number) == 20 and number == payment_document_number(long_key) != payment_document_number(long_key + "y")


def _rate(code: str, start: str, amount: str, relational_amount: str, relational: str = "") -> dict[str, object]:
    return {"currencyCode": code, "startingDate": start, "exchangeRateAmount": Decimal(amount),
            "relationalCurrencyCode": relational, "relationalExchangeRateAmount": Decimal(relational_amount)}


def test_a_rate_is_the_latest_in_effect_inverted_or_crossed_through_the_local_currency() -> None:
    rows = [_rate("USD", "2026-09-01", "100", "136.0000"), _rate("USD", "2026-10-01", "100", "137.5000"),
            _rate("EUR", "2026-10-15", "1", "1.4900"), _rate("GBP", "2026-10-01", "1", "1.1600", "EUR")]
    assert rate_from_rows(rows, "USD", "CAD", "CAD") == (Decimal("1.375"), dt.date(2026, 10, 1))
    assert rate_from_rows(rows, "CAD", "USD", "CAD") == (Decimal("0.7272727273"), dt.date(2026, 10, 1))
    assert rate_from_rows(rows, "GBP", "EUR", "CAD") == (Decimal("1.16"), dt.date(2026, 10, 1))  # a relational row
    # USD -> CAD -> EUR: 1.375 / 1.49, dated by the later rate
    assert rate_from_rows(rows, "USD", "EUR", "CAD") == (Decimal("0.9228187919"), dt.date(2026, 10, 15))
    assert rate_from_rows(rows, "AUD", "CAD", "CAD") is None


def test_the_poll_asks_from_the_millisecond_business_central_stamps_in() -> None:
    moment = dt.datetime(2026, 11, 20, 11, 15, 30, 123999, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert odata_instant(moment) == "2026-11-20T10:15:30.123Z"
    assert odata_instant(dt.datetime(2026, 11, 20, 10, 15, 30)) == "2026-11-20T10:15:30.000Z"
