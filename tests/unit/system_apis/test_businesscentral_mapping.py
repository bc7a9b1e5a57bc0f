"""Business Central records <-> canonical ERP objects: pure mapping, no simulator."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import httpx
import pytest

from contracts.billing import InvoiceLine, TimePostingLine
from contracts.common import Money
from contracts.crm import Address
from contracts.erp import CustomerUpsert
from contracts.workforce import EmployeeUpsert
from system_apis.businesscentral.client import classify, split_base_url
from system_apis.businesscentral.mapping import (
    MappingError,
    accounting_periods,
    company_to_entity,
    customer_from_record,
    customer_to_record,
    document_line,
    employee_to_record,
    invoice_from_records,
    line_meta,
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
         "totalAmountExcludingTax": Decimal("1450.00")},
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
