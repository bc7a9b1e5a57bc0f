"""The docs render in a real browser with no network beyond the gateway itself.

The machines that run psconnect have no internet: a page that loads anything from a
CDN renders blank there. Chromium is driven by Playwright; every request to a host
other than localhost is aborted and recorded, and the test fails if there was one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from tests.browser.harness import SCREENSHOTS, guarded_context, served_gateway


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served_gateway(tmp_path_factory.mktemp("docs-home")) as url:
        yield url


@pytest.fixture(scope="module")
def page() -> Iterator[tuple[Page, list[str]]]:
    external: list[str] = []
    with guarded_context(external) as context:
        yield context.new_page(), external


def test_docs_index_lists_the_apis_offline(base_url: str, page: tuple[Page, list[str]]) -> None:
    tab, external = page
    tab.goto(f"{base_url}/docs", wait_until="networkidle")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SCREENSHOTS / "docs-index.png"), full_page=True)
    assert external == [], f"the docs index requested external URLs: {external}"
    body = tab.inner_text("body")
    for title in ("CRM system API", "ERP system API", "PSA system API", "Project provisioning process API"):
        assert title in body
    assert tab.locator(".badge-stable").count() >= 4


def test_swagger_ui_renders_the_crm_contract_offline(base_url: str, page: tuple[Page, list[str]]) -> None:
    tab, external = page
    tab.goto(f"{base_url}/docs/system.crm/v1", wait_until="networkidle")
    tab.wait_for_selector(".opblock-summary", timeout=15_000)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SCREENSHOTS / "docs-system-crm-v1.png"), full_page=True)
    assert external == [], f"the Swagger UI page requested external URLs: {external}"
    assert "CRM system API" in tab.inner_text(".information-container")
    operations = tab.locator(".opblock-summary-path").all_inner_texts()
    assert any("/system/crm/v1/accounts" in op for op in operations), operations
    assert tab.locator(".btn.authorize").count() == 1, "the OAuth2 Authorize button is missing"
