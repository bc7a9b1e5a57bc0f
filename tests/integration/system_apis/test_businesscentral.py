"""The Business Central client and ERP routes against its simulator: OAuth, OData paging, ETags, $batch, faults,
once-only time posting, invoices and credit memos — and every exchange checked against the vendored API document."""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import AsyncIterator, Callable, Iterator
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

from contracts.billing import TimePostingBatch, TimePostingLine
from contracts.common import Money
from contracts.problems import ProblemError
from foundation.retry import RetryPolicy
from system_apis._internal.faults import Fault
from system_apis._internal.http import (
    CircuitOpenError,
    VendorError,
    VendorRateLimited,
    VendorRejected,
    VendorUnavailable,
)
from system_apis.businesscentral import (
    BASE_URL,
    VENDOR,
    BusinessCentralClient,
    BusinessCentralErp,
    create_router,
    create_systems,
)
from system_apis.businesscentral.client import BATCH_LIMIT
from system_apis.businesscentral.simulator import BusinessCentralSimulator, company_id
from system_apis.domains.erp import erp_router
from system_apis.registry import Connection, load_simulator
from tests.integration.system_apis import vendor_kit
from tests.integration.system_apis.vendor_kit import (
    PACE,
    Clock,
    Sleeps,
    domain_api,
    every_item,
    posted_sums,
    totals_sums,
    vendor_http,
)

ApiClient = AsyncTestClient[Litestar]
ERP = "/system/erp/v1"
ENTITY = "DE01"
COMPANY = company_id(ENTITY)
API = f"{BASE_URL}/api/v2.0"
SPEC = Path(__file__).resolve().parents[3] / "system_apis" / "businesscentral" / "spec" / \
    "business-central-v1.openapi.yaml"


class Recording(httpx.AsyncBaseTransport):
    """Keeps every exchange so requests and responses can be checked against the vendor's document."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.exchanges: list[tuple[httpx.Request, int, bytes]] = []
        self.lose_next_answer_of: str | None = None
        self.lose_writes: float = 0.0
        self.lost = 0
        self._rng = random.Random(4)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        self.exchanges.append((request, response.status_code, body))
        if self.lose_next_answer_of and request.url.path.endswith(self.lose_next_answer_of):
            self.lose_next_answer_of = None  # Business Central did the work; the answer never arrives
            raise httpx.ReadTimeout("answer lost", request=request)
        if request.method != "GET" and "/api/" in request.url.path and self._rng.random() < self.lose_writes:
            self.lost += 1
            raise httpx.ReadTimeout("answer lost", request=request)
        return httpx.Response(response.status_code, headers=response.headers, content=body, request=request)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sim(clock: Clock) -> BusinessCentralSimulator:
    return BusinessCentralSimulator(legal_entities=(ENTITY,), clock=clock, page_size=40)


@pytest.fixture
def recording(sim: BusinessCentralSimulator) -> Iterator[Recording]:
    """Every exchange of every test using the simulator is checked against the vendor's document afterwards."""
    recorded = Recording(vendor_kit.asgi(sim.app))
    yield recorded
    for request, status, body in recorded.exchanges:
        check_exchange(request, status, body)


@pytest.fixture
async def http(sim: BusinessCentralSimulator, recording: Recording) -> AsyncIterator[httpx.AsyncClient]:
    async with vendor_http(sim.app, BASE_URL, transport=recording) as client:
        yield client


@pytest.fixture
def client(http: httpx.AsyncClient, sleeps: Sleeps, clock: Clock) -> BusinessCentralClient:
    return BusinessCentralClient(http, retry=PACE, sleep=sleeps, clock=clock, budget=None)


@pytest.fixture
def erp(client: BusinessCentralClient) -> BusinessCentralErp:
    return BusinessCentralErp(client)


@pytest.fixture
async def api(erp: BusinessCentralErp) -> AsyncIterator[ApiClient]:
    async with domain_api(erp_router(erp)) as test_client:
        yield test_client


# --- the vendor's document as JSON Schema ---------------------------------------------------------------------

# v2.0 only, or the psconnect extension's API page: checked against the documentation, not the v1.0 document
DEVIATING_PATHS = (re.compile(r"/accountingPeriods"), re.compile(r"/api/psconnect/erp/v1\.0/"),
                   re.compile(r"/\$batch$"), re.compile(r"/currencyExchangeRates"),
                   re.compile(r"/customerPaymentJournals\([^)]*\)/Microsoft\.NAV\.post$"))
# OData v4 server-driven paging (https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/
# webservices/odata-client-performance): $skiptoken in @odata.nextLink
DEVIATING_QUERY = frozenset({"$skiptoken"})


def _json_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _json_schema(v) for k, v in node.items() if k not in ("nullable", "example", "format")}
    if node.get("nullable") and "type" in out and isinstance(out["type"], str):
        out["type"] = [out["type"], "null"]
    return out


@cache
def spec() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(SPEC.read_text())
    return document


@cache
def components() -> dict[str, Any]:
    converted: dict[str, Any] = _json_schema(spec()["components"])
    return converted


@cache
def _templates() -> list[tuple[re.Pattern[str], dict[str, Any]]]:
    out = []
    for template, item in spec()["paths"].items():
        pattern = re.escape(template)
        pattern = re.sub(r"'?\\\{[^}]+\\\}'?", r"'?[^/()']+'?", pattern)  # v2.0 line keys are GUIDs, v1.0 strings
        out.append((re.compile(pattern + "$"), item))
    return out


def operation(method: str, path: str) -> dict[str, Any] | None:
    """The v1.0 operation for a v2.0 request, or None for the documented deviations."""
    if any(p.search(path) for p in DEVIATING_PATHS):
        return None
    local = path.split("/api/v2.0", 1)[1]
    for pattern, item in _templates():
        if pattern.match(local) and method.lower() in item:
            found: dict[str, Any] = item[method.lower()]
            return found
    raise AssertionError(f"{method} {path} is no operation of the Business Central document")


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        _, _, kind, name = node["$ref"].split("/")
        resolved: dict[str, Any] = spec()["components"][kind][name]
        return resolved
    return node


_validators: dict[int, Any] = {}


def _validator(node: dict[str, Any], schema: Callable[[], dict[str, Any]]) -> Any:
    """One compiled validator per node of the document (the document is loaded once, so ids are stable)."""
    if id(node) not in _validators:
        document = {**_json_schema(schema()), "components": components()}
        _validators[id(node)] = jsonschema.validators.validator_for(document)(document)
    return _validators[id(node)]


def check_operation(method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any,
                    status: int, answer: Any) -> None:
    op = operation(method, path)
    if op is None:
        return
    declared = {(_resolve(p)["name"]): _resolve(p) for p in op.get("parameters", [])}
    for name, value in query.items():
        if name in DEVIATING_QUERY:
            continue
        assert name in declared, f"{path}: undeclared query parameter {name!r}"
        if declared[name]["schema"].get("type") == "integer":
            assert value.isdigit(), f"{name}={value!r} is not an integer"
    lowered = {k.lower() for k in headers}
    for name, parameter in declared.items():
        if parameter["in"] == "header" and parameter.get("required") and name != "Content-Type":
            assert name.lower() in lowered, f"{method} {path}: required header {name} missing"
    if body is not None and "requestBody" in op:
        _validator(op["requestBody"], lambda: _resolve(op["requestBody"])["content"]["application/json"]["schema"]
                   ).validate(body)
    if status >= 400:
        assert set(answer) == {"error"} and {"code", "message"} <= set(answer["error"]), answer
        return
    declared_answer = op["responses"].get(status) or op["responses"].get(str(status))
    assert declared_answer is not None, f"{method} {path}: status {status} not in the document"
    content = declared_answer.get("content")
    if content is None:
        assert answer is None, f"{method} {path}: {status} should have no body"
        return
    _validator(content, lambda: content["application/json"]["schema"]).validate(answer)


def check_exchange(request: httpx.Request, status: int, content: bytes) -> None:
    path = request.url.path
    if "/oauth2/v2.0/token" in path:
        return
    assert request.headers["authorization"].startswith("Bearer ")
    body = msgspec.json.decode(request.content) if request.content else None
    answer = msgspec.json.decode(content) if content else None
    check_operation(request.method, path, dict(request.url.params.items()), dict(request.headers), body, status,
                    answer)
    if path.endswith("/$batch") and status == 200:
        assert body is not None and answer is not None
        assert len(body["requests"]) <= BATCH_LIMIT
        for inner, result in zip(body["requests"], answer["responses"], strict=True):
            url = httpx.URL(inner["url"]) if "://" in inner["url"] else httpx.URL(f"{API}/{inner['url']}")
            if result["status"] == 424:
                continue
            check_operation(inner["method"], url.path, dict(url.params.items()), inner.get("headers") or {},
                            inner.get("body"), int(result["status"]), result.get("body"))


def _line(key: str, project: str, worker: str, day: dt.date, hours: str = "7.5") -> dict[str, Any]:
    amount = str((Decimal(hours) * 200).quantize(Decimal("0.01")))
    return {"line_key": key, "project_external_id": project, "employee_external_id": worker, "date": day.isoformat(),
            "hours": hours, "rate": {"amount": "200.00", "currency": "EUR"},
            "amount": {"amount": amount, "currency": "EUR"}, "billable": True}


def _workers(sim: BusinessCentralSimulator) -> list[str]:
    active = {e["id"] for e in sim.records(ENTITY, "employees") if e["status"] == "Active"}
    return [r["recordKey"] for r in sim.records(ENTITY, "psconnectRecords")
            if r["recordType"] == "employee" and r["targetId"] in active]


def _projects(sim: BusinessCentralSimulator) -> list[str]:
    blocked = {p["id"] for p in sim.records(ENTITY, "projects") if p.get("blocked")}
    return [r["recordKey"] for r in sim.records(ENTITY, "psconnectRecords")
            if r["recordType"] == "project" and r["targetId"] not in blocked]


async def _invoice(api: ApiClient, sim: BusinessCentralSimulator, external_id: str = "INV-PRJ-2026-10-0001",
                   period: str = "2026-10", hours: str = "7.5") -> httpx.Response:
    project = (await api.get(f"{ERP}/projects", params={"external_id": _projects(sim)[0]})).json()["items"][0]
    amount = str((Decimal(hours) * 200).quantize(Decimal("0.01")))
    return await api.put(f"{ERP}/invoices/by-external-id/{external_id}", json={
        "customer_id": project["customer_id"], "project_external_id": project["external_id"],
        "legal_entity_id": ENTITY, "period": period, "currency": "EUR",
        "lines": [{"kind": "time", "description": "consultant — Ana Becker", "quantity": hours,
                   "unit_price": {"amount": "200.00", "currency": "EUR"},
                   "amount": {"amount": amount, "currency": "EUR"}, "source_keys": ["TE-1:1"]},
                  {"kind": "milestone", "description": "Kick-off", "quantity": "1",
                   "unit_price": {"amount": "5000.00", "currency": "EUR"},
                   "amount": {"amount": "5000.00", "currency": "EUR"}, "source_keys": ["MS-1"]}]})


# --- tests ----------------------------------------------------------------------------------------------------


class TestSpecConformance:
    async def test_every_exchange_of_the_adapter_matches_the_business_central_document(
            self, api: ApiClient, sim: BusinessCentralSimulator, recording: Recording) -> None:
        assert (await api.get(f"{ERP}/legal-entities")).json()["items"][0]["code"] == ENTITY
        projects = (await api.get(f"{ERP}/projects", params={"limit": "5"})).json()
        assert len(projects["items"]) == 5 and projects["next_cursor"]
        assert (await api.get(f"{ERP}/projects/{projects['items'][0]['id']}")).status_code == 200
        customer = projects["items"][0]["customer_id"]
        assert (await api.get(f"{ERP}/customers/{customer}")).status_code == 200
        assert (await api.get(f"{ERP}/accounting-periods")).status_code == 200
        assert (await api.put(f"{ERP}/customers/by-external-id/ACC-0900", json={
            "name": "Northwind GmbH", "legal_entity_id": ENTITY, "currency": "EUR", "tax_id": "DE123456789",
            "billing_address": {"street": "1 Hauptstrasse", "city": "Berlin", "postal_code": "10115",
                                "country": "DE"}})).status_code == 201
        assert (await api.put(f"{ERP}/employees/by-external-id/W-09000", json={
            "name": "Ana Becker", "email": "ana@meridian.example", "legal_entity_id": ENTITY,
            "cost_center": "CC-DE01-1", "cost_rate": {"amount": "80.00", "currency": "EUR"},
            "active": True})).status_code == 201
        batch = {"batch_key": "BATCH-SPEC-01", "legal_entity_id": ENTITY,
                 "lines": [_line(f"TE-{i}:1", _projects(sim)[0], _workers(sim)[i], dt.date(2026, 10, 5))
                           for i in range(3)]}
        assert (await api.post(f"{ERP}/time-postings", json=batch)).status_code == 202
        assert (await api.get(f"{ERP}/posted-time")).json()["items"]
        assert (await _invoice(api, sim)).status_code == 201
        assert (await _invoice(api, sim, hours="8")).status_code == 200
        assert (await api.get(f"{ERP}/customers/{'0' * 8}-0000-0000-0000-{'0' * 12}")).status_code == 404
        statuses = {s for _, s, _ in recording.exchanges}
        assert {200, 201, 404} <= statuses
        assert len(recording.exchanges) > 30  # each checked against the document by the fixture

    def test_the_checker_catches_an_undeclared_parameter_a_missing_if_match_and_a_wrong_type(self) -> None:
        path = f"/v2.0/t/production/api/v2.0/companies({COMPANY})/customers"
        with pytest.raises(AssertionError, match=r"\$orderby"):
            check_operation("GET", path, {"$orderby": "number"}, {}, None, 200, {"value": []})
        with pytest.raises(AssertionError, match="If-Match"):
            check_operation("PATCH", f"{path}({COMPANY})", {}, {}, {"displayName": "x"}, 200, {"id": COMPANY})
        with pytest.raises(jsonschema.ValidationError):
            check_operation("GET", path, {}, {}, None, 200, {"value": [{"id": COMPANY, "displayName": 7}]})


class TestAuth:
    async def test_token_is_fetched_once_with_the_business_central_scope_and_renewed_before_expiry(
            self, client: BusinessCentralClient, sim: BusinessCentralSimulator, clock: Clock,
            recording: Recording) -> None:
        await client.check()
        await client.check()
        assert sim.tokens_issued == 1
        form = dict(httpx.QueryParams(recording.exchanges[0][0].content.decode()))
        assert recording.exchanges[0][0].url == "https://login.microsoftonline.com/sim-tenant/oauth2/v2.0/token"
        assert form["grant_type"] == "client_credentials"
        assert form["scope"] == "https://api.businesscentral.dynamics.com/.default"
        clock.now += sim.token_lifetime - 60  # inside the renewal margin: a new token before the old one dies
        await client.check()
        assert sim.tokens_issued == 2
        assert all(status != 401 for _, status, _ in recording.exchanges)

    async def test_a_token_revoked_early_is_renewed_once_on_the_401(self, client: BusinessCentralClient,
                                                                     sim: BusinessCentralSimulator) -> None:
        await client.check()
        sim.tokens.clear()
        assert await client.check()
        assert sim.tokens_issued == 2

    async def test_an_expired_token_is_refused_with_the_business_central_error(
            self, http: httpx.AsyncClient, sim: BusinessCentralSimulator, clock: Clock) -> None:
        sim.tokens["old"] = clock.now - 1
        response = await http.get(f"{API}/companies", headers={"Authorization": "Bearer old"})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "Authentication_InvalidCredentials"

    async def test_wrong_secret_is_a_rejection_that_never_shows_the_secret(
            self, http: httpx.AsyncClient, sim: BusinessCentralSimulator) -> None:
        sim.credentials = {"app": "right-secret"}
        wrong = BusinessCentralClient(http, client_id="app", client_secret="wrong-secret", budget=None)
        with pytest.raises(VendorRejected) as exc:
            await wrong.list_page(f"{API}/companies")
        assert exc.value.code == "invalid_client"
        assert "wrong-secret" not in str(exc.value)
        right = BusinessCentralClient(http, client_id="app", client_secret="right-secret", budget=None)
        assert await right.check()


class TestODataWire:
    async def test_next_links_cover_every_project_once(self, api: ApiClient, sim: BusinessCentralSimulator) -> None:
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": "7", **({"cursor": cursor} if cursor else {})}
            body = (await api.get(f"{ERP}/projects", params=params)).json()
            seen += [p["external_id"] for p in body["items"]]
            cursor = body.get("next_cursor")
            if not cursor:
                break
        assert sorted(seen) == sorted(r["recordKey"] for r in sim.records(ENTITY, "psconnectRecords")
                                      if r["recordType"] == "project")
        assert len(seen) == len(set(seen)) > 7

    async def test_server_pages_carry_a_next_link_and_honour_maxpagesize(self, client: BusinessCentralClient) -> None:
        url = await client.url("employees")
        records, link = await client.list_page(url)
        assert len(records) == 40 and link and "$skiptoken=40" in httpx.URL(link).query.decode().replace("%24", "$")
        records, link = await client.list_page(url, page_size=3)
        assert len(records) == 3
        assert len([r async for r in client.iter_all(url, page_size=25)]) == 80

    async def test_a_next_link_to_another_host_is_not_followed(self, client: BusinessCentralClient) -> None:
        with pytest.raises(ValueError, match="not a link"):
            await client.list_page("", link="https://evil.example/v2.0/x/production/api/v2.0/companies")

    async def test_a_cursor_from_another_list_is_refused(self, api: ApiClient) -> None:
        cursor = (await api.get(f"{ERP}/projects", params={"limit": "2"})).json()["next_cursor"]
        response = await api.get(f"{ERP}/accounting-periods", params={"cursor": cursor})
        assert response.status_code == 422 and response.json()["code"] == "invalid_cursor"

    async def test_patch_with_a_stale_etag_is_412_and_changes_nothing(self, client: BusinessCentralClient,
                                                                       sim: BusinessCentralSimulator) -> None:
        url = await client.url("customers")
        customer = (await client.list_page(url, page_size=1))[0][0]
        fresh = await client.patch(await client.url(f"customers({customer['id']})"), {"displayName": "Renamed once"},
                                   customer["@odata.etag"])
        with pytest.raises(VendorRejected) as exc:
            await client.patch(await client.url(f"customers({customer['id']})"), {"displayName": "Lost update"},
                               customer["@odata.etag"])
        assert (exc.value.status, exc.value.code) == (412, "Request_EntityChanged")
        stored = next(c for c in sim.records(ENTITY, "customers") if c["id"] == customer["id"])
        assert stored["displayName"] == "Renamed once" and stored["@odata.etag"] == fresh["@odata.etag"]
        with pytest.raises(VendorRejected) as missing:
            await client.delete(await client.url(f"customers({customer['id']})"), "")
        assert missing.value.status == 400

    async def test_batch_above_100_operations_is_refused_and_a_failed_transaction_keeps_nothing(
            self, http: httpx.AsyncClient, client: BusinessCentralClient, sim: BusinessCentralSimulator) -> None:
        await client.check()
        token = next(iter(sim.tokens))
        ops = [{"id": str(i), "method": "GET", "url": f"companies({COMPANY})/customers"} for i in range(101)]
        response = await http.post(f"{API}/$batch", json={"requests": ops},
                                   headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 400 and "100" in response.json()["error"]["message"]
        with pytest.raises(ValueError, match="1 to 100"):
            await client.batch(ops)
        before = sim.count("customers", None)
        answers = await client.batch([
            {"id": "1", "method": "POST", "url": f"companies({COMPANY})/customers", "body": {"displayName": "Kept?"}},
            {"id": "2", "method": "POST", "url": f"companies({COMPANY})/customers", "body": {"displayName": ""}}])
        assert [a["status"] for a in answers] == [424, 400]
        assert sim.count("customers", None) == before

    async def test_a_key_is_one_records_whatever_its_case_and_free_again_after_a_rolled_back_transaction(
            self, client: BusinessCentralClient) -> None:
        await client.check()
        url = f"companies({COMPANY})/customers"

        def customer(number: str, name: str = "Keyed") -> dict[str, Any]:
            return {"id": "1", "method": "POST", "url": url, "body": {"displayName": name, "number": number}}

        rolled_back = await client.batch([customer("C-KEY"), {**customer("C-OTHER", ""), "id": "2"}])
        assert [a["status"] for a in rolled_back] == [424, 400]
        assert await client.find(f"{API}/{url}", "number eq 'C-KEY'") is None
        assert (await client.batch([customer("C-KEY")]))[0]["status"] == 201  # the rolled-back number is free
        again = (await client.batch([customer("c-key", "Twin")]))[0]
        assert (again["status"], again["body"]["error"]["code"]) == (400, "Internal_EntityWithSameKeyExists")
        found = await client.find(f"{API}/{url}", "number eq 'c-KEY' and displayName eq 'keyed'")
        assert found is not None and found["number"] == "C-KEY"
        assert await client.find(f"{API}/{url}", "number eq 'C-KEY' and displayName eq 'Twin'") is None


class TestMasterData:
    async def test_customer_upsert_creates_then_updates_one_record(self, api: ApiClient,
                                                                    sim: BusinessCentralSimulator) -> None:
        body = {"name": "Northwind GmbH", "legal_entity_id": COMPANY, "currency": "EUR", "tax_id": "DE123456789"}
        first = await api.put(f"{ERP}/customers/by-external-id/ACC-0901", json=body)
        second = await api.put(f"{ERP}/customers/by-external-id/ACC-0901", json={**body, "name": "Northwind AG"})
        assert (first.status_code, second.status_code) == (201, 200)
        assert first.json()["id"] == second.json()["id"] and second.json()["name"] == "Northwind AG"
        assert sim.count("customers", "ACC-0901") == 1
        assert (await api.get(f"{ERP}/customers/{first.json()['id']}")).json()["external_id"] == "ACC-0901"

    async def test_another_legal_entity_is_refused_before_any_write(self, api: ApiClient,
                                                                     sim: BusinessCentralSimulator) -> None:
        response = await api.put(f"{ERP}/customers/by-external-id/ACC-0902", json={
            "name": "X", "legal_entity_id": "UK01", "currency": "GBP"})
        assert response.status_code == 422
        assert sim.count("customers", "ACC-0902") == 0

    async def test_project_upsert_keeps_what_business_central_lacks(self, api: ApiClient,
                                                                     sim: BusinessCentralSimulator) -> None:
        customer = (await api.put(f"{ERP}/customers/by-external-id/ACC-0903", json={
            "name": "Contoso", "legal_entity_id": ENTITY, "currency": "EUR"})).json()
        body = {"name": "Contoso — Strategy 2027", "customer_id": customer["id"], "legal_entity_id": ENTITY,
                "currency": "EUR", "budget": {"amount": "250000.00", "currency": "EUR"},
                "start_date": "2026-11-01", "end_date": "2027-04-30",
                "tasks": [{"name": "Discovery", "planned_hours": "120"}],
                "billing": {"billing_type": "fixed_fee", "milestones": [
                    {"name": "Kick-off", "due_date": "2026-11-15", "amount": {"amount": "50000.00",
                                                                              "currency": "EUR"}}]}}
        first = await api.put(f"{ERP}/projects/by-external-id/PRJ-Z0001", json=body)
        again = await api.put(f"{ERP}/projects/by-external-id/PRJ-Z0001", json={**body, "name": "Renamed"})
        assert (first.status_code, again.status_code) == (201, 200)
        project = again.json()
        assert project["budget"] == {"amount": "250000.00", "currency": "EUR"}
        assert project["tasks"] == body["tasks"] and project["billing"]["milestones"][0]["name"] == "Kick-off"
        assert sim.count("projects", "PRJ-Z0001") == 1
        assert next(p for p in sim.records(ENTITY, "projects") if p["number"] == "PRJ-Z0001")["displayName"] == \
            "Renamed"
        mismatch = await api.put(f"{ERP}/projects/by-external-id/PRJ-Z0002", json={
            **body, "budget": {"amount": "1.00", "currency": "USD"}})
        assert mismatch.status_code == 422 and sim.count("projects", "PRJ-Z0002") == 0

    async def test_periods_end_where_the_next_begins_and_carry_the_close(self, api: ApiClient) -> None:
        periods = (await api.get(f"{ERP}/accounting-periods", params={"limit": "12"})).json()["items"]
        assert [p["end_date"] for p in periods][:2] == ["2026-01-31", "2026-02-28"]
        assert [p["is_closed"] for p in periods[7:9]] == [True, False]
        assert periods[-1]["end_date"] == "2026-12-31"


class TestTimePosting:
    async def test_a_batch_posts_once_and_refuses_lines_with_the_canonical_reason(
            self, api: ApiClient, sim: BusinessCentralSimulator) -> None:
        projects, workers = _projects(sim), _workers(sim)
        inactive = workers.pop()
        leaver = next(r["targetId"] for r in sim.records(ENTITY, "psconnectRecords") if r["recordKey"] == inactive)
        next(e for e in sim.records(ENTITY, "employees") if e["id"] == leaver)["status"] = "Inactive"
        lines = [_line(f"TE-{i}:1", projects[i % 3], workers[i % len(workers)],
                       dt.date(2026, 10, 1 + i % 20)) for i in range(120)]
        lines += [_line("TE-CLOSED:1", projects[0], workers[0], dt.date(2026, 8, 3)),
                  _line("TE-GONE:1", projects[0], inactive, dt.date(2026, 10, 20)),
                  _line("TE-NOPRJ:1", "PRJ-NONE", workers[0], dt.date(2026, 10, 20))]
        batch = {"batch_key": "BATCH-2026-10-0001", "legal_entity_id": ENTITY, "lines": lines}
        first = await api.post(f"{ERP}/time-postings", json=batch)
        assert first.status_code == 202 and first.json()["status"] == "complete"
        again = await api.post(f"{ERP}/time-postings", json=batch)
        assert again.json() == first.json()
        assert sim.count("timeRegistrationEntries", None) == 120
        result = (await api.get(f"{ERP}/time-postings/BATCH-2026-10-0001")).json()
        assert len(result["posted"]) == 120
        assert result["refusals"] == {"TE-CLOSED:1": "period_closed", "TE-GONE:1": "worker_inactive",
                                      "TE-NOPRJ:1": "validation"}
        posted = (await api.get(f"{ERP}/posted-time", params={"project_external_id": projects[0],
                                                               "from": "2026-10-01", "to": "2026-10-10"})).json()
        assert posted["items"] and all(p["project_external_id"] == projects[0] and p["date"] <= "2026-10-10"
                                       for p in posted["items"])
        entry_ids = {e["id"] for e in sim.records(ENTITY, "timeRegistrationEntries")}
        assert {p["id"] for p in posted["items"]} <= entry_ids
        window = {"from": "2026-10-01", "to": "2026-10-31"}
        whole = await every_item(api, f"{ERP}/posted-time", {**window, "limit": 1000})
        totals = await every_item(api, f"{ERP}/posted-time/totals", {**window, "limit": 1})
        assert len(totals) == 3 and totals_sums(totals) == posted_sums(whole)  # summed by the adapter, paged

    async def test_a_lost_answer_and_a_retry_register_nothing_twice(self, api: ApiClient, recording: Recording,
                                                                    sim: BusinessCentralSimulator) -> None:
        projects, workers = _projects(sim), _workers(sim)
        batch = {"batch_key": "BATCH-LOST-0001", "legal_entity_id": ENTITY,
                 "lines": [_line(f"TE-L{i}:1", projects[0], workers[i], dt.date(2026, 10, 6)) for i in range(60)]}
        recording.lose_next_answer_of = "/$batch"  # the first transaction commits; its answer is lost
        response = await api.post(f"{ERP}/time-postings", json=batch)
        assert response.status_code == 202
        assert sim.count("timeRegistrationEntries", None) == 60
        posted = (await api.get(f"{ERP}/time-postings/BATCH-LOST-0001")).json()["posted"]
        assert len(posted) == 60
        entries = {e["id"] for e in sim.records(ENTITY, "timeRegistrationEntries")}
        assert set(posted.values()) == entries  # each line names its own entry, found again after the lost answer

    async def test_under_5xx_and_lost_answers_retried_posting_registers_every_line_exactly_once(
            self, erp: BusinessCentralErp, sim: BusinessCentralSimulator, recording: Recording) -> None:
        projects, workers = _projects(sim), _workers(sim)
        lines = [TimePostingLine(**{**_line(f"TE-F{i}:1", projects[i % 4], workers[i % len(workers)],
                                            dt.date(2026, 10, 1 + i % 25)), "date": dt.date(2026, 10, 1 + i % 25),
                                    "rate": Money(amount=Decimal("200.00"), currency="EUR"),
                                    "amount": Money(amount=Decimal("1500.00"), currency="EUR")})
                 for i in range(100)]
        batch = TimePostingBatch(batch_key="BATCH-FAULTS-01", legal_entity_id=ENTITY, lines=lines)
        await erp.entity()
        sim.faults.add(Fault(kind="server_error", status=503, rate=0.15, path="/api/"))
        recording.lose_writes = 0.25
        attempts = 0
        while True:  # the process retries the step until the ERP answers
            attempts += 1
            try:
                job = await erp.post_time(batch)
                break
            except (VendorError, ProblemError):
                assert attempts < 60
        sim.faults.clear()
        recording.lose_writes = 0.0
        assert job.status == "complete"
        assert sim.faults.injected > 10 and recording.lost > 0  # the faults did bite
        entries = {e["id"] for e in sim.records(ENTITY, "timeRegistrationEntries")}
        assert len(entries) == 100
        result = await erp.get_time_posting("BATCH-FAULTS-01")
        assert set(result.posted) == {line.line_key for line in lines} and not result.failed
        assert set(result.posted.values()) == entries

    async def test_a_line_posted_under_another_batch_key_is_reported_not_registered_again(
            self, api: ApiClient, sim: BusinessCentralSimulator) -> None:
        projects, workers = _projects(sim), _workers(sim)
        line = _line("TE-SHARED:1", projects[0], workers[0], dt.date(2026, 10, 7))
        await api.post(f"{ERP}/time-postings", json={"batch_key": "BATCH-A-0001", "legal_entity_id": ENTITY,
                                                     "lines": [line]})
        other = _line("TE-OTHER:1", projects[0], workers[1], dt.date(2026, 10, 7))
        await api.post(f"{ERP}/time-postings", json={"batch_key": "BATCH-B-0001", "legal_entity_id": ENTITY,
                                                     "lines": [line, other]})
        assert sim.count("timeRegistrationEntries", None) == 2
        first = (await api.get(f"{ERP}/time-postings/BATCH-A-0001")).json()["posted"]
        second = (await api.get(f"{ERP}/time-postings/BATCH-B-0001")).json()["posted"]
        assert second["TE-SHARED:1"] == first["TE-SHARED:1"] and set(second) == {"TE-SHARED:1", "TE-OTHER:1"}

    async def test_unknown_batch_key_is_404(self, api: ApiClient) -> None:
        assert (await api.get(f"{ERP}/time-postings/BATCH-NEVER-01")).status_code == 404


class TestInvoices:
    async def test_invoice_draft_is_created_then_replaced_not_appended(self, api: ApiClient,
                                                                        sim: BusinessCentralSimulator) -> None:
        first = await _invoice(api, sim)
        second = await _invoice(api, sim, hours="8")
        assert (first.status_code, second.status_code) == (201, 200)
        invoice = second.json()
        assert invoice["id"] == first.json()["id"] and invoice["status"] == "draft"
        assert [line["kind"] for line in invoice["lines"]] == ["time", "milestone"]
        assert invoice["total"] == {"amount": "6600.00", "currency": "EUR"}
        assert sim.count("salesInvoices", None) == 1
        listed = (await api.get(f"{ERP}/invoices", params={"period": "2026-10"})).json()["items"]
        assert [i["external_id"] for i in listed] == ["INV-PRJ-2026-10-0001"]

    async def test_a_draft_left_behind_by_a_failed_upsert_is_adopted_not_duplicated(
            self, api: ApiClient, sim: BusinessCentralSimulator) -> None:
        sim.faults.add(Fault(kind="server_error", status=503, count=PACE.max_attempts, path=r"/\$batch$"))
        assert (await _invoice(api, sim)).status_code == 503  # header created; lines and index never arrived
        assert sim.count("salesInvoices", None) == 1
        retried = await _invoice(api, sim)
        assert retried.status_code == 200 and len(retried.json()["lines"]) == 2
        assert sim.count("salesInvoices", None) == 1

    async def test_a_closed_period_is_period_closed_and_nothing_is_created(self, api: ApiClient,
                                                                            sim: BusinessCentralSimulator) -> None:
        response = await _invoice(api, sim, period="2026-08")
        assert response.status_code == 422 and response.json()["code"] == "period_closed"
        sim.close_period(ENTITY, "2026-10", lock=True)
        assert (await _invoice(api, sim)).json()["code"] == "period_closed"
        assert sim.count("salesInvoices", None) == 0

    async def test_a_posted_invoice_is_never_changed_and_can_be_credited(self, api: ApiClient, erp: BusinessCentralErp,
                                                                          sim: BusinessCentralSimulator) -> None:
        invoice = (await _invoice(api, sim)).json()
        posted = await erp.post_invoice("INV-PRJ-2026-10-0001")
        assert posted.status == "posted"
        refused = await _invoice(api, sim, hours="9")
        assert refused.status_code == 409 and refused.json()["code"] == "document_posted"
        memo = {"customer_id": invoice["customer_id"], "project_external_id": invoice["project_external_id"],
                "legal_entity_id": ENTITY, "period": "2026-10", "currency": "EUR",
                "invoice_external_id": "INV-PRJ-2026-10-0001", "reason": "Time entries changed after invoicing",
                "lines": [{"kind": "credit", "description": "reversal of TE-1:1", "quantity": "7.5",
                           "unit_price": {"amount": "200.00", "currency": "EUR"},
                           "amount": {"amount": "1500.00", "currency": "EUR"}, "source_keys": ["TE-1:2"]}]}
        created = await api.put(f"{ERP}/credit-memos/by-external-id/CM-PRJ-2026-10-0001", json=memo)
        assert created.status_code == 201 and created.json()["total"]["amount"] == "1500.00"
        assert next(iter(sim.records(ENTITY, "salesCreditMemos")))["invoiceId"] == invoice["id"]
        unknown = await api.put(f"{ERP}/credit-memos/by-external-id/CM-X-0001",
                                json={**memo, "invoice_external_id": "INV-NONE"})
        assert unknown.status_code == 422 and unknown.json()["code"] == "unknown_invoice"
        listed = (await api.get(f"{ERP}/credit-memos", params={"period": "2026-10"})).json()["items"]
        assert [m["external_id"] for m in listed] == ["CM-PRJ-2026-10-0001"]


class TestResilience:
    async def test_429_is_retried_after_at_least_retry_after(self, client: BusinessCentralClient, sleeps: Sleeps,
                                                             sim: BusinessCentralSimulator) -> None:
        await client.check()
        sim.faults.add(Fault(kind="rate_limit", count=1, retry_after=1, path="/api/"))
        calls = client.http.calls
        assert await client.list_page(f"{API}/companies")
        assert sleeps.waits and sleeps.waits[0] >= 1
        assert client.http.calls == calls + 2

    async def test_the_throttle_window_answers_429_with_retry_after_and_the_client_waits_it_out(
            self, clock: Clock) -> None:
        throttled = BusinessCentralSimulator(legal_entities=(ENTITY,), clock=clock, rate_limit=(3, 5.0))
        sleeps = Sleeps(clock)
        async with vendor_http(throttled.app, BASE_URL) as own:
            client = BusinessCentralClient(own, retry=RetryPolicy(max_attempts=3, base_delay=0.01), sleep=sleeps,
                                           clock=clock, budget=None)
            client.http.max_wait = client.http.wait_budget = 10.0
            for _ in range(4):
                assert await client.list_page(f"{API}/companies")
        assert sleeps.waits == [5.0]

    async def test_throttling_that_outlasts_the_request_is_a_503_problem_with_retry_after(
            self, api: ApiClient, sim: BusinessCentralSimulator) -> None:
        sim.faults.add(Fault(kind="rate_limit", retry_after=30, path="/api/"))
        response = await api.get(f"{ERP}/legal-entities")
        assert response.status_code == 503 and int(response.headers["Retry-After"]) >= 1

    async def test_5xx_and_timeouts_are_retried_on_reads_but_a_create_is_not(
            self, client: BusinessCentralClient, sim: BusinessCentralSimulator) -> None:
        await client.check()
        url = await client.url("customers")
        sim.faults.add(Fault(kind="server_error", count=1, status=503, path="/api/"))
        sim.faults.add(Fault(kind="timeout", count=1, path="/api/"))
        calls = client.http.calls
        await client.list_page(url, page_size=1)
        assert client.http.calls == calls + 3
        sim.faults.add(Fault(kind="server_error", count=1, method="POST", status=500, path="/customers$"))
        with pytest.raises(VendorUnavailable):
            await client.create(await client.url("customers"), {"displayName": "Once"})
        assert sim.count("customers", None) == len(sim.records(ENTITY, "customers"))

    async def test_vendor_error_body_becomes_a_problem(self, api: ApiClient, sim: BusinessCentralSimulator,
                                                       client: BusinessCentralClient) -> None:
        await client.check()
        sim.faults.add(Fault(kind="business_error", count=1, message="The record is locked.", path="/api/"))
        response = await api.get(f"{ERP}/legal-entities")
        assert response.status_code == 422 and response.json()["code"] == "Application_DialogException"

    async def test_breaker_opens_in_a_5xx_storm(self, http: httpx.AsyncClient, sim: BusinessCentralSimulator) -> None:
        fragile = BusinessCentralClient(http, retry=RetryPolicy(max_attempts=1), budget=None)
        await fragile.check()
        sim.faults.add(Fault(kind="server_error", status=503, path="/api/"))
        for _ in range(fragile.http.breaker.threshold):
            with pytest.raises(VendorUnavailable):
                await fragile.list_page(f"{API}/companies")
        seen = sim.faults.injected
        with pytest.raises(CircuitOpenError):
            await fragile.list_page(f"{API}/companies")
        assert sim.faults.injected == seen

    async def test_rate_limit_surfaces_as_rate_limited_without_retries(self, http: httpx.AsyncClient,
                                                                       sim: BusinessCentralSimulator) -> None:
        impatient = BusinessCentralClient(http, retry=RetryPolicy(max_attempts=1), budget=None)
        await impatient.check()
        sim.faults.add(Fault(kind="rate_limit", path="/api/"))
        with pytest.raises(VendorRateLimited) as exc:
            await impatient.list_page(f"{API}/companies")
        assert "Application_TooManyRequests" in str(exc.value)


class TestConnections:
    async def test_create_systems_serves_the_company_named_in_the_base_url(self, sim: BusinessCentralSimulator) -> None:
        both = BusinessCentralSimulator(legal_entities=("DE01", "UK01"))
        base = f"{BASE_URL}/api/v2.0/companies({company_id('UK01')})"
        async with vendor_http(both.app, "") as http:
            systems = create_systems(http, Connection(name="bc-uk", vendor="businesscentral", base_url=base,
                                                      tenant="sim-tenant",
                                                      credentials={"client_id": "a", "client_secret": "b"}))
            erp = systems["erp"]
            assert isinstance(erp, BusinessCentralErp)
            assert [e.code for e in (await erp.list_legal_entities(10, None)).items] == ["UK01"]
        with pytest.raises(ValueError, match="client_secret"):
            create_systems(httpx.AsyncClient(), Connection(name="x", vendor="businesscentral", base_url=base,
                                                           credentials={"client_id": "a"}))

    async def test_create_router_takes_client_credentials_as_its_token(self, http: httpx.AsyncClient,
                                                                       sim: BusinessCentralSimulator) -> None:
        sim.credentials = {"app-id": "app-secret"}
        async with domain_api(create_router(http, token="app-id:app-secret")) as api:
            response = await api.get(f"{ERP}/legal-entities")
        assert response.status_code == 200 and response.json()["items"][0]["code"] == ENTITY

    def test_the_declared_simulator_seeds_the_acquired_entity_and_nothing_outside_the_demo_firm(self) -> None:
        simulator = load_simulator(VENDOR)
        assert isinstance(simulator, BusinessCentralSimulator)
        assert [c["name"] for c in simulator.store.companies.values()] == ["CA01"]
        assert BusinessCentralSimulator(legal_entities=("ZZ01",)).store.companies == {}
