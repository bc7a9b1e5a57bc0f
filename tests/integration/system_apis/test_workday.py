"""Workday HR system API against the Workday simulator: wire client, domain routes, faults, HR changes."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from contracts.common import Money
from contracts.correlation import correlation_id
from system_apis._internal.faults import Fault
from system_apis._internal.http import CircuitOpenError, VendorRateLimited, VendorRejected, VendorUnavailable
from system_apis.demo_firm import HOME_ENTITIES, firm_for
from system_apis.domains.hr import hr_router
from system_apis.workday import BASE_URL, WorkdayClient, WorkdayHr
from system_apis.workday.simulator import SEEDED_AT, WorkdaySimulator, WorkerChange
from tests.integration.system_apis.vendor_kit import PACE, Sleeps, domain_api, vendor_http


@pytest.fixture
def sim() -> WorkdaySimulator:
    return WorkdaySimulator()


@pytest.fixture
async def http(sim: WorkdaySimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with vendor_http(sim.app, BASE_URL) as client:
        yield client


@pytest.fixture
def client(http: httpx.AsyncClient, sleeps: Sleeps) -> WorkdayClient:
    return WorkdayClient(http, retry=PACE, sleep=sleeps)


@pytest.fixture
async def api(client: WorkdayClient) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with domain_api(hr_router(WorkdayHr(client))) as test_client:
        yield test_client


class TestWorkers:
    async def test_paging_across_pages_returns_every_worker_once(self, api: AsyncTestClient[Litestar],
                                                                 sim: WorkdaySimulator) -> None:
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            params: dict[str, str | int] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            response = await api.get("/system/hr/v1/workers", params=params)
            assert response.status_code == 200, response.text
            body = response.json()
            seen += [w["id"] for w in body["items"]]
            pages += 1
            cursor = body.get("next_cursor")
            if not cursor:
                break
        assert pages == 3  # 240 workers, 100 a page
        assert seen == [w.id for w in firm_for(HOME_ENTITIES).workers]
        offsets = [int(r.query["offset"]) for r in sim.requests]
        assert offsets == [0, 100, 200] and all(r.query["limit"] == "100" for r in sim.requests)

    async def test_worker_fields_come_from_hr(self, api: AsyncTestClient[Litestar]) -> None:
        response = await api.get("/system/hr/v1/workers/W-00097")
        assert response.status_code == 200
        assert response.json() | {"hire_date": None} == {
            "id": "W-00097", "name": "Quinn Ahmed", "email": "quinn.ahmed97@meridian.example",
            "legal_entity_code": "US01", "role": "consultant", "practice": "strategy", "cost_center": "CC-US01-1",
            "status": "terminated", "cost_rate": {"amount": "88.20", "currency": "USD"}, "hire_date": None,
            "termination_date": "2026-10-16"}

    async def test_get_by_wid_too(self, api: AsyncTestClient[Litestar], sim: WorkdaySimulator) -> None:
        wid = next(w for w, key in sim.by_wid.items() if key == "W-00005")
        assert (await api.get(f"/system/hr/v1/workers/{wid}")).json()["id"] == "W-00005"

    async def test_search_hit_must_match_the_employee_id_exactly(self, api: AsyncTestClient[Litestar]) -> None:
        # "W-0001" is a substring of W-00010..W-00019: search finds those, none of them is the worker.
        response = await api.get("/system/hr/v1/workers/W-0001")
        assert response.status_code == 404 and response.json()["code"] == "not_found"

    async def test_unknown_worker_and_unknown_wid_are_404_problems(self, api: AsyncTestClient[Litestar]) -> None:
        for ref in ("W-99999", "0" * 32):
            response = await api.get(f"/system/hr/v1/workers/{ref}")
            assert response.status_code == 404, ref
            assert response.headers["content-type"].startswith("application/problem+json")

    async def test_limit_above_100_is_refused_by_the_contract(self, api: AsyncTestClient[Litestar],
                                                               sim: WorkdaySimulator) -> None:
        response = await api.get("/system/hr/v1/workers", params={"limit": 500})
        assert response.status_code == 422 and not sim.requests

    async def test_forged_cursor_is_a_problem(self, api: AsyncTestClient[Litestar]) -> None:
        for cursor in ("not-a-cursor", "eyJvZmZzZXQiOi0xLCJsaW1pdCI6MTB9"):  # garbage; offset -1
            response = await api.get("/system/hr/v1/workers", params={"cursor": cursor})
            assert response.status_code == 422 and response.json()["code"] == "invalid_cursor"


class TestHrChanges:
    async def test_updated_since_returns_only_changed_workers(self, api: AsyncTestClient[Litestar],
                                                              sim: WorkdaySimulator,
                                                              http: httpx.AsyncClient) -> None:
        since = (SEEDED_AT + dt.timedelta(seconds=1)).isoformat()
        changed = await http.post("/__sim__/workers/W-00010", json={"status": "terminated"})
        assert changed.status_code == 200 and changed.json()["termination_date"]
        sim.change_worker("W-00200", WorkerChange(cost_center="CC-UK01-9",
                                                  cost_rate=Money(amount=Decimal("99.99"), currency="GBP")))
        items: list[dict[str, object]] = []
        cursor: str | None = None
        while True:
            params: dict[str, str | int] = {"updated_since": since, "limit": 50, **({"cursor": cursor} if cursor
                                                                                     else {})}
            body = (await api.get("/system/hr/v1/workers", params=params)).json()
            items += body["items"]
            cursor = body.get("next_cursor")
            if not cursor:
                break
        assert [(w["id"], w["status"], w["cost_center"]) for w in items] == [
            ("W-00010", "terminated", "CC-US01-2"), ("W-00200", "active", "CC-UK01-9")]
        assert items[1]["cost_rate"] == {"amount": "99.99", "currency": "GBP"}

    async def test_changing_an_unknown_worker_is_404(self, http: httpx.AsyncClient) -> None:
        assert (await http.post("/__sim__/workers/W-99999", json={"status": "terminated"})).status_code == 404

    async def test_reset_undoes_changes(self, sim: WorkdaySimulator, http: httpx.AsyncClient) -> None:
        sim.change_worker("W-00010", WorkerChange(status="on_leave"))
        assert (await http.post("/__sim__/reset")).status_code == 204
        assert sim.workers["W-00010"][0].status == "active" and sim.count("worker", None) == 240


class TestCostCenters:
    async def test_cost_centers_page_with_their_legal_entity(self, api: AsyncTestClient[Litestar],
                                                             sim: WorkdaySimulator) -> None:
        pages = [(await api.get("/system/hr/v1/cost-centers", params={"limit": 5})).json()]
        while pages[-1]["next_cursor"]:
            pages.append((await api.get("/system/hr/v1/cost-centers",
                                        params={"cursor": pages[-1]["next_cursor"]})).json())
        centers = [c for page in pages for c in page["items"]]
        assert [len(p["items"]) for p in pages] == [5, 5, 2]
        assert len({c["id"] for c in centers}) == 12 == sim.count("cost_center", None)
        assert {c["id"]: c["legal_entity_code"] for c in centers}["CC-DE01-4"] == "DE01"


class TestFaults:
    async def test_429_is_retried_after_retry_after(self, sim: WorkdaySimulator, client: WorkdayClient,
                                                    sleeps: Sleeps) -> None:
        sim.faults.add(Fault(kind="rate_limit", count=2, retry_after=1))
        page = await client.list_workers(limit=10)
        assert len(page.data) == 10 and client.http.calls == 3
        assert len(sleeps.waits) == 2 and all(w >= 1 for w in sleeps.waits)

    async def test_concurrency_limit_is_transient(self, sim: WorkdaySimulator, client: WorkdayClient,
                                                  sleeps: Sleeps) -> None:
        sim.faults.add(Fault(kind="concurrency_limit", count=1, retry_after=1))
        assert await client.check()
        assert client.http.calls == 2 and sleeps.waits[0] >= 1

    async def test_concurrency_limit_exhausted_is_rate_limited_with_vendor_message(
            self, sim: WorkdaySimulator, client: WorkdayClient) -> None:
        sim.faults.add(Fault(kind="concurrency_limit", retry_after=1))
        with pytest.raises(VendorRateLimited, match="Concurrent request limit exceeded") as caught:
            await client.list_workers()
        assert caught.value.retry_after == 1
        assert client.http.breaker.state == "closed"  # throttling never opens the circuit

    async def test_5xx_is_retried_on_reads(self, sim: WorkdaySimulator, client: WorkdayClient) -> None:
        sim.faults.add(Fault(kind="server_error", status=503, count=2))
        assert len((await client.list_workers(limit=3)).data) == 3
        assert client.http.calls == 3

    async def test_timeout_fault_is_retried(self, sim: WorkdaySimulator, client: WorkdayClient) -> None:
        sim.faults.add(Fault(kind="timeout", count=1))
        assert await client.check() and client.http.calls == 2

    async def test_business_error_is_rejected_without_retry(self, sim: WorkdaySimulator, client: WorkdayClient,
                                                            api: AsyncTestClient[Litestar]) -> None:
        sim.faults.add(Fault(kind="business_error", count=1, message="Organization is inactive"))
        with pytest.raises(VendorRejected) as caught:
            await client.list_cost_centers()
        assert caught.value.status == 400 and caught.value.code == "validation_error"
        assert "Organization is inactive" in str(caught.value) and client.http.calls == 1
        sim.faults.add(Fault(kind="business_error", count=1))
        response = await api.get("/system/hr/v1/cost-centers")
        assert response.status_code == 422 and response.json()["code"] == "validation_error"
        assert client.http.calls == 2

    async def test_vendor_outage_is_a_503_problem_with_retry_after(self, sim: WorkdaySimulator,
                                                                   api: AsyncTestClient[Litestar]) -> None:
        sim.faults.add(Fault(kind="server_error", status=502))
        response = await api.get("/system/hr/v1/workers")
        assert response.status_code == 503 and response.headers["Retry-After"]
        assert response.json()["code"] == "vendor_unavailable"

    async def test_breaker_opens_after_repeated_failures(self, sim: WorkdaySimulator, client: WorkdayClient) -> None:
        sim.faults.add(Fault(kind="server_error", status=500))
        for _ in range(3):  # 4 attempts each; the breaker's threshold is 10 consecutive failures
            with pytest.raises((VendorUnavailable, CircuitOpenError)):
                await client.list_workers()
        assert client.http.breaker.state == "open"
        calls = client.http.calls
        with pytest.raises(CircuitOpenError):
            await client.list_workers()
        assert client.http.calls == calls

    async def test_slow_fault_still_answers(self, sim: WorkdaySimulator, client: WorkdayClient) -> None:
        sim.faults.add(Fault(kind="slow", count=1, delay=0.05))
        assert len((await client.list_workers(limit=2)).data) == 2 and client.http.calls == 1


class TestWire:
    async def test_correlation_and_auth_reach_the_tenant(self, sim: WorkdaySimulator,
                                                         client: WorkdayClient) -> None:
        token = correlation_id.set("corr-workday-1")
        try:
            await client.list_workers(limit=1)
        finally:
            correlation_id.reset(token)
        seen = sim.requests[-1]
        assert seen.path == "/ccx/api/staffing/v6/meridian/workers"
        assert seen.headers["x-correlation-id"] == "corr-workday-1"
        assert seen.headers["traceparent"].startswith("00-")
        assert seen.headers["authorization"] == "Bearer sim-token"

    async def test_missing_token_is_401_in_workday_envelope(self, http: httpx.AsyncClient) -> None:
        response = await http.get("/ccx/api/staffing/v6/meridian/workers")
        assert response.status_code == 401 and response.json()["code"] == "invalid_token"

    async def test_vendor_refuses_limit_over_100_and_unknown_tenant(self, http: httpx.AsyncClient,
                                                                    sim: WorkdaySimulator) -> None:
        auth = {"Authorization": "Bearer x"}
        over = await http.get("/ccx/api/staffing/v6/meridian/workers", params={"limit": 101}, headers=auth)
        assert over.status_code == 400 and over.json()["errors"][0]["field"] == "limit"
        other = await http.get("/ccx/api/staffing/v6/acme/workers", headers=auth)
        assert other.status_code == 404

    async def test_wrong_token_is_refused_by_check(self, http: httpx.AsyncClient) -> None:
        assert await WorkdayClient(http, token="").check() is False

    async def test_simulator_routes_are_not_in_any_openapi(self, sim: WorkdaySimulator) -> None:
        assert sim.app.openapi_config is None
