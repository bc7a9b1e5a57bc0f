"""Harvest expenses against the Harvest simulator: the wire shape (spec `Expense`, `ExpenseCategory`), mapping edge
cases (unit-priced categories, receipts, currencies, approval flags), filters, paging, and reads under faults.

The shared journey (`test_captured_expenses.py`) checks what the canonical routes answer; this file checks what
crosses the wire and what the shared test cannot see.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from functools import cache
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from contracts.common import Money
from contracts.time import Expense
from system_apis._internal.faults import Fault
from system_apis.demo_delivery import DEMO_PERIOD, MILEAGE_RATE
from system_apis.domains.time import TimeEntryQuery, time_router
from system_apis.harvest import BASE_URL, HarvestClient, HarvestTime
from system_apis.harvest import _wire as wire
from system_apis.harvest.mapping import expense_to_canonical
from system_apis.harvest.simulator import HarvestSimulator
from tests.integration.system_apis.test_harvest import Recording, _json_schema, asgi, check_request, operation, spec
from tests.integration.system_apis.vendor_kit import PACE, Sleeps, domain_api, vendor_http

TIME = "/system/time/v1"
HEADERS = {"Authorization": "Bearer t", "Harvest-Account-Id": "1000001", "User-Agent": "test (t@example.com)"}
DEFECT_NO_RECEIPT, DEFECT_CLOSED = "EX-00001-20261006-91", "EX-00001-20260827-95"
MILES = "EX-00212-20261027"
"""Worker 212's expense of October 27th: Mileage, 54 miles at 0.70 on a GBP project, no receipt
(see `demo_delivery.expenses`)."""


@pytest.fixture(scope="module")
def seeded() -> HarvestSimulator:
    return HarvestSimulator(requests_per_window=None)


@pytest.fixture
def sim(seeded: HarvestSimulator) -> HarvestSimulator:
    seeded.reset()
    return seeded


@pytest.fixture
def recording(sim: HarvestSimulator) -> Recording:
    return Recording(asgi(sim))


@pytest.fixture
async def http(sim: HarvestSimulator, recording: Recording) -> AsyncIterator[httpx.AsyncClient]:
    async with vendor_http(sim.app, BASE_URL, transport=recording) as client:
        yield client


@pytest.fixture
def client(http: httpx.AsyncClient, sleeps: Sleeps) -> HarvestClient:
    return HarvestClient(http, retry=PACE, sleep=sleeps)


@pytest.fixture
def time_api(client: HarvestClient) -> HarvestTime:
    return HarvestTime(client)


@pytest.fixture
async def api(time_api: HarvestTime) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with domain_api(time_router(time_api)) as test_client:
        yield test_client


@cache
def _components() -> dict[str, Any]:
    """The spec's components with cursor paging's null `page` allowed on the two expense lists, as it is on the
    lists `test_harvest.py` checks (https://help.getharvest.com/api-v2/introduction/overview/pagination/)."""
    schemas = copy.deepcopy(spec()["components"])
    for name in ("Expenses", "ExpenseCategories"):
        schemas["schemas"][name]["properties"]["page"]["nullable"] = True
    converted: dict[str, Any] = _json_schema(schemas)
    return converted


def check_response(request: httpx.Request, status: int, body: bytes) -> None:
    op = operation(request.method, request.url.path)
    answer = op["responses"].get(status) or op["responses"].get(str(status)) or op["responses"]["default"]
    schema = _json_schema(answer["content"]["application/json"]["schema"])
    jsonschema.validate(msgspec.json.decode(body), {**schema, "components": _components()})


async def _all(time_api: HarvestTime, query: TimeEntryQuery, limit: int) -> tuple[list[Expense], int]:
    items: list[Expense] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await time_api.list_expenses(query, limit, cursor)
        assert len(page.items) <= limit
        items += page.items
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            return items, pages


class TestWire:
    async def test_every_expense_request_and_response_matches_the_harvest_spec(
            self, sim: HarvestSimulator, client: HarvestClient, time_api: HarvestTime, recording: Recording) -> None:
        query = TimeEntryQuery(start=dt.date(2026, 10, 1), end=dt.date(2026, 10, 9), status="approved")
        listed, pages = await _all(time_api, query, 100)
        assert pages >= 3 and listed  # numbered first page, cursor pages, numbered last page
        await _all(time_api, TimeEntryQuery(project_code="PRJ-A0002", updated_since=dt.datetime(2026, 1, 1,
                                                                                                tzinfo=dt.UTC)), 5)
        await time_api.get_expense(str(sim.expense_id(MILES)))
        await time_api.get_expense(str(sim.expense_id(DEFECT_NO_RECEIPT)))
        assert [c async for c in client.iter_expense_categories()]
        assert [e async for e in client.iter_expenses(user_id=3_100_000, client_id=5_700_000, is_billed=False)]
        with pytest.raises(Exception, match="Not found"):
            await client.get_expense(1)
        paths = {r.url.path for r, _, _ in recording.exchanges}
        assert {"/v2/expenses", "/v2/expense_categories"} <= paths
        assert {s for _, s, _ in recording.exchanges} == {200, 404}
        for request, status, body in recording.exchanges:
            check_request(request)
            check_response(request, status, body)
        middle = [msgspec.json.decode(b) for r, s, b in recording.exchanges
                  if r.url.path == "/v2/expenses" and "cursor" in r.url.params]
        assert any(m["page"] is None and m["next_page"] is None for m in middle)

    async def test_a_mileage_expense_on_the_wire(self, sim: HarvestSimulator, http: httpx.AsyncClient) -> None:
        raw = (await http.get(f"/v2/expenses/{sim.expense_id(MILES)}", headers=HEADERS)).json()
        assert raw["expense_category"]["name"] == "Mileage" and raw["expense_category"]["unit_name"] == "mile"
        assert raw["expense_category"]["unit_price"] == "0.70"  # a string inside an expense, as the spec types it
        assert raw["units"] == 54 and raw["total_cost"] == 37.8
        assert raw["receipt"] is None and raw["invoice"] is None
        assert raw["project"]["code"] == "PRJ-A0002" and raw["client"]["currency"] == "GBP"
        assert raw["is_closed"] is True and raw["is_locked"] is True
        categories = (await http.get("/v2/expense_categories", headers=HEADERS)).json()["expense_categories"]
        mileage = next(c for c in categories if c["name"] == "Mileage")
        assert mileage["unit_price"] == 0.7 and mileage["unit_name"] == "mile"  # a number in the category list
        assert {c["name"] for c in categories} >= {"Travel", "Lodging", "Meals", "Mileage", "Software",
                                                    "Entertainment"}

    async def test_expenses_are_newest_first_and_filter_server_side(self, sim: HarvestSimulator,
                                                                     http: httpx.AsyncClient) -> None:
        body = (await http.get("/v2/expenses", params={"per_page": 200}, headers=HEADERS)).json()
        days = [e["spent_date"] for e in body["expenses"]]
        assert days == sorted(days, reverse=True) and body["total_entries"] == sim.count("expense")
        assert (body["page"], body["next_page"]) == (1, 2) and "cursor=" in body["links"]["next"]
        one_user = (await http.get("/v2/expenses", params={"user_id": 3_100_000}, headers=HEADERS)).json()
        assert one_user["expenses"] and {e["user"]["id"] for e in one_user["expenses"]} == {3_100_000}
        uk = (await http.get("/v2/expenses", params={"client_id": 5_700_001}, headers=HEADERS)).json()
        assert {(e["client"]["id"], e["client"]["currency"]) for e in uk["expenses"]} == {(5_700_001, "GBP")}
        august = (await http.get("/v2/expenses", params={"from": "2026-08-01", "to": "2026-08-31"},
                                 headers=HEADERS)).json()
        assert [e["spent_date"] for e in august["expenses"]] == ["2026-08-27"]
        assert (await http.get("/v2/expenses", params={"per_page": 2001}, headers=HEADERS)).status_code == 422
        assert (await http.get("/v2/expenses", params={"is_billed": "yes"}, headers=HEADERS)).status_code == 422


class TestMapping:
    async def test_mileage_carries_units_and_unit_price_in_the_projects_currency(
            self, sim: HarvestSimulator, time_api: HarvestTime) -> None:
        expense = await time_api.get_expense(str(sim.expense_id(MILES)))
        assert expense.category == "Mileage" and expense.units == Decimal(54)
        assert expense.unit_price == Money(amount=MILEAGE_RATE, currency="GBP")
        assert expense.amount == Money(amount=Decimal("37.80"), currency="GBP")
        assert expense.status == "approved" and expense.receipt_url is None and expense.approved_at is None
        assert expense.project_code == "PRJ-A0002" and expense.user_email.endswith("@meridian.example")

    async def test_other_categories_carry_no_units_and_a_receipt_url_when_one_is_attached(
            self, sim: HarvestSimulator, time_api: HarvestTime) -> None:
        without = await time_api.get_expense(str(sim.expense_id(DEFECT_NO_RECEIPT)))
        assert without.category == "Lodging" and without.units is None and without.unit_price is None
        assert without.receipt_url is None and without.notes is None  # the defect has no notes
        closed = await time_api.get_expense(str(sim.expense_id(DEFECT_CLOSED)))
        assert closed.receipt_url == f"https://meridian.harvestapp.com/expenses/{closed.id}/receipt"
        assert closed.date == dt.date(2026, 8, 27) and closed.amount.amount == Decimal("130.00")

    async def test_amounts_are_in_the_currency_of_the_projects_client(self, time_api: HarvestTime) -> None:
        everything, _ = await _all(time_api, TimeEntryQuery(start=dt.date(2026, 10, 1), end=dt.date(2026, 10, 9)),
                                   2000)
        await time_api.refresh()
        currency = {p.code: p.client.currency for p in time_api.projects.values() if p.client is not None}
        assert {e.amount.currency for e in everything} == {"USD", "GBP", "EUR"}
        assert all(e.amount.currency == currency[e.project_code] for e in everything)
        assert all(e.unit_price is None or e.unit_price.currency == e.amount.currency for e in everything)
        assert {e.billable for e in everything if e.category == "Software"} == {False}

    def test_a_category_the_account_no_longer_lists_is_named_by_the_expense(self) -> None:
        raw = {"id": 7, "spent_date": "2026-10-02", "user": {"id": 1, "name": "K"}, "project": {"id": 2},
               "updated_at": "2026-10-05T09:30:00Z", "total_cost": 12.5, "units": 1.0, "billable": True,
               "is_closed": False, "is_locked": True, "is_billed": False, "receipt": {"url": "", "file_name": None},
               "expense_category": {"id": 9, "name": "Parking", "unit_price": None, "unit_name": None}}
        decoded = msgspec.json.decode(msgspec.json.encode(raw), type=wire.Expense)
        expense = expense_to_canonical(decoded, user_email="k@x", project_code="PRJ-1", currency="EUR",
                                       category=None)
        assert expense.category == "Parking" and expense.units is None and expense.status == "submitted"
        assert expense.receipt_url is None and expense.amount == Money(amount=Decimal("12.50"), currency="EUR")
        km = {**raw, "units": 10, "expense_category": {"id": 9, "name": "Km", "unit_price": "0.535"}}
        priced = msgspec.json.decode(msgspec.json.encode(km), type=wire.Expense)
        listed = wire.ExpenseCategory(id=9, name="Kilometres", unit_name="km", unit_price=Decimal("0.5"))
        mapped = expense_to_canonical(priced, user_email="k@x", project_code="PRJ-1", currency="EUR", category=listed)
        assert mapped.category == "Kilometres" and mapped.units == 10  # the account's name wins
        assert mapped.unit_price == Money(amount=Decimal("0.535"), currency="EUR")  # the expense's own price wins


class TestListExpenses:
    async def test_status_is_filtered_after_the_read_and_a_page_may_be_short(self, sim: HarvestSimulator,
                                                                             time_api: HarvestTime) -> None:
        query = TimeEntryQuery(status="submitted")
        submitted, pages = await _all(time_api, query, 50)
        stored = sum(1 for r in sim.expense_store.rows if r.state == 1)
        assert len(submitted) == stored > 0 and {e.status for e in submitted} == {"submitted"}
        assert pages < sim.count("expense") // 50  # pages with no match are skipped, not returned empty
        assert len({e.id for e in submitted}) == len(submitted)

    async def test_project_code_resolves_to_the_harvest_project_id(self, time_api: HarvestTime,
                                                                   recording: Recording) -> None:
        mine, _ = await _all(time_api, TimeEntryQuery(project_code="PRJ-A0005"), 2000)
        assert mine and {e.project_code for e in mine} == {"PRJ-A0005"}
        sent = [r for r, _, _ in recording.exchanges if r.url.path == "/v2/expenses"]
        assert sent[0].url.params["project_id"] == "14300004"
        nothing = await time_api.list_expenses(TimeEntryQuery(project_code="PRJ-NOPE"), 10, None)
        assert nothing.items == [] and nothing.next_cursor is None

    async def test_codes_harvest_lacks_reload_its_references_at_most_every_few_seconds(
            self, client: HarvestClient, recording: Recording) -> None:
        """A list across every time connection asks Harvest for each project of the firm; the ones Harvest never
        had must not each reread every user and project (a month-end reconciliation asks per project)."""
        now = [0.0]
        time_api = HarvestTime(client, clock=lambda: now[0])

        def loads() -> int:
            return sum(1 for r, _, _ in recording.exchanges if r.url.path == "/v2/users")

        for n in range(20):
            assert (await time_api.list_time_entries(TimeEntryQuery(project_code=f"PRJ-NOPE{n}"), 10, None)).items == []
        assert loads() == 1
        now[0] = HarvestTime.MISS_RELOAD_AFTER + 1
        assert (await time_api.list_expenses(TimeEntryQuery(project_code="PRJ-NOPE"), 10, None)).items == []
        assert loads() == 2  # a project created since the last load is found within seconds
        assert (await time_api.list_expenses(TimeEntryQuery(project_code="PRJ-A0005"), 10, None)).items
        assert loads() == 2

    async def test_a_change_after_approval_moves_updated_at(self, sim: HarvestSimulator, http: httpx.AsyncClient,
                                                            time_api: HarvestTime) -> None:
        expense_id = sim.expense_id(MILES)
        before = await time_api.get_expense(str(expense_id))
        assert (await http.post(f"/__sim__/expenses/{expense_id}/unapprove")).json()["is_locked"] is False
        assert (await time_api.get_expense(str(expense_id))).status == "draft"
        assert (await http.post(f"/__sim__/expenses/{expense_id}/submit")).status_code == 200
        assert (await http.post(f"/__sim__/expenses/{expense_id}/approve")).json()["is_closed"] is True
        billed = (await http.post(f"/__sim__/expenses/{expense_id}/invoice")).json()
        assert billed["is_billed"] is True and billed["locked_reason"] == "Expense is invoiced."
        assert (await http.post(f"/__sim__/expenses/{expense_id}/unapprove")).status_code == 409
        after = await time_api.get_expense(str(expense_id))
        assert after.status == "approved" and after.is_billed and after.updated_at > before.updated_at
        changed = await time_api.list_expenses(TimeEntryQuery(updated_since=after.updated_at), 100, None)
        assert [e.id for e in changed.items] == [str(expense_id)]
        unbilled = [e async for e in time_api.client.iter_expenses(is_billed=True)]
        assert [e.id for e in unbilled] == [expense_id]

    async def test_a_time_entry_cursor_is_refused_on_expenses(self, api: AsyncTestClient[Litestar]) -> None:
        first = (await api.get(f"{TIME}/time-entries", params={"limit": 5})).json()
        response = await api.get(f"{TIME}/expenses", params={"cursor": first["next_cursor"]})
        assert response.status_code == 422 and response.json()["code"] == "invalid_cursor"

    @pytest.mark.parametrize("expense_id", ["1", "abc"])
    async def test_an_unknown_expense_is_a_404_problem(self, api: AsyncTestClient[Litestar], expense_id: str) -> None:
        response = await api.get(f"{TIME}/expenses/{expense_id}")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")


class TestFaults:
    async def test_a_page_retried_after_a_fault_is_read_once_with_nothing_lost_or_doubled(
            self, sim: HarvestSimulator, time_api: HarvestTime, client: HarvestClient) -> None:
        query = TimeEntryQuery(start=DEMO_PERIOD[0], end=DEMO_PERIOD[1])
        clean, pages = await _all(time_api, query, 150)
        sim.faults.add(Fault(kind="server_error", status=502, path=r"/v2/expenses", count=2))
        sim.faults.add(Fault(kind="rate_limit", retry_after=1, path=r"/v2/expense_categories", count=1))
        fresh = HarvestTime(client)  # a cold cache: users, projects and categories are read under faults too
        calls = client.http.calls
        faulted, again = await _all(fresh, query, 150)
        assert [e.id for e in faulted] == [e.id for e in clean] and faulted == clean and again == pages
        # each vendor page once, plus users, projects, categories, and the three refused attempts retried
        assert client.http.calls - calls == pages + 3 + 3 and not sim.faults.rules

    async def test_a_vendor_refusal_is_a_problem_and_not_retried(self, sim: HarvestSimulator,
                                                                 api: AsyncTestClient[Litestar],
                                                                 client: HarvestClient) -> None:
        sim.faults.add(Fault(kind="business_error", path=r"/v2/expenses", count=1))
        response = await api.get(f"{TIME}/expenses")
        assert response.status_code == 422 and response.json()["type"].endswith("/vendor-rejected")
        sim.faults.add(Fault(kind="rate_limit", retry_after=9, path=r"/v2/expenses"))
        limited = await api.get(f"{TIME}/expenses")
        assert limited.status_code == 503 and limited.headers["retry-after"] == "9"


class TestSeeding:
    def test_expenses_are_seeded_on_first_read_and_counted_by_seed_key(self, sim: HarvestSimulator) -> None:
        assert sim.count("expense", DEFECT_NO_RECEIPT) == 1 and sim.count("expense", "EX-99999-20261001") == 0
        assert sim.count("expense") == len(sim.expense_store.rows) > 1000
        with pytest.raises(KeyError):
            sim.expense_id("EX-nope")
