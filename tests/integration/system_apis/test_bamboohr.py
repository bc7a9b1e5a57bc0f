"""BambooHR system API against the BambooHR simulator: documented wire rules, workers and incremental sync,
cost centers, errors, throttling and faults."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from system_apis._internal.faults import Fault
from system_apis._internal.http import CircuitOpenError, VendorRateLimited, VendorRejected, VendorUnavailable
from system_apis.bamboohr import BASE_URL, VENDOR, BambooHRClient, BambooHRHr
from system_apis.bamboohr.simulator import BambooHRSimulator
from system_apis.demo_firm import demo_firm
from system_apis.domains.hr import hr_router
from system_apis.registry import Connection
from tests.integration.system_apis import vendor_kit
from tests.integration.system_apis.vendor_kit import PACE, Clock, Sleeps, domain_api, vendor_http

ENTITY = "DE01"  # CA01 joins the demo firm with the routing work; any seeded entity exercises the same
DOMAIN = "meridian-ca"
KEY = "bamboo-api-key"


class Recording(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.exchanges: list[tuple[httpx.Request, httpx.Response, bytes]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        self.exchanges.append((request, response, body))
        return httpx.Response(response.status_code, headers=response.headers, content=body, request=request)


@pytest.fixture(scope="module")
def seeded() -> BambooHRSimulator:
    return BambooHRSimulator(legal_entities=(ENTITY,))


@pytest.fixture
def sim(seeded: BambooHRSimulator) -> BambooHRSimulator:
    seeded.reset()
    return seeded


@pytest.fixture
def recording(sim: BambooHRSimulator) -> Recording:
    return Recording(vendor_kit.asgi(sim.app))


@pytest.fixture
async def http(sim: BambooHRSimulator, recording: Recording) -> AsyncIterator[httpx.AsyncClient]:
    async with vendor_http(sim.app, BASE_URL, transport=recording) as client:
        yield client


@pytest.fixture
def client(http: httpx.AsyncClient, sleeps: Sleeps) -> BambooHRClient:
    return BambooHRClient(http, api_key=KEY, company_domain=DOMAIN, retry=PACE, sleep=sleeps)


@pytest.fixture
def hr(client: BambooHRClient) -> BambooHRHr:
    # No report reuse by default: the tests change the account between calls and expect to see it at once.
    return BambooHRHr(client, default_entity=ENTITY, default_currency="EUR", report_ttl=0)


@pytest.fixture
async def api(hr: BambooHRHr) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with domain_api(hr_router(hr)) as test_client:
        yield test_client


# --- BambooHR's documented wire rules (no published OpenAPI document; URLs in system_apis/bamboohr/client.py) ---

DOCUMENTED = {  # (method, path under /v1) -> query parameters the documentation names
    ("GET", "/employees/directory"): set(),
    ("GET", "/employees/changed"): {"since", "type"},
    ("GET", "/employees/{id}"): {"fields", "onlyCurrent"},
    ("POST", "/reports/custom"): {"format", "onlyCurrent"},
}
INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$")


def documented(method: str, path: str) -> tuple[str, str]:
    match = re.fullmatch(r"/api/gateway\.php/([^/]+)/v1(/.*)", path)
    assert match, f"{path} is not under /api/gateway.php/{{companyDomain}}/v1"
    local = re.sub(r"^/employees/\d+$", "/employees/{id}", match.group(2))
    assert (method, local) in DOCUMENTED, f"{method} {local} is no documented BambooHR operation used here"
    return match.group(1), local


def check_request(request: httpx.Request) -> None:
    _, local = documented(request.method, request.url.path)
    for name, value in request.url.params.items():
        assert name in DOCUMENTED[(request.method, local)], f"{local}: undeclared query parameter {name!r}"
        if name == "since":
            assert INSTANT.match(value), f"since={value!r} is not an ISO 8601 instant"
    user = base64.b64decode(request.headers["authorization"].removeprefix("Basic ")).decode().partition(":")[0]
    assert user == KEY and request.headers["accept"] == "application/json"
    if local == "/reports/custom":
        body = json.loads(request.content)
        assert request.url.params["format"] == "JSON" and isinstance(body["fields"], list)
        assert all(isinstance(f, str) for f in body["fields"])


def check_response(request: httpx.Request, response: httpx.Response, body: bytes) -> None:
    _, local = documented(request.method, request.url.path)
    if response.status_code >= 400:
        assert response.headers.get("x-bamboohr-error-message"), "an error names its reason in the header"
        return
    data: Any = json.loads(body)
    if local == "/employees/changed":
        assert INSTANT.match(data["latest"])
        for key, change in data["employees"].items():
            assert change["id"] == key and change["action"] in ("Inserted", "Updated", "Deleted")
            assert INSTANT.match(change["lastChanged"])
    elif local == "/employees/{id}":
        assert isinstance(data["id"], str) and all(v is None or isinstance(v, str) for v in data.values())
    else:
        assert {f["id"] for f in data["fields"]} >= (set(json.loads(request.content)["fields"]) - {"id"}
                                                     if local == "/reports/custom" else set())
        for row in data["employees"]:
            assert isinstance(row["id"], str) and all(v is None or isinstance(v, str) for v in row.values())


class TestDocumentedWireRules:
    async def test_every_request_and_response_follows_the_documentation(
            self, sim: BambooHRSimulator, client: BambooHRClient, hr: BambooHRHr, recording: Recording) -> None:
        assert await client.check()
        cursor = None
        while True:
            page = await hr.list_workers(30, cursor, None)
            cursor = page.next_cursor
            if cursor is None:
                break
        await hr.list_workers(100, None, dt.datetime(2026, 9, 1, tzinfo=dt.UTC))
        await hr.get_worker(str(sim.employee_id("W-00003")))
        await hr.get_worker("W-00006")
        await hr.list_cost_centers(2, None)
        with pytest.raises(VendorRejected):
            await client.employee("99999", ["firstName"])
        assert {r.status_code for _, r, _ in recording.exchanges} == {200, 404}
        for request, response, body in recording.exchanges:
            check_request(request)
            check_response(request, response, body)

    async def test_without_accept_json_bamboohr_answers_xml(self, http: httpx.AsyncClient) -> None:
        basic = base64.b64encode(f"{KEY}:x".encode()).decode()
        response = await http.get(f"/api/gateway.php/{DOMAIN}/v1/employees/directory",
                                  headers={"Authorization": f"Basic {basic}"})
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/xml")

    async def test_the_key_is_the_user_and_the_password_is_ignored(self, http: httpx.AsyncClient) -> None:
        for password in ("x", "anything else"):
            basic = base64.b64encode(f"{KEY}:{password}".encode()).decode()
            response = await http.get(f"/api/gateway.php/{DOMAIN}/v1/employees/directory",
                                      headers={"Authorization": f"Basic {basic}", "Accept": "application/json"})
            assert response.status_code == 200
        response = await http.get(f"/api/gateway.php/{DOMAIN}/v1/employees/directory",
                                  headers={"Accept": "application/json"})
        assert response.status_code == 401 and response.headers["x-bamboohr-error-message"] == "Invalid API key"

    async def test_another_company_domain_is_404(self, sim: BambooHRSimulator, http: httpx.AsyncClient) -> None:
        client = BambooHRClient(http, api_key=KEY, company_domain="someone-else")
        with pytest.raises(VendorRejected) as info:
            await client.directory()
        assert info.value.status == 404 and "Company not found" in str(info.value)


class TestHrContract:
    async def test_workers_page_through_every_seeded_employee_with_their_cost_rate(
            self, sim: BambooHRSimulator, api: AsyncTestClient[Litestar]) -> None:
        seen: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 7}
        while True:
            body = (await api.get("/system/hr/v1/workers", params=params)).json()
            seen += body["items"]
            if not body["next_cursor"]:
                break
            params["cursor"] = body["next_cursor"]
        expected = {w.email: w for w in demo_firm().workers if w.legal_entity_code == ENTITY}
        assert len(seen) == len(expected) == sim.count("employee") and len({w["id"] for w in seen}) == len(seen)
        for worker in seen:
            source = expected[worker["email"]]
            assert Decimal(worker["cost_rate"]["amount"]) == source.cost_rate.amount
            assert worker["cost_rate"]["currency"] == source.cost_rate.currency
            assert (worker["role"], worker["practice"], worker["cost_center"], worker["status"]) == (
                source.role, source.practice, source.cost_center, source.status)
            assert worker["legal_entity_code"] == ENTITY and worker["hire_date"] == source.hire_date.isoformat()
        terminated = [w for w in seen if w["status"] == "terminated"]
        assert all(w["termination_date"] for w in terminated)  # DE01 has none; the mapping test covers one

    async def test_updated_since_reads_only_what_changed_since(self, sim: BambooHRSimulator,
                                                               api: AsyncTestClient[Litestar]) -> None:
        since = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
        sim.now = dt.datetime(2026, 11, 3, 9, 30, tzinfo=dt.UTC)
        promoted = sim.employee_id("W-00003")
        sim.update(promoted, jobTitle="Director", customHourlyCostRate="180.00 EUR")
        hired = sim.hire({"employeeNumber": "W-CA-0001", "displayName": "Ada Tremblay",
                          "workEmail": "ada@meridian.example",
                          "jobTitle": "Analyst", "department": "Strategy", "division": ENTITY, "status": "Active",
                          "hireDate": "2026-11-02", "customCostCenter": "CC-DE01-1",
                          "customHourlyCostRate": "55.00 EUR"})
        sim.delete(sim.employee_id("W-00006"))
        body = (await api.get("/system/hr/v1/workers", params={"updated_since": since.isoformat()})).json()
        assert [w["id"] for w in body["items"]] == ["W-00003", "W-CA-0001"] and body["next_cursor"] is None
        assert promoted < hired  # in BambooHR's id order
        assert body["items"][0]["role"] == "director" and body["items"][0]["cost_rate"]["amount"] == "180.00"
        assert any(r["path"].endswith("/employees/changed") for r in sim.requests)

    async def test_one_listing_costs_one_report_while_it_is_fresh(self, sim: BambooHRSimulator,
                                                                  client: BambooHRClient) -> None:
        clock = Clock()
        hr = BambooHRHr(client, default_entity=ENTITY, report_ttl=30, clock=clock)
        cursor, pages = None, 0
        while True:
            page = await hr.list_workers(7, cursor, None)
            cursor, pages = page.next_cursor, pages + 1
            if cursor is None:
                break
        reports = [r for r in sim.requests if r["path"].endswith("/reports/custom")]
        assert pages == 12 and len(reports) == 1
        clock.now += 31
        await hr.list_workers(7, None, None)
        assert len([r for r in sim.requests if r["path"].endswith("/reports/custom")]) == 2

    async def test_a_change_listing_reads_a_fresh_report_never_the_cached_one(self, sim: BambooHRSimulator,
                                                                              client: BambooHRClient) -> None:
        """A caller moving a watermark must get a changed worker's new data, or it would never see the change."""
        hr = BambooHRHr(client, default_entity=ENTITY, report_ttl=30, clock=Clock())
        await hr.list_workers(100, None, None)  # the report is cached now
        sim.now = dt.datetime(2026, 11, 3, 9, 30, tzinfo=dt.UTC)
        sim.update(sim.employee_id("W-00003"), jobTitle="Director")
        changed = await hr.list_workers(100, None, dt.datetime(2026, 11, 1, tzinfo=dt.UTC))
        assert [(w.id, w.role) for w in changed.items] == [("W-00003", "director")]

    async def test_get_worker_by_bamboohr_id_or_employee_number(self, sim: BambooHRSimulator,
                                                                api: AsyncTestClient[Litestar]) -> None:
        employee_id = sim.employee_id("W-00003")
        by_id = (await api.get(f"/system/hr/v1/workers/{employee_id}")).json()
        by_number = (await api.get("/system/hr/v1/workers/W-00003")).json()
        assert by_id == by_number and by_id["id"] == "W-00003"  # the employee number: the firm-wide key
        missing = await api.get("/system/hr/v1/workers/W-99999")
        assert missing.status_code == 404
        unknown_id = await api.get("/system/hr/v1/workers/99999")
        assert unknown_id.status_code == 404 and unknown_id.json()["code"] == "not_found"

    async def test_cost_centers_are_distinct_with_their_entity(self, api: AsyncTestClient[Litestar]) -> None:
        first = (await api.get("/system/hr/v1/cost-centers", params={"limit": 3})).json()
        rest = (await api.get("/system/hr/v1/cost-centers", params={"cursor": first["next_cursor"]})).json()
        centers = first["items"] + rest["items"]
        assert [c["id"] for c in centers] == [f"CC-{ENTITY}-{i}" for i in range(1, 5)]
        assert all(c["legal_entity_code"] == ENTITY for c in centers) and rest["next_cursor"] is None

    async def test_a_forged_cursor_is_a_422_problem(self, api: AsyncTestClient[Litestar]) -> None:
        response = await api.get("/system/hr/v1/workers", params={"cursor": "bm90LW91cnM"})
        assert response.status_code == 422 and response.json()["code"] == "invalid_cursor"

    async def test_create_systems_uses_the_connections_domain_key_and_defaults(
            self, sim: BambooHRSimulator, http: httpx.AsyncClient) -> None:
        connection = Connection(name="ca01-bamboohr", vendor=VENDOR, base_url=BASE_URL, tenant=DOMAIN,
                                credentials={"api_key": "ca01-key", "default_entity": ENTITY})
        adapter = VENDOR.create_systems(http, connection)["hr"]  # type: ignore[misc]
        assert isinstance(adapter, BambooHRHr)
        sim.employees[sim.employee_id("W-00003")]["division"] = ""
        worker = await adapter.get_worker("W-00003")
        assert worker.legal_entity_code == ENTITY
        assert base64.b64decode(sim.requests[-1]["authorization"][6:]).decode().startswith("ca01-key:")


class TestErrorsAndFaults:
    async def test_a_revoked_key_is_a_problem_and_not_retried(self, sim: BambooHRSimulator, client: BambooHRClient,
                                                              api: AsyncTestClient[Litestar]) -> None:
        sim.revoked.add(KEY)
        response = await api.get("/system/hr/v1/workers")
        assert response.status_code == 422 and response.json()["code"] == "invalid_api_key"
        assert "Invalid API key" in response.json()["detail"] and client.http.calls == 1

    async def test_permission_refusal_names_bamboohrs_reason(self, sim: BambooHRSimulator,
                                                             api: AsyncTestClient[Litestar]) -> None:
        sim.faults.add(Fault(kind="business_error", count=1))
        response = await api.get("/system/hr/v1/cost-centers")
        assert response.json()["code"] == "forbidden" and "API access is not allowed" in response.json()["detail"]

    async def test_throttling_503_with_retry_after_is_waited_out(self, sim: BambooHRSimulator, client: BambooHRClient,
                                                                 sleeps: Sleeps) -> None:
        sim.faults.add(Fault(kind="rate_limit", retry_after=1, count=1))
        assert await client.check()
        assert sleeps.waits == [1.0] and client.http.calls == 2

    async def test_a_long_throttle_is_a_503_problem_with_retry_after(self, sim: BambooHRSimulator,
                                                                    api: AsyncTestClient[Litestar]) -> None:
        sim.faults.add(Fault(kind="rate_limit", retry_after=30))
        response = await api.get("/system/hr/v1/workers")
        assert response.status_code == 503 and response.headers["retry-after"] == "30"

    async def test_429_is_rate_limited_too(self, client: BambooHRClient) -> None:
        response = httpx.Response(429, headers={"Retry-After": "5", "X-BambooHR-Error-Message": "Too many"})
        error = client.http.classify(response)
        assert isinstance(error, VendorRateLimited) and error.retry_after == 5

    async def test_5xx_storm_is_retried_then_opens_the_breaker(self, sim: BambooHRSimulator,
                                                               client: BambooHRClient) -> None:
        sim.faults.add(Fault(kind="server_error", status=500, count=2))
        assert await client.check() and client.http.calls == 3
        sim.faults.add(Fault(kind="server_error", status=502))
        for _ in range(3):
            with pytest.raises((VendorUnavailable, CircuitOpenError)):
                await client.directory()
        assert client.http.breaker.state == "open"

    async def test_timeout_is_retried_and_the_report_post_is_safe_to_repeat(self, sim: BambooHRSimulator,
                                                                            client: BambooHRClient) -> None:
        sim.faults.add(Fault(kind="timeout", count=1, path="reports/custom"))
        report = await client.custom_report(("id", "employeeNumber"))
        assert len(report.employees) == sim.count("employee") and client.http.calls == 2

    async def test_count_and_reset_over_the_control_routes(self, sim: BambooHRSimulator,
                                                           http: httpx.AsyncClient) -> None:
        seeded = sim.count("employee")
        assert seeded == sum(1 for w in demo_firm().workers if w.legal_entity_code == ENTITY) > 0
        assert BambooHRSimulator(legal_entities=("ZZ01",)).count("employee") == 0
        sim.delete(sim.employee_id("W-00003"))
        assert (await http.post("/__sim__/reset")).status_code == 204
        assert sim.count("employee") == seeded and sim.count("employee", "W-00003") == 1
