"""Certinia expenses and contract expense terms: what the shared journey test cannot see.

The SOQL the adapter sends (pse__Expense__c, receipts through ContentDocumentLink in slices), the receipt
URL answering with the file, keyset paging whose cursor carries its query, pages that stay the same under
faults (a failed receipt query fails the page: it never yields expenses wrongly without receipts), and the
mapping's edge cases (approved box, lost receipts, foreign-currency rates, Certinia's shipped type names,
projects without terms, limits that are not the contract's caps).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from litestar import Router

from contracts.common import Money
from contracts.psa import ExpenseTerms
from foundation.retry import RetryPolicy
from system_apis._internal.faults import Fault
from system_apis._internal.force_rest import API_PATH
from system_apis._internal.http import VendorRejected
from system_apis.certinia import BASE_URL, CertiniaClient, CertiniaPsa, CertiniaTime
from system_apis.certinia._expense_mapping import expense_of, expense_terms_of, receipts_of, terms_fields
from system_apis.certinia.mapping import MappingError
from system_apis.certinia.simulator import CertiniaSimulator
from system_apis.demo_delivery import DEMO_PERIOD, defect_expenses, expenses
from system_apis.demo_firm import HOME_ENTITIES, demo_firm, firm_for
from system_apis.domains.psa import psa_router
from system_apis.domains.time import time_router
from tests.integration.system_apis.vendor_kit import Clock, Sleeps, asgi, domain_api, vendor_http

PSA = "/system/psa/v1"
TIME = "/system/time/v1"
Record = dict[str, Any]


@pytest.fixture
def clock() -> Clock:
    clock = Clock()
    clock.now = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC).timestamp()
    return clock


@pytest.fixture
def sim(clock: Clock) -> CertiniaSimulator:
    # DE01's October: a few hundred expenses; small batches make every query follow nextRecordsUrl.
    return CertiniaSimulator(legal_entities=("DE01",), time_period=DEMO_PERIOD, batch_size=7, clock=clock)


class FlakyReceipts(httpx.AsyncBaseTransport):
    """The org, except that the first `failures` receipt queries (ContentDocumentLink) answer 503."""

    def __init__(self, inner: httpx.AsyncBaseTransport, failures: int) -> None:
        self.inner = inner
        self.failures = failures
        self.refused = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if "ContentDocumentLink" in request.url.params.get("q", "") and self.refused < self.failures:
            self.refused += 1
            return httpx.Response(503, json=[{"message": "try later", "errorCode": "SERVER_UNAVAILABLE"}])
        return await self.inner.handle_async_request(request)


@pytest.fixture
def flaky(sim: CertiniaSimulator) -> FlakyReceipts:
    return FlakyReceipts(asgi(sim.app), failures=0)


@pytest.fixture
async def http(sim: CertiniaSimulator, flaky: FlakyReceipts) -> AsyncIterator[httpx.AsyncClient]:
    async with vendor_http(sim.app, BASE_URL, transport=flaky) as client:
        yield client


@pytest.fixture
def client(http: httpx.AsyncClient, sleeps: Sleeps) -> CertiniaClient:
    return CertiniaClient(http, sleep=sleeps, retry=RetryPolicy(max_attempts=3))


@pytest.fixture
async def api(client: CertiniaClient) -> AsyncIterator[httpx.AsyncClient]:
    router = Router(path="/", route_handlers=[psa_router(CertiniaPsa(client)), time_router(CertiniaTime(client))])
    async with domain_api(router) as c:
        yield c


async def walk(api: httpx.AsyncClient, params: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        response = await api.get(f"{TIME}/expenses", params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= int(params.get("limit", 500))
        items += body["items"]
        cursor = body.get("next_cursor")
        if not cursor:
            return items


def soql_sent(sim: CertiniaSimulator) -> list[str]:
    return [r.query["q"] for r in sim.received if r.path == f"{API_PATH}/query"]


def expense_record(**fields: Any) -> Record:
    """A pse__Expense__c row as SOQL returns it (relationship fields nested)."""
    return {"Id": "a0eCa0000000001AAA", "pse__Expense_Date__c": "2026-10-06", "pse__Amount__c": Decimal("42.00"),
            "CurrencyIsoCode": "EUR", "pse__Type__c": "Travel", "pse__Billable__c": True, "pse__Billed__c": False,
            "pse__Resource__c": "003Ca0000000001AAA", "pse__Resource__r": {"Email": "a@meridian.example"},
            "pse__Project__r": {"External_Id__c": "PRJ-A0003"}, "pse__Status__c": "Submitted",
            "pse__Approved__c": False, "LastModifiedDate": "2026-10-07T08:00:00.000+0000", **fields}


def first_project(sim: CertiniaSimulator) -> Record:
    return min(sim.records("pse__Proj__c"), key=lambda p: str(p["External_Id__c"]))


class TestSeed:
    def test_an_entity_holds_the_expenses_of_its_default_account(self, sim: CertiniaSimulator) -> None:
        # DE01 alone in this org: the expenses (and no defect) it has in the home entities' time account.
        home = firm_for(HOME_ENTITIES, demo_firm())
        mine = {p.external_id for p in home.projects if p.legal_entity_code == "DE01"}
        staff = {w.id for w in home.workers if w.legal_entity_code == "DE01"}
        expected = sorted((e.date.isoformat(), e.amount) for e in [
            *expenses(home.projects, home.workers, *DEMO_PERIOD), *defect_expenses(home.projects, home.workers)]
            if e.project_external_id in mine and e.worker_id in staff)
        seeded = sorted((r["pse__Expense_Date__c"], r["pse__Amount__c"]) for r in sim.records("pse__Expense__c"))
        assert seeded == expected

    def test_the_acquired_entitys_org_holds_its_defects(self, clock: Clock) -> None:
        acquired = CertiniaSimulator(demo_time=True, clock=clock)
        records = acquired.records("pse__Expense__c")
        assert [r["pse__Type__c"] for r in records if r["pse__Lost_Receipt__c"]] == ["Lodging (Room and Tax)"]
        assert any(r["pse__Type__c"] == "Entertainment" and r["pse__Approved__c"] for r in records)
        assert len(acquired.records("ContentDocumentLink")) == len(acquired.records("ContentVersion")) > 0


class TestWire:
    async def test_expenses_are_soql_on_pse_expense_then_receipts_by_linked_entity(
            self, sim: CertiniaSimulator, api: httpx.AsyncClient) -> None:
        response = await api.get(f"{TIME}/expenses", params={
            "status": "approved", "project_code": "PRJ-A0003", "from": "2026-10-01", "to": "2026-10-31", "limit": 5})
        assert response.status_code == 200, response.text
        expense_query, *receipt_queries = soql_sent(sim)
        assert expense_query.startswith("SELECT Id, Name, pse__Expense_Date__c, pse__Amount__c, CurrencyIsoCode")
        assert " FROM pse__Expense__c WHERE pse__Approved__c = true AND pse__Expense_Date__c >= 2026-10-01 AND " \
               "pse__Expense_Date__c <= 2026-10-31 AND pse__Project__r.External_Id__c = 'PRJ-A0003' " \
               "ORDER BY Id LIMIT 6" in expense_query
        assert receipt_queries and all(" FROM ContentDocumentLink WHERE LinkedEntityId IN ('a0e" in q
                                       for q in receipt_queries)
        assert all(r.headers["authorization"] == "Bearer sim-token" for r in sim.received)

    async def test_receipt_url_answers_with_the_file(self, sim: CertiniaSimulator, api: httpx.AsyncClient,
                                                     http: httpx.AsyncClient) -> None:
        listed = await walk(api, {"limit": 50})
        receipt = next(e["receipt_url"] for e in listed if e["receipt_url"])
        assert receipt.startswith(f"{BASE_URL}{API_PATH}/sobjects/ContentVersion/068")
        assert receipt.endswith("/VersionData")
        file = await http.get(receipt, headers={"Authorization": "Bearer sim-token"})
        assert file.status_code == 200 and file.content.startswith(b"%PDF")
        assert (await http.get(receipt)).status_code == 401  # the org's session is needed, as for any API call

    async def test_receipts_of_a_big_page_are_read_in_slices(self, sim: CertiniaSimulator,
                                                             api: httpx.AsyncClient) -> None:
        assert len(sim.records("pse__Expense__c")) > 250
        assert len((await api.get(f"{TIME}/expenses", params={"limit": 250})).json()["items"]) == 250
        receipt_queries = [q for q in soql_sent(sim) if "ContentDocumentLink" in q]
        assert [q.count("'a0e") for q in receipt_queries] == [200, 50]

    async def test_an_unfiltered_receipt_query_is_refused_like_salesforce(self, client: CertiniaClient) -> None:
        with pytest.raises(VendorRejected) as refused:
            await client.query_batch("SELECT Id FROM ContentDocumentLink")
        assert refused.value.code == "MALFORMED_QUERY"


class TestPaging:
    async def test_small_pages_walk_every_expense_once(self, sim: CertiniaSimulator, api: httpx.AsyncClient) -> None:
        small = await walk(api, {"limit": 7})
        whole = (await api.get(f"{TIME}/expenses", params={"limit": 2000})).json()
        assert "next_cursor" not in whole or whole["next_cursor"] is None
        assert small == whole["items"]
        assert sorted(e["id"] for e in small) == sorted(r["Id"] for r in sim.records("pse__Expense__c"))

    async def test_a_cursor_carries_its_query(self, api: httpx.AsyncClient) -> None:
        first = (await api.get(f"{TIME}/expenses", params={"status": "submitted", "limit": 1})).json()
        assert first["items"][0]["status"] == "submitted" and first["next_cursor"]
        rest = await walk(api, {"status": "approved", "limit": 3, "cursor": first["next_cursor"]})
        assert rest and all(e["status"] == "submitted" for e in rest)

    async def test_a_foreign_or_forged_cursor_is_a_problem(self, api: httpx.AsyncClient) -> None:
        other = (await api.get(f"{TIME}/projects", params={"limit": 1})).json()["next_cursor"]
        for cursor in (other, "bm90LWEtY3Vyc29y", "a0eCa0000000001AAA"):
            response = await api.get(f"{TIME}/expenses", params={"cursor": cursor})
            assert response.status_code == 422, cursor

    async def test_unknown_expense_is_404_without_a_query_for_junk(self, sim: CertiniaSimulator,
                                                                   api: httpx.AsyncClient) -> None:
        assert (await api.get(f"{TIME}/expenses/a0eCa0000009999AAA")).status_code == 404
        sent = len(sim.received)
        assert (await api.get(f"{TIME}/expenses/EX-1' OR Id != null")).status_code == 404
        assert len(sim.received) == sent


class TestFaults:
    async def test_a_page_retried_after_server_errors_is_the_same_page(self, sim: CertiniaSimulator,
                                                                       api: httpx.AsyncClient) -> None:
        calm = await walk(api, {"limit": 40})
        sim.faults.add(Fault(kind="server_error", status=500, count=2, path="/query"))
        stormy = await walk(api, {"limit": 40})
        assert stormy == calm and len({e["id"] for e in stormy}) == len(stormy)
        assert sim.faults.injected == 2

    async def test_a_receipt_query_retried_keeps_every_receipt(self, api: httpx.AsyncClient,
                                                               flaky: FlakyReceipts) -> None:
        calm = (await api.get(f"{TIME}/expenses", params={"limit": 60})).json()["items"]
        flaky.failures, flaky.refused = 2, 0
        again = (await api.get(f"{TIME}/expenses", params={"limit": 60})).json()["items"]
        assert flaky.refused == 2 and again == calm
        assert any(e["receipt_url"] for e in again)

    async def test_receipts_the_org_cannot_give_fail_the_page(self, api: httpx.AsyncClient,
                                                              flaky: FlakyReceipts) -> None:
        # A page without receipts would read as "receipt missing" downstream: refuse it instead.
        flaky.failures = 100
        response = await api.get(f"{TIME}/expenses", params={"limit": 10})
        assert response.status_code == 503
        assert response.json()["code"] == "vendor_unavailable"


class TestOrgChanges:
    async def test_an_expense_changed_in_the_org_is_listed_as_changed(self, sim: CertiniaSimulator, clock: Clock,
                                                                      api: httpx.AsyncClient) -> None:
        record = sim.records("pse__Expense__c")[3]
        clock.now += 3600
        since = dt.datetime.fromtimestamp(clock.now, dt.UTC)
        sim.org.update("pse__Expense__c", record, {"pse__Notes__c": "corrected by the approver"})
        changed = await walk(api, {"updated_since": since.isoformat()})
        assert [e["id"] for e in changed] == [record["Id"]]
        assert changed[0]["notes"] == "corrected by the approver"

    async def test_the_approved_box_wins_over_the_status_picklist(self, sim: CertiniaSimulator,
                                                                  api: httpx.AsyncClient) -> None:
        record = next(r for r in sim.records("pse__Expense__c") if r["pse__Status__c"] == "Submitted")
        sim.org.update("pse__Expense__c", record, {"pse__Approved__c": True})
        approved = {e["id"] for e in await walk(api, {"status": "approved"})}
        submitted = {e["id"] for e in await walk(api, {"status": "submitted"})}
        assert record["Id"] in approved and record["Id"] not in submitted

    async def test_an_expense_with_an_unknown_status_is_refused_not_guessed(self, sim: CertiniaSimulator,
                                                                            api: httpx.AsyncClient) -> None:
        # As an unreadable timecard is: the vendor's data, not the caller's request, is at fault.
        record = next(r for r in sim.records("pse__Expense__c") if not r["pse__Approved__c"])
        sim.org.update("pse__Expense__c", record, {"pse__Status__c": "Pending Review"})
        response = await api.get(f"{TIME}/expenses/{record['Id']}")
        assert response.status_code == 422 and "unknown expense status 'Pending Review'" in response.json()["detail"]

    async def test_mileage_is_distance_times_the_applied_rate(self, sim: CertiniaSimulator,
                                                              api: httpx.AsyncClient) -> None:
        mileage = [e for e in await walk(api, {}) if e["category"] == "Mileage"]
        assert mileage
        for expense in mileage:
            assert expense["unit_price"]["amount"] == "0.70"  # Decimal as JSON string in psconnect's contract
            assert Decimal(expense["units"]) * Decimal("0.70") == Decimal(expense["amount"]["amount"])


class TestMapping:
    def test_shipped_type_names_are_canonical_categories(self) -> None:
        for certinia, canonical in (("Auto Mileage", "Mileage"), ("Lodging (Room and Tax)", "Lodging"),
                                    ("Business Meals", "Meals"), ("Personal Meals", "Personal Meals"),
                                    ("Travel", "Travel")):
            assert expense_of(expense_record(pse__Type__c=certinia), None).category == canonical

    def test_a_lost_receipt_hides_whatever_is_attached(self) -> None:
        url = "https://meridian-ca.my.salesforce.com/x"
        assert expense_of(expense_record(), url).receipt_url == url
        assert expense_of(expense_record(pse__Lost_Receipt__c=True), url).receipt_url is None

    def test_a_rate_in_another_currency_prices_the_unit_from_the_line(self) -> None:
        line = expense_record(pse__Amount__c=Decimal("30.00"), pse__Distance__c=Decimal("40"),
                              pse__Applied_Expense_Rate__r={"pse__Amount__c": Decimal("0.5000"),
                                                            "CurrencyIsoCode": "USD"})
        expense = expense_of(line, None)
        assert expense.units == Decimal("40") and expense.unit_price == Money(amount=Decimal("0.7500"),
                                                                              currency="EUR")
        same = expense_of({**line, "pse__Applied_Expense_Rate__r": {"pse__Amount__c": Decimal("0.7500"),
                                                                    "CurrencyIsoCode": "EUR"}}, None)
        assert same.unit_price == Money(amount=Decimal("0.75"), currency="EUR")

    def test_notes_fall_back_to_the_description_and_statuses_map(self) -> None:
        assert expense_of(expense_record(pse__Description__c="taxi"), None).notes == "taxi"
        assert expense_of(expense_record(pse__Status__c="Draft"), None).status == "draft"
        assert expense_of(expense_record(pse__Status__c="Rejected"), None).status == "rejected"
        approved = expense_of(expense_record(pse__Status__c="Submitted", pse__Approved__c=True), None)
        assert approved.status == "approved" and approved.approved_at is not None
        with pytest.raises(MappingError):
            expense_of(expense_record(pse__Amount__c=None), None)

    def test_the_first_file_of_an_expense_is_its_receipt(self) -> None:
        links = [{"LinkedEntityId": "a0e1", "ContentDocumentId": "069B", "ContentDocument": {
            "LatestPublishedVersionId": "068B"}}, {"LinkedEntityId": "a0e1", "ContentDocumentId": "069A",
                                                   "ContentDocument": {"LatestPublishedVersionId": "068A"}}]
        assert receipts_of(links) == {"a0e1": f"{BASE_URL}{API_PATH}/sobjects/ContentVersion/068A/VersionData"}

    def test_terms_survive_the_wire_both_ways(self) -> None:
        terms = ExpenseTerms(billable_categories=["Travel", "Lodging", "Mileage"], markup_percent=Decimal("12.5"),
                             receipt_required_above=Money(amount=Decimal("50.00"), currency="CAD"))
        project = {"pse__Is_Billable__c": True, **terms_fields(terms)}
        assert project["Billable_Expense_Types__c"] == "Travel;Lodging (Room and Tax);Auto Mileage"
        assert expense_terms_of(project, [], currency="CAD") == terms


class TestExpenseTerms:
    async def test_a_project_without_terms_has_none(self, sim: CertiniaSimulator, api: httpx.AsyncClient) -> None:
        project = first_project(sim)
        sim.org.update("pse__Proj__c", project, {"Billable_Expense_Types__c": None})
        read = (await api.get(f"{PSA}/projects/{project['Id']}")).json()
        assert read["expense_terms"] is None

    async def test_a_project_excluded_from_billing_bills_no_category(self, sim: CertiniaSimulator,
                                                                     api: httpx.AsyncClient) -> None:
        project = first_project(sim)
        sim.org.update("pse__Proj__c", project, {"pse__Exclude_from_Billing__c": True})
        terms = (await api.get(f"{PSA}/projects/{project['Id']}")).json()["expense_terms"]
        assert terms["billable_categories"] == [] and set(terms["caps"]) == {"Lodging", "Meals"}

    async def test_only_the_projects_own_active_unrestricted_limits_are_caps(self, sim: CertiniaSimulator,
                                                                             api: httpx.AsyncClient) -> None:
        project = first_project(sim)
        base = {"pse__Project__c": project["Id"], "pse__Is_Rate__c": False, "pse__Is_Active__c": True,
                "CurrencyIsoCode": project["CurrencyIsoCode"]}
        sim.org.insert("pse__Expense_Limit_Rate__c", {**base, "pse__Type__c": "Airfare", "pse__Amount__c": 900,
                                                      "pse__Is_Active__c": False})
        sim.org.insert("pse__Expense_Limit_Rate__c", {**base, "pse__Type__c": "Phone", "pse__Amount__c": 50,
                                                      "pse__Resource_Role__c": "Consultant"})
        sim.org.insert("pse__Expense_Limit_Rate__c", {**base, "pse__Type__c": "Auto Mileage",
                                                      "pse__Amount__c": Decimal("0.65"), "pse__Is_Rate__c": True})
        sim.org.insert("pse__Expense_Limit_Rate__c", {**base, "pse__Type__c": "Business Meals",
                                                      "pse__Amount__c": 120, "pse__Start_Date__c": "2026-11-01"})
        terms = (await api.get(f"{PSA}/projects/{project['Id']}")).json()["expense_terms"]
        assert {k: v["amount"] for k, v in terms["caps"].items()} == {"Lodging": "400.00", "Meals": "120.00"}

    async def test_upserting_a_project_keeps_its_contract_terms(self, sim: CertiniaSimulator,
                                                                api: httpx.AsyncClient) -> None:
        project = first_project(sim)
        before = (await api.get(f"{PSA}/projects/{project['Id']}")).json()["expense_terms"]
        body = {"title": "Renamed", "client_name": "Contoso GmbH",
                "budget": {"amount": "1000.00", "currency": project["CurrencyIsoCode"]},
                "billing_terms": "time_and_materials"}
        response = await api.put(f"{PSA}/projects/by-external-id/{project['External_Id__c']}", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["expense_terms"] == before and before is not None
