"""The finance audit trail through the assembled gateway: every write recorded, read back by the audit API.

Writes on the process and system APIs — and the ones the gateway refused — are recorded with
the client, the operation, the records, the legal entity, the correlation id and the
outcome; the audit API applies the caller's legal-entity grant; a replay made through a
process API shows in the workbench's own trail.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.stack import Stack, running_stack

AUDIT = "/experience/audit/v1/events"
TTB = "/process/time-to-bill/v1"
ERP = "/system/erp/v1"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path) as s:
        yield s


@contextlib.asynccontextmanager
async def client(stack: Stack, scopes: tuple[str, ...],
                 legal_entities: list[str] | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """Another consumer of the same gateway, with its own token."""
    client_id, secret = stack.gateway.oauth.clients.create("audit test", scopes, legal_entities=legal_entities)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stack.gateway.app),  # type: ignore[arg-type]
                                 base_url="http://testserver", timeout=60) as http:
        token = await http.post("/oauth2/token", data={"grant_type": "client_credentials"},
                                auth=(client_id, secret))
        assert token.status_code == 200, token.text
        http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield http


async def events(http: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    answer = await http.get(AUDIT, params={"limit": 500, **params})
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def start_billing_run(http: httpx.AsyncClient, entity: str, correlation: str | None = None) -> httpx.Response:
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    if correlation:
        headers["X-Correlation-ID"] = correlation
    return await http.post(f"{TTB}/billing-runs", json={"legal_entity_code": entity, "period": "2026-10"},
                           headers=headers)


async def test_a_process_write_is_recorded_with_client_operation_entity_correlation_and_outcome(
        stack: Stack) -> None:
    started = await start_billing_run(stack.http, "US01", correlation="corr-audit-process-1")
    assert started.status_code == 202, started.text
    [event] = await events(stack.http, operation="timeToBill.startBillingRun")
    assert event["client_id"] == stack.client_id and event["actor"] == stack.client_id
    assert event["api"] == "process.time_to_bill" and event["method"] == "POST"
    assert (event["entity_type"], event["entity_id"], event["action"]) == ("billing-run", started.json()["id"],
                                                                          "create")
    assert event["legal_entity"] == "US01"
    assert event["correlation_id"] == "corr-audit-process-1"
    assert event["status"] == 202 and event["problem_code"] is None
    assert event["records"]["response.id"] == [started.json()["id"]]


async def test_a_system_write_is_recorded_with_its_record_and_entity(stack: Stack) -> None:
    body = {"name": "Contoso Holdings", "legal_entity_id": "2", "currency": "GBP", "tax_id": "GB987654321"}
    answer = await stack.http.put(f"{ERP}/customers/by-external-id/ACC-0047", json=body,
                                  headers={"X-Correlation-ID": "corr-audit-system-1"})
    assert answer.status_code == 201, answer.text
    [event] = await events(stack.http, operation="erp.upsertCustomer")
    assert (event["entity_type"], event["entity_id"], event["action"]) == ("customer", "ACC-0047", "upsert")
    assert event["client_id"] == stack.client_id and event["api"] == "system.erp"
    assert event["legal_entity"] == "2" and event["correlation_id"] == "corr-audit-system-1"
    assert event["status"] == 201
    assert event["records"]["path.external_id"] == ["ACC-0047"]
    assert event["records"]["response.id"] == [answer.json()["id"]]


async def test_refused_writes_are_recorded_with_their_outcome(stack: Stack) -> None:
    async with client(stack, ("process.time_to_bill:read",)) as reader:
        forbidden = await start_billing_run(reader, "US01", correlation="corr-audit-refused-1")
    assert forbidden.status_code == 403
    invalid = await stack.http.post(f"{TTB}/billing-runs", json={"legal_entity_code": "US01", "period": "October"},
                                    headers={"Idempotency-Key": str(uuid.uuid4())})
    assert invalid.status_code in (400, 422)

    refused = await events(stack.http, outcome="refused")
    by_status = {e["status"]: e for e in refused}
    assert by_status[403]["problem_code"] == "insufficient_scope"
    assert by_status[403]["operation_id"] == "timeToBill.startBillingRun"
    assert by_status[403]["correlation_id"] == "corr-audit-refused-1"
    assert by_status[403]["client_id"] != stack.client_id
    assert by_status[invalid.status_code]["client_id"] == stack.client_id
    assert by_status[invalid.status_code]["problem_code"] == invalid.json().get("code")
    assert await events(stack.http, outcome="success") == []


async def test_the_audit_api_applies_the_legal_entity_grant(stack: Stack) -> None:
    for entity in ("US01", "UK01", "UK01"):
        assert (await start_billing_run(stack.http, entity)).status_code in (200, 202)
    async with client(stack, ("experience.audit:read",), legal_entities=["UK01"]) as uk:
        seen = await events(uk)
        assert len(seen) == 2 and {e["legal_entity"] for e in seen} == {"UK01"}
        named = await uk.get(AUDIT, params={"legal_entity": "US01"})
        assert named.status_code == 403 and named.json()["code"] == "legal_entity_forbidden"
        first = (await uk.get(AUDIT, params={"limit": 1})).json()
        rest = (await uk.get(AUDIT, params={"limit": 1, "cursor": first["next_cursor"]})).json()
        assert [e["id"] for e in first["items"] + rest["items"]] == [e["id"] for e in seen]
        assert rest["next_cursor"] is None
    everything = await events(stack.http)
    assert {e["legal_entity"] for e in everything} == {"US01", "UK01"}
    assert len(await events(stack.http, legal_entity="US01")) == 1
    forged = await stack.http.get(AUDIT, params={"cursor": "abc"})
    assert forged.status_code == 422


async def test_a_replay_through_the_process_api_shows_in_the_workbench_trail(stack: Stack) -> None:
    run = await stack.provision("OPP-0006")
    exception_id = run["exception_id"]
    replayed = await stack.http.post(f"/process/provisioning/v1/exceptions/{exception_id}/replay",
                                     headers={"X-Correlation-ID": "corr-audit-replay-1"})
    assert replayed.status_code == 202, replayed.text
    detail = (await stack.http.get(f"/experience/workbench/v1/exceptions/{exception_id}")).json()
    assert [(a["action"], a["actor"]) for a in detail["audit"]] == [("replay", stack.client_id)]
    [event] = await events(stack.http, operation="provisioning.replayException")
    assert (event["entity_type"], event["entity_id"], event["status"]) == ("exception", exception_id, 202)
    assert event["correlation_id"] == "corr-audit-replay-1"


async def test_workbench_actions_carry_client_operation_and_outcome_once(stack: Stack) -> None:
    run = await stack.provision("OPP-0009")
    exception_id = run["exception_id"]
    resolved = await stack.http.post(f"/experience/workbench/v1/exceptions/{exception_id}/resolution",
                                     json={"resolution": "Fixed by hand in the ERP"})
    assert resolved.status_code == 200
    again = await stack.http.post(f"/experience/workbench/v1/exceptions/{exception_id}/resolution",
                                  json={"resolution": "Fixed by hand in the ERP"})
    assert again.status_code == 409
    trail = await events(stack.http, record=exception_id)
    assert [(e["operation_id"], e["action"], e["status"], e["problem_code"]) for e in trail] == [
        ("workbench.resolveException", "resolution", 409, "not_open"),
        ("workbench.resolveException", "resolve", 200, None),
    ]
    detail = (await stack.http.get(f"/experience/workbench/v1/exceptions/{exception_id}")).json()
    assert [a["action"] for a in detail["audit"]] == ["resolve"]  # the refused attempt is not an action on it


async def test_an_idempotent_retry_is_recorded_as_a_replay_not_a_second_write(stack: Stack) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"name": "Contoso Holdings", "legal_entity_id": "2", "currency": "GBP"}
    first = await stack.http.put(f"{ERP}/customers/by-external-id/ACC-0048", json=body, headers=key)
    again = await stack.http.put(f"{ERP}/customers/by-external-id/ACC-0048", json=body, headers=key)
    assert first.status_code == again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    newest, oldest = await events(stack.http, operation="erp.upsertCustomer")
    assert oldest["changes"] == {} and oldest["records"]["response.id"] == [first.json()["id"]]
    assert newest["changes"] == {"idempotent_replay": [None, "true"]}
    assert (newest["entity_type"], newest["entity_id"], newest["status"]) == ("customer", "ACC-0048", 201)
