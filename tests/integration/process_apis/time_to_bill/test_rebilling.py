"""Billing again — reruns, concurrent runs, late approvals, entries changed after approval — never bills twice.

Each test is one of the time-to-bill failure modes seen in open-source ERPs
(VENDOR-NOTES.md): billing is tracked per line (entry version), so a rerun or a
concurrent run posts nothing twice, a late approval is billed on its own later, and an
entry changed after it was invoiced gets a reversal, a credit memo and its new version —
the ERP and the invoices move by exactly the difference. Each test runs once per ERP vendor: DE01's
books on the firm's NetSuite account, then on its own Business Central company and Xero organisation;
what the ERP holds is read through its contract.
"""

from __future__ import annotations

import asyncio
import collections
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.integration.process_apis.time_to_bill.ttb_stack import PERIOD, TtbStack, ttb_stack

pytestmark = pytest.mark.slow

PROJECT = "PRJ-A0003"  # DE01, time and materials
ERPS = pytest.mark.parametrize("erp", ["netsuite", "businesscentral", "xero"])


async def documents(s: TtbStack, kind: str, project: str = PROJECT) -> list[dict[str, Any]]:
    response = await s.http.get(f"/system/erp/v1/{kind}", params={"project_external_id": project, "period": PERIOD,
                                                                  "legal_entity": "DE01"})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def time_total(docs: list[dict[str, Any]]) -> Decimal:
    return sum((Decimal(ln["amount"]["amount"]) for d in docs for ln in d["lines"] if ln["kind"] in ("time", "credit")),
               Decimal(0))


def an_entry(s: TtbStack, *, state: int, project: str = PROJECT) -> Any:
    store = s.sim("time").store
    index = store.project_index[project]
    return next(e for e in store.entries if e.project == index and e.state == state and e.billable
                and e.spent_date.month == 10 and not store.workers[e.user].termination_date)


async def clean(s: TtbStack, project: str = PROJECT) -> dict[str, Any]:
    (rec,) = await s.reconcile(project=project)
    assert rec["discrepancies"] == [], rec
    return rec


@ERPS
async def test_rerun_and_concurrent_runs_post_nothing_twice(tmp_path: Path, erp: str) -> None:
    async with ttb_stack(tmp_path, erp=erp) as s:
        await asyncio.gather(s.bill("DE01"), s.bill("*"))  # two runs over DE01's lines at once
        posted, invoices = await s.posted("DE01"), await documents(s, "invoices")
        rerun = await s.bill("DE01")
        assert rerun["attempt"] == 2 and rerun["result"]["posted"] == "0"
        assert await s.posted("DE01") == posted
        assert await documents(s, "invoices") == invoices
        assert max(collections.Counter(p["line_key"] for p in posted).values()) == 1
        await clean(s)


@ERPS
async def test_a_late_approval_is_billed_alone_and_the_rest_stays_billed(tmp_path: Path, erp: str) -> None:
    async with ttb_stack(tmp_path, erp=erp) as s:
        late = an_entry(s, state=1)  # submitted at month end: neither posted nor invoiced
        await s.bill("DE01")
        assert await s.posted_hours(str(late.id)) == 0
        (first,) = await documents(s, "invoices")
        assert str(late.id) not in str(first)
        s.sim("time").approve(late.id)
        await s.bill("DE01")
        assert await s.posted_hours(str(late.id)) == late.hours
        invoices = await documents(s, "invoices")
        assert len(invoices) == 2 and first in invoices  # the first invoice is left as it was
        (second,) = [i for i in invoices if i != first]
        assert [Decimal(ln["quantity"]) for ln in second["lines"]] == [late.hours]  # BC answers "6" for 6.0
        await clean(s)


@ERPS
async def test_an_entry_changed_after_invoicing_is_credited_and_billed_again_once(tmp_path: Path, erp: str) -> None:
    async with ttb_stack(tmp_path, erp=erp) as s:
        entry = an_entry(s, state=2)
        entry_id = str(entry.id)
        await s.bill("DE01")
        before = time_total(await documents(s, "invoices"))
        old_hours = entry.hours

        # re-approved unchanged: same version, nothing happens
        s.sim("time").reapprove(entry.id)
        await s.bill("DE01")
        assert await s.posted_hours(entry_id) == old_hours
        assert await documents(s, "credit-memos") == []

        # re-approved with new hours: reversal + new version, credit memo for the invoiced amount
        s.sim("time").reapprove(entry.id, hours=old_hours + Decimal("1.5"))
        await s.bill("DE01")
        assert await s.posted_hours(entry_id) == old_hours + Decimal("1.5")
        memos = await documents(s, "credit-memos")
        assert len(memos) == 1 and Decimal(memos[0]["total"]["amount"]) < 0
        rows = s.ledger_rows(entry_id=entry_id)
        assert sorted(r["kind"] for r in rows) == ["reversal", "time", "time"]
        rate = next(Decimal(r["rate"]) for r in rows if r["kind"] == "time")
        after = time_total(await documents(s, "invoices")) + time_total(memos)
        assert after - before == Decimal("1.5") * rate

        # and again — back to the first hours: a version seen before bills the difference once more
        s.sim("time").reapprove(entry.id, hours=old_hours)
        await s.bill("DE01")
        await s.bill("DE01")
        assert await s.posted_hours(entry_id) == old_hours
        total = time_total(await documents(s, "invoices")) + time_total(await documents(s, "credit-memos"))
        assert total == before
        rec = await clean(s)
        assert Decimal(rec["approved_amount"]) == total
