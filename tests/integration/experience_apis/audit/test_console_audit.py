"""The console's audit page and its CSV export: operations staff read the trail, filter it, page it, export it."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.web.portal.portal_kit import PASSWORD, browser, psconnect
from tests.stack import Stack, running_stack

TTB = "/process/time-to-bill/v1"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path) as s:
        for entity in ("US01", "UK01", "UK01"):
            answer = await s.http.post(f"{TTB}/billing-runs", json={"legal_entity_code": entity, "period": "2026-10"},
                                       headers={"Idempotency-Key": str(uuid.uuid4())})
            assert answer.status_code in (200, 202), answer.text
        tricky = await s.http.put("/system/crm/v1/accounts/by-external-id/=HYPERLINK(1)", json={"name": 5})
        assert tricky.status_code in (400, 422)
        yield s


async def test_the_audit_page_lists_filters_and_pages_the_trail(stack: Stack) -> None:
    async with browser(stack) as ops:
        await ops.post("/portal/signup", data={"email": "ops@psconnect.local", "name": "Ops", "password": PASSWORD})
        assert psconnect(stack, "accounts", "grant", "--email", "ops@psconnect.local", "--role", "operations")[0] == 0
        page = await ops.get("/console/audit")
        assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
        # three billing runs, the refused account write, and the operations role the admin granted
        assert page.text.count("<tr data-id=") == 5 and "timeToBill.startBillingRun" in page.text
        assert "grant_role" in page.text
        uk = await ops.get("/console/audit", params={"legal_entity": "UK01", "outcome": "success"})
        assert uk.text.count("<tr data-id=") == 2 and "US01" not in uk.text.split("<tbody>")[1]
        refused = await ops.get("/console/audit", params={"outcome": "refused"})
        assert refused.text.count("<tr data-id=") == 1 and "crm.upsertAccount" in refused.text
        bad = await ops.get("/console/audit", params={"from": "yesterday"})
        assert bad.status_code == 422 and "YYYY-MM-DD" in bad.text
        assert "http://" not in page.text.replace("http://www.w3.org", "") and "https://" not in page.text


async def test_the_csv_export_streams_the_filtered_rows(stack: Stack) -> None:
    async with browser(stack) as ops:
        await ops.post("/portal/signup", data={"email": "ops@psconnect.local", "name": "Ops", "password": PASSWORD})
        assert psconnect(stack, "accounts", "grant", "--email", "ops@psconnect.local", "--role", "operations")[0] == 0
        export = await ops.get("/console/audit.csv")
        assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
        assert "attachment" in export.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(export.text)))
        assert len(rows) == 5  # three runs, the refused write, the role grant
        assert {r["legal_entity"] for r in rows} == {"US01", "UK01", ""}
        tricky = next(r for r in rows if r["operation_id"] == "crm.upsertAccount")
        assert tricky["entity_id"] == "'=HYPERLINK(1)" and tricky["status"] in ("400", "422")
        run = next(r for r in rows if r["legal_entity"] == "US01")
        assert run["client_id"] == stack.client_id and run["status"] == "202" and run["correlation_id"]
        assert '"response.id"' in run["records"]
        uk = list(csv.DictReader(io.StringIO((await ops.get("/console/audit.csv",
                                                             params={"legal_entity": "UK01"})).text)))
        assert len(uk) == 2
    async with browser(stack) as dev:
        await dev.post("/portal/signup", data={"email": "dev@example.com", "name": "Dev", "password": PASSWORD})
        assert (await dev.get("/console/audit.csv")).status_code == 403
