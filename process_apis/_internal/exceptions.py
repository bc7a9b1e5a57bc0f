"""The exception queue: business-rule failures with a reason, an owner and a replay.

A record stays `open` until someone replays it (`replayed`), and becomes `resolved`
when a replayed run succeeds; nothing in the queue is ever deleted.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

import msgspec
import sqlalchemy as sa

from contracts.common import Page
from contracts.events import EXCEPTION_OPENED, EXCEPTION_RESOLVED
from contracts.problems import ProblemError
from contracts.runs import ExceptionRecord, ExceptionStatus, Violation
from foundation import metrics
from foundation.clock import as_utc, utcnow
from foundation.paging import decode_cursor, encode_cursor
from process_apis._internal.events import event, publish_in
from process_apis._internal.tables import exceptions

__all__ = ["ExceptionStore", "publish_resolved"]


class ExceptionStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def open(self, process: str, run_id: str, subject: str, violations: Sequence[Violation],
             exception_id: str | None = None) -> ExceptionRecord:
        """Record a failure; re-opening the same id (a re-executed step) keeps one record."""
        first = violations[0]
        now = utcnow()
        eid = exception_id or f"exc_{uuid.uuid4().hex[:16]}"
        detail = "; ".join(v.detail for v in violations)
        with self.engine.begin() as conn:
            exists = conn.execute(sa.select(exceptions.c.id).where(exceptions.c.id == eid)).scalar()
            if exists is None:
                conn.execute(exceptions.insert().values(
                    id=eid, process=process, run_id=run_id, subject=subject, reason=first.code, detail=detail,
                    owner=first.owner, status="open", violations=msgspec.to_builtins(list(violations)),
                    replay_count=0, created_at=now, updated_at=now))
                metrics.observe_exception_opened(process, first.code, first.owner)
                publish_in(conn, event(f"{eid}:opened", EXCEPTION_OPENED, process, subject, {
                    "exception_id": eid, "process": process, "run_id": run_id, "reason": first.code,
                    "owner": first.owner, "detail": detail}))
        record = self.get(eid)
        assert record is not None
        return record

    def get(self, exception_id: str) -> ExceptionRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(exceptions).where(exceptions.c.id == exception_id)).mappings().first()
        return _record(row) if row else None

    def list(self, process: str | None, status: ExceptionStatus | None, owner: str | None, limit: int,
             cursor: str | None) -> Page[ExceptionRecord]:
        offset = decode_cursor(cursor, f"{process or '*'}.exceptions")
        query = sa.select(exceptions)
        if process:
            query = query.where(exceptions.c.process == process)
        if status:
            query = query.where(exceptions.c.status == status)
        if owner:
            query = query.where(exceptions.c.owner == owner)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(exceptions.c.created_at.desc(), exceptions.c.id)
                                .limit(limit + 1).offset(offset)).mappings().all()
        return Page(items=[_record(r) for r in rows[:limit]],
                    next_cursor=encode_cursor(offset + limit, f"{process or '*'}.exceptions")
                    if len(rows) > limit else None)

    def get_of(self, process: str, exception_id: str) -> ExceptionRecord:
        """The exception, if `process` raised it; otherwise a 404 problem."""
        record = self.get(exception_id)
        if record is None or record.process != process:
            raise ProblemError(404, "not-found", "Exception not found", f"No {process} exception {exception_id!r}.")
        return record

    def claim(self, exception_id: str, process: str,
              then: Callable[[sa.Connection, ExceptionRecord], None] | None = None) -> ExceptionRecord:
        """Take an open exception for replay, atomically: of two concurrent replays only one gets it.

        `then` runs in the same transaction (e.g. re-queueing the run), so a crash cannot leave the
        exception claimed and its run untouched.
        """
        record = self.get_of(process, exception_id)
        with self.engine.begin() as conn:
            claimed = conn.execute(exceptions.update().where(
                exceptions.c.id == exception_id, exceptions.c.status == "open").values(
                status="replayed", replay_count=exceptions.c.replay_count + 1, updated_at=utcnow())).rowcount
            if claimed and then is not None:
                then(conn, record)
        if not claimed:
            raise ProblemError(409, "conflict", "Exception is not open",
                               f"Exception {exception_id} is {record.status}; only open exceptions replay.",
                               code="not_replayable")
        return record

    def set_status(self, exception_id: str, status: ExceptionStatus, *, replayed: bool = False) -> None:
        values: dict[str, object] = {"status": status, "updated_at": utcnow()}
        if replayed:
            values["replay_count"] = exceptions.c.replay_count + 1
        with self.engine.begin() as conn:
            before = conn.execute(sa.select(exceptions.c.process, exceptions.c.reason, exceptions.c.owner,
                                            exceptions.c.status, exceptions.c.created_at)
                                  .where(exceptions.c.id == exception_id)).first()
            conn.execute(exceptions.update().where(exceptions.c.id == exception_id).values(**values))
            newly_resolved = before is not None and status == "resolved" and before.status != "resolved"
            if newly_resolved:
                publish_resolved(conn, [exception_id])
        if newly_resolved and before is not None:
            age = (utcnow() - as_utc(before.created_at)).total_seconds()
            metrics.observe_exception_resolved(before.process, before.reason, before.owner, age)


def publish_resolved(conn: sa.Connection, exception_ids: Sequence[str]) -> None:
    """Publish `exception.resolved` for exceptions just resolved in this transaction.

    One event per resolution (the id carries the replay count): an exception replayed, failed
    again and resolved again is reported again.
    """
    if not exception_ids:
        return
    for row in conn.execute(sa.select(exceptions).where(exceptions.c.id.in_(list(exception_ids)))).mappings():
        publish_in(conn, event(f"{row['id']}:resolved:{row['replay_count']}", EXCEPTION_RESOLVED, row["process"],
                               row["subject"], {"exception_id": row["id"], "process": row["process"],
                                                "run_id": row["run_id"], "reason": row["reason"],
                                                "owner": row["owner"]}))


def _record(row: sa.RowMapping) -> ExceptionRecord:
    return ExceptionRecord(
        id=row["id"], process=row["process"], run_id=row["run_id"], subject=row["subject"], reason=row["reason"],
        detail=row["detail"], owner=row["owner"], status=row["status"],
        created_at=as_utc(row["created_at"]), updated_at=as_utc(row["updated_at"]),
        violations=msgspec.convert(row["violations"] or [], list[Violation]), replay_count=row["replay_count"],
    )
