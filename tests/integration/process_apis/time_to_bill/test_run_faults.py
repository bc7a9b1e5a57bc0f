"""Faults an outside black-box run found in billing runs (issue 12, faults 1, 2 and 5), each pinned by a test.

- an impossible period or an unknown legal entity is refused at the edge (422), never queued forever or
  "succeeded" having done nothing;
- a workflow that crashes ends `failed` with an owned exception, in every process, never hangs;
- an exception raised by a replay (`run_id` ending `:replay1`) replays again from the workbench (never 500);
- every step of a finished run shows its final state (no `post_time` left `running`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.process_apis.time_to_bill.ttb_stack import BASE, PERIOD, TtbStack, misprice, ttb_stack

pytestmark = pytest.mark.slow

WB = "/experience/workbench/v1"
FINAL = {"succeeded", "failed", "skipped"}


@pytest.fixture
async def s(tmp_path: Path) -> AsyncIterator[TtbStack]:
    async with ttb_stack(tmp_path) as stack:
        yield stack


async def _runs(s: TtbStack) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await s.http.get(f"{BASE}/billing-runs")).json()["items"]
    return items


@pytest.mark.parametrize("period", ["2026-13", "2026-00", "2026-99", "2026-1", "26-10", "0000-10"])
async def test_an_impossible_period_is_refused_with_a_422_on_period(s: TtbStack, period: str) -> None:
    answer = await s.http.post(f"{BASE}/billing-runs", json={"legal_entity_code": "US01", "period": period},
                               headers={"Idempotency-Key": str(uuid.uuid4())})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert [e["pointer"] for e in answer.json()["errors"]] == ["/period"]
    assert await _runs(s) == []  # nothing queued


async def test_an_unknown_legal_entity_is_refused_with_a_422(s: TtbStack) -> None:
    answer = await s.http.post(f"{BASE}/billing-runs", json={"legal_entity_code": "ZZ99", "period": PERIOD},
                               headers={"Idempotency-Key": str(uuid.uuid4())})
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert problem["code"] == "unknown_legal_entity"
    assert [e["pointer"] for e in problem["errors"]] == ["/legal_entity_code"]
    assert await _runs(s) == []


async def _wait(s: TtbStack, path: str, within: float = 20.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        run: dict[str, Any] = (await s.http.get(path)).json()
        if run["status"] in ("succeeded", "needs_attention", "failed"):
            return run
        assert loop.time() < deadline, f"{path} still {run['status']}: {run['steps']}"
        await asyncio.sleep(0.05)


async def _assert_crash_owned(s: TtbStack, base: str, run: dict[str, Any]) -> None:
    assert run["status"] == "failed", run
    assert run["exception_id"], run
    assert all(step["state"] != "running" for step in run["steps"]), run["steps"]
    record = next(e for e in (await s.http.get(f"{base}/exceptions")).json()["items"]
                  if e["id"] == run["exception_id"])
    assert (record["reason"], record["owner"], record["status"]) == \
        ("internal_error", "integration-operations", "open")
    assert "boom: a bug in a step" in record["detail"]


def _boom(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("boom: a bug in a step")


async def test_a_crashing_billing_run_ends_failed_with_an_owned_exception(
        s: TtbStack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("process_apis.time_to_bill.workflow._projects_to_invoice", _boom)
    started = await s.start("UK01")
    await _assert_crash_owned(s, BASE, await _wait(s, f"{BASE}/billing-runs/{started['id']}"))


async def test_a_crashing_provisioning_run_ends_failed_with_an_owned_exception(
        s: TtbStack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("process_apis.provisioning.workflow.validate", _boom)
    started = await s.stack.start("OPP-0001")
    assert started.status_code == 202, started.text
    base = "/process/provisioning/v1"
    await _assert_crash_owned(s, base, await _wait(s, f"{base}/runs/{started.json()['id']}"))


async def test_a_crashing_worker_sync_ends_failed_with_an_owned_exception(
        s: TtbStack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("process_apis.worker_sync.workflow.fingerprint", _boom)
    base = "/process/worker-sync/v1"
    started = await s.http.post(f"{base}/runs", json={}, headers={"Idempotency-Key": str(uuid.uuid4())})
    assert started.status_code == 202, started.text
    await _assert_crash_owned(s, base, await _wait(s, f"{base}/runs/{started.json()['id']}"))


async def test_every_step_of_a_finished_billing_run_shows_its_final_state(s: TtbStack) -> None:
    done = await s.bill("UK01")
    run = (await s.http.get(f"{BASE}/billing-runs/{done['id']}")).json()
    assert run["status"] in ("succeeded", "needs_attention")
    states = {step["name"]: step["state"] for step in run["steps"]}
    assert set(states.values()) <= FINAL, states
    assert states["post_time"] == "succeeded" and int(run["result"]["posted"]) > 0


async def test_an_exception_raised_by_a_replay_replays_again_from_the_workbench(s: TtbStack) -> None:
    wrong = misprice(s, "PRJ-A0001", every=7)
    await s.bill("US01")
    (first,) = [e for e in await s.exceptions(status="open") if e["subject"] == "PRJ-A0001:rate_card_mismatch"]

    # replayed before the fix: the entries fail again, under an exception of the replay
    replayed = await s.http.post(f"{WB}/exceptions/{first['id']}/replay")
    assert replayed.status_code == 202, replayed.text
    await s.wait("ttb_US01_2026-10", attempt=2)
    (second,) = [e for e in await s.exceptions() if e["run_id"].endswith(":replay1")]

    again = await s.http.post(f"{WB}/exceptions/{second['id']}/replay")
    assert again.status_code == 202, again.text
    assert again.json()["run"]["id"] == "ttb_US01_2026-10"
    await s.wait("ttb_US01_2026-10", attempt=again.json()["run"]["attempt"])

    # whatever replays happened, the entries still held are held by an open (replayable) exception
    statuses = {e["id"]: e["status"] for e in await s.exceptions()}
    holders = {r["exception_id"] for r in s.ledger_rows(state="exception") if r["entry_id"] in wrong}
    assert holders and all(statuses[h] == "open" for h in holders), (holders, statuses)

    # and after the fix, replaying them posts every entry once
    misprice(s, "PRJ-A0001", every=7, rate=None)
    for holder in sorted(holders):
        fixed = await s.http.post(f"{WB}/exceptions/{holder}/replay")
        assert fixed.status_code == 202, fixed.text
        await s.wait("ttb_US01_2026-10", attempt=fixed.json()["run"]["attempt"])
    assert {e: await s.posted_hours(e) > 0 for e in wrong} == dict.fromkeys(wrong, True)
