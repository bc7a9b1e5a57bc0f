"""The NetSuite client and ERP routes against the NetSuite simulator, over its real wire format."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from contracts.correlation import correlation_id
from foundation.retry import RetryPolicy
from system_apis._internal.faults import Fault
from system_apis._internal.http import CircuitOpenError, VendorRateLimited, VendorRejected, VendorUnavailable
from system_apis.domains.erp import erp_router
from system_apis.netsuite import BASE_URL, NetSuiteClient, NetSuiteErp, create_router
from system_apis.netsuite.client import RECORD_PATH
from system_apis.netsuite.simulator import NetSuiteSimulator
from tests.integration.system_apis.vendor_kit import PACE, Sleeps, domain_api, vendor_http

ApiClient = AsyncTestClient[Litestar]


@pytest.fixture
def sim() -> NetSuiteSimulator:
    return NetSuiteSimulator()


@pytest.fixture
async def http(sim: NetSuiteSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with vendor_http(sim.app, BASE_URL) as client:
        yield client


@pytest.fixture
def client(http: httpx.AsyncClient, sleeps: Sleeps) -> NetSuiteClient:
    return NetSuiteClient(http, sleep=sleeps, retry=PACE)


@pytest.fixture
async def api(client: NetSuiteClient) -> AsyncIterator[ApiClient]:
    async with domain_api(erp_router(NetSuiteErp(client))) as test_client:
        yield test_client


ERP = "/system/erp/v1"


async def _all_pages(api: ApiClient, path: str, limits: list[int], **params: str) -> list[dict[str, Any]]:
    """Follow next_cursor to the end; the i-th request uses limits[i] (the last one repeats)."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = {**params, "limit": str(limits[min(pages, len(limits) - 1)])}
        if cursor:
            query["cursor"] = cursor
        response = await api.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        pages += 1
        cursor = body.get("next_cursor")
        if not cursor:
            return items


async def _customer(api: ApiClient, external_id: str = "ACC-0047", legal_entity_id: str = "2") -> dict[str, Any]:
    response = await api.put(f"{ERP}/customers/by-external-id/{external_id}", json={
        "name": "Contoso Holdings", "legal_entity_id": legal_entity_id, "currency": "GBP", "tax_id": "GB987654321",
        "billing_address": {"street": "12 Market Street", "city": "London", "postal_code": "EC1A 1BB",
                            "country": "GB"}})
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


def _project_body(customer_id: str, legal_entity_id: str = "2", **changes: Any) -> dict[str, Any]:
    return {"name": "Contoso — Strategy 2026", "customer_id": customer_id, "legal_entity_id": legal_entity_id,
            "currency": "GBP", "budget": {"amount": "245000.10", "currency": "GBP"},
            "start_date": "2026-11-16", "end_date": "2027-03-16",
            "tasks": [{"name": "Discovery", "planned_hours": "40"}, {"name": "Delivery", "planned_hours": "312.5"}],
            "billing": {"billing_type": "mixed", "payment_terms_days": 45, "milestones": [
                {"name": "Kick-off", "due_date": "2026-12-01", "amount": {"amount": "50000.05", "currency": "GBP"}}]},
            **changes}


class TestWireFormat:
    async def test_request_without_authorization_gets_netsuite_401(self, http: httpx.AsyncClient) -> None:
        response = await http.get(f"{RECORD_PATH}/subsidiary")
        assert response.status_code == 401
        assert response.json()["o:errorDetails"][0]["o:errorCode"] == "INVALID_LOGIN"

    async def test_bad_token_is_a_rejection_and_check_reports_false(self, http: httpx.AsyncClient) -> None:
        bad = NetSuiteClient(http, token=" ")
        with pytest.raises(VendorRejected) as exc:
            await bad.get("subsidiary", "1")
        assert (exc.value.status, exc.value.code) == (401, "INVALID_LOGIN")
        assert await bad.check() is False

    async def test_check_succeeds_with_a_token(self, client: NetSuiteClient) -> None:
        assert await client.check() is True

    async def test_collection_returns_ids_and_links_only(self, http: httpx.AsyncClient) -> None:
        response = await http.get(f"{RECORD_PATH}/accountingPeriod", params={"limit": 10, "offset": 10},
                                  headers={"Authorization": "Bearer t"})
        body = response.json()
        assert (body["count"], body["offset"], body["totalResults"], body["hasMore"]) == (10, 10, 36, True)
        assert set(body["items"][0]) == {"id", "links"}
        assert body["items"][0]["links"][0]["href"].startswith(BASE_URL + RECORD_PATH + "/accountingPeriod/")

    async def test_offset_must_be_a_multiple_of_limit(self, http: httpx.AsyncClient) -> None:
        response = await http.get(f"{RECORD_PATH}/subsidiary", params={"limit": 2, "offset": 1},
                                  headers={"Authorization": "Bearer t"})
        assert response.status_code == 400
        assert response.json()["o:errorDetails"][0]["o:errorCode"] == "INVALID_PARAMETER"

    async def test_iter_ids_follows_offset_paging_to_the_end(self, client: NetSuiteClient) -> None:
        ids = [i async for i in client.iter_ids("accountingPeriod", page_size=10)]
        assert len(ids) == len(set(ids)) == 36
        assert client.http.calls == 4

    async def test_control_routes_count_records(self, http: httpx.AsyncClient) -> None:
        await http.put(f"{RECORD_PATH}/customer/eid:ACC-0003", headers={"Authorization": "Bearer t"},
                       json={"companyName": "Acme", "subsidiary": {"id": "1"}})
        census = await http.get("/__sim__/count", params={"type": "customer", "external_id": "ACC-0003"})
        assert census.json()["count"] == 1

    async def test_simulator_publishes_no_openapi(self, http: httpx.AsyncClient) -> None:
        assert (await http.get("/schema/openapi.json")).status_code == 404

    async def test_upsert_answers_204_with_location(self, http: httpx.AsyncClient) -> None:
        response = await http.put(f"{RECORD_PATH}/customer/eid:ACC-0009", headers={"Authorization": "Bearer t"},
                                  json={"companyName": "Acme", "subsidiary": {"id": "1"}, "currency": {"id": "1"}})
        assert response.status_code == 204
        assert response.headers["Location"].startswith(f"{BASE_URL}{RECORD_PATH}/customer/")

    async def test_reading_a_record_names_its_references_and_leaves_the_record_as_stored(
            self, http: httpx.AsyncClient, sim: NetSuiteSimulator) -> None:
        auth = {"Authorization": "Bearer t"}
        created = await http.put(f"{RECORD_PATH}/customer/eid:ACC-0010", headers=auth,
                                 json={"companyName": "Acme", "subsidiary": {"id": "1"}, "currency": {"id": "1"}})
        location = created.headers["Location"]
        internal = location.rsplit("/", 1)[-1]
        stored = sim.store.records["customer"][internal]
        before = repr(stored)
        for _ in range(2):  # the second read renders from the same stored record as the first
            body = (await http.get(location.removeprefix(BASE_URL), headers=auth)).json()
            assert body["subsidiary"]["id"] == "1" and body["subsidiary"]["refName"]
            assert body["links"] == [{"rel": "self", "href": location}]
        assert repr(stored) == before and "links" not in stored and "refName" not in stored["subsidiary"]

    async def test_subsidiaries_are_read_only_to_the_integration(self, client: NetSuiteClient) -> None:
        with pytest.raises(VendorRejected) as exc:
            await client.upsert("subsidiary", "LE-FR01", {"name": "France"})
        assert (exc.value.status, exc.value.code) == (403, "INSUFFICIENT_PERMISSION")


class TestCapabilities:
    async def test_netsuite_posts_time_per_entry(self, api: ApiClient) -> None:
        response = await api.get(f"{ERP}/capabilities")
        assert response.status_code == 200
        assert response.json() == {"time_posting": "per_entry", "summary_grouping": [], "time_unit_minutes": 0}


class TestLegalEntities:
    async def test_pages_cover_every_subsidiary_once(self, api: ApiClient) -> None:
        items = await _all_pages(api, f"{ERP}/legal-entities", [2])
        assert sorted(i["code"] for i in items) == ["DE01", "UK01", "US01"]
        assert all(i["id"].isdigit() for i in items)
        uk = next(i for i in items if i["code"] == "UK01")
        assert (uk["currency"], uk["tax_regime"], uk["requires_customer_tax_id"]) == ("GBP", "uk_vat", True)

    async def test_get_by_internal_id(self, api: ApiClient, client: NetSuiteClient) -> None:
        internal = (await client.find_by_external_id("subsidiary", "LE-DE01") or {})["id"]
        response = await api.get(f"{ERP}/legal-entities/{internal}")
        assert response.status_code == 200
        assert response.json()["code"] == "DE01"

    async def test_unknown_id_is_a_404_problem(self, api: ApiClient) -> None:
        response = await api.get(f"{ERP}/legal-entities/999")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "NONEXISTENT_ID"

    async def test_external_id_syntax_cannot_sneak_through_the_id_route(self, api: ApiClient,
                                                                         client: NetSuiteClient) -> None:
        response = await api.get(f"{ERP}/legal-entities/eid:LE-US01")
        assert response.status_code == 404
        assert client.http.calls == 0


class TestAccountingPeriods:
    async def test_pages_cover_all_periods_even_when_limit_changes(self, api: ApiClient) -> None:
        items = await _all_pages(api, f"{ERP}/accounting-periods", [5, 7, 4])
        assert len(items) == 36
        assert len({i["id"] for i in items}) == 36

    async def test_filter_by_legal_entity(self, api: ApiClient, client: NetSuiteClient) -> None:
        uk = (await client.find_by_external_id("subsidiary", "LE-UK01") or {})["id"]
        items = await _all_pages(api, f"{ERP}/accounting-periods", [50], legal_entity_id=uk)
        assert len(items) == 12
        assert {i["legal_entity_id"] for i in items} == {uk}
        assert sum(1 for i in items if i["is_closed"]) > 0

    async def test_cursor_from_another_list_is_refused(self, api: ApiClient) -> None:
        first = (await api.get(f"{ERP}/legal-entities", params={"limit": 1})).json()
        response = await api.get(f"{ERP}/accounting-periods", params={"cursor": first["next_cursor"]})
        assert response.status_code == 422
        assert response.json()["code"] == "invalid_cursor"


class TestCustomers:
    async def test_upsert_creates_then_updates_one_record(self, api: ApiClient, sim: NetSuiteSimulator) -> None:
        body = {"name": "Contoso Holdings", "legal_entity_id": "2", "currency": "GBP", "tax_id": "GB987654321",
                "billing_address": {"street": "12 Market Street", "city": "London", "country": "GB"}}
        first = await api.put(f"{ERP}/customers/by-external-id/ACC-0047", json=body)
        assert first.status_code == 201, first.text
        second = await api.put(f"{ERP}/customers/by-external-id/ACC-0047", json={**body, "name": "Contoso Group"})
        assert second.status_code == 200
        assert second.json()["id"] == first.json()["id"]
        assert second.json()["name"] == "Contoso Group"
        assert second.json()["billing_address"]["city"] == "London"
        assert sim.count("customer", "ACC-0047") == 1
        stored = sim.store.find("customer", "eid:ACC-0047")
        assert len(stored["addressBook"]["items"]) == 1  # replaced, not appended

    async def test_get_customer(self, api: ApiClient) -> None:
        created = await _customer(api)
        response = await api.get(f"{ERP}/customers/{created['id']}")
        assert response.status_code == 200
        assert response.json()["external_id"] == "ACC-0047"

    async def test_unknown_subsidiary_is_a_422_problem(self, api: ApiClient, sim: NetSuiteSimulator) -> None:
        response = await api.put(f"{ERP}/customers/by-external-id/ACC-0045", json={
            "name": "Nowhere", "legal_entity_id": "42", "currency": "EUR"})
        assert response.status_code == 422
        assert response.json()["code"] == "INVALID_PARAMETER"
        assert sim.count("customer", "ACC-0045") == 0

    async def test_missing_customer_is_a_404_problem(self, api: ApiClient) -> None:
        response = await api.get(f"{ERP}/customers/123456")
        assert response.status_code == 404
        assert response.json()["type"].endswith("/not-found")


class TestProjects:
    async def test_upsert_creates_then_updates_exactly_one_job(self, api: ApiClient, sim: NetSuiteSimulator) -> None:
        customer = await _customer(api)
        first = await api.put(f"{ERP}/projects/by-external-id/OPP-0002", json=_project_body(customer["id"]))
        assert first.status_code == 201, first.text
        project = first.json()
        assert project["budget"] == {"amount": "245000.10", "currency": "GBP"}
        assert project["status"] == "pending"
        assert [t["planned_hours"] for t in project["tasks"]] == ["40", "312.5"]
        assert project["billing"]["milestones"][0]["amount"]["amount"] == "50000.05"
        again = await api.put(f"{ERP}/projects/by-external-id/OPP-0002",
                              json=_project_body(customer["id"], name="Contoso — Strategy 2026 (rev)"))
        assert again.status_code == 200
        assert again.json()["id"] == project["id"]
        assert len(again.json()["tasks"]) == 2  # task lines replaced, not appended
        assert sim.count("job", "OPP-0002") == 1

    async def test_list_and_get_by_external_id(self, api: ApiClient) -> None:
        customer = await _customer(api)
        for key in ("OPP-0001", "OPP-0002", "OPP-0003"):
            await api.put(f"{ERP}/projects/by-external-id/{key}", json=_project_body(customer["id"]))
        listed = (await api.get(f"{ERP}/projects", params={"external_id": "OPP-0002"})).json()["items"]
        assert [p["external_id"] for p in listed] == ["OPP-0002"]
        assert listed[0]["tasks"]  # list reads expand sublists too
        got = await api.get(f"{ERP}/projects/{listed[0]['id']}")
        assert got.json() == listed[0]
        everything = await _all_pages(api, f"{ERP}/projects", [10])
        keys = [p["external_id"] for p in everything]
        assert len(keys) == len(set(keys)) == 33  # the 30 seeded delivery projects and these three
        assert sorted(k for k in keys if k.startswith("OPP-")) == ["OPP-0001", "OPP-0002", "OPP-0003"]

    async def test_quote_in_external_id_filter_finds_nothing(self, api: ApiClient) -> None:
        response = await api.get(f"{ERP}/projects", params={"external_id": 'x" OR id EQUAL 1'})
        assert response.status_code == 200
        assert response.json()["items"] == []

    async def test_subsidiary_differing_from_customer_is_refused_without_retry(
            self, api: ApiClient, sim: NetSuiteSimulator, client: NetSuiteClient) -> None:
        customer = await _customer(api, legal_entity_id="2")
        calls = client.http.calls
        response = await api.put(f"{ERP}/projects/by-external-id/OPP-0007",
                                 json=_project_body(customer["id"], legal_entity_id="1"))
        assert response.status_code == 422
        assert response.json()["code"] == "USER_ERROR"
        assert client.http.calls - calls == 2  # the eid read and the refused PUT, once each
        assert sim.count("job", "OPP-0007") == 0

    async def test_missing_project_is_a_404_problem(self, api: ApiClient) -> None:
        assert (await api.get(f"{ERP}/projects/77777")).status_code == 404

    async def test_budget_currency_mismatch_is_a_422_before_any_vendor_call(
            self, api: ApiClient, client: NetSuiteClient) -> None:
        body = _project_body("1001", budget={"amount": "10", "currency": "USD"})
        response = await api.put(f"{ERP}/projects/by-external-id/OPP-0010", json=body)
        assert response.status_code == 422
        assert client.http.calls == 0


class TestResilience:
    async def test_429_is_retried_after_at_least_retry_after(self, client: NetSuiteClient, sim: NetSuiteSimulator,
                                                             sleeps: Sleeps) -> None:
        sim.faults.add(Fault(kind="rate_limit", count=1, retry_after=1))
        assert (await client.get("subsidiary", "1"))["custrecord_psc_code"] == "US01"
        assert sleeps.waits
        assert sleeps.waits[0] >= 1
        assert client.http.calls == 2

    async def test_5xx_is_retried_on_reads_and_upserts(self, client: NetSuiteClient, sim: NetSuiteSimulator) -> None:
        sim.faults.add(Fault(kind="server_error", count=2, status=503))
        await client.get("subsidiary", "1")
        assert client.http.calls == 3
        sim.faults.add(Fault(kind="timeout", count=1, method="PUT"))
        await client.upsert("customer", "ACC-0001", {"companyName": "A", "subsidiary": {"id": "1"},
                                                     "currency": {"id": "1"}})
        assert sim.count("customer", "ACC-0001") == 1

    async def test_5xx_on_create_is_not_retried(self, client: NetSuiteClient, sim: NetSuiteSimulator) -> None:
        sim.faults.add(Fault(kind="server_error", count=1, method="POST", status=500))
        with pytest.raises(VendorUnavailable):
            await client.create("customer", {"companyName": "A", "subsidiary": {"id": "1"}})
        assert client.http.calls == 1

    async def test_concurrency_error_is_transient(self, client: NetSuiteClient, sim: NetSuiteSimulator) -> None:
        sim.faults.add(Fault(kind="concurrency_limit", count=2))
        assert (await client.get("subsidiary", "2"))["id"] == "2"
        assert client.http.calls == 3

    async def test_concurrency_limit_exceeded_surfaces_as_rate_limited(self, http: httpx.AsyncClient,
                                                                        sim: NetSuiteSimulator) -> None:
        sim.faults.add(Fault(kind="concurrency_limit"))
        impatient = NetSuiteClient(http, retry=RetryPolicy(max_attempts=1))
        with pytest.raises(VendorRateLimited) as exc:
            await impatient.get("subsidiary", "1")
        assert "CONCURRENCY_LIMIT_EXCEEDED" in str(exc.value)

    async def test_real_concurrency_limit_refuses_the_excess(self, http: httpx.AsyncClient,
                                                              sim: NetSuiteSimulator) -> None:
        sim.faults.add(Fault(kind="slow", delay=0.05))
        responses = await asyncio.gather(*(
            http.get(f"{RECORD_PATH}/subsidiary/1", headers={"Authorization": "Bearer t"}) for _ in range(8)))
        refused = [r for r in responses if r.status_code == 429]
        assert len(refused) == 3
        assert refused[0].json()["o:errorDetails"][0]["detail"] == "Concurrent request limit exceeded. Request blocked."

    async def test_client_fan_out_stays_under_the_limit(self, http: httpx.AsyncClient, sim: NetSuiteSimulator) -> None:
        sim.faults.add(Fault(kind="slow", delay=0.02))
        polite = NetSuiteClient(http, max_concurrency=4)
        ids = (await polite.list_ids("accountingPeriod", limit=12)).ids
        records = await polite.get_many("accountingPeriod", ids)
        assert len(records) == 12
        assert 2 <= sim.peak_in_flight <= 4

    async def test_business_error_is_not_retried(self, client: NetSuiteClient, sim: NetSuiteSimulator,
                                                 api: ApiClient) -> None:
        sim.faults.add(Fault(kind="business_error", count=1, message="Record is locked."))
        with pytest.raises(VendorRejected) as exc:
            await client.get("subsidiary", "1")
        assert (exc.value.status, exc.value.code) == (400, "USER_ERROR")
        assert client.http.calls == 1
        sim.faults.add(Fault(kind="business_error", count=1))
        response = await api.get(f"{ERP}/legal-entities/1")
        assert response.status_code == 422
        assert response.json()["code"] == "USER_ERROR"

    async def test_vendor_down_is_a_503_problem_with_retry_after(self, api: ApiClient, sim: NetSuiteSimulator) -> None:
        sim.faults.add(Fault(kind="server_error", status=502))
        response = await api.get(f"{ERP}/legal-entities/1")
        assert response.status_code == 503
        assert response.headers["Retry-After"].isdigit()
        assert response.json()["code"] == "vendor_unavailable"

    async def test_breaker_opens_after_repeated_failures(self, http: httpx.AsyncClient,
                                                         sim: NetSuiteSimulator) -> None:
        sim.faults.add(Fault(kind="server_error", status=503))
        fragile = NetSuiteClient(http, retry=RetryPolicy(max_attempts=1))
        for _ in range(fragile.http.breaker.threshold):
            with pytest.raises(VendorUnavailable):
                await fragile.get("subsidiary", "1")
        seen = sim.faults.injected
        with pytest.raises(CircuitOpenError):
            await fragile.get("subsidiary", "1")
        assert sim.faults.injected == seen  # refused locally; NetSuite was spared the call

    async def test_correlation_id_reaches_netsuite(self, client: NetSuiteClient, sim: NetSuiteSimulator) -> None:
        token = correlation_id.set("corr-netsuite-42")
        try:
            await client.get("subsidiary", "1")
        finally:
            correlation_id.reset(token)
        assert sim.seen[-1].correlation_id == "corr-netsuite-42"
        assert sim.seen[-1].traceparent

    async def test_reset_restores_the_seed_and_clears_faults(self, client: NetSuiteClient,
                                                              sim: NetSuiteSimulator) -> None:
        await client.upsert("customer", "ACC-0046", {"companyName": "A", "subsidiary": {"id": "1"}})
        sim.faults.add(Fault(kind="server_error"))
        sim.reset()
        assert sim.count("customer", "ACC-0046") == 0
        assert (sim.count("customer", None), sim.count("job", None), sim.count("employee", None)) == (30, 30, 240)
        assert sim.count("subsidiary", None) == 3
        assert sim.count("accountingPeriod", None) == 36
        assert (await client.get("subsidiary", "1"))["id"] == "1"


async def test_create_router_serves_the_erp_contract(http: httpx.AsyncClient) -> None:
    async with domain_api(create_router(http)) as api:
        response = await api.get(f"{ERP}/legal-entities", params={"limit": 50})
    assert response.status_code == 200
    assert len(response.json()["items"]) == 3
