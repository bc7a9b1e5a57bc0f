"""NetSuite expense postings against the simulator: the expenseReport on the wire, posting once, refusals per line.

The shared journey (`test_erp_expenses.py`) proves the canonical behaviour; these pin NetSuite's side of it:
one expenseReport per line upserted by external id with ``replace=expense`` (what goes on the wire and where
each canonical field lands), a retried PUT after a lost response or a 5xx and a batch whose result was never
recorded posting nothing twice, the adapter's refusals and NetSuite's own, the simulator's expense report rules,
and posted expenses read back by SuiteQL, paged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from system_apis._internal.faults import Fault
from system_apis.demo_delivery import EXPENSE_CATEGORIES
from system_apis.demo_firm import HOME_ENTITIES, firm_for
from system_apis.domains.erp import erp_router
from system_apis.netsuite import BASE_URL, NetSuiteClient, NetSuiteErp
from system_apis.netsuite._expenses_mapping import EXPENSE_BATCH_RECORD, expense_external_id, vendor_refusal
from system_apis.netsuite._queries import EXPENSE_CATEGORIES_QUERY
from system_apis.netsuite.client import RECORD_PATH
from system_apis.netsuite.simulator import NetSuiteSimulator
from system_apis.netsuite.simulator._store import NsError
from tests.integration.system_apis.vendor_kit import PACE, Sleeps, asgi, domain_api, vendor_http

ApiClient = AsyncTestClient[Litestar]
ERP = "/system/erp/v1"
FIRM = firm_for(HOME_ENTITIES)
US_PROJECT = next(p for p in FIRM.projects if p.legal_entity_code == "US01" and p.status == "active")
OTHER_US_PROJECT = next(p for p in FIRM.projects if p.legal_entity_code == "US01" and p.status == "active"
                        and p is not US_PROJECT)
CLOSED_PROJECT = next(p for p in FIRM.projects if p.status == "closed")
LEAVER = next(w for w in FIRM.workers if w.status == "terminated" and w.legal_entity_code == "US01")
WORKER = US_PROJECT.assignments[0].worker_id
REPORT_PATH = f"{RECORD_PATH}/expenseReport/"


class Wire(httpx.AsyncBaseTransport):
    """Passes every exchange to the simulator and keeps what was sent; it can lose the responses of some PUTs
    (the write was applied, the answer never arrived: a timeout on NetSuite's side of the world)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.sent: list[tuple[str, str, dict[str, str], bytes]] = []
        self.lose_puts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.sent.append((request.method, request.url.path, dict(request.url.params), body))
        response = await self.inner.handle_async_request(request)
        if self.lose_puts and request.method == "PUT" and request.url.path.startswith(REPORT_PATH):
            self.lose_puts -= 1
            await response.aread()
            raise httpx.ReadTimeout("the response was lost", request=request)
        return response

    def puts(self) -> list[tuple[str, dict[str, str], Any]]:
        return [(path, params, msgspec.json.decode(body)) for method, path, params, body in self.sent
                if method == "PUT" and path.startswith(REPORT_PATH)]


@pytest.fixture
def sim() -> NetSuiteSimulator:
    return NetSuiteSimulator()


@pytest.fixture
def wire(sim: NetSuiteSimulator) -> Wire:
    return Wire(asgi(sim.app))


@pytest.fixture
async def api(sim: NetSuiteSimulator, wire: Wire, sleeps: Sleeps) -> AsyncIterator[ApiClient]:
    async with vendor_http(sim.app, BASE_URL, transport=wire) as http, \
            domain_api(erp_router(NetSuiteErp(NetSuiteClient(http, sleep=sleeps, retry=PACE)))) as test_client:
        yield test_client


def line(key: str, amount: str = "120.00", *, project: str = US_PROJECT.external_id, worker: str = WORKER,
         day: str = "2026-10-14", category: str = "Travel", currency: str = "USD", billable: bool = True,
         **extra: Any) -> dict[str, Any]:
    return {"line_key": key, "project_external_id": project, "employee_external_id": worker, "date": day,
            "category": category, "amount": {"amount": amount, "currency": currency}, "billable": billable,
            "memo": f"expense {key}", **extra}


async def post(api: ApiClient, key: str, lines: list[dict[str, Any]], legal_entity_id: str = "1") -> dict[str, Any]:
    response = await api.post(f"{ERP}/expense-postings",
                              json={"batch_key": key, "legal_entity_id": legal_entity_id, "lines": lines})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def reports(sim: NetSuiteSimulator) -> list[dict[str, Any]]:
    return list(sim.store.records["expenseReport"].values())


class TestWire:
    async def test_one_expense_report_per_line_upserted_by_external_id(self, api: ApiClient, sim: NetSuiteSimulator,
                                                                      wire: Wire) -> None:
        result = await post(api, "EXPB-W001", [
            line("EX-1:a", "49.00", category="Mileage", original_amount={"amount": "38.71", "currency": "GBP"},
                 receipt_url="https://receipts.example.com/EX-1.pdf"),
            line("EX-2:a", "91.75", category="Software", billable=False)])
        assert set(result["posted"]) == {"EX-1:a", "EX-2:a"} and result["failed"] == {}
        (path, params, body), _ = wire.puts()
        assert path == f"{REPORT_PATH}eid:EX-1:a" and params == {"replace": "expense"}
        employee = sim.store.find("employee", f"eid:{WORKER}")
        job = sim.store.find("job", f"eid:{US_PROJECT.external_id}")
        mileage = next(c for c in sim.store.records["expenseCategory"].values() if c["name"] == "Mileage")
        october = sim.store.periods[("1", "2026-10")]
        assert body["entity"] == {"id": employee["id"]} and body["subsidiary"] == {"id": "1"}
        assert (body["tranDate"], body["postingPeriod"], body["expenseReportCurrency"]["refName"]) == (
            "2026-10-14", {"id": october["id"]}, "USD")
        assert body["complete"] and body["supervisorApproval"] and body["accountingApproval"]
        assert (body["custbody_psc_line_key"], body["custbody_psc_batch_key"], body["useMultiCurrency"]) == (
            "EX-1:a", "EXPB-W001", True)
        [item] = body["expense"]["items"]
        assert item["category"] == {"id": mileage["id"]} and item["customer"] == {"id": job["id"]}
        assert (item["amount"], item["foreignAmount"], item["currency"]["refName"]) == (49.0, 38.71, "GBP")
        assert Decimal(str(item["foreignAmount"])) * Decimal(str(item["exchangeRate"])) == pytest.approx(
            Decimal("49.00"), abs=Decimal("0.005"))
        assert (item["isBillable"], item["receipt"], item["custcol_psc_receipt_url"], item["memo"]) == (
            True, True, "https://receipts.example.com/EX-1.pdf", "expense EX-1:a")
        stored = sim.store.find("expenseReport", "eid:EX-2:a")
        assert stored["expense"]["items"][0]["isBillable"] is False and stored["total"] == Decimal("91.75")
        assert stored["status"] == "Approved by Accounting" and result["posted"]["EX-2:a"] == stored["id"]

    async def test_a_reversal_is_a_report_with_a_negative_line(self, api: ApiClient, sim: NetSuiteSimulator) -> None:
        await post(api, "EXPB-W002", [line("EX-3:a", "215.40")])
        result = await post(api, "EXPB-W003", [line("EX-3:a:rev", "-215.40")])
        reversal = sim.store.find("expenseReport", "eid:EX-3:a:rev")
        assert result["posted"] == {"EX-3:a:rev": reversal["id"]}
        assert reversal["total"] == Decimal("-215.40") and reversal["expense"]["items"][0]["amount"] == Decimal(
            "-215.40")

    async def test_a_key_outside_netsuites_alphabet_is_stored_under_a_digest_and_read_back_verbatim(
            self, api: ApiClient, sim: NetSuiteSimulator) -> None:
        key = "EX 4/α version 2"
        result = await post(api, "EXPB W004 ünsafe", [line(key)])
        assert sim.store.find("expenseReport", f"eid:{expense_external_id(key)}")["custbody_psc_line_key"] == key
        listed = (await api.get(f"{ERP}/posted-expenses", params={"project_external_id": US_PROJECT.external_id})
                  ).json()["items"]
        assert [(i["line_key"], i["id"]) for i in listed] == [(key, result["posted"][key])]
        again = await api.get(f"{ERP}/expense-postings/EXPB W004 ünsafe")
        assert again.status_code == 200 and again.json()["posted"] == result["posted"]


class TestOnce:
    async def test_the_same_batch_writes_nothing_the_second_time(self, api: ApiClient, sim: NetSuiteSimulator,
                                                                 wire: Wire) -> None:
        lines = [line("EX-5:a"), line("EX-6:a", day="2026-08-27")]
        first = await post(api, "EXPB-O001", lines)
        sent = len(wire.sent)
        again = await post(api, "EXPB-O001", lines)
        assert again == first and len(reports(sim)) == 1
        assert [m for m, *_ in wire.sent[sent:]] == ["GET"]  # the batch record, nothing else
        assert sim.count(EXPENSE_BATCH_RECORD, "EXPB-O001") == 1

    async def test_a_line_of_another_batch_is_reported_with_its_first_report(self, api: ApiClient,
                                                                            sim: NetSuiteSimulator, wire: Wire) -> None:
        first = await post(api, "EXPB-O002", [line("EX-7:a")])
        puts = len(wire.puts())
        second = await post(api, "EXPB-O003", [line("EX-7:a", "999.00"), line("EX-8:a")])
        assert second["posted"]["EX-7:a"] == first["posted"]["EX-7:a"]
        assert [p for p, *_ in wire.puts()[puts:]] == [f"{REPORT_PATH}eid:EX-8:a"]  # EX-7:a is never rewritten
        assert sim.store.find("expenseReport", "eid:EX-7:a")["total"] == Decimal("120.00")

    async def test_a_put_whose_response_was_lost_is_retried_onto_the_same_report(
            self, api: ApiClient, sim: NetSuiteSimulator, wire: Wire) -> None:
        wire.lose_puts = 1
        result = await post(api, "EXPB-O004", [line("EX-9:a")])
        assert len(wire.puts()) == 2 and sim.count("expenseReport", "EX-9:a") == 1
        report = sim.store.find("expenseReport", "eid:EX-9:a")
        assert result["posted"] == {"EX-9:a": report["id"]} and len(report["expense"]["items"]) == 1

    async def test_5xx_on_the_put_is_retried_and_posts_once(self, api: ApiClient, sim: NetSuiteSimulator,
                                                            sleeps: Sleeps) -> None:
        sim.faults.add(Fault(kind="server_error", status=503, method="PUT", path="expenseReport", count=2))
        result = await post(api, "EXPB-O005", [line("EX-10:a")])
        assert set(result["posted"]) == {"EX-10:a"} and len(sleeps.waits) == 2
        assert sim.count("expenseReport", "EX-10:a") == 1

    async def test_a_batch_whose_result_was_never_recorded_posts_nothing_twice_when_retried(
            self, api: ApiClient, sim: NetSuiteSimulator) -> None:
        sim.faults.add(Fault(kind="server_error", status=503, method="PUT", path=EXPENSE_BATCH_RECORD, count=4))
        lines = [line("EX-11:a"), line("EX-12:a", "60.00")]
        failed = await api.post(f"{ERP}/expense-postings",
                                json={"batch_key": "EXPB-O006", "legal_entity_id": "1", "lines": lines})
        assert failed.status_code >= 500 and len(reports(sim)) == 2
        assert (await api.get(f"{ERP}/expense-postings/EXPB-O006")).status_code == 404
        ids = {r["externalId"]: r["id"] for r in reports(sim)}
        retried = await post(api, "EXPB-O006", lines)
        assert retried["posted"] == {"EX-11:a": ids["EX-11:a"], "EX-12:a": ids["EX-12:a"]} and len(reports(sim)) == 2


class TestRefusals:
    async def test_each_refused_line_posts_nothing_and_the_rest_posts(self, api: ApiClient,
                                                                      sim: NetSuiteSimulator) -> None:
        sim.store.periods[("1", "2026-11")]["arLocked"] = True
        sim.store.periods[("1", "2026-12")]["apLocked"] = True
        lines = [line("ok"), line("closed", day="2026-08-27"), line("ar-locked", day="2026-11-03"),
                 line("ap-locked", day="2026-12-01"), line("no-period", day="2031-01-05"),
                 line("no-project", project="PRJ-NOPE"), line("bad project", project="PRJ NOPE"),
                 line("closed-project", project=CLOSED_PROJECT.external_id, currency="GBP"),
                 line("no-worker", worker="W-99999"), line("leaver", worker=LEAVER.id, day="2026-10-02"),
                 line("currency", currency="EUR"), line("category", category="Yachting"),
                 line("not-staffed", project=OTHER_US_PROJECT.external_id)]
        result = await post(api, "EXPB-R001", lines)
        assert set(result["posted"]) == {"ok", "not-staffed"}  # staffing is the process's rule, not NetSuite's
        assert result["refusals"] == {
            "closed": "period_closed", "ar-locked": "period_closed", "ap-locked": "period_closed",
            "no-period": "period_closed", "no-project": "project_inactive", "bad project": "project_inactive",
            "closed-project": "project_inactive", "no-worker": "worker_inactive", "leaver": "worker_inactive",
            "currency": "validation", "category": "validation"}
        assert set(result["failed"]) == set(result["refusals"]) and result["failed"]["closed"].startswith(
            "PERIOD_CLOSED")
        assert sorted(r["custbody_psc_line_key"] for r in reports(sim)) == ["not-staffed", "ok"]

    async def test_netsuites_own_refusal_of_a_line_is_kept_per_line(self, api: ApiClient,
                                                                    sim: NetSuiteSimulator) -> None:
        sim.faults.add(Fault(kind="business_error", status=400, method="PUT", path="eid:EX-13", count=1,
                             message="Error while accessing a resource. You have entered an invalid field value."))
        result = await post(api, "EXPB-R002", [line("EX-13:a"), line("EX-14:a")])
        assert set(result["posted"]) == {"EX-14:a"} and result["refusals"] == {"EX-13:a": "rejected"}
        assert "invalid field value" in result["failed"]["EX-13:a"] and len(reports(sim)) == 1

    def test_netsuite_error_codes_and_paths_as_refusal_reasons(self) -> None:
        assert vendor_refusal("PERIOD_CLOSED", "postingPeriod") == "period_closed"
        assert vendor_refusal("INVALID_KEY_OR_REF", "entity") == "worker_inactive"
        assert vendor_refusal("INVALID_KEY_OR_REF", "expense.items[0].customer") == "project_inactive"
        assert vendor_refusal("INVALID_KEY_OR_REF", "expense.items[0].category") == "validation"
        assert vendor_refusal("USER_ERROR", None) == "rejected"

    async def test_a_malformed_amount_refuses_the_batch_before_anything_is_written(
            self, api: ApiClient, sim: NetSuiteSimulator) -> None:
        for amount in ("1.5e3", "10.005"):
            response = await api.post(f"{ERP}/expense-postings", json={
                "batch_key": "EXPB-R003", "legal_entity_id": "1", "lines": [line("EX-15:a"), line("EX-16:a", amount)]})
            assert response.status_code == 422, response.text
            assert response.json()["errors"][0]["pointer"] == "/lines/1/amount/amount"
        assert reports(sim) == [] and sim.count(EXPENSE_BATCH_RECORD, None) == 0


class TestSimulatorRules:
    def _report(self, sim: NetSuiteSimulator, **changes: Any) -> dict[str, Any]:
        employee = sim.store.find("employee", f"eid:{WORKER}")
        job = sim.store.find("job", f"eid:{US_PROJECT.external_id}")
        travel = next(c for c in sim.store.records["expenseCategory"].values() if c["name"] == "Travel")
        item = {"category": {"id": travel["id"]}, "customer": {"id": job["id"]}, "isBillable": True,
                "currency": {"refName": "GBP"}, "foreignAmount": Decimal("100.00"), "exchangeRate": Decimal("1.25")}
        return {"entity": {"id": employee["id"]}, "tranDate": "2026-10-14", "expenseReportCurrency": {"refName": "USD"},
                "expense": {"items": [item]}, **changes}

    def test_netsuite_derives_the_period_and_the_amount(self, sim: NetSuiteSimulator) -> None:
        internal, created = sim.store.upsert("expenseReport", "SIM-1", self._report(sim), set())
        report = sim.store.find("expenseReport", internal)
        assert created and report["postingPeriod"] == {"id": sim.store.periods[("1", "2026-10")]["id"]}
        assert report["expense"]["items"][0]["amount"] == Decimal("125.00") and report["total"] == Decimal("125.00")

    @pytest.mark.parametrize(("changes", "code", "path"), [
        ({"tranDate": "2026-08-27"}, "PERIOD_CLOSED", "postingPeriod"),
        ({"entity": {"id": "999999"}}, "INVALID_KEY_OR_REF", "entity"),
        ({"expenseReportCurrency": {"refName": "XXX"}}, "INVALID_KEY_OR_REF", "expenseReportCurrency"),
        ({"expense": {"items": []}}, "USER_ERROR", "expense"),
    ])
    def test_netsuite_refuses_a_report(self, sim: NetSuiteSimulator, changes: dict[str, Any], code: str,
                                       path: str) -> None:
        with pytest.raises(NsError) as refused:
            sim.store.upsert("expenseReport", "SIM-2", self._report(sim, **changes), set())
        assert (refused.value.code, refused.value.path) == (code, path) and reports(sim) == []

    def test_a_leaver_a_closed_project_and_a_rate_required_category_are_refused(self, sim: NetSuiteSimulator) -> None:
        leaver = sim.store.find("employee", f"eid:{LEAVER.id}")
        with pytest.raises(NsError, match="active employee"):
            sim.store.upsert("expenseReport", "SIM-3", self._report(sim, entity={"id": leaver["id"]}), set())
        report = self._report(sim)
        report["expense"]["items"][0]["customer"] = {"id": sim.store.find("job", f"eid:{CLOSED_PROJECT.external_id}")
                                                     ["id"]}
        with pytest.raises(NsError) as closed:
            sim.store.upsert("expenseReport", "SIM-4", report, set())
        assert closed.value.path == "expense.items[0].customer"
        mileage = next(c for c in sim.store.records["expenseCategory"].values() if c["name"] == "Mileage")
        mileage["rateRequired"] = True
        report = self._report(sim)
        report["expense"]["items"][0]["category"] = {"id": mileage["id"]}
        with pytest.raises(NsError, match="Quantity, Rate"):
            sim.store.upsert("expenseReport", "SIM-5", report, set())

    async def test_categories_are_seeded_and_read_only(self, api: ApiClient, sim: NetSuiteSimulator,
                                                      wire: Wire) -> None:
        names = {c["name"] for c in sim.store.records["expenseCategory"].values()}
        assert names >= {*EXPENSE_CATEGORIES, "Entertainment"}
        http = httpx.AsyncClient(transport=asgi(sim.app), base_url=BASE_URL)
        async with http:
            headers = {"Authorization": "Bearer t", "Prefer": "transient"}
            rows = (await http.post("/services/rest/query/v1/suiteql", json={"q": EXPENSE_CATEGORIES_QUERY},
                                    headers=headers)).json()["items"]
            assert {r["name"] for r in rows} == names and {r["isinactive"] for r in rows} == {"F"}
            refused = await http.put(f"{RECORD_PATH}/expenseCategory/eid:EXPCAT-YACHTING", headers=headers,
                                     json={"name": "Yachting"})
            assert refused.status_code == 403


class TestPostedExpenses:
    async def test_pages_filter_by_project_and_dates(self, api: ApiClient) -> None:
        await post(api, "EXPB-P001", [line(f"A-{n}", f"{n + 1}.25", day=f"2026-10-{n + 1:02d}") for n in range(12)]
                   + [line("B-1", project=OTHER_US_PROJECT.external_id)])
        seen: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params = {"project_external_id": US_PROJECT.external_id, "from": "2026-10-03", "to": "2026-10-09",
                      "limit": "2", **({"cursor": cursor} if cursor else {})}
            page = (await api.get(f"{ERP}/posted-expenses", params=params)).json()
            seen += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        assert sorted(i["line_key"] for i in seen) == [f"A-{n}" for n in range(2, 9)]
        first = next(i for i in seen if i["line_key"] == "A-2")
        assert (first["amount"], first["category"], first["billable"], first["employee_external_id"]) == (
            {"amount": "3.25", "currency": "USD"}, "Travel", True, WORKER)

    async def test_a_cursor_of_other_filters_or_forged_is_refused(self, api: ApiClient) -> None:
        await post(api, "EXPB-P002", [line(f"C-{n}") for n in range(3)])
        page = (await api.get(f"{ERP}/posted-expenses", params={"limit": "1"})).json()
        other = await api.get(f"{ERP}/posted-expenses", params={"limit": "1", "cursor": page["next_cursor"],
                                                                 "project_external_id": US_PROJECT.external_id})
        forged = await api.get(f"{ERP}/posted-expenses", params={"cursor": "bm9wZQ"})
        assert [r.status_code for r in (other, forged)] == [422, 422]
        assert other.json()["code"] == forged.json()["code"] == "invalid_cursor"
