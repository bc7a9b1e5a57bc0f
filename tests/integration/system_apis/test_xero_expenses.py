"""Xero expense postings against the Xero simulator: what the shared journey (`test_erp_expenses.py`) leaves out.

The bills and supplier credit notes Xero receives (checked against Xero's documents, field by field), one create
call per document kind with per-element errors, each refusal reason with nothing posted for the refused line, a
line posted once however its call is lost, failed or repeated, and the posted list paged and filtered.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator, Iterator
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
from tests.integration.system_apis.vendor_kit import Sleeps, domain_api, vendor_http

ApiClient = AsyncTestClient[Litestar]
ERP = "/system/erp/v1"
PROJECT = "PRJ-X0001"
DAY = "2026-10-15"


class Failing(httpx.AsyncBaseTransport):
    """Loses Xero's answer to the first request matching `pattern` (Xero took it), then answers the next
    `outage` matching requests 503 without passing them on: a client that gives up after Xero took the write."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.pattern: re.Pattern[str] | None = None
        self.outage = 0
        self.lost = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.pattern is None or not self.pattern.search(f"{request.method} {request.url.path}"):
            return await self.inner.handle_async_request(request)
        if not self.lost:
            await (await self.inner.handle_async_request(request)).aread()
            self.lost = True
            raise httpx.ReadTimeout("the answer was lost", request=request)
        if self.outage:
            self.outage -= 1
            return httpx.Response(503, json={"Title": "Service Unavailable", "Status": 503}, request=request)
        return await self.inner.handle_async_request(request)


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
    erp = XeroErp(client, SummaryStore(engine), code=CODE, connection="uk01-xero",
                  today=lambda: dt.date(2026, 11, 2))
    async with domain_api(erp_router(erp)) as test_client:
        await provision(test_client, sim.tenant(CODE))
        for worker, active in (("W-0001", True), ("W-0009", False)):
            response = await test_client.put(f"{ERP}/employees/by-external-id/{worker}", json={
                "name": f"Worker {worker}", "email": f"{worker.lower()}@meridian.example",
                "legal_entity_id": sim.tenant(CODE), "cost_center": "CC-100",
                "cost_rate": {"amount": "80.00", "currency": "GBP"}, "active": active})
            assert response.status_code == 201, response.text
        yield test_client


def line(key: str, amount: str, *, category: str = "Travel", billable: bool = True, day: str = DAY,
         project: str = PROJECT, worker: str = "W-0001", currency: str = "GBP", **extra: Any) -> dict[str, Any]:
    return {"line_key": key, "project_external_id": project, "employee_external_id": worker, "date": day,
            "category": category, "amount": {"amount": amount, "currency": currency}, "billable": billable,
            "memo": f"expense {key}", **extra}


async def post(api: ApiClient, sim: XeroSimulator, key: str, lines: list[dict[str, Any]]) -> httpx.Response:
    return await api.post(f"{ERP}/expense-postings",
                          json={"batch_key": key, "legal_entity_id": sim.tenant(CODE), "lines": lines})


async def posted(api: ApiClient, **params: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        response = await api.get(f"{ERP}/posted-expenses", params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        cursor = response.json().get("next_cursor")
        if not cursor:
            return items


def sent(recording: Recording, method: str, path: str) -> list[dict[str, Any]]:
    return [msgspec.json.decode(r.content) for r, _, _ in recording.exchanges
            if r.method == method and r.url.path.endswith(path)]


class TestWireFormat:
    async def test_a_batch_is_one_put_of_bills_and_one_of_credit_notes_as_xero_documents_them(
            self, api: ApiClient, sim: XeroSimulator, recording: Recording) -> None:
        recording.exchanges.clear()  # what provisioning sent
        lines = [line("EXP-1:a", "215.40", receipt_url="https://receipts.example.com/1.pdf"),
                 line("EXP-2:a", "49.00", category="Mileage", original_amount={"amount": "57.30", "currency": "EUR"}),
                 line("EXP-3:a", "12.00", category="Parking", billable=False)]
        first = await post(api, sim, "EXPB-W001", lines)
        assert first.status_code == 200 and set(first.json()["posted"]) == {"EXP-1:a", "EXP-2:a", "EXP-3:a"}
        reversal = await post(api, sim, "EXPB-W002", [line("EXP-1:a:rev", "-215.40")])
        assert set(reversal.json()["posted"]) == {"EXP-1:a:rev"}, reversal.text

        puts = [(r.method, r.url.path, r.url.params.get("summarizeErrors")) for r, _, _ in recording.exchanges
                if r.method != "GET" and r.url.path != "/connect/token"]
        assert puts == [("PUT", "/api.xro/2.0/Invoices", "false"), ("PUT", "/api.xro/2.0/CreditNotes", "false")]
        bills = sent(recording, "PUT", "/Invoices")[0]["Invoices"]
        contact = sim.organisation(CODE).contacts
        employee = next(c["ContactID"] for c in contact.values() if c.get("ContactNumber") == "EMP:W-0001")
        assert [(b["Type"], b["InvoiceNumber"], b["Contact"]["ContactID"], b["Status"], b["Date"], b["DueDate"],
                 b["CurrencyCode"]) for b in bills] == [
            ("ACCPAY", f"EXP:EXP-{n}:a", employee, "AUTHORISED", DAY, DAY, "GBP") for n in (1, 2, 3)]
        items = [b["LineItems"][0] for b in bills]
        assert [i["AccountCode"] for i in items] == ["493", "449", "429"]  # Travel, Mileage, any other category
        assert all(i["Tracking"] == [{"Name": "Project", "Option": PROJECT}] for i in items)
        assert bills[0]["Url"] == "https://receipts.example.com/1.pdf" and "Url" not in bills[1]
        assert items[1]["Description"] == "Mileage | billable | expense EXP-2:a | spent 57.30 EUR"
        assert items[2]["Description"].startswith("Parking | not billable | ")
        note = sent(recording, "PUT", "/CreditNotes")[0]["CreditNotes"][0]
        assert (note["Type"], note["CreditNoteNumber"]) == ("ACCPAYCREDIT", "EXP:EXP-1:a:rev")
        assert note["LineItems"][0]["LineAmount"] == 215.4  # Xero holds a credit note's amounts positive
        assert contact[employee]["IsSupplier"] is True

        rows = {r["line_key"]: r for r in await posted(api, project_external_id=PROJECT)}
        assert rows["EXP-3:a"]["category"] == "Parking" and rows["EXP-3:a"]["billable"] is False
        assert rows["EXP-1:a:rev"]["amount"] == {"amount": "-215.40", "currency": "GBP"}
        assert rows["EXP-1:a"]["id"] == first.json()["posted"]["EXP-1:a"]
        for request, status, body in recording.exchanges:
            check_request(request)
            check_response(request, status, body)


class TestOncePerLine:
    async def test_a_lost_answer_is_retried_with_the_same_key_and_posts_once(
            self, api: ApiClient, sim: XeroSimulator, failing: Failing) -> None:
        failing.pattern = re.compile(r"PUT .*/Invoices$")
        response = await post(api, sim, "EXPB-L001", [line("EXP-L1:a", "10.00"), line("EXP-L2:a", "20.00")])
        assert response.status_code == 200 and set(response.json()["posted"]) == {"EXP-L1:a", "EXP-L2:a"}
        keys = [r.headers["idempotency-key"] for r in sim.requests
                if r.method == "PUT" and r.path.endswith("/Invoices")]
        assert len(keys) == 2 and keys[0] == keys[1]  # Xero took the first; the retry was answered with its answer
        assert sim.count("bill", None) == 2

    async def test_a_call_that_gave_up_after_xero_took_the_bills_finds_them_and_posts_nothing_twice(
            self, api: ApiClient, sim: XeroSimulator, failing: Failing) -> None:
        failing.pattern, failing.outage = re.compile(r"PUT .*/Invoices$"), 3
        lines = [line("EXP-G1:a", "10.00"), line("EXP-G2:a", "20.00")]
        gave_up = await post(api, sim, "EXPB-G001", lines)
        assert gave_up.status_code == 503, gave_up.text
        assert sim.count("bill", None) == 2  # Xero took them; psconnect never heard
        failing.pattern = None
        sim.idempotent.clear()  # and Xero forgot the key: the bill numbers find them
        again = await post(api, sim, "EXPB-G001", lines)
        assert again.status_code == 200 and set(again.json()["posted"]) == {"EXP-G1:a", "EXP-G2:a"}, again.text
        other = await post(api, sim, "EXPB-G002", lines[:1])
        assert other.json()["posted"] == {"EXP-G1:a": again.json()["posted"]["EXP-G1:a"]}
        assert sim.count("bill", None) == 2
        assert (await api.get(f"{ERP}/expense-postings/EXPB-G001")).json() == again.json()

    async def test_a_line_posted_through_another_gateway_is_found_in_xero(
            self, api: ApiClient, sim: XeroSimulator, client: XeroClient) -> None:
        first = await post(api, sim, "EXPB-X001", [line("EXP-X1:a", "10.00")])
        other = XeroErp(client, SummaryStore(create_engine("sqlite://")), code=CODE, connection="uk01-xero")
        async with domain_api(erp_router(other)) as elsewhere:  # its own database: nothing recorded there
            second = await post(elsewhere, sim, "EXPB-X002", [line("EXP-X1:a", "10.00")])
        assert second.json()["posted"] == first.json()["posted"] and sim.count("bill", None) == 1


class TestRefusals:
    async def test_each_reason_refuses_its_line_only_and_posts_nothing_for_it(
            self, api: ApiClient, sim: XeroSimulator) -> None:
        org = sim.organisation(CODE)
        closed = await api.put(f"{ERP}/projects/by-external-id/PRJ-X0002", json={
            "name": "Closed work", "customer_id": next(iter(org.contacts)), "legal_entity_id": sim.tenant(CODE),
            "currency": "GBP", "budget": {"amount": "100.00", "currency": "GBP"}, "end_date": "2026-12-31",
            "tasks": []})
        assert closed.status_code == 201, closed.text
        next(p for p in org.projects.values() if p["name"].startswith("PRJ-X0002"))["status"] = "CLOSED"
        lines = [line("R-ok:a", "10.00"), line("R-lock:a", "10.00", day="2026-08-31"),
                 line("R-closed:a", "10.00", project="PRJ-X0002"), line("R-unknown:a", "10.00", project="PRJ-NONE"),
                 line("R-archived:a", "10.00", worker="W-0009"), line("R-nobody:a", "10.00", worker="W-4040"),
                 line("R-usd:a", "10.00", currency="USD"), line("R key", "10.00")]
        response = await post(api, sim, "EXPB-R001", lines)
        assert response.status_code == 200, response.text
        result = response.json()
        assert set(result["posted"]) == {"R-ok:a"}
        assert result["refusals"] == {
            "R-lock:a": "period_closed", "R-closed:a": "project_inactive", "R-unknown:a": "project_inactive",
            "R-archived:a": "worker_inactive", "R-nobody:a": "worker_inactive", "R-usd:a": "validation",
            "R key": "validation"}
        assert set(result["failed"]) == set(result["refusals"])
        assert sim.count("bill", None) == 1
        assert [r["line_key"] for r in await posted(api)] == ["R-ok:a"]

    async def test_an_element_xero_refuses_fails_alone_in_its_call(self, api: ApiClient, sim: XeroSimulator,
                                                                   recording: Recording) -> None:
        travel = next(a for a in sim.organisation(CODE).accounts if a["Code"] == "493")
        travel["Status"] = "ARCHIVED"  # archived in Xero since: only Xero knows
        response = await post(api, sim, "EXPB-E001", [line("E-1:a", "10.00", category="Meals"),
                                                      line("E-2:a", "10.00", category="Travel")])
        result = response.json()
        assert set(result["posted"]) == {"E-1:a"} and result["refusals"] == {"E-2:a": "validation"}
        assert "493" in result["failed"]["E-2:a"]
        assert len(sent(recording, "PUT", "/Invoices")) == 1 and sim.count("bill", None) == 1
        for request, status, body in recording.exchanges:
            check_response(request, status, body)


class TestPostedList:
    async def test_pages_by_cursor_filter_by_project_and_dates_and_skip_voided_bills(
            self, api: ApiClient, sim: XeroSimulator) -> None:
        lines = [line(f"P-{i:02d}:a", f"{10 + i}.00", day=f"2026-10-{i + 1:02d}") for i in range(12)]
        result = (await post(api, sim, "EXPB-P001", lines)).json()
        assert len(result["posted"]) == 12
        rows = await posted(api, project_external_id=PROJECT, limit="5")
        assert [r["line_key"] for r in rows] == [f"P-{i:02d}:a" for i in range(12)]
        window = await posted(api, **{"from": "2026-10-03", "to": "2026-10-05"})
        assert [r["line_key"] for r in window] == ["P-02:a", "P-03:a", "P-04:a"]
        assert await posted(api, project_external_id="PRJ-OTHER") == []
        sim.organisation(CODE).invoices[result["posted"]["P-00:a"]]["Status"] = "VOIDED"  # voided by hand in Xero
        assert "P-00:a" not in {r["line_key"] for r in await posted(api)}
        cursor = (await api.get(f"{ERP}/posted-expenses", params={"limit": "5"})).json()["next_cursor"]
        for params in ({"cursor": cursor, "limit": "5", "from": "2026-10-03"}, {"cursor": "bogus", "limit": "5"}):
            bad = await api.get(f"{ERP}/posted-expenses", params=params)  # another list's cursor; none at all
            assert bad.status_code in (400, 422) and bad.json()["code"] == "invalid_cursor", bad.text
