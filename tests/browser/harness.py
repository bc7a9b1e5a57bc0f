"""What every browser test needs: a gateway served on localhost, and Debian's Chromium that may reach nothing else."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import BrowserContext, Route, sync_playwright

from tests.ports import free_port

__all__ = ["CHROMIUM", "SCREENSHOTS", "guarded_context", "served_gateway"]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


@contextlib.contextmanager
def served_gateway(home: Path) -> Iterator[str]:
    """The embedded gateway in its own process on a free port; yields its base URL."""
    port = free_port()
    code = ("import uvicorn; from gateway.app import create_gateway; from gateway.settings import load_settings; "
            f"g = create_gateway(load_settings(env={{}}, home={str(home)!r}, port={port})); "
            f"uvicorn.run(g.app, host='127.0.0.1', port={port}, log_level='warning')")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, "the gateway process exited during start-up"
            assert time.monotonic() < deadline, "the gateway did not start within 120 s"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextlib.contextmanager
def guarded_context(external: list[str], height: int = 900) -> Iterator[BrowserContext]:
    """A Chromium context whose requests to any host but localhost are aborted and recorded in `external`."""
    assert CHROMIUM.exists(), (f"{CHROMIUM} is missing: install Debian's chromium (`make browser`, which runs "
                               ".ci/install-chromium.sh) — Playwright's own browser download cannot work offline.")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def guard(route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            external.append(route.request.url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": height})
            context.route("**/*", guard)
            yield context
        finally:
            browser.close()
