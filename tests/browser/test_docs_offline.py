"""The docs render in a real browser with no network beyond the gateway itself.

The machines that run psconnect have no internet: a page that loads anything from a
CDN renders blank there. Chromium is driven by Playwright; every request to a host
other than localhost is aborted and recorded, and the test fails if there was one.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Page, Route, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    home = tmp_path_factory.mktemp("docs-home")
    code = ("import uvicorn; from gateway.app import create_gateway; from gateway.settings import load_settings; "
            f"g = create_gateway(load_settings(env={{}}, home={str(home)!r}, port={port})); "
            f"uvicorn.run(g.app, host='127.0.0.1', port={port}, log_level='warning')")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, "the gateway process exited during start-up"
            assert time.monotonic() < deadline, "the gateway did not start within 60 s"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def page() -> Iterator[tuple[Page, list[str]]]:
    assert CHROMIUM.exists(), (f"{CHROMIUM} is missing: install Debian's chromium (`make browser`, which runs "
                               ".ci/install-chromium.sh) — Playwright's own browser download cannot work offline.")
    external: list[str] = []

    def guard(route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            external.append(route.request.url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.route("**/*", guard)
            yield context.new_page(), external
        finally:
            browser.close()


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
