"""Xero ERP system API against the Xero simulator: spec conformance, rotating tokens, limits, summarised time."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import re
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]
import msgspec
import pytest
import sqlalchemy as sa
import yaml
from litestar import Litestar
from litestar.testing import AsyncTestClient

from contracts.billing import InvoiceLine, InvoiceUpsert, TimePostingBatch, TimePostingLine
from contracts.common import Money
from foundation.db import create_engine
from system_apis._internal.faults import Fault
from system_apis._internal.http import VendorRateLimited, VendorRejected
from system_apis.domains.erp import erp_router
from system_apis.pacing import VendorBudget
from system_apis.registry import Connection
from system_apis.xero import BASE_URL, VENDOR, XeroClient, XeroErp, create_systems
from system_apis.xero._listing import KEPT_FOR, Listings
from system_apis.xero._summary import SummaryStore
from system_apis.xero._tokens import TOKEN_URL, MemoryTokenStore, SqlTokenStore
from system_apis.xero.mapping import invoice_from_upsert
from system_apis.xero.simulator import XeroSimulator
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
from tests.stack import postgres_database, running_stack

SPECS = Path(__file__).resolve().parents[3] / "system_apis" / "xero" / "spec"
ApiClient = AsyncTestClient[Litestar]
ERP = "/system/erp/v1"
CODE = "UK01"
CREDENTIALS = {"client_id": "psconnect", "client_secret": "s3cret", "refresh_token": "sim-token"}


class Recording(httpx.AsyncBaseTransport):
    """Keeps every exchange so requests and responses can be checked against Xero's documents."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.exchanges: list[tuple[httpx.Request, int, bytes]] = []
        self.lose_answer: re.Pattern[str] | None = None
        self.slow_first_token = 0.0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        if self.slow_first_token and request.url.path == "/connect/token":
            delay, self.slow_first_token = self.slow_first_token, 0.0
            await asyncio.sleep(delay)  # this answer arrives after later ones
        self.exchanges.append((request, response.status_code, body))
        if self.lose_answer is not None and self.lose_answer.search(f"{request.method} {request.url.path}"):
            self.lose_answer = None
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return httpx.Response(response.status_code, headers=response.headers, content=body, request=request)


# --- Xero's documents as JSON Schema (loaded once per session) -----------------------------------------------

def _json_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:  # OpenAPI 3.0: a $ref's siblings are ignored (Xero's Task.rate says `type: number` beside it)
        return {"$ref": node["$ref"]}
    out = {k: _json_schema(v) for k, v in node.items() if k not in ("nullable", "example", "externalDocs")}
    if node.get("nullable"):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


@cache
def document(name: str) -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: the accounting document is 900 kB
    loaded: dict[str, Any] = yaml.load((SPECS / f"xero-{name}.openapi.yaml").read_text(), Loader=loader)
    return loaded


@cache
def components(name: str) -> dict[str, Any]:
    converted: dict[str, Any] = _json_schema(document(name)["components"])
    return converted


def _which(path: str) -> tuple[str, str]:
    for name, prefix in (("accounting", "/api.xro/2.0"), ("projects", "/projects.xro/2.0")):
        if path.startswith(prefix + "/"):
            return name, path.removeprefix(prefix)
    raise AssertionError(f"{path} is in neither Xero document")


def operation(method: str, path: str) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    name, local = _which(path)
    for template, item in document(name)["paths"].items():
        if re.fullmatch(re.sub(r"\{[^}]+\}", r"[^/]+", template), local) and method.lower() in item:
            both = item.get("parameters", []) + item[method.lower()].get("parameters", [])
            params = [_resolve(name, p) for p in both]
            return name, item[method.lower()], params
    raise AssertionError(f"{method} {path} is no operation of the Xero {name} document")


def _resolve(name: str, node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document(name)
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _validate(name: str, schema: dict[str, Any], value: Any) -> None:
    jsonschema.validate(value, {**_json_schema(schema), "components": components(name)})


def check_request(request: httpx.Request) -> None:
    if str(request.url) == TOKEN_URL:
        assert request.headers["authorization"].startswith("Basic ")
        return
    name, op, params = operation(request.method, request.url.path)
    declared = {p["name"]: p for p in params if p["in"] == "query"}
    for key, value in request.url.params.items():
        assert key in declared, f"{request.url.path}: undeclared query parameter {key!r}"
        if declared[key]["schema"].get("type") == "integer":
            assert re.fullmatch(r"-?\d+", value), f"{key}={value!r} is not an integer"
    headers = {p["name"].lower() for p in params if p["in"] == "header"}
    assert "xero-tenant-id" in headers and request.headers["xero-tenant-id"]
    assert request.headers["authorization"].startswith("Bearer ")
    if request.method != "GET":
        assert "idempotency-key" in headers, f"{request.method} {request.url.path} takes no Idempotency-Key"
        assert 0 < len(request.headers["idempotency-key"]) <= 128
    if request.content:
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        _validate(name, schema, msgspec.json.decode(request.content))


def check_response(request: httpx.Request, status: int, body: bytes) -> None:
    if str(request.url) == TOKEN_URL:
        return
    name, op, _ = operation(request.method, request.url.path)
    answer = op["responses"].get(str(status))
    if answer is None:
        assert status in (401, 403, 404, 429, 503, 504), f"{request.method} {request.url.path}: undeclared {status}"
        return
    answer = _resolve(name, answer)
    content = answer.get("content", {}).get("application/json")
    if content is None:
        assert not body, f"{request.url.path} {status} declares no body"
        return
    _validate(name, content["schema"], msgspec.json.decode(body))


# --- fixtures ---------------------------------------------------------------------------------------------------

@pytest.fixture
def sim() -> XeroSimulator:
    return XeroSimulator(legal_entities=(CODE,), calls_per_minute=None, calls_per_day=None, seed=False)


@pytest.fixture
def recording(sim: XeroSimulator) -> Recording:
    return Recording(vendor_kit.asgi(sim.app))


@pytest.fixture
async def http(sim: XeroSimulator, recording: Recording) -> AsyncIterator[httpx.AsyncClient]:
    async with vendor_http(sim.app, BASE_URL, transport=recording) as client:
        yield client


@pytest.fixture
def engine() -> Iterator[sa.Engine]:
    engine = create_engine("sqlite://")
    yield engine
    engine.dispose()


@pytest.fixture
def tokens() -> MemoryTokenStore:
    return MemoryTokenStore()


def make_client(http: httpx.AsyncClient, sim: XeroSimulator, store: Any, sleeps: Sleeps | None = None,
                **kwargs: Any) -> XeroClient:
    return XeroClient(http, tenant=sim.tenant(CODE), credentials=CREDENTIALS, store=store, connection="uk01-xero",
                      retry=PACE, sleep=sleeps or Sleeps(), **{"budget": None, **kwargs})


@pytest.fixture
def client(http: httpx.AsyncClient, sim: XeroSimulator, tokens: MemoryTokenStore, sleeps: Sleeps) -> XeroClient:
    return make_client(http, sim, tokens, sleeps)


@pytest.fixture
def erp(client: XeroClient, engine: sa.Engine) -> XeroErp:
    return XeroErp(client, SummaryStore(engine), code=CODE, connection="uk01-xero",
                   today=lambda: dt.date(2026, 11, 2))


@pytest.fixture
async def api(erp: XeroErp) -> AsyncIterator[ApiClient]:
    async with domain_api(erp_router(erp)) as test_client:
        yield test_client


async def provision(api: ApiClient, tenant: str, project: str = "PRJ-X0001", customer: str = "ACC-0001") -> None:
    response = await api.put(f"{ERP}/customers/by-external-id/{customer}", json={
        "name": f"Northwind {customer}", "legal_entity_id": tenant, "currency": "GBP", "tax_id": "GB999999973",
        "billing_address": {"street": "1 High St", "city": "London", "postal_code": "EC1A 1BB", "country": "GB"}})
    assert response.status_code in (200, 201), response.text
    customer_id = response.json()["id"]
    response = await api.put(f"{ERP}/projects/by-external-id/{project}", json={
        "name": "Finance transformation", "customer_id": customer_id, "legal_entity_id": tenant, "currency": "GBP",
        "budget": {"amount": "50000.00", "currency": "GBP"}, "end_date": "2026-12-31",
        "tasks": [{"name": "Discovery", "planned_hours": "40"}]})
    assert response.status_code in (200, 201), response.text


def lines(n: int, *, project: str = "PRJ-X0001", workers: int = 2, start: dt.date = dt.date(2026, 10, 1),
          hours: str = "7.5", rate: str = "150.00") -> list[TimePostingLine]:
    out = []
    for i in range(n):
        amount = (Decimal(hours) * Decimal(rate)).quantize(Decimal("0.01"))
        out.append(TimePostingLine(line_key=f"TE-{i:05d}:1", project_external_id=project,
                                   employee_external_id=f"W-{i % workers:04d}", date=start + dt.timedelta(days=i % 28),
                                   hours=hours, rate=Money(amount=Decimal(rate), currency="GBP"),
                                   amount=Money(amount=amount, currency="GBP"), billable=True))
    return out


def _neg(money: Money) -> Money:
    return Money(amount=-money.amount, currency=money.currency)


def batch(key: str, tenant: str, posting: list[TimePostingLine]) -> dict[str, Any]:
    built: dict[str, Any] = msgspec.to_builtins(TimePostingBatch(batch_key=key, legal_entity_id=tenant, lines=posting))
    return built


async def listed(api: ApiClient, path: str, params: dict[str, str | int]) -> list[dict[str, Any]]:
    """Every item of an ERP list, following its cursors."""
    return await every_item(api, f"{ERP}{path}", params)


async def posted_time(api: ApiClient, project: str = "PRJ-X0001") -> list[dict[str, Any]]:
    return await listed(api, "/posted-time", {"project_external_id": project, "from": "2026-10-01",
                                              "to": "2026-10-31", "limit": 15})


# --- tests ------------------------------------------------------------------------------------------------------


class TestSpecConformance:
    async def test_every_request_and_response_matches_xeros_documents(self, api: ApiClient, sim: XeroSimulator,
                                                                       recording: Recording) -> None:
        tenant = sim.tenant(CODE)
        assert (await api.get(f"{ERP}/capabilities")).json()["time_posting"] == "summarised"
        entities = (await api.get(f"{ERP}/legal-entities")).json()["items"]
        assert [(e["id"], e["code"], e["currency"]) for e in entities] == [(tenant, CODE, "GBP")]
        assert (await api.get(f"{ERP}/accounting-periods", params={"limit": 100})).status_code == 200
        await provision(api, tenant)
        worker = await api.put(f"{ERP}/employees/by-external-id/W-0001", json={
            "name": "Ana Ahmed", "email": "ana@meridian.example", "legal_entity_id": tenant,
            "cost_center": "CC-100", "cost_rate": {"amount": "80.00", "currency": "GBP"}, "active": True})
        assert worker.status_code == 201, worker.text
        project = (await api.get(f"{ERP}/projects", params={"external_id": "PRJ-X0001"})).json()["items"][0]
        assert (await api.get(f"{ERP}/projects/{project['id']}")).json()["tasks"] == [
            {"name": "Discovery", "planned_hours": "40"}]
        assert (await api.get(f"{ERP}/customers/{project['customer_id']}")).json()["external_id"] == "ACC-0001"
        job = await api.post(f"{ERP}/time-postings", json=batch("batch-0001", tenant, lines(6)))
        assert job.status_code == 202 and job.json()["status"] == "complete", job.text
        assert len(await posted_time(api)) == 6
        invoice = await api.put(f"{ERP}/invoices/by-external-id/INV-X0001-2026-10", json={
            "customer_id": project["customer_id"], "project_external_id": "PRJ-X0001", "legal_entity_id": tenant,
            "period": "2026-10", "currency": "GBP", "lines": [
                {"kind": "time", "description": "October time", "quantity": "45", "unit_price":
                 {"amount": "150.00", "currency": "GBP"}, "amount": {"amount": "6750.00", "currency": "GBP"}}]})
        assert invoice.status_code == 201, invoice.text
        credit = await api.put(f"{ERP}/credit-memos/by-external-id/CM-X0001-2026-10", json={
            "customer_id": project["customer_id"], "project_external_id": "PRJ-X0001", "legal_entity_id": tenant,
            "period": "2026-10", "currency": "GBP", "invoice_external_id": "INV-X0001-2026-10", "reason": "reversal",
            "lines": [{"kind": "credit", "description": "reversal of TE-1", "quantity": "-7.5", "unit_price":
                       {"amount": "150.00", "currency": "GBP"}, "amount": {"amount": "-1125.00", "currency": "GBP"}}]})
        assert credit.status_code == 201, credit.text
        assert (await api.get(f"{ERP}/invoices", params={"project_external_id": "PRJ-X0001", "period": "2026-10"})
                ).json()["items"][0]["total"] == {"amount": "6750.00", "currency": "GBP"}
        memos = (await api.get(f"{ERP}/credit-memos", params={"project_external_id": "PRJ-X0001"})).json()["items"]
        assert memos[0]["total"] == {"amount": "-1125.00", "currency": "GBP"}
        assert memos[0]["invoice_external_id"] == "INV-X0001-2026-10"
        assert (await api.get(f"{ERP}/customers/00000000-0000-4000-8000-000000000000")).status_code == 404
        paths = {(r.method, re.sub(r"[0-9a-f-]{36}", "{id}", r.url.path)) for r, _, _ in recording.exchanges}
        assert ("POST", "/projects.xro/2.0/Projects/{id}/Time") in paths and ("POST", "/api.xro/2.0/Invoices") in paths
        for request, status, body in recording.exchanges:
            check_request(request)
            check_response(request, status, body)

    def test_the_checker_catches_an_undeclared_parameter_and_a_wrong_body(self) -> None:
        headers = {"xero-tenant-id": "t", "Authorization": "Bearer x", "Idempotency-Key": "k"}
        with pytest.raises(AssertionError, match="ContactNumber"):
            check_request(httpx.Request("GET", f"{BASE_URL}/api.xro/2.0/Contacts?ContactNumber=1", headers=headers))
        with pytest.raises(jsonschema.ValidationError):
            check_request(httpx.Request("POST", f"{BASE_URL}/projects.xro/2.0/Projects/{'0' * 8}-0000-0000-0000-"
                                        f"{'0' * 12}/Time", headers=headers, json={"duration": "ninety"}))


class TestPaging:
    async def test_accounting_pages_of_100_and_projects_pages_are_followed_to_the_end(
            self, api: ApiClient, sim: XeroSimulator, client: XeroClient, recording: Recording, erp: XeroErp) -> None:
        tenant = sim.tenant(CODE)
        await provision(api, tenant)
        org = sim.organisation(CODE)
        contact = next(iter(org.contacts.values()))
        line = InvoiceLine(kind="time", description="time", quantity="1", unit_price=Money(
            amount=Decimal("10.00"), currency="GBP"), amount=Money(amount=Decimal("10.00"), currency="GBP"))
        for i in range(205):  # made in Xero directly: the listing, not the upsert, is under test
            data = InvoiceUpsert(customer_id=contact["ContactID"], project_external_id="PRJ-X0001",
                                 legal_entity_id=tenant, period="2026-10", currency="GBP", lines=[line])
            sim._save_document(org, "Invoices", invoice_from_upsert(f"INV-{i:04d}", data, invoice_id=None,
                                                                    date=dt.date(2026, 10, 31)))
        seen = [i["external_id"] for i in await listed(api, "/invoices", {"project_external_id": "PRJ-X0001",
                                                                          "limit": 50})]
        assert sorted(seen) == [f"INV-{i:04d}" for i in range(205)]
        pages = [r.url.params.get("page") for r, _, _ in recording.exchanges if r.url.path.endswith("/Invoices")]
        # our five pages of 50 came from one read of Xero's three pages of 100, not from five reads of all three
        assert pages == ["1", "2", "3"]

        # A page asked for after the read was let go (120 s) reads Xero again: the same page, later.
        now = [0.0]
        erp.listings = Listings(clock=lambda: now[0])
        first = (await api.get(f"{ERP}/invoices", params={"project_external_id": "PRJ-X0001", "limit": 50})).json()
        now[0] = KEPT_FOR + 1
        before = len(recording.exchanges)
        later = (await api.get(f"{ERP}/invoices", params={"project_external_id": "PRJ-X0001", "limit": 50,
                                                           "cursor": first["next_cursor"]})).json()
        assert [i["external_id"] for i in later["items"]] == seen[50:100]
        assert [r.url.params.get("page") for r, _, _ in recording.exchanges[before:]
                if r.url.path.endswith("/Invoices")] == ["1", "2", "3"]
        for n in range(4):
            sim._project(org, None, {"name": f"PRJ-P{n} · paged", "contactId": contact["ContactID"]})
        projects = [p async for page in client.projects_pages("/Projects", page_size=2) for p in page]
        assert len(projects) == 5
        for request, status, body in recording.exchanges:
            check_request(request)
            check_response(request, status, body)


class TestSummarisedTime:
    async def test_a_month_of_lines_posts_as_one_entry_per_worker_and_reads_back_per_line(
            self, api: ApiClient, sim: XeroSimulator) -> None:
        tenant = sim.tenant(CODE)
        await provision(api, tenant)
        posting = lines(40, workers=2)
        job = await api.post(f"{ERP}/time-postings", json=batch("batch-0002", tenant, posting))
        assert job.json()["status"] == "complete"
        assert sim.count("time", None) == 2  # 40 lines, 2 workers, one rate, one month
        result = (await api.get(f"{ERP}/time-postings/batch-0002")).json()
        assert set(result["posted"]) == {ln.line_key for ln in posting} and result["failed"] == {}
        posted = await posted_time(api)
        assert sorted(p["line_key"] for p in posted) == sorted(ln.line_key for ln in posting)
        assert sum(Decimal(p["hours"]) for p in posted) == Decimal("300.0")
        assert sum(Decimal(p["amount"]["amount"]) for p in posted) == sum(ln.amount.amount for ln in posting)
        entries = [e for t in sim.organisation(CODE).time.values() for e in t.values()]
        assert sorted(e["duration"] for e in entries) == [9000, 9000]

    async def test_the_same_batch_again_posts_nothing_twice(self, api: ApiClient, sim: XeroSimulator) -> None:
        tenant = sim.tenant(CODE)
        await provision(api, tenant)
        for _ in range(2):
            assert (await api.post(f"{ERP}/time-postings", json=batch("batch-0003", tenant, lines(10)))
                    ).json()["status"] == "complete"
        assert sim.count("time", None) == 2

    async def test_a_lost_answer_after_xero_took_the_entry_is_not_posted_twice(
            self, api: ApiClient, sim: XeroSimulator, recording: Recording) -> None:
        tenant = sim.tenant(CODE)
        await provision(api, tenant)
        recording.lose_answer = re.compile(r"POST .*/Time$")
        sim.idempotent.clear()
        first = await api.post(f"{ERP}/time-postings", json=batch("batch-0004", tenant, lines(10)))
        sim.idempotent.clear()  # and Xero forgot the idempotency key: the description finds the entry
        second = await api.post(f"{ERP}/time-postings", json=batch("batch-0004", tenant, lines(10)))
        assert second.json()["status"] == "complete", (first.text, second.text)
        assert sim.count("time", None) == 2
        assert len(await posted_time(api)) == 10

    async def test_refused_lines_are_named_with_their_reason_and_the_rest_posts(
            self, api: ApiClient, sim: XeroSimulator) -> None:
        tenant = sim.tenant(CODE)
        await provision(api, tenant)
        good = lines(4)
        locked = lines(1, start=dt.date(2026, 8, 20))[0]
        locked = msgspec.structs.replace(locked, line_key="TE-LOCKED:1")
        odd = msgspec.structs.replace(good[0], line_key="TE-ODD:1", hours="0.333")
        unknown = msgspec.structs.replace(good[1], line_key="TE-UNKNOWN:1", project_external_id="PRJ-NOPE")
        await api.post(f"{ERP}/time-postings", json=batch("batch-0005", tenant, [*good, locked, odd, unknown]))
        result = (await api.get(f"{ERP}/time-postings/batch-0005")).json()
        assert set(result["posted"]) == {ln.line_key for ln in good}
        assert result["refusals"] == {"TE-LOCKED:1": "period_closed", "TE-ODD:1": "validation",
                                      "TE-UNKNOWN:1": "validation"}
        assert sorted(p["line_key"] for p in await posted_time(api)) == sorted(ln.line_key for ln in good)

    async def test_a_later_reversal_folds_into_the_earlier_entry_and_reads_back_per_line(
            self, api: ApiClient, sim: XeroSimulator, recording: Recording) -> None:
        tenant = sim.tenant(CODE)
        await provision(api, tenant)
        original = lines(3, workers=1)
        await api.post(f"{ERP}/time-postings", json=batch("batch-0010", tenant, original))
        reversal = msgspec.structs.replace(original[1], line_key="TE-00001:1:rev", hours="-7.5",
                                           amount=_neg(original[1].amount))
        reapproved = msgspec.structs.replace(original[1], line_key="TE-00001:2", hours="5",
                                             amount=Money(amount=Decimal("750.00"), currency="GBP"))
        job = await api.post(f"{ERP}/time-postings", json=batch("batch-0011", tenant, [reversal]))
        assert job.json()["status"] == "complete", job.text
        await api.post(f"{ERP}/time-postings", json=batch("batch-0012", tenant, [reapproved]))
        entries = sorted(e["duration"] for t in sim.organisation(CODE).time.values() for e in t.values())
        assert entries == [300, 900]  # 3 x 7.5 h - 7.5 h; the re-approved 5 h in its own summary
        posted = await posted_time(api)
        assert sorted(p["line_key"] for p in posted) == sorted(
            [*(ln.line_key for ln in original), "TE-00001:1:rev", "TE-00001:2"])
        assert sum(Decimal(p["hours"]) for p in posted) == Decimal("20")
        assert sum(Decimal(p["amount"]["amount"]) for p in posted) == Decimal("3000.00")
        assert any(r.method == "PUT" and "/Time/" in r.url.path for r, _, _ in recording.exchanges)
        for request, status, body in recording.exchanges:
            check_request(request)
            check_response(request, status, body)

    async def test_a_summary_changed_in_xero_is_reported_not_expanded(self, api: ApiClient,
                                                                      sim: XeroSimulator) -> None:
        tenant = sim.tenant(CODE)
        await provision(api, tenant)
        await api.post(f"{ERP}/time-postings", json=batch("batch-0006", tenant, lines(4, workers=1)))
        entry = next(e for t in sim.organisation(CODE).time.values() for e in t.values())
        entry["duration"] += 15
        response = await api.get(f"{ERP}/posted-time", params={"project_external_id": "PRJ-X0001"})
        assert response.status_code == 502 and response.json()["code"] == "vendor_data_invalid"


    async def test_many_batches_of_mixed_lines_read_back_exactly_per_line(self, api: ApiClient, sim: XeroSimulator,
                                                                          recording: Recording) -> None:
        tenant = sim.tenant(CODE)
        await provision(api, tenant)
        await provision(api, tenant, project="PRJ-X0002", customer="ACC-0002")
        rng = random.Random(11)
        sent: list[TimePostingLine] = []
        for number in range(4):
            posting = []
            for i in range(60):
                hours = str(Decimal(rng.randint(-4, 40)) / 4 or Decimal("0.25"))
                rate = rng.choice(["150.00", "210.00", "275.50"])
                posting.append(TimePostingLine(
                    line_key=f"TE-{number}-{i:03d}:{rng.randint(1, 3)}", project_external_id=rng.choice(
                        ["PRJ-X0001", "PRJ-X0002"]), employee_external_id=f"W-{rng.randint(1, 5):04d}",
                    date=dt.date(2026, rng.choice([9, 10]), rng.randint(1, 28)), hours=hours,
                    rate=Money(amount=Decimal(rate), currency="GBP"),
                    amount=Money(amount=(Decimal(hours) * Decimal(rate)).quantize(Decimal("0.01")), currency="GBP"),
                    billable=rng.random() < 0.8))
            await api.post(f"{ERP}/time-postings", json=batch(f"batch-mix-{number}", tenant, posting))
            sent += posting
        results = {}
        for number in range(4):
            results.update((await api.get(f"{ERP}/time-postings/batch-mix-{number}")).json()["posted"])
        read: list[dict[str, Any]] = []
        for project in ("PRJ-X0001", "PRJ-X0002"):
            response = await api.get(f"{ERP}/posted-time", params={"project_external_id": project, "limit": 1000})
            read += response.json()["items"]
        assert {p["line_key"] for p in read} == set(results)  # every posted line, and only those, read back
        # the account whole (a reconciliation of the entity), in pages of 15: the same lines, each project's time
        # read from Xero once for all the pages
        exchanges = len(recording.exchanges)
        whole = await listed(api, "/posted-time", {"limit": 15})
        assert sorted(whole, key=lambda p: p["line_key"]) == sorted(read, key=lambda p: p["line_key"])
        time_reads = [r.url.path for r, _, _ in recording.exchanges[exchanges:] if r.url.path.endswith("/Time")]
        assert len(whole) > 15 * 10 and sorted(time_reads) == sorted(set(time_reads)) and len(time_reads) == 2
        # summed per project, in pages of one project: what the listing's billable lines add up to
        assert totals_sums(await listed(api, "/posted-time/totals", {"limit": 1})) == posted_sums(whole)
        by_key = {ln.line_key: ln for ln in sent}
        for item in read:
            line = by_key[item["line_key"]]
            assert (Decimal(item["hours"]), item["amount"], item["billable"], item["date"]) == (
                Decimal(line.hours), msgspec.to_builtins(line.amount), line.billable, line.date.isoformat())
        groups = {(key.split("-")[1], ln.project_external_id, ln.employee_external_id, ln.rate, ln.billable,
                   f"{ln.date:%Y-%m}") for key, ln in ((k, by_key[k]) for k in results)}
        entries = sum(len(t) for t in sim.organisation(CODE).time.values())
        # one entry per summary, less the reversals folded into an earlier batch's entry
        assert entries == len(set(results.values())) <= len(groups) < len(read)

    async def test_a_project_made_through_another_worker_is_found(self, api: ApiClient, sim: XeroSimulator,
                                                                 http: httpx.AsyncClient, engine: sa.Engine) -> None:
        tenant = sim.tenant(CODE)
        await provision(api, tenant)
        other = XeroErp(make_client(http, sim, MemoryTokenStore()), SummaryStore(engine), code=CODE,
                        connection="uk01-xero")
        assert (await other.list_projects(None, 10, None)).items  # its project list is now cached
        await provision(api, tenant, project="PRJ-X0003", customer="ACC-0003")
        job = await other.post_time(TimePostingBatch(batch_key="batch-other", legal_entity_id=tenant,
                                                     lines=lines(3, project="PRJ-X0003")))
        assert job.status == "complete"


class TestConnection:
    async def test_create_systems_serves_the_erp_of_the_connections_tenant(self, engine: sa.Engine) -> None:
        sim = XeroSimulator()  # the default organisation: the acquired Australian entity
        async with vendor_http(sim.app, BASE_URL) as http2:
            connection = Connection(name="au01-xero", vendor="xero", base_url=BASE_URL, tenant=sim.tenant("AU01"),
                                    credentials={**CREDENTIALS, "code": "AU01"})
            assert VENDOR.create_systems is create_systems
            erp = create_systems(http2, connection, retry=PACE, engine=engine)["erp"]
            assert isinstance(erp, XeroErp)
            entity = (await erp.list_legal_entities(10, None)).items[0]
            assert (entity.code, entity.country, entity.currency) == ("AU01", "AU", "AUD")
            assert SqlTokenStore(engine).load("au01-xero") not in (None, "sim-token")


class TestTokens:
    async def test_an_expired_access_token_is_refreshed_and_the_refresh_token_rotates(
            self, client: XeroClient, sim: XeroSimulator, tokens: MemoryTokenStore) -> None:
        await client.get("/api.xro/2.0/Organisation")
        first = tokens.load("uk01-xero")
        assert first and first != "sim-token" and sim.token_grants == 1
        sim.expire_access_tokens()  # the client still believes its token valid: the 401 refreshes once
        await client.get("/api.xro/2.0/Organisation")
        assert sim.token_grants == 2 and tokens.load("uk01-xero") not in (first, None)

    async def test_an_old_refresh_token_is_refused_after_the_grace_period(self, http: httpx.AsyncClient,
                                                                           sim: XeroSimulator) -> None:
        clock = Clock()
        sim = XeroSimulator(legal_entities=(CODE,), clock=clock)
        async with vendor_http(sim.app, BASE_URL) as http2:
            auth = {"Authorization": "Basic cHNjb25uZWN0OnMzY3JldA=="}
            form = {"grant_type": "refresh_token", "refresh_token": "sim-token"}
            assert (await http2.post(TOKEN_URL, data=form, headers=auth)).status_code == 200
            assert (await http2.post(TOKEN_URL, data=form, headers=auth)).status_code == 200  # within the grace
            clock.now += 1801
            refused = await http2.post(TOKEN_URL, data=form, headers=auth)
            assert refused.status_code == 400 and refused.json() == {"error": "invalid_grant"}

    async def test_a_crash_before_the_new_refresh_token_is_persisted_does_not_lock_the_connection_out(
            self, http: httpx.AsyncClient, sim: XeroSimulator) -> None:
        class CrashOnSave(MemoryTokenStore):
            def save(self, connection: str, refresh_token: str) -> None:
                raise RuntimeError("process killed before the row was written")

        store = CrashOnSave()
        store.tokens["uk01-xero"] = "sim-token"
        with pytest.raises(RuntimeError):
            await make_client(http, sim, store).get("/api.xro/2.0/Organisation")
        survivor = MemoryTokenStore()
        survivor.tokens = dict(store.tokens)  # what the next process finds: the old token, retired in Xero
        body = await make_client(http, sim, survivor).get("/api.xro/2.0/Organisation")
        assert body["Organisations"][0]["CountryCode"] == "GB"
        assert survivor.load("uk01-xero") != "sim-token"

    async def test_a_crash_after_persisting_before_first_use_loses_only_an_access_token(
            self, http: httpx.AsyncClient, sim: XeroSimulator) -> None:
        async with postgres_database() as url:
            engine = create_engine(url)
            try:
                store = SqlTokenStore(engine)
                first = make_client(http, sim, store)
                await first.tokens.refresh(None)  # persisted, then the process dies before any call
                persisted = store.load("uk01-xero")
                assert persisted not in (None, "sim-token")
                sim.refresh_tokens["sim-token"] = -1e12  # the old token is long past its grace period
                second = make_client(http, sim, SqlTokenStore(engine))
                assert (await second.get("/api.xro/2.0/Organisation"))["Organisations"]
                assert store.load("uk01-xero") not in (None, persisted)
            finally:
                engine.dispose()

    async def test_workers_refreshing_at_once_leave_the_current_token_stored(
            self, http: httpx.AsyncClient, sim: XeroSimulator, recording: Recording) -> None:
        recording.slow_first_token = 0.3
        async with postgres_database() as url:
            engine = create_engine(url)
            try:
                workers = [make_client(http, sim, SqlTokenStore(engine)) for _ in range(3)]
                await asyncio.gather(*(w.tokens.refresh(None) for w in workers))
                stored = SqlTokenStore(engine).load("uk01-xero")
                assert stored is not None and sim.refresh_tokens[stored] is None  # not retired
                assert sim.token_grants == 3
                sim.refresh_tokens = {k: (-1e12 if v is not None else None) for k, v in sim.refresh_tokens.items()}
                assert await make_client(http, sim, SqlTokenStore(engine)).get("/api.xro/2.0/Organisation")
            finally:
                engine.dispose()

    async def test_a_lost_token_answer_is_retried_with_the_same_token(self, http: httpx.AsyncClient,
                                                                       sim: XeroSimulator,
                                                                       recording: Recording) -> None:
        recording.lose_answer = re.compile(r"POST /connect/token")
        store = MemoryTokenStore()
        assert (await make_client(http, sim, store).get("/api.xro/2.0/Organisation"))["Organisations"]
        assert sim.token_grants == 2 and store.load("uk01-xero") not in (None, "sim-token")

    async def test_a_revoked_connection_is_a_rejection_naming_invalid_grant(self, http: httpx.AsyncClient,
                                                                          sim: XeroSimulator) -> None:
        store = MemoryTokenStore()
        store.tokens["uk01-xero"] = "revoked"
        with pytest.raises(VendorRejected) as info:
            await make_client(http, sim, store).get("/api.xro/2.0/Organisation")
        assert info.value.code == "invalid_grant"


class TestLimits:
    async def test_the_minute_limit_answers_429_with_retry_after(self, http: httpx.AsyncClient) -> None:
        clock = Clock()
        sim = XeroSimulator(legal_entities=(CODE,), calls_per_minute=3, calls_per_day=None, clock=clock)
        async with vendor_http(sim.app, BASE_URL) as http2:
            client = make_client(http2, sim, MemoryTokenStore())
            for _ in range(3):
                await client.get("/api.xro/2.0/Organisation")
            with pytest.raises(VendorRateLimited) as info:
                await client.get("/api.xro/2.0/Organisation")
            assert info.value.retry_after is not None and 1 <= info.value.retry_after <= 60
            clock.now += 61
            assert await client.get("/api.xro/2.0/Organisation")

    async def test_the_day_cap_names_the_day_problem(self) -> None:
        sim = XeroSimulator(legal_entities=(CODE,), calls_per_minute=None, calls_per_day=2)
        async with vendor_http(sim.app, BASE_URL) as http2:
            client = make_client(http2, sim, MemoryTokenStore())
            await client.get("/api.xro/2.0/Organisation")
            await client.get("/api.xro/2.0/Organisation")
            token = await client.tokens.access_token()
            answer = await http2.get("/api.xro/2.0/Organisation", headers={
                "Authorization": f"Bearer {token}", "xero-tenant-id": sim.tenant(CODE)})
            assert answer.status_code == 429 and answer.headers["X-Rate-Limit-Problem"] == "day"
            assert int(answer.headers["Retry-After"]) > 3600

    async def test_the_client_paces_itself_to_60_calls_a_minute_per_tenant(self, http: httpx.AsyncClient,
                                                                          sim: XeroSimulator) -> None:
        from system_apis.xero.client import MINUTE_LIMIT

        client = make_client(http, sim, MemoryTokenStore(), budget=MINUTE_LIMIT)
        for _ in range(60):
            await client.get("/api.xro/2.0/Organisation")
        sent = len(sim.requests)
        with pytest.raises(VendorRateLimited):
            await client.get("/api.xro/2.0/Organisation")
        assert len(sim.requests) == sent  # refused by our own pacer, Xero never saw it

    async def test_the_client_counts_its_calls_against_the_day_cap(self, http: httpx.AsyncClient,
                                                                  sim: XeroSimulator) -> None:
        client = make_client(http, sim, MemoryTokenStore(), day_budget=VendorBudget(3, 86400.0))
        for _ in range(3):
            await client.get("/api.xro/2.0/Organisation")
        sent = len(sim.requests)
        with pytest.raises(VendorRateLimited) as info:
            await client.get("/api.xro/2.0/Organisation")
        assert len(sim.requests) == sent and info.value.retry_after is not None and info.value.retry_after > 86000


class TestErrorsAndFaults:
    async def test_a_locked_period_is_period_closed(self, api: ApiClient, sim: XeroSimulator) -> None:
        tenant = sim.tenant(CODE)
        await provision(api, tenant)
        customer = (await api.get(f"{ERP}/projects")).json()["items"][0]["customer_id"]
        response = await api.put(f"{ERP}/invoices/by-external-id/INV-OLD", json={
            "customer_id": customer, "project_external_id": "PRJ-X0001", "legal_entity_id": tenant,
            "period": "2026-07", "currency": "GBP", "lines": [
                {"kind": "time", "description": "July", "quantity": "1", "unit_price":
                 {"amount": "10.00", "currency": "GBP"}, "amount": {"amount": "10.00", "currency": "GBP"}}]})
        assert response.status_code == 422 and response.json()["code"] == "period_closed"
        assert sim.count("invoice", None) == 0

    async def test_a_xero_validation_error_is_a_422_and_nothing_changes(self, api: ApiClient,
                                                                       sim: XeroSimulator) -> None:
        tenant = sim.tenant(CODE)
        await provision(api, tenant)
        response = await api.put(f"{ERP}/customers/by-external-id/ACC-0002", json={
            "name": "Northwind ACC-0001", "legal_entity_id": tenant, "currency": "GBP"})  # a name Xero holds
        assert response.status_code == 422 and "already assigned" in response.json()["detail"]
        assert sim.count("contact", "ACC-0002") == 0

    async def test_transient_5xx_are_retried_and_an_idempotent_write_applies_once(
            self, api: ApiClient, sim: XeroSimulator, sleeps: Sleeps) -> None:
        tenant = sim.tenant(CODE)
        await provision(api, tenant)
        sim.faults.add(Fault(kind="server_error", count=2, method="POST", path=r"/Time$"))
        sim.faults.add(Fault(kind="timeout", count=1, method="GET", path=r"/Organisation$"))
        job = await api.post(f"{ERP}/time-postings", json=batch("batch-0007", tenant, lines(4)))
        assert job.json()["status"] == "complete" and sim.count("time", None) == 2
        assert len(sleeps.waits) >= 3

    async def test_a_5xx_storm_is_a_503_problem(self, api: ApiClient, sim: XeroSimulator) -> None:
        sim.faults.add(Fault(kind="server_error", path=r"/Organisation$"))
        response = await api.get(f"{ERP}/legal-entities")
        assert response.status_code == 503, response.text


async def test_an_in_process_xero_account_answers_after_a_restart_on_postgresql(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """AU01's Xero simulated in-process beside a PostgreSQL database (`DATABASE_URL`, as `psconnect serve` has
    it): the simulator starts afresh with the gateway, so the adapter's rotated refresh token must not outlive
    it in the shared database (a restarted gateway would present a token the new simulator never issued)."""
    async with postgres_database() as url:
        monkeypatch.setenv("DATABASE_URL", url)
        for start in ("first", "restarted"):
            async with running_stack(tmp_path / start, database_url=url) as stack:
                answer = await stack.http.get("/system/erp/v1/legal-entities", params={"legal_entity": "AU01"})
                assert answer.status_code == 200, (start, answer.text)
                assert [e["code"] for e in answer.json()["items"]] == ["AU01"]
