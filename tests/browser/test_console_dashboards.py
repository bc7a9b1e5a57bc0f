"""The console's dashboards in a real browser: every widget drawn as a chart that agrees with the API.

After October's billing runs on the demo firm, an operations user opens
/console/dashboards; each chart's bars (label, series, exact value) must be what the
dashboards API answers for the same filters, fetched here with a token of our own.
Narrowing to one legal entity redraws the charts to that entity's figures; paging a
list widget draws its next page; a refused filter is explained, not a broken page.
Debian's Chromium may reach nothing but the gateway; screenshots land in
artifacts/screenshots/.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.harness import (
    SCREENSHOTS,
    approve_pending,
    confirm_email,
    guarded_context,
    psconnect,
    served_gateway,
)

pytestmark = pytest.mark.slow

DASH = "/experience/dashboards/v1"
TTB = "/process/time-to-bill/v1"
PAGE_SIZE = 15  # the console's page size for list widgets (gateway/console/dashboards.py)
ENTITIES = ("US01", "UK01", "DE01")
Bars = dict[str, list[tuple[str, str, str]]]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("console-dashboards-home")


@pytest.fixture(scope="module")
def base_url(home: Path) -> Iterator[str]:
    with served_gateway(home) as url:
        yield url


@pytest.fixture(scope="module")
def auth(base_url: str, home: Path) -> dict[str, str]:
    """The operations user signed up, an app of theirs registered, October billed; the app's auth headers."""
    external: list[str] = []
    with guarded_context(external) as context:
        headers = sign_up_and_register(context.new_page(), base_url, home)
    assert external == [], f"the portal made external requests: {external}"
    bill_october(base_url, headers)
    return headers


def sign_up_and_register(page: Page, base_url: str, home: Path) -> dict[str, str]:
    """Sign up as the operations user and register an app for billing runs and dashboards; returns auth headers.

    The operations role is granted on the server (`psconnect accounts grant`), the email confirmed with the
    link the server logged, and the billing write scope approved by an admin.
    """
    page.goto(f"{base_url}/portal/signup")
    page.fill("input[name=email]", "ops@psconnect.local")
    page.fill("input[name=name]", "Ops")
    page.fill("input[name=password]", "a long enough password")
    page.click("button:has-text('Sign up')")
    psconnect(home, "accounts", "grant", "--email", "ops@psconnect.local", "--role", "operations")
    confirm_email(page, home, "ops@psconnect.local")
    page.goto(f"{base_url}/portal/apps")
    page.fill("input[name=name]", "Month-end checks")
    for scope in ("process.time_to_bill:read", "process.time_to_bill:write", "experience.dashboards:read"):
        page.check(f"input[value='{scope}']")
    page.click("button:has-text('Register')")
    creds = (page.locator("#client-id").inner_text(), page.locator("#client-secret").inner_text())
    approve_pending(page.context, base_url, home)
    token = httpx.post(f"{base_url}/oauth2/token", data={"grant_type": "client_credentials"}, auth=creds)
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def bill_october(base_url: str, auth: dict[str, str]) -> None:
    """October's billing run for every legal entity, through the process API, until each has ended."""
    runs = []
    for entity in ENTITIES:
        started = httpx.post(f"{base_url}{TTB}/billing-runs", json={"legal_entity_code": entity, "period": "2026-10"},
                             headers={**auth, "Idempotency-Key": f"console-dashboards-{entity}"}, timeout=30)
        assert started.status_code in (200, 202), started.text
        runs.append(started.json()["id"])
    deadline = time.monotonic() + 240
    for run_id in runs:
        while (run := httpx.get(f"{base_url}{TTB}/billing-runs/{run_id}", headers=auth, timeout=30).json())[
                "status"] not in ("succeeded", "needs_attention", "failed"):
            assert time.monotonic() < deadline, f"billing run {run_id} still {run['status']}"
            time.sleep(0.3)
        assert run["status"] != "failed", run


def api(base_url: str, auth: dict[str, str], path: str, **params: Any) -> Any:
    """One dashboards call as a client would make it, waiting out the app's plan (bronze: 5 requests/s)."""
    for _ in range(30):
        response = httpx.get(f"{base_url}{DASH}{path}", params=params, headers=auth, timeout=30)
        if response.status_code != 429:
            break
        time.sleep(float(response.headers.get("Retry-After", "1")))
    assert response.status_code == 200, response.text
    return response.json()


def expected_bars(base_url: str, auth: dict[str, str], **filters: str) -> Bars:
    """The bars each chart must show, worked out from the API's own answers for these filters."""
    cursors = {k: filters.pop(f"{k}_cursor") for k in ("workers", "backlog", "readiness", "margin", "wip")
               if f"{k}_cursor" in filters}

    def paged(name: str, path: str) -> Any:
        return api(base_url, auth, path, **filters, limit=PAGE_SIZE,
                   **({"cursor": cursors[name]} if name in cursors else {}))

    bars: Bars = {}

    def add(chart: str, label: str, series: str, value: Any) -> None:
        bars.setdefault(chart, []).append((label, series, str(value)))

    utilization = api(base_url, auth, "/utilization", **filters)
    for chart, groups in (("practice", utilization["by_practice"]), ("entity", utilization["by_legal_entity"])):
        bars.setdefault(f"chart-utilization-{chart}", [])
        for g in groups:
            if g["figures"]["actual_utilization"] is not None:  # no capacity: not drawn as a made-up 0 %
                add(f"chart-utilization-{chart}", g["key"], "planned", g["figures"]["planned_utilization"])
                add(f"chart-utilization-{chart}", g["key"], "actual", g["figures"]["actual_utilization"])
    bars["chart-workers"] = []
    for w in paged("workers", "/utilization/workers")["items"]:
        if w["figures"]["actual_utilization"] is not None:
            add("chart-workers", w["worker_id"], "planned", w["figures"]["planned_utilization"])
            add("chart-workers", w["worker_id"], "actual", w["figures"]["actual_utilization"])
    for name, path, field, series in (("backlog", "/backlog", "remaining", "remaining"),
                                      ("readiness", "/invoice-readiness", "approved_unbilled", "approved unbilled"),
                                      ("margin", "/margin", "margin", "margin")):
        for item in paged(name, path)["items"]:
            add(f"chart-{name}-{item[field]['currency']}", item["project"], series, item[field]["amount"])
    for item in paged("wip", "/work-in-progress")["items"]:
        chart = f"chart-wip-{item['recognised']['currency']}"
        add(chart, item["project"], "recognised", item["recognised"]["amount"])
        add(chart, item["project"], "billed", item["billed"]["amount"])
    for bucket in api(base_url, auth, "/unbilled-aging", **filters)["buckets"]:
        add(f"chart-aging-{bucket['currency']}", bucket["bucket"], bucket["currency"], bucket["amount"]["amount"])
    health = api(base_url, auth, "/sync-health", **filters)
    for chart, counts in (("reason", health["exceptions_by_reason"]), ("age", health["exceptions_by_age"]),
                          ("owner", health["exceptions_by_owner"]), ("failed", health["failed_runs"])):
        bars[f"chart-health-{chart}"] = [(c["key"], "count", str(c["count"])) for c in counts]
    return {chart: sorted(drawn) for chart, drawn in bars.items()}


def sign_in(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/portal/signin")
    page.fill("input[name=email]", "ops@psconnect.local")
    page.fill("input[name=password]", "a long enough password")
    page.click("main button[type=submit]")
    expect(page.locator("header nav")).to_contain_text("Operations console")


def drawn_bars(page: Page) -> Bars:
    """Every dashboards chart on the page with its bars, as the browser rendered them."""
    charts: list[dict[str, Any]] = page.eval_on_selector_all("svg.chart.dashboard", """svgs => svgs.map(svg => ({
        id: svg.id, bars: [...svg.querySelectorAll('rect.bar')].map(r => [r.dataset.label, r.dataset.series,
                                                                           r.dataset.value])}))""")
    return {c["id"]: sorted(tuple(b) for b in c["bars"]) for c in charts}


def test_dashboards_draw_the_apis_figures_and_follow_the_filters(base_url: str, auth: dict[str, str]) -> None:
    external: list[str] = []
    with guarded_context(external, height=1000) as context:
        page = context.new_page()
        console_errors: list[str] = []  # a CSP violation (inline style or script) is logged here by Chromium
        page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
        sign_in(page, base_url)
        page.goto(f"{base_url}/console")
        page.click("nav.console-nav >> text=Dashboards")
        expect(page).to_have_url(re.compile(r"/console/dashboards$"))
        expect(page.locator("#chart-utilization-practice rect.bar").first).to_be_visible()
        everything = drawn_bars(page)
        assert everything == expected_bars(base_url, auth)
        # every widget has a chart, with bars where the demo firm's October has figures
        for chart in ("chart-utilization-practice", "chart-utilization-entity", "chart-workers", "chart-backlog-USD",
                      "chart-readiness-USD", "chart-aging-USD", "chart-margin-USD", "chart-wip-USD",
                      "chart-health-reason"):
            assert everything.get(chart), f"{chart} drew no bars"
        assert {label for label, _, _ in everything["chart-utilization-entity"]} == set(ENTITIES)
        assert {c.rsplit("-", 1)[1] for c in everything if c.startswith("chart-backlog-")} == {"USD", "GBP", "EUR"}
        for chart in ("chart-utilization-practice", "chart-backlog-USD", "chart-aging-USD", "chart-health-reason"):
            svg = page.locator(f"#{chart}")
            assert svg.get_attribute("role") == "img"
            assert page.locator(f"#{chart}-title").text_content()  # an accessible name for each chart
        page.screenshot(path=str(SCREENSHOTS / "console-dashboards-1-all.png"), full_page=True)

        page.select_option("select[name=legal_entity]", "UK01")
        page.click("#filters button[type=submit]")
        expect(page).to_have_url(re.compile(r"legal_entity=UK01"))
        uk = drawn_bars(page)
        assert uk == expected_bars(base_url, auth, legal_entity="UK01")
        assert uk != everything
        assert {label for label, _, _ in uk["chart-utilization-entity"]} == {"UK01"}
        assert {c for c in uk if c.startswith(("chart-backlog-", "chart-margin-", "chart-aging-"))} <= {
            "chart-backlog-GBP", "chart-margin-GBP", "chart-aging-GBP"}
        assert set(page.locator("table.backlog tbody td:nth-child(2)").all_inner_texts()) == {"UK01"}
        expect(page.locator("select[name=legal_entity]")).to_have_value("UK01")
        page.screenshot(path=str(SCREENSHOTS / "console-dashboards-2-uk01.png"), full_page=True)

        page.goto(f"{base_url}/console/dashboards")
        next_link = page.locator("#w-backlog a.next")
        expect(next_link).to_have_count(1)  # 30 demo projects, 15 a page
        cursor = parse_qs(urlsplit(next_link.get_attribute("href") or "").query)["backlog_cursor"][0]
        next_link.click()
        expect(page.locator("#w-backlog a.first")).to_have_count(1)
        second = drawn_bars(page)
        assert second == expected_bars(base_url, auth, backlog_cursor=cursor)
        first_page = {p for c, d in everything.items() if c.startswith("chart-backlog-") for p, _, _ in d}
        second_page = {p for c, d in second.items() if c.startswith("chart-backlog-") for p, _, _ in d}
        assert second_page and not first_page & second_page
        page.screenshot(path=str(SCREENSHOTS / "console-dashboards-3-backlog-page-2.png"), full_page=True)
        assert console_errors == [], f"the page logged errors (CSP violations?): {console_errors}"
    assert external == [], f"the dashboards made external requests: {external}"


def test_a_refused_filter_is_explained_on_the_page(base_url: str, auth: dict[str, str]) -> None:
    external: list[str] = []
    with guarded_context(external) as context:
        page = context.new_page()
        sign_in(page, base_url)
        for query in ("period=2026-13", "legal_entity=ZZ99", "backlog_cursor=not-a-cursor"):
            response = page.goto(f"{base_url}/console/dashboards?{query}")
            assert response is not None and 400 <= response.status < 500, (query, response and response.status)
            expect(page.locator("p.error[role=alert]")).to_be_visible()
            expect(page.locator("#filters")).to_be_visible()  # the reader can correct the filter
            assert page.locator("svg.chart").count() == 0
        page.screenshot(path=str(SCREENSHOTS / "console-dashboards-4-refused.png"), full_page=True)
    assert external == [], f"the dashboards made external requests: {external}"


def test_the_page_opens_with_the_figures_to_check_first_and_every_bar_is_named(base_url: str,
                                                                              auth: dict[str, str]) -> None:
    external: list[str] = []
    with guarded_context(external, height=1000) as context:
        page = context.new_page()
        sign_in(page, base_url)
        page.goto(f"{base_url}/console/dashboards")
        summary = page.locator("#summary")
        expect(summary).to_be_visible()
        # the summary row comes before the first detail widget
        order = page.eval_on_selector_all("#summary, section.widget", "els => els.map(e => e.id)")
        assert order[0] == "summary", order
        keys = summary.locator(".figure").evaluate_all("els => els.map(e => e.dataset.key)")
        assert {"actual-utilization", "billable-hours", "approved-unbilled", "open-exceptions",
                "failed-runs"} <= set(keys)
        shown = api(base_url, auth, "/utilization")
        actual = summary.locator(".figure[data-key=actual-utilization]")
        periods = actual.locator("ol.trend li").evaluate_all("els => els.map(e => e.dataset.period)")
        assert periods and periods[-1] == shown["period"] and periods == sorted(periods)
        open_now = sum(c["count"] for c in api(base_url, auth, "/sync-health")["exceptions_by_reason"])
        expect(summary.locator(".figure[data-key=open-exceptions] strong")).to_have_text(str(open_now))
        # every bar of every chart has its label written beside or under it, not only the first and last
        named: list[dict[str, Any]] = page.eval_on_selector_all("svg.chart", """svgs => svgs.map(svg => ({
            id: svg.id, bars: [...new Set([...svg.querySelectorAll('rect.bar')].map(r => r.dataset.label))],
            labels: [...svg.querySelectorAll('text.label')].map(t => t.textContent)}))""")
        assert named
        for chart in named:
            assert len(chart["labels"]) == len(chart["bars"]), chart
        page.screenshot(path=str(SCREENSHOTS / "console-dashboards-5-summary.png"), full_page=True)
    assert external == [], f"the dashboards made external requests: {external}"
