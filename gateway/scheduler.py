"""The schedule file put to work on DBOS scheduled workflows: fires, catch-up after downtime, pause and resume.

Each entry becomes a DBOS schedule (in DBOS's system database, so every worker sees the
same definitions and the same paused/active status). DBOS keys a fire's workflow by
schedule name and instant (`sched-<name>-<instant>`), and every worker's scheduler thread
and every catch-up enqueue that same id, so one instant starts one workflow however many
workers are up. The workflow's one step calls the process's own start operation (the
idempotent start a client calls) with an Idempotency-Key made of the schedule and the
instant, so a step re-executed after a crash finds the run it started.

A fire missed while every process was down runs once on recovery: at start-up the latest
instant that should have fired since the schedule last fired is enqueued (with the same
workflow id the live scheduler would have used); older missed instants are not replayed —
a sync or a posting run catches up everything anyway. A paused schedule does not fire:
DBOS stops its thread on every worker at the next poll, and a fire already on its way
checks the status in the database and records itself as skipped.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import logging
from typing import Any, Final
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from croniter import croniter  # type: ignore[import-untyped]
from dbos import DBOS

from contracts.problems import ProblemError
from contracts.runs import Run
from foundation.audit import AuditLog, Via
from foundation.clock import as_utc, utcnow
from foundation.db import metadata
from foundation.workflow_queue import WORK_QUEUE
from gateway.processes import Processes
from gateway.schedules import Schedule
from process_apis.registry import Fire
from web.console.schedules import ScheduleView

__all__ = ["FIRE_WORKFLOW", "Scheduler", "schedule_fires", "scheduled_fire"]

log = logging.getLogger("psconnect.schedules")
FIRE_WORKFLOW: Final = "psconnect.schedule_fire"

schedule_fires = sa.Table(
    "schedule_fires", metadata,
    sa.Column("id", sa.String(200), primary_key=True),  # <schedule>@<instant>: one row per fire
    sa.Column("schedule", sa.String(80), nullable=False, index=True),
    sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),  # started | skipped | failed
    sa.Column("run_id", sa.String(80)),
    sa.Column("run_status", sa.String(40)),
    sa.Column("detail", sa.String(500)),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)

_host: Scheduler | None = None


@DBOS.step(name="psconnect.schedule_fire.start")
async def _start(name: str, instant: str) -> str:
    if _host is None:
        raise RuntimeError("no scheduler configured in this process")
    return await _host.fire(name, dt.datetime.fromisoformat(instant))


@DBOS.workflow(name=FIRE_WORKFLOW)
async def scheduled_fire(scheduled_at: dt.datetime, context: Any) -> None:
    """What DBOS runs at each instant of a schedule: one step, the process's start operation."""
    await _start(str(context["schedule"]), scheduled_at.isoformat())


class Scheduler:
    """The gateway's schedules: registered with DBOS at start-up, read and paused by the console."""

    def __init__(self, schedules: list[Schedule], processes: Processes, engine: sa.Engine, audit: AuditLog,
                 *, enabled: bool) -> None:
        self.schedules = {s.name: s for s in schedules}
        self.processes = processes
        self.engine = engine
        self.audit = audit
        self.enabled = enabled
        """Off: the file is still checked and listed, but nothing is handed to DBOS and nothing fires."""
        self.caught_up: dict[str, dt.datetime] = {}
        """The missed instant each schedule fired on recovery at this start-up."""

    # --- start-up --------------------------------------------------------------------------------------------
    def start(self, launched_at: dt.datetime) -> list[str]:
        """Register every entry with DBOS (keeping each one's paused status), drop entries no longer in the
        file, and enqueue the latest instant of each active one missed before `launched_at` (when this process
        launched DBOS); the schedules caught up."""
        global _host
        _host = self
        if not self.enabled:
            return []
        DBOS.apply_schedules([{"schedule_name": s.name, "workflow_fn": scheduled_fire, "schedule": s.cron,
                               "context": {"schedule": s.name}, "cron_timezone": s.timezone,
                               "queue_name": WORK_QUEUE}  # fired on a worker when the roles are apart
                              for s in self.schedules.values()])
        for stale in DBOS.list_schedules(workflow_name=FIRE_WORKFLOW):
            if stale["schedule_name"] not in self.schedules:
                DBOS.delete_schedule(stale["schedule_name"])
        return [name for name in self.schedules if self._catch_up(name, launched_at)]

    def _catch_up(self, name: str, launched_at: dt.datetime) -> bool:
        found = DBOS.get_schedule(name)
        if found is None or found["status"] != "ACTIVE" or not found["last_fired_at"]:
            return False  # never fired here: nothing was missed; paused: nothing is owed
        schedule = self.schedules[name]
        # The latest instant before DBOS launched here, and whether anyone enqueued it. Not `last_fired_at`
        # against now: DBOS's own thread starts at launch and may already have fired a live instant, which moves
        # `last_fired_at` past the missed one when start-up is slower than the cron (seen at 3 s on a busy machine).
        latest: dt.datetime = croniter(schedule.cron, launched_at.astimezone(ZoneInfo(schedule.timezone)),
                                       second_at_beginning=len(schedule.cron.split()) == 6).get_prev(dt.datetime)
        if DBOS.get_workflow_status(f"sched-{name}-{latest.isoformat()}") is not None:
            return False  # DBOS names an instant's workflow so, whoever enqueued it (its live thread, a backfill)
        # One instant: the window (latest - 1 s, latest + 1 s) holds only it. Same workflow id as the live thread.
        DBOS.backfill_schedule(name, latest - dt.timedelta(seconds=1), latest + dt.timedelta(microseconds=1))
        self.caught_up[name] = latest
        log.info("missed schedule fired on recovery", extra={"fields": {
            "event": "schedule_catch_up", "schedule": name, "instant": latest.isoformat()}})
        return True

    # --- one fire --------------------------------------------------------------------------------------------
    async def fire(self, name: str, instant: dt.datetime) -> str:
        """Start the schedule's operation for this instant (or record why not); the outcome."""
        schedule = self.schedules.get(name)
        if schedule is None:
            return self._record(name, instant, "skipped", detail="no longer in the schedule file")
        status = await asyncio.to_thread(DBOS.get_schedule, name)
        if status is None or status["status"] != "ACTIVE":
            return self._record(name, instant, "skipped", detail="paused")
        hosted = self.processes.hosted[schedule.process]
        operation = hosted.package.schedulable[schedule.action]
        local = instant.astimezone(ZoneInfo(schedule.timezone))
        # The key names the instant in UTC: DBOS hands it over in the schedule's zone, a caller may not.
        at_utc = instant.astimezone(dt.UTC).isoformat()
        fire = Fire(at=local, params=schedule.params, idempotency_key=f"schedule:{name}:{at_utc}")
        async def start() -> Run:
            return await operation.start(hosted.service, fire)

        try:
            # Outside this step's DBOS context, as a client's request: the run is a workflow of its own (DBOS
            # refuses to start one from inside a step), keyed by the run like any other start.
            run = await asyncio.create_task(start(), context=contextvars.Context())
        except ProblemError as problem:
            p = problem.problem
            return self._record(name, instant, "failed", detail=f"{p.status} {p.title}: {p.detail or ''}")
        except Exception as exc:  # a fire must record its failure, not vanish into a log
            log.exception("scheduled start failed", extra={"fields": {"event": "schedule_fire_failed",
                                                                      "schedule": name}})
            return self._record(name, instant, "failed", detail=f"{type(exc).__name__}: {exc}")
        return self._record(name, instant, "started", run_id=run.id, run_status=run.status)

    def _record(self, name: str, instant: dt.datetime, outcome: str, *, run_id: str | None = None,
                run_status: str | None = None, detail: str | None = None) -> str:
        at = instant.astimezone(dt.UTC)
        key = f"{name}@{at.isoformat()}"
        values = {"schedule": name, "scheduled_at": at, "outcome": outcome,
                  "run_id": run_id, "run_status": run_status, "detail": (detail or "")[:500] or None,
                  "recorded_at": utcnow()}
        with self.engine.begin() as conn:
            if conn.execute(sa.select(schedule_fires.c.id).where(schedule_fires.c.id == key)).first():
                conn.execute(schedule_fires.update().where(schedule_fires.c.id == key).values(**values))
            else:
                conn.execute(schedule_fires.insert().values(id=key, **values))
        return outcome

    # --- the console's view ----------------------------------------------------------------------------------
    def fires(self, name: str, limit: int = 20) -> list[sa.RowMapping]:
        """The latest fires of one schedule, newest first."""
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(schedule_fires).where(schedule_fires.c.schedule == name)
                                     .order_by(schedule_fires.c.scheduled_at.desc()).limit(limit)).mappings().all())

    async def overview(self) -> list[ScheduleView]:
        return await asyncio.to_thread(self._list)

    def _list(self) -> list[ScheduleView]:
        registered = {s["schedule_name"]: s for s in DBOS.list_schedules(workflow_name=FIRE_WORKFLOW)} \
            if self.enabled else {}
        views = []
        for name, schedule in self.schedules.items():
            found = registered.get(name)
            state = "off" if found is None else "active" if found["status"] == "ACTIVE" else "paused"
            last = self.fires(name, 1)
            views.append(ScheduleView(
                name=name, run=schedule.run, cron=schedule.cron, timezone=schedule.timezone,
                params=dict(schedule.params), description=schedule.description, state=state,
                next_fire=self.next_fire(schedule) if state == "active" else None,
                last_fire=as_utc(last[0]["scheduled_at"]) if last else None,
                last_outcome=last[0]["outcome"] if last else None,
                last_run_id=last[0]["run_id"] if last else None,
                last_detail=last[0]["detail"] if last else None))
        return views

    @staticmethod
    def next_fire(schedule: Schedule, after: dt.datetime | None = None) -> dt.datetime:
        start = (after or utcnow()).astimezone(ZoneInfo(schedule.timezone))
        following: dt.datetime = croniter(schedule.cron, start, second_at_beginning=len(schedule.cron.split()) == 6
                                          ).get_next(dt.datetime)
        return following.astimezone(dt.UTC)

    async def set_paused(self, name: str, paused: bool, actor: str, via: Via | None = None) -> ScheduleView:
        """Pause or resume one schedule for every worker (the status lives in the database), audited."""
        if name not in self.schedules:
            raise ProblemError(404, "not-found", "Unknown schedule", f"No schedule {name!r} in the schedule file.",
                               code="unknown_schedule")
        if not self.enabled:
            raise ProblemError(409, "conflict", "Schedules are off",
                               "This deployment runs no schedules (PSCONNECT_SCHEDULES_ENABLED).",
                               code="schedules_off")
        before = next(v for v in await self.overview() if v.name == name).state
        after = "paused" if paused else "active"
        await asyncio.to_thread(DBOS.pause_schedule if paused else DBOS.resume_schedule, name)
        with self.engine.begin() as conn:
            self.audit.record(conn, actor, "schedule", name, "pause" if paused else "resume",
                              {"state": (before, after)}, via=via)
        return next(v for v in await self.overview() if v.name == name)
