"""Xero receivables against the Xero simulator: what the shared journey (`test_erp_receivables.py`) leaves out.

Each Xero status read back through the canonical routes (sent, void, credited by an allocated credit note), the
requests Xero receives (approval, ``PUT /Payments``, ``If-Modified-Since``) checked against Xero's documents,
refused payments that leave Xero's books as they were, and a payment made once however often it is sent.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
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
from system_apis.xero.client import ACCOUNTING, decode
from system_apis.xero.simulator import XeroSimulator
from system_apis.xero.simulator._receivables import save_payment
from system_apis.xero.simulator._state import Organisation
from tests.integration.system_apis import vendor_kit
from tests.integration.system_apis.test_xero import (
    CODE,
    Recording,
    check_request,
    check_response,
    make_client,
    operation,
    provision,
)
from tests.integration.system_apis.vendor_kit import Sleeps, domain_api, vendor_http

ApiClient = AsyncTestClient[Litestar]
ERP = "/system/erp/v1"
INVOICE = "INV-R0001-2026-10"


class Meanwhile(httpx.AsyncBaseTransport):
    """Makes a change in Xero, as another user would, just before a matching request of ours reaches it."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.pending: list[tuple[re.Pattern[str], Callable[[], object]]] = []

    def before(self, pattern: str, change: Callable[[], object]) -> None:
        self.pending.append((re.compile(pattern), change))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for found in [p for p in self.pending if p[0].search(f"{request.method} {request.url.path}")]:
            self.pending.remove(found)
            found[1]()
        return await self.inner.handle_async_request(request)


@pytest.fixture
def sim() -> XeroSimulator:
    return XeroSimulator(legal_entities=(CODE,), calls_per_minute=None, calls_per_day=None, seed=False)


@pytest.fixture
def meanwhile(sim: XeroSimulator) -> Meanwhile:
    return Meanwhile(vendor_kit.asgi(sim.app))


@pytest.fixture
def recording(meanwhile: Meanwhile) -> Recording:
    return Recording(meanwhile)


@pytest.fixture
async def client(sim: XeroSimulator, recording: Recording, sleeps: Sleeps) -> AsyncIterator[XeroClient]:
    async with vendor_http(sim.app, BASE_URL, transport=recording) as http:
        yield make_client(http, sim, MemoryTokenStore(), sleeps)


@pytest.fixture
async def api(client: XeroClient) -> AsyncIterator[ApiClient]:
    engine: sa.Engine = create_engine("sqlite://")
    erp = XeroErp(client, SummaryStore(engine), code=CODE, connection="uk01-xero", today=lambda: dt.date(2026, 11, 2))
    async with domain_api(erp_router(erp)) as test_client:
        yield test_client
    engine.dispose()


@pytest.fixture
def org(sim: XeroSimulator) -> Organisation:
    return sim.organisation(CODE)


async def draft(api: ApiClient, sim: XeroSimulator, key: str = INVOICE, amount: str = "1000.00") -> dict[str, Any]:
    """A one-line October draft on PRJ-X0001 (provisioned on first use)."""
    tenant = sim.tenant(CODE)
    if not (await api.get(f"{ERP}/projects", params={"external_id": "PRJ-X0001"})).json()["items"]:
        await provision(api, tenant)
    customer = (await api.get(f"{ERP}/projects", params={"external_id": "PRJ-X0001"})).json()["items"][0]
    money = {"amount": amount, "currency": "GBP"}
    response = await api.put(f"{ERP}/invoices/by-external-id/{key}", json={
        "customer_id": customer["customer_id"], "project_external_id": "PRJ-X0001", "legal_entity_id": tenant,
        "period": "2026-10", "currency": "GBP", "lines": [
            {"kind": "time", "description": "October time", "quantity": "1", "unit_price": money, "amount": money}]})
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


async def posted(api: ApiClient, sim: XeroSimulator, key: str = INVOICE, amount: str = "1000.00") -> dict[str, Any]:
    await draft(api, sim, key, amount)
    response = await api.post(f"{ERP}/invoices/by-external-id/{key}/post")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def payment(sim: XeroSimulator, amount: str, *, currency: str = "GBP", key: str = INVOICE,
            reference: str | None = "remittance 1") -> dict[str, Any]:
    return {"invoice_external_id": key, "legal_entity_id": sim.tenant(CODE), "date": "2026-11-20",
            "amount": {"amount": amount, "currency": currency}, "reference": reference}


async def read(api: ApiClient, key: str = INVOICE) -> dict[str, Any]:
    response = await api.get(f"{ERP}/invoices/by-external-id/{key}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def books(org: Organisation) -> tuple[Any, ...]:
    """Everything a payment could change in Xero."""
    return copy.deepcopy((org.invoices, org.credit_notes, org.payments))


def sent(recording: Recording, method: str, pattern: str) -> list[httpx.Request]:
    return [r for r, _, _ in recording.exchanges if r.method == method and re.search(pattern, r.url.path)]


def check_all(recording: Recording) -> None:
    for request, status, body in recording.exchanges:
        check_request(request)
        check_response(request, status, body)


class TestWireFormat:
    async def test_posting_is_an_approval_and_a_payment_a_put_payments_both_as_xero_documents_them(
            self, api: ApiClient, sim: XeroSimulator, org: Organisation, recording: Recording) -> None:
        invoice = await posted(api, sim)
        assert (invoice["status"], invoice["issue_date"], invoice["due_date"]) == ("posted", "2026-10-31",
                                                                                  "2026-11-30")
        approvals = sent(recording, "POST", r"/Invoices/[0-9a-f-]{36}$")
        assert len(approvals) == 1
        assert msgspec.json.decode(approvals[0].content) == {"Invoices": [
            {"InvoiceID": invoice["id"], "Status": "AUTHORISED", "DueDate": "2026-11-30"}]}
        assert approvals[0].headers["Idempotency-Key"]

        first = await api.put(f"{ERP}/payments/by-external-id/PAY-R1", json=payment(sim, "400.00"))
        assert first.status_code == 201, first.text
        assert first.json() == {"id": first.json()["id"], "external_id": "PAY-R1", "invoice_external_id": INVOICE,
                                "legal_entity_id": sim.tenant(CODE), "date": "2026-11-20",
                                "amount": {"amount": "400.00", "currency": "GBP"}, "reference": "remittance 1"}
        [put] = sent(recording, "PUT", r"/Payments$")
        assert decode(put.content) == {"Payments": [{
            "Invoice": {"InvoiceID": invoice["id"]}, "Account": {"Code": "090"}, "Date": "2026-11-20",
            "Amount": Decimal("400.00"), "Reference": "PAY-R1 remittance 1"}]}
        assert put.headers["Idempotency-Key"]
        lookups = sent(recording, "GET", r"/Payments$")
        assert lookups and lookups[0].url.params["where"] == 'Reference.StartsWith("PAY-R1")'
        stored = org.payments[first.json()["id"]]
        assert (stored["Status"], stored["PaymentType"], stored["Account"]["Code"]) == (
            "AUTHORISED", "ACCRECPAYMENT", "090")
        check_all(recording)

    async def test_the_poll_asks_xero_with_if_modified_since_and_keeps_the_exact_instant(
            self, api: ApiClient, sim: XeroSimulator, recording: Recording) -> None:
        await draft(api, sim, "INV-R-A")
        b = await draft(api, sim, "INV-R-B")
        since = dt.datetime.fromisoformat(b["updated_at"])
        listed = (await api.get(f"{ERP}/invoices", params={"updated_since": since.isoformat()})).json()["items"]
        assert [i["external_id"] for i in listed] == ["INV-R-B"]
        polls = [r for r in sent(recording, "GET", r"/Invoices$") if "If-Modified-Since" in r.headers]
        assert polls[-1].headers["If-Modified-Since"] == since.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
        declared = {p["name"] for p in operation("GET", polls[-1].url.path)[2] if p["in"] == "header"}
        assert "If-Modified-Since" in declared
        # Xero answers to the second; what changed within that second but before the instant is not repeated
        later = since + dt.timedelta(milliseconds=1)
        assert (await api.get(f"{ERP}/invoices", params={"updated_since": later.isoformat()})).json()["items"] == []
        check_all(recording)

    async def test_an_if_modified_since_xero_cannot_read_is_refused(self, client: XeroClient) -> None:
        from system_apis._internal.http import VendorRejected

        with pytest.raises(VendorRejected):
            await client.get(f"{ACCOUNTING}/Invoices", headers={"If-Modified-Since": "last Tuesday"})

    async def test_the_customers_payment_terms_in_xero_set_the_due_date(self, api: ApiClient, sim: XeroSimulator,
                                                                       org: Organisation) -> None:
        invoice = await draft(api, sim)
        org.contacts[invoice["customer_id"]]["PaymentTerms"] = {"Sales": {"Day": 20, "Type": "OFFOLLOWINGMONTH"}}
        posted_invoice = (await api.post(f"{ERP}/invoices/by-external-id/{INVOICE}/post")).json()
        assert (posted_invoice["issue_date"], posted_invoice["due_date"]) == ("2026-10-31", "2026-11-20")

    async def test_exchange_rates_are_not_asked_of_xero(self, api: ApiClient, recording: Recording) -> None:
        same = await api.get(f"{ERP}/exchange-rates/GBP/GBP", params={"on": "2026-10-31"})
        assert same.json() == {"base": "GBP", "quote": "GBP", "rate": "1", "date": "2026-10-31",
                               "source": "identity"}
        other = await api.get(f"{ERP}/exchange-rates/EUR/GBP", params={"on": "2026-10-31"})
        assert other.status_code == 404 and other.json()["code"] == "rate_not_found"
        assert recording.exchanges == []


class TestStatuses:
    async def test_sent_partially_paid_and_paid_follow_xeros_invoice(self, api: ApiClient, sim: XeroSimulator,
                                                                     client: XeroClient, org: Organisation) -> None:
        invoice = await posted(api, sim)
        before = org.invoices[invoice["id"]]["UpdatedDateUTC"]
        await client.request("POST", f"{ACCOUNTING}/Invoices/{invoice['id']}", key="mark-sent",
                             json={"Invoices": [{"InvoiceID": invoice["id"], "SentToContact": True}]})
        assert org.invoices[invoice["id"]]["UpdatedDateUTC"] != before
        assert (await read(api))["status"] == "sent"
        await api.put(f"{ERP}/payments/by-external-id/PAY-R1", json=payment(sim, "250.00"))
        partly = await read(api)
        assert (partly["status"], partly["amount_paid"]["amount"], partly["amount_due"]["amount"]) == (
            "partially_paid", "250.00", "750.00")
        await api.put(f"{ERP}/payments/by-external-id/PAY-R2", json=payment(sim, "750.00", reference=None))
        paid = await read(api)
        assert (paid["status"], paid["amount_paid"]["amount"], paid["amount_due"]["amount"]) == (
            "paid", "1000.00", "0.00")
        assert org.invoices[invoice["id"]]["Status"] == "PAID"
        # As instants, not text: "…13Z" (a whole second) sorts after "…13.004000Z" as a string.
        assert dt.datetime.fromisoformat(paid["updated_at"]) > dt.datetime.fromisoformat(partly["updated_at"])
        again = await api.put(f"{ERP}/payments/by-external-id/PAY-R2", json=payment(sim, "750.00", reference=None))
        assert again.status_code == 200 and again.json()["reference"] is None  # found again, though now nothing is due

    async def test_a_voided_invoice_is_void_owes_nothing_and_takes_no_payment(
            self, api: ApiClient, sim: XeroSimulator, client: XeroClient, org: Organisation) -> None:
        invoice = await posted(api, sim)
        await client.request("POST", f"{ACCOUNTING}/Invoices/{invoice['id']}", key="void",
                             json={"Invoices": [{"InvoiceID": invoice["id"], "Status": "VOIDED"}]})
        void = await read(api)
        assert (void["status"], void["amount_due"]["amount"]) == ("void", "0.00")
        state = books(org)
        refused = await api.put(f"{ERP}/payments/by-external-id/PAY-R1", json=payment(sim, "10.00"))
        assert refused.status_code == 422 and refused.json()["code"] == "invoice_not_posted"
        again = await api.post(f"{ERP}/invoices/by-external-id/{INVOICE}/post")
        assert again.status_code == 422 and again.json()["code"] == "invoice_void"
        assert books(org) == state

    async def test_an_invoice_settled_by_an_allocated_credit_note_is_credited(
            self, api: ApiClient, sim: XeroSimulator, client: XeroClient, recording: Recording) -> None:
        invoice = await posted(api, sim)
        memo = await api.put(f"{ERP}/credit-memos/by-external-id/CM-R1", json={
            "customer_id": invoice["customer_id"], "project_external_id": "PRJ-X0001",
            "legal_entity_id": sim.tenant(CODE), "period": "2026-10", "currency": "GBP",
            "invoice_external_id": INVOICE, "reason": "goodwill", "lines": [
                {"kind": "credit", "description": "goodwill", "quantity": "-1",
                 "unit_price": {"amount": "1000.00", "currency": "GBP"},
                 "amount": {"amount": "-1000.00", "currency": "GBP"}}]})
        note = memo.json()["id"]
        # approved and allocated in Xero by the firm's accountant
        await client.request("POST", f"{ACCOUNTING}/CreditNotes/{note}", key="approve-note",
                             json={"CreditNotes": [{"CreditNoteID": note, "Status": "AUTHORISED"}]})
        await client.request("PUT", f"{ACCOUNTING}/CreditNotes/{note}/Allocations", key="allocate-half", json={
            "Allocations": [{"Amount": Decimal("400.00"), "Date": "2026-11-05",
                             "Invoice": {"InvoiceID": invoice["id"]}}]})
        partly = await read(api)
        assert (partly["status"], partly["amount_paid"]["amount"], partly["amount_due"]["amount"]) == (
            "posted", "0.00", "600.00")
        await client.request("PUT", f"{ACCOUNTING}/CreditNotes/{note}/Allocations", key="allocate-rest", json={
            "Allocations": [{"Amount": Decimal("600.00"), "Date": "2026-11-06",
                             "Invoice": {"InvoiceID": invoice["id"]}}]})
        credited = await read(api)
        assert (credited["status"], credited["amount_paid"]["amount"], credited["amount_due"]["amount"]) == (
            "credited", "0.00", "0.00")
        refused = await api.put(f"{ERP}/payments/by-external-id/PAY-R1", json=payment(sim, "1.00"))
        assert refused.status_code == 422 and refused.json()["code"] == "overpayment"
        check_all(recording)


class TestRefusedPayments:
    @pytest.mark.parametrize(("amount", "currency", "code"), [
        ("1000.01", "GBP", "overpayment"), ("10.00", "EUR", "currency_mismatch")])
    async def test_a_refused_payment_is_never_sent_and_changes_nothing(
            self, api: ApiClient, sim: XeroSimulator, org: Organisation, recording: Recording, amount: str,
            currency: str, code: str) -> None:
        await posted(api, sim)
        state = books(org)
        refused = await api.put(f"{ERP}/payments/by-external-id/PAY-R1", json=payment(sim, amount, currency=currency))
        assert refused.status_code == 422 and refused.json()["code"] == code, refused.text
        assert books(org) == state and sent(recording, "PUT", r"/Payments$") == []

    async def test_a_payment_on_a_draft_is_not_posted(self, api: ApiClient, sim: XeroSimulator,
                                                      org: Organisation) -> None:
        await draft(api, sim)
        state = books(org)
        refused = await api.put(f"{ERP}/payments/by-external-id/PAY-R1", json=payment(sim, "10.00"))
        assert refused.status_code == 422 and refused.json()["code"] == "invoice_not_posted"
        assert books(org) == state

    async def test_xero_refusing_a_payment_changes_nothing_in_its_books(self, client: XeroClient, api: ApiClient,
                                                                       sim: XeroSimulator, org: Organisation) -> None:
        from system_apis._internal.http import VendorRejected

        invoice = await posted(api, sim)
        state = books(org)
        for body in ({"Amount": Decimal("1000.01")}, {"Amount": Decimal("10.00"), "Date": "2026-08-31"},
                     {"Amount": Decimal("10.00"), "Account": {"Code": "4000"}}):
            with pytest.raises(VendorRejected):
                await client.request("PUT", f"{ACCOUNTING}/Payments", key=f"refused-{len(str(body))}", json={
                    "Payments": [{"Invoice": {"InvoiceID": invoice["id"]}, "Account": {"Code": "090"},
                                  "Date": "2026-11-20", **body}]})
        assert books(org) == state

    async def test_a_payment_xero_refuses_because_the_invoice_was_paid_meanwhile_keeps_its_code(
            self, api: ApiClient, sim: XeroSimulator, org: Organisation, meanwhile: Meanwhile) -> None:
        invoice = await posted(api, sim)
        meanwhile.before(r"PUT .*/Payments$", lambda: save_payment(org, {
            "Invoice": {"InvoiceID": invoice["id"]}, "Account": {"Code": "090"}, "Date": "2026-11-19",
            "Amount": Decimal("900.00"), "Reference": "cheque 42"}))
        refused = await api.put(f"{ERP}/payments/by-external-id/PAY-R1", json=payment(sim, "400.00"))
        assert refused.status_code == 422 and refused.json()["code"] == "overpayment", refused.text
        assert [p["Reference"] for p in org.payments.values()] == ["cheque 42"]


class TestOnce:
    async def test_the_same_payment_key_pays_once_even_when_xero_forgot_the_idempotency_key(
            self, api: ApiClient, sim: XeroSimulator, recording: Recording) -> None:
        await posted(api, sim)
        recording.lose_answer = re.compile(r"PUT .*/Payments$")
        first = await api.put(f"{ERP}/payments/by-external-id/PAY-R1", json=payment(sim, "400.00"))
        assert first.status_code == 201, first.text  # the retry got Xero's first answer by its Idempotency-Key
        sim.idempotent.clear()
        again = await api.put(f"{ERP}/payments/by-external-id/PAY-R1", json=payment(sim, "400.00"))
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
        assert sim.count("payment", None) == 1
        assert (await read(api))["amount_paid"]["amount"] == "400.00"

    async def test_posting_twice_approves_once(self, api: ApiClient, sim: XeroSimulator, recording: Recording) -> None:
        first = await posted(api, sim)
        again = (await api.post(f"{ERP}/invoices/by-external-id/{INVOICE}/post")).json()
        assert again == first and len(sent(recording, "POST", r"/Invoices/[0-9a-f-]{36}$")) == 1
