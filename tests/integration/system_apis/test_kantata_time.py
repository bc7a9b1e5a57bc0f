"""Kantata as a time system: what the shared journeys (`test_captured_expenses.py`, the vendor swap) cannot see.

Canonical pages cut across Kantata's numbered pages without losing or repeating a record, the cursor
carries its query, statuses come from the expense report submission, amounts keep the currency's minor
unit, a retried page is the same page, and the uninvoiced report and project list agree with the seed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from system_apis._internal.faults import Fault
from system_apis.demo_delivery import DEMO_PERIOD, defect_expenses, expenses
from system_apis.demo_firm import HOME_ENTITIES, firm_for
from system_apis.domains.psa import psa_router
from system_apis.domains.time import time_router
from system_apis.kantata import BASE_URL, KantataClient, KantataPsa, KantataTime
from system_apis.kantata._expense_mapping import expense_of
from system_apis.kantata.mapping import MappingError
from system_apis.kantata.simulator import KantataSimulator
from tests.integration.system_apis.vendor_kit import PACE, Sleeps, domain_api, vendor_http

TIME = "/system/time/v1"
ENTITIES = ("DE01",)
Api = AsyncTestClient[Litestar]


@pytest.fixture(scope="module")
def seeded() -> KantataSimulator:
    return KantataSimulator(legal_entities=ENTITIES, demo_time=True)


@pytest.fixture
def sim(seeded: KantataSimulator) -> KantataSimulator:
    seeded.faults.clear()
    seeded.requests = []
    return seeded


@pytest.fixture
async def api(sim: KantataSimulator, sleeps: Sleeps) -> AsyncIterator[Api]:
    async with vendor_http(sim.app, BASE_URL) as http, \
            domain_api(time_router(KantataTime(KantataClient(http, retry=PACE, sleep=sleeps)))) as client:
        yield client


async def _pages(api: Api, path: str, **params: str) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        response = await api.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        pages.append(response.json()["items"])
        cursor = response.json().get("next_cursor")
        if not cursor:
            return pages


def _kantata_reads(sim: KantataSimulator, collection: str) -> list[dict[str, str]]:
    return [r.query for r in sim.requests if r.method == "GET" and r.path == f"/api/v1/{collection}.json"]


class TestPaging:
    @pytest.mark.parametrize("limit", [37, 250, 450])
    async def test_pages_cut_across_kantata_pages_and_lose_or_repeat_nothing(self, sim: KantataSimulator, api: Api,
                                                                             limit: int) -> None:
        pages = await _pages(api, f"{TIME}/expenses", limit=str(limit))
        listed = [e["id"] for page in pages for e in page]
        assert all(len(page) <= limit for page in pages) and all(len(page) == limit for page in pages[:-1])
        assert sorted(listed) == sorted(sim.tables["expenses"]) and len(set(listed)) == len(listed)
        reads = _kantata_reads(sim, "expenses")
        assert {q["per_page"] for q in reads} == {str(min(limit, 200))}  # Kantata's cap, and one size throughout

    async def test_the_cursor_carries_its_query(self, api: Api) -> None:
        first = await api.get(f"{TIME}/expenses", params={"status": "approved", "limit": "50"})
        cursor = first.json()["next_cursor"]
        later = await api.get(f"{TIME}/expenses", params={"status": "submitted", "cursor": cursor, "limit": "50"})
        assert later.status_code == 200 and later.json()["items"]
        assert {e["status"] for e in later.json()["items"]} == {"approved"}

    async def test_a_foreign_or_tampered_cursor_is_refused(self, api: Api) -> None:
        entries = await api.get(f"{TIME}/time-entries", params={"limit": "5"})
        foreign = await api.get(f"{TIME}/expenses", params={"cursor": entries.json()["next_cursor"]})
        assert foreign.status_code == 422 and foreign.json()["code"] == "invalid_cursor"
        assert foreign.headers["content-type"].startswith("application/problem+json")
        assert (await api.get(f"{TIME}/expenses", params={"cursor": "garbage"})).json()["code"] == "invalid_cursor"

    async def test_time_entries_page_the_same_way_and_filter_by_project(self, sim: KantataSimulator,
                                                                       api: Api) -> None:
        project = firm_for(ENTITIES).projects[0].external_id
        pages = await _pages(api, f"{TIME}/time-entries", limit="300", status="approved", project_code=project)
        listed = [e for page in pages for e in page]
        assert listed and {e["project_code"] for e in listed} == {project} and {e["status"] for e in listed} == \
            {"approved"}
        assert all(q.get("workspace_id") for q in _kantata_reads(sim, "time_entries"))  # filtered by Kantata
        assert (await api.get(f"{TIME}/time-entries", params={"project_code": "PRJ-NONE"})).json()["items"] == []
        # A comma is a list separator to Kantata, never part of a code: two projects' entries must not leak in.
        other = firm_for(ENTITIES).projects[1].external_id
        both = await api.get(f"{TIME}/time-entries", params={"project_code": f"{project},{other}"})
        assert both.status_code == 200 and both.json()["items"] == []

    async def test_the_psa_finds_a_project_by_its_exact_code_too(self, sim: KantataSimulator) -> None:
        """The same reference lookup serves the PSA: `A,B` names no project, where Kantata would read two."""
        first, second = (p.external_id for p in firm_for(ENTITIES).projects[:2])
        async with vendor_http(sim.app, BASE_URL) as http, \
                domain_api(psa_router(KantataPsa(KantataClient(http, retry=PACE)))) as psa:
            one = await psa.get("/system/psa/v1/projects", params={"external_id": first})
            assert [p["external_id"] for p in one.json()["items"]] == [first]
            both = await psa.get("/system/psa/v1/projects", params={"external_id": f"{first},{second}"})
            assert both.status_code == 200 and both.json()["items"] == []

    async def test_an_instant_without_an_offset_is_read_as_utc(self, api: Api) -> None:
        listed = [e for page in await _pages(api, f"{TIME}/expenses", limit="500") for e in page]
        latest = max(dt.datetime.fromisoformat(e["updated_at"]) for e in listed)
        naive = latest.astimezone(dt.UTC).replace(tzinfo=None).isoformat()
        response = await api.get(f"{TIME}/expenses", params={"updated_since": naive, "limit": "500"})
        assert response.status_code == 200
        assert {e["id"] for e in response.json()["items"]} == \
            {e["id"] for e in listed if dt.datetime.fromisoformat(e["updated_at"]) >= latest}

    async def test_a_retried_page_is_the_same_page(self, sim: KantataSimulator, api: Api, sleeps: Sleeps) -> None:
        clean = await api.get(f"{TIME}/expenses", params={"limit": "120"})
        sim.faults.add(Fault(kind="server_error", count=2, path=r"/expenses"))
        retried = await api.get(f"{TIME}/expenses", params={"limit": "120"})
        assert sim.faults.injected == 2 and retried.json() == clean.json()
        sim.faults.add(Fault(kind="server_error", path=r"/expenses"))
        down = await api.get(f"{TIME}/expenses", params={"limit": "120"})
        assert down.status_code in (502, 503) and down.headers["content-type"].startswith("application/problem+json")


class TestExpenses:
    async def test_statuses_come_from_the_expense_report_submission(self, sim: KantataSimulator, api: Api) -> None:
        listed = [e for page in await _pages(api, f"{TIME}/expenses", limit="500") for e in page]
        by_id = {e["id"]: e for e in listed}
        submissions = sim.tables["expense_report_submissions"]
        for eid, record in sim.tables["expenses"].items():
            submission = submissions.get(str(record["active_submission_id"]))
            expected = {"approved": "approved", "pending": "submitted", "rejected": "rejected", None: "draft"}[
                submission["status"] if submission else None]
            assert by_id[eid]["status"] == expected
            assert (by_id[eid]["approved_at"] is not None) is (expected == "approved")
        # Seeded as the firm's shared account computes them (`demo_firm.default_accounts`), kept to DE01's projects.
        home, mine = firm_for(HOME_ENTITIES), {p.external_id for p in firm_for(ENTITIES).projects}
        seeds = [s for s in [*expenses(home.projects, home.workers, *DEMO_PERIOD),
                             *defect_expenses(home.projects, home.workers)] if s.project_external_id in mine]
        assert {e["status"] for e in listed} == {s.status for s in seeds} and len(listed) == len(seeds)

    async def test_an_unapproved_expense_is_not_listed_as_approved_and_a_changed_one_shows_its_change(
            self, sim: KantataSimulator, api: Api) -> None:
        approved = (await api.get(f"{TIME}/expenses", params={"status": "approved", "limit": "1"})).json()["items"][0]
        record = sim.tables["expenses"][approved["id"]]
        submission = sim.tables["expense_report_submissions"][record["active_submission_id"]]
        before = submission["status"]
        submission["status"] = "rejected"
        try:
            again = await api.get(f"{TIME}/expenses/{approved['id']}")
            assert again.json()["status"] == "rejected" and again.json()["approved_at"] is None
            approved_ids = {e["id"] for page in await _pages(api, f"{TIME}/expenses", status="approved",
                                                              limit="500") for e in page}
            assert approved["id"] not in approved_ids
        finally:
            submission["status"] = before
        assert (await api.get(f"{TIME}/expenses/abc")).status_code == 404
        assert (await api.get(f"{TIME}/expenses/99999999")).status_code == 404

    async def test_a_project_without_expense_approvals_bills_its_unsubmitted_expenses(
            self, sim: KantataSimulator, api: Api) -> None:
        """Kantata's `approved` filter lists them (no approval needed); they must read as approved, not draft."""
        record = next(e for e in sim.tables["expenses"].values() if e["active_submission_id"] is not None)
        workspace = sim.tables["workspaces"][record["workspace_id"]]
        submission_id = record["active_submission_id"]
        before = {e["id"] for page in await _pages(api, f"{TIME}/expenses", status="approved", limit="500")
                  for e in page}
        record["active_submission_id"] = None  # never submitted
        try:
            assert (await api.get(f"{TIME}/expenses/{record['id']}")).json()["status"] == "draft"
            workspace["require_expense_approvals"] = False
            read = (await api.get(f"{TIME}/expenses/{record['id']}")).json()
            assert read["status"] == "approved" and read["approved_at"] is None
            after = {e["id"] for page in await _pages(api, f"{TIME}/expenses", status="approved", limit="500")
                     for e in page}
            assert record["id"] in after and before <= after
        finally:
            record["active_submission_id"] = submission_id
            workspace["require_expense_approvals"] = True

    def test_minor_units_follow_the_currency_base_unit_and_the_receipt_is_the_attachment(self) -> None:
        record = {"id": 7, "date": "2026-10-05", "category": "Travel", "amount_in_cents": 12345, "currency": "JPY",
                  "currency_base_unit": 1, "is_billable": True, "is_invoiced": True, "user_id": 3,
                  "workspace_id": 9, "receipt_id": 55, "updated_at": "2026-10-06T08:00:00Z",
                  "active_submission_id": 4}
        expense = expense_of(record, user={"email_address": "a@b.example"}, project_code="PRJ-1",
                             submission={"id": 4, "status": "approved", "resolved_at": "2026-10-07T09:00:00Z"})
        assert expense.amount.amount == Decimal(12345) and expense.amount.currency == "JPY"
        assert expense.receipt_url == f"{BASE_URL}/api/v1/attachments/55" and expense.is_billed
        assert expense.approved_at == dt.datetime(2026, 10, 7, 9, tzinfo=dt.UTC) and expense.units is None
        assert expense_of({**record, "receipt_id": None, "currency": "EUR", "currency_base_unit": 100},
                          user=None, submission=None, project_code="PRJ-1").amount.amount == Decimal("123.45")
        with pytest.raises(MappingError):
            expense_of(record, user=None, submission={"id": 4, "status": "escalated"}, project_code="PRJ-1")
        with pytest.raises(MappingError):
            expense_of({**record, "amount_in_cents": "12.5"}, user=None, submission=None, project_code="PRJ-1")


class TestProjectsAndUninvoiced:
    async def test_projects_carry_their_code_client_and_billability(self, api: Api) -> None:
        listed = {p["code"]: p for page in await _pages(api, f"{TIME}/projects", limit="7") for p in page}
        firm = firm_for(ENTITIES)
        accounts = {a.id: a.name for a in firm.accounts}
        assert set(listed) == {p.external_id for p in firm.projects}
        for seed in firm.projects:
            project = listed[seed.external_id]
            assert project["client_name"] == accounts[seed.account_id] and project["currency"] == seed.currency
            assert project["is_active"] is (seed.status != "closed") and project["is_billable"] is True

    async def test_uninvoiced_time_is_the_approved_billable_time_on_no_invoice(self, sim: KantataSimulator,
                                                                              api: Api) -> None:
        start, end = DEMO_PERIOD
        report = await api.get(f"{TIME}/reports/uninvoiced", params={"from": start.isoformat(),
                                                                     "to": end.isoformat(), "limit": "100"})
        rows = {r["project_code"]: r for r in report.json()["items"]}
        codes = {r["subject_id"]: r["service_model_ref"] for r in sim.tables["external_references"].values()
                 if r["subject_type"] == "Workspace" and r["service_name"] == "psconnect"}
        expected: dict[str, Decimal] = {}
        for entry in sim.tables["time_entries"].values():
            if entry["approved"] and entry["billable"] and not entry["invoice_id"] and \
                    start.isoformat() <= entry["date_performed"] <= end.isoformat():
                code = codes[entry["workspace_id"]]
                expected[code] = expected.get(code, Decimal(0)) + Decimal(entry["time_in_minutes"]) / 60
        assert {c: Decimal(r["uninvoiced_hours"]) for c, r in rows.items()} == expected
        invoiced = next(e for e in sim.tables["time_entries"].values() if e["approved"] and e["billable"])
        invoiced["invoice_id"] = "77"
        try:
            after = await api.get(f"{TIME}/reports/uninvoiced", params={"from": start.isoformat(),
                                                                        "to": end.isoformat(), "limit": "100"})
            code = codes[invoiced["workspace_id"]]
            row = next(r for r in after.json()["items"] if r["project_code"] == code)
            assert Decimal(row["uninvoiced_hours"]) == expected[code] - Decimal(invoiced["time_in_minutes"]) / 60
            assert Decimal(row["uninvoiced_amount"]["amount"]) < Decimal(rows[code]["uninvoiced_amount"]["amount"])
        finally:
            invoiced["invoice_id"] = None
