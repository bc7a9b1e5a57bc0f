"""Replay: fix the data behind an exception, replay it (process API or workbench), and the entries post once."""

from __future__ import annotations

import collections
from decimal import Decimal
from pathlib import Path

import pytest

from tests.integration.process_apis.time_to_bill.ttb_stack import BASE, TtbStack, misprice, ttb_stack

pytestmark = pytest.mark.slow


def held(s: TtbStack, exception_id: str) -> set[str]:
    return {r["entry_id"] for r in s.ledger_rows(exception_id=exception_id)}


async def exception_for(s: TtbStack, subject: str) -> dict[str, object]:
    found = [e for e in await s.exceptions(status="open") if e["subject"] == subject]
    assert len(found) == 1, [e["subject"] for e in await s.exceptions()]
    return found[0]


async def test_corrected_rates_replayed_from_the_process_and_the_workbench_post_once(tmp_path: Path) -> None:
    async with ttb_stack(tmp_path) as s:
        wrong_a = misprice(s, "PRJ-A0001", every=7)
        wrong_b = misprice(s, "PRJ-A0013", every=7)
        await s.bill("US01")
        a = await exception_for(s, "PRJ-A0001:rate_card_mismatch")
        b = await exception_for(s, "PRJ-A0013:rate_card_mismatch")
        assert wrong_a <= held(s, str(a["id"])) and wrong_b <= held(s, str(b["id"]))
        assert not {bill.memo for bill in s.time_bills()} & (wrong_a | wrong_b)

        # a replay before the fix changes nothing and keeps the entries held
        misprice(s, "PRJ-A0001", every=7, rate=None)  # commercial finance corrects the time system's rates
        misprice(s, "PRJ-A0013", every=7, rate=None)
        response = await s.http.post(f"{BASE}/exceptions/{a['id']}/replay")
        assert response.status_code == 202, response.text
        assert response.json()["lines_requeued"] == len(wrong_a)
        response = await s.http.post(f"/experience/workbench/v1/exceptions/{b['id']}/replay")
        assert response.status_code in (200, 202), response.text
        run = await s.wait("ttb_US01_2026-10", attempt=2)
        assert run["status"] in ("succeeded", "needs_attention")
        await s.wait("ttb_US01_2026-10", attempt=run["attempt"])

        per_entry = collections.Counter(bill.memo for bill in s.time_bills())
        assert {e: per_entry[e] for e in wrong_a | wrong_b} == dict.fromkeys(wrong_a | wrong_b, 1)
        assert max(per_entry.values()) == 1
        replayed = {e["id"]: e["status"] for e in await s.exceptions()}
        assert replayed[a["id"]] == "resolved" and replayed[b["id"]] == "resolved"
        for project in ("PRJ-A0001", "PRJ-A0013"):
            (rec,) = await s.reconcile(project=project)
            assert rec["discrepancies"] == [] and rec["held_in_exceptions"] == 0, rec
            assert Decimal(rec["invoiced_amount"]) == Decimal(rec["approved_amount"])
        again = await s.http.post(f"{BASE}/exceptions/{a['id']}/replay")
        assert again.status_code == 409  # a resolved exception does not replay
