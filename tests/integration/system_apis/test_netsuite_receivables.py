"""NetSuite receivables against the simulator: what goes on the wire, what NetSuite refuses, what it reads back.

The shared journey (`test_erp_receivables.py`) proves the canonical behaviour; these pin NetSuite's side of
it: the approval PATCH and due date, the customerPayment body, refusals that leave NetSuite unchanged (the
adapter's own checks and NetSuite's), credit memos applied, voided invoices, the poll's `q` and currency
rates read in NetSuite's direction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from system_apis._internal.http import VendorRejected
from system_apis.demo_firm import HOME_ENTITIES, firm_for
from system_apis.domains.erp import erp_router
from system_apis.netsuite import BASE_URL, NetSuiteClient, NetSuiteErp
from system_apis.netsuite._queries import exchange_rate_query
from system_apis.netsuite.client import RECORD_PATH, SUITEQL_PATH
from system_apis.netsuite.simulator import NetSuiteSimulator
from tests.integration.system_apis.vendor_kit import PACE, Sleeps, asgi, domain_api, vendor_http

ApiClient = AsyncTestClient[Litestar]
ERP = "/system/erp/v1"
FIRM = firm_for(HOME_ENTITIES)
US_PROJECT = next(p for p in FIRM.projects if p.legal_entity_code == "US01" and p.status == "active")


class Sent(msgspec.Struct, frozen=True):
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return msgspec.json.decode(self.body)


class Recorder(httpx.AsyncBaseTransport):
    """Passes every exchange to the simulator and keeps what was sent; ``before`` may act first."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.sent: list[Sent] = []
        self.before: Callable[[httpx.Request], Awaitable[None]] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.sent.append(Sent(method=request.method, path=request.url.path, params=dict(request.url.params),
                              headers=dict(request.headers), body=body))
        if self.before is not None:
            await self.before(request)
        return await self.inner.handle_async_request(request)

    def to(self, method: str, path_part: str) -> list[Sent]:
        return [s for s in self.sent if s.method == method and path_part in s.path]

    def collection(self, record: str) -> list[Sent]:
        return [s for s in self.sent if s.method == "GET" and s.path == f"{RECORD_PATH}/{record}"]


@pytest.fixture
def sim() -> NetSuiteSimulator:
    return NetSuiteSimulator()


@pytest.fixture
def wire(sim: NetSuiteSimulator) -> Recorder:
    return Recorder(asgi(sim.app))


@pytest.fixture
async def client(sim: NetSuiteSimulator, wire: Recorder, sleeps: Sleeps) -> AsyncIterator[NetSuiteClient]:
    async with vendor_http(sim.app, BASE_URL, transport=wire) as http:
        yield NetSuiteClient(http, sleep=sleeps, retry=PACE)


@pytest.fixture
async def api(client: NetSuiteClient) -> AsyncIterator[ApiClient]:
    async with domain_api(erp_router(NetSuiteErp(client))) as test_client:
        yield test_client


@pytest.fixture
def customer_id(sim: NetSuiteSimulator) -> str:
    return str(sim.store.find("customer", f"eid:{US_PROJECT.account_id}")["id"])


def _invoice(customer_id: str, amount: str = "1000.00", period: str = "2026-10") -> dict[str, Any]:
    money = {"amount": amount, "currency": "USD"}
    return {"customer_id": customer_id, "project_external_id": US_PROJECT.external_id, "legal_entity_id": "1",
            "period": period, "currency": "USD", "lines": [
                {"kind": "time", "description": "Consulting", "quantity": "1", "unit_price": money, "amount": money,
                 "source_keys": ["K-1"]}]}


def _pay(invoice: str, amount: str, currency: str = "USD", day: str = "2026-11-20") -> dict[str, Any]:
    return {"invoice_external_id": invoice, "legal_entity_id": "1", "date": day,
            "amount": {"amount": amount, "currency": currency}, "reference": "BACS 4711"}


def _credit(customer_id: str, invoice: str, amount: str) -> dict[str, Any]:
    money = {"amount": f"-{amount}", "currency": "USD"}
    return {"customer_id": customer_id, "project_external_id": US_PROJECT.external_id, "legal_entity_id": "1",
            "period": "2026-11", "currency": "USD", "invoice_external_id": invoice, "reason": "over-billed",
            "lines": [{"kind": "credit", "description": "Credit", "quantity": "-1",
                       "unit_price": {"amount": amount, "currency": "USD"}, "amount": money}]}


async def _posted(api: ApiClient, customer_id: str, key: str, amount: str = "1000.00") -> dict[str, Any]:
    drafted = await api.put(f"{ERP}/invoices/by-external-id/{key}", json=_invoice(customer_id, amount))
    assert drafted.status_code == 201, drafted.text
    response = await api.post(f"{ERP}/invoices/by-external-id/{key}/post")
    assert response.status_code == 200, response.text
    posted: dict[str, Any] = response.json()
    return posted


async def _read(api: ApiClient, key: str) -> dict[str, Any]:
    response = await api.get(f"{ERP}/invoices/by-external-id/{key}")
    assert response.status_code == 200, response.text
    invoice: dict[str, Any] = response.json()
    return invoice


class TestPosting:
    async def test_approval_is_one_patch_with_the_due_date_of_the_projects_terms(
            self, api: ApiClient, sim: NetSuiteSimulator, wire: Recorder, customer_id: str) -> None:
        sim.store.find("job", f"eid:{US_PROJECT.external_id}")["custentity_psc_payment_terms_days"] = 45
        posted = await _posted(api, customer_id, "INV-P1")
        record = sim.store.find("invoice", "eid:INV-P1")
        [patch] = wire.to("PATCH", "/invoice/")
        assert patch.path == f"{RECORD_PATH}/invoice/{record['id']}"
        assert patch.json() == {"approvalStatus": {"id": "2"}, "dueDate": "2026-12-15"}  # 31 Oct + 45 days
        assert (record["status"]["refName"], record["amountRemaining"]) == ("Open", Decimal("1000.00"))
        assert (posted["status"], posted["issue_date"], posted["due_date"]) == ("posted", "2026-10-31", "2026-12-15")
        assert (posted["amount_paid"]["amount"], posted["amount_due"]["amount"]) == ("0", "1000.00")

    async def test_posting_a_posted_invoice_sends_nothing_and_changes_nothing(
            self, api: ApiClient, sim: NetSuiteSimulator, wire: Recorder, customer_id: str) -> None:
        first = await _posted(api, customer_id, "INV-P2")
        again = await api.post(f"{ERP}/invoices/by-external-id/INV-P2/post")
        assert again.json() == first and len(wire.to("PATCH", "/invoice/")) == 1

    async def test_terms_netsuite_already_applied_are_kept(self, api: ApiClient, sim: NetSuiteSimulator,
                                                           wire: Recorder, customer_id: str) -> None:
        await api.put(f"{ERP}/invoices/by-external-id/INV-P3", json=_invoice(customer_id))
        sim.store.find("invoice", "eid:INV-P3").update(terms={"id": "4", "refName": "Net 15"}, dueDate="2026-11-15")
        posted = (await api.post(f"{ERP}/invoices/by-external-id/INV-P3/post")).json()
        assert wire.to("PATCH", "/invoice/")[0].json() == {"approvalStatus": {"id": "2"}}
        assert posted["due_date"] == "2026-11-15"

    async def test_a_locked_period_refuses_the_approval(self, api: ApiClient, sim: NetSuiteSimulator,
                                                        customer_id: str) -> None:
        await api.put(f"{ERP}/invoices/by-external-id/INV-P4", json=_invoice(customer_id))
        sim.store.periods[("1", "2026-10")]["arLocked"] = True
        response = await api.post(f"{ERP}/invoices/by-external-id/INV-P4/post")
        assert response.status_code == 422 and response.json()["code"] == "period_closed", response.text
        assert sim.store.find("invoice", "eid:INV-P4")["status"]["refName"] == "Pending Approval"

    async def test_a_voided_invoice_is_neither_posted_nor_paid(self, api: ApiClient, sim: NetSuiteSimulator,
                                                               customer_id: str) -> None:
        await api.put(f"{ERP}/invoices/by-external-id/INV-P5", json=_invoice(customer_id))
        sim.void_invoice("INV-P5")
        void = await _read(api, "INV-P5")
        assert (void["status"], void["amount_due"]["amount"]) == ("void", "0")
        refused = await api.post(f"{ERP}/invoices/by-external-id/INV-P5/post")
        assert refused.status_code == 422 and refused.json()["code"] == "invoice_void"
        paid = await api.put(f"{ERP}/payments/by-external-id/PAY-P5", json=_pay("INV-P5", "1.00"))
        assert paid.status_code == 422 and paid.json()["code"] == "invoice_not_posted"


class TestPayments:
    async def test_a_payment_is_a_customer_payment_applied_to_the_invoice(
            self, api: ApiClient, sim: NetSuiteSimulator, wire: Recorder, customer_id: str) -> None:
        invoice = await _posted(api, customer_id, "INV-Q1")
        response = await api.put(f"{ERP}/payments/by-external-id/PAY-Q1", json=_pay("INV-Q1", "400.00"))
        assert response.status_code == 201, response.text
        [put] = wire.to("PUT", "/customerPayment/")
        assert (put.path, put.params) == (f"{RECORD_PATH}/customerPayment/eid:PAY-Q1", {"replace": "apply"})
        assert b'"payment":400.00' in put.body  # a JSON number, never a float or a string
        assert put.json() == {
            "externalId": "PAY-Q1", "customer": {"id": customer_id}, "subsidiary": {"id": "1"},
            "currency": {"refName": "USD", "id": "1"}, "tranDate": "2026-11-20", "payment": 400.0,
            "memo": "BACS 4711", "undepFunds": True, "autoApply": False,
            "apply": {"items": [{"doc": {"id": invoice["id"]}, "apply": True, "amount": 400.0}]}}
        payment = response.json()
        assert payment == {"id": payment["id"], "external_id": "PAY-Q1", "invoice_external_id": "INV-Q1",
                           "legal_entity_id": "1", "date": "2026-11-20",
                           "amount": {"amount": "400.00", "currency": "USD"}, "reference": "BACS 4711"}
        record = sim.store.find("invoice", "eid:INV-Q1")
        assert (record["amountPaid"], record["amountRemaining"]) == (Decimal("400.00"), Decimal("600.00"))

    async def test_refusals_are_decided_before_netsuite_is_written(
            self, api: ApiClient, sim: NetSuiteSimulator, wire: Recorder, customer_id: str) -> None:
        await api.put(f"{ERP}/invoices/by-external-id/INV-Q2", json=_invoice(customer_id))
        draft = await api.put(f"{ERP}/payments/by-external-id/PAY-Q2", json=_pay("INV-Q2", "1.00"))
        assert draft.status_code == 422 and draft.json()["code"] == "invoice_not_posted"
        await api.post(f"{ERP}/invoices/by-external-id/INV-Q2/post")
        before = dict(sim.store.find("invoice", "eid:INV-Q2"))
        for body, code in ((_pay("INV-Q2", "1000.01"), "overpayment"),
                           (_pay("INV-Q2", "10.00", currency="EUR"), "currency_mismatch")):
            response = await api.put(f"{ERP}/payments/by-external-id/PAY-Q2", json=body)
            assert response.status_code == 422 and response.json()["code"] == code, response.text
        assert wire.to("PUT", "/customerPayment/") == [] and sim.count("customerPayment", None) == 0
        assert sim.store.find("invoice", "eid:INV-Q2") == before

    async def test_netsuite_refuses_what_the_adapter_would_and_changes_nothing(
            self, client: NetSuiteClient, api: ApiClient, sim: NetSuiteSimulator, customer_id: str) -> None:
        await api.put(f"{ERP}/invoices/by-external-id/INV-Q3", json=_invoice(customer_id))
        draft_id = str(sim.store.find("invoice", "eid:INV-Q3")["id"])
        await _posted(api, customer_id, "INV-Q4")
        posted = sim.store.find("invoice", "eid:INV-Q4")
        before = dict(posted)

        def body(doc: str, amount: str, currency: str = "USD") -> dict[str, Any]:
            return {"customer": {"id": customer_id}, "subsidiary": {"id": "1"}, "currency": {"refName": currency},
                    "tranDate": "2026-11-20", "payment": Decimal(amount),
                    "apply": {"items": [{"doc": {"id": doc}, "apply": True, "amount": Decimal(amount)}]}}

        cases = ((body(draft_id, "1.00"), "INVALID_KEY_OR_REF", "apply.items[0].doc"),
                 (body(str(posted["id"]), "1000.01"), "INVALID_FLD_VALUE", "apply.items[0].amount"),
                 (body(str(posted["id"]), "1.00", "EUR"), "INVALID_FLD_VALUE", "currency"),
                 ({**body(str(posted["id"]), "1.00"), "tranDate": "2026-08-20"}, "PERIOD_CLOSED", "tranDate"))
        for sent, code, path in cases:
            with pytest.raises(VendorRejected) as refused:
                await client.upsert("customerPayment", "PAY-Q4", sent, replace=("apply",))
            assert refused.value.code == code
            assert isinstance(refused.value.body, dict)
            assert refused.value.body["o:errorDetails"][0]["o:errorPath"] == path
        assert sim.count("customerPayment", None) == 0 and sim.store.receivables.links == []
        assert sim.store.find("invoice", "eid:INV-Q4") == before

    async def test_a_payment_netsuite_refuses_after_a_race_keeps_its_canonical_code(
            self, api: ApiClient, sim: NetSuiteSimulator, wire: Recorder, customer_id: str) -> None:
        invoice = await _posted(api, customer_id, "INV-Q5")

        async def someone_pays_first(request: httpx.Request) -> None:
            if request.method == "PUT" and "/customerPayment/eid:PAY-Q5" in request.url.path:
                sim.store.upsert("customerPayment", "OTHER-1", {
                    "customer": {"id": customer_id}, "currency": {"refName": "USD"}, "tranDate": "2026-11-19",
                    "payment": Decimal("900"), "apply": {"items": [
                        {"doc": {"id": invoice["id"]}, "apply": True, "amount": Decimal("900")}]}}, set())

        wire.before = someone_pays_first
        response = await api.put(f"{ERP}/payments/by-external-id/PAY-Q5", json=_pay("INV-Q5", "500.00"))
        assert response.status_code == 422 and response.json()["code"] == "overpayment", response.text
        assert sim.count("customerPayment", "PAY-Q5") == 0

    async def test_a_replayed_upsert_reapplies_instead_of_paying_twice(
            self, client: NetSuiteClient, api: ApiClient, sim: NetSuiteSimulator, customer_id: str) -> None:
        invoice = await _posted(api, customer_id, "INV-Q6")
        sent = {"customer": {"id": customer_id}, "currency": {"refName": "USD"}, "tranDate": "2026-11-20",
                "payment": Decimal("250"), "apply": {"items": [
                    {"doc": {"id": invoice["id"]}, "apply": True, "amount": Decimal("250")}]}}
        first = await client.upsert("customerPayment", "PAY-Q6", sent, replace=("apply",))
        stamp = sim.store.find("invoice", "eid:INV-Q6")["lastModifiedDate"]
        assert await client.upsert("customerPayment", "PAY-Q6", sent, replace=("apply",)) == first
        record = sim.store.find("invoice", "eid:INV-Q6")
        assert (record["amountPaid"], record["lastModifiedDate"]) == (Decimal("250"), stamp)
        assert sim.count("customerPayment", "PAY-Q6") == 1


class TestStanding:
    async def test_credits_reduce_the_amount_due_without_counting_as_paid(
            self, api: ApiClient, sim: NetSuiteSimulator, customer_id: str) -> None:
        await _posted(api, customer_id, "INV-S1")
        assert (await api.put(f"{ERP}/credit-memos/by-external-id/CM-S1",
                              json=_credit(customer_id, "INV-S1", "300.00"))).status_code == 201
        credited = await _read(api, "INV-S1")
        assert (credited["status"], credited["amount_paid"]["amount"], credited["amount_due"]["amount"]) == (
            "posted", "0", "700.00")
        await api.put(f"{ERP}/payments/by-external-id/PAY-S1", json=_pay("INV-S1", "700.00"))
        paid = await _read(api, "INV-S1")
        assert (paid["status"], Decimal(paid["amount_paid"]["amount"]), Decimal(paid["amount_due"]["amount"])) == (
            "paid", Decimal("700.00"), Decimal(0))
        assert sim.store.find("invoice", "eid:INV-S1")["status"]["refName"] == "Paid In Full"

    async def test_an_invoice_offset_by_credit_memos_alone_reads_credited(
            self, api: ApiClient, sim: NetSuiteSimulator, customer_id: str) -> None:
        await _posted(api, customer_id, "INV-S2")
        before = (await _read(api, "INV-S2"))["updated_at"]
        await api.put(f"{ERP}/credit-memos/by-external-id/CM-S2", json=_credit(customer_id, "INV-S2", "1000.00"))
        credited = await _read(api, "INV-S2")
        assert (credited["status"], Decimal(credited["amount_due"]["amount"])) == ("credited", Decimal(0))
        assert credited["updated_at"] >= before  # stamped to the second: the same second is possible
        assert sim.store.find("creditMemo", "eid:CM-S2")["applied"] == Decimal("1000.00")

    async def test_a_credit_on_a_draft_stays_unapplied(self, api: ApiClient, sim: NetSuiteSimulator,
                                                       customer_id: str) -> None:
        await api.put(f"{ERP}/invoices/by-external-id/INV-S3", json=_invoice(customer_id))
        await api.put(f"{ERP}/credit-memos/by-external-id/CM-S3", json=_credit(customer_id, "INV-S3", "100.00"))
        draft = await _read(api, "INV-S3")
        assert (draft["status"], draft["amount_due"]["amount"]) == ("draft", "1000.00")
        assert sim.store.find("creditMemo", "eid:CM-S3")["unapplied"] == Decimal("100.00")

    async def test_the_poll_sends_last_modified_rounded_up_to_the_second(
            self, api: ApiClient, wire: Recorder) -> None:
        since = "2026-11-20T10:00:00.250+01:00"
        assert (await api.get(f"{ERP}/invoices", params={"updated_since": since})).json()["items"] == []
        [listed] = wire.collection("invoice")
        assert listed.params["q"] == 'lastModifiedDate ON_OR_AFTER "2026-11-20T09:00:01Z"'

    async def test_the_poll_combines_with_project_and_period(self, api: ApiClient, wire: Recorder,
                                                             customer_id: str) -> None:
        await api.put(f"{ERP}/invoices/by-external-id/INV-S4", json=_invoice(customer_id))
        since = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
        listed = (await api.get(f"{ERP}/invoices", params={"updated_since": since, "period": "2026-10",
                                                           "project_external_id": US_PROJECT.external_id})).json()
        assert [i["external_id"] for i in listed["items"]] == ["INV-S4"]
        q = wire.collection("invoice")[-1].params["q"]
        assert q.startswith("job EQUAL ") and 'custbody_psc_period IS "2026-10" AND lastModifiedDate ON_OR_AFTER' in q


class TestExchangeRates:
    @staticmethod
    def _stored(sim: NetSuiteSimulator, base: str, transaction: str, day: str) -> Decimal:
        [rate] = [r["exchangeRate"] for r in sim.store.records["currencyRate"].values()
                  if (r["baseCurrency"]["refName"], r["transactionCurrency"]["refName"], r["effectiveDate"])
                  == (base, transaction, day)]
        return Decimal(rate)

    async def test_rates_are_seeded_monthly_for_each_base_currency(self, sim: NetSuiteSimulator,
                                                                   client: NetSuiteClient) -> None:
        assert sim.count("currencyRate", None) == 3 * 4 * 12  # USD, GBP, EUR bases x the 4 other demo currencies
        record = await client.get("currencyRate", "1")
        assert set(record) >= {"baseCurrency", "transactionCurrency", "exchangeRate", "effectiveDate"}

    async def test_a_stored_rate_reads_in_netsuites_direction(self, api: ApiClient, sim: NetSuiteSimulator,
                                                              wire: Recorder) -> None:
        rate = (await api.get(f"{ERP}/exchange-rates/CAD/GBP", params={"on": "2026-10-15"})).json()
        # NetSuite: base GBP, transaction CAD, exchangeRate = GBP for one CAD = the canonical CAD -> GBP rate.
        assert rate == {"base": "CAD", "quote": "GBP", "date": "2026-10-01", "source": "erp",
                        "rate": str(self._stored(sim, "GBP", "CAD", "2026-10-01"))}
        [query] = wire.to("POST", SUITEQL_PATH)
        assert query.json() == {"q": exchange_rate_query("CAD", "GBP", dt.date(2026, 10, 15))}
        assert query.headers["prefer"] == "transient"

    async def test_the_other_direction_is_derived_to_ten_places(self, api: ApiClient, sim: NetSuiteSimulator) -> None:
        rate = (await api.get(f"{ERP}/exchange-rates/GBP/CAD", params={"on": "2026-10-31"})).json()
        stored = self._stored(sim, "GBP", "CAD", "2026-10-01")  # CAD is no subsidiary's base: only GBP per CAD
        assert Decimal(rate["rate"]) == (1 / stored).quantize(Decimal("1E-10"))
        assert (rate["base"], rate["quote"], rate["date"]) == ("GBP", "CAD", "2026-10-01")

    async def test_none_before_the_first_rate_and_identity_without_asking(self, api: ApiClient,
                                                                         wire: Recorder) -> None:
        early = await api.get(f"{ERP}/exchange-rates/EUR/USD", params={"on": "2025-12-31"})
        assert early.status_code == 404 and early.json()["code"] == "rate_not_found"
        same = (await api.get(f"{ERP}/exchange-rates/USD/USD", params={"on": "2026-03-03"})).json()
        assert (same["rate"], same["date"]) == ("1", "2026-03-03")
        assert len(wire.to("POST", SUITEQL_PATH)) == 1
