"""What every browser test needs: a gateway served on localhost, and Debian's Chromium that may reach nothing else."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import BrowserContext, Page, Route, expect, sync_playwright

from tests.ports import free_port

__all__ = ["CHROMIUM", "PASSWORD", "SCREENSHOTS", "approve_pending", "confirm_email", "guarded_context", "logged",
           "psconnect", "served_gateway", "sign_in", "sign_up"]

PASSWORD = "a long enough password"

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


@contextlib.contextmanager
def served_gateway(home: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """The embedded gateway in its own process on a free port; yields its base URL.

    `env`: the settings environment the gateway reads (none by default: schedules off).

    Its log (JSON lines) goes to `home/gateway.log`, where `logged` finds the links the
    server writes there: email confirmation, the first admin's enrolment link.
    """
    port = free_port()
    code = ("import uvicorn; from gateway.app import create_gateway; from gateway.settings import load_settings; "
            f"g = create_gateway(load_settings(env={dict(env or {})!r}, home={str(home)!r}, port={port})); "
            f"uvicorn.run(g.app, host='127.0.0.1', port={port}, log_level='warning')")
    log = (home / "gateway.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=log)
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
        log.close()


def logged(home: Path, event: str, within: float = 15.0, **match: str) -> dict[str, Any]:
    """The latest line of the served gateway's log with this `event` (and these fields), waiting for it."""
    deadline = time.monotonic() + within
    while True:
        lines = (home / "gateway.log").read_text(errors="replace").splitlines()
        found = [line for line in (json.loads(raw) for raw in lines if raw.startswith("{"))
                 if line.get("event") == event and all(line.get(k) == v for k, v in match.items())]
        if found:
            return found[-1]
        assert time.monotonic() < deadline, f"no {event} {match} in the gateway's log"
        time.sleep(0.2)


def psconnect(home: Path, *argv: str) -> str:
    """Run `psconnect …` on the served gateway's database, as its operator would; returns stdout."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    done = subprocess.run([sys.executable, "-m", "cli", *argv], cwd=ROOT, capture_output=True, text=True,
                          env={**env, "PSCONNECT_HOME": str(home), "PSCONNECT_SEED_DEMO": "0"}, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def sign_up(page: Page, base_url: str, email: str, name: str) -> None:
    page.goto(f"{base_url}/portal/signup")
    page.fill("input[name=email]", email)
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Sign up')")


def sign_in(page: Page, base_url: str, email: str) -> None:
    page.goto(f"{base_url}/portal/signin")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")


def confirm_email(page: Page, home: Path, email: str) -> None:
    """Open the confirmation link the server logged for `email`, as its owner would open the mail."""
    page.goto(logged(home, "portal_email", to=email, purpose="confirm_email")["link"])
    expect(page.locator("main h1")).to_have_text("Email confirmed")


def approve_pending(context: BrowserContext, base_url: str, home: Path, admin: str = "lead@example.com") -> None:
    """An admin (made with `psconnect accounts grant`) approves every pending request on the admin page.

    In a browser context of its own (its own cookies), beside the developer's.
    """
    assert context.browser is not None
    own = context.browser.new_context()
    own.route("**/*", lambda route: route.continue_() if urlsplit(route.request.url).hostname in LOCAL_HOSTS
              else route.abort())
    page = own.new_page()
    sign_up(page, base_url, admin, "Lead")
    if "/portal/apps" not in page.url:  # an earlier test made this admin already
        sign_in(page, base_url, admin)
    psconnect(home, "accounts", "grant", "--email", admin, "--role", "admin")
    page.goto(f"{base_url}/portal/admin")
    while page.locator("table.pending button[value=approve]").count():
        page.locator("table.pending button[value=approve]").first.click()
    expect(page.locator("main")).to_contain_text("No pending requests")
    own.close()


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
