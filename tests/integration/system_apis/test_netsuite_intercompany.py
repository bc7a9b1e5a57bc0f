"""NetSuite intercompany charges against the simulator: the documents on the wire, once per external id, the
counterparty entity made once and shared between subsidiaries.

The shared journey (`test_erp_intercompany.py`) proves the canonical behaviour; these pin NetSuite's side: an
approved ``invoice`` / ``vendorBill`` upserted by external id with ``replace=item`` on the intercompany service
item, the job linked on the payable side only, a retried PUT after a lost response or a 5xx recording once, the
representing customer/vendor created on first use and shared with a second subsidiary by a relationship record,
and intercompany receivables kept out of the client-invoice list.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from system_apis._internal.faults import Fault
from system_apis.demo_firm import HOME_ENTITIES, firm_for
from system_apis.domains.erp import erp_router
from system_apis.netsuite import BASE_URL, NetSuiteClient, NetSuiteErp
from system_apis.netsuite._intercompany_mapping import IC_SERVICE_ITEM
from system_apis.netsuite.client import RECORD_PATH
from system_apis.netsuite.simulator import NetSuiteSimulator
from system_apis.netsuite.simulator._store import NsError
from tests.integration.system_apis.vendor_kit import PACE, Sleeps, asgi, domain_api, vendor_http

ApiClient = AsyncTestClient[Litestar]
ERP = "/system/erp/v1"
FIRM = firm_for(HOME_ENTITIES)
US_PROJECT = next(p for p in FIRM.projects if p.legal_entity_code == "US01" and p.status == "active")
DOCS = (f"{RECORD_PATH}/invoice/", f"{RECORD_PATH}/vendorBill/")


class Wire(httpx.AsyncBaseTransport):
    """Passes every exchange to the simulator and keeps what was sent; it can lose the responses of some
    document PUTs (the write was applied, the answer never arrived)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.sent: list[tuple[str, str, dict[str, str], bytes]] = []
        self.lose_puts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.sent.append((request.method, request.url.path, dict(request.url.params), body))
        response = await self.inner.handle_async_request(request)
        if self.lose_puts and request.method == "PUT" and request.url.path.startswith(DOCS):
            self.lose_puts -= 1
            await response.aread()
            raise httpx.ReadTimeout("the response was lost", request=request)
        return response

    def puts(self) -> list[tuple[str, dict[str, str], Any]]:
        return [(path, params, msgspec.json.decode(body)) for method, path, params, body in self.sent
                if method == "PUT" and path.startswith(DOCS)]


@pytest.fixture
def sim() -> NetSuiteSimulator:
    return NetSuiteSimulator()


@pytest.fixture
def wire(sim: NetSuiteSimulator) -> Wire:
    return Wire(asgi(sim.app))


@pytest.fixture
async def api(sim: NetSuiteSimulator, wire: Wire, sleeps: Sleeps) -> AsyncIterator[ApiClient]:
    async with vendor_http(sim.app, BASE_URL, transport=wire) as http, \
            domain_api(erp_router(NetSuiteErp(NetSuiteClient(http, sleep=sleeps, retry=PACE)))) as test_client:
        yield test_client


def subsidiary(sim: NetSuiteSimulator, code: str) -> str:
    return next(str(s["id"]) for s in sim.store.records["subsidiary"].values() if s["custrecord_psc_code"] == code)


def charge(entity: str, side: str, counterparty: str, currency: str = "USD", project: str = "PRJ-ELSEWHERE-1",
           period: str = "2026-11") -> dict[str, Any]:
    rate = {"amount": "96.25", "currency": currency}
    return {"legal_entity_id": entity, "counterparty": counterparty, "side": side, "period": period,
            "currency": currency, "memo": "Seconded consultants",
            "lines": [{"line_key": "TE-1:a", "project_external_id": project, "employee_external_id": "W-00042",
                       "date": f"{period}-07", "hours": "6.5", "transfer_rate": rate,
                       "amount": {"amount": "625.63", "currency": currency}},
                      {"line_key": "TE-2:a:rev", "project_external_id": project, "employee_external_id": "W-00042",
                       "date": f"{period}-08", "hours": "-2", "transfer_rate": rate,
                       "amount": {"amount": "-192.50", "currency": currency}}]}


async def put(api: ApiClient, external_id: str, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    response = await api.put(f"{ERP}/intercompany-charges/by-external-id/{external_id}", json=body)
    assert response.status_code == status, response.text
    result: dict[str, Any] = response.json()
    return result


class TestWire:
    async def test_the_receivable_is_an_approved_invoice_to_the_customer_representing_the_counterparty(
            self, api: ApiClient, sim: NetSuiteSimulator, wire: Wire) -> None:
        us, uk = subsidiary(sim, "US01"), subsidiary(sim, "UK01")
        recorded = await put(api, "IC-W1-R", charge(us, "receivable", "UK01"))
        [(path, params, body)] = wire.puts()[-1:]
        assert path == f"{RECORD_PATH}/invoice/eid:IC-W1-R" and params == {"replace": "item"}
        customer = sim.store.find("customer", "eid:IC-CUST-UK01")
        assert customer["representingSubsidiary"] == {"id": uk} and customer["subsidiary"] == {"id": us}
        november = sim.store.periods[(us, "2026-11")]
        assert body["entity"] == {"id": customer["id"]} and body["approvalStatus"]["id"] == "2"
        assert (body["tranDate"], body["postingPeriod"], body["currency"]["refName"]) == (
            "2026-11-30", {"id": november["id"]}, "USD")
        assert "job" not in body and "custbody_psc_period" not in body
        first = body["item"]["items"][0]
        assert first["item"] == {"id": IC_SERVICE_ITEM} and "customer" not in first
        assert (first["quantity"], first["rate"], first["amount"]) == (6.5, 96.25, 625.63)
        assert (first["custcol_psc_line_key"], first["custcol_psc_ic_project"], first["custcol_psc_ic_employee"]) == (
            "TE-1:a", "PRJ-ELSEWHERE-1", "W-00042")
        assert "W-00042" in first["description"] and "PRJ-ELSEWHERE-1" in first["description"]
        stored = sim.store.find("invoice", "eid:IC-W1-R")
        assert stored["status"]["refName"] == "Open" and stored["total"] == Decimal("433.13")
        assert recorded["id"] == stored["id"] and recorded["total"] == {"amount": "433.13", "currency": "USD"}

    async def test_the_payable_is_a_foreign_currency_vendor_bill_with_the_own_project_linked(
            self, api: ApiClient, sim: NetSuiteSimulator, wire: Wire) -> None:
        us = subsidiary(sim, "US01")
        recorded = await put(api, "IC-W2-P", charge(us, "payable", "DE01", "EUR", US_PROJECT.external_id))
        [(path, _, body)] = wire.puts()[-1:]
        assert path == f"{RECORD_PATH}/vendorBill/eid:IC-W2-P"
        vendor = sim.store.find("vendor", "eid:IC-VEND-DE01")
        job = sim.store.find("job", f"eid:{US_PROJECT.external_id}")
        assert body["entity"] == {"id": vendor["id"]} and body["currency"]["refName"] == "EUR"
        assert all(item["customer"] == {"id": job["id"]} for item in body["item"]["items"])
        stored = sim.store.find("vendorBill", "eid:IC-W2-P")
        assert stored["status"]["refName"] == "Open" and stored["approvalStatus"]["id"] == "2"
        assert [ln["hours"] for ln in recorded["lines"]] == ["6.5", "-2"]

    async def test_intercompany_invoices_stay_out_of_the_client_invoice_list(self, api: ApiClient,
                                                                           sim: NetSuiteSimulator) -> None:
        await put(api, "IC-W3-R", charge(subsidiary(sim, "US01"), "receivable", "UK01"))
        listed = (await api.get(f"{ERP}/invoices", params={"limit": "200"})).json()["items"]
        assert "IC-W3-R" not in {i["external_id"] for i in listed}
        assert (await api.get(f"{ERP}/invoices/by-external-id/IC-W3-R")).status_code == 404


class TestOnce:
    async def test_the_same_external_id_writes_nothing_the_second_time(self, api: ApiClient, sim: NetSuiteSimulator,
                                                                       wire: Wire) -> None:
        body = charge(subsidiary(sim, "US01"), "receivable", "UK01")
        first = await put(api, "IC-O1-R", body)
        puts = len(wire.puts())
        again = await put(api, "IC-O1-R", body, status=200)
        assert again == first and len(wire.puts()) == puts and sim.count("invoice", "IC-O1-R") == 1

    async def test_a_put_whose_response_was_lost_lands_on_the_same_document(self, api: ApiClient,
                                                                            sim: NetSuiteSimulator, wire: Wire) -> None:
        wire.lose_puts = 1
        recorded = await put(api, "IC-O2-P", charge(subsidiary(sim, "US01"), "payable", "UK01"))
        bill = sim.store.find("vendorBill", "eid:IC-O2-P")
        assert len(wire.puts()) == 2 and sim.count("vendorBill", "IC-O2-P") == 1
        assert recorded["id"] == bill["id"] and len(bill["item"]["items"]) == 2

    async def test_5xx_on_the_put_is_retried_and_records_once(self, api: ApiClient, sim: NetSuiteSimulator,
                                                              sleeps: Sleeps) -> None:
        sim.faults.add(Fault(kind="server_error", status=503, method="PUT", path="vendorBill", count=2))
        await put(api, "IC-O3-P", charge(subsidiary(sim, "US01"), "payable", "UK01"))
        assert len(sleeps.waits) == 2 and sim.count("vendorBill", "IC-O3-P") == 1

    async def test_a_call_that_failed_after_the_write_answers_the_document_when_retried(
            self, api: ApiClient, sim: NetSuiteSimulator) -> None:
        sim.faults.add(Fault(kind="server_error", status=503, method="POST", path="suiteql", count=4))
        body = charge(subsidiary(sim, "US01"), "receivable", "UK01")
        failed = await api.put(f"{ERP}/intercompany-charges/by-external-id/IC-O4-R", json=body)
        assert failed.status_code >= 500 and sim.count("invoice", "IC-O4-R") == 1
        again = await put(api, "IC-O4-R", body, status=200)
        assert again["external_id"] == "IC-O4-R" and sim.count("invoice", "IC-O4-R") == 1


class TestCounterparty:
    async def test_the_counterparty_is_created_once_and_shared_with_a_second_subsidiary(
            self, api: ApiClient, sim: NetSuiteSimulator) -> None:
        us, de = subsidiary(sim, "US01"), subsidiary(sim, "DE01")
        await put(api, "IC-C1-R", charge(us, "receivable", "UK01"))
        await put(api, "IC-C2-R", charge(us, "receivable", "UK01", period="2026-10"))
        await put(api, "IC-C3-R", charge(de, "receivable", "UK01", "EUR"))
        await put(api, "IC-C4-R", charge(de, "receivable", "UK01", "EUR", period="2026-10"))
        assert sim.count("customer", "IC-CUST-UK01") == 1
        customer = sim.store.find("customer", "eid:IC-CUST-UK01")
        shared = list(sim.store.records["customerSubsidiaryRelationship"].values())
        assert [(r["entity"]["id"], r["subsidiary"]["id"]) for r in shared] == [(customer["id"], de)]
        assert sim.store.find("invoice", "eid:IC-C3-R")["entity"] == {"id": customer["id"]}

    async def test_an_entity_in_another_erp_gets_a_plain_vendor(self, api: ApiClient, sim: NetSuiteSimulator) -> None:
        await put(api, "IC-C5-P", charge(subsidiary(sim, "US01"), "payable", "CA01"))
        vendor = sim.store.find("vendor", "eid:IC-VEND-CA01")
        assert "representingSubsidiary" not in vendor and vendor["custentity_psc_ic_code"] == "CA01"

    async def test_a_subsidiary_cannot_charge_itself(self, api: ApiClient, sim: NetSuiteSimulator) -> None:
        response = await api.put(f"{ERP}/intercompany-charges/by-external-id/IC-C6-R",
                                 json=charge(subsidiary(sim, "US01"), "receivable", "US01"))
        assert response.status_code == 422 and sim.count("customer", "IC-CUST-US01") == 0

    async def test_netsuite_refuses_a_second_customer_representing_the_same_subsidiary(
            self, api: ApiClient, sim: NetSuiteSimulator) -> None:
        await put(api, "IC-C7-R", charge(subsidiary(sim, "US01"), "receivable", "UK01"))
        customer = sim.store.find("customer", "eid:IC-CUST-UK01")
        copy = {k: v for k, v in customer.items() if k not in ("id", "externalId", "addressBook")}
        with pytest.raises(NsError, match="already represented"):
            sim.store.upsert("customer", "IC-OTHER", copy, set())


class TestPeriods:
    async def test_an_ap_locked_period_refuses_the_payable_but_not_the_receivable(
            self, api: ApiClient, sim: NetSuiteSimulator) -> None:
        us = subsidiary(sim, "US01")
        sim.store.periods[(us, "2026-11")]["apLocked"] = True
        response = await api.put(f"{ERP}/intercompany-charges/by-external-id/IC-P1-P",
                                 json=charge(us, "payable", "UK01"))
        assert response.status_code == 422 and response.json()["code"] == "period_closed"
        assert sim.count("vendorBill", None) == 0
        await put(api, "IC-P1-R", charge(us, "receivable", "UK01"))
