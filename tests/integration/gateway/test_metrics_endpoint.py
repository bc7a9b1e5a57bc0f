"""`GET /metrics` after a provisioning run: the series an operator graphs move, and only a scraper reads them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from system_apis._internal.faults import Fault
from tests.stack import ALL_SCOPES, Stack, running_stack


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path) as s:
        yield s


async def scraper(stack: Stack) -> httpx.AsyncClient:
    client_id, secret = stack.gateway.oauth.clients.create("prometheus", ("ops.metrics:read",))
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=stack.gateway.app),  # type: ignore[arg-type]
                             base_url="http://testserver")
    token = await http.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
    assert token.status_code == 200, token.text
    http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    return http


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def total(values: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, lbl), v in values.items() if n == name and want <= lbl)


async def scrape(http: httpx.AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def test_series_move_after_a_provisioning_run(stack: Stack) -> None:
    http = await scraper(stack)
    try:
        before = await scrape(http)
        run = await stack.provision("OPP-0002")
        assert run["status"] == "succeeded", run
        refused = await stack.http.get("/process/provisioning/v1/runs", headers={"Authorization": "Bearer nope"})
        assert refused.status_code == 401
        after = await scrape(http)
    finally:
        await http.aclose()

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    start = {"api": "process.provisioning", "operation": "provisioning.startRun", "consumer": stack.client_id,
                 "status": "202"}
    assert moved("psconnect_gateway_requests_total", **start) == 1
    assert moved("psconnect_gateway_request_duration_seconds_count", api="process.provisioning",
                 operation="provisioning.startRun") == 1
    # The process steps reach the system APIs through the gateway, as the service client.
    assert moved("psconnect_gateway_requests_total", api="system.erp", consumer="psconnect-internal") >= 2
    assert moved("psconnect_policy_decisions_total", api="process.provisioning", decision="unauthorized") == 1
    assert moved("psconnect_process_runs_total", process="provisioning", event="started") == 1
    assert moved("psconnect_process_runs_total", process="provisioning", event="succeeded") == 1
    # every step that calls a system API (the rules check is local and not retried)
    assert moved("psconnect_process_step_duration_seconds_count", outcome="succeeded") == 5
    assert total(after, "psconnect_process_last_success_timestamp_seconds", process="provisioning") > 0
    assert moved("psconnect_vendor_calls_total", outcome="ok") >= 4
    assert len({dict(lbl)["vendor"] for (n, lbl) in after if n == "psconnect_vendor_calls_total"}) >= 3  # CRM/ERP/PSA
    assert total(after, "psconnect_vendor_circuit_state") == 0  # every breaker closed


async def test_metrics_need_their_own_scope(stack: Stack) -> None:
    anonymous = await stack.http.get("/metrics", headers={"Authorization": ""})
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"].startswith("application/problem+json")
    # A consumer holding every other scope still may not read other consumers' traffic.
    others = tuple(s for s in ALL_SCOPES if s != "ops.metrics:read")
    client_id, secret = stack.gateway.oauth.clients.create("every other scope", others)
    token = await stack.http.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret),
                                  headers={"Authorization": ""})
    assert token.status_code == 200, token.text
    forbidden = await stack.http.get("/metrics", headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    assert forbidden.status_code == 403 and forbidden.json()["code"] == "insufficient_scope", forbidden.text


async def test_vendor_calls_name_the_legal_entity_they_serve(stack: Stack) -> None:
    """An acquired entity's own account labels its calls with the entity — asked for by parameter, reached by one
    of its ids, or met while merging every account's list; the shared account's calls name none ("-")."""
    http = await scraper(stack)
    try:
        before = await scrape(http)
        listed = await stack.http.get("/system/erp/v1/projects", params={"legal_entity": "CA01", "limit": 5})
        assert listed.status_code == 200, listed.text
        after_param = await scrape(http)
        own_id = listed.json()["items"][0]["id"]
        assert own_id.startswith("ca01-erp:")
        assert (await stack.http.get(f"/system/erp/v1/projects/{own_id}")).status_code == 200
        after_id = await scrape(http)
        cursor: str | None = None
        while True:  # every account's projects, page by page: the shared account's, then CA01's and AU01's
            page = await stack.http.get("/system/erp/v1/projects", params={"limit": 200, **(
                {"cursor": cursor} if cursor else {})})
            assert page.status_code == 200, page.text
            cursor = page.json()["next_cursor"]
            if not cursor:
                break
        after_merge = await scrape(http)
    finally:
        await http.aclose()

    def calls(values: dict[tuple[str, frozenset[tuple[str, str]]], float], vendor: str, entity: str) -> float:
        return total(values, "psconnect_vendor_calls_total", vendor=vendor, legal_entity=entity)

    assert calls(after_param, "businesscentral", "CA01") > calls(before, "businesscentral", "CA01")
    assert calls(after_id, "businesscentral", "CA01") > calls(after_param, "businesscentral", "CA01")
    assert calls(after_merge, "businesscentral", "CA01") > calls(after_id, "businesscentral", "CA01")
    assert calls(after_merge, "xero", "AU01") > calls(after_id, "xero", "AU01")
    assert calls(after_merge, "netsuite", "-") > calls(after_id, "netsuite", "-")
    for vendor in ("businesscentral", "xero"):  # accounts of one entity each: none of their calls names none
        assert calls(after_merge, vendor, "-") == calls(before, vendor, "-")


async def test_an_unpaged_report_for_one_entity_names_it(stack: Stack) -> None:
    """A report asked for one entity on the shared account labels that account's calls with the entity."""
    http = await scraper(stack)
    try:
        before = await scrape(http)
        report = await stack.http.get("/system/time/v1/reports/uninvoiced",
                                      params={"from": "2026-10-01", "to": "2026-10-31", "legal_entity": "US01"})
        assert report.status_code == 200, report.text
        after = await scrape(http)
    finally:
        await http.aclose()
    def harvest_us01(values: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> float:
        return total(values, "psconnect_vendor_calls_total", vendor="harvest", legal_entity="US01")

    assert harvest_us01(after) > harvest_us01(before)


async def uk01(stack: Stack) -> dict[str, Any]:
    """UK01 as the ERP system API lists it: on the shared NetSuite account, by the subsidiary's id."""
    entities = (await stack.http.get("/system/erp/v1/legal-entities", params={"limit": 200})).json()["items"]
    entity: dict[str, Any] = next(e for e in entities if e["code"] == "UK01")
    return entity


async def put_customer(stack: Stack, key: str, legal_entity_id: str, currency: str) -> httpx.Response:
    """A customer write whose body names its legal entity; `key` names the customer and the request."""
    return await stack.http.put(f"/system/erp/v1/customers/by-external-id/ACC-{key}",
                                json={"name": f"Customer {key}", "legal_entity_id": legal_entity_id,
                                      "currency": currency, "tax_id": "GB123456789"},
                                headers={"Idempotency-Key": f"customer-{key.lower()}"})


async def test_a_write_naming_its_entity_by_the_erps_id_is_labelled_with_the_entitys_code(stack: Stack) -> None:
    """On the shared NetSuite account an ERP body names its entity by the subsidiary's id: the calls it makes
    are labelled with the entity's code (as an operator filters them, and as the circuit breaker keeps one
    circuit per entity), never with a vendor's id."""
    entity = await uk01(stack)
    assert entity["id"] != "UK01" and ":" not in entity["id"]  # the shared account's own id for the subsidiary
    http = await scraper(stack)
    try:
        before = await scrape(http)
        for n in range(2):  # the second write needs no listing of the legal entities: they are known
            written = await put_customer(stack, f"LABEL-{n}", entity["id"], entity["currency"])
            assert written.status_code in (200, 201), written.text
        after = await scrape(http)
    finally:
        await http.aclose()

    def netsuite(values: dict[tuple[str, frozenset[tuple[str, str]]], float], entity: str) -> float:
        return total(values, "psconnect_vendor_calls_total", vendor="netsuite", legal_entity=entity)

    assert netsuite(after, "UK01") > netsuite(before, "UK01")
    assert netsuite(after, entity["id"]) == netsuite(before, entity["id"]) == 0


async def test_an_unknown_entity_id_lists_the_erps_entities_at_most_once_a_minute(stack: Stack) -> None:
    """A body naming an entity the ERP does not list is refused as before; looking for its code costs one
    listing of the ERP's legal entities, not one per request."""
    http = await scraper(stack)

    async def write(n: int) -> None:
        refused = await put_customer(stack, f"NOWHERE-{n}", "999999", "USD")
        assert refused.status_code == 422, refused.text

    def listings(values: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> float:
        return sum(v for (n, lbl), v in values.items() if n == "psconnect_vendor_calls_total"
                   and ("vendor", "netsuite") in lbl and "subsidiary" in dict(lbl)["operation"].lower())

    try:
        before = await scrape(http)
        await write(0)
        once = await scrape(http)
        for n in range(1, 4):
            await write(n)
        after = await scrape(http)
    finally:
        await http.aclose()
    assert listings(once) > listings(before)
    assert listings(after) == listings(once)


async def test_a_write_goes_through_when_the_erps_legal_entities_cannot_be_listed_for_its_label(
        stack: Stack) -> None:
    """The listing that finds a write's entity code fails (the ERP answers it 503): the write is made all the
    same, its calls labelled with no entity, rather than failed for a metrics label."""
    entity = await uk01(stack)
    stack.sim("erp").faults.add(Fault(kind="server_error", status=503, path="subsidiary"))
    written = await put_customer(stack, "UNLISTED", entity["id"], entity["currency"])
    assert written.status_code == 201, written.text
    assert stack.sim("erp").faults.injected > 0  # the listing was tried, and refused
