"""Xero intercompany charges against the Xero simulator: what the shared journey (`test_erp_intercompany.py`) leaves
out.

The documents Xero receives (checked against Xero's documents), the counterparty's contact made once, a foreign
currency added once, a charge recorded once however its call is lost or repeated, a charge reversing more than it
charges recorded as a credit note, and a locked period refused with nothing sent.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator, Iterator
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
import msgspec
import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import AsyncTestClient

from foundation.db import create_engine
from system_apis.domains.erp import erp_router
from system_apis.xero import BASE_URL, XeroClient, XeroErp
from system_apis.xero._summary import SummaryStore
from system_apis.xero._tokens import MemoryTokenStore
from system_apis.xero.simulator import XeroSimulator
from tests.integration.system_apis import vendor_kit
from tests.integration.system_apis.test_xero import (
    CODE,
    Recording,
    check_request,
    check_response,
    make_client,
    provision,
)
from tests.integration.system_apis.test_xero_expenses import Failing
from tests.integration.system_apis.vendor_kit import Sleeps, domain_api, vendor_http

ApiClient = AsyncTestClient[Litestar]
ERP = "/system/erp/v1"
PROJECT = "PRJ-X0001"


@pytest.fixture
def sim() -> XeroSimulator:
    return XeroSimulator(legal_entities=(CODE,), calls_per_minute=None, calls_per_day=None, seed=False)


@pytest.fixture
def failing(sim: XeroSimulator) -> Failing:
    return Failing(vendor_kit.asgi(sim.app))


@pytest.fixture
def recording(failing: Failing) -> Recording:
    return Recording(failing)


@pytest.fixture
async def http(sim: XeroSimulator, recording: Recording) -> AsyncIterator[httpx.AsyncClient]:
    async with vendor_http(sim.app, BASE_URL, transport=recording) as client:
        yield client


@pytest.fixture
def engine() -> Iterator[sa.Engine]:
    engine = create_engine("sqlite://")
    yield engine
    engine.dispose()


@pytest.fixture
def client(http: httpx.AsyncClient, sim: XeroSimulator) -> XeroClient:
    return make_client(http, sim, MemoryTokenStore(), Sleeps())


@pytest.fixture
async def api(client: XeroClient, engine: sa.Engine, sim: XeroSimulator) -> AsyncIterator[ApiClient]:
    erp = XeroErp(client, SummaryStore(engine), code=CODE, connection="uk01-xero", today=lambda: dt.date(2026, 11, 2))
    async with domain_api(erp_router(erp)) as test_client:
        await provision(test_client, sim.tenant(CODE))
        yield test_client


def charge(sim: XeroSimulator, side: str, *, currency: str = "GBP", period: str = "2026-10",
           hours: tuple[str, ...] = ("6.5", "-2"), counterparty: str = "US01") -> dict[str, Any]:
    rate = "96.25"
    lines = [{"line_key": f"TE-{i}:a", "project_external_id": PROJECT if side == "payable" else "PRJ-US-7",
              "employee_external_id": "W-00042", "date": f"{period}-{i + 7:02d}", "hours": h,
              "transfer_rate": {"amount": rate, "currency": currency},
              "amount": {"amount": str((Decimal(h) * Decimal(rate)).quantize(Decimal("0.01"), ROUND_HALF_UP)),
                         "currency": currency}}
             for i, h in enumerate(hours)]
    return {"legal_entity_id": sim.tenant(CODE), "counterparty": counterparty, "side": side, "period": period,
            "currency": currency, "memo": "Seconded consultants", "lines": lines}


def sent(recording: Recording, method: str, path: str) -> list[dict[str, Any]]:
    return [msgspec.json.decode(r.content) for r, _, _ in recording.exchanges
            if r.method == method and r.url.path.endswith(path)]


class TestWireFormat:
    async def test_both_sides_are_approved_documents_on_one_counterparty_contact_as_xero_documents_them(
            self, api: ApiClient, sim: XeroSimulator, recording: Recording) -> None:
        recording.exchanges.clear()
        receivable = await api.put(f"{ERP}/intercompany-charges/by-external-id/IC-W-R", json=charge(sim, "receivable"))
        assert receivable.status_code == 201, receivable.text
        payable = await api.put(f"{ERP}/intercompany-charges/by-external-id/IC-W-P",
                                json=charge(sim, "payable", currency="USD"))
        assert payable.status_code == 201, payable.text
        assert payable.json()["total"] == {"amount": "433.13", "currency": "USD"}

        org = sim.organisation(CODE)
        contacts = [c for c in org.contacts.values() if c.get("ContactNumber") == "IC:US01"]
        assert len(contacts) == 1 and contacts[0]["IsCustomer"] is True and contacts[0]["IsSupplier"] is True
        assert len(sent(recording, "POST", "/Contacts")) == 1  # made on first use only
        assert sent(recording, "PUT", "/Currencies") == [{"Code": "USD"}] and "USD" in org.currencies
        documents = [d["Invoices"][0] for d in sent(recording, "PUT", "/Invoices")]
        assert [(d["Type"], d["InvoiceNumber"], d["Status"], d["Date"], d["CurrencyCode"], d["Reference"])
                for d in documents] == [
            ("ACCREC", "IC:IC-W-R", "AUTHORISED", "2026-10-31", "GBP", "IC US01 2026-10 Seconded consultants"),
            ("ACCPAY", "IC:IC-W-P", "AUTHORISED", "2026-10-31", "USD", "IC US01 2026-10 Seconded consultants")]
        assert all(d["Contact"]["ContactID"] == contacts[0]["ContactID"] for d in documents)
        receivable_items, payable_items = documents[0]["LineItems"], documents[1]["LineItems"]
        assert [i["AccountCode"] for i in receivable_items] == ["4030", "4030"]
        assert all("Tracking" not in i for i in receivable_items)  # the other entity's project: unknown here
        assert [i["AccountCode"] for i in payable_items] == ["5030", "5030"]
        assert all(i["Tracking"] == [{"Name": "Project", "Option": PROJECT}] for i in payable_items)
        assert payable_items[1]["Description"] == f"TE-1:a | W-00042 | {PROJECT} | 2026-10-08"
        assert payable_items[1]["LineAmount"] == -192.5 and payable_items[1]["Quantity"] == -2
        stored = next(r for r in org.invoices.values() if r["InvoiceNumber"] == "IC:IC-W-P")
        assert stored["CurrencyRate"] != 1  # a foreign-currency bill, converted at the day's rate
        for request, status, body in recording.exchanges:
            check_request(request)
            check_response(request, status, body)

    async def test_more_reversed_than_charged_is_a_credit_note_and_reads_back_negative(
            self, api: ApiClient, sim: XeroSimulator, recording: Recording) -> None:
        body = charge(sim, "payable", hours=("1", "-3"))
        created = await api.put(f"{ERP}/intercompany-charges/by-external-id/IC-W-C", json=body)
        assert created.status_code == 201, created.text
        assert created.json()["total"] == {"amount": "-192.50", "currency": "GBP"}
        note = sent(recording, "PUT", "/CreditNotes")[0]["CreditNotes"][0]
        assert (note["Type"], note["CreditNoteNumber"]) == ("ACCPAYCREDIT", "IC:IC-W-C")
        assert [i["LineAmount"] for i in note["LineItems"]] == [-96.25, 288.75]
        listed = (await api.get(f"{ERP}/intercompany-charges", params={"period": "2026-10"})).json()["items"]
        assert [(c["external_id"], [ln["hours"] for ln in c["lines"]]) for c in listed] == [("IC-W-C", ["1", "-3"])]
        invoices = await api.get(f"{ERP}/credit-memos", params={"project_external_id": PROJECT})
        assert invoices.status_code == 200 and invoices.json()["items"] == []  # no customer credit memo


class TestOncePerExternalId:
    async def test_a_lost_answer_is_retried_with_the_same_key_and_records_once(
            self, api: ApiClient, sim: XeroSimulator, failing: Failing) -> None:
        failing.pattern = re.compile(r"PUT .*/Invoices$")
        response = await api.put(f"{ERP}/intercompany-charges/by-external-id/IC-L-P", json=charge(sim, "payable"))
        assert response.status_code == 201, response.text
        keys = [r.headers["idempotency-key"] for r in sim.requests
                if r.method == "PUT" and r.path.endswith("/Invoices")]
        assert len(keys) == 2 and keys[0] == keys[1]
        assert sim.count("bill", "IC:IC-L-P") == 1

    async def test_a_call_that_gave_up_after_xero_took_it_finds_the_document_by_number(
            self, api: ApiClient, sim: XeroSimulator, failing: Failing) -> None:
        for side, kind in (("payable", "bill"), ("receivable", "invoice")):
            failing.pattern, failing.lost, failing.outage = re.compile(r"PUT .*/Invoices$"), False, 3
            body = charge(sim, side)
            gave_up = await api.put(f"{ERP}/intercompany-charges/by-external-id/IC-G-{side}", json=body)
            assert gave_up.status_code == 503, gave_up.text
            assert sim.count(kind, f"IC:IC-G-{side}") == 1  # Xero took it; psconnect never heard
            failing.pattern = None
            sim.idempotent.clear()  # and Xero forgot the key: the number finds it
            again = await api.put(f"{ERP}/intercompany-charges/by-external-id/IC-G-{side}", json=body)
            assert again.status_code == 200, again.text
            assert sim.count(kind, f"IC:IC-G-{side}") == 1

    async def test_a_receivable_number_taken_meanwhile_answers_the_one_recorded(
            self, api: ApiClient, sim: XeroSimulator, client: XeroClient) -> None:
        first = await api.put(f"{ERP}/intercompany-charges/by-external-id/IC-X-R", json=charge(sim, "receivable"))
        other = XeroErp(client, SummaryStore(create_engine("sqlite://")), code=CODE, connection="uk01-xero")
        async with domain_api(erp_router(other)) as elsewhere:
            second = await elsewhere.put(f"{ERP}/intercompany-charges/by-external-id/IC-X-R",
                                         json=charge(sim, "receivable"))
        assert second.status_code == 200 and second.json() == first.json()
        assert sim.count("invoice", "IC:IC-X-R") == 1
        clash = await api.put(f"{ERP}/intercompany-charges/by-external-id/IC-X-R", json=charge(sim, "payable"))
        assert clash.status_code == 409 and sim.count("bill", None) == 0, clash.text


class TestRefusals:
    async def test_a_locked_period_is_refused_before_anything_is_sent(
            self, api: ApiClient, sim: XeroSimulator, recording: Recording) -> None:
        recording.exchanges.clear()
        response = await api.put(f"{ERP}/intercompany-charges/by-external-id/IC-R-1",
                                 json=charge(sim, "receivable", period="2026-08"))
        assert response.status_code == 422 and response.json()["code"] == "period_closed", response.text
        assert [r.method for r, _, _ in recording.exchanges if r.url.path != "/connect/token"] == ["GET"] * 3

    async def test_what_xero_cannot_hold_exactly_or_a_charge_to_itself_is_a_422(
            self, api: ApiClient, sim: XeroSimulator) -> None:
        odd = charge(sim, "receivable")
        odd["lines"][0]["amount"]["amount"] = "625.625"
        for body in (odd, charge(sim, "receivable", counterparty=CODE)):
            response = await api.put(f"{ERP}/intercompany-charges/by-external-id/IC-R-2", json=body)
            assert response.status_code == 422 and response.json()["code"] == "validation_failed", response.text
        assert sim.count("invoice", None) == 0
