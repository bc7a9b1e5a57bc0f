"""A month-end billing run through the gateway, against the simulators: posted once, invoiced, exceptions owned.

The demo firm's October 2026 for each legal entity: every valid approved entry reaches
NetSuite as exactly one timeBill, each project gets its invoice draft (T&M lines per
worker/role/rate, milestone lines for fixed-fee and mixed projects), each seeded defect
(`TIME_DEFECTS`) raises an owned exception while everything else flows, and
reconciliation agrees: time system approved = ERP posted = invoiced − credits.
"""

from __future__ import annotations

import asyncio
import collections
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from system_apis._internal.faults import Fault
from system_apis.demo_delivery import TIME_DEFECTS
from system_apis.demo_firm import demo_firm
from tests.integration.process_apis.time_to_bill.ttb_stack import BASE, PERIOD, TtbStack, mispriced, ttb_stack
from tests.stack import FAST_RETRY

pytestmark = pytest.mark.slow

FIRM = demo_firm()
PROJECTS = {p.external_id: p for p in FIRM.projects}
ENTITIES = ("US01", "UK01", "DE01")


async def approved_entries(s: TtbStack, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"status": "approved", "from": "2026-10-01", "to": "2026-10-31", "limit": 2000, **params,
                 **({"cursor": cursor} if cursor else {})}
        page = (await s.http.get("/system/time/v1/time-entries", params=query)).json()
        out += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return out


def approval_event(entry_ids: list[str]) -> dict[str, Any]:
    return {"specversion": "1.0", "id": f"evt-{entry_ids[0]}", "source": "https://time.example/harvest",
            "type": "psconnect.time.timesheet.approved", "time": "2026-11-02T09:00:00Z",
            "datacontenttype": "application/json", "data": {"entry_ids": entry_ids}}


async def invoices(s: TtbStack, project: str) -> list[dict[str, Any]]:
    response = await s.http.get("/system/erp/v1/invoices", params={"project_external_id": project, "period": PERIOD})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_month_end_run_per_entity_posts_once_invoices_and_owns_every_defect(tmp_path: Path) -> None:
    async with ttb_stack(tmp_path) as s:
        seeded_mispriced = mispriced(s)
        runs = await asyncio.gather(*(s.bill(e) for e in ENTITIES))

        # progress per step is visible on the run
        for entity, run in zip(ENTITIES, runs, strict=True):
            steps = {step["name"]: step for step in run["steps"]}
            assert int(steps["read_validate"]["vendor_ids"]["entries_read"]) > 10_000
            assert int(run["result"]["posted"]) > 3_000
            assert steps["post_time"]["vendor_ids"]["posted"] == run["result"]["posted"]
            assert run["status"] == ("succeeded" if entity == "DE01" else "needs_attention")  # DE01 has no defect

        # every valid approved entry posted exactly once (one timeBill per entry, none twice)
        bills = s.time_bills()
        per_entry = collections.Counter(b.memo for b in bills)
        assert max(per_entry.values()) == 1
        held = {r["entry_id"] for r in s.ledger_rows(state="exception")}
        # the billed entities' time: the firm's own time account holds US01, UK01, DE01 and AU01's (the acquired
        # AU01 keeps only its own ERP), CA01 has its own account
        billed = {p.external_id for p in demo_firm().projects if p.legal_entity_code in ENTITIES}
        approved = [e for e in await approved_entries(s, legal_entity="US01") if e["project_code"] in billed]
        expected = {e["id"] for e in approved} - held
        assert set(per_entry) == expected
        assert len(held) > 0 and seeded_mispriced and seeded_mispriced <= held

        # invoices: T&M lines per worker/role/rate, pass-through expenses; milestones for fixed-fee and mixed
        tm = await invoices(s, "PRJ-A0001")
        assert len(tm) == 1
        assert {ln["kind"] for ln in tm[0]["lines"]} == {"time", "expense"}
        lines = [ln for ln in tm[0]["lines"] if ln["kind"] == "time"]
        groups = [(ln["description"], ln["unit_price"]["amount"]) for ln in lines]
        assert len(groups) == len(set(groups))
        for ln in lines:
            assert Decimal(ln["amount"]["amount"]) == (Decimal(ln["quantity"]) * Decimal(ln["unit_price"]["amount"]))
        fixed = await invoices(s, "PRJ-A0004")
        october = next(m for p in demo_firm().projects if p.external_id == "PRJ-A0004" for m in p.milestones
                       if m.due_date.month == 10)  # the contract's own milestone, a quarter of its budget
        assert [(ln["kind"], Decimal(ln["amount"]["amount"])) for inv in fixed for ln in inv["lines"]
                if ln["kind"] != "expense"] == [("milestone", october.amount.amount)]  # its time is not billed
        mixed = await invoices(s, "PRJ-A0010")
        kinds = collections.Counter(ln["kind"] for inv in mixed for ln in inv["lines"])
        assert kinds["milestone"] == 1 and kinds["time"] > 1
        assert await invoices(s, "PRJ-A0008") == []  # the closed project bills nothing

        # the future-dated entry is November's: no October run reads it; its approval event catches it
        future = str(s.sim("time").entry_id("TE-00001-20261120-9"))
        event = await s.http.post(f"{BASE}/events", json=approval_event([future]))
        assert event.status_code == 202, event.text
        assert event.json() == {"entries": 1, "validated": 0, "exceptions": 1}

        # every seeded defect raises its exception, with an owner
        exceptions = await s.exceptions()
        reasons = {v["code"] for e in exceptions for v in e["violations"]}
        assert set(TIME_DEFECTS) <= reasons
        assert all(e["owner"] for e in exceptions)
        by_reason = {v["code"]: e for e in exceptions for v in e["violations"]}
        assert by_reason["project_inactive"]["subject"].startswith("PRJ-A0008")
        assert by_reason["rate_card_mismatch"]["subject"].startswith("PRJ-A0004")

        # reconciliation: clean for every project, the held entries counted not hidden
        for entity in ENTITIES:
            for rec in await s.reconcile(entity=entity):
                assert rec["discrepancies"] == [], rec
        (inactive,) = await s.reconcile(project="PRJ-A0008")
        assert inactive["held_in_exceptions"] > 0 and inactive["posted_hours"] == "0"
        (clean,) = await s.reconcile(project="PRJ-A0013")
        assert clean["held_in_exceptions"] == 0
        assert Decimal(clean["approved_amount"]) == Decimal(clean["posted_amount"]) == \
            Decimal(clean["invoiced_amount"]) > 0


async def test_a_run_bills_its_own_period_only(tmp_path: Path) -> None:
    async with ttb_stack(tmp_path) as s:
        s.stack.gateway.processes.service("time_to_bill").as_of = None  # the wall clock: November is past too
        run = await s.bill("US01")
        assert run["status"] in ("succeeded", "needs_attention")
        assert not [b for b in s.time_bills() if b.date >= "2026-11-01"]


def _requests(*operations: str) -> float:
    """Requests the gateway answered 200 (a read the spike arrest refused for a moment is retried: not counted)."""
    return sum(sample.value for metric in REGISTRY.collect() for sample in metric.samples
               if sample.name == "psconnect_gateway_requests_total" and sample.labels.get("operation") in operations
               and sample.labels.get("status") == "200")


def _posted_time_reads() -> float:
    return _requests("erp.listPostedTimeTotals")


async def test_reconciling_an_entity_whole_reads_its_accounts_once_and_finds_what_per_project_reads_find(
        tmp_path: Path) -> None:
    """Every project of an entity (or of the firm) on one page: the approved time and expenses come from one paged
    read of the time account(s) and the posted, invoiced and credited figures from one of each ERP list, not reads
    per project (Harvest allows 100 requests per 15 s), and each row is what reconciling that project alone gives —
    held entries, expenses and seconded consultants' charges too."""
    time_lists = ("time.listTimeEntries", "time.listExpenses")
    erp_lists = ("erp.listPostedTimeTotals", "erp.listInvoices", "erp.listCreditMemos", "erp.listPostedExpenses")
    async with ttb_stack(tmp_path) as s:
        assert (await s.bill("*"))["status"] in ("succeeded", "needs_attention")
        wholes: dict[str, list[dict[str, Any]]] = {}
        for entity in ("US01", "*"):
            before = _requests(*time_lists), _requests(*erp_lists)
            whole = wholes[entity] = await s.reconcile(entity=entity)
            whole_reads = _requests(*time_lists) - before[0], _requests(*erp_lists) - before[1]
            before = _requests(*time_lists), _requests(*erp_lists)
            alone = [row for r in whole for row in await s.reconcile(project=r["project"])]
            alone_reads = _requests(*time_lists) - before[0], _requests(*erp_lists) - before[1]
            assert alone == whole
            assert whole_reads[0] < len(whole) <= alone_reads[0] / 2, (len(whole), whole_reads, alone_reads)
            # posted time is read summed per project, the other lists in pages (US01's account holds UK01's and
            # DE01's records as well): a read of each list for the whole, four per project alone
            assert whole_reads[1] < alone_reads[1] / 2 and len(whole) * 4 <= alone_reads[1], (whole_reads, alone_reads)
        assert whole_reads[1] < len(whole)  # the firm whole: fewer ERP reads than projects
        assert all(not r["discrepancies"] for r in whole)
        assert any(r["held_in_exceptions"] for r in whole) and any(r["expenses_held"] for r in whole)
        assert any(r["intercompany"] for r in whole) and any(r["approved_expense_cost"] != "0" for r in whole)

        # An ERP that fails a moment longer than its client's own retries: the reconciliation's read is retried
        # like a step's call, and the caller gets the figures, not a 503 — for one project and for an entity whole.
        erp = s.sim("erp")
        for params, expected in (({"project": whole[0]["project"]}, whole[:1]),
                                 ({"legal_entity_code": "US01"}, wholes["US01"])):
            injected = erp.faults.injected
            erp.faults.add(Fault(kind="server_error", count=FAST_RETRY.max_attempts + 1, path="suiteql"))
            response = await s.http.get(f"{BASE}/reconciliation", params={"period": PERIOD, **params})
            assert response.status_code == 200, response.text
            assert response.json()["items"] == expected
            assert erp.faults.injected - injected == FAST_RETRY.max_attempts + 1
        # One that stays down (its invoices; reference data still reads until its client's circuit opens): the
        # entity's reconciliation answers 503 naming the ERP, as a project's does.
        erp.faults.add(Fault(kind="server_error", path="record/v1/invoice"))
        response = await s.http.get(f"{BASE}/reconciliation", params={"period": PERIOD, "legal_entity_code": "US01"})
        assert response.status_code == 503 and response.json()["title"] == "ERP unavailable", response.text
        assert response.json()["code"] == "upstream_unavailable" and int(response.headers["Retry-After"]) >= 1
        erp.faults.clear()


async def test_a_reconciliation_page_reads_its_own_projects_only(tmp_path: Path) -> None:
    """Paging through every project's reconciliation: the pages add up to the whole, and each page reads the
    ERP for its projects alone (a page used to reconcile the whole firm and keep 50 rows)."""
    async with ttb_stack(tmp_path) as s:
        assert (await s.bill("US01"))["status"] in ("succeeded", "needs_attention")
        whole = await s.reconcile(entity="*")
        assert len(whole) > 6
        pages: list[list[dict[str, Any]]] = []
        cursor: str | None = None
        while True:
            before = _posted_time_reads()
            response = await s.http.get(f"{BASE}/reconciliation", params={
                "period": PERIOD, "legal_entity_code": "*", "limit": 3, **({"cursor": cursor} if cursor else {})})
            assert response.status_code == 200, response.text
            pages.append(response.json()["items"])
            assert _posted_time_reads() - before == len(pages[-1])  # one posted-time read per project on the page
            cursor = response.json()["next_cursor"]
            if not cursor:
                break
        assert [len(p) for p in pages[:-1]] == [3] * (len(pages) - 1) and 1 <= len(pages[-1]) <= 3
        assert [row for page in pages for row in page] == whole

        # Against vendors that take their time, a page's projects are reconciled several at a time.
        delay = 0.1
        slowed = [s.sim("erp"), s.sim("time")]
        for sim in slowed:
            sim.faults.add(Fault(kind="slow", rate=1.0, delay=delay))
        started = time.perf_counter()
        response = await s.http.get(f"{BASE}/reconciliation", params={"period": PERIOD, "legal_entity_code": "*",
                                                                      "limit": 16})
        elapsed = time.perf_counter() - started
        assert response.status_code == 200 and response.json()["items"] == whole[:16]
        waited = sum(sim.faults.injected for sim in slowed) * delay
        assert waited > 8  # one after another, the page would take that long
        assert elapsed < waited / 2, (elapsed, waited)


async def test_starting_a_run_twice_with_one_key_is_one_run(tmp_path: Path) -> None:
    async with ttb_stack(tmp_path) as s:
        first = await s.start("DE01", key="same-key-123")
        again = await s.http.post(f"{BASE}/billing-runs", json={"legal_entity_code": "DE01", "period": PERIOD},
                                  headers={"Idempotency-Key": "same-key-123"})
        assert again.status_code == 200 and again.json()["id"] == first["id"]
        other = await s.http.post(f"{BASE}/billing-runs", json={"legal_entity_code": "UK01", "period": PERIOD},
                                  headers={"Idempotency-Key": "same-key-123"})
        assert other.status_code == 422
        await s.wait(first["id"])


async def test_a_working_day_posting_fire_posts_time_and_drafts_no_invoice_until_the_month_end_run(
        tmp_path: Path) -> None:
    """The schedule's near-real-time path: time reaches the ERP during the month, invoices only at the cut-off."""
    import datetime as dt

    from process_apis.registry import Fire
    from process_apis.time_to_bill.plugin import PROCESS

    async with ttb_stack(tmp_path) as s:
        service = s.stack.gateway.processes.service("time_to_bill")
        fire = Fire(at=dt.datetime(2026, 10, 30, 10, 15), params={"legal_entity": "UK01"},
                    idempotency_key="schedule:time-posting-uk01:2026-10-30T10:15")
        started = await PROCESS.schedulable["post_time"].start(service, fire)
        posting = await s.wait(started.id, started.attempt)
        assert posting["id"].endswith("_posting") and posting["status"] in ("succeeded", "needs_attention")
        assert int(posting["result"]["posted"]) > 0 and posting["result"]["invoice_documents"] == "0"
        uk_projects = [code for code, p in PROJECTS.items() if p.legal_entity_code == "UK01"]
        assert [code for code in uk_projects if await invoices(s, code)] == []
        bills_after_posting = len(s.time_bills())

        month_end = await s.bill("UK01")
        assert int(month_end["result"]["invoice_documents"]) > 0
        assert int(month_end["result"]["posted"]) == 0  # everything was posted by the day's fire, once
        assert len(s.time_bills()) == bills_after_posting
