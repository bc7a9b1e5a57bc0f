"""The published documents say exactly what the server does (issue 12, fault 6), beyond the live schemathesis run.

Each class is one disagreement the live run (`psconnect contracts test --checks all`) found:
a body decoded more loosely than its schema, a reference to a record that does not exist
answered without naming the field, a constraint the document left out, a rule between
parameters no schema states. Here each is asserted as a client meets it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from contracts.common import DECIMAL_PATTERN
from gateway.openapi import PUBLISHED_DIR
from governance.live_test import schemathesis_config
from tests.stack import Stack, running_stack

PUBLISHED = {file.stem: json.loads(file.read_text()) for file in sorted(PUBLISHED_DIR.glob("*.json"))}
USER = {"name": "Ada Lovelace", "email": "ada@example.com", "role": "Engineer", "practice": "technology",
        "cost_rate": {"amount": "80.00", "currency": "USD"}, "active": True}

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path_factory.mktemp("exact")) as s:
        yield s


def _operation(api: str, operation_id: str) -> dict[str, Any]:
    for item in PUBLISHED[api]["paths"].values():
        for operation in item.values():
            if operation.get("operationId") == operation_id:
                return dict(operation)
    raise AssertionError(f"{operation_id} is not in {api}")


class TestBodiesDecodeStrictly:
    """msgspec's lax rules took `0` for false and the number 12.5 for a Decimal; the schemas say boolean and string."""

    async def test_a_number_is_not_a_boolean_and_nothing_starts(self, stack: Stack) -> None:
        before = (await stack.http.get("/process/worker-sync/v1/runs")).json()["items"]
        for body in ({"full": 0}, {"full": 1}, {"full": "true"}):
            answer = await stack.http.post("/process/worker-sync/v1/runs", json=body,
                                           headers={"Idempotency-Key": str(uuid.uuid4())})
            assert answer.status_code == 422, (body, answer.status_code, answer.text[:300])
            assert answer.json()["errors"] == [{"pointer": "/full", "detail": answer.json()["errors"][0]["detail"]}]
        assert (await stack.http.get("/process/worker-sync/v1/runs")).json()["items"] == before

    @pytest.mark.parametrize("amount", [80, 80.5, 0, "NaN", "1e5", " 80", "1_000", "80."])
    async def test_an_amount_must_be_decimal_text(self, stack: Stack, amount: float | str) -> None:
        body = {**USER, "cost_rate": {"amount": amount, "currency": "USD"}}
        answer = await stack.http.put("/system/psa/v1/users/by-external-id/W-STRICT", json=body)
        assert answer.status_code == 422, answer.text[:300]
        assert answer.json()["errors"][0]["pointer"] == "/cost_rate/amount"
        assert stack.sim("psa").count("User", "W-STRICT") == 0

    async def test_the_documents_publish_the_decimal_text(self) -> None:
        money = PUBLISHED["system.psa.v1"]["components"]["schemas"]["Money"]["properties"]["amount"]
        assert money["pattern"] == DECIMAL_PATTERN
        assert [a for a in ("80", "-80.50", "0.00") if not re.match(DECIMAL_PATTERN, a)] == []

    async def test_the_same_body_with_text_amounts_is_served(self, stack: Stack) -> None:
        answer = await stack.http.put("/system/psa/v1/users/by-external-id/W-STRICT-OK",
                                      json={**USER, "email": "strict-ok@example.com"})
        assert answer.status_code == 201, answer.text[:300]


class TestReferencesToNothing:
    """A well-formed reference to a record that does not exist: 422, `errors[]` naming the field, and
    the document lists the field under `x-refers-to` (the live run allows exactly those operations a 422)."""

    async def test_an_unknown_legal_entity_in_an_erp_body_is_named(self, stack: Stack) -> None:
        answer = await stack.http.put("/system/erp/v1/customers/by-external-id/C-NOWHERE",
                                      json={"name": "Nowhere Ltd", "currency": "USD", "legal_entity_id": "999999"})
        assert answer.status_code == 422, answer.text[:300]
        assert [e["pointer"] for e in answer.json()["errors"]] == ["/legal_entity_id"]

    async def test_an_unknown_rate_card_is_named(self, stack: Stack) -> None:
        answer = await stack.http.put("/system/psa/v1/projects/by-external-id/P-NOWHERE", json={
            "title": "Nowhere", "client_name": "Nowhere Ltd", "billing_terms": "time_and_materials",
            "budget": {"amount": "100.00", "currency": "USD"}, "rate_card_id": "RC-NOWHERE"})
        assert answer.status_code == 422, answer.text[:300]
        assert [e["pointer"] for e in answer.json()["errors"]] == ["/rate_card_id"]

    async def test_an_unknown_time_entry_in_an_event_is_named(self, stack: Stack) -> None:
        answer = await stack.http.post("/process/time-to-bill/v1/events", json={
            "specversion": "1.0", "type": "psconnect.time.timesheet.approved", "source": "tests", "id": "evt-1",
            "data": {"entry_ids": ["999999999"]}})
        assert answer.status_code == 422, answer.text[:300]
        assert [e["pointer"] for e in answer.json()["errors"]] == ["/data/entry_ids/0"]

    async def test_the_documents_list_each_such_field_and_the_live_run_allows_only_them_a_422(self) -> None:
        refers = {op["operationId"]: op["x-refers-to"] for doc in PUBLISHED.values() for item in doc["paths"].values()
                  for op in item.values() if "x-refers-to" in op}
        assert refers["erp.upsertCustomer"] == ["/legal_entity_id"]
        assert refers["psa.upsertProject"] == ["/rate_card_id"]
        assert refers["timeToBill.receiveEvent"] == ["/data/entry_ids/*"]
        assert refers["timeToBill.startBillingRun"] == ["/legal_entity_code"]
        dashboards = PUBLISHED["experience.dashboards.v1"]["paths"].values()
        assert {k for k in refers if k.startswith("dashboards.")} == {
            op["operationId"] for item in dashboards for op in item.values()}
        assert not any(k.startswith(("crm.", "hr.", "provisioning.", "worker_sync.")) for k in refers)
        config = schemathesis_config(PUBLISHED["system.erp.v1"])
        assert '"erp.upsertCustomer"' in config and '"erp.listProjects"' not in config and '"422"' in config
        assert schemathesis_config(PUBLISHED["system.crm.v1"]) == ""
        assert '"400"' in schemathesis_config(PUBLISHED["gateway.v1"])


class TestPsaEmail:
    async def test_an_address_without_at_is_refused_before_the_psa(self, stack: Stack) -> None:
        answer = await stack.http.put("/system/psa/v1/users/by-external-id/W-NOAT", json={**USER, "email": "nobody"})
        assert answer.status_code == 422, answer.text[:300]
        assert answer.json()["errors"][0]["pointer"] == "/email"
        assert re.match(PUBLISHED["system.psa.v1"]["components"]["schemas"]["PsaUserUpsert"]["properties"]["email"]
                        ["pattern"], "nobody") is None

    async def test_an_address_another_worker_holds_is_a_conflict(self, stack: Stack) -> None:
        first = await stack.http.put("/system/psa/v1/users/by-external-id/W-TAKEN-1",
                                     json={**USER, "email": "taken@example.com"})
        assert first.status_code == 201, first.text[:300]
        second = await stack.http.put("/system/psa/v1/users/by-external-id/W-TAKEN-2",
                                      json={**USER, "email": "taken@example.com"})
        assert second.status_code == 409, second.text[:300]
        assert second.json()["code"] == "email_taken"
        assert "409" in _operation("system.psa.v1", "psa.upsertUser")["responses"]


class TestDeclaredConstraints:
    async def test_older_than_hours_bounds_are_published_and_enforced(self, stack: Stack) -> None:
        parameter = next(p for p in _operation("experience.workbench.v1", "workbench.listExceptions")["parameters"]
                         if p["name"] == "older_than_hours")
        assert (parameter["schema"]["minimum"], parameter["schema"]["maximum"]) == (0, 24 * 365)
        refused = await stack.http.get("/experience/workbench/v1/exceptions", params={"older_than_hours": "-0.5"})
        assert refused.status_code == 422, refused.text[:300]
        served = await stack.http.get("/experience/workbench/v1/exceptions", params={"older_than_hours": "0"})
        assert served.status_code == 200, served.text[:300]

    async def test_the_token_endpoint_publishes_its_one_grant_type(self) -> None:
        schema = PUBLISHED["gateway.v1"]["components"]["schemas"]["TokenRequest"]["properties"]["grant_type"]
        assert schema["enum"] == ["client_credentials"]

    async def test_event_entry_ids_carry_their_item_pattern(self) -> None:
        items = PUBLISHED["process.time_to_bill.v1"]["components"]["schemas"]["TimesheetApproved"]["properties"][
            "entry_ids"]["items"]
        assert items["minLength"] == 1 and items["pattern"] == "^[A-Za-z0-9_.:-]+$"

    async def test_an_optional_header_is_a_string_or_absent_never_null(self) -> None:
        for doc in PUBLISHED.values():
            for item in doc["paths"].values():
                for op in item.values():
                    for parameter in op.get("parameters", []):
                        if parameter["in"] == "header":
                            assert {"type": "null"} not in parameter["schema"].get("oneOf", []), (
                                op["operationId"], parameter)

    async def test_billing_periods_name_real_months_in_the_document_and_the_server(self, stack: Stack) -> None:
        pattern = PUBLISHED["process.time_to_bill.v1"]["components"]["schemas"]["StartBillingRun"]["properties"][
            "period"]["pattern"]
        for period in ("2026-13", "2026-00", "0000-01"):
            assert re.match(pattern, period) is None, period
            answer = await stack.http.post("/process/time-to-bill/v1/billing-runs",
                                           json={"legal_entity_code": "US01", "period": period},
                                           headers={"Idempotency-Key": str(uuid.uuid4())})
            assert answer.status_code == 422, (period, answer.text[:300])
        assert re.match(pattern, "0001-01") and re.match(pattern, "9999-12")

    async def test_a_bad_parameter_is_a_422_whatever_else_the_query_says(self, stack: Stack) -> None:
        """The failure's detail quotes the URL: a value spelling "decode" once turned the 422 into a 400."""
        for extra in ("", "&note=decode_position", "&x=malformed"):
            answer = await stack.http.get(f"/experience/dashboards/v1/utilization?period=null{extra}")
            assert (answer.status_code, answer.json()["code"]) == (422, "validation_failed"), (extra, answer.text)

    async def test_reconciliation_needs_one_filter_and_its_document_says_so(self, stack: Stack) -> None:
        assert _operation("process.time_to_bill.v1", "timeToBill.listReconciliation")["x-requires-one-of"] == [
            "project", "legal_entity_code"]
        answer = await stack.http.get("/process/time-to-bill/v1/reconciliation", params={"period": "2026-10"})
        assert answer.status_code == 422, answer.text[:300]
        assert answer.json()["code"] == "missing_filter" and answer.json()["errors"][0]["pointer"] == "project"

    async def test_december_of_the_last_year_reconciles(self, stack: Stack) -> None:
        # The month's end no longer overflows into year 10000 (it answered 500).
        answer = await stack.http.get("/process/time-to-bill/v1/reconciliation",
                                      params={"period": "9999-12", "legal_entity_code": "UK01"})
        assert answer.status_code == 200, answer.text[:300]

    async def test_an_early_year_reaches_the_time_system_as_iso_8601(self, stack: Stack) -> None:
        answer = await stack.http.get("/system/time/v1/time-entries",
                                      params={"updated_since": "0084-04-06T05:22:19Z", "limit": 1})
        assert answer.status_code == 200, answer.text[:300]
