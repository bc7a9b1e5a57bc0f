"""Run records: what a process run is doing, step by step, for people and for replay.

Step updates are written by the durable steps themselves and are idempotent (a step
re-executed after a crash rewrites the same row), so the run resource never shows a
step twice or loses the vendor ids it created.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlalchemy as sa

from contracts.common import Page
from contracts.problems import ProblemError
from contracts.runs import Run, RunStatus, RunStep, StepState
from foundation import metrics
from foundation.clock import as_utc, utcnow
from foundation.paging import decode_cursor, encode_cursor
from process_apis._internal.tables import run_steps, runs

__all__ = ["UNFINISHED", "RunStore"]

TERMINAL: frozenset[RunStatus] = frozenset({"succeeded", "needs_attention", "failed"})
UNFINISHED: frozenset[RunStatus] = frozenset({"queued", "running"})


class RunStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def create(self, process: str, subject: str, run_id: str, steps: Sequence[str]) -> tuple[Run, bool]:
        """Insert the run for `subject`, or return the existing one: one run per subject, even under races."""
        existing = self.by_subject(process, subject)
        if existing is not None:
            return existing, False
        try:
            with self.engine.begin() as conn:
                _insert(conn, process, subject, run_id, steps)
        except sa.exc.IntegrityError:
            found = self.by_subject(process, subject)
            assert found is not None
            return found, False
        return self._created(process, run_id), True

    def create_if(self, claim: Callable[[sa.Connection], bool], process: str, subject: str, run_id: str,
                  steps: Sequence[str]) -> Run | None:
        """Insert the run in the transaction in which `claim` succeeds (None, and nothing written, when it
        does not): what makes a one-at-a-time process's start exclusive across workers."""
        with self.engine.begin() as conn:
            if not claim(conn):
                return None
            _insert(conn, process, subject, run_id, steps)
        return self._created(process, run_id)

    def _created(self, process: str, run_id: str) -> Run:
        run = self.get(run_id)
        assert run is not None
        metrics.observe_run_started(process)
        return run

    def get(self, run_id: str) -> Run | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).mappings().first()
            if row is None:
                return None
            steps = conn.execute(sa.select(run_steps).where(run_steps.c.run_id == run_id)
                                 .order_by(run_steps.c.position)).mappings().all()
        return _run(row, steps)

    def get_of(self, process: str, run_id: str) -> Run:
        """The run, if it is one of `process`'s; otherwise a 404 problem (a run id never crosses processes)."""
        run = self.get(run_id)
        if run is None or run.process != process:
            raise ProblemError(404, "not-found", "Run not found", f"No {process} run {run_id!r}.")
        return run

    def unfinished(self, process: str) -> list[Run]:
        """`process`'s queued and running runs, oldest first: the one a start joins, or those to launch again."""
        with self.engine.connect() as conn:
            ids = conn.execute(sa.select(runs.c.id).where(runs.c.process == process,
                                                          runs.c.status.in_(UNFINISHED))
                               .order_by(runs.c.created_at, runs.c.id)).scalars().all()
        return [r for r in (self.get(i) for i in ids) if r is not None]

    def by_subject(self, process: str, subject: str) -> Run | None:
        with self.engine.connect() as conn:
            run_id = conn.execute(sa.select(runs.c.id).where(runs.c.process == process,
                                                             runs.c.subject == subject)).scalar()
        return self.get(run_id) if run_id else None

    def list(self, process: str, status: RunStatus | None, limit: int, cursor: str | None) -> Page[Run]:
        offset = decode_cursor(cursor, f"{process}.runs")
        query = sa.select(runs.c.id).where(runs.c.process == process)
        if status:
            query = query.where(runs.c.status == status)
        with self.engine.connect() as conn:
            ids = conn.execute(query.order_by(runs.c.created_at.desc(), runs.c.id)
                               .limit(limit + 1).offset(offset)).scalars().all()
        items = [r for r in (self.get(i) for i in ids[:limit]) if r is not None]
        more = len(ids) > limit
        return Page(items=items, next_cursor=encode_cursor(offset + limit, f"{process}.runs") if more else None)

    def set_status(self, run_id: str, status: RunStatus, *, result: dict[str, str] | None = None,
                   exception_id: str | None = None) -> None:
        now = utcnow()
        values: dict[str, object] = {"status": status, "updated_at": now,
                                     "finished_at": now if status in TERMINAL else None}
        if result is not None:
            values["result"] = result
        if exception_id is not None:
            values["exception_id"] = exception_id
        with self.engine.begin() as conn:
            process = conn.execute(runs.update().where(runs.c.id == run_id).values(**values)
                                   .returning(runs.c.process)).scalar()
            if status in TERMINAL and process is not None:
                metrics.observe_run_finished(process, status)
            if status in TERMINAL:  # a finished run shows no step still `running`
                conn.execute(run_steps.update().where(run_steps.c.run_id == run_id, run_steps.c.state == "running")
                             .values(state="failed" if status == "failed" else "succeeded", finished_at=now))

    def skip_pending(self, run_id: str) -> None:
        """Steps that never ran will not run in this attempt: `skipped`, not `pending` forever."""
        with self.engine.begin() as conn:
            conn.execute(run_steps.update().where(run_steps.c.run_id == run_id, run_steps.c.state == "pending")
                         .values(state="skipped"))

    def new_attempt_steps(self, run_id: str) -> Run:
        """Reset every step to pending for a replay (the caller already bumped the attempt)."""
        with self.engine.begin() as conn:
            conn.execute(run_steps.update().where(run_steps.c.run_id == run_id).values(
                state="pending", attempts=0, started_at=None, finished_at=None, detail=None))
        run = self.get(run_id)
        assert run is not None
        return run

    def step(self, run_id: str, name: str, state: StepState, *, vendor_ids: dict[str, str] | None = None,
             detail: str | None = None, attempt: bool = False) -> None:
        """Move one step; `attempt=True` counts a call; timing is stamped on start and on finish."""
        now = utcnow()
        values: dict[str, object] = {"state": state}
        if state == "running":
            values["started_at"] = sa.func.coalesce(run_steps.c.started_at, now)
            values["finished_at"] = None
        if state in ("succeeded", "failed", "skipped"):
            values["finished_at"] = now
        if attempt:
            values["attempts"] = run_steps.c.attempts + 1
        if vendor_ids is not None:
            values["vendor_ids"] = vendor_ids
        if detail is not None or state == "succeeded":
            values["detail"] = detail
        with self.engine.begin() as conn:
            conn.execute(run_steps.update().where(run_steps.c.run_id == run_id, run_steps.c.name == name)
                         .values(**values))
            if state == "running":
                conn.execute(runs.update().where(runs.c.id == run_id, runs.c.status == "queued")
                             .values(status="running", updated_at=now))


def _run(row: sa.RowMapping, steps: Sequence[sa.RowMapping]) -> Run:
    return Run(
        id=row["id"], process=row["process"], subject=row["subject"], status=row["status"],
        attempt=row["attempt"], created_at=as_utc(row["created_at"]), updated_at=as_utc(row["updated_at"]),
        finished_at=as_utc(row["finished_at"]), result=dict(row["result"] or {}), exception_id=row["exception_id"],
        steps=[_step(s) for s in steps],
    )


def _step(s: sa.RowMapping) -> RunStep:
    started, finished = as_utc(s["started_at"]), as_utc(s["finished_at"])
    duration = (finished - started).total_seconds() * 1000 if started and finished else None
    return RunStep(name=s["name"], state=s["state"], attempts=s["attempts"], started_at=started,
                   finished_at=finished, duration_ms=round(duration, 1) if duration is not None else None,
                   vendor_ids=dict(s["vendor_ids"] or {}), detail=s["detail"])


def _insert(conn: sa.Connection, process: str, subject: str, run_id: str, steps: Sequence[str]) -> None:
    now = utcnow()
    conn.execute(runs.insert().values(id=run_id, process=process, subject=subject, status="queued", attempt=1,
                                      created_at=now, updated_at=now, result={}))
    conn.execute(run_steps.insert(), [{"run_id": run_id, "position": i, "name": name, "state": "pending",
                                       "attempts": 0, "vendor_ids": {}} for i, name in enumerate(steps)])
