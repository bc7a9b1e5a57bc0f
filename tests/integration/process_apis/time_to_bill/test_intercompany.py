"""Intercompany charges: a consultant staffed on another entity's project is charged to it at cost plus, once, in
both entities' ERPs, and reconciled like time.

The demo firm seconds one UK01 consultant to a US01 project and one DE01 consultant to a UK01 project, an hour a
weekday (`demo_delivery.SECONDMENTS`); the connections file prices them at cost plus 12.5 % (UK01>US01) and 10 %
(the default). The DE01 employer's books move to Business Central and Xero in turn, so a charge crosses ERPs.
"""

from __future__ import annotations

import collections
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from process_apis.time_to_bill.intercompany import transfer_rate
from process_apis.time_to_bill.rules import quantize
from system_apis.demo_delivery import DEMO_PERIOD, time_entries
from system_apis.demo_firm import demo_firm
from tests.integration.process_apis.time_to_bill.ttb_stack import PERIOD, TtbStack, ttb_stack

pytestmark = pytest.mark.slow

MARKUP = {("UK01", "US01"): Decimal("12.5"), ("DE01", "UK01"): Decimal("10")}
"""The shipped connections file's transfer pricing, per (employer, project entity)."""


def seconded(employer: str, project_entity: str) -> tuple[str, str, list[Decimal], Decimal]:
    """(worker, project, October hours of the approved entries, transfer rate) of the demo's secondment."""
    firm = demo_firm()
    workers = {w.id: w for w in firm.workers}
    for project in firm.projects:
        for a in project.assignments:
            if a.seconded and project.legal_entity_code == project_entity and \
                    workers[a.worker_id].legal_entity_code == employer:
                hours = [e.hours for e in time_entries(firm.projects, firm.workers, *DEMO_PERIOD)
                         if e.worker_id == a.worker_id and e.project_external_id == project.external_id
                         and e.status == "approved"]
                rate = transfer_rate(workers[a.worker_id].cost_rate.amount, MARKUP[(employer, project_entity)])
                return a.worker_id, project.external_id, hours, rate
    raise AssertionError(f"no secondment {employer}>{project_entity} in the demo firm")


async def charges(s: TtbStack, entity: str) -> list[dict[str, Any]]:
    response = await s.http.get("/system/erp/v1/intercompany-charges",
                                params={"legal_entity": entity, "period": PERIOD, "limit": 200})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def side(documents: list[dict[str, Any]], side_: str, counterparty: str, project: str) -> list[dict[str, Any]]:
    return [ln for d in documents if d["side"] == side_ and d["counterparty"] == counterparty for ln in d["lines"]
            if ln["project_external_id"] == project]


async def test_a_seconded_consultants_time_is_charged_once_in_both_books_and_reconciles(tmp_path: Path) -> None:
    worker, project, hours, rate = seconded("UK01", "US01")
    async with ttb_stack(tmp_path) as s:
        run = await s.bill("US01")
        assert int(run["result"]["intercompany_lines"]) == len(hours) > 0
        assert run["result"]["intercompany_documents"] == "1"
        steps = {step["name"]: step for step in run["steps"]}
        assert steps["intercompany"]["state"] == "succeeded"

        # The shared NetSuite account holds both sides: UK01's receivable from US01, US01's payable to UK01.
        documents = await charges(s, "US01")
        receivable, payable = side(documents, "receivable", "US01", project), side(documents, "payable", "UK01",
                                                                                  project)
        expected = sum((quantize(h * rate) for h in hours), Decimal(0))
        for lines in (receivable, payable):
            assert len(lines) == len(hours) and {ln["employee_external_id"] for ln in lines} == {worker}
            assert {Decimal(ln["transfer_rate"]["amount"]) for ln in lines} == {rate}
            assert sum(Decimal(ln["amount"]["amount"]) for ln in lines) == expected
            assert collections.Counter(ln["line_key"] for ln in lines).most_common(1)[0][1] == 1

        rerun = await s.bill("US01")
        assert (rerun["result"]["intercompany_lines"], rerun["result"]["intercompany_documents"]) == ("0", "0")
        assert await charges(s, "US01") == documents

        # The consultant's entry changes after it was charged: its reversal is charged back, its new version on.
        harvest = s.sim("time")
        entry = next(e for e in harvest.store.entries
                     if harvest.store.workers[e.user].id == worker and e.spent_date.month == 10)
        harvest.reapprove(entry.id, hours=entry.hours + Decimal(2))
        assert (await s.bill("US01"))["result"]["intercompany_documents"] == "1"
        after = await charges(s, "US01")
        for side_, counterparty in (("receivable", "US01"), ("payable", "UK01")):
            lines = side(after, side_, counterparty, project)
            assert sum(Decimal(ln["amount"]["amount"]) for ln in lines) == expected + quantize(2 * rate)
        (rec,) = await s.reconcile(project=project)
        assert rec["discrepancies"] == [], rec
        (figures,) = rec["intercompany"]
        assert (figures["employer"], figures["currency"]) == ("UK01", "GBP")
        assert Decimal(figures["expected"]) == Decimal(figures["receivable"]) == Decimal(figures["payable"]) == \
            expected + quantize(2 * rate)


@pytest.mark.parametrize("erp", ["businesscentral", "xero"])
async def test_the_employers_side_goes_into_its_own_erp(tmp_path: Path, erp: str) -> None:
    """DE01's consultant on a UK01 project, DE01's books on another ERP: the receivable there, the payable in
    UK01's NetSuite subsidiary."""
    worker, project, hours, rate = seconded("DE01", "UK01")
    async with ttb_stack(tmp_path, erp=erp) as s:
        run = await s.bill("UK01")
        assert run["result"]["intercompany_documents"] == "1", run
        expected = sum((quantize(h * rate) for h in hours), Decimal(0))
        receivable = side(await charges(s, "DE01"), "receivable", "UK01", project)
        payable = side(await charges(s, "UK01"), "payable", "DE01", project)
        assert sum(Decimal(ln["amount"]["amount"]) for ln in receivable) == expected == \
            sum(Decimal(ln["amount"]["amount"]) for ln in payable)
        assert {ln["employee_external_id"] for ln in receivable + payable} == {worker}
        (rec,) = await s.reconcile(project=project)
        assert rec["discrepancies"] == [] and Decimal(rec["intercompany"][0]["receivable"]) == expected, rec
