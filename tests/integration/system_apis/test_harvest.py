"""Harvest system API against the Harvest simulator: wire rules, paging, spec conformance, faults, approvals."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]
import msgspec
import pytest
import yaml
from litestar import Litestar
from litestar.testing import AsyncTestClient

from contracts.correlation import correlation_id
from system_apis._internal.faults import Fault
from system_apis._internal.http import CircuitOpenError, VendorRateLimited, VendorRejected, VendorUnavailable
from system_apis.demo_delivery import DEMO_PERIOD
from system_apis.domains.time import TimeEntryQuery, time_router
from system_apis.harvest import BASE_URL, HarvestClient, HarvestTime
from system_apis.harvest.simulator import HarvestSimulator
from tests.integration.system_apis import vendor_kit
from tests.integration.system_apis.vendor_kit import PACE, Clock, Sleeps, domain_api, vendor_http

# The vendor's public contract (MIT, JoliCode), kept in the repository so any clone can check against it.
SPEC = Path(__file__).resolve().parents[3] / "system_apis" / "harvest" / "spec" / "harvest-v2.openapi.yaml"
DEFECT_CLOSED, DEFECT_FUTURE = "TE-00001-20260828-9", "TE-00001-20261120-9"
HEADERS = {"Authorization": "Bearer t", "Harvest-Account-Id": "1000001"}


class Recording(httpx.AsyncBaseTransport):
    """Keeps every exchange so requests and responses can be checked against the vendor's spec."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.exchanges: list[tuple[httpx.Request, int, bytes]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        self.exchanges.append((request, response.status_code, body))
        return httpx.Response(response.status_code, headers=response.headers, content=body, request=request)


def asgi(sim: HarvestSimulator) -> httpx.ASGITransport:
    return vendor_kit.asgi(sim.app)


@pytest.fixture(scope="module")
def seeded() -> HarvestSimulator:
    return HarvestSimulator(requests_per_window=None)


@pytest.fixture
def sim(seeded: HarvestSimulator) -> HarvestSimulator:
    seeded.reset()
    return seeded


@pytest.fixture
def recording(sim: HarvestSimulator) -> Recording:
    return Recording(asgi(sim))


@pytest.fixture
async def http(sim: HarvestSimulator, recording: Recording) -> AsyncIterator[httpx.AsyncClient]:
    async with vendor_http(sim.app, BASE_URL, transport=recording) as client:
        yield client


@pytest.fixture
def client(http: httpx.AsyncClient, sleeps: Sleeps) -> HarvestClient:
    return HarvestClient(http, retry=PACE, sleep=sleeps)


@pytest.fixture
def time_api(client: HarvestClient) -> HarvestTime:
    return HarvestTime(client)


@pytest.fixture
async def api(time_api: HarvestTime) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with domain_api(time_router(time_api)) as test_client:
        yield test_client


# --- the vendor's spec as JSON Schema -------------------------------------------------------------------------

KNOWN_DEVIATIONS = {
    # https://help.getharvest.com/api-v2/introduction/overview/pagination/ — cursor paging, newer than the spec:
    # `page` is null between the first and last pages, and next links carry `cursor` and `ref`.
    "nullable_page": ["TimeEntries", "Projects", "Users", "Clients", "UserAssignments", "TaskAssignments",
                      "UninvoicedReportResults"],
    "query": {"cursor", "ref"},
}


def _json_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _json_schema(v) for k, v in node.items() if k not in ("nullable", "example", "externalDocs")}
    if node.get("nullable"):
        if "type" in out and isinstance(out["type"], str):
            out["type"] = [out["type"], "null"]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


@cache
def spec() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(SPEC.read_text())
    for name in KNOWN_DEVIATIONS["nullable_page"]:
        document["components"]["schemas"][name]["properties"]["page"]["nullable"] = True
    return document


@cache
def components() -> dict[str, Any]:
    converted: dict[str, Any] = _json_schema(spec()["components"])
    return converted


def operation(method: str, path: str) -> dict[str, Any]:
    local = path.removeprefix("/v2")
    for template, item in spec()["paths"].items():
        if re.fullmatch(re.sub(r"\{[^}]+\}", r"[^/]+", template), local) and method.lower() in item:
            found: dict[str, Any] = item[method.lower()]
            return found
    raise AssertionError(f"{method} {path} is no operation of the Harvest spec")


def check_request(request: httpx.Request) -> None:
    op = operation(request.method, request.url.path)
    declared = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "query"}
    sent = dict(request.url.params.items())
    for name, value in sent.items():
        if name in KNOWN_DEVIATIONS["query"]:
            continue
        assert name in declared, f"{request.url.path}: undeclared query parameter {name!r}"
        kind = declared[name]["schema"]["type"]
        if kind == "integer":
            assert re.fullmatch(r"-?\d+", value), f"{name}={value!r} is not an integer"
        elif kind == "boolean":
            assert value in ("true", "false"), f"{name}={value!r} is not a boolean"
    missing = [n for n, p in declared.items() if p.get("required") and n not in sent]
    assert not missing, f"{request.url.path}: required parameters missing: {missing}"
    assert request.headers["authorization"].startswith("Bearer ")
    assert request.headers["harvest-account-id"]
    assert request.headers["user-agent"]


def check_response(request: httpx.Request, status: int, body: bytes) -> None:
    op = operation(request.method, request.url.path)
    answer = op["responses"].get(status) or op["responses"].get(str(status)) or op["responses"]["default"]
    schema = _json_schema(answer["content"]["application/json"]["schema"])
    jsonschema.validate(msgspec.json.decode(body), {**schema, "components": components()})


# --- tests ---------------------------------------------------------------------------------------------------


class TestSpecConformance:
    async def test_every_request_and_response_of_the_client_matches_the_harvest_spec(
            self, sim: HarvestSimulator, client: HarvestClient, time_api: HarvestTime, recording: Recording) -> None:
        await client.me()
        assert len([u async for u in client.iter_users()]) == 240
        assert len([p async for p in client.iter_projects()]) == 30
        assert [c async for c in client.iter_clients()]
        assert [a async for a in client.iter_user_assignments()]
        assert [a async for a in client.iter_task_assignments()]
        await client.get_project(14300000)
        pages = 0
        cursor = None
        query = TimeEntryQuery(start=dt.date(2026, 10, 1), end=dt.date(2026, 10, 2), status="approved")
        while True:  # small pages: first, cursor-paged middle and numbered last pages all occur
            page = await time_api.list_time_entries(query, 300, cursor)
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
        assert pages >= 3
        await time_api.list_time_entries(TimeEntryQuery(project_code="PRJ-A0002",
                                                        updated_since=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)), 5, None)
        await client.get_time_entry(sim.entry_id(DEFECT_FUTURE))
        assert await time_api.uninvoiced_report(*DEMO_PERIOD)
        with pytest.raises(VendorRejected):
            await client.get_time_entry(1)
        statuses = {s for _, s, _ in recording.exchanges}
        assert statuses == {200, 404}
        for request, status, body in recording.exchanges:
            check_request(request)
            check_response(request, status, body)
        middle = [msgspec.json.decode(b) for r, s, b in recording.exchanges
                  if r.url.path == "/v2/time_entries" and "cursor" in r.url.params]
        assert any(m["page"] is None and m["next_page"] is None for m in middle)

    def test_the_checker_catches_an_undeclared_parameter_and_a_wrong_type(self) -> None:
        with pytest.raises(AssertionError, match="approval_status"):
            check_request(httpx.Request("GET", f"{BASE_URL}/v2/time_entries?approval_status=approved",
                                        headers={**HEADERS, "User-Agent": "x"}))
        with pytest.raises(jsonschema.ValidationError):
            check_response(httpx.Request("GET", f"{BASE_URL}/v2/time_entries/1"), 200, b'{"id": "one"}')


class TestWireRules:
    async def test_request_without_user_agent_is_400(self, http: httpx.AsyncClient) -> None:
        request = http.build_request("GET", "/v2/users/me", headers=HEADERS)
        del request.headers["user-agent"]
        response = await http.send(request)
        assert response.status_code == 400
        assert "User-Agent" in response.json()["message"]

    @pytest.mark.parametrize("headers", [{"Harvest-Account-Id": "1"}, {"Authorization": "Bearer t"}])
    async def test_token_and_account_id_are_both_required(self, http: httpx.AsyncClient,
                                                           headers: dict[str, str]) -> None:
        response = await http.get("/v2/users/me", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_token"

    async def test_per_page_above_2000_is_422(self, http: httpx.AsyncClient, client: HarvestClient) -> None:
        assert (await http.get("/v2/time_entries", params={"per_page": 2001}, headers=HEADERS)).status_code == 422
        with pytest.raises(VendorRejected) as info:
            await client.get("time_entries", msgspec.Struct, {"per_page": 2001})
        assert info.value.status == 422 and info.value.code == "unprocessable_entity"

    async def test_first_page_is_numbered_then_links_next_switches_to_a_cursor(self, http: httpx.AsyncClient) -> None:
        first = (await http.get("/v2/time_entries", params={"per_page": 4000 // 2}, headers=HEADERS)).json()
        assert (first["page"], first["next_page"], first["per_page"]) == (1, 2, 2000)
        assert first["total_entries"] == 10_606
        assert "cursor=" in first["links"]["next"] and "ref=next_cursor" in first["links"]["next"]
        second = (await http.get(first["links"]["next"], headers=HEADERS)).json()
        assert (second["page"], second["next_page"], second["previous_page"]) == (None, None, None)
        assert second["time_entries"][0]["id"] == first["time_entries"][-1]["id"] - 1

    async def test_entries_are_newest_first_and_carry_the_seed_key(self, sim: HarvestSimulator,
                                                                   client: HarvestClient) -> None:
        page = await client.time_entries_page(params={"per_page": 50})
        dates = [e.spent_date for e in page.time_entries]
        assert dates == sorted(dates, reverse=True)
        entry = await client.get_time_entry(sim.entry_id(DEFECT_CLOSED))
        assert entry.external_reference is not None and entry.external_reference.id == DEFECT_CLOSED
        assert entry.spent_date == dt.date(2026, 8, 28) and entry.is_closed

    async def test_next_link_to_another_host_is_rebased_onto_ours(self, client: HarvestClient,
                                                                  recording: Recording) -> None:
        await client.time_entries_page(link="https://evil.example/v2/time_entries?per_page=1")
        assert recording.exchanges[-1][0].url.host == "api.harvestapp.com"
        with pytest.raises(ValueError, match="not a Harvest"):
            await client.time_entries_page(link="https://api.harvestapp.com/v2/users?per_page=1")

    async def test_check(self, client: HarvestClient, http: httpx.AsyncClient) -> None:
        assert await client.check() is True
        assert await HarvestClient(http, token=" ").check() is False


class TestListTimeEntries:
    async def test_paging_across_several_pages_with_status_filter(self, sim: HarvestSimulator,
                                                                  api: AsyncTestClient[Litestar]) -> None:
        seen: list[dict[str, Any]] = []
        cursor: str | None = None
        pages = 0
        while True:
            params: dict[str, Any] = {"status": "approved", "from": "2026-10-01", "to": "2026-10-02", "limit": 200}
            if cursor:
                params = {"cursor": cursor, "limit": 200}
            response = await api.get("/system/time/v1/time-entries", params=params)
            assert response.status_code == 200, response.text
            body = response.json()
            assert 0 < len(body["items"]) <= 200
            seen += body["items"]
            pages += 1
            cursor = body.get("next_cursor")
            if not cursor:
                break
        assert pages > 3
        assert {e["status"] for e in seen} == {"approved"}
        assert len({e["id"] for e in seen}) == len(seen)
        assert {e["date"] for e in seen} == {"2026-10-01", "2026-10-02"}
        in_range = [e for e in sim.store.entries if dt.date(2026, 10, 1) <= e.spent_date <= dt.date(2026, 10, 2)]
        assert len(in_range) == 964  # 240 workers x 2 days x 2 entries + 2 seconded consultants' hour a day
        assert len(seen) == sum(1 for e in in_range if e.state == 2) > 900  # ~97% approved
        assert all(e["user_email"].endswith("@meridian.example") and e["project_code"].startswith("PRJ-A")
                   for e in seen)

    async def test_non_approved_statuses(self, api: AsyncTestClient[Litestar]) -> None:
        for status in ("submitted", "draft"):
            body = (await api.get("/system/time/v1/time-entries",
                                  params={"status": status, "limit": 2000})).json()
            assert body["items"] and {e["status"] for e in body["items"]} == {status}

    async def test_project_code_filter(self, api: AsyncTestClient[Litestar]) -> None:
        body = (await api.get("/system/time/v1/time-entries", params={"project_code": "PRJ-A0005", "limit": 50})).json()
        assert len(body["items"]) == 50 and {e["project_code"] for e in body["items"]} == {"PRJ-A0005"}
        empty = (await api.get("/system/time/v1/time-entries", params={"project_code": "PRJ-NOPE"})).json()
        assert empty == {"items": [], "next_cursor": None}

    async def test_an_entry_priced_off_the_rate_card_carries_the_time_systems_rate(
            self, sim: HarvestSimulator, api: AsyncTestClient[Litestar]) -> None:
        # The seed's mispriced entries (billable_rate 1.00) are set per entry, as here.
        entry = sim.entry(sim.entry_id("TE-00004-20261007-0"))
        entry.rate = Decimal("1.00")
        body = (await api.get(f"/system/time/v1/time-entries/{entry.id}")).json()
        assert body["billable_rate"] == {"amount": "1.00", "currency": "USD"}
        project = (await api.get("/system/time/v1/time-entries",
                                 params={"project_code": body["project_code"], "limit": 2000})).json()
        rates = {e["billable_rate"]["amount"] for e in project["items"] if e["billable_rate"]}
        assert "1.00" in rates and len(rates) > 1
        assert all(e["billable_rate"] is None for e in project["items"] if not e["billable"])

    @pytest.mark.parametrize("cursor", ["not-ours", "eyJsaW5rIjoiL3YyL3VzZXJzP3Blcl9wYWdlPTEifQ"])
    async def test_forged_cursor_is_a_422_problem(self, api: AsyncTestClient[Litestar], cursor: str) -> None:
        response = await api.get("/system/time/v1/time-entries", params={"cursor": cursor})
        assert response.status_code == 422 and response.json()["code"] == "invalid_cursor"
        assert response.headers["content-type"].startswith("application/problem+json")

    async def test_limit_above_2000_is_refused(self, api: AsyncTestClient[Litestar]) -> None:
        assert (await api.get("/system/time/v1/time-entries", params={"limit": 2001})).status_code in (400, 422)


class TestGetTimeEntry:
    async def test_get(self, sim: HarvestSimulator, api: AsyncTestClient[Litestar]) -> None:
        entry_id = sim.entry_id(DEFECT_FUTURE)
        body = (await api.get(f"/system/time/v1/time-entries/{entry_id}")).json()
        assert body["id"] == str(entry_id) and body["date"] == "2026-11-20" and body["hours"] == "4.0"
        assert body["status"] == "approved" and body["source"] == "harvest"
        assert body["user_email"] == "ana.ahmed1@meridian.example"

    @pytest.mark.parametrize("entry_id", ["1", "abc"])
    async def test_not_found_is_a_404_problem(self, api: AsyncTestClient[Litestar], entry_id: str) -> None:
        response = await api.get(f"/system/time/v1/time-entries/{entry_id}")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")


class TestProjectsAndReport:
    async def test_projects_paging(self, api: AsyncTestClient[Litestar]) -> None:
        first = (await api.get("/system/time/v1/projects", params={"limit": 20})).json()
        rest = (await api.get("/system/time/v1/projects", params={"cursor": first["next_cursor"]})).json()
        projects = first["items"] + rest["items"]
        assert rest["next_cursor"] is None
        assert sorted(p["code"] for p in projects) == [f"PRJ-A{i:04d}" for i in range(1, 31)]
        closed = [p for p in projects if not p["is_active"]]
        assert [p["code"] for p in closed] == ["PRJ-A0008"]
        assert {p["currency"] for p in projects} == {"USD", "GBP", "EUR"}

    async def test_uninvoiced_report(self, api: AsyncTestClient[Litestar]) -> None:
        body = (await api.get("/system/time/v1/reports/uninvoiced",
                              params={"from": "2026-10-01", "to": "2026-10-31"})).json()
        assert len(body["items"]) == 30
        row = body["items"][0]
        assert Decimal(row["uninvoiced_hours"]) > 0
        assert row["uninvoiced_amount"]["currency"] == row["currency"]

    async def test_report_range_over_a_year_is_a_422_problem(self, api: AsyncTestClient[Litestar]) -> None:
        response = await api.get("/system/time/v1/reports/uninvoiced", params={"from": "2025-01-01",
                                                                              "to": "2026-10-31"})
        assert response.status_code == 422 and response.json()["code"] == "invalid_range"


class TestChangedAfterApproval:
    async def test_reapproval_moves_updated_at_and_changes_the_hours(self, sim: HarvestSimulator,
                                                                     time_api: HarvestTime) -> None:
        entry_id = sim.entry_id("TE-00002-20261005-0")
        before = await time_api.get_time_entry(str(entry_id))
        assert before.status == "approved"
        sim.reapprove(entry_id, hours=Decimal("7.25"), notes="corrected")
        after = await time_api.get_time_entry(str(entry_id))
        assert after.status == "approved" and after.hours == Decimal("7.25") and after.notes == "corrected"
        assert after.updated_at > before.updated_at
        changed = await time_api.list_time_entries(TimeEntryQuery(updated_since=after.updated_at), 100, None)
        assert [e.id for e in changed.items] == [str(entry_id)]

    async def test_workflow_over_the_control_routes(self, sim: HarvestSimulator, http: httpx.AsyncClient) -> None:
        found = (await http.get("/__sim__/time_entries/by-reference/TE-00003-20261006-1")).json()
        entry_id = found["id"]
        locked = await http.patch(f"/__sim__/time_entries/{entry_id}", json={"hours": 1})
        assert locked.status_code == 409  # an approved entry is locked
        assert (await http.post(f"/__sim__/time_entries/{entry_id}/unapprove")).json()["is_closed"] is False
        edited = (await http.patch(f"/__sim__/time_entries/{entry_id}", json={"hours": "3.5"})).json()
        assert edited["hours"] == 3.5 and edited["is_locked"] is False
        assert (await http.post(f"/__sim__/time_entries/{entry_id}/submit")).json()["locked_reason"]
        approved = (await http.post(f"/__sim__/time_entries/{entry_id}/approve")).json()
        assert approved["is_closed"] is True and approved["updated_at"] > found["updated_at"]
        again = (await http.post(f"/__sim__/time_entries/{entry_id}/reapprove", json={"notes": "n"})).json()
        assert again["notes"] == "n" and again["updated_at"] > approved["updated_at"]
        assert (await http.post("/__sim__/time_entries/1/approve")).status_code == 404


class TestRateLimit:
    async def test_simulator_enforces_100_per_15_seconds_and_a_long_retry_after_is_not_waited_out(self) -> None:
        """A request is not held for the vendor's window: a long Retry-After is raised at once (503 above),
        a short one is waited."""
        clock = Clock()
        sim = HarvestSimulator(seed=False, requests_per_window=3, window_seconds=15, clock=clock)
        sleeps = Sleeps(clock)
        async with httpx.AsyncClient(transport=asgi(sim), base_url=BASE_URL) as http:
            client = HarvestClient(http, sleep=sleeps)
            for _ in range(3):
                await client.me()
            clock.now += 5
            raw = await http.get("/v2/users/me", headers={**HEADERS, "Authorization": "Bearer sim-token"})
            assert raw.status_code == 429 and raw.headers["retry-after"] == "10"
            with pytest.raises(VendorRateLimited) as info:
                await client.me()
            assert info.value.retry_after == 10 and not sleeps.waits
            clock.now += 9
            await client.me()
        assert sleeps.waits == [1]
        assert HarvestSimulator(seed=False).rate_window.limit == 100

    async def test_reports_have_their_own_15_minute_window(self) -> None:
        clock = Clock()
        sim = HarvestSimulator(seed=False, report_requests_per_window=1, clock=clock)
        async with httpx.AsyncClient(transport=asgi(sim), base_url=BASE_URL) as http:
            params = {"from": "20261001", "to": "20261031"}
            assert (await http.get("/v2/reports/uninvoiced", params=params, headers=HEADERS)).status_code == 200
            limited = await http.get("/v2/reports/uninvoiced", params=params, headers=HEADERS)
            assert limited.status_code == 429 and limited.headers["retry-after"] == "900"
            assert (await http.get("/v2/users/me", headers=HEADERS)).status_code == 200


class TestFaults:
    async def test_429_is_retried_after_retry_after(self, sim: HarvestSimulator, client: HarvestClient,
                                                    sleeps: Sleeps) -> None:
        sim.faults.add(Fault(kind="rate_limit", retry_after=1, count=1))
        assert await client.check()
        assert sleeps.waits[0] >= 1 and client.http.calls == 2

    async def test_5xx_retried_on_reads(self, sim: HarvestSimulator, client: HarvestClient) -> None:
        sim.faults.add(Fault(kind="server_error", status=502, count=2))
        assert await client.check()
        assert client.http.calls == 3

    async def test_concurrency_limit_is_transient(self, sim: HarvestSimulator, client: HarvestClient,
                                                  sleeps: Sleeps) -> None:
        sim.faults.add(Fault(kind="concurrency_limit", retry_after=1, count=2))
        assert await client.check()
        assert client.http.calls == 3 and all(w >= 1 for w in sleeps.waits)

    async def test_timeout_is_retried(self, sim: HarvestSimulator, client: HarvestClient) -> None:
        sim.faults.add(Fault(kind="timeout", count=1))
        assert await client.check()
        assert client.http.calls == 2

    async def test_business_error_is_rejected_without_retry(self, sim: HarvestSimulator, client: HarvestClient,
                                                            api: AsyncTestClient[Litestar]) -> None:
        sim.faults.add(Fault(kind="business_error", message="Account suspended", count=1))
        with pytest.raises(VendorRejected) as info:
            await client.me()
        assert info.value.status == 422 and client.http.calls == 1 and "suspended" in str(info.value)
        sim.faults.add(Fault(kind="business_error", path=r"/time_entries", count=1))
        response = await api.get("/system/time/v1/time-entries")
        assert response.status_code == 422 and response.json()["type"].endswith("/vendor-rejected")

    async def test_exhausted_rate_limit_is_a_503_problem_with_retry_after(
            self, sim: HarvestSimulator, api: AsyncTestClient[Litestar]) -> None:
        sim.faults.add(Fault(kind="rate_limit", retry_after=7))
        response = await api.get("/system/time/v1/projects")
        assert response.status_code == 503 and response.headers["retry-after"] == "7"

    async def test_breaker_opens_after_repeated_failures(self, sim: HarvestSimulator, client: HarvestClient) -> None:
        sim.faults.add(Fault(kind="server_error", status=503))
        for _ in range(3):
            with pytest.raises((VendorUnavailable, CircuitOpenError)):
                await client.me()
        assert client.http.breaker.state == "open"
        calls = client.http.calls
        with pytest.raises(CircuitOpenError):
            await client.me()
        assert client.http.calls == calls

    async def test_rate_limit_error_carries_retry_after(self, sim: HarvestSimulator, client: HarvestClient) -> None:
        sim.faults.add(Fault(kind="rate_limit", retry_after=4))
        with pytest.raises(VendorRateLimited) as info:
            await client.me()
        assert info.value.retry_after == 4


class TestCorrelationAndControl:
    async def test_correlation_header_reaches_the_simulator(self, sim: HarvestSimulator,
                                                            client: HarvestClient) -> None:
        token = correlation_id.set("corr-harvest-1")
        try:
            await client.me()
        finally:
            correlation_id.reset(token)
        headers = sim.requests[-1].headers
        assert headers["x-correlation-id"] == "corr-harvest-1"
        assert headers["traceparent"].startswith("00-")
        assert headers["authorization"] == "Bearer sim-token" and headers["harvest-account-id"]
        assert headers["user-agent"].startswith("psconnect")

    async def test_count_and_reset(self, sim: HarvestSimulator, http: httpx.AsyncClient) -> None:
        census = (await http.get("/__sim__/count", params={"type": "time_entry"})).json()
        # 240 workers x 22 weekdays x 2 + the two defects + 2 seconded consultants' hour a weekday
        assert census["count"] == 10_606
        assert sim.count("time_entry", DEFECT_CLOSED) == 1 and sim.count("project", "PRJ-A0030") == 1
        assert sim.count("user", "W-00240") == 1 and sim.count("user", "W-99999") == 0
        entry_id = sim.entry_id(DEFECT_CLOSED)
        sim.unapprove(entry_id)
        assert (await http.post("/__sim__/reset")).status_code == 204
        assert sim.render(entry_id).is_closed
