"""Business Central receivables against the simulator: what goes on the wire, what it refuses, what it reads back.

The shared journey (`test_erp_receivables.py`) proves the canonical behaviour; these pin Business Central's side:
each salesInvoice status as a canonical one (void and credited too), the post action and due date, the
negative cash receipt journal line and its journal's post, the `lastModifiedDateTime` filter of the poll,
refused payments leaving the company as it was, interrupted payments finished once, and currencyExchangeRates.
Every exchange is checked against the vendored API document, as in `test_businesscentral.py`.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from system_apis._internal.faults import Fault
from system_apis.businesscentral import BASE_URL, BusinessCentralClient, BusinessCentralErp
from system_apis.businesscentral.simulator import BusinessCentralSimulator, company_id
from system_apis.domains.erp import erp_router
from tests.integration.system_apis.test_businesscentral import Recording, check_exchange
from tests.integration.system_apis.vendor_kit import PACE, Sleeps, asgi, domain_api, vendor_http

ApiClient = AsyncTestClient[Litestar]
ERP = "/system/erp/v1"
ENTITY = "DE01"
COMPANY = company_id(ENTITY)


@pytest.fixture
def sim() -> BusinessCentralSimulator:
    return BusinessCentralSimulator(legal_entities=(ENTITY,))


@pytest.fixture
def recording(sim: BusinessCentralSimulator) -> Iterator[Recording]:
    recorded = Recording(asgi(sim.app))
    yield recorded
    for request, status, body in recorded.exchanges:
        check_exchange(request, status, body)


@pytest.fixture
async def http(sim: BusinessCentralSimulator, recording: Recording) -> AsyncIterator[httpx.AsyncClient]:
    async with vendor_http(sim.app, BASE_URL, transport=recording) as client:
        yield client


@pytest.fixture
def client(http: httpx.AsyncClient, sleeps: Sleeps) -> BusinessCentralClient:
    return BusinessCentralClient(http, retry=PACE, sleep=sleeps, budget=None)


@pytest.fixture
async def api(client: BusinessCentralClient) -> AsyncIterator[ApiClient]:
    async with domain_api(erp_router(BusinessCentralErp(client))) as test_client:
        yield test_client


async def _projects(api: ApiClient) -> list[dict[str, Any]]:
    body = (await api.get(f"{ERP}/projects", params={"limit": "200"})).json()
    return [p for p in body["items"] if p["status"] == "active" and p["currency"] == "EUR"]


async def _draft(api: ApiClient, key: str, amount: str = "1000.00", project: int = 0) -> dict[str, Any]:
    chosen = (await _projects(api))[project]
    money = {"amount": amount, "currency": "EUR"}
    response = await api.put(f"{ERP}/invoices/by-external-id/{key}", json={
        "customer_id": chosen["customer_id"], "project_external_id": chosen["external_id"], "legal_entity_id": ENTITY,
        "period": "2026-10", "currency": "EUR", "lines": [{"kind": "milestone", "description": "Kick-off",
                                                            "quantity": "1", "unit_price": money, "amount": money,
                                                            "source_keys": [f"{key}-MS"]}]})
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


async def _posted(api: ApiClient, key: str, amount: str = "1000.00") -> dict[str, Any]:
    await _draft(api, key, amount)
    response = await api.post(f"{ERP}/invoices/by-external-id/{key}/post")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _pay(api: ApiClient, key: str, invoice: str, amount: str, *, currency: str = "EUR",
               day: str = "2026-11-20") -> httpx.Response:
    return await api.put(f"{ERP}/payments/by-external-id/{key}", json={
        "invoice_external_id": invoice, "legal_entity_id": COMPANY, "date": day,
        "amount": {"amount": amount, "currency": currency}, "reference": "remittance 7"})


async def _invoice(api: ApiClient, key: str) -> dict[str, Any]:
    response = await api.get(f"{ERP}/invoices/by-external-id/{key}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _bc(sim: BusinessCentralSimulator, entity_set: str, **match: Any) -> list[dict[str, Any]]:
    return [r for r in sim.records(ENTITY, entity_set) if all(r.get(k) == v for k, v in match.items())]


def _journal_lines(sim: BusinessCentralSimulator, code: str = "PSCONNECT") -> list[dict[str, Any]]:
    journals = _bc(sim, "customerPaymentJournals", code=code)
    return [dict(line) for j in journals for line in sim.store.lines[COMPANY][j["id"]].values()]


def _writes(recording: Recording, since: int) -> list[tuple[str, str]]:
    return [(r.method, r.url.path) for r, _, _ in recording.exchanges[since:]
            if r.method != "GET" and "/oauth2/" not in r.url.path]


def _amount(money: dict[str, Any] | None) -> Decimal:
    assert money is not None
    return Decimal(money["amount"])


class TestStatuses:
    async def test_a_draft_is_posted_then_partially_paid_then_paid(self, api: ApiClient) -> None:
        draft = await _draft(api, "INV-ST-1")
        assert (draft["status"], _amount(draft["amount_paid"]), _amount(draft["amount_due"])) == (
            "draft", Decimal(0), Decimal("1000.00"))
        assert (draft["issue_date"], draft["due_date"]) == ("2026-10-31", "2026-11-30")  # the project's 30 days
        posted = (await api.post(f"{ERP}/invoices/by-external-id/INV-ST-1/post")).json()
        assert (posted["status"], _amount(posted["amount_due"])) == ("posted", Decimal("1000.00"))
        assert posted["updated_at"] > draft["updated_at"]
        assert (await _pay(api, "PAY-ST-1", "INV-ST-1", "400.00")).status_code == 201
        partly = await _invoice(api, "INV-ST-1")
        assert (partly["status"], _amount(partly["amount_paid"]), _amount(partly["amount_due"])) == (
            "partially_paid", Decimal("400.00"), Decimal("600.00"))
        assert (await _pay(api, "PAY-ST-2", "INV-ST-1", "600.00")).status_code == 201
        paid = await _invoice(api, "INV-ST-1")
        assert (paid["status"], _amount(paid["amount_paid"]), _amount(paid["amount_due"])) == (
            "paid", Decimal("1000.00"), Decimal(0))

    async def test_a_cancelled_invoice_is_void_and_takes_no_payment(self, api: ApiClient, client: BusinessCentralClient,
                                                                   sim: BusinessCentralSimulator) -> None:
        invoice = await _posted(api, "INV-ST-2")
        await client.action(await client.url(f"salesInvoices({invoice['id']})/Microsoft.NAV.cancel"))
        void = await _invoice(api, "INV-ST-2")
        assert (void["status"], _amount(void["amount_paid"]), _amount(void["amount_due"])) == (
            "void", Decimal(0), Decimal(0))
        assert [m["status"] for m in _bc(sim, "salesCreditMemos", invoiceId=invoice["id"])] == ["Corrective"]
        refused = await _pay(api, "PAY-ST-3", "INV-ST-2", "10.00")
        assert refused.status_code == 422 and refused.json()["code"] == "invoice_not_posted"
        again = await api.post(f"{ERP}/invoices/by-external-id/INV-ST-2/post")
        assert again.status_code == 200 and again.json()["status"] == "void"

    async def test_credit_memos_reduce_what_is_due_and_alone_make_an_invoice_credited(
            self, api: ApiClient, client: BusinessCentralClient) -> None:
        for key, credit in (("INV-ST-3", "1000.00"), ("INV-ST-4", "300.00")):
            invoice = await _posted(api, key)
            money = {"amount": credit, "currency": "EUR"}
            lines = [{"kind": "credit", "description": "Kick-off reversed", "quantity": "1", "unit_price": money,
                      "amount": money}]
            memo = (await api.put(f"{ERP}/credit-memos/by-external-id/CM-{key}", json={
                "customer_id": invoice["customer_id"], "project_external_id": invoice["project_external_id"],
                "legal_entity_id": ENTITY, "period": "2026-10", "currency": "EUR", "invoice_external_id": key,
                "reason": "Milestone moved", "lines": lines})).json()
            await client.action(await client.url(f"salesCreditMemos({memo['id']})/Microsoft.NAV.post"))
        credited = await _invoice(api, "INV-ST-3")
        assert (credited["status"], _amount(credited["amount_paid"]), _amount(credited["amount_due"])) == (
            "credited", Decimal(0), Decimal(0))
        reduced = await _invoice(api, "INV-ST-4")
        assert (reduced["status"], _amount(reduced["amount_paid"]), _amount(reduced["amount_due"])) == (
            "posted", Decimal(0), Decimal("700.00"))
        over = await _pay(api, "PAY-ST-4", "INV-ST-4", "700.01")
        assert over.status_code == 422 and over.json()["code"] == "overpayment"
        assert (await _pay(api, "PAY-ST-4", "INV-ST-4", "700.00")).status_code == 201
        paid = await _invoice(api, "INV-ST-4")
        assert (paid["status"], _amount(paid["amount_paid"])) == ("paid", Decimal("700.00"))

    async def test_in_review_reads_as_a_draft_and_corrective_as_void(self, api: ApiClient,
                                                                     sim: BusinessCentralSimulator) -> None:
        invoice = await _draft(api, "INV-ST-5")
        record = _bc(sim, "salesInvoices", id=invoice["id"])[0]
        record["status"] = "In Review"  # an approval workflow holds it: Business Central sets this, psconnect never
        assert (await _invoice(api, "INV-ST-5"))["status"] == "draft"
        record.update(status="Corrective", remainingAmount=Decimal(0))  # an invoice cancelling a credit memo
        assert (await _invoice(api, "INV-ST-5"))["status"] == "void"

    async def test_a_payment_entered_in_business_central_reads_back_as_well(
            self, api: ApiClient, client: BusinessCentralClient) -> None:
        invoice = await _posted(api, "INV-ST-6")
        journal = await client.find(await client.url("customerPaymentJournals"), "code eq 'GENERAL'")
        assert journal is not None
        lines = await client.url(f"customerPaymentJournals({journal['id']})/customerPayments")
        await client.create(lines, {"postingDate": "2026-11-03", "documentNumber": "G00042",
                                    "amount": Decimal("-250.00"), "appliesToInvoiceId": invoice["id"]})
        await client.action(await client.url(f"customerPaymentJournals({journal['id']})/Microsoft.NAV.post"))
        read = await _invoice(api, "INV-ST-6")
        assert (read["status"], _amount(read["amount_paid"])) == ("partially_paid", Decimal("250.00"))


class TestWire:
    async def test_posting_is_the_bound_action_once_on_a_draft_carrying_the_due_date(
            self, api: ApiClient, recording: Recording) -> None:
        invoice = await _draft(api, "INV-W-1")
        headers = [msgspec.json.decode(r.content) for r, _, _ in recording.exchanges
                   if r.method == "POST" and r.url.path.endswith("/salesInvoices")]
        assert [(h["invoiceDate"], h["dueDate"]) for h in headers] == [("2026-10-31", "2026-11-30")]
        for _ in range(2):
            assert (await api.post(f"{ERP}/invoices/by-external-id/INV-W-1/post")).status_code == 200
        posts = [r.url.path for r, _, _ in recording.exchanges if r.url.path.endswith("/Microsoft.NAV.post")]
        assert posts == [f"/v2.0/sim-tenant/production/api/v2.0/companies({COMPANY})/salesInvoices({invoice['id']})"
                         "/Microsoft.NAV.post"]

    async def test_a_payment_is_a_negative_journal_line_in_psconnects_batch_posted_with_it(
            self, api: ApiClient, sim: BusinessCentralSimulator, recording: Recording) -> None:
        invoice = await _posted(api, "INV-W-2")
        start = len(recording.exchanges)
        first = await _pay(api, "PAY-W-1", "INV-W-2", "400.00")
        assert first.status_code == 201, first.text
        sent = [(r.method, r.url.path.rsplit("/", 1)[-1], msgspec.json.decode(r.content) if r.content else None)
                for r, _, _ in recording.exchanges[start:] if r.method != "GET" and "/oauth2/" not in r.url.path]
        assert [(m, p) for m, p, _ in sent] == [("POST", "customerPaymentJournals"), ("POST", "$batch"),
                                                ("POST", "Microsoft.NAV.post"), ("PATCH", f"psconnectRecords("
                                                                                           f"{first.json()['id']})")]
        journal, batch = sent[0][2], sent[1][2]
        assert journal is not None and batch is not None
        assert (journal["code"], journal["balancingAccountNumber"]) == ("PSCONNECT", "10100")
        record, line = (op["body"] for op in batch["requests"])
        assert (record["recordType"], record["recordKey"]) == ("payment", "PAY-W-1")
        assert line == {"customerId": invoice["customer_id"], "postingDate": "2026-11-20", "documentNumber": "PAY-W-1",
                        "externalDocumentNumber": "remittance 7", "amount": -400.0,
                        "appliesToInvoiceId": invoice["id"], "description": "Payment PAY-W-1",
                        "comment": "remittance 7"}
        assert _journal_lines(sim) == []  # posting the journal emptied it
        stored = _bc(sim, "psconnectRecords", recordType="payment", recordKey="PAY-W-1")[0]
        assert msgspec.json.decode(stored["data"])["status"] == "posted" and stored["targetId"]
        replayed = len(recording.exchanges)
        replay = await _pay(api, "PAY-W-1", "INV-W-2", "400.00")
        assert (replay.status_code, replay.json()) == (200, first.json())
        assert _writes(recording, replayed) == []

    async def test_the_poll_is_a_last_modified_filter_keeping_psconnects_invoices(
            self, api: ApiClient, client: BusinessCentralClient, recording: Recording) -> None:
        before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        first = await _draft(api, "INV-W-3")
        await _draft(api, "INV-W-4", project=1)
        await client.create(await client.url("salesInvoices"), {  # drafted in Business Central, not by psconnect
            "customerId": first["customer_id"], "invoiceDate": "2026-10-31", "postingDate": "2026-10-31"})
        start = len(recording.exchanges)
        changed = (await api.get(f"{ERP}/invoices", params={"updated_since": before.isoformat()})).json()["items"]
        assert sorted(i["external_id"] for i in changed) == ["INV-W-3", "INV-W-4"]
        asked = [r.url.params["$filter"] for r, _, _ in recording.exchanges[start:]
                 if r.url.path.endswith("/salesInvoices")]
        stamp = before.strftime("%Y-%m-%dT%H:%M:%S.") + f"{before.microsecond // 1000:03d}Z"
        assert asked == [f"lastModifiedDateTime ge {stamp}"]
        mine = (await api.get(f"{ERP}/invoices", params={"updated_since": before.isoformat(),
                                                         "project_external_id": first["project_external_id"]})).json()
        assert [i["external_id"] for i in mine["items"]] == ["INV-W-3"]
        later = dt.datetime.fromisoformat(max(i["updated_at"] for i in changed)) + dt.timedelta(seconds=1)
        assert (await api.get(f"{ERP}/invoices", params={"updated_since": later.isoformat()})).json()["items"] == []


class TestPayments:
    async def test_refused_payments_leave_business_central_as_it_was(self, api: ApiClient, recording: Recording,
                                                                     sim: BusinessCentralSimulator) -> None:
        await _draft(api, "INV-P-1")
        await _posted(api, "INV-P-2")
        sim.close_period(ENTITY, "2026-12")
        before = copy.deepcopy((sim.store.records, sim.store.lines))
        start = len(recording.exchanges)
        refusals = [(await _pay(api, "PAY-P-1", "INV-P-1", "100.00"), "invoice_not_posted"),
                    (await _pay(api, "PAY-P-2", "INV-P-2", "1000.01"), "overpayment"),
                    (await _pay(api, "PAY-P-3", "INV-P-2", "10.00", currency="USD"), "currency_mismatch"),
                    (await _pay(api, "PAY-P-4", "INV-P-2", "10.00", day="2026-12-02"), "period_closed"),
                    (await _pay(api, "PAY-P-5", "INV-P-2", "0.00"), "validation_failed")]
        assert [(r.status_code, r.json()["code"]) for r, _ in refusals] == [(422, code) for _, code in refusals]
        unknown = await _pay(api, "PAY-P-6", "INV-NONE", "10.00")
        assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")
        assert _writes(recording, start) == []
        assert (sim.store.records, sim.store.lines) == before

    async def test_a_payment_business_central_refuses_to_post_is_withdrawn(self, api: ApiClient,
                                                                          sim: BusinessCentralSimulator) -> None:
        await _posted(api, "INV-P-3")
        assert (await _pay(api, "PAY-P-7", "INV-P-3", "100.00")).status_code == 201
        _bc(sim, "customerPaymentJournals", code="PSCONNECT")[0]["balancingAccountNumber"] = ""  # unbalanced now
        refused = await _pay(api, "PAY-P-8", "INV-P-3", "100.00")
        assert refused.status_code == 422 and "out of balance" in refused.json()["detail"]
        assert _journal_lines(sim) == []
        assert _bc(sim, "psconnectRecords", recordType="payment", recordKey="PAY-P-8") == []
        assert _amount((await _invoice(api, "INV-P-3"))["amount_paid"]) == Decimal("100.00")

    async def test_a_journal_post_that_failed_is_finished_by_the_retry_once(self, api: ApiClient,
                                                                           sim: BusinessCentralSimulator) -> None:
        await _posted(api, "INV-P-4")
        sim.faults.add(Fault(kind="server_error", status=503, count=1,
                             path=r"/customerPaymentJournals\([^)]*\)/Microsoft\.NAV\.post$"))
        assert (await _pay(api, "PAY-P-9", "INV-P-4", "400.00")).status_code == 503
        assert [line["amount"] for line in _journal_lines(sim)] == [Decimal("-400.00")]  # entered, not posted
        retried = await _pay(api, "PAY-P-9", "INV-P-4", "400.00")
        assert retried.status_code == 200, retried.text
        invoice = await _invoice(api, "INV-P-4")
        assert (_amount(invoice["amount_paid"]), _journal_lines(sim)) == (Decimal("400.00"), [])

    @pytest.mark.parametrize("lost", ["/Microsoft.NAV.post", "/$batch"])
    async def test_a_lost_answer_neither_pays_twice_nor_loses_the_payment(
            self, api: ApiClient, sim: BusinessCentralSimulator, recording: Recording, lost: str) -> None:
        await _posted(api, "INV-P-5")
        recording.lose_next_answer_of = lost
        first = await _pay(api, "PAY-P-10", "INV-P-5", "400.00")
        again = await _pay(api, "PAY-P-10", "INV-P-5", "400.00")
        assert again.status_code == 200, again.text
        assert first.status_code == 503 or first.json()["id"] == again.json()["id"]
        invoice = await _invoice(api, "INV-P-5")
        assert (_amount(invoice["amount_paid"]), _journal_lines(sim)) == (Decimal("400.00"), [])
        assert len(_bc(sim, "psconnectRecords", recordType="payment")) == 1

    async def test_business_central_refuses_a_positive_line_applied_to_an_invoice(
            self, api: ApiClient, client: BusinessCentralClient, sim: BusinessCentralSimulator) -> None:
        invoice = await _posted(api, "INV-P-6")
        journal = _bc(sim, "customerPaymentJournals", code="GENERAL")[0]
        await client.create(await client.url(f"customerPaymentJournals({journal['id']})/customerPayments"), {
            "postingDate": "2026-11-03", "documentNumber": "G00043", "amount": Decimal("250.00"),
            "appliesToInvoiceId": invoice["id"]})
        with pytest.raises(Exception, match="Amount must be negative"):
            await client.action(await client.url(f"customerPaymentJournals({journal['id']})/Microsoft.NAV.post"))
        assert _amount((await _invoice(api, "INV-P-6"))["amount_due"]) == Decimal("1000.00")


class TestExchangeRates:
    async def test_rates_are_read_from_currency_exchange_rates_inverted_and_crossed(
            self, api: ApiClient, sim: BusinessCentralSimulator, recording: Recording) -> None:
        def stored(code: str) -> Decimal:
            row = _bc(sim, "currencyExchangeRates", currencyCode=code, startingDate="2026-10-01")[0]
            return Decimal(str(row["relationalExchangeRateAmount"])) / Decimal(str(row["exchangeRateAmount"]))

        usd = (await api.get(f"{ERP}/exchange-rates/USD/EUR", params={"on": "2026-10-31"})).json()
        assert (Decimal(usd["rate"]), usd["date"], usd["source"]) == (stored("USD"), "2026-10-01", "erp")
        assert [r.url.params["$filter"] for r, _, _ in recording.exchanges if "currencyExchangeRates" in r.url.path] \
            == ["currencyCode eq 'USD' and startingDate le 2026-10-31"]
        inverse = (await api.get(f"{ERP}/exchange-rates/EUR/USD", params={"on": "2026-10-31"})).json()
        assert Decimal(inverse["rate"]) == (1 / stored("USD")).quantize(Decimal("1e-10"))
        cross = (await api.get(f"{ERP}/exchange-rates/USD/GBP", params={"on": "2026-10-31"})).json()
        assert Decimal(cross["rate"]) == (stored("USD") / stored("GBP")).quantize(Decimal("1e-10"))
        same = (await api.get(f"{ERP}/exchange-rates/EUR/EUR", params={"on": "2026-10-31"})).json()
        assert (same["rate"], same["date"]) == ("1", "2026-10-31")
        early = await api.get(f"{ERP}/exchange-rates/USD/EUR", params={"on": "2025-12-31"})
        assert early.status_code == 404 and early.json()["code"] == "rate_not_found"
