"""Property-based contract tests: the running gateway answers as its published contracts say.

schemathesis generates requests from each document the gateway serves at
`/apis/<api>/<version>/openapi.json` and sends them in-process to the gateway's ASGI
app. Calls are authenticated through the real token endpoint with a client holding
every scope. Each response must not be a 5xx and must match a documented status,
media type and schema.

schemathesis runs the app's lifespan (tables, seeding, DBOS launch) around each test
item and ends it at the item's teardown. A gateway serves one lifespan (shutdown
closes its vendor clients) and DBOS is process-global, so every test item gets its
own gateway from the `live` fixture. All of them share one state directory, hence
one client registry and one set of signing keys: the client registered at import
and a token issued by any of them work on every one. The documents to generate
cases from are read, without a lifespan, from the gateway built at import.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from foundation.db import metadata
from foundation.retry import RetryPolicy
from gateway.app import Gateway, create_gateway
from gateway.settings import load_settings

ALL_SCOPES = ("system.crm:read", "system.crm:write", "system.erp:read", "system.erp:write", "system.psa:read",
              "system.psa:write", "process.provisioning:read", "process.provisioning:write")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MAX_EXAMPLES = 12
GATEWAY_PATHS = ("/oauth2/", "/.well-known/")
FAST = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02, max_retry_after=0.05)


def _gateway(home: str) -> Gateway:
    return create_gateway(load_settings(env={}, home=home, seed_demo=True), retry=FAST, vendor_retry=FAST)


class Live:
    """The gateway of the running test item (the import-time one while collecting)."""

    gateway: Gateway


LIVE = Live()


HOME = tempfile.mkdtemp(prefix="psconnect-contract-")
_documents_from = _gateway(HOME)
# Tables before any lifespan, so the client is registered (once) at import.
metadata.create_all(_documents_from.engine)
_documents_from.oauth.create_tables()
CLIENT_ID, CLIENT_SECRET = _documents_from.oauth.clients.create("schemathesis contract tests", ALL_SCOPES)


@pytest.fixture
def live() -> Iterator[Gateway]:
    LIVE.gateway = _gateway(HOME)
    yield LIVE.gateway
    LIVE.gateway.engine.dispose()


class TokenAuth:
    """Fetches a bearer token from /oauth2/token (client_secret_basic), as a real consumer would."""

    def get(self, case: Any, context: Any) -> str:
        form = {"grant_type": "client_credentials", "scope": " ".join(ALL_SCOPES)}
        if not hasattr(LIVE, "gateway"):
            # schemathesis also asks while collecting explicit examples, before any item runs: ask the
            # import-time gateway without starting its lifespan (the token route needs only the tables).
            status, body = anyio.run(_token_without_lifespan, form)
        else:
            with asgi.get_client(LIVE.gateway.app) as client:
                response = client.post("http://testserver/oauth2/token", auth=(CLIENT_ID, CLIENT_SECRET), data=form)
            status, body = response.status_code, response.text
        assert status == 200, body
        return str(json.loads(body)["access_token"])

    def set(self, case: Any, data: str, context: Any) -> None:
        # The token endpoint authenticates clients with Basic; a bearer header there is only noise.
        if case.operation.path != "/oauth2/token":
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


async def _token_without_lifespan(form: dict[str, str]) -> tuple[int, str]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_documents_from.app),
                                 base_url="http://testserver") as client:
        response = await client.post("/oauth2/token", auth=(CLIENT_ID, CLIENT_SECRET), data=form)
    return response.status_code, response.text


async def _served(app: Any, path: str) -> dict[str, Any]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        response = await client.get(path)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = json.loads(response.content)
    return document


def _schema(name: str, version: str) -> Any:
    path = f"/apis/{name}/{version}/openapi.json"
    schema = schemathesis.openapi.from_dict(anyio.run(_served, _documents_from.app, path))
    schema.location = path
    # Tokens live 300 s by default; refresh well before.
    schema.auth(refresh_interval=120)(TokenAuth)
    return schema


def _contract_test(schema: Any) -> Any:
    @schema.parametrize()
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    def test(case: Any, live: Gateway) -> None:
        response = case.call_and_validate(checks=CHECKS, app=live.app)
        if not case.operation.path.startswith(GATEWAY_PATHS):
            # Every call carries a fresh token with all scopes: a 401 here means auth broke, not the contract.
            assert response.status_code != 401, response.text

    return test


test_gateway_v1 = _contract_test(_schema("gateway", "v1"))
test_system_crm_v1 = _contract_test(_schema("system.crm", "v1"))
test_system_erp_v1 = _contract_test(_schema("system.erp", "v1"))
test_system_psa_v1 = _contract_test(_schema("system.psa", "v1"))
test_process_provisioning_v1 = _contract_test(_schema("process.provisioning", "v1"))
