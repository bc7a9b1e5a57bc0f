"""The operations console: staff see open exceptions as charts and act on them; the audit names the person."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.web.portal.portal_kit import PASSWORD, browser, csrf, psconnect
from tests.stack import Stack, running_stack


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path) as s:
        for opp in ("OPP-0003", "OPP-0006", "OPP-0009"):
            await s.provision(opp)
        yield s


async def test_overview_draws_open_exceptions_as_charts(stack: Stack) -> None:
    async with browser(stack) as ops:
        await ops.post("/portal/signup", data={"email": "ops@psconnect.local", "name": "Ops", "password": PASSWORD})
        assert psconnect(stack, "accounts", "grant", "--email", "ops@psconnect.local", "--role", "operations")[0] == 0
        page = await ops.get("/console")
        assert page.status_code == 200
        assert '<strong id="open-total">3</strong>' in page.text
        assert page.text.count("<svg") == 3 and "missing_tax_id" in page.text
        assert re.findall(r'class="label"[^>]*>([^<]*)<', page.text).count("missing_tax_id") == 1
        listed = await ops.get("/console/exceptions", params={"owner": "finance-master-data"})
        assert listed.text.count('data-reason="') == 2
        ages = re.findall(r'<td class="age" data-hours="[^"]*">([^<]*)</td>', listed.text)
        assert len(ages) == 2 and all(re.fullmatch(r"under 1 min|\d+ min|\d+ h( \d+ min)?|\d+ d( \d+ h)?", a)
                                      for a in ages), ages


async def test_actions_go_through_the_workbench_and_the_audit_names_the_person(stack: Stack) -> None:
    async with browser(stack) as ops:
        await ops.post("/portal/signup", data={"email": "ops@psconnect.local", "name": "Ops", "password": PASSWORD})
        assert psconnect(stack, "accounts", "grant", "--email", "ops@psconnect.local", "--role", "operations")[0] == 0
        listed = (await ops.get("/console/exceptions", params={"reason": "currency_mismatch"})).text
        exception_id = re.search(r'href="/console/exceptions/(exc_[0-9a-f]+)"', listed)
        assert exception_id
        page = (await ops.get(f"/console/exceptions/{exception_id.group(1)}")).text
        done = await ops.post(f"/console/exceptions/{exception_id.group(1)}/assign",
                              data={"csrf_token": csrf(page), "assignee": "sales.ops"})
        assert "Assigned." in done.text and '<dd id="assignee">sales.ops</dd>' in done.text
        assert "ops@psconnect.local via psconnect-console" in done.text
        refused = await ops.post(f"/console/exceptions/{exception_id.group(1)}/assign", data={"assignee": "x"})
        assert refused.status_code == 403


async def test_console_is_for_operations_staff_only(stack: Stack) -> None:
    async with browser(stack) as dev:
        await dev.post("/portal/signup", data={"email": "dev@example.com", "name": "Dev", "password": PASSWORD})
        assert (await dev.get("/console")).status_code == 403
    async with browser(stack) as anonymous:
        assert (await anonymous.get("/console")).status_code == 401


async def test_only_the_console_identity_may_act_on_behalf_of_a_person(stack: Stack) -> None:
    record = (await stack.http.get("/experience/workbench/v1/exceptions")).json()["items"][0]["exception"]
    await stack.http.post(f"/experience/workbench/v1/exceptions/{record['id']}/comments", json={"text": "hi"},
                          headers={"X-On-Behalf-Of": "ceo@example.com"})
    detail = (await stack.http.get(f"/experience/workbench/v1/exceptions/{record['id']}")).json()
    assert detail["comments"][0]["author"] == stack.client_id  # the claim was ignored


async def test_a_schedule_is_not_paused_by_a_form_without_the_sessions_csrf_token(stack: Stack) -> None:
    async with browser(stack) as ops:
        await ops.post("/portal/signup", data={"email": "ops@psconnect.local", "name": "Ops", "password": PASSWORD})
        assert psconnect(stack, "accounts", "grant", "--email", "ops@psconnect.local", "--role", "operations")[0] == 0
        page = await ops.get("/console/schedules")
        assert page.status_code == 200 and 'data-schedule="worker-sync-nightly"' in page.text
        assert 'data-state="off"' in page.text  # this stack runs no schedules: listed, not fired
        refused = await ops.post("/console/schedules/worker-sync-nightly/pause", data={"csrf_token": "forged"})
        assert refused.status_code == 403
