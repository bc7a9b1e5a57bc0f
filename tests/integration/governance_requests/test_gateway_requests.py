"""Request governance on the assembled gateway: idempotent replays of real routes, CORS for the portal."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml

from gateway.app import create_gateway
from gateway.settings import load_settings
from policies.bindings import BINDINGS_ENV, DEFAULT_FILE
from policies.idempotency import REPLAYED_HEADER
from tests.stack import Stack, lifespan, running_stack

PORTAL = "http://portal.example.test"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path) as stack:
        yield stack


class TestIdempotencyOnRealRoutes:
    async def test_start_run_retry_is_replayed_by_the_gateway(self, stack: Stack) -> None:
        key = f"start-{uuid.uuid4()}"
        first = await stack.start("OPP-0001", key)
        again = await stack.start("OPP-0001", key)
        assert first.status_code == 202 and again.status_code == 202  # the first answer, not the service's 200
        assert again.headers[REPLAYED_HEADER] == "true" and again.json() == first.json()
        assert again.headers["location"] == first.headers["location"]
        await stack.wait(first.json()["id"])

    async def test_start_run_key_reused_for_another_opportunity_is_422(self, stack: Stack) -> None:
        key = f"start-{uuid.uuid4()}"
        assert (await stack.start("OPP-0001", key)).status_code == 202
        reused = await stack.start("OPP-0002", key)
        assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_mismatch"

    async def test_start_run_without_key_is_refused_by_the_policy(self, stack: Stack) -> None:
        response = await stack.http.post("/process/provisioning/v1/runs", json={"opportunity_id": "OPP-0001"})
        assert response.status_code == 400 and response.json()["code"] == "idempotency_key_missing"

    async def test_upsert_with_key_is_replayed_and_writes_once(self, stack: Stack) -> None:
        body = {"name": "Replay Co", "billing_address": {"country": "US"}, "currency": "USD"}
        headers = {"Idempotency-Key": f"upsert-{uuid.uuid4()}"}
        path = "/system/crm/v1/accounts/by-external-id/ACC-7001"
        first = await stack.http.put(path, json=body, headers=headers)
        again = await stack.http.put(path, json=body, headers=headers)
        assert first.status_code == 201 and again.status_code == 201  # a plain retry would have said 200
        assert again.headers[REPLAYED_HEADER] == "true" and again.json() == first.json()
        assert stack.sim("crm").count("Account", "ACC-7001") == 1


class TestCors:
    @pytest.fixture
    async def http(self, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
        settings = load_settings(env={}, home=str(tmp_path), seed_demo=False, cors_origins=(PORTAL,))
        gateway = create_gateway(settings)
        async with (lifespan(gateway.app),
                    httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway.app),  # type: ignore[arg-type]
                                      base_url="http://gw") as http):
            yield http

    async def test_preflight_is_answered_before_authentication(self, http: httpx.AsyncClient) -> None:
        response = await http.options("/process/provisioning/v1/runs", headers={
            "Origin": PORTAL, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key"})
        assert response.status_code == 204, response.text
        assert response.headers["access-control-allow-origin"] == PORTAL
        allowed = response.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed and "idempotency-key" in allowed
        assert "POST" in response.headers["access-control-allow-methods"]

    async def test_actual_response_exposes_the_governance_headers(self, http: httpx.AsyncClient) -> None:
        response = await http.get("/system/crm/v1/accounts", headers={"Origin": PORTAL})
        assert response.status_code == 401  # no token: CORS does not bypass authentication
        assert response.headers["access-control-allow-origin"] == PORTAL
        exposed = response.headers["access-control-expose-headers"].lower()
        assert "x-correlation-id" in exposed and "ratelimit" in exposed and "retry-after" in exposed

    async def test_other_origins_get_no_grant(self, http: httpx.AsyncClient) -> None:
        response = await http.options("/system/crm/v1/accounts", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
        assert response.status_code == 400
        assert "access-control-allow-origin" not in response.headers

    async def test_cors_is_off_unless_configured(self, stack: Stack) -> None:
        response = await stack.http.get("/system/crm/v1/accounts", headers={"Origin": PORTAL})
        assert response.status_code == 200 and "access-control-allow-origin" not in response.headers


async def test_an_apis_own_validation_block_replaces_the_global_one(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Declared in the bindings file: the PSA API accepts bodies of at most 200 bytes, the CRM API keeps 1 MiB."""
    doc = yaml.safe_load(DEFAULT_FILE.read_text())
    doc["apis"]["system.psa"]["validation"] = {"max_body_bytes": 200}
    bindings = tmp_path / "bindings.yaml"
    bindings.write_text(yaml.safe_dump(doc))
    monkeypatch.setenv(BINDINGS_ENV, str(bindings))
    body = {"name": "x" * 300, "legal_entity_code": "US01"}
    async with running_stack(tmp_path) as stack:
        psa = await stack.http.put("/system/psa/v1/projects/by-external-id/PRJ-1", json=body)
        crm = await stack.http.put("/system/crm/v1/accounts/by-external-id/ACC-1", json=body)
    assert psa.status_code == 413 and psa.headers["content-type"].startswith("application/problem+json")
    assert crm.status_code != 413  # decoded by the contract (a 422 for these fields), not refused for its size
