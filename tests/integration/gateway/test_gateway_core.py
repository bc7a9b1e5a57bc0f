"""Gateway core behaviour a client notices: correlation, deprecation headers, problem+json everywhere."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgspec
import pytest
from asgi_lifespan import LifespanManager

from gateway.app import create_gateway
from gateway.settings import load_settings
from policies.bindings import Deprecation, load_bindings
from tests.stack import Stack, running_stack


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path) as s:
        yield s


class TestCorrelation:
    async def test_incoming_correlation_id_is_echoed_and_reaches_the_vendor(self, stack: Stack) -> None:
        parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        answer = await stack.http.get("/system/crm/v1/accounts", params={"limit": 1},
                                      headers={"X-Correlation-ID": "order-2026-11-22-0001", "traceparent": parent})
        assert answer.headers["x-correlation-id"] == "order-2026-11-22-0001"
        assert answer.headers["traceparent"].split("-")[1] == "4bf92f3577b34da6a3ce929d0e0e4736"
        seen = stack.sim("crm").requests[-1]
        assert seen.correlation_id == "order-2026-11-22-0001"
        assert seen.traceparent.split("-")[1] == "4bf92f3577b34da6a3ce929d0e0e4736"

    async def test_missing_or_hostile_correlation_id_is_replaced(self, stack: Stack) -> None:
        for header in ({}, {"X-Correlation-ID": "bad\nid"}, {"X-Correlation-ID": "x" * 500}):
            answer = await stack.http.get("/health", headers=header)
            cid = answer.headers["x-correlation-id"]
            assert len(cid) == 36 and cid != header.get("X-Correlation-ID")

    async def test_access_log_is_one_json_line_per_request(self, stack: Stack,
                                                           caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.INFO, logger="psconnect.access"):
            await stack.http.get("/system/erp/v1/legal-entities", headers={"X-Correlation-ID": "log-check-123"})
        fields = [r.fields for r in caplog.records if r.name == "psconnect.access"]  # type: ignore[attr-defined]
        assert fields[-1]["status"] == 200 and fields[-1]["operation"] == "erp.listLegalEntities"
        assert fields[-1]["correlation_id"] == "log-check-123" and fields[-1]["client_id"] == stack.client_id
        json.dumps(fields[-1])


class TestProblems:
    async def test_unknown_path_and_method_are_problems_with_correlation(self, stack: Stack) -> None:
        for method, path, status in (("GET", "/nowhere", 404), ("DELETE", "/system/crm/v1/accounts", 405)):
            answer = await stack.http.request(method, path)
            assert answer.status_code == status
            assert answer.headers["content-type"].startswith("application/problem+json")
            body = answer.json()
            assert body["status"] == status and body["correlation_id"] == answer.headers["x-correlation-id"]

    async def test_invalid_body_lists_field_errors_and_changes_nothing(self, stack: Stack) -> None:
        answer = await stack.http.put("/system/erp/v1/customers/by-external-id/ACC-9", json={"name": 5})
        assert answer.status_code in (400, 422) and answer.json()["errors"]
        assert stack.sim("erp").count("customer", "ACC-9") == 0


async def test_deprecated_version_announces_sunset_on_live_calls(tmp_path: Path) -> None:
    bindings = load_bindings()
    crm = msgspec.structs.replace(bindings.apis["system.crm"], lifecycle="deprecated", deprecation=Deprecation(
        since=dt.date(2026, 11, 1), sunset=dt.date(2027, 5, 1), successor="/docs/system.crm/v2"))
    bindings = msgspec.structs.replace(bindings, apis={**bindings.apis, "system.crm": crm})
    gateway = create_gateway(load_settings(env={}, home=str(tmp_path), seed_demo=False), bindings=bindings)
    async with LifespanManager(gateway.app):  # type: ignore[arg-type]
        client_id, secret = gateway.oauth.clients.create("t", ["system.crm:read", "system.erp:read"])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway.app),  # type: ignore[arg-type]
                                     base_url="http://t") as http:
            token = (await http.post("/oauth2/token", data={"grant_type": "client_credentials"},
                                     auth=(client_id, secret))).json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            old = await http.get("/system/crm/v1/accounts", headers=auth)
            current = await http.get("/system/erp/v1/legal-entities", headers=auth)
    assert old.status_code == 200
    assert old.headers["deprecation"] == "@1793491200" and old.headers["sunset"] == "Sat, 01 May 2027 00:00:00 GMT"
    assert old.headers["link"] == '</docs/system.crm/v2>; rel="successor-version"'
    assert "deprecation" not in current.headers
