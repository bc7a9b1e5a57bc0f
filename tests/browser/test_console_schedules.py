"""The console's schedules page in a real browser: every schedule of the file with its next fire, and a pause
and a resume that every worker honours (the state is in the database) and the audit trail names.

The gateway runs with schedules on and the published schedule file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from gateway.processes import Processes
from gateway.schedules import DEFAULT_FILE, load_schedules
from tests.browser.harness import SCREENSHOTS, confirm_email, guarded_context, psconnect, served_gateway

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("console-schedules-home")


@pytest.fixture(scope="module")
def base_url(home: Path) -> Iterator[str]:
    with served_gateway(home, env={"PSCONNECT_SCHEDULES_ENABLED": "1"}) as url:
        yield url


def test_schedules_are_listed_with_their_next_fire_and_can_be_paused_and_resumed(base_url: str,
                                                                                 home: Path) -> None:
    hosted = Processes.create(demo_calendar=True).hosted
    published = load_schedules({n: h.package.schedulable for n, h in hosted.items()}, DEFAULT_FILE)
    external: list[str] = []
    with guarded_context(external, height=1000) as context:
        page = context.new_page()
        page.goto(f"{base_url}/portal/signup")
        page.fill("input[name=email]", "ops@psconnect.local")
        page.fill("input[name=name]", "Ops")
        page.fill("input[name=password]", "a long enough password")
        page.click("button:has-text('Sign up')")
        psconnect(home, "accounts", "grant", "--email", "ops@psconnect.local", "--role", "operations")
        confirm_email(page, home, "ops@psconnect.local")
        page.goto(f"{base_url}/console")
        page.click("nav.console-nav >> text=Schedules")
        rows = page.locator("table.schedules tbody tr[data-schedule]")
        expect(rows).to_have_count(len(published))
        names = rows.evaluate_all("rows => rows.map(r => r.dataset.schedule)")
        assert names == [s.name for s in published]
        for name in names:
            row = page.locator(f"tr[data-schedule='{name}']")
            expect(row).to_have_attribute("data-state", "active")
            assert row.locator("td.next-fire").inner_text().endswith("UTC")
        page.screenshot(path=str(SCREENSHOTS / "console-schedules-1-active.png"), full_page=True)

        nightly = page.locator("tr[data-schedule='worker-sync-nightly']")
        nightly.locator("button:has-text('Pause')").click()
        expect(page.locator("p.notice")).to_contain_text("worker-sync-nightly paused")
        expect(nightly).to_have_attribute("data-state", "paused")
        expect(nightly.locator("td.next-fire")).to_have_text("—")
        expect(page.locator("tr[data-schedule='time-posting-us01']")).to_have_attribute("data-state", "active")
        page.screenshot(path=str(SCREENSHOTS / "console-schedules-2-paused.png"), full_page=True)
        page.reload()  # the pause is in the database, not in this page
        expect(nightly).to_have_attribute("data-state", "paused")
        nightly.locator("button:has-text('Resume')").click()
        expect(nightly).to_have_attribute("data-state", "active")

        page.goto(f"{base_url}/console/audit?entity_type=schedule")
        expect(page.locator("main")).to_contain_text("worker-sync-nightly")
    assert external == [], f"the console made external requests: {external}"
