"""Expenses through a billing run, as finance sees them: posted as cost once, billed with the contract's markup,
held with an owner when a rule is broken, credited and re-billed when changed after invoicing, reconciled.

The journey runs once per ERP vendor (DE01's books on the firm's NetSuite account, then on its own Business
Central company and Xero organisation; DE01 has no deliberate defect); the rules run on US01, whose first worker
spent the demo firm's defective expenses (`demo_delivery.EXPENSE_DEFECTS`).
"""

from __future__ import annotations

import collections
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from contracts.events import EXPENSE_POSTED
from process_apis.event_feed import EventFeed
from process_apis.time_to_bill.invoicing import EXPENSE_CREDIT
from system_apis.demo_delivery import EXPENSE_DEFECTS
from tests.integration.process_apis.time_to_bill.ttb_stack import PERIOD, TtbStack, ttb_stack

pytestmark = pytest.mark.slow

ERPS = pytest.mark.parametrize("erp", ["netsuite", "businesscentral", "xero"])


async def documents(s: TtbStack, kind: str, entity: str, project: str) -> list[dict[str, Any]]:
    response = await s.http.get(f"/system/erp/v1/{kind}", params={"project_external_id": project, "period": PERIOD,
                                                                  "legal_entity": entity})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def expense_rows(s: TtbStack, entity: str) -> list[dict[str, Any]]:
    return [r for r in s.ledger_rows(legal_entity_code=entity) if r["kind"] in ("expense", "exp_rev")]


def billed(docs: list[dict[str, Any]]) -> Decimal:
    """Expense lines invoiced minus expense lines credited."""
    return sum((Decimal(ln["amount"]["amount"]) for d in docs for ln in d["lines"]
                if ln["kind"] == "expense" or ln["description"].startswith(EXPENSE_CREDIT)), Decimal(0))


@ERPS
async def test_expenses_post_once_bill_with_markup_and_rebill_a_change(tmp_path: Path, erp: str) -> None:
    async with ttb_stack(tmp_path, erp=erp) as s:
        run = await s.bill("DE01")
        assert run["status"] == "succeeded", run
        steps = {step["name"]: step for step in run["steps"]}
        assert steps["read_expenses"]["state"] == "succeeded" and steps["post_expenses"]["state"] == "succeeded"
        rows = [r for r in expense_rows(s, "DE01") if r["period"] == PERIOD]
        assert rows and all(r["state"] == "invoiced" or not r["billable"] for r in rows)
        assert int(run["result"]["expenses_posted"]) == len(rows) > 0

        posted = await s.posted_expenses("DE01")
        assert max(collections.Counter(p["line_key"] for p in posted).values()) == 1
        assert {p["line_key"]: Decimal(p["amount"]["amount"]) for p in posted} == \
            {r["line_key"]: Decimal(r["rate"]) for r in rows}  # each expense's cost, once, billable or not

        project = max({r["project"] for r in rows if r["billable"]},
                      key=lambda p: sum(1 for r in rows if r["project"] == p))
        mine = [r for r in rows if r["project"] == project]
        invoices = await documents(s, "invoices", "DE01", project)
        lines = [ln for d in invoices for ln in d["lines"] if ln["kind"] == "expense"]
        # one pass-through line per billable expense (Xero keeps no source keys on a line: compared by amount)
        assert sorted(Decimal(ln["amount"]["amount"]) for ln in lines) == \
            sorted(Decimal(r["amount"]) for r in mine if r["billable"])
        assert billed(invoices) == sum((Decimal(r["amount"]) for r in mine), Decimal(0))
        for r in mine:  # the contract's markup on each cost, to the cent
            if r["billable"]:
                assert Decimal(r["amount"]) >= Decimal(r["rate"])

        rerun = await s.bill("DE01")
        assert rerun["result"]["expenses_posted"] == "0" and await s.posted_expenses("DE01") == posted

        # The worker corrects an invoiced expense: reversed at its old cost, credited at its old billed amount,
        # posted and billed again at the new one.
        harvest = s.sim("time")
        changed = next(r for r in mine if r["billable"])
        row = harvest.expense(int(changed["entry_id"].removeprefix("expense:")))
        old_billed = Decimal(changed["amount"])
        row.total_cost = row.total_cost + Decimal("10.00")
        row.updated_at = harvest.store.tick()
        assert (await s.bill("DE01"))["status"] == "succeeded"
        after = await s.posted_expenses("DE01", project)
        keys = {p["line_key"]: Decimal(p["amount"]["amount"]) for p in after}
        assert keys[f"{changed['line_key']}:rev"] == -Decimal(changed["rate"])
        new = [k for k in keys if k.startswith(changed["entry_id"] + ":") and k not in
               (changed["line_key"], f"{changed['line_key']}:rev")]
        assert len(new) == 1 and keys[new[0]] == Decimal(changed["rate"]) + Decimal("10.00")
        credits = await documents(s, "credit-memos", "DE01", project)
        assert any(Decimal(ln["amount"]["amount"]) == -old_billed for m in credits for ln in m["lines"])
        current = [r for r in expense_rows(s, "DE01") if r["project"] == project and r["period"] == PERIOD
                   and r["kind"] == "expense" and r["state"] != "superseded"]
        assert billed(await documents(s, "invoices", "DE01", project)) + billed(credits) == \
            sum((Decimal(r["amount"]) for r in current), Decimal(0))
        (rec,) = await s.reconcile(project=project)
        assert rec["discrepancies"] == [], rec
        assert Decimal(rec["posted_expense_cost"]) == Decimal(rec["approved_expense_cost"]) > 0


async def test_each_expense_rule_holds_its_expense_with_an_owner_and_replay_bills_the_fix(tmp_path: Path) -> None:
    async with ttb_stack(tmp_path) as s:
        run = await s.bill("US01")
        assert run["status"] == "needs_attention" and int(run["result"]["expense_exceptions"]) >= len(EXPENSE_DEFECTS)
        held = {r["reason"]: r for r in expense_rows(s, "US01") if r["state"] == "exception"}
        assert set(EXPENSE_DEFECTS) <= set(held), sorted(held)
        exceptions = {e["id"]: e for e in await s.exceptions()}
        owners = {reason: {v["owner"] for v in exceptions[row["exception_id"]]["violations"]}
                  for reason, row in held.items()}
        assert owners["receipt_missing"] == {"delivery-operations"}
        assert owners["expense_over_cap"] == {"commercial-finance"}
        assert owners["expense_not_billable"] == {"commercial-finance"}
        assert owners["period_closed"] == {"finance-close"}
        posted = {p["line_key"] for p in await s.posted_expenses("US01")}
        assert not posted & {r["line_key"] for r in held.values()}  # nothing held reached the ERP

        events = [f.event for f in EventFeed(s.engine).after(0, 100_000) if f.event.type == EXPENSE_POSTED]
        assert sum(len(e.data["expense_keys"]) for e in events) == len(posted)
        assert len({e.id for e in events}) == len(events)

        # The receipt is attached in Harvest; replaying the exception posts and bills the expense.
        missing = held["receipt_missing"]
        harvest = s.sim("time")
        row = harvest.expense(int(missing["entry_id"].removeprefix("expense:")))
        row.has_receipt = True
        row.updated_at = harvest.store.tick()
        replay = await s.http.post(f"/process/time-to-bill/v1/exceptions/{missing['exception_id']}/replay")
        assert replay.status_code == 202, replay.text
        run = await s.wait("ttb_US01_2026-10", attempt=2)
        await s.wait("ttb_US01_2026-10", attempt=run["attempt"])
        now = {r["entry_id"]: r for r in expense_rows(s, "US01") if r["state"] != "superseded"}
        assert now[missing["entry_id"]]["state"] == "invoiced"
        assert {e["id"]: e["status"] for e in await s.exceptions()}[missing["exception_id"]] == "resolved"
        lines = await s.posted_expenses("US01", missing["project"])
        assert sum(1 for p in lines if p["line_key"].startswith(missing["entry_id"] + ":")) == 1
