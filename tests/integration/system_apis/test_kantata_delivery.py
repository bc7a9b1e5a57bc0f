"""Kantata PSA additions against the seeded simulator: staffing, rate cards, users, time, timesheet approvals."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from contracts.billing import RateCard
from contracts.common import Money
from contracts.correlation import correlation_id
from contracts.psa import PsaProjectUpsert
from contracts.workforce import PsaUserUpsert
from system_apis._internal.faults import Fault
from system_apis._internal.http import CircuitOpenError, VendorRejected, VendorUnavailable
from system_apis.demo_delivery import CLOSED_PROJECT_INDEX, MISPRICED_PROJECT_INDEX
from system_apis.demo_firm import HOME_ENTITIES, firm_for
from system_apis.domains.psa import psa_router
from system_apis.kantata import BASE_URL, KantataClient, KantataPsa
from system_apis.kantata.simulator import KantataSimulator
from tests.integration.system_apis.vendor_kit import PACE, Sleeps, domain_api, vendor_http

WEEK = (dt.date(2026, 10, 5), dt.date(2026, 10, 9))
FIRM = firm_for(HOME_ENTITIES)  # what a simulator seeds unless told its entities


@pytest.fixture(scope="module")
def seeded() -> KantataSimulator:
    return KantataSimulator(time_period=WEEK)


@pytest.fixture
def sim(seeded: KantataSimulator) -> KantataSimulator:
    seeded.reset()
    return seeded


@pytest.fixture
async def client(sim: KantataSimulator, sleeps: Sleeps) -> AsyncIterator[KantataClient]:
    async with vendor_http(sim.app, BASE_URL) as http:
        yield KantataClient(http, retry=PACE, sleep=sleeps)


@pytest.fixture
async def api(client: KantataClient) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with domain_api(psa_router(KantataPsa(client))) as test_client:
        yield test_client


async def all_items(api: AsyncTestClient[Litestar], path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        answer = await api.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        items += body["items"]
        cursor = body.get("next_cursor")
        if not cursor:
            return items


def user_body(**changes: Any) -> dict[str, Any]:
    data = PsaUserUpsert(name="Nadia Quinn", email="nadia.quinn@meridian.example", role="senior_consultant",
                         practice="technology", cost_rate=Money(amount=Decimal("115.50"), currency="USD"), active=True)
    return {**msgspec.to_builtins(data), **changes}


class TestSeededProjects:
    async def test_every_firm_project_is_a_workspace_with_its_rate_card(self, api: AsyncTestClient[Litestar]) -> None:
        projects = await all_items(api, "/system/psa/v1/projects", limit=7)
        by_code = {p["external_id"]: p for p in projects}
        assert set(by_code) == {p.external_id for p in FIRM.projects}
        for seed in FIRM.projects:
            assert by_code[seed.external_id]["rate_card_id"] == seed.rate_card_id
        closed = FIRM.projects[CLOSED_PROJECT_INDEX].external_id
        assert by_code[closed]["status"] == "completed"
        assert {p["status"] for code, p in by_code.items() if code != closed} == {"active"}

    async def test_upsert_sets_and_keeps_the_rate_card(self, sim: KantataSimulator,
                                                       api: AsyncTestClient[Litestar]) -> None:
        body = msgspec.to_builtins(PsaProjectUpsert(
            title="Rate card test", client_name="Contoso Holdings", billing_terms="time_and_materials",
            budget=Money(amount=Decimal("1000.00"), currency="GBP"), rate_card_id="RC-UK01-2026"))
        created = await api.put("/system/psa/v1/projects/by-external-id/PRJ-RC-1", json=body)
        assert created.status_code == 201 and created.json()["rate_card_id"] == "RC-UK01-2026"
        again = await api.put("/system/psa/v1/projects/by-external-id/PRJ-RC-1", json={**body, "rate_card_id": None})
        assert again.status_code == 200 and again.json()["rate_card_id"] == "RC-UK01-2026"
        assert sim.count("workspace", "PRJ-RC-1") == 1

    async def test_unknown_rate_card_is_a_422_problem_and_writes_nothing(self, sim: KantataSimulator,
                                                                         api: AsyncTestClient[Litestar]) -> None:
        body = msgspec.to_builtins(PsaProjectUpsert(
            title="Bad card", client_name="Contoso Holdings", billing_terms="time_and_materials",
            budget=Money(amount=Decimal("1000.00"), currency="USD"), rate_card_id="RC-XX99-2026"))
        answer = await api.put("/system/psa/v1/projects/by-external-id/PRJ-RC-2", json=body)
        assert answer.status_code == 422 and answer.json()["code"] == "unknown_rate_card"
        assert sim.count("workspace", "PRJ-RC-2") == 0


class TestAssignments:
    async def test_paging_covers_the_firm_staffing(self, api: AsyncTestClient[Litestar]) -> None:
        items = await all_items(api, "/system/psa/v1/assignments", limit=150)
        seconded = sum(1 for p in FIRM.projects for a in p.assignments if a.seconded)  # SECONDMENTS
        assert len(items) == sum(len(p.assignments) for p in FIRM.projects) == 2 * len(FIRM.workers) + seconded
        assert len({i["id"] for i in items}) == len(items)

    async def test_one_projects_staffing_with_hr_ids_roles_and_hours(self, api: AsyncTestClient[Litestar]) -> None:
        seed = FIRM.projects[0]
        items = await all_items(api, "/system/psa/v1/assignments", project_external_id=seed.external_id)
        workers = {w.id: w for w in FIRM.workers}
        got = {(i["worker_id"], i["worker_email"], i["role"], i["start_date"], i["end_date"],
                Decimal(i["planned_hours"])) for i in items}
        assert got == {(a.worker_id, workers[a.worker_id].email, a.role, a.start_date.isoformat(),
                        a.end_date.isoformat(), a.planned_hours) for a in seed.assignments}
        assert {i["project_external_id"] for i in items} == {seed.external_id}

    async def test_unknown_project_has_no_assignments(self, api: AsyncTestClient[Litestar]) -> None:
        answer = await api.get("/system/psa/v1/assignments", params={"project_external_id": "PRJ-NOPE"})
        assert answer.json() == {"items": [], "next_cursor": None} or answer.json()["items"] == []


class TestRateCards:
    async def test_list_by_legal_entity_and_get_by_canonical_id(self, api: AsyncTestClient[Litestar]) -> None:
        seed = next(c for c in FIRM.rate_cards if c.legal_entity_code == "DE01")
        listed = await all_items(api, "/system/psa/v1/rate-cards", legal_entity_code="DE01")
        assert [c["id"] for c in listed] == [seed.id]
        got = msgspec.convert((await api.get(f"/system/psa/v1/rate-cards/{seed.id}")).json(), RateCard)
        assert (got.legal_entity_code, got.currency, got.valid_from) == ("DE01", "EUR", seed.valid_from)
        assert {line.role: line.hourly_rate for line in got.lines} == \
            {line.role: line.hourly_rate for line in seed.lines}

    async def test_all_cards_and_unknown_entity(self, api: AsyncTestClient[Litestar]) -> None:
        assert {c["id"] for c in await all_items(api, "/system/psa/v1/rate-cards", limit=1)} == \
            {c.id for c in FIRM.rate_cards}
        assert await all_items(api, "/system/psa/v1/rate-cards", legal_entity_code="FR01") == []

    async def test_unknown_rate_card_is_404(self, api: AsyncTestClient[Litestar]) -> None:
        answer = await api.get("/system/psa/v1/rate-cards/RC-FR01-2026")
        assert answer.status_code == 404 and answer.headers["content-type"].startswith("application/problem+json")


class TestUsers:
    async def test_created_then_updated_exactly_one_user(self, sim: KantataSimulator,
                                                         api: AsyncTestClient[Litestar]) -> None:
        created = await api.put("/system/psa/v1/users/by-external-id/W-99001", json=user_body())
        assert created.status_code == 201
        assert created.json() | {"id": "x"} == {**user_body(), "id": "x", "external_id": "W-99001"}
        updated = await api.put("/system/psa/v1/users/by-external-id/W-99001",
                                json=user_body(role="manager", active=False))
        assert updated.status_code == 200 and updated.json()["id"] == created.json()["id"]
        assert (updated.json()["role"], updated.json()["active"]) == ("manager", False)
        assert sim.count("user", "W-99001") == 1

    async def test_seeded_worker_is_updated_not_duplicated(self, sim: KantataSimulator,
                                                           api: AsyncTestClient[Litestar]) -> None:
        worker = FIRM.workers[5]
        body = user_body(name=worker.name, email=worker.email, role=worker.role, practice=worker.practice,
                         cost_rate=msgspec.to_builtins(worker.cost_rate))
        answer = await api.put(f"/system/psa/v1/users/by-external-id/{worker.id}", json=body)
        assert answer.status_code == 200 and sim.count("user", worker.id) == 1

    async def test_email_of_another_user_is_a_409_conflict(self, api: AsyncTestClient[Litestar]) -> None:
        # The PSA's state, not a malformed request (issue 12, fault 6): the contract declares the 409.
        answer = await api.put("/system/psa/v1/users/by-external-id/W-99002",
                               json=user_body(email=FIRM.workers[0].email))
        assert answer.status_code == 409 and answer.json()["code"] == "email_taken"
        assert answer.json()["errors"] == [{"pointer": "/email", "detail": "already taken"}]

    async def test_sub_cent_cost_rate_is_refused_before_any_write(self, sim: KantataSimulator,
                                                                  api: AsyncTestClient[Litestar]) -> None:
        answer = await api.put("/system/psa/v1/users/by-external-id/W-99003",
                               json=user_body(cost_rate={"amount": "10.005", "currency": "USD"}))
        assert answer.status_code == 422 and sim.count("user", "W-99003") == 0


class TestTimeEntries:
    async def test_approved_time_of_the_week_across_pages(self, sim: KantataSimulator,
                                                          api: AsyncTestClient[Litestar]) -> None:
        items = await all_items(api, "/system/psa/v1/time-entries", status="approved", limit=200,
                                **{"from": WEEK[0].isoformat(), "to": WEEK[1].isoformat()})
        approved = [e for e in sim.tables["time_entries"].values()
                    if e["approved"] and WEEK[0].isoformat() <= e["date_performed"] <= WEEK[1].isoformat()]
        assert len(items) == len(approved) > 200
        assert {i["status"] for i in items} == {"approved"} and {i["source"] for i in items} == {"kantata"}
        assert {i["project_code"] for i in items} <= {p.external_id for p in FIRM.projects}
        assert all(i["approved_at"] for i in items)

    async def test_the_approved_filter_is_sent_only_when_true(self, sim: KantataSimulator,
                                                              api: AsyncTestClient[Litestar]) -> None:
        sim.requests.clear()
        drafts = await all_items(api, "/system/psa/v1/time-entries", status="draft", limit=200)
        seen = [r.query for r in sim.requests if r.path.endswith("/time_entries.json")]
        assert seen and all("approved" not in q for q in seen)  # approved=false would select approved time
        assert drafts and {d["status"] for d in drafts} == {"draft"}

    async def test_hours_and_rates_map_exactly(self, api: AsyncTestClient[Litestar]) -> None:
        items = await all_items(api, "/system/psa/v1/time-entries", limit=200,
                                **{"from": WEEK[0].isoformat(), "to": WEEK[1].isoformat()})
        # two entries a weekday; a seconded consultant's hour on another entity's project (SECONDMENTS)
        assert {Decimal(i["hours"]) for i in items} == {Decimal(h) for h in ("6", "5.5", "6.5", "2", "2.5", "1.5", "1")}
        cards = {c.id: c for c in FIRM.rate_cards}
        roles = {w.email: w.role for w in FIRM.workers}
        projects = {p.external_id: p for p in FIRM.projects}
        for item in items:
            if not item["billable"]:
                assert item["billable_rate"] is None
                continue
            if Decimal(item["billable_rate"]["amount"]) == Decimal("1.00"):  # the seeded rate-card defect
                assert item["project_code"] == FIRM.projects[MISPRICED_PROJECT_INDEX].external_id
                continue
            card = cards[projects[item["project_code"]].rate_card_id]
            expected = next(line.hourly_rate for line in card.lines if line.role == roles[item["user_email"]])
            assert msgspec.convert(item["billable_rate"], Money) == expected


class TestTimesheetApprovals:
    async def _pending(self, api: AsyncTestClient[Litestar]) -> dict[str, Any]:
        return (await all_items(api, "/system/psa/v1/timesheet-submissions", status="pending", limit=200))[0]

    async def test_approving_marks_its_entries_approved_and_a_replay_changes_nothing(
            self, sim: KantataSimulator, api: AsyncTestClient[Litestar]) -> None:
        pending = await self._pending(api)
        path = f"/system/psa/v1/timesheet-submissions/{pending['id']}/decision"
        answer = await api.post(path, json={"decision": "approved", "comment": "ok"})
        assert answer.status_code == 200 and answer.json()["status"] == "approved" and answer.json()["decided_at"]
        assert all(sim.tables["time_entries"][i]["approved"] for i in pending["time_entry_ids"])
        replay = await api.post(path, json={"decision": "approved"})
        assert replay.status_code == 200 and replay.json() == answer.json()
        opposite = await api.post(path, json={"decision": "rejected"})
        assert opposite.status_code == 409 and opposite.json()["code"] == "already_decided"

    async def test_a_resubmitted_rejected_timesheet_is_a_new_submission(
            self, sim: KantataSimulator, client: KantataClient, api: AsyncTestClient[Litestar]) -> None:
        pending = await self._pending(api)
        rejected = await api.post(f"/system/psa/v1/timesheet-submissions/{pending['id']}/decision",
                                  json={"decision": "rejected", "comment": "wrong project"})
        assert rejected.json()["status"] == "rejected"
        entry = sim.tables["time_entries"][pending["time_entry_ids"][0]]
        assert not entry["approved"]
        page = await client.create_timesheet_submission({
            "workspace_id": entry["workspace_id"], "user_id": entry["user_id"],
            "start_date": pending["period_start"], "end_date": pending["period_end"]})
        again = page.records[0]
        assert again["id"] != pending["id"] and sorted(again["time_entry_ids"]) == sorted(pending["time_entry_ids"])
        approved = await api.post(f"/system/psa/v1/timesheet-submissions/{again['id']}/decision",
                                  json={"decision": "approved"})
        assert approved.json()["status"] == "approved"
        old = (await api.post(f"/system/psa/v1/timesheet-submissions/{pending['id']}/decision",
                              json={"decision": "rejected"})).json()
        assert old["status"] == "rejected"  # the old submission's decision stands on its own

    async def test_unknown_submission_is_404_and_bad_decision_is_422(self, api: AsyncTestClient[Litestar]) -> None:
        assert (await api.post("/system/psa/v1/timesheet-submissions/999999/decision",
                               json={"decision": "approved"})).status_code == 404
        assert (await api.post("/system/psa/v1/timesheet-submissions/abc/decision",
                               json={"decision": "approved"})).status_code == 404
        assert (await api.post("/system/psa/v1/timesheet-submissions/1/decision",
                               json={"decision": "maybe"})).status_code == 422


class TestFaults:
    async def test_429_on_a_list_is_retried_after_retry_after(self, sim: KantataSimulator, sleeps: Sleeps,
                                                              api: AsyncTestClient[Litestar]) -> None:
        sim.faults.add(Fault(kind="rate_limit", count=1, retry_after=1, path="rate_cards"))
        assert (await api.get("/system/psa/v1/rate-cards")).status_code == 200
        assert max(sleeps.waits) >= 1

    async def test_5xx_and_concurrency_limit_retried_on_reads(self, sim: KantataSimulator,
                                                              api: AsyncTestClient[Litestar]) -> None:
        sim.faults.add(Fault(kind="server_error", count=1, status=502, path="workspace_resources"))
        sim.faults.add(Fault(kind="concurrency_limit", count=1, path="workspace_allocations"))
        answer = await api.get("/system/psa/v1/assignments", params={"project_external_id": "PRJ-A0001"})
        assert answer.status_code == 200 and answer.json()["items"]

    async def test_business_error_on_decision_is_422_without_retry(self, sim: KantataSimulator,
                                                                   client: KantataClient) -> None:
        pending = next(s for s in sim.tables["timesheet_submissions"].values() if s["status"] == "pending")
        sim.faults.add(Fault(kind="business_error", count=1, path="approve", message="Approver lacks permission"))
        with pytest.raises(VendorRejected) as caught:
            await client.decide_timesheet_submission(pending["id"], "approve")
        assert caught.value.status == 422 and client.http.calls == 1

    async def test_breaker_opens_after_repeated_failures(self, sim: KantataSimulator, client: KantataClient) -> None:
        sim.faults.add(Fault(kind="server_error", status=503, path="time_entries"))
        for _ in range(3):
            with pytest.raises((VendorUnavailable, CircuitOpenError)):  # exhausted retries, then the open breaker
                await client.list_time_entries()
        with pytest.raises(CircuitOpenError):
            await client.list_time_entries()

    async def test_correlation_id_reaches_the_simulator(self, sim: KantataSimulator,
                                                        client: KantataClient) -> None:
        token = correlation_id.set("corr-kantata-delivery")
        try:
            await client.list_rate_cards()
        finally:
            correlation_id.reset(token)
        assert sim.requests[-1].headers.get("x-correlation-id") == "corr-kantata-delivery"
