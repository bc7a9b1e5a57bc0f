"""HubSpot system API against the HubSpot simulator: spec conformance, paging, errors, rate limits, upserts,
faults, and the signed closed-won webhook handed on exactly once."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
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
from litestar import Litestar
from litestar.testing import AsyncTestClient

from contracts.crm import AccountUpsert, Address
from foundation.db import create_engine
from gateway.errors import EXCEPTION_HANDLERS
from system_apis._internal.faults import Fault
from system_apis._internal.http import CircuitOpenError, VendorRateLimited, VendorRejected, VendorUnavailable
from system_apis.domains.crm import crm_router
from system_apis.hubspot import BASE_URL, VENDOR, HubSpotClient, HubSpotCrm
from system_apis.hubspot.simulator import HubSpotSimulator
from system_apis.hubspot.webhooks import CLAIM_LEASE, HubSpotEvent, claimed_events, webhook_router
from system_apis.registry import Connection
from tests.integration.system_apis import vendor_kit
from tests.integration.system_apis.vendor_kit import PACE, Clock, Sleeps, domain_api, vendor_http
from tests.stack import PG_ADMIN_URL

SPEC_DIR = Path(__file__).resolve().parents[3] / "system_apis" / "hubspot" / "spec"
ENTITIES = ("DE01", "UK01")  # CA01 joins the demo firm with the routing work; any seeded entity exercises the same
SECRET = "hubspot-app-client-secret"
HOOK_URL = "https://psconnect.example/webhooks/hubspot"


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


@pytest.fixture(scope="module")
def seeded() -> HubSpotSimulator:
    return HubSpotSimulator(legal_entities=ENTITIES, requests_per_window=None)


@pytest.fixture
def sim(seeded: HubSpotSimulator) -> HubSpotSimulator:
    seeded.reset()
    return seeded


@pytest.fixture
def recording(sim: HubSpotSimulator) -> Recording:
    return Recording(vendor_kit.asgi(sim.app))


@pytest.fixture
async def http(sim: HubSpotSimulator, recording: Recording) -> AsyncIterator[httpx.AsyncClient]:
    async with vendor_http(sim.app, BASE_URL, transport=recording) as client:
        yield client


@pytest.fixture
def client(http: httpx.AsyncClient, sleeps: Sleeps) -> HubSpotClient:
    return HubSpotClient(http, token="pat-na1-test", retry=PACE, sleep=sleeps, budget=None)


@pytest.fixture
def crm(client: HubSpotClient) -> HubSpotCrm:
    return HubSpotCrm(client, default_currency="EUR")


@pytest.fixture
async def api(crm: HubSpotCrm) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with domain_api(crm_router(crm)) as test_client:
        yield test_client


# --- the vendor's spec as JSON Schema -------------------------------------------------------------------------

KNOWN_DEVIATIONS = {
    # HubSpot answers `null` for a requested property without a value; the documents type values as strings.
    "nullable_property_values": ["SimplePublicObject", "SimplePublicObjectWithAssociations"],
    # POST /crm/v3/objects/{type}/batch/upsert is newer than the documents: its body and answer are checked
    # against batch/update's schemas, which it extends (`idProperty` per input, `new` per result).
    "upsert_as": "batch/update",
}


def _json_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _json_schema(v) for k, v in node.items() if k not in ("nullable", "example", "format")}
    if node.get("nullable"):
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


@cache
def specs() -> tuple[dict[str, Any], ...]:
    documents = []
    for name in ("hubspot-crm-deals.openapi.yaml", "hubspot-crm-companies.openapi.yaml"):
        document: dict[str, Any] = yaml_load(SPEC_DIR / name)
        for schema in KNOWN_DEVIATIONS["nullable_property_values"]:
            document["components"]["schemas"][schema]["properties"]["properties"]["additionalProperties"] = {
                "type": ["string", "null"]}
        documents.append(document)
    return tuple(documents)


def yaml_load(path: Path) -> dict[str, Any]:
    import yaml

    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def operation(method: str, path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    path = path.replace("/batch/upsert", f"/{KNOWN_DEVIATIONS['upsert_as']}")
    for document in specs():
        for template, item in document["paths"].items():
            if re.fullmatch(re.sub(r"\{[^}]+\}", r"[^/]+", template), path) and method.lower() in item:
                return item[method.lower()], document
    raise AssertionError(f"{method} {path} is no operation of the HubSpot CRM documents")


def _validate(instance: Any, schema: dict[str, Any], document: dict[str, Any]) -> None:
    jsonschema.validate(instance, {**_json_schema(schema), "components": _json_schema(document["components"])})


def check_request(request: httpx.Request) -> None:
    op, document = operation(request.method, request.url.path)
    declared = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "query"}
    for name, value in request.url.params.items():
        assert name in declared, f"{request.url.path}: undeclared query parameter {name!r}"
        kind = declared[name]["schema"]["type"]
        if kind == "integer":
            assert re.fullmatch(r"\d+", value), f"{name}={value!r} is not an integer"
        elif kind == "boolean":
            assert value in ("true", "false")
    assert request.headers["authorization"].startswith("Bearer ")
    if request.method == "POST":
        _validate(json.loads(request.content), op["requestBody"]["content"]["application/json"]["schema"], document)


def check_response(request: httpx.Request, status: int, body: bytes) -> None:
    op, document = operation(request.method, request.url.path)
    answer = op["responses"].get(str(status)) or op["responses"]["default"]
    if "$ref" in answer:  # '#/components/responses/Error'
        answer = document["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
    content = answer["content"].get("application/json") or answer["content"]["*/*"]
    _validate(msgspec.json.decode(body), content["schema"], document)


# --- tests ---------------------------------------------------------------------------------------------------


class TestSpecConformance:
    async def test_every_request_and_response_matches_the_hubspot_documents(
            self, sim: HubSpotSimulator, client: HubSpotClient, crm: HubSpotCrm, recording: Recording) -> None:
        cursor = None
        while True:
            page = await crm.list_opportunities(None, 7, cursor)
            cursor = page.next_cursor
            if cursor is None:
                break
        accounts = await crm.list_accounts(100, None)
        await crm.get_account(accounts.items[0].id)
        await crm.get_opportunity("OPP-0002")
        await crm.upsert_account("ACC-9001", AccountUpsert(name="Shopify Partner Co", currency="CAD",
                                                           billing_address=Address(city="Ottawa", country="CA")))
        await crm.upsert_account("ACC-9001", AccountUpsert(name="Shopify Partner Co.", currency="CAD",
                                                           billing_address=Address(city="Ottawa", country="CA")))
        with pytest.raises(VendorRejected):
            await client.get("deals", "99999999999")
        with pytest.raises(VendorRejected):
            await client.list_page("deals", after="not-a-cursor")
        sim.faults.add(Fault(kind="rate_limit", retry_after=1, count=1))
        await client.list_page("companies", limit=1)
        statuses = {s for _, s, _ in recording.exchanges}
        assert statuses == {200, 400, 404, 429}
        assert len(recording.exchanges) >= 10
        for request, status, body in recording.exchanges:
            check_request(request)
            check_response(request, status, body)

    def test_the_checker_catches_an_undeclared_parameter_and_a_number_for_a_string(self) -> None:
        with pytest.raises(AssertionError, match="stage"):
            check_request(httpx.Request("GET", f"{BASE_URL}/crm/v3/objects/deals?stage=closedwon",
                                        headers={"Authorization": "Bearer t"}))
        with pytest.raises(jsonschema.ValidationError):
            check_response(httpx.Request("GET", f"{BASE_URL}/crm/v3/objects/deals/1"), 200,
                           b'{"id": "1", "properties": {"amount": 12.5}, "createdAt": "x", "updatedAt": "x"}')


class TestCrmContract:
    async def test_opportunities_carry_amount_currency_entity_and_their_company(
            self, sim: HubSpotSimulator, api: AsyncTestClient[Litestar]) -> None:
        deal = sim.find("deals", "OPP-0002")
        assert deal is not None
        company = sim.associations[deal["id"]][0]
        body = (await api.get("/system/crm/v1/opportunities/OPP-0002")).json()
        assert body["id"] == str(deal["id"]) and body["account_id"] == str(company)
        assert body["stage"] == "closed_won" and body["is_won"] is True
        assert body["legal_entity_code"] in ENTITIES
        assert Decimal(body["amount"]["amount"]) == Decimal(deal["properties"]["amount"])
        assert body["amount"]["currency"] == deal["properties"]["deal_currency_code"]
        assert body["close_date"] == deal["properties"]["closedate"][:10]
        by_id = (await api.get(f"/system/crm/v1/opportunities/{deal['id']}")).json()
        assert by_id == body

    async def test_closed_won_filter_follows_cursors_across_vendor_pages(
            self, sim: HubSpotSimulator, api: AsyncTestClient[Litestar]) -> None:
        won: list[dict[str, Any]] = []
        params: dict[str, Any] = {"stage": "closed_won", "limit": 5}
        pages = 0
        while True:
            body = (await api.get("/system/crm/v1/opportunities", params=params)).json()
            won += body["items"]
            pages += 1
            if not body["next_cursor"]:
                break
            params["cursor"] = body["next_cursor"]
        expected = [r for r in sim.records["deals"].values() if r["properties"]["dealstage"] == "closedwon"]
        assert pages > 2 and len(won) == len(expected) > 0
        assert all(o["stage"] == "closed_won" for o in won)
        assert len({o["id"] for o in won}) == len(won)

    async def test_a_cursor_of_another_list_is_a_422_problem(self, api: AsyncTestClient[Litestar]) -> None:
        first = (await api.get("/system/crm/v1/accounts", params={"limit": 2})).json()
        response = await api.get("/system/crm/v1/opportunities", params={"cursor": first["next_cursor"]})
        assert response.status_code == 422 and response.json()["code"] == "invalid_cursor"

    async def test_account_by_external_id_and_unknown_is_404(self, sim: HubSpotSimulator,
                                                             api: AsyncTestClient[Litestar]) -> None:
        company = next(iter(sim.records["companies"].values()))
        key = company["properties"]["psconnect_external_id"]
        body = (await api.get(f"/system/crm/v1/accounts/{key}")).json()
        assert body["id"] == str(company["id"]) and body["external_id"] == key and body["currency"] in ("EUR", "GBP")
        missing = await api.get("/system/crm/v1/accounts/ACC-7777")
        assert missing.status_code == 404 and missing.json()["code"] == "OBJECT_NOT_FOUND"

    async def test_upsert_is_idempotent_201_then_200_and_one_company(
            self, sim: HubSpotSimulator, api: AsyncTestClient[Litestar]) -> None:
        body = {"name": "Maple Analytics Inc.", "currency": "CAD", "tax_id": "123456789RT0001",
                "billing_address": {"street": "100 King St W", "city": "Toronto", "postal_code": "M5X 1A9",
                                    "country": "CA"}}
        first = await api.put("/system/crm/v1/accounts/by-external-id/ACC-CA-0001", json=body)
        again = await api.put("/system/crm/v1/accounts/by-external-id/ACC-CA-0001", json=body)
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json() == again.json() and first.json()["billing_address"]["country"] == "CA"
        assert sim.count("companies", "ACC-CA-0001") == 1
        assert sim.find("companies", "ACC-CA-0001")["properties"]["country"] == "Canada"  # type: ignore[index]

    async def test_upsert_retried_after_5xx_still_makes_one_company(
            self, sim: HubSpotSimulator, crm: HubSpotCrm, client: HubSpotClient) -> None:
        sim.faults.add(Fault(kind="server_error", status=502, count=1, path="batch/upsert"))
        account, created = await crm.upsert_account("ACC-CA-0002", AccountUpsert(
            name="Laurentian Foods", currency="CAD", billing_address=Address(country="CA")))
        assert created and account.name == "Laurentian Foods" and sim.count("companies", "ACC-CA-0002") == 1

    async def test_create_systems_uses_the_connection_token_and_currency(self, sim: HubSpotSimulator,
                                                                         http: httpx.AsyncClient) -> None:
        connection = Connection(name="ca01-hubspot", vendor=VENDOR, base_url=BASE_URL, tenant="46210377",
                                credentials={"token": "pat-na1-ca01", "default_currency": "CAD"})
        adapters = VENDOR.create_systems(http, connection)  # type: ignore[misc]
        adapter = adapters["crm"]
        assert isinstance(adapter, HubSpotCrm)
        await adapter.list_accounts(1, None)
        assert sim.requests[-1]["authorization"] == "Bearer pat-na1-ca01"


class TestErrorsAndRateLimits:
    async def test_error_body_becomes_a_problem_with_the_category(self, sim: HubSpotSimulator,
                                                                 api: AsyncTestClient[Litestar]) -> None:
        sim.faults.add(Fault(kind="business_error", message="Property values were not valid", count=1))
        response = await api.get("/system/crm/v1/accounts")
        problem = response.json()
        assert response.status_code == 422 and problem["code"] == "VALIDATION_ERROR"
        assert "Property values were not valid" in problem["detail"] and "correlationId" in problem["detail"]

    async def test_a_revoked_token_is_refused_not_retried(self, sim: HubSpotSimulator, client: HubSpotClient,
                                                          api: AsyncTestClient[Litestar]) -> None:
        sim.revoked.add("pat-na1-test")
        response = await api.get("/system/crm/v1/accounts")
        assert response.json()["code"] == "INVALID_AUTHENTICATION" and client.http.calls == 1

    async def test_headers_saying_none_remain_hold_the_next_request_until_the_window_passes(self) -> None:
        clock = Clock()
        sim = HubSpotSimulator(legal_entities=ENTITIES, requests_per_window=3, clock=clock)
        sleeps = Sleeps(clock)
        async with vendor_http(sim.app, BASE_URL) as http:
            client = HubSpotClient(http, retry=PACE, sleep=sleeps, budget=None, clock=clock)
            for _ in range(3):
                await client.list_page("companies", limit=1)
            assert client.rate_limit.remaining == 0 and client.rate_limit.interval_ms == 10_000
            with pytest.raises(VendorRateLimited) as info:
                await client.list_page("companies", limit=1)
            assert len(sim.requests) == 3 and info.value.retry_after == pytest.approx(10.0)
            clock.now += 10
            await client.list_page("companies", limit=1)
            assert len(sim.requests) == 4 and client.rate_limit.daily_remaining == 250_000 - 4

    async def test_the_vendors_own_429_has_no_retry_after_and_the_interval_stands_in(self) -> None:
        sim = HubSpotSimulator(legal_entities=ENTITIES, requests_per_window=1, clock=Clock())
        async with vendor_http(sim.app, BASE_URL) as http:
            headers = {"Authorization": "Bearer t"}
            assert (await http.get("/crm/v3/objects/deals", headers=headers)).status_code == 200
            limited = await http.get("/crm/v3/objects/deals", headers=headers)
            body = limited.json()
            assert limited.status_code == 429 and "retry-after" not in limited.headers
            assert body["policyName"] == "TEN_SECONDLY_ROLLING" and body["errorType"] == "RATE_LIMIT"
            error = HubSpotClient(http, budget=None)._classify(limited)
            assert isinstance(error, VendorRateLimited) and error.retry_after == 10.0

    async def test_client_paces_itself_to_100_per_10_seconds(self) -> None:
        clock = Clock()
        sim = HubSpotSimulator(legal_entities=ENTITIES, requests_per_window=None, clock=clock)
        async with vendor_http(sim.app, BASE_URL) as http:
            client = HubSpotClient(http, retry=PACE, sleep=Sleeps(clock), clock=clock)
            for _ in range(100):
                await client.list_page("companies", limit=1)
            with pytest.raises(VendorRateLimited):
                await client.list_page("companies", limit=1)
            assert len(sim.requests) == 100


class TestFaults:
    async def test_429_is_retried_after_retry_after(self, sim: HubSpotSimulator, client: HubSpotClient,
                                                    sleeps: Sleeps) -> None:
        sim.faults.add(Fault(kind="rate_limit", retry_after=1, count=1))
        assert await client.check()
        assert sleeps.waits[0] >= 1 and client.http.calls == 2

    async def test_5xx_storm_on_reads_is_retried_then_opens_the_breaker(self, sim: HubSpotSimulator,
                                                                        client: HubSpotClient) -> None:
        sim.faults.add(Fault(kind="server_error", status=502, count=2))
        assert await client.check() and client.http.calls == 3
        sim.faults.add(Fault(kind="server_error", status=503))
        for _ in range(3):
            with pytest.raises((VendorUnavailable, CircuitOpenError)):
                await client.list_page("deals")
        assert client.http.breaker.state == "open"
        calls = client.http.calls
        with pytest.raises(CircuitOpenError):
            await client.list_page("deals")
        assert client.http.calls == calls

    async def test_timeout_is_retried(self, sim: HubSpotSimulator, client: HubSpotClient) -> None:
        sim.faults.add(Fault(kind="timeout", count=1))
        assert await client.check() and client.http.calls == 2

    async def test_exhausted_rate_limit_is_a_503_problem_with_retry_after(
            self, sim: HubSpotSimulator, api: AsyncTestClient[Litestar]) -> None:
        sim.faults.add(Fault(kind="rate_limit", retry_after=7))
        response = await api.get("/system/crm/v1/accounts")
        assert response.status_code == 503 and response.headers["retry-after"] == "7"

    async def test_count_and_reset_over_the_control_routes(self, sim: HubSpotSimulator,
                                                           http: httpx.AsyncClient) -> None:
        deals = sim.count("deals")
        assert deals == sum(1 for _ in sim.records["deals"]) > 0 and sim.count("deals", "OPP-0002") == 1
        assert HubSpotSimulator(legal_entities=("ZZ01",)).count("deals") == 0
        sim.insert("deals", {"dealname": "x", "psconnect_external_id": "OPP-X"})
        assert (await http.post("/__sim__/reset")).status_code == 204
        assert sim.count("deals") == deals


# --- signed webhooks ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine() -> Iterator[sa.Engine]:
    """A throw-away PostgreSQL database holding the claims table, as production does."""
    name = f"psconnect_t_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    db = create_engine(f"postgresql://postgres@127.0.0.1:5432/{name}")
    claimed_events.create(db)
    try:
        yield db
    finally:
        db.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Sink:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail = 0
        self.hold: asyncio.Event | None = None

    async def __call__(self, deal_id: str, event_key: str) -> None:
        if self.hold is not None:
            await self.hold.wait()
        if self.fail:
            self.fail -= 1
            raise RuntimeError("provisioning unavailable")
        self.calls.append((deal_id, event_key))


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
async def hooks(engine: sa.Engine, sink: Sink) -> AsyncIterator[httpx.AsyncClient]:
    with engine.begin() as conn:
        conn.execute(claimed_events.delete())
    app = Litestar(route_handlers=[webhook_router(client_secret=SECRET, sink=sink, engine=engine)],
                   exception_handlers=EXCEPTION_HANDLERS)
    async with httpx.AsyncClient(transport=vendor_kit.asgi(app), base_url="https://psconnect.example") as client:
        yield client


async def deliver(hooks: httpx.AsyncClient, events: list[dict[str, Any]], *, secret: str = SECRET,
                  age: float = 0.0, url: str = HOOK_URL) -> httpx.Response:
    body = json.dumps(events).encode()
    headers = HubSpotSimulator.webhook_headers(secret, url, body, timestamp_ms=int((time.time() - age) * 1000))
    return await hooks.post(url, content=body, headers=headers)


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


class TestSignedWebhooks:
    async def test_a_closed_won_deal_is_handed_on_once_even_when_redelivered(
            self, sim: HubSpotSimulator, hooks: httpx.AsyncClient, sink: Sink, engine: sa.Engine) -> None:
        deal = sim.find("deals", "OPP-0004")
        assert deal is not None and deal["properties"]["dealstage"] != "closedwon"
        event = sim.stage_change(deal["id"], "closedwon")
        first = await deliver(hooks, [event])
        redelivered = await deliver(hooks, [{**event, "attemptNumber": 1}])
        assert (first.status_code, redelivered.status_code) == (200, 200)
        assert sink.calls == [(str(deal["id"]), first.json()["handed_on"][0])]
        assert redelivered.json()["duplicates"] == first.json()["handed_on"]
        with engine.connect() as conn:
            assert conn.execute(sa.select(claimed_events.c.state)).scalars().all() == ["delivered"]

    async def test_other_events_in_the_batch_are_ignored(self, sim: HubSpotSimulator, hooks: httpx.AsyncClient,
                                                         sink: Sink) -> None:
        deal_id = next(iter(sim.records["deals"]))
        lost = sim.stage_change(deal_id, "closedlost")
        won = sim.stage_change(deal_id, "closedwon")
        other = {**won, "eventId": 999, "subscriptionType": "deal.creation", "propertyName": None}
        response = await deliver(hooks, [lost, other, won])
        assert response.json()["ignored"] == 2 and len(sink.calls) == 1

    async def test_stale_timestamp_is_refused_and_starts_nothing(self, sim: HubSpotSimulator,
                                                                 hooks: httpx.AsyncClient, sink: Sink,
                                                                 engine: sa.Engine) -> None:
        event = sim.stage_change(next(iter(sim.records["deals"])), "closedwon")
        response = await deliver(hooks, [event], age=301)
        assert response.status_code == 401 and response.json()["code"] == "timestamp_stale"
        assert response.headers["content-type"].startswith("application/problem+json")
        assert (await deliver(hooks, [event], age=-400)).status_code == 401
        assert sink.calls == []
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(claimed_events)).scalar() == 0

    @pytest.mark.parametrize("tamper", ["secret", "body", "url", "missing"])
    async def test_bad_signature_is_refused_and_starts_nothing(self, sim: HubSpotSimulator, hooks: httpx.AsyncClient,
                                                               sink: Sink, tamper: str) -> None:
        event = sim.stage_change(next(iter(sim.records["deals"])), "closedwon")
        body = json.dumps([event]).encode()
        headers = HubSpotSimulator.webhook_headers(SECRET if tamper != "secret" else "other-secret",
                                                   HOOK_URL + ("?x=1" if tamper == "url" else ""), body)
        if tamper == "missing":
            del headers["X-HubSpot-Signature-v3"]
        sent = body.replace(b"closedwon", b"closedwoN") if tamper == "body" else body
        response = await hooks.post(HOOK_URL, content=sent, headers=headers)
        assert response.status_code == 401 and response.json()["type"].endswith("/invalid-signature")
        assert sink.calls == []

    async def test_encoded_characters_in_the_uri_are_signed_decoded(self, sim: HubSpotSimulator,
                                                                    hooks: httpx.AsyncClient, sink: Sink) -> None:
        event = sim.stage_change(next(iter(sim.records["deals"])), "closedwon")
        body = json.dumps([event]).encode()
        url = HOOK_URL + "?portal=ca01%3Aprod"
        headers = HubSpotSimulator.webhook_headers(SECRET, url.replace("%3A", ":"), body)
        assert (await hooks.post(url, content=body, headers=headers)).status_code == 200
        assert len(sink.calls) == 1

    async def test_a_failed_hand_off_answers_503_and_the_redelivery_hands_it_on(
            self, sim: HubSpotSimulator, hooks: httpx.AsyncClient, sink: Sink) -> None:
        event = sim.stage_change(next(iter(sim.records["deals"])), "closedwon")
        sink.fail = 1
        failed = await deliver(hooks, [event])
        assert failed.status_code == 503 and failed.headers["retry-after"] == "60" and sink.calls == []
        retried = await deliver(hooks, [{**event, "attemptNumber": 1}])
        assert retried.status_code == 200 and len(sink.calls) == 1

    async def test_concurrent_redeliveries_hand_the_event_on_once(self, sim: HubSpotSimulator,
                                                                   hooks: httpx.AsyncClient, sink: Sink) -> None:
        event = sim.stage_change(next(iter(sim.records["deals"])), "closedwon")
        release = sink.hold = asyncio.Event()
        first = asyncio.create_task(deliver(hooks, [event]))
        await asyncio.sleep(0.05)
        second = await deliver(hooks, [{**event, "attemptNumber": 1}])
        release.set()
        assert second.status_code == 503 and second.json()["code"] == "webhook_in_flight"
        assert (await first).status_code == 200 and len(sink.calls) == 1
        third = await deliver(hooks, [{**event, "attemptNumber": 2}])
        assert third.json()["duplicates"] and len(sink.calls) == 1

    async def test_a_claim_abandoned_by_a_crash_is_taken_over_after_its_lease(
            self, sim: HubSpotSimulator, hooks: httpx.AsyncClient, sink: Sink, engine: sa.Engine) -> None:
        event = sim.stage_change(next(iter(sim.records["deals"])), "closedwon")
        key = HubSpotEvent(**{_snake(k): v for k, v in event.items()}).key
        with engine.begin() as conn:  # a worker claimed it and died before handing it on
            conn.execute(claimed_events.insert().values(event_key=key, deal_id=str(event["objectId"]),
                                                        state="claimed", claimed_at=time.time() - CLAIM_LEASE - 1))
        assert (await deliver(hooks, [event])).status_code == 200 and sink.calls == [(str(event["objectId"]), key)]

    async def test_a_proxy_uses_the_public_url_hubspot_signed(self, sim: HubSpotSimulator, engine: sa.Engine,
                                                              sink: Sink) -> None:
        router = webhook_router(client_secret=SECRET, sink=sink, engine=engine,
                                public_base_url="https://hooks.meridian.example")
        app = Litestar(route_handlers=[router], exception_handlers=EXCEPTION_HANDLERS)
        event = sim.stage_change(next(iter(sim.records["deals"])), "closedwon")
        body = json.dumps([event]).encode()
        headers = HubSpotSimulator.webhook_headers(SECRET, "https://hooks.meridian.example/webhooks/hubspot", body)
        async with httpx.AsyncClient(transport=vendor_kit.asgi(app), base_url="http://10.0.0.7:8000") as client:
            assert (await client.post("/webhooks/hubspot", content=body, headers=headers)).status_code == 200
        assert len(sink.calls) == 1
