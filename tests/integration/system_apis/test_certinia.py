"""The Certinia client and the PSA and time system APIs against the in-memory org, over Salesforce's wire format.

Certinia publishes no OpenAPI document: the wire format follows Salesforce's REST API reference and
Certinia's PSA data dictionary (cited in system_apis/certinia/mapping.py and client.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from litestar import Router

from foundation.retry import RetryPolicy
from system_apis._internal.faults import Fault
from system_apis._internal.force_rest import API_PATH, ForceSession
from system_apis._internal.http import CircuitBreaker, CircuitOpenError, VendorRejected, VendorUnavailable
from system_apis.certinia import BASE_URL, CertiniaClient, CertiniaPsa, CertiniaTime, create_router, create_systems
from system_apis.certinia.client import session_from
from system_apis.certinia.simulator import CLIENT_ID, CLIENT_SECRET, CertiniaSimulator
from system_apis.domains.psa import PsaSystem, psa_router
from system_apis.domains.time import TimeEntryQuery, TimeSystem, time_router
from system_apis.registry import Connection
from tests.integration.system_apis.vendor_kit import Clock, Sleeps, domain_api, vendor_http

PSA = "/system/psa/v1"
TIME = "/system/time/v1"
OCTOBER = (dt.date(2026, 10, 1), dt.date(2026, 10, 31))
SEEDED = (dt.date(2026, 10, 1), dt.date(2026, 10, 13))  # two weeks and a bit: partial weeks at both ends
PROJECT_BODY: dict[str, Any] = {
    "title": "Maple Analytics rollout", "client_name": "Maple Analytics Inc.",
    "budget": {"amount": "250000.00", "currency": "EUR"}, "billing_terms": "mixed",
    "start_date": "2026-11-01", "due_date": "2027-04-30", "rate_card_id": "RC-DE01-2026",
    "erp_project_id": "PRJ-C0001",
    "milestones": [{"name": "Discovery", "due_date": "2026-12-15", "amount": {"amount": "50000.00", "currency": "EUR"}},
                   {"name": "Go-live", "due_date": "2027-04-15", "amount": {"amount": "75000.00", "currency": "EUR"}}]}
USER_BODY = {"name": "Amélie Tremblay", "email": "amelie.tremblay@meridian.example", "role": "senior_consultant",
             "practice": "Data", "cost_rate": {"amount": "88.50", "currency": "EUR"}, "active": True}


@pytest.fixture
def clock() -> Clock:
    clock = Clock()
    clock.now = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC).timestamp()
    return clock


@pytest.fixture
def sim(clock: Clock) -> CertiniaSimulator:
    # Small batches force nextRecordsUrl paging; a one-hour session lets the tests make it lapse.
    return CertiniaSimulator(legal_entities=("DE01",), time_period=SEEDED, batch_size=7, session_seconds=3600,
                             clock=clock)


@pytest.fixture
async def http(sim: CertiniaSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with vendor_http(sim.app, BASE_URL) as client:
        yield client


@pytest.fixture
def session(http: httpx.AsyncClient, clock: Clock) -> ForceSession:
    return ForceSession("certinia", http, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, session_seconds=3600,
                        refresh_margin=300, clock=clock)


@pytest.fixture
def client(http: httpx.AsyncClient, session: ForceSession, sleeps: Sleeps) -> CertiniaClient:
    return CertiniaClient(http, session=session, sleep=sleeps, retry=RetryPolicy(max_attempts=3))


@pytest.fixture
async def api(client: CertiniaClient) -> AsyncIterator[httpx.AsyncClient]:
    async with domain_api(create_router_on(client)) as c:
        yield c


def create_router_on(client: CertiniaClient) -> Router:
    """The package's router shape, on a client the test configured (OAuth session, recorded sleeps)."""
    return Router(path="/", route_handlers=[psa_router(CertiniaPsa(client)), time_router(CertiniaTime(client))])


def rest_paths(sim: CertiniaSimulator) -> list[str]:
    return [r.path for r in sim.received]


def sim_hours(sim: CertiniaSimulator, *, status: str | None = None, project_code: str | None = None,
              billable: bool | None = None) -> Decimal:
    """Hours on the org's timecards dated in October, straight from the records."""
    projects = {r["Id"]: r["External_Id__c"] for r in sim.records("pse__Proj__c")}
    days = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
    total = Decimal(0)
    for card in sim.records("pse__Timecard_Header__c"):
        if status is not None and card["pse__Status__c"] != status:
            continue
        if project_code is not None and projects[card["pse__Project__c"]] != project_code:
            continue
        if billable is not None and card["pse__Billable__c"] != billable:
            continue
        start = dt.date.fromisoformat(card["pse__Start_Date__c"])
        for offset in range(7):
            day = start + dt.timedelta(days=offset)
            if OCTOBER[0] <= day <= OCTOBER[1]:
                total += Decimal(str(card.get(f"pse__{days[day.weekday()]}_Hours__c") or 0))
    return total


async def walk(api: httpx.AsyncClient, path: str, params: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        response = await api.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= params.get("limit", 50)
        items += body["items"]
        pages += 1
        cursor = body.get("next_cursor")
        if not cursor:
            return items, pages


class TestSeed:
    def test_only_the_named_entities_are_seeded(self, clock: Clock) -> None:
        acquired = CertiniaSimulator(clock=clock)  # by default the acquired CA01, the entity on its own PSA
        assert {r["External_Id__c"] for r in acquired.records("pse__Region__c")} == {"CA01"}
        assert acquired.count("pse__Proj__c") > 0
        both = CertiniaSimulator(legal_entities=("DE01", "UK01"), clock=clock)
        regions = {r["External_Id__c"] for r in both.records("pse__Region__c")}
        assert regions == {"DE01", "UK01"}
        de = CertiniaSimulator(legal_entities=("DE01",), clock=clock)
        assert 0 < de.count("pse__Proj__c") < both.count("pse__Proj__c")
        assert de.count("pse__Timecard_Header__c") == 0  # no time period, no time


    async def test_the_demo_rate_defect_is_priced_by_the_time_system(self, clock: Clock) -> None:
        us = CertiniaSimulator(legal_entities=("US01",), time_period=(dt.date(2026, 10, 1), dt.date(2026, 10, 9)),
                               clock=clock)
        async with vendor_http(us.app, BASE_URL) as http:
            time = CertiniaTime(CertiniaClient(http))
            page = await time.list_time_entries(TimeEntryQuery(project_code="PRJ-A0004"), 500, None)
        rates = {e.billable_rate.amount for e in page.items if e.billable_rate is not None}
        assert Decimal("1.00") in rates and len(rates) > 1  # some days carry the wrong rate, the rest the card's


class TestQueryPaging:
    async def test_client_follows_next_records_url_until_done(self, sim: CertiniaSimulator,
                                                              client: CertiniaClient) -> None:
        records = [r async for r in client.query("SELECT Id, Email FROM Contact ORDER BY Id")]
        assert len(records) == sim.count("Contact") > 7
        assert len({r["Id"] for r in records}) == len(records)
        assert sum("/query/" in p for p in rest_paths(sim)) == (len(records) - 1) // 7

    async def test_projects_walk_across_pages(self, sim: CertiniaSimulator, api: httpx.AsyncClient) -> None:
        items, pages = await walk(api, f"{PSA}/projects", {"limit": 3})
        assert pages == -(-sim.count("pse__Proj__c") // 3)
        assert len({p["id"] for p in items}) == len(items) == sim.count("pse__Proj__c")
        fixed = next(p for p in items if p["billing_terms"] == "fixed_fee")
        assert [m["name"] for m in fixed["milestones"]] == ["Milestone 1", "Milestone 2"]
        assert Decimal(fixed["budget"]["amount"]) > 0  # rolled up from the approved budget

    async def test_time_entries_walk_splits_weeks_into_days_exactly(self, sim: CertiniaSimulator,
                                                                    api: httpx.AsyncClient) -> None:
        project = next(r["External_Id__c"] for r in sim.records("pse__Proj__c"))
        items, pages = await walk(api, f"{TIME}/time-entries", {"limit": 4, "status": "approved",
                                                                "project_code": project, "from": "2026-10-01",
                                                                "to": "2026-10-31"})
        assert pages > 2
        assert len({e["id"] for e in items}) == len(items)
        assert all(e["status"] == "approved" and e["project_code"] == project for e in items)
        assert all("2026-10-01" <= e["date"] <= "2026-10-31" for e in items)
        assert sum(Decimal(e["hours"]) for e in items) == sim_hours(sim, status="Approved", project_code=project)

    async def test_psa_time_entries_and_time_domain_agree(self, sim: CertiniaSimulator,
                                                          api: httpx.AsyncClient) -> None:
        psa, _ = await walk(api, f"{PSA}/time-entries", {"limit": 200, "from": "2026-10-05", "to": "2026-10-09"})
        time, _ = await walk(api, f"{TIME}/time-entries", {"limit": 500, "from": "2026-10-05", "to": "2026-10-09"})
        assert sorted(e["id"] for e in psa) == sorted(e["id"] for e in time)
        assert {e["status"] for e in time} >= {"approved", "submitted"}

    async def test_forged_cursor_is_a_problem_not_soql(self, sim: CertiniaSimulator, api: httpx.AsyncClient) -> None:
        response = await api.get(f"{PSA}/projects", params={"cursor": "eyJhZnRlciI6IicgT1IgSWQgIT0gJyJ9"})
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "invalid_cursor"
        assert sim.received == []


class TestSession:
    async def test_one_token_serves_until_shortly_before_it_lapses(self, sim: CertiniaSimulator, clock: Clock,
                                                                   client: CertiniaClient,
                                                                   session: ForceSession) -> None:
        assert await client.check()
        assert await client.check()
        assert sim.tokens_issued == 1
        clock.now += 3600 - 299  # inside the refresh margin: renewed before the org would refuse it
        assert await client.check()
        assert sim.tokens_issued == 2
        assert not any(r.path.endswith("/limits") and "sim-secret" in str(r.headers) for r in sim.received)

    async def test_a_revoked_session_is_renewed_once_on_401(self, sim: CertiniaSimulator,
                                                            client: CertiniaClient) -> None:
        assert await client.check()
        sim.revoke_sessions()
        limits = await client.limits()
        assert limits["DailyApiRequests"]["Max"] == 100_000
        assert sim.tokens_issued == 2
        assert [r.path for r in sim.received].count(f"{API_PATH}/limits") == 3  # ok, 401, ok

    async def test_a_session_lapsing_without_notice_is_renewed(self, sim: CertiniaSimulator, clock: Clock,
                                                               http: httpx.AsyncClient, sleeps: Sleeps) -> None:
        # The org's timeout is shorter than the connection believes: the 401 is what tells.
        session = ForceSession("certinia", http, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                               session_seconds=7200, clock=clock)
        client = CertiniaClient(http, session=session, sleep=sleeps)
        assert await client.check()
        clock.now += 3601
        assert await client.check()
        assert sim.tokens_issued == 2

    async def test_wrong_secret_is_refused_without_calling_the_api(self, sim: CertiniaSimulator,
                                                                   http: httpx.AsyncClient) -> None:
        session = ForceSession("certinia", http, client_id=CLIENT_ID, client_secret="wrong")
        client = CertiniaClient(http, session=session)
        with pytest.raises(VendorRejected) as caught:
            await client.limits()
        assert caught.value.code == "invalid_client"
        assert "wrong" not in str(caught.value)
        assert sim.received == []

    async def test_request_without_token_is_refused_like_salesforce(self, http: httpx.AsyncClient) -> None:
        raw = await http.get(f"{API_PATH}/limits")
        assert raw.status_code == 401
        assert raw.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID",
                               "fields": []}]

    async def test_create_systems_builds_both_domains_on_one_oauth_connection(self, sim: CertiniaSimulator,
                                                                              http: httpx.AsyncClient) -> None:
        connection = Connection(name="ca-certinia", vendor="certinia", base_url=BASE_URL,
                                credentials={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
        systems = create_systems(http, connection)
        psa, time = systems["psa"], systems["time"]
        assert isinstance(psa, CertiniaPsa) and isinstance(time, CertiniaTime)
        as_psa: PsaSystem = psa
        as_time: TimeSystem = time
        assert (await as_psa.list_projects(None, 2, None)).items
        assert (await as_time.list_projects(2, None)).items
        assert sim.tokens_issued == 1  # one client, one session for both domains
        assert session_from(http, {"token": "x"}) is None


class TestProjects:
    async def test_upsert_creates_then_updates_one_project(self, sim: CertiniaSimulator,
                                                           api: httpx.AsyncClient) -> None:
        first = await api.put(f"{PSA}/projects/by-external-id/PRJ-C0001", json=PROJECT_BODY)
        assert first.status_code == 201, first.text
        again = await api.put(f"{PSA}/projects/by-external-id/PRJ-C0001",
                              json={**PROJECT_BODY, "budget": {"amount": "260000.00", "currency": "EUR"}})
        assert again.status_code == 200
        project = again.json()
        assert project["id"] == first.json()["id"]
        assert project["budget"] == {"amount": "260000.00", "currency": "EUR"}
        assert project["billing_terms"] == "mixed" and project["status"] == "active"
        assert project["client_name"] == "Maple Analytics Inc."
        assert project["rate_card_id"] == "RC-DE01-2026" and project["erp_project_id"] == "PRJ-C0001"
        assert [m["name"] for m in project["milestones"]] == ["Discovery", "Go-live"]
        assert sim.count("pse__Proj__c", "PRJ-C0001") == 1
        assert sim.count("pse__Budget__c", "PRJ-C0001:budget") == 1
        assert sum(m["pse__Project__c"] == project["id"] for m in sim.records("pse__Milestone__c")) == 2
        assert sim.count("Account", "client:maple analytics inc.") == 1
        found = (await api.get(f"{PSA}/projects", params={"external_id": "PRJ-C0001"})).json()["items"]
        assert [p["id"] for p in found] == [project["id"]]
        assert (await api.get(f"{PSA}/projects/{project['id']}")).json() == project

    async def test_a_write_retried_after_a_5xx_creates_one_project(self, sim: CertiniaSimulator,
                                                                   api: httpx.AsyncClient) -> None:
        sim.faults.add(Fault(kind="server_error", status=503, method="PATCH", path="pse__Proj__c", count=1))
        response = await api.put(f"{PSA}/projects/by-external-id/PRJ-C0002", json=PROJECT_BODY)
        assert response.status_code == 201
        assert sim.count("pse__Proj__c", "PRJ-C0002") == 1

    async def test_unrepresentable_project_changes_nothing(self, sim: CertiniaSimulator,
                                                           api: httpx.AsyncClient) -> None:
        before = sim.count("pse__Proj__c")
        body = {**PROJECT_BODY, "milestones": [{"name": "X", "due_date": "2026-12-01",
                                                "amount": {"amount": "1.00", "currency": "USD"}}]}
        response = await api.put(f"{PSA}/projects/by-external-id/PRJ-C0003", json=body)
        assert response.status_code == 422
        assert response.json()["errors"][0]["pointer"] == "/milestones/0/amount/currency"
        unknown = await api.put(f"{PSA}/projects/by-external-id/PRJ-C0003", json={**PROJECT_BODY,
                                                                                  "rate_card_id": "RC-XX"})
        assert unknown.status_code == 422 and unknown.json()["code"] == "unknown_rate_card"
        assert sim.count("pse__Proj__c") == before
        assert not any(r.method == "PATCH" for r in sim.received)

    @pytest.mark.parametrize("key", ["a0lCa0000000ZZZIAA", "PRJ-A0001", "x' OR Name != '"])
    async def test_unknown_project_is_a_404_problem(self, api: httpx.AsyncClient, key: str) -> None:
        response = await api.get(f"{PSA}/projects/{key}")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")

    async def test_salesforce_error_list_becomes_the_vendor_error(self, client: CertiniaClient,
                                                                  api: httpx.AsyncClient) -> None:
        with pytest.raises(VendorRejected) as caught:
            await client.upsert("pse__Proj__c", "External_Id__c", "PRJ-C0009", {"Name": "X", "Budget": 1})
        assert caught.value.status == 400 and caught.value.code == "INVALID_FIELD"
        assert caught.value.body == [{"message": "No such column 'Budget' on sobject of type pse__Proj__c",
                                      "errorCode": "INVALID_FIELD", "fields": ["Budget"]}]
        with pytest.raises(VendorRejected) as read_only:
            await client.upsert("pse__Proj__c", "External_Id__c", "PRJ-C0009", {"Name": "X", "pse__Bookings__c": 1})
        assert read_only.value.code == "INVALID_FIELD_FOR_INSERT_UPDATE"


class TestStaffingRatesUsers:
    async def test_assignments_of_one_project(self, sim: CertiniaSimulator, api: httpx.AsyncClient) -> None:
        project = sim.records("pse__Proj__c")[0]["External_Id__c"]
        items, _ = await walk(api, f"{PSA}/assignments", {"limit": 2, "project_external_id": project})
        assert items and all(a["project_external_id"] == project for a in items)
        assert all(a["worker_email"].endswith("@meridian.example") and a["worker_id"].startswith("W-") for a in items)
        assert all(a["start_date"] <= a["end_date"] and Decimal(a["planned_hours"]) > 0 for a in items)
        everyone, _ = await walk(api, f"{PSA}/assignments", {"limit": 50})
        assert len(everyone) == sim.count("pse__Assignment__c")

    async def test_rate_cards_group_role_rates(self, api: httpx.AsyncClient) -> None:
        cards = (await api.get(f"{PSA}/rate-cards", params={"legal_entity_code": "DE01"})).json()["items"]
        assert [c["id"] for c in cards] == ["RC-DE01-2026"]
        card = (await api.get(f"{PSA}/rate-cards/RC-DE01-2026")).json()
        assert card == cards[0]
        assert card["currency"] == "EUR" and len(card["lines"]) == 5
        assert (await api.get(f"{PSA}/rate-cards", params={"legal_entity_code": "UK01"})).json()["items"] == []
        assert (await api.get(f"{PSA}/rate-cards/RC-NOPE")).status_code == 404

    async def test_user_upsert_is_idempotent(self, sim: CertiniaSimulator, api: httpx.AsyncClient) -> None:
        first = await api.put(f"{PSA}/users/by-external-id/W-90001", json=USER_BODY)
        assert first.status_code == 201, first.text
        again = await api.put(f"{PSA}/users/by-external-id/W-90001", json={**USER_BODY, "active": False})
        assert again.status_code == 200
        user = again.json()
        assert user["id"] == first.json()["id"]
        assert user == {**user, "name": "Amélie Tremblay", "role": "senior_consultant", "practice": "Data",
                        "cost_rate": {"amount": "88.50", "currency": "EUR"}, "active": False,
                        "external_id": "W-90001"}
        assert sim.count("Contact", "W-90001") == 1


class TestTimesheets:
    async def test_approving_a_submitted_timecard_approves_its_days(self, sim: CertiniaSimulator,
                                                                    api: httpx.AsyncClient) -> None:
        pending = (await api.get(f"{PSA}/timesheet-submissions", params={"status": "pending", "limit": 1})).json()
        submission = pending["items"][0]
        decided = await api.post(f"{PSA}/timesheet-submissions/{submission['id']}/decision",
                                 json={"decision": "approved", "comment": "ok"})
        assert decided.status_code == 200, decided.text
        assert decided.json()["status"] == "approved" and decided.json()["decided_at"]
        entry = (await api.get(f"{TIME}/time-entries/{submission['time_entry_ids'][0]}")).json()
        assert entry["status"] == "approved"
        replay = await api.post(f"{PSA}/timesheet-submissions/{submission['id']}/decision",
                                json={"decision": "approved"})
        assert replay.status_code == 200 and replay.json() == decided.json()
        opposite = await api.post(f"{PSA}/timesheet-submissions/{submission['id']}/decision",
                                  json={"decision": "rejected"})
        assert opposite.status_code == 409 and opposite.json()["code"] == "already_decided"

    async def test_a_decision_racing_an_approval_elsewhere_is_a_conflict(self, sim: CertiniaSimulator,
                                                                         http: httpx.AsyncClient,
                                                                         api: httpx.AsyncClient) -> None:
        pending = (await api.get(f"{PSA}/timesheet-submissions", params={"status": "pending"})).json()["items"][0]

        async def another_approver_first(request: httpx.Request) -> None:
            if request.method == "PATCH" and pending["id"] in request.url.path:
                card = sim.org.find("pse__Timecard_Header__c", pending["id"])
                sim.org.update("pse__Timecard_Header__c", card, {"pse__Status__c": "Approved"})

        http.event_hooks["request"].append(another_approver_first)
        response = await api.post(f"{PSA}/timesheet-submissions/{pending['id']}/decision",
                                  json={"decision": "rejected"})
        assert response.status_code == 409 and response.json()["code"] == "already_decided"
        assert sim.org.find("pse__Timecard_Header__c", pending["id"])["pse__Status__c"] == "Approved"

    async def test_a_refused_decision_keeps_the_orgs_reason(self, sim: CertiniaSimulator,
                                                            api: httpx.AsyncClient) -> None:
        pending = (await api.get(f"{PSA}/timesheet-submissions", params={"status": "pending"})).json()["items"][0]
        sim.faults.add(Fault(kind="business_error", method="PATCH", message="The time period is closed."))
        response = await api.post(f"{PSA}/timesheet-submissions/{pending['id']}/decision",
                                  json={"decision": "approved"})
        assert response.status_code == 422 and response.json()["code"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
        assert sim.org.find("pse__Timecard_Header__c", pending["id"])["pse__Status__c"] == "Submitted"

    async def test_unknown_entry_and_submission_are_404(self, api: httpx.AsyncClient) -> None:
        assert (await api.get(f"{TIME}/time-entries/a0tCa0000000ZZZIAA-20261001")).status_code == 404
        assert (await api.get(f"{TIME}/time-entries/12345")).status_code == 404
        response = await api.post(f"{PSA}/timesheet-submissions/a0tCa0000000ZZZIAA/decision",
                                  json={"decision": "approved"})
        assert response.status_code == 404


class TestTimeDomain:
    async def test_uninvoiced_report_is_approved_billable_unbilled_time(self, sim: CertiniaSimulator,
                                                                        api: httpx.AsyncClient) -> None:
        rows = (await api.get(f"{TIME}/reports/uninvoiced", params={"from": "2026-10-01", "to": "2026-10-31",
                                                                     "limit": 100})).json()["items"]
        assert sum(Decimal(r["uninvoiced_hours"]) for r in rows) == sim_hours(sim, status="Approved", billable=True)
        assert all(r["currency"] == "EUR" and Decimal(r["uninvoiced_amount"]["amount"]) > 0 for r in rows)

    async def test_projects_and_updated_since(self, sim: CertiniaSimulator, clock: Clock,
                                              api: httpx.AsyncClient) -> None:
        projects, _ = await walk(api, f"{TIME}/projects", {"limit": 4})
        assert len(projects) == sim.count("pse__Proj__c")
        assert all(p["code"].startswith("PRJ-") and p["currency"] == "EUR" for p in projects)
        clock.now += 60
        since = dt.datetime.fromtimestamp(clock.now, dt.UTC).isoformat()
        assert (await api.get(f"{TIME}/time-entries", params={"updated_since": since})).json()["items"] == []
        pending = (await api.get(f"{PSA}/timesheet-submissions", params={"status": "pending"})).json()["items"][0]
        await api.post(f"{PSA}/timesheet-submissions/{pending['id']}/decision", json={"decision": "rejected"})
        changed = (await api.get(f"{TIME}/time-entries", params={"updated_since": since})).json()["items"]
        assert sorted(e["id"] for e in changed) == sorted(pending["time_entry_ids"])
        assert {e["status"] for e in changed} == {"rejected"}

    async def test_an_early_year_updated_since_is_every_change_not_a_malformed_query(
            self, sim: CertiniaSimulator, api: httpx.AsyncClient) -> None:
        """Year 87 reaches SOQL as 0087 (strftime wrote `87`: MALFORMED_QUERY, a 422 a fuzzer found)."""
        for path in (f"{TIME}/time-entries", f"{TIME}/expenses"):
            response = await api.get(path, params={"updated_since": "0087-02-20T02:20:55.061261Z", "limit": 5})
            assert response.status_code == 200, response.text
            everything = await api.get(path, params={"limit": 5})
            assert response.json()["items"] == everything.json()["items"], path


class TestFaults:
    async def test_rate_limit_waits_at_least_retry_after(self, sim: CertiniaSimulator, client: CertiniaClient,
                                                         sleeps: Sleeps) -> None:
        sim.faults.add(Fault(kind="rate_limit", retry_after=1, count=1))
        assert (await CertiniaTime(client).list_projects(2, None)).items
        assert len(sleeps.waits) == 1 and sleeps.waits[0] >= 1

    async def test_server_error_storm_retried_on_reads(self, sim: CertiniaSimulator, client: CertiniaClient) -> None:
        assert await client.check()
        calls = client.http.calls
        sim.faults.add(Fault(kind="server_error", status=503, count=2))
        assert (await CertiniaPsa(client).list_projects(None, 5, None)).items
        assert client.http.calls - calls >= 3

    async def test_timeout_is_transient(self, sim: CertiniaSimulator, client: CertiniaClient) -> None:
        assert await client.check()
        sim.faults.add(Fault(kind="timeout", count=1))
        calls = client.http.calls
        assert await client.check()
        assert client.http.calls - calls == 2

    async def test_persistent_throttle_is_a_503_problem_with_retry_after(self, sim: CertiniaSimulator,
                                                                        api: httpx.AsyncClient) -> None:
        sim.faults.add(Fault(kind="concurrency_limit", retry_after=7))
        response = await api.get(f"{PSA}/projects")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "7"
        assert response.json()["code"] == "vendor_unavailable"

    async def test_business_error_is_not_retried_and_keeps_its_code(self, sim: CertiniaSimulator,
                                                                    client: CertiniaClient,
                                                                    api: httpx.AsyncClient) -> None:
        sim.faults.add(Fault(kind="business_error", method="PATCH", message="Time period is closed"))
        response = await api.put(f"{PSA}/projects/by-external-id/PRJ-C0004", json=PROJECT_BODY)
        assert response.status_code == 422
        assert response.json()["code"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
        assert "Time period is closed" in response.json()["detail"]
        assert sum(r.method == "PATCH" for r in sim.received) == 1
        assert sim.count("pse__Proj__c", "PRJ-C0004") == 0

    async def test_breaker_opens_and_stops_calling(self, sim: CertiniaSimulator, client: CertiniaClient) -> None:
        assert await client.check()
        client.http.breaker = CircuitBreaker("certinia", threshold=6, cooldown=60)
        sim.faults.add(Fault(kind="server_error", status=500))
        for _ in range(2):
            with pytest.raises(VendorUnavailable):
                await client.limits()
        assert client.http.breaker.state == "open"
        reached = len(sim.received)
        with pytest.raises(CircuitOpenError):
            await client.limits()
        assert len(sim.received) == reached

    async def test_control_routes_count_and_reset(self, sim: CertiniaSimulator, http: httpx.AsyncClient,
                                                  api: httpx.AsyncClient) -> None:
        await api.put(f"{PSA}/projects/by-external-id/PRJ-C0005", json=PROJECT_BODY)
        census = (await http.get("/__sim__/count", params={"type": "pse__Proj__c", "external_id": "PRJ-C0005"}))
        assert census.json()["count"] == 1
        assert (await http.post("/__sim__/reset")).status_code == 204
        assert sim.count("pse__Proj__c", "PRJ-C0005") == 0


async def test_package_router_serves_both_domains_on_a_fixed_token(sim: CertiniaSimulator,
                                                                   http: httpx.AsyncClient) -> None:
    async with domain_api(create_router(http)) as api:
        assert (await api.get(f"{PSA}/projects", params={"limit": 1})).status_code == 200
        assert (await api.get(f"{TIME}/projects", params={"limit": 1})).status_code == 200
    assert sim.tokens_issued == 0  # the fixed token of embedded mode; no session
