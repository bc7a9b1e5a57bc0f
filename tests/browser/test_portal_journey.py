"""The developer portal in a real browser: sign up, confirm, register an app, get approval, try it, see usage.

Debian's Chromium, driven by Playwright, against a gateway served on localhost;
every request to another host is aborted and recorded, and the journey fails if one
was made. Screenshots of each step land in artifacts/screenshots/. Mail is read where
an embedded server writes it — its log — and the first admin enrols with the one-time
link the server logged at start-up.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.harness import (
    SCREENSHOTS,
    approve_pending,
    confirm_email,
    guarded_context,
    logged,
    psconnect,
    served_gateway,
    sign_up,
)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("portal-home")


@pytest.fixture(scope="module")
def base_url(home: Path) -> Iterator[str]:
    with served_gateway(home) as url:
        yield url


def test_sign_up_register_try_it_and_see_usage(base_url: str, home: Path) -> None:
    external: list[str] = []
    with guarded_context(external, height=900) as context:
        page = context.new_page()
        page.goto(f"{base_url}/portal")
        expect(page.locator('tr[data-api="system.crm"]')).to_be_visible()
        page.screenshot(path=str(SCREENSHOTS / "portal-1-catalog.png"), full_page=True)
        page.locator('tr[data-api="system.psa"] a:has-text("Changelog")').click()
        expect(page.locator("ul.changes li").first).to_be_visible()  # generated from the contract diff
        # Every API is released (contracts/releases); the page compares the release with the current contract.
        expect(page.locator("#changelog")).to_contain_text("v1 (last release) → v1 (current)")
        page.goto(f"{base_url}/portal")

        page.click("text=Sign up")
        page.fill("input[name=email]", "ada@example.com")
        page.fill("input[name=name]", "Ada")
        page.fill("input[name=password]", "a long enough password")
        page.click("button:has-text('Sign up')")
        expect(page).to_have_url(re.compile(r"/portal/apps$"))
        expect(page.locator("p.notice")).to_contain_text("Confirm your email")
        confirm_email(page, home, "ada@example.com")
        page.goto(f"{base_url}/portal/apps")

        page.fill("input[name=name]", "Invoice reader")
        page.check("input[value='system.crm:read']")  # the system layer: waits for an admin
        page.click("button:has-text('Register')")
        secret = page.locator("#client-secret").inner_text()
        client_id = page.locator("#client-id").inner_text()
        assert len(secret) > 30 and client_id.startswith("app-")
        page.screenshot(path=str(SCREENSHOTS / "portal-2-credentials.png"), full_page=True)
        page.click("text=Continue to the application")
        expect(page.locator("#requested-scopes")).to_have_text("system.crm:read")
        app_url = page.url

        # The operator enrols as the first admin with the link the server logged at start-up, and approves.
        assert context.browser is not None
        operator_context = context.browser.new_context()
        operator_context.route("**/*", lambda route: route.continue_() if "127.0.0.1" in route.request.url
                               else route.abort())
        operator = operator_context.new_page()
        sign_up(operator, base_url, "boss@example.com", "Boss")
        operator.goto(logged(home, "admin_enrolment_link")["link"])
        operator.click("button:has-text('Make me admin')")
        expect(operator).to_have_url(re.compile(r"/portal/admin$"))
        expect(operator.locator("table.pending")).to_contain_text("Invoice reader")
        operator.screenshot(path=str(SCREENSHOTS / "portal-2b-admin.png"), full_page=True)
        operator.locator("table.pending button[value=approve]").first.click()
        expect(operator.locator("main")).to_contain_text("No pending requests")
        operator_context.close()

        page.goto(app_url)
        expect(page.locator("#scopes")).to_have_text("system.crm:read")
        page.fill("#try-secret", secret)
        page.click("#try-it button")
        result = page.locator("#try-result")
        expect(result).to_have_attribute("data-status", "200", timeout=45_000)
        assert "Northwind" in result.inner_text()
        page.screenshot(path=str(SCREENSHOTS / "portal-3-try-it.png"), full_page=True)

        page.reload()
        expect(page.locator("td.requests").first).to_have_text("1")
        expect(page.locator("svg.chart rect.bar.requests").first).to_be_visible()
        page.screenshot(path=str(SCREENSHOTS / "portal-4-usage.png"), full_page=True)
    assert external == [], f"the portal made external requests: {external}"


def test_operations_console_renders_its_charts(base_url: str, home: Path) -> None:
    """An ops user (role granted on the server) sees open exceptions drawn as charts, and acts on one."""
    external: list[str] = []
    with guarded_context(external, height=1000) as context:
        page = context.new_page()
        sign_up(page, base_url, "ops@psconnect.local", "Ops")
        psconnect(home, "accounts", "grant", "--email", "ops@psconnect.local", "--role", "operations")
        confirm_email(page, home, "ops@psconnect.local")
        page.goto(f"{base_url}/portal/apps")
        page.fill("input[name=name]", "Ops tools")
        page.check("input[value='process.provisioning:write']")
        page.check("input[value='process.provisioning:read']")
        page.click("button:has-text('Register')")
        creds = (page.locator("#client-id").inner_text(), page.locator("#client-secret").inner_text())
        approve_pending(context, base_url, home)  # the write scope waits for an admin
        token = httpx.post(f"{base_url}/oauth2/token", data={"grant_type": "client_credentials"}, auth=creds)
        started = httpx.post(f"{base_url}/process/provisioning/v1/runs", json={"opportunity_id": "OPP-0003"},
                             headers={"Authorization": f"Bearer {token.json()['access_token']}",
                                      "Idempotency-Key": "browser-console-0003"})
        assert started.status_code == 202, started.text
        auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
        deadline = time.monotonic() + 60
        while (run := httpx.get(f"{base_url}/process/provisioning/v1/runs/{started.json()['id']}",
                                headers=auth)).json().get("status") != "needs_attention":
            assert run.status_code == 200, run.text
            assert time.monotonic() < deadline, "the provisioning run did not raise its exception"
            time.sleep(0.2)

        page.goto(f"{base_url}/console")
        expect(page.locator("#open-total")).to_have_text("1")
        expect(page.locator("svg.chart")).to_have_count(3)
        expect(page.locator("svg.chart rect.bar").first).to_be_visible()
        page.screenshot(path=str(SCREENSHOTS / "console-1-overview.png"), full_page=True)

        page.click("text=open the workbench")
        page.locator("table.exceptions a").first.click()
        page.fill("input[name=assignee]", "maria.masterdata")
        page.click("button:has-text('Assign')")
        expect(page.locator("#assignee")).to_have_text("maria.masterdata")
        expect(page.locator("table.audit")).to_contain_text("ops@psconnect.local via psconnect-console")
        page.screenshot(path=str(SCREENSHOTS / "console-2-exception.png"), full_page=True)
    assert external == [], f"the console made external requests: {external}"
