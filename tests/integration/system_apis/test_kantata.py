"""Kantata system API against the Kantata simulator: wire client, domain routes, faults, idempotent upsert."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from contracts.common import Money
from contracts.correlation import correlation_id
from contracts.psa import PsaMilestone, PsaProjectUpsert
from system_apis._internal.faults import Fault
from system_apis._internal.http import CircuitOpenError, VendorRateLimited, VendorRejected, VendorUnavailable
from system_apis.demo_firm import demo_firm
from system_apis.domains.psa import psa_router
from system_apis.kantata import BASE_URL, KantataClient, KantataPsa
from system_apis.kantata.simulator import KantataSimulator
from tests.integration.system_apis.vendor_kit import PACE, Sleeps, asgi, domain_api, vendor_http

EXT = "OPP-0002"


@pytest.fixture
def sim() -> KantataSimulator:
    # The provisioning tests start from no workspaces; the seeded delivery is tested in test_kantata_delivery.py.
    return KantataSimulator(firm=msgspec.structs.replace(demo_firm(), projects=[]))


@pytest.fixture
async def http(sim: KantataSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with vendor_http(sim.app, BASE_URL) as client:
        yield client


@pytest.fixture
def client(http: httpx.AsyncClient, sleeps: Sleeps) -> KantataClient:
    return KantataClient(http, retry=PACE, sleep=sleeps)


@pytest.fixture
def psa(client: KantataClient) -> KantataPsa:
    return KantataPsa(client)


@pytest.fixture
async def api(psa: KantataPsa) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with domain_api(psa_router(psa)) as test_client:
        yield test_client


def upsert_body(title: str = "Contoso Holdings — Technology 2026", **changes: Any) -> dict[str, Any]:
    data = PsaProjectUpsert(
        title=title, client_name="Contoso Holdings", budget=Money(amount=Decimal("125000.50"), currency="USD"),
        billing_terms="mixed", start_date=dt.date(2026, 11, 16), due_date=dt.date(2027, 3, 16),
        milestones=[PsaMilestone(name="Kick-off", due_date=dt.date(2026, 11, 20)),
                    PsaMilestone(name="Design sign-off", due_date=dt.date(2027, 1, 15),
                                 amount=Money(amount=Decimal("40000.00"), currency="USD"))])
    return {**msgspec.to_builtins(data), **changes}


def upsert_data(**changes: Any) -> PsaProjectUpsert:
    return msgspec.convert(upsert_body(**changes), PsaProjectUpsert)


async def seed_workspaces(psa: KantataPsa, n: int) -> None:
    for i in range(n):
        await psa.upsert_project(f"OPP-9{i:03d}", upsert_data(title=f"Project {i}", milestones=[]))


class TestWireFormat:
    async def test_envelope_indexed_by_id_with_results_order_and_meta(self, sim: KantataSimulator,
                                                                       psa: KantataPsa,
                                                                       http: httpx.AsyncClient) -> None:
        await seed_workspaces(psa, 3)
        body = (await http.get("/api/v1/workspaces.json", params={"per_page": 2},
                               headers={"Authorization": "Bearer t"})).json()
        assert body["count"] == 3
        assert [r["key"] for r in body["results"]] == ["workspaces", "workspaces"]
        assert set(body["workspaces"]) == {r["id"] for r in body["results"]}
        assert body["meta"] == {"count": 3, "page_count": 2, "page_number": 1, "page_size": 2}
        record = body["workspaces"][body["results"][0]["id"]]
        assert isinstance(record["price_in_cents"], int)
        assert record["price"] == "$125,000.50"

    async def test_per_page_is_capped_at_200(self, http: httpx.AsyncClient) -> None:
        body = (await http.get("/api/v1/users.json", params={"per_page": 500},
                               headers={"Authorization": "Bearer t"})).json()
        assert body["meta"]["page_size"] == 200
        assert len(body["results"]) == 200
        assert body["meta"]["page_count"] == 2  # 240 seeded workers + the API user

    async def test_request_without_bearer_token_is_401(self, http: httpx.AsyncClient) -> None:
        response = await http.get("/api/v1/workspaces.json")
        assert response.status_code == 401
        assert response.json()["errors"][0]["type"] == "authentication"

    async def test_false_boolean_filter_acts_like_true_so_the_client_never_sends_it(
            self, sim: KantataSimulator, psa: KantataPsa, client: KantataClient, http: httpx.AsyncClient) -> None:
        await seed_workspaces(psa, 2)
        archived_id = next(iter(sim.tables["workspaces"]))
        sim.tables["workspaces"][archived_id]["archived"] = True
        raw = (await http.get("/api/v1/workspaces.json", params={"archived": "false"},
                              headers={"Authorization": "Bearer t"})).json()
        assert [r["id"] for r in raw["results"]] == [archived_id]  # the vendor quirk, reproduced
        page = await client.list_workspaces(archived=False)
        assert archived_id not in [w["id"] for w in page.records]
        assert len(page.records) == 1
        assert "archived" not in sim.requests[-1].query
        assert [w["id"] for w in (await client.list_workspaces(archived=True)).records] == [archived_id]

    async def test_iterate_follows_page_count(self, client: KantataClient) -> None:
        pages = [p async for p in client.iterate("users", per_page=100)]
        assert [p.page_number for p in pages] == [1, 2, 3]
        assert sum(len(p.records) for p in pages) == 241

    async def test_check(self, client: KantataClient, http: httpx.AsyncClient) -> None:
        assert await client.check() is True
        assert await KantataClient(http, token=" ").check() is False


class TestListProjects:
    async def test_paging_across_several_pages(self, psa: KantataPsa, api: AsyncTestClient[Litestar]) -> None:
        await seed_workspaces(psa, 5)
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            params: dict[str, str | int] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            body = (await api.get("/system/psa/v1/projects", params=params)).json()
            pages += 1
            seen += [p["external_id"] for p in body["items"]]
            cursor = body.get("next_cursor")
            if not cursor:
                break
        assert pages == 3
        assert sorted(seen) == [f"OPP-9{i:03d}" for i in range(5)]

    async def test_filter_by_external_id(self, psa: KantataPsa, api: AsyncTestClient[Litestar]) -> None:
        await seed_workspaces(psa, 3)
        body = (await api.get("/system/psa/v1/projects", params={"external_id": "OPP-9001"})).json()
        assert [p["title"] for p in body["items"]] == ["Project 1"]
        assert (await api.get("/system/psa/v1/projects", params={"external_id": "nope"})).json()["items"] == []

    async def test_bad_cursor_is_a_422_problem(self, api: AsyncTestClient[Litestar]) -> None:
        response = await api.get("/system/psa/v1/projects", params={"cursor": "not-ours"})
        assert response.status_code == 422 and response.json()["code"] == "invalid_cursor"
        assert response.headers["content-type"].startswith("application/problem+json")


class TestGetProject:
    async def test_get(self, api: AsyncTestClient[Litestar]) -> None:
        created = (await api.put(f"/system/psa/v1/projects/by-external-id/{EXT}", json=upsert_body())).json()
        got = (await api.get(f"/system/psa/v1/projects/{created['id']}")).json()
        assert got == created
        assert got["budget"] == {"amount": "125000.50", "currency": "USD"}
        assert got["client_name"] == "Contoso Holdings"
        assert got["billing_terms"] == "mixed"
        assert got["status"] == "not_started"

    @pytest.mark.parametrize("project_id", ["999999", "abc"])
    async def test_not_found_is_a_404_problem(self, api: AsyncTestClient[Litestar], project_id: str) -> None:
        response = await api.get(f"/system/psa/v1/projects/{project_id}")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["type"].endswith("/not-found")


class TestUpsert:
    async def test_created_then_updated_one_workspace(self, sim: KantataSimulator,
                                                      api: AsyncTestClient[Litestar]) -> None:
        url = f"/system/psa/v1/projects/by-external-id/{EXT}"
        first = await api.put(url, json=upsert_body())
        assert first.status_code == 201
        second = await api.put(url, json=upsert_body(title="Renamed", erp_project_id="JOB-42"))
        assert second.status_code == 200
        assert second.json()["id"] == first.json()["id"]
        assert second.json()["title"] == "Renamed"
        assert second.json()["erp_project_id"] == "JOB-42"
        assert sim.count("workspace", EXT) == 1
        assert sim.count("story", EXT) == 2  # milestones matched by title + due date, not duplicated
        assert sim.count("workspace_group", None) == 1  # the client company is reused
        assert [m["name"] for m in second.json()["milestones"]] == ["Kick-off", "Design sign-off"]

    async def test_changed_milestone_amount_updates_the_story(self, sim: KantataSimulator,
                                                              psa: KantataPsa) -> None:
        await psa.upsert_project(EXT, upsert_data())
        body = upsert_body()
        body["milestones"][1]["amount"]["amount"] = "45000.00"
        project, created = await psa.upsert_project(EXT, msgspec.convert(body, PsaProjectUpsert))
        assert not created
        assert sim.count("story", EXT) == 2
        assert project.milestones[1].amount == Money(amount=Decimal("45000.00"), currency="USD")

    async def test_failure_between_calls_then_rerun_gives_one_workspace(self, sim: KantataSimulator,
                                                                       psa: KantataPsa) -> None:
        # The workspace POST succeeds, then the milestone write fails: a half-done upsert.
        sim.faults.add(Fault(kind="server_error", method="POST", path=r"/stories\.json$", status=500))
        with pytest.raises(VendorUnavailable):
            await psa.upsert_project(EXT, upsert_data())
        assert sim.count("workspace", EXT) == 1
        assert sim.count("story", EXT) == 0
        sim.faults.clear()
        project, created = await psa.upsert_project(EXT, upsert_data())
        assert created is False  # the re-run found the half-done workspace
        assert sim.count("workspace", EXT) == 1
        assert sim.count("story", EXT) == 2
        assert len(project.milestones) == 2

    async def test_lost_response_to_the_create_then_rerun_gives_one_workspace(self, sim: KantataSimulator,
                                                                              sleeps: Sleeps) -> None:
        inner = asgi(sim.app)

        class LoseFirstCreateResponse(httpx.AsyncBaseTransport):
            lost = False

            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                response = await inner.handle_async_request(request)
                if request.method == "POST" and request.url.path.endswith("/workspaces.json") and not self.lost:
                    self.lost = True
                    raise httpx.ReadTimeout("connection dropped after the vendor committed", request=request)
                return response

        async with httpx.AsyncClient(transport=LoseFirstCreateResponse(), base_url=BASE_URL) as http:
            psa = KantataPsa(KantataClient(http, sleep=sleeps))
            with pytest.raises(VendorUnavailable):
                await psa.upsert_project(EXT, upsert_data())
            assert sim.count("workspace", EXT) == 1  # committed, but the POST was not retried
            await psa.upsert_project(EXT, upsert_data())
        assert sim.count("workspace", EXT) == 1
        assert sim.count("story", EXT) == 2

    async def test_sub_cent_budget_is_a_422_problem_and_writes_nothing(self, sim: KantataSimulator,
                                                                     api: AsyncTestClient[Litestar]) -> None:
        body = upsert_body(budget={"amount": "10.005", "currency": "USD"})
        response = await api.put(f"/system/psa/v1/projects/by-external-id/{EXT}", json=body)
        assert response.status_code == 422
        assert response.json()["errors"][0]["pointer"] == "budget.amount"
        assert sim.count("workspace", None) == 0
        assert sim.count("workspace_group", None) == 0


class TestFaults:
    async def test_429_is_retried_after_retry_after(self, sim: KantataSimulator, client: KantataClient,
                                                    sleeps: Sleeps) -> None:
        sim.faults.add(Fault(kind="rate_limit", retry_after=1, count=1))
        assert await client.check()
        assert sleeps.waits
        assert sleeps.waits[0] >= 1
        assert client.http.calls == 2

    async def test_429_retried_even_on_post(self, sim: KantataSimulator, psa: KantataPsa, sleeps: Sleeps) -> None:
        sim.faults.add(Fault(kind="rate_limit", method="POST", path=r"/workspaces\.json$", retry_after=1, count=1))
        _, created = await psa.upsert_project(EXT, upsert_data())
        assert created
        assert sim.count("workspace", EXT) == 1
        assert sleeps.waits == [1]

    async def test_5xx_retried_on_idempotent_get(self, sim: KantataSimulator, client: KantataClient) -> None:
        sim.faults.add(Fault(kind="server_error", method="GET", status=502, count=2))
        assert await client.check()
        assert client.http.calls == 3

    async def test_5xx_not_retried_on_post(self, sim: KantataSimulator, client: KantataClient) -> None:
        sim.faults.add(Fault(kind="server_error", method="POST", status=503, count=1))
        with pytest.raises(VendorUnavailable):
            await client.create_company("Litware Group")
        assert client.http.calls == 1
        assert sim.count("workspace_group", None) == 0

    async def test_concurrency_limit_is_transient(self, sim: KantataSimulator, client: KantataClient,
                                                  sleeps: Sleeps) -> None:
        sim.faults.add(Fault(kind="concurrency_limit", retry_after=1, count=2))
        assert await client.check()
        assert client.http.calls == 3
        assert all(w >= 1 for w in sleeps.waits)

    async def test_exhausted_rate_limit_is_a_503_problem_with_retry_after(
            self, sim: KantataSimulator, api: AsyncTestClient[Litestar]) -> None:
        sim.faults.add(Fault(kind="rate_limit", retry_after=7))
        response = await api.get("/system/psa/v1/projects")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "7"

    async def test_business_error_is_rejected_without_retry(self, sim: KantataSimulator, client: KantataClient,
                                                            api: AsyncTestClient[Litestar]) -> None:
        sim.faults.add(Fault(kind="business_error", method="POST", message="Workspace limit reached", count=1))
        with pytest.raises(VendorRejected) as info:
            await client.create_company("Tailspin Group")
        assert info.value.status == 422
        assert info.value.code == "validation"
        assert client.http.calls == 1
        sim.faults.add(Fault(kind="business_error", method="POST", path=r"/workspaces\.json$", count=1))
        response = await api.put(f"/system/psa/v1/projects/by-external-id/{EXT}", json=upsert_body())
        assert response.status_code == 422
        assert response.json()["type"].endswith("/vendor-rejected")
        assert sim.count("workspace", None) == 0

    async def test_breaker_opens_after_repeated_failures(self, sim: KantataSimulator, client: KantataClient) -> None:
        sim.faults.add(Fault(kind="server_error", status=503))
        for _ in range(3):  # 4 attempts each; the breaker's threshold is 10 consecutive failures
            with pytest.raises((VendorUnavailable, CircuitOpenError)):
                await client.me()
        assert client.http.breaker.state == "open"
        assert client.http.calls == client.http.breaker.threshold
        calls = client.http.calls
        with pytest.raises(CircuitOpenError):
            await client.me()
        assert client.http.calls == calls  # failed fast, the vendor was not called

    async def test_timeout_fault_is_retried_on_get(self, sim: KantataSimulator, client: KantataClient) -> None:
        sim.faults.add(Fault(kind="timeout", count=1))
        assert await client.check()
        assert client.http.calls == 2

    async def test_rate_limit_error_carries_vendor_message(self, sim: KantataSimulator,
                                                           client: KantataClient) -> None:
        sim.faults.add(Fault(kind="rate_limit", retry_after=1))
        with pytest.raises(VendorRateLimited) as info:
            await client.me()
        assert info.value.retry_after == 1
        assert "Rate limit" in str(info.value)


class TestCorrelation:
    async def test_correlation_header_reaches_the_simulator(self, sim: KantataSimulator,
                                                            client: KantataClient) -> None:
        token = correlation_id.set("corr-kantata-1")
        try:
            await client.me()
        finally:
            correlation_id.reset(token)
        headers = sim.requests[-1].headers
        assert headers["x-correlation-id"] == "corr-kantata-1"
        assert headers["traceparent"].startswith("00-")
        assert headers["authorization"] == "Bearer sim-token"


class TestSimulatorControl:
    async def test_control_routes_and_reset(self, sim: KantataSimulator, psa: KantataPsa,
                                            http: httpx.AsyncClient) -> None:
        await psa.upsert_project(EXT, upsert_data())
        census = (await http.get("/__sim__/count", params={"type": "workspace", "external_id": EXT})).json()
        assert census["count"] == 1
        # (POST /__sim__/faults is not exercised: the shared Fault struct's `count` annotation is rejected
        # by msgspec at decode time — reported to the skeleton's owner.)
        sim.faults.add(Fault(kind="rate_limit", count=1))
        assert (await http.get("/__sim__/faults")).json()["rules"][0]["kind"] == "rate_limit"
        assert (await http.post("/__sim__/reset")).status_code == 204
        assert sim.count("workspace", None) == 0
        assert sim.faults.rules == []
        assert sim.count("user", None) == 241
