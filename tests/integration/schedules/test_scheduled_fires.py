"""Schedules fire the process's own start operation on DBOS scheduled workflows: each instant once, a missed
instant once on recovery, and nothing while paused.

Crons with seconds (six fields) keep the waits short; PostgreSQL holds the runs, the fires and the DBOS
schedules, as in a distributed deployment, so a second gateway on the same database is the "recovery".
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from dbos import DBOS

from foundation.audit import AuditLog
from foundation.clock import as_utc, utcnow
from gateway.processes import Processes
from gateway.scheduler import schedule_fires
from process_apis._internal.tables import runs
from tests.stack import Stack, postgres_database, running_stack

SYNC = "sync-every-2s"
TOKYO = ZoneInfo("Asia/Tokyo")


def schedule_file(tmp_path: Path, cron: str) -> str:
    path = tmp_path / "schedules.yaml"
    path.write_text(f'format_version: 1\nschedules:\n  - name: {SYNC}\n    run: worker_sync.sync\n'
                    f'    cron: "{cron}"\n    timezone: Europe/Berlin\n')
    return str(path)


@pytest.fixture
async def database() -> AsyncIterator[str]:
    async with postgres_database() as url:
        yield url


def fires(stack: Stack) -> list[sa.RowMapping]:
    with stack.gateway.engine.connect() as conn:
        return list(conn.execute(sa.select(schedule_fires).order_by(schedule_fires.c.scheduled_at)).mappings().all())


async def wait_for(stack: Stack, count: int, within: float = 20) -> list[sa.RowMapping]:
    deadline = time.monotonic() + within
    while len(found := fires(stack)) < count:
        assert time.monotonic() < deadline, f"only {len(found)} fire(s) after {within} s: {found}"
        await asyncio.sleep(0.2)
    return found


async def test_each_instant_starts_the_process_once_through_its_own_start(tmp_path: Path, database: str) -> None:
    async with running_stack(tmp_path, database_url=database, schedules_enabled=True,
                             schedules_file=schedule_file(tmp_path, "*/2 * * * * *")) as stack:
        recorded = await wait_for(stack, 2)
        outcomes = [(f["outcome"], f["detail"]) for f in recorded]
        assert all(f["outcome"] == "started" and f["run_id"] for f in recorded), outcomes
        instants = [as_utc(f["scheduled_at"]) for f in recorded]
        assert len(set(instants)) == len(instants) and all(i.second % 2 == 0 for i in instants)
        with stack.gateway.engine.connect() as conn:
            started = set(conn.execute(sa.select(runs.c.id).where(runs.c.process == "worker_sync")).scalars())
        assert {f["run_id"] for f in recorded} <= started
        # The same instant again (a second worker, a re-executed step), once its run has ended, so that joining
        # whatever runs now cannot pass for finding it: the same run, not another, however the instant is written.
        first = recorded[0]
        await stack.wait_for(f"/process/worker-sync/v1/runs/{first['run_id']}")
        for written in (as_utc(first["scheduled_at"]), as_utc(first["scheduled_at"]).astimezone(TOKYO)):
            again = await stack.gateway.scheduler.fire(SYNC, written)
            same = [f["run_id"] for f in fires(stack) if f["scheduled_at"] == first["scheduled_at"]]
            assert again == "started" and same == [first["run_id"]]
        # DBOS keys a fire by schedule and instant: enqueuing an instant twice leaves one workflow.
        instant = instants[0]
        window = (instant - dt.timedelta(seconds=1), instant + dt.timedelta(microseconds=1))
        ids = [await asyncio.to_thread(DBOS.backfill_schedule, SYNC, *window) for _ in range(2)]
        assert [h.workflow_id for h in ids[0]] == [h.workflow_id for h in ids[1]] and len(ids[0]) == 1
        listed = await DBOS.list_workflows_async(name="psconnect.schedule_fire")
        assert len([w for w in listed if w.workflow_id == ids[0][0].workflow_id]) == 1
        view = next(v for v in await stack.gateway.scheduler.overview() if v.name == SYNC)
        assert view.state == "active" and view.last_outcome == "started" and view.next_fire is not None
        assert view.next_fire > utcnow() - dt.timedelta(seconds=1)


async def test_a_schedule_missed_while_everything_was_down_runs_once_on_recovery(
        tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cron = "*/3 * * * * *"
    async with running_stack(tmp_path / "a", database_url=database, schedules_enabled=True,
                             schedules_file=schedule_file(tmp_path, cron)) as before:
        await wait_for(before, 1)
    down_at = utcnow()
    last_before = max(as_utc(f["scheduled_at"]) for f in fires(before))
    await asyncio.sleep(8)  # at least two instants pass with no process up
    # The recovering gateway starts up slower than the cron: DBOS's own thread fires a live instant before the
    # catch-up looks (a busy machine did so unaided), and the missed instant is owed all the same.
    resume = Processes.resume

    async def slow_resume(self: Processes) -> int:
        await asyncio.sleep(4)
        return await resume(self)

    monkeypatch.setattr(Processes, "resume", slow_resume)
    async with running_stack(tmp_path / "b", database_url=database, schedules_enabled=True,
                             schedules_file=schedule_file(tmp_path, cron)) as after:
        caught = after.gateway.scheduler.caught_up.get(SYNC)
        assert caught is not None and caught > down_at
        deadline = time.monotonic() + 20
        while not [f for f in fires(after) if as_utc(f["scheduled_at"]) == caught]:
            assert time.monotonic() < deadline, "the missed schedule did not run on recovery"
            await asyncio.sleep(0.2)
        await asyncio.sleep(2)
        # The live scheduler starts after the catch-up, from "now": anything in between is a catch-up fire.
        missed = [f for f in fires(after) if last_before < as_utc(f["scheduled_at"]) <= caught]
    assert len(missed) == 1, missed  # the latest missed instant only, not one per missed instant
    assert as_utc(missed[0]["scheduled_at"]) - last_before >= dt.timedelta(seconds=6)  # two or more were missed
    assert missed[0]["outcome"] == "started"


async def test_a_paused_schedule_does_not_fire_until_resumed_and_the_pause_is_audited(tmp_path: Path,
                                                                                       database: str) -> None:
    async with running_stack(tmp_path, database_url=database, schedules_enabled=True,
                             schedules_file=schedule_file(tmp_path, "*/2 * * * * *")) as stack:
        scheduler = stack.gateway.scheduler
        await wait_for(stack, 1)
        paused = await scheduler.set_paused(SYNC, True, "ops@psconnect.local")
        paused_at = utcnow()
        assert paused.state == "paused" and paused.next_fire is None
        await asyncio.sleep(8)  # past the scheduler's poll (5 s): every worker has stopped the schedule
        late = [f for f in fires(stack) if as_utc(f["scheduled_at"]) > paused_at + dt.timedelta(seconds=1)]
        assert all(f["outcome"] == "skipped" for f in late), late
        assert not [f for f in late if as_utc(f["scheduled_at"]) > paused_at + dt.timedelta(seconds=6)]
        resumed = await scheduler.set_paused(SYNC, False, "ops@psconnect.local")
        resumed_at = utcnow()
        assert resumed.state == "active"
        deadline = time.monotonic() + 20
        while not [f for f in fires(stack) if as_utc(f["scheduled_at"]) > resumed_at and f["outcome"] == "started"]:
            assert time.monotonic() < deadline, "the resumed schedule did not fire"
            await asyncio.sleep(0.2)
        events = AuditLog(stack.gateway.engine).trail("schedule", SYNC)
        assert [(e.action, e.actor) for e in events] == [("pause", "ops@psconnect.local"),
                                                         ("resume", "ops@psconnect.local")]
