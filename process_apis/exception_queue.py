"""The exception queue as the process layer publishes it: read it, resolve from it, replay from it.

Experience APIs (the workbench, the dashboards) read the queue and the runs behind it
only through this module — typed rows and contract Structs, never the process tables.

Replay by process: the workbench replays an exception without knowing which process
raised it. Each process registers how it replays its own exceptions when the gateway is
assembled; an exception's `process` field picks the replayer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Collection, Sequence

import msgspec
import sqlalchemy as sa

from contracts.problems import ProblemError
from contracts.runs import ExceptionRecord, ExceptionStatus, Run
from foundation.clock import as_utc, utcnow
from process_apis._internal.exceptions import ExceptionStore, publish_resolved
from process_apis._internal.tables import exceptions, runs

__all__ = ["ExceptionQueue", "QueueEntry", "Replayer", "RunHealth", "register_replayer", "replay"]

Replayer = Callable[[str], Awaitable[Run]]
_replayers: dict[str, Replayer] = {}


def register_replayer(process: str, replayer: Replayer) -> None:
    _replayers[process] = replayer


async def replay(process: str, exception_id: str) -> Run:
    replayer = _replayers.get(process)
    if replayer is None:
        raise ProblemError(409, "conflict", "Not replayable",
                           f"Exceptions of process {process!r} cannot be replayed here.", code="not_replayable")
    return await replayer(exception_id)


class QueueEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One exception with the subject of its run (how a legal entity is attributed to it)."""

    id: str
    subject: str
    run_subject: str | None
    reason: str
    owner: str
    created_at: dt.datetime


class RunHealth(msgspec.Struct, frozen=True, kw_only=True):
    failed: list[tuple[str, int]]
    """Failed runs per process, by process."""
    last_good: list[tuple[str, str, dt.datetime]]
    """Per process: the id and finish time of its latest succeeded run."""


class ExceptionQueue:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._store = ExceptionStore(engine)

    def get(self, exception_id: str) -> ExceptionRecord | None:
        return self._store.get(exception_id)

    def entries(self, *, status: ExceptionStatus | None = None, owner: str | None = None,
                process: str | None = None, reason: str | None = None, created_before: dt.datetime | None = None,
                ids: Collection[str] | None = None, limit: int | None = None, offset: int = 0) -> list[QueueEntry]:
        """Exceptions matching every filter given, oldest first (`ids`: only those)."""
        query = sa.select(exceptions.c.id, exceptions.c.subject, runs.c.subject, exceptions.c.reason,
                          exceptions.c.owner, exceptions.c.created_at).select_from(
            exceptions.outerjoin(runs, runs.c.id == exceptions.c.run_id))
        for column, value in ((exceptions.c.status, status), (exceptions.c.owner, owner),
                              (exceptions.c.process, process), (exceptions.c.reason, reason)):
            if value is not None:
                query = query.where(column == value)
        if created_before is not None:
            query = query.where(exceptions.c.created_at <= created_before)
        if ids is not None:
            query = query.where(exceptions.c.id.in_(sorted(ids)))
        query = query.order_by(exceptions.c.created_at, exceptions.c.id)
        if limit is not None:
            query = query.limit(limit)
        if offset:
            query = query.offset(offset)
        with self.engine.connect() as conn:
            return [QueueEntry(id=i, subject=s, run_subject=rs, reason=r, owner=o, created_at=as_utc(c))
                    for i, s, rs, r, o, c in conn.execute(query)]

    def run_subject(self, run_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(runs.c.subject).where(runs.c.id == run_id)).scalar()

    def resolve(self, exception_id: str, then: Callable[[sa.Connection], None]) -> bool:
        """Mark an open exception resolved; `then` runs in the same transaction (the audit). False: not open."""
        with self.engine.begin() as conn:
            changed = conn.execute(exceptions.update().where(
                exceptions.c.id == exception_id, exceptions.c.status == "open").values(
                status="resolved", updated_at=utcnow())).rowcount
            if changed:
                publish_resolved(conn, [exception_id])
                then(conn)
        return bool(changed)

    def run_health(self, subject_prefixes: Sequence[str] | None = None) -> RunHealth:
        """Failed runs and the last good run per process; `subject_prefixes`: only runs whose subject starts so."""
        where: list[sa.ColumnElement[bool]] = [] if subject_prefixes is None else \
            [sa.or_(sa.false(), *(runs.c.subject.like(f"{p}%") for p in subject_prefixes))]
        with self.engine.connect() as conn:
            failed = conn.execute(sa.select(runs.c.process, sa.func.count()).where(
                runs.c.status == "failed", *where).group_by(runs.c.process).order_by(runs.c.process)).all()
            latest = (sa.select(runs.c.process, sa.func.max(runs.c.finished_at).label("at"))
                      .where(runs.c.status == "succeeded", runs.c.finished_at.is_not(None), *where)
                      .group_by(runs.c.process).subquery())
            good = conn.execute(sa.select(runs.c.process, sa.func.min(runs.c.id), latest.c.at).select_from(
                runs.join(latest, sa.and_(latest.c.process == runs.c.process, latest.c.at == runs.c.finished_at)))
                .where(runs.c.status == "succeeded", *where)
                .group_by(runs.c.process, latest.c.at).order_by(runs.c.process)).all()
        return RunHealth(failed=[(p, int(n)) for p, n in failed],
                         last_good=[(p, i, as_utc(at)) for p, i, at in good])
