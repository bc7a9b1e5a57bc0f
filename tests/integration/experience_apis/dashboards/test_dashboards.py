"""The dashboards experience API after real October billing runs of the demo firm, through the governed gateway.

Every widget's figures are checked against an independent computation from the ledger
rows and the demo firm (`expected.py`); filters narrow, pages walk every item once, bad
input is a 4xx problem, a consumer restricted to UK01 sees UK01 only in every widget, and
the projection is refreshed idempotently and follows the event path. Backlog, invoice
readiness and unbilled aging in a group currency convert every figure at its entity's rate
and add the converted figures to the cent.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import sqlalchemy as sa

from process_apis._internal.tables import exceptions
from process_apis.time_to_bill.enrich import load_reference
from process_apis.time_to_bill.facts import BillingFacts
from process_apis.time_to_bill.runtime import runtime
from system_apis.demo_firm import ANCHOR_DATE
from tests.integration.experience_apis.dashboards.expected import FIRM, Expected, money
from tests.integration.process_apis.time_to_bill.ttb_stack import PERIOD, TtbStack, ttb_stack

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

BASE = "/experience/dashboards/v1"
LISTS = ("/utilization/workers", "/backlog", "/invoice-readiness", "/margin")
WIDGETS = ("/utilization", *LISTS, "/unbilled-aging", "/sync-health")
BILLED = ("UK01", "US01", "DE01")  # DE01 has no seeded defect: its run succeeds


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def s(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TtbStack]:
    async with ttb_stack(Path(tmp_path_factory.mktemp("dashboards"))) as stack:
        for entity in BILLED:
            run = await stack.bill(entity)
            assert run["status"] in ("succeeded", "needs_attention"), run
        yield stack


async def get(http: httpx.AsyncClient, path: str, **params: Any) -> Any:
    response = await http.get(BASE + path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def walk(http: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await get(http, path, **params, **({"cursor": cursor} if cursor else {}))
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


@contextlib.asynccontextmanager
async def consumer(s: TtbStack, entities: list[str] | None,
                   scopes: tuple[str, ...] = ("experience.dashboards:read",)) -> AsyncIterator[httpx.AsyncClient]:
    """A client of its own, holding only `scopes` and the given legal-entity grant."""
    gw = s.stack.gateway
    client_id, secret = gw.oauth.clients.create("dashboards test", scopes, legal_entities=entities)
    transport = httpx.ASGITransport(app=gw.app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        token = await http.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
        assert token.status_code == 200, token.text
        http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield http


def D(value: str | None) -> Decimal:
    assert value is not None
    return Decimal(value)


class TestUtilization:
    async def test_totals_groups_and_workers_match_ledger_and_hr(self, s: TtbStack) -> None:
        want = Expected(s.engine)
        report = await get(s.http, "/utilization", legal_entity="UK01", period=PERIOD)
        figures = want.worker_figures("UK01", PERIOD)
        total = {k: sum((f[k] for f in figures.values()), Decimal(0)) for k in ("capacity", "planned", "actual",
                                                                               "billable")}
        got = report["totals"]
        assert report["period"] == PERIOD
        assert (D(got["capacity_hours"]), D(got["planned_hours"]), D(got["actual_hours"]),
                D(got["billable_hours"])) == (total["capacity"], total["planned"], total["actual"], total["billable"])
        assert total["actual"] > 10_000
        # Plain decimal strings a spreadsheet or chart library reads as they are: never "1.056E+4".
        assert all(re.fullmatch(r"\d+(\.\d+)?", got[k]) for k in ("capacity_hours", "planned_hours",
                                                                 "actual_hours", "billable_hours")), got
        # The demo firm plans most of its people's time and bills about as much as it planned.
        assert Decimal("0.8") < D(got["planned_utilization"]) < 1 and Decimal("0.8") < D(got["actual_utilization"]) < 1
        assert D(got["actual_utilization"]) == (total["billable"] / total["capacity"]).quantize(Decimal("0.0001"))
        assert [g["key"] for g in report["by_legal_entity"]] == ["UK01"]
        practices = {w.practice for w in FIRM.workers if w.legal_entity_code == "UK01"}
        assert {g["key"] for g in report["by_practice"]} == practices
        for group in report["by_practice"]:
            ids = {w.id for w in FIRM.workers if w.practice == group["key"]}
            assert D(group["figures"]["billable_hours"]) == sum(
                (f["billable"] for w, f in figures.items() if w in ids), Decimal(0))

        workers = await walk(s.http, "/utilization/workers", legal_entity="UK01", period=PERIOD, limit=37)
        # every UK01 worker once, in worker id order; a DE01 consultant seconded to a UK01 project counts in UK01's
        # totals above, but is listed under DE01
        employer = {w.id: w.legal_entity_code for w in FIRM.workers}
        assert [w["worker_id"] for w in workers] == sorted(w for w in figures if employer[w] == "UK01")
        assert any(employer[w] != "UK01" for w in figures)
        for item in workers:
            f = figures[item["worker_id"]]
            assert (D(item["figures"]["capacity_hours"]), D(item["figures"]["actual_hours"]),
                    D(item["figures"]["planned_hours"])) == (f["capacity"], f["actual"], f["planned"]), item

    async def test_a_practice_filter_narrows_and_the_parts_add_up(self, s: TtbStack) -> None:
        whole = await get(s.http, "/utilization", period=PERIOD)
        assert {g["key"] for g in whole["by_legal_entity"]} == set(BILLED)
        parts = Decimal(0)
        for group in whole["by_practice"]:
            narrowed = await get(s.http, "/utilization", period=PERIOD, practice=group["key"])
            assert [g["key"] for g in narrowed["by_practice"]] == [group["key"]]
            assert narrowed["totals"] == group["figures"]
            parts += D(narrowed["totals"]["actual_hours"])
            workers = await walk(s.http, "/utilization/workers", period=PERIOD, practice=group["key"], limit=200)
            assert workers and {w["practice"] for w in workers} == {group["key"]}
        assert parts == D(whole["totals"]["actual_hours"])


class TestProjects:
    async def test_margin_matches_ledger_revenue_and_hr_cost(self, s: TtbStack) -> None:
        want = Expected(s.engine).margin("US01", PERIOD)
        page = await walk(s.http, "/margin", legal_entity="US01", period=PERIOD, limit=9)
        assert [i["project"] for i in page] == sorted(want)
        for item in page:
            fig = want[item["project"]]
            assert item["revenue"] == {"amount": money(fig["revenue"]), "currency": "USD"}
            assert item["cost"]["amount"] == money(fig["cost"])
            assert D(item["margin"]["amount"]) == fig["revenue"] - fig["cost"]
        totals = (await get(s.http, "/margin", legal_entity="US01", period=PERIOD))["totals"]
        revenue = sum((f["revenue"] for f in want.values()), Decimal(0))
        assert [(t["currency"], t["revenue"]["amount"]) for t in totals] == [("USD", money(revenue))]
        assert D(totals[0]["margin_ratio"]) == ((revenue - sum((f["cost"] for f in want.values()), Decimal(0)))
                                                / revenue).quantize(Decimal("0.0001"))

    async def test_backlog_is_budget_minus_delivered_and_totals_stay_per_currency(self, s: TtbStack) -> None:
        want = Expected(s.engine)
        items = await walk(s.http, "/backlog", period=PERIOD, limit=7)
        projects = {p.external_id: p for p in FIRM.projects if p.legal_entity_code in BILLED}
        assert [i["project"] for i in items] == sorted(projects)
        delivered = {e: want.delivered(e, PERIOD) for e in BILLED}
        for item in items:
            project = projects[item["project"]]
            done = delivered[project.legal_entity_code].get(project.external_id, Decimal(0))
            assert item["contracted"] == {"amount": money(project.budget.amount), "currency": project.currency}
            assert item["delivered"]["amount"] == money(done)
            assert D(item["remaining"]["amount"]) == project.budget.amount - done
            assert item["practice"] == want.practice[project.external_id]
            assert D(item["remaining"]["amount"]) > 0  # budgets cover the months delivered so far
        totals = (await get(s.http, "/backlog", period=PERIOD))["totals"]
        assert [t["currency"] for t in totals] == ["EUR", "GBP", "USD"]  # never added across currencies
        for t in totals:
            mine = [p for p in projects.values() if p.currency == t["currency"]]
            assert D(t["contracted"]["amount"]) == sum((p.budget.amount for p in mine), Decimal(0))

    async def test_invoice_readiness_and_aging_match_the_unbilled_ledger_lines(self, s: TtbStack) -> None:
        want = Expected(s.engine)
        expected = want.readiness("UK01", PERIOD)
        items = await walk(s.http, "/invoice-readiness", legal_entity="UK01", period=PERIOD, limit=5)
        assert [i["project"] for i in items] == sorted(expected)
        assert any(D(i["held_hours"]) > 0 for i in items)  # the seeded defects hold UK01 lines
        for item in items:
            fig = expected[item["project"]]
            assert (D(item["approved_unbilled_hours"]), D(item["approved_unbilled"]["amount"]),
                    D(item["posted_uninvoiced"]["amount"]), D(item["held_hours"]), item["lines"]) == \
                (fig["hours"], fig["amount"], fig["posted"], fig["held"], fig["lines"])
            assert item["oldest_date"] == (fig["oldest"].isoformat() if fig["oldest"] else None)
        for as_of in (ANCHOR_DATE, dt.date(2027, 1, 20)):
            report = await get(s.http, "/unbilled-aging", legal_entity="UK01", period=PERIOD,
                               as_of=as_of.isoformat())
            aging = want.aging("UK01", PERIOD, as_of)
            assert report["as_of"] == as_of.isoformat()
            assert {(b["currency"], b["bucket"]): (D(b["hours"]), D(b["amount"]["amount"]))
                    for b in report["buckets"]} == aging
            assert len(report["buckets"]) == 4 * len({c for c, _ in aging})  # every bucket, zeros too


class TestInput:
    @pytest.mark.parametrize("params", [{"period": "2026-13"}, {"period": "Oct"}, {"legal_entity": "FR01"},
                                        {"limit": "0"}, {"limit": "201"}, {"cursor": "bm90LWEtY3Vyc29y"}])
    async def test_bad_parameters_are_problems_with_errors(self, s: TtbStack, params: dict[str, str]) -> None:
        for path in LISTS:
            response = await s.http.get(BASE + path, params=params)
            assert response.status_code == 422, (path, params, response.text)  # well-formed, breaks the contract
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["errors"], response.text

    async def test_a_period_without_figures_answers_empty_not_an_error(self, s: TtbStack) -> None:
        report = await get(s.http, "/utilization", period="2025-01")
        assert report["totals"]["capacity_hours"] == "0" and report["totals"]["actual_utilization"] is None
        assert (await get(s.http, "/margin", period="2025-01")) == {"items": [], "totals": [], "next_cursor": None,
                                                                "group_total": None, "rates": []}

    async def test_default_period_is_the_latest_with_figures(self, s: TtbStack) -> None:
        assert (await get(s.http, "/utilization"))["period"] == PERIOD  # the month the runs billed


class TestLegalEntityRestriction:
    @pytest.mark.parametrize("grant", [["UK01"], ["LE-UK01"]])
    async def test_a_uk01_consumer_sees_uk01_only_in_every_widget(self, s: TtbStack, grant: list[str]) -> None:
        async with consumer(s, grant) as uk:
            report = await get(uk, "/utilization", period=PERIOD)
            assert [g["key"] for g in report["by_legal_entity"]] == ["UK01"]
            assert report == await get(s.http, "/utilization", period=PERIOD, legal_entity="UK01")
            for path in LISTS:
                items = await walk(uk, path, period=PERIOD, limit=200)
                assert items and {i["legal_entity_code"] for i in items} == {"UK01"}, path
            for path in ("/backlog", "/invoice-readiness", "/margin"):
                totals = (await get(uk, path, period=PERIOD))["totals"]
                assert [t["currency"] for t in totals] == ["GBP"], path
                assert totals == (await get(s.http, path, period=PERIOD, legal_entity="UK01"))["totals"]
            aging = await get(uk, "/unbilled-aging", period=PERIOD)
            assert {b["currency"] for b in aging["buckets"]} <= {"GBP"}
            health = await get(uk, "/sync-health")
            everything = await get(s.http, "/sync-health")
            uk_projects = {p.external_id for p in FIRM.projects if p.legal_entity_code == "UK01"}
            with s.engine.connect() as conn:
                subjects = conn.execute(sa.select(exceptions.c.subject).where(exceptions.c.status == "open")).scalars()
                expected_open = sum(1 for subj in subjects if subj.partition(":")[0] in uk_projects)
            assert expected_open > 0
            assert sum(c["count"] for c in health["exceptions_by_reason"]) == expected_open
            assert sum(c["count"] for c in health["exceptions_by_age"]) == expected_open
            assert sum(c["count"] for c in everything["exceptions_by_reason"]) > expected_open
            assert health["last_good_run"] == []  # UK01's run needs attention; DE01's good run is not its to see
            for path in WIDGETS:
                response = await uk.get(BASE + path, params={"legal_entity": "US01"})
                assert response.status_code == 403, (path, response.text)
                assert response.json()["code"] == "legal_entity_forbidden"

    async def test_an_unrestricted_consumer_sees_every_entity(self, s: TtbStack) -> None:
        async with consumer(s, None) as anyone:
            report = await get(anyone, "/utilization", period=PERIOD)
            assert {g["key"] for g in report["by_legal_entity"]} == set(BILLED)
            items = await walk(anyone, "/margin", period=PERIOD, limit=200)
            assert {i["legal_entity_code"] for i in items} == set(BILLED)
            health = await get(anyone, "/sync-health")
            assert [r["run_id"] for r in health["last_good_run"] if r["process"] == "time_to_bill"] == \
                ["ttb_DE01_2026-10"]


class TestRefresh:
    async def test_refresh_is_idempotent_and_an_approval_event_moves_the_figures(self, s: TtbStack) -> None:
        async def snapshot() -> list[Any]:
            return [await get(s.http, p, period=PERIOD, limit=200) for p in WIDGETS if p != "/sync-health"] + \
                [await get(s.http, "/unbilled-aging", period=PERIOD, as_of="2026-11-02")]

        before = await snapshot()
        rt = runtime()
        ref = await load_reference(rt.erp, rt.psa, rt.hr)
        facts = BillingFacts(s.engine)
        facts.refresh(ref, "US01", PERIOD)
        facts.refresh(ref, "US01", PERIOD)
        assert await snapshot() == before

        store = s.sim("time").store
        project = "PRJ-A0001"
        index = store.project_index[project]
        entry = next(e for e in store.entries if e.project == index and e.state == 2 and e.billable
                     and e.spent_date.month == 10 and not store.workers[e.user].termination_date)
        margin_before = {i["project"]: i for i in (await get(s.http, "/margin", period=PERIOD, limit=200))["items"]}
        util_before = (await get(s.http, "/utilization", period=PERIOD))["totals"]
        s.sim("time").reapprove(entry.id, hours=entry.hours + Decimal("2"))
        event = {"specversion": "1.0", "id": f"evt-dash-{entry.id}", "source": "https://time.example/harvest",
                 "type": "psconnect.time.timesheet.approved", "time": "2026-11-02T09:00:00Z",
                 "datacontenttype": "application/json", "data": {"entry_ids": [str(entry.id)]}}
        response = await s.http.post("/process/time-to-bill/v1/events", json=event)
        assert response.status_code == 202, response.text

        rate = next(Decimal(r["rate"]) for r in s.ledger_rows(entry_id=str(entry.id)) if r["kind"] == "time")
        margin_after = {i["project"]: i for i in (await get(s.http, "/margin", period=PERIOD, limit=200))["items"]}
        assert D(margin_after[project]["revenue"]["amount"]) - D(margin_before[project]["revenue"]["amount"]) == \
            2 * rate
        util_after = (await get(s.http, "/utilization", period=PERIOD))["totals"]
        assert D(util_after["actual_hours"]) - D(util_before["actual_hours"]) == 2
        readiness = {i["project"]: i for i in await walk(s.http, "/invoice-readiness", period=PERIOD, limit=200)}
        assert D(readiness[project]["approved_unbilled"]["amount"]) == 2 * rate  # reversal + new version, net
        assert readiness[project]["lines"] == 2


class TestWorkbenchRestriction:
    """The exception workbench, the other experience API, honours the same grant: on data, not on routes."""

    async def test_a_uk01_consumer_lists_and_acts_on_uk01_exceptions_only(self, s: TtbStack) -> None:
        uk_projects = {p.external_id for p in FIRM.projects if p.legal_entity_code == "UK01"}
        with s.engine.connect() as conn:
            rows = conn.execute(sa.select(exceptions.c.id, exceptions.c.subject)).all()
        ours = {i for i, subject in rows if subject.partition(":")[0] in uk_projects}
        theirs = {i for i, _ in rows} - ours
        assert ours and theirs
        scopes = ("experience.workbench:read", "experience.workbench:write")
        async with consumer(s, ["LE-UK01"], scopes) as uk:
            seen: list[str] = []
            cursor = None
            while True:
                page = (await uk.get("/experience/workbench/v1/exceptions",
                                     params={"limit": 7, **({"cursor": cursor} if cursor else {})})).json()
                seen += [item["exception"]["id"] for item in page["items"]]
                if not (cursor := page["next_cursor"]):
                    break
            assert sorted(seen) == sorted(ours)  # every UK01 exception once, no other
            other = sorted(theirs)[0]
            with s.engine.connect() as conn:
                before = conn.execute(sa.select(exceptions.c.status).where(exceptions.c.id == other)).scalar()
            for method, path, body in (("GET", "", None), ("POST", "/comments", {"text": "peek"}),
                                       ("POST", "/assignment", {"assignee": "me@example.com"}),
                                       ("POST", "/resolution", {"resolution": "not mine"}),
                                       ("POST", "/replay", None)):
                response = await uk.request(method, f"/experience/workbench/v1/exceptions/{other}{path}", json=body)
                assert response.status_code == 404, (path, response.text)  # as if it did not exist
            mine = sorted(ours)[0]
            assert (await uk.post(f"/experience/workbench/v1/exceptions/{mine}/comments",
                                  json={"text": "looking"})).status_code == 201
        with s.engine.connect() as conn:
            assert conn.execute(sa.select(exceptions.c.status).where(exceptions.c.id == other)).scalar() == before


GROUP = "USD"
CENT = Decimal("0.01")
PERIOD_END = "2026-10-31"


async def pages(http: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every page of a list, whole (its totals, group total and rates too)."""
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        out.append(await get(http, path, **params, **({"cursor": cursor} if cursor else {})))
        if not (cursor := out[-1]["next_cursor"]):
            return out


def converted(figure: dict[str, Any], original: dict[str, Any], rates: list[dict[str, Any]]) -> Decimal:
    """A converted figure keeps its original and a listed rate (its date and source too), and is the original x the
    rate rounded half-up to the cent; its amount."""
    assert figure["original"] == original
    assert {"base": original["currency"], "quote": GROUP, "rate": figure["rate"], "date": figure["rate_date"],
            "source": figure["source"]} in rates, figure
    assert figure["amount"]["currency"] == GROUP
    amount = D(figure["amount"]["amount"])
    assert amount == (D(original["amount"]) * D(figure["rate"])).quantize(CENT, ROUND_HALF_UP), figure
    return amount


def rates_of(rates: list[dict[str, Any]], pairs: set[tuple[str, str]], on: str) -> dict[str, dict[str, Any]]:
    """The rates listed: one per (legal entity, currency) converted, into the group currency, dated on or before
    `on`, from a known source; by currency (the demo firm's entities each bill in their own)."""
    assert len(rates) == len(pairs) and {r["base"] for r in rates} == {cur for _, cur in pairs}, (rates, pairs)
    for rate in rates:
        assert rate["quote"] == GROUP and rate["date"] <= on and D(rate["rate"]) > 0, rate
        assert rate["source"] == "identity" if rate["base"] == GROUP else rate["source"] in ("erp", "rate_table")
    return {r["base"]: r for r in rates}


async def receivable_invoices(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Every invoice the receivables process has read back from the ERPs."""
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        response = await http.get("/process/receivables/v1/invoices",
                                  params={"limit": 200, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        out += response.json()["items"]
        if not (cursor := response.json()["next_cursor"]):
            return out


def without(item: dict[str, Any], *names: str) -> dict[str, Any]:
    """`item` as it reads without a group currency: its converted figures null."""
    return {**item, **dict.fromkeys(names, None)}


class TestGroupCurrency:
    """`?currency=` on backlog, invoice readiness and unbilled aging: each figure at its entity's rate, then added."""

    BACKLOG = ("converted_contracted", "converted_delivered")
    READINESS = ("converted_approved_unbilled", "converted_posted_uninvoiced", "converted_drafted_unposted")

    async def test_backlog_converts_each_project_and_adds_the_converted_figures(self, s: TtbStack) -> None:
        got = await pages(s.http, "/backlog", period=PERIOD, currency=GROUP, limit=40)
        items = [i for p in got for i in p["items"]]
        group, rates = got[0]["group_total"], got[0]["rates"]
        assert all(p["group_total"] == group and p["rates"] == rates for p in got)  # over every page, on each
        rates_of(rates, {(i["legal_entity_code"], i["contracted"]["currency"]) for i in items}, PERIOD_END)
        assert {i["contracted"]["currency"] for i in items} == {"EUR", "GBP", "USD"}
        sums = {"contracted": Decimal(0), "delivered": Decimal(0)}
        for item in items:
            for field in sums:
                sums[field] += converted(item[f"converted_{field}"], item[field], rates)
        assert group["currency"] == GROUP and sums["contracted"] > 0 and sums["delivered"] > 0
        assert (D(group["contracted"]["amount"]), D(group["delivered"]["amount"]),
                D(group["remaining"]["amount"])) == (sums["contracted"], sums["delivered"],
                                                     sums["contracted"] - sums["delivered"])
        # Without a currency the same figures, nothing converted.
        plain = await pages(s.http, "/backlog", period=PERIOD, limit=40)
        assert [i for p in plain for i in p["items"]] == [without(i, *self.BACKLOG) for i in items]
        assert all(p["group_total"] is None and p["rates"] == [] and p["totals"] == got[0]["totals"] for p in plain)

    async def test_readiness_converts_each_project_and_every_draft_and_adds_them(self, s: TtbStack) -> None:
        poll = await s.http.post("/process/receivables/v1/runs", json={"full": False},
                                 headers={"Idempotency-Key": str(uuid.uuid4())})
        assert poll.status_code == 202, poll.text  # the drafts the billing runs left in the ERPs, read back
        assert (await s.stack.wait_for(f"/process/receivables/v1/runs/{poll.json()['id']}"))["status"] == "succeeded"
        got = await pages(s.http, "/invoice-readiness", period=PERIOD, currency=GROUP, limit=25)
        items = [i for p in got for i in p["items"]]
        group, rates, totals = got[0]["group_total"], got[0]["rates"], got[0]["totals"]
        assert all(p["group_total"] == group and p["rates"] == rates for p in got)
        by_currency = rates_of(rates, {(i["legal_entity_code"], i["approved_unbilled"]["currency"]) for i in items},
                               PERIOD_END)
        assert len({i["approved_unbilled"]["currency"] for i in items}) >= 2
        fields = ("approved_unbilled", "posted_uninvoiced", "drafted_unposted")
        sums = dict.fromkeys(fields, Decimal(0))
        for item in items:
            for field in fields:
                sums[field] += converted(item[f"converted_{field}"], item[field], rates)
        assert sums["approved_unbilled"] > 0
        assert (D(group["approved_unbilled"]["amount"]), D(group["posted_uninvoiced"]["amount"])) == \
            (sums["approved_unbilled"], sums["posted_uninvoiced"])
        # Drafts count as in `totals`: every draft of the period in a currency listed, its project's converted once.
        drafts: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
        for invoice in await receivable_invoices(s.http):
            if invoice["period"] == PERIOD and invoice["status"] in ("draft", "approved"):
                drafts[(invoice["project_external_id"], invoice["legal_entity_code"], invoice["currency"])] += \
                    D(invoice["total"]["amount"])
        listed = {t["currency"] for t in totals}
        expected = sum(((units * D(by_currency[cur]["rate"])).quantize(CENT, ROUND_HALF_UP)
                        for (_, _, cur), units in drafts.items() if cur in listed), Decimal(0))
        assert expected > 0 and D(group["drafted_unposted"]["amount"]) == expected
        assert sums["drafted_unposted"] <= expected
        assert group["currency"] == GROUP and group["lines"] == sum(t["lines"] for t in totals)
        for hours in ("approved_unbilled_hours", "held_hours"):
            assert D(group[hours]) == sum((D(t[hours]) for t in totals), Decimal(0))
        plain = await pages(s.http, "/invoice-readiness", period=PERIOD, limit=25)
        assert [i for p in plain for i in p["items"]] == [without(i, *self.READINESS) for i in items]
        assert all(p["group_total"] is None and p["rates"] == [] and p["totals"] == totals for p in plain)

    async def test_aging_converts_each_entitys_share_of_a_bucket_and_adds_the_shares(self, s: TtbStack) -> None:
        as_of = "2027-01-20"
        report = await get(s.http, "/unbilled-aging", period=PERIOD, as_of=as_of, currency=GROUP)
        want = {e: Expected(s.engine).aging(e, PERIOD, dt.date.fromisoformat(as_of)) for e in BILLED}
        pairs = {(e, cur) for e, figures in want.items() for cur, _ in figures}
        rates = report["rates"]
        rates_of(rates, pairs, as_of)
        assert [b["bucket"] for b in report["group_buckets"]] == ["0-30", "31-60", "61-90", "90+"]
        per_currency: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        nonzero: set[str] = set()
        for bucket in report["group_buckets"]:
            assert bucket["currency"] == GROUP
            assert sorted((p["legal_entity_code"], p["converted"]["original"]["currency"]) for p in bucket["parts"]) \
                == sorted(pairs)  # every entity and currency present, zeros too
            total = Decimal(0)
            for part in bucket["parts"]:
                original = part["converted"]["original"]
                assert D(original["amount"]) == want[part["legal_entity_code"]][(original["currency"],
                                                                                  bucket["bucket"])][1]
                total += converted(part["converted"], original, rates)
                per_currency[(original["currency"], bucket["bucket"])] += D(original["amount"])
                if D(original["amount"]):
                    nonzero.add(original["currency"])
            assert D(bucket["amount"]["amount"]) == total
            assert D(bucket["hours"]) == sum((D(b["hours"]) for b in report["buckets"]
                                              if b["bucket"] == bucket["bucket"]), Decimal(0))
        assert len(nonzero) >= 2  # converted from at least two currencies
        # The parts of a currency add up to its own bucket: nothing left out, nothing counted twice.
        assert {(b["currency"], b["bucket"]): D(b["amount"]["amount"]) for b in report["buckets"]} == per_currency
        plain = await get(s.http, "/unbilled-aging", period=PERIOD, as_of=as_of)
        assert plain == {**report, "group_buckets": [], "rates": []}

    @pytest.mark.parametrize("path", ["/backlog", "/invoice-readiness", "/unbilled-aging"])
    async def test_a_currency_without_a_rate_is_a_422_not_an_unconverted_sum(self, s: TtbStack, path: str) -> None:
        response = await s.http.get(BASE + path, params={"period": PERIOD, "as_of": "2027-01-20", "currency": "XXX"}
                                    if path == "/unbilled-aging" else {"period": PERIOD, "currency": "XXX"})
        assert response.status_code == 422 and response.json()["code"] == "rate_unavailable", response.text
        assert response.headers["content-type"].startswith("application/problem+json")

    async def test_a_uk01_consumer_converts_and_adds_uk01_only(self, s: TtbStack) -> None:
        params = {"period": PERIOD, "currency": GROUP, "limit": 200}
        aging = {"period": PERIOD, "currency": GROUP, "as_of": "2027-01-20"}
        async with consumer(s, ["UK01"]) as uk:
            for path, query in (("/backlog", params), ("/invoice-readiness", params), ("/unbilled-aging", aging)):
                mine = await get(uk, path, **query)
                assert [(r["base"], r["quote"]) for r in mine["rates"]] == [("GBP", GROUP)], path
                assert mine == await get(s.http, path, **query, legal_entity="UK01"), path
                everyone = await get(s.http, path, **query)
                if path == "/unbilled-aging":
                    assert {p["legal_entity_code"] for b in mine["group_buckets"] for p in b["parts"]} == {"UK01"}
                    assert mine["group_buckets"] != everyone["group_buckets"]
                else:
                    assert mine["items"] and {i["legal_entity_code"] for i in mine["items"]} == {"UK01"}, path
                    assert mine["group_total"] != everyone["group_total"], path
                assert len(everyone["rates"]) > 1
