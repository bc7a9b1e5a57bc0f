"""NetSuite time-to-bill additions against the simulator: employees, async time batches, invoices, credits."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from system_apis._internal.faults import Fault
from system_apis.demo_firm import HOME_ENTITIES, firm_for
from system_apis.domains.erp import erp_router
from system_apis.netsuite import BASE_URL, NetSuiteClient, NetSuiteErp
from system_apis.netsuite._billing_mapping import BATCH_RECORD
from system_apis.netsuite.client import RECORD_PATH, idempotency_key
from system_apis.netsuite.simulator import NetSuiteSimulator
from tests.integration.system_apis.vendor_kit import (
    PACE,
    Sleeps,
    domain_api,
    every_item,
    posted_sums,
    totals_sums,
    vendor_http,
)

ApiClient = AsyncTestClient[Litestar]
ERP = "/system/erp/v1"
FIRM = firm_for(HOME_ENTITIES)  # what a simulator seeds unless told its entities
US_PROJECT = next(p for p in FIRM.projects if p.legal_entity_code == "US01" and p.status == "active")
CLOSED_PROJECT = next(p for p in FIRM.projects if p.status == "closed")
LEAVER = next(w for w in FIRM.workers if w.status == "terminated" and w.legal_entity_code == "US01")
WORKER = US_PROJECT.assignments[0].worker_id


@pytest.fixture
def sim() -> NetSuiteSimulator:
    return NetSuiteSimulator()


@pytest.fixture
async def client(sim: NetSuiteSimulator, sleeps: Sleeps) -> AsyncIterator[NetSuiteClient]:
    async with vendor_http(sim.app, BASE_URL) as http:
        yield NetSuiteClient(http, sleep=sleeps, retry=PACE)


@pytest.fixture
async def api(client: NetSuiteClient) -> AsyncIterator[ApiClient]:
    async with domain_api(erp_router(NetSuiteErp(client))) as test_client:
        yield test_client


def line(key: str, *, project: str = US_PROJECT.external_id, worker: str = WORKER, day: str = "2026-10-05",
         hours: str = "6.5", rate: str = "250.00", currency: str = "USD", billable: bool = True) -> dict[str, Any]:
    amount = str((Decimal(hours) * Decimal(rate)).quantize(Decimal("0.01")))
    return {"line_key": key, "project_external_id": project, "employee_external_id": worker, "date": day,
            "hours": hours, "rate": {"amount": rate, "currency": currency},
            "amount": {"amount": amount, "currency": currency}, "billable": billable}


def batch(key: str, lines: list[dict[str, Any]], legal_entity_id: str = "1") -> dict[str, Any]:
    return {"batch_key": key, "legal_entity_id": legal_entity_id, "lines": lines}


async def post(api: ApiClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post(f"{ERP}/time-postings", json=body)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


async def result(api: ApiClient, batch_key: str) -> dict[str, Any]:
    response = await api.get(f"{ERP}/time-postings/{batch_key}")
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


class TestSeed:
    def test_delivery_is_seeded_by_external_id(self, sim: NetSuiteSimulator) -> None:
        assert sim.count("job", None) == len(FIRM.projects)
        assert sim.count("employee", None) == len(FIRM.workers)
        closed = sim.store.find("job", f"eid:{CLOSED_PROJECT.external_id}")
        assert closed["entityStatus"]["refName"] == "Closed"
        leaver = sim.store.find("employee", f"eid:{LEAVER.id}")
        assert leaver["isInactive"] is True and leaver["releaseDate"] == "2026-10-16"

    def test_firm_can_be_chosen(self) -> None:
        assert NetSuiteSimulator(seed=False).count("employee", None) == 0


class TestEmployees:
    async def test_upsert_creates_then_updates_one_employee(self, api: ApiClient, sim: NetSuiteSimulator) -> None:
        body = {"name": "Ada Lovelace", "email": "ada@meridian.example", "legal_entity_id": "2",
                "cost_center": "CC-UK01-1", "cost_rate": {"amount": "61.25", "currency": "GBP"}, "active": True}
        first = await api.put(f"{ERP}/employees/by-external-id/W-90001", json=body)
        assert first.status_code == 201, first.text
        assert first.json()["cost_rate"] == {"amount": "61.25", "currency": "GBP"}
        second = await api.put(f"{ERP}/employees/by-external-id/W-90001", json={**body, "active": False})
        assert second.status_code == 200
        assert (second.json()["id"], second.json()["active"]) == (first.json()["id"], False)
        assert sim.count("employee", "W-90001") == 1

    async def test_unknown_subsidiary_is_refused(self, api: ApiClient) -> None:
        response = await api.put(f"{ERP}/employees/by-external-id/W-90002", json={
            "name": "No Where", "email": "n@x.example", "legal_entity_id": "77", "cost_center": "CC",
            "cost_rate": {"amount": "1", "currency": "USD"}, "active": True})
        assert response.status_code == 422


class TestTimePosting:
    async def test_one_async_request_posts_a_batch(self, api: ApiClient, sim: NetSuiteSimulator) -> None:
        lines = [line(f"TE-{n:05d}-v1", day=f"2026-10-{n % 28 + 1:02d}") for n in range(300)]
        job = await post(api, batch("US01-2026-10-0001", lines))
        assert job["status"] == "complete"
        assert sim.count("timeBill", None) == 300 and sim.count(BATCH_RECORD, "US01-2026-10-0001") == 1
        posts = {k: n for k, n in sim.faults.seen.items() if k[0] == "POST" and BATCH_RECORD in k[1]}
        assert sum(posts.values()) == 1
        answer = await result(api, "US01-2026-10-0001")
        assert len(answer["posted"]) == 300 and answer["failed"] == {}

    async def test_same_batch_key_returns_the_same_job_and_posts_nothing_twice(
            self, api: ApiClient, sim: NetSuiteSimulator) -> None:
        body = batch("US01-2026-10-0002", [line("TE-1-v1"), line("TE-2-v1")])
        first = await post(api, body)
        again = await post(api, body)
        assert again["job_id"] == first["job_id"]
        assert sim.count("timeBill", None) == 2 and len(sim.async_jobs.jobs) == 1

    async def test_replayed_key_gets_netsuite_idempotency_error_with_location(
            self, client: NetSuiteClient) -> None:
        url = f"{RECORD_PATH}/{BATCH_RECORD}"
        headers = {"Authorization": "Bearer t", "Prefer": "respond-async",
                   "X-NetSuite-Idempotency-Key": idempotency_key("US01-2026-10-0003")}
        body = {"externalId": "US01-2026-10-0003", "custrecord_psc_tb_subsidiary": {"id": "1"},
                "custrecord_psc_tb_lines": "[]"}
        first = await client.http.client.post(url, json=body, headers=headers)
        assert first.status_code == 202 and first.headers["Preference-Applied"] == "respond-async"
        replay = await client.http.client.post(url, json=body, headers=headers)
        assert replay.status_code == 400
        assert replay.json()["o:errorDetails"][0]["o:errorCode"] == "IDEMPOTENCY_ERROR"
        assert replay.headers["Location"] == first.headers["Location"]

    async def test_line_posted_under_another_batch_is_reported_posted_not_duplicated(
            self, api: ApiClient, sim: NetSuiteSimulator) -> None:
        await post(api, batch("US01-2026-10-0004", [line("TE-7-v1")]))
        first_id = (await result(api, "US01-2026-10-0004"))["posted"]["TE-7-v1"]
        await post(api, batch("US01-2026-10-0005", [line("TE-7-v1"), line("TE-8-v1")]))
        second = await result(api, "US01-2026-10-0005")
        assert second["posted"]["TE-7-v1"] == first_id
        assert sim.count("timeBill", None) == 2 and sim.count("timeBill", "TE-7-v1") == 1

    async def test_refusals_are_per_line_and_the_rest_posts(self, api: ApiClient, sim: NetSuiteSimulator) -> None:
        uk_worker = CLOSED_PROJECT.assignments[0].worker_id
        lines = [line("ok-1"), line("closed-period", day="2026-08-28"),
                 line("leaver-after", worker=LEAVER.id, day="2026-10-20"),
                 line("leaver-before", worker=LEAVER.id, day="2026-10-15"),
                 line("unknown-worker", worker="W-99999"), line("wrong-currency", currency="EUR")]
        await post(api, batch("US01-2026-10-0006", lines))
        answer = await result(api, "US01-2026-10-0006")
        assert sorted(answer["posted"]) == ["leaver-before", "ok-1"]
        codes = {k: v.split(":")[0] for k, v in answer["failed"].items()}
        assert codes == {"closed-period": "PERIOD_CLOSED", "leaver-after": "EMPLOYEE_INACTIVE",
                         "unknown-worker": "INVALID_KEY_OR_REF", "wrong-currency": "INVALID_FLD_VALUE"}
        await post(api, batch("UK01-2026-10-0007", [line("closed-job", project=CLOSED_PROJECT.external_id,
                                                         worker=uk_worker, currency="GBP")], legal_entity_id="2"))
        assert (await result(api, "UK01-2026-10-0007"))["failed"]["closed-job"].startswith("JOB_CLOSED")
        assert sim.count("timeBill", None) == 2

    async def test_pending_until_the_map_reduce_runs(self, client: NetSuiteClient) -> None:
        sim = NetSuiteSimulator(defer_postings=True)
        async with (vendor_http(sim.app, BASE_URL) as http,
                    domain_api(erp_router(NetSuiteErp(NetSuiteClient(http)))) as api):
            job = await post(api, batch("US01-2026-10-0008", [line("TE-9-v1")]))
            assert job["status"] == "pending"
            assert (await result(api, "US01-2026-10-0008"))["status"] == "pending"
            assert sim.run_postings() == 1
            done = await result(api, "US01-2026-10-0008")
            assert done["status"] == "complete" and list(done["posted"]) == ["TE-9-v1"]

    async def test_unknown_batch_is_a_404_problem(self, api: ApiClient) -> None:
        response = await api.get(f"{ERP}/time-postings/US01-never-posted")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")

    async def test_5xx_on_submission_is_retried_and_posts_once(self, api: ApiClient, sim: NetSuiteSimulator,
                                                               sleeps: Sleeps) -> None:
        sim.faults.add(Fault(kind="server_error", status=503, method="POST", path=BATCH_RECORD, count=2))
        job = await post(api, batch("US01-2026-10-0009", [line("TE-10-v1")]))
        assert job["status"] == "complete" and len(sleeps.waits) == 2
        assert sim.count("timeBill", "TE-10-v1") == 1

    async def test_business_error_on_the_batch_is_a_422_without_retry(self, api: ApiClient,
                                                                      sim: NetSuiteSimulator) -> None:
        response = await api.post(f"{ERP}/time-postings", json=batch("XX-2026-10-0010", [line("a")],
                                                                     legal_entity_id="42"))
        assert response.status_code == 422, response.text
        assert sim.count(BATCH_RECORD, None) == 0


class TestPostedTime:
    async def test_pages_filter_by_project_and_dates(self, api: ApiClient) -> None:
        other = next(p for p in FIRM.projects if p.legal_entity_code == "US01" and p is not US_PROJECT
                     and p.status == "active")
        lines = [line(f"A-{n}", day=f"2026-10-{n + 1:02d}") for n in range(20)]
        lines.append(line("B-1", project=other.external_id, worker=other.assignments[0].worker_id))
        await post(api, batch("US01-2026-10-0011", lines))
        seen: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params = {"project_external_id": US_PROJECT.external_id, "from": "2026-10-03", "to": "2026-10-12",
                      "limit": "3", **({"cursor": cursor} if cursor else {})}
            page = (await api.get(f"{ERP}/posted-time", params=params)).json()
            seen += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        assert sorted(i["line_key"] for i in seen) == sorted(f"A-{n}" for n in range(2, 12))
        first = next(i for i in seen if i["line_key"] == "A-2")
        assert first["hours"] == "6.5" and first["amount"] == {"amount": "1625.00", "currency": "USD"}
        assert first["employee_external_id"] == WORKER and first["date"] == "2026-10-03"

    async def test_totals_sum_the_billable_lines_the_listing_holds_per_project(self, api: ApiClient,
                                                                               sim: NetSuiteSimulator) -> None:
        other = next(p for p in FIRM.projects if p.legal_entity_code == "US01" and p is not US_PROJECT
                     and p.status == "active")
        lines = [line(f"T-{n}", day=f"2026-10-{n + 1:02d}", hours=f"{n + 1}.25", rate="199.99") for n in range(6)]
        lines += [line("T-free", hours="3", billable=False), line("T-late", day="2026-11-02"),
                  line("T-other", project=other.external_id, worker=other.assignments[0].worker_id, hours="2")]
        await post(api, batch("US01-2026-10-0012", lines))
        listed = (await api.get(f"{ERP}/posted-time", params={"from": "2026-10-01", "to": "2026-10-31",
                                                               "limit": "1000"})).json()["items"]
        assert {i["line_key"] for i in listed} == {f"T-{n}" for n in range(6)} | {"T-free", "T-other"}
        # a page per project: the summed statement pages as the listing does
        totals = await every_item(api, f"{ERP}/posted-time/totals", {"from": "2026-10-01", "to": "2026-10-31",
                                                                     "limit": 1})
        expected = posted_sums(listed)
        assert totals_sums(totals) == expected and len(expected) == 2
        assert expected[US_PROJECT.external_id][2] == 6 and all(t["billable_amount"]["currency"] == "USD"
                                                                for t in totals)
        one = (await api.get(f"{ERP}/posted-time/totals", params={"project_external_id": other.external_id})).json()
        assert [(t["billable_hours"], t["lines"]) for t in one["items"]] == [("2", 1)]
        forged = await api.get(f"{ERP}/posted-time/totals", params={"cursor": "bm9wZQ"})
        assert forged.status_code == 422 and forged.json()["code"] == "invalid_cursor"

    async def test_forged_cursor_is_refused(self, api: ApiClient) -> None:
        response = await api.get(f"{ERP}/posted-time", params={"cursor": "bm9wZQ"})
        assert response.status_code == 422 and response.json()["code"] == "invalid_cursor"

    async def test_429_on_the_query_waits_retry_after(self, api: ApiClient, sim: NetSuiteSimulator,
                                                      sleeps: Sleeps) -> None:
        sim.faults.add(Fault(kind="rate_limit", retry_after=1, path="suiteql", count=1))
        response = await api.get(f"{ERP}/posted-time")
        assert response.status_code == 200 and sleeps.waits and sleeps.waits[0] >= 1


def _invoice(customer_id: str, period: str = "2026-10", **changes: Any) -> dict[str, Any]:
    return {"customer_id": customer_id, "project_external_id": US_PROJECT.external_id, "legal_entity_id": "1",
            "period": period, "currency": "USD", "memo": "October time", "lines": [
                {"kind": "time", "description": "Consultant — 10 h", "quantity": "10", "source_keys": ["A-1", "A-2"],
                 "unit_price": {"amount": "250.00", "currency": "USD"}, "amount": {"amount": "2500.00",
                                                                                "currency": "USD"}},
                {"kind": "milestone", "description": "Milestone 1", "quantity": "1", "source_keys": ["M1"],
                 "unit_price": {"amount": "1000.50", "currency": "USD"},
                 "amount": {"amount": "1000.50", "currency": "USD"}}], **changes}


class TestInvoices:
    @pytest.fixture
    def customer_id(self, sim: NetSuiteSimulator) -> str:
        return str(sim.store.find("customer", f"eid:{US_PROJECT.account_id}")["id"])

    async def test_upsert_creates_a_draft_then_replaces_its_lines(self, api: ApiClient, sim: NetSuiteSimulator,
                                                                  customer_id: str) -> None:
        first = await api.put(f"{ERP}/invoices/by-external-id/INV-PRJ-2026-10", json=_invoice(customer_id))
        assert first.status_code == 201, first.text
        body = first.json()
        assert (body["status"], body["total"], body["period"]) == (
            "draft", {"amount": "3500.50", "currency": "USD"}, "2026-10")
        assert body["lines"][0]["source_keys"] == ["A-1", "A-2"]
        fewer = _invoice(customer_id)
        fewer["lines"] = fewer["lines"][:1]
        second = await api.put(f"{ERP}/invoices/by-external-id/INV-PRJ-2026-10", json=fewer)
        assert second.status_code == 200 and len(second.json()["lines"]) == 1
        assert second.json()["total"]["amount"] == "2500.00"
        assert sim.count("invoice", "INV-PRJ-2026-10") == 1

    async def test_closed_period_is_a_422_period_closed(self, api: ApiClient, sim: NetSuiteSimulator,
                                                        customer_id: str) -> None:
        response = await api.put(f"{ERP}/invoices/by-external-id/INV-AUG", json=_invoice(customer_id, "2026-08"))
        assert response.status_code == 422 and response.json()["code"] == "period_closed"
        assert sim.count("invoice", None) == 0

    async def test_list_by_project_and_period(self, api: ApiClient, customer_id: str) -> None:
        for key, period in (("INV-1", "2026-10"), ("INV-2", "2026-11")):
            await api.put(f"{ERP}/invoices/by-external-id/{key}", json=_invoice(customer_id, period))
        listed = (await api.get(f"{ERP}/invoices", params={"project_external_id": US_PROJECT.external_id,
                                                           "period": "2026-11"})).json()
        assert [i["external_id"] for i in listed["items"]] == ["INV-2"]
        assert listed["items"][0]["project_external_id"] == US_PROJECT.external_id
        none = (await api.get(f"{ERP}/invoices", params={"project_external_id": "PRJ-NOPE"})).json()
        assert none["items"] == []

    async def test_credit_memo_applies_to_its_invoice(self, api: ApiClient, sim: NetSuiteSimulator,
                                                      customer_id: str) -> None:
        await api.put(f"{ERP}/invoices/by-external-id/INV-3", json=_invoice(customer_id))
        credit = {"customer_id": customer_id, "project_external_id": US_PROJECT.external_id, "legal_entity_id": "1",
                  "period": "2026-11", "currency": "USD", "invoice_external_id": "INV-3", "reason": "2 h over-billed",
                  "lines": [{"kind": "credit", "description": "Credit 2 h", "quantity": "-2",
                             "unit_price": {"amount": "250.00", "currency": "USD"},
                             "amount": {"amount": "-500.00", "currency": "USD"}, "source_keys": ["A-1"]}]}
        first = await api.put(f"{ERP}/credit-memos/by-external-id/CM-3", json=credit)
        assert first.status_code == 201, first.text
        assert (first.json()["invoice_external_id"], first.json()["total"]["amount"]) == ("INV-3", "-500.00")
        again = await api.put(f"{ERP}/credit-memos/by-external-id/CM-3", json=credit)
        assert again.status_code == 200 and sim.count("creditMemo", "CM-3") == 1
        listed = (await api.get(f"{ERP}/credit-memos", params={"period": "2026-11"})).json()
        assert [(c["external_id"], c["invoice_external_id"]) for c in listed["items"]] == [("CM-3", "INV-3")]
        orphan = await api.put(f"{ERP}/credit-memos/by-external-id/CM-4", json={**credit,
                                                                                 "invoice_external_id": "INV-404"})
        assert orphan.status_code == 422 and orphan.json()["code"] == "unknown_invoice"

    async def test_ar_locked_period_refuses_a_credit_too(self, api: ApiClient, sim: NetSuiteSimulator,
                                                         customer_id: str) -> None:
        await api.put(f"{ERP}/invoices/by-external-id/INV-5", json=_invoice(customer_id))
        sim.store.periods[("1", "2026-11")]["arLocked"] = True
        credit = {"customer_id": customer_id, "project_external_id": US_PROJECT.external_id, "legal_entity_id": "1",
                  "period": "2026-11", "currency": "USD", "invoice_external_id": "INV-5", "reason": "r",
                  "lines": [{"kind": "credit", "description": "c", "quantity": "1",
                             "unit_price": {"amount": "-1", "currency": "USD"},
                             "amount": {"amount": "-1", "currency": "USD"}}]}
        response = await api.put(f"{ERP}/credit-memos/by-external-id/CM-5", json=credit)
        assert response.status_code == 422 and response.json()["code"] == "period_closed"


def test_timebill_can_be_read_on_the_record_api(sim: NetSuiteSimulator) -> None:
    sim.ledger.post_batch({"custrecord_psc_tb_subsidiary": {"id": "1"}, "custrecord_psc_tb_lines":
                           f'[["K-1","{US_PROJECT.external_id}","{WORKER}","2026-10-01","1.5","10","USD",true,null]]'})
    record = sim.ledger.render("eid:K-1", BASE_URL + RECORD_PATH)
    assert (record["hours"], record["isBillable"], record["tranDate"]) == (Decimal("1.5"), True, "2026-10-01")
    assert dt.date.fromisoformat(record["tranDate"]) == dt.date(2026, 10, 1)
