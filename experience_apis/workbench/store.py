"""Workbench state beside the exception queue: assignees and comments, each change audited.

The exception records belong to the process APIs; the workbench adds who owns the
follow-up and what was said, in its own tables, and writes the audit event in the
same transaction as the change it describes. A caller restricted to legal entities
sees, and acts on, only the exceptions attributable to them (`entities`); any other is
a 404, as if it did not exist.
"""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa

from contracts.common import Page
from contracts.problems import ProblemError
from contracts.runs import ExceptionStatus
from contracts.workbench import Comment, WorkbenchDetail, WorkbenchItem
from experience_apis._internal.attribution import Attribution, entity_aliases
from experience_apis._internal.scope import resolve_entities
from foundation.audit import AuditLog, Via
from foundation.clock import as_utc, utcnow
from foundation.db import metadata
from foundation.paging import decode_cursor, encode_cursor
from process_apis.exception_queue import ExceptionQueue, QueueEntry

__all__ = ["Entities", "WorkbenchStore", "assignments", "comments"]

Entities = frozenset[str] | None

assignments = sa.Table(
    "workbench_assignments", metadata,
    sa.Column("exception_id", sa.String(64), primary_key=True),
    sa.Column("assignee", sa.String(120), nullable=False),
    sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
)

comments = sa.Table(
    "workbench_comments", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("exception_id", sa.String(64), nullable=False, index=True),
    sa.Column("author", sa.String(120), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


class WorkbenchStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.exceptions = ExceptionQueue(engine)
        self.audit = AuditLog(engine)

    def entities_of(self, grant: frozenset[str] | None) -> Entities:
        """The entity codes a token's grant (codes or ERP ids) covers; None = unrestricted."""
        if grant is None:
            return None
        with self.engine.connect() as conn:
            return resolve_entities(grant, None, entity_aliases(conn))

    def list(self, *, status: ExceptionStatus | None, owner: str | None, process: str | None,
             reason: str | None, assignee: str | None, older_than_hours: float | None, limit: int,
             cursor: str | None, entities: Entities = None) -> Page[WorkbenchItem]:
        offset = decode_cursor(cursor, "workbench.exceptions")
        assigned = None
        if assignee is not None:
            with self.engine.connect() as conn:
                assigned = set(conn.execute(sa.select(assignments.c.exception_id).where(
                    assignments.c.assignee == assignee)).scalars())
        before = None if older_than_hours is None else utcnow() - dt.timedelta(hours=older_than_hours)

        def matching(limit: int | None = None, offset: int = 0) -> list[QueueEntry]:
            return self.exceptions.entries(status=status, owner=owner, process=process, reason=reason,
                                           created_before=before, ids=assigned, limit=limit, offset=offset)

        if entities is None:
            ids = [e.id for e in matching(limit + 1, offset)]
        else:  # attributed in Python (see experience_apis/_internal/attribution.py), then paged
            entries = matching()
            with self.engine.connect() as conn:
                seen = Attribution(conn, entities)
                ids = [e.id for e in entries if seen.visible(e.subject, e.run_subject)][offset:offset + limit + 1]
        items = [self.item(i) for i in ids[:limit]]
        more = len(ids) > limit
        return Page(items=items, next_cursor=encode_cursor(offset + limit, "workbench.exceptions") if more else None)

    def item(self, exception_id: str, entities: Entities = None) -> WorkbenchItem:
        record = self.exceptions.get(exception_id)
        if record is None or not self._visible(record.run_id, record.subject, entities):
            raise ProblemError(404, "not-found", "Exception not found", f"No exception {exception_id!r}.")
        with self.engine.connect() as conn:
            assignee = conn.execute(sa.select(assignments.c.assignee).where(
                assignments.c.exception_id == exception_id)).scalar()
            count = conn.execute(sa.select(sa.func.count()).select_from(comments).where(
                comments.c.exception_id == exception_id)).scalar() or 0
        age = max(0.0, (utcnow() - record.created_at).total_seconds() / 3600)
        return WorkbenchItem(exception=record, assignee=assignee, comment_count=int(count), age_hours=round(age, 2))

    def _visible(self, run_id: str, subject: str, entities: Entities) -> bool:
        if entities is None:
            return True
        run_subject = self.exceptions.run_subject(run_id)
        with self.engine.connect() as conn:
            return Attribution(conn, entities).visible(subject, run_subject)

    def detail(self, exception_id: str, entities: Entities = None) -> WorkbenchDetail:
        item = self.item(exception_id, entities)
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(comments).where(comments.c.exception_id == exception_id)
                                .order_by(comments.c.created_at, comments.c.id)).mappings().all()
        return WorkbenchDetail(item=item, audit=self.audit.trail("exception", exception_id),
                               comments=[Comment(id=r["id"], exception_id=r["exception_id"], author=r["author"],
                                                 text=r["text"], created_at=as_utc(r["created_at"])) for r in rows])

    def assign(self, exception_id: str, assignee: str, actor: str, entities: Entities = None,
               via: Via | None = None) -> WorkbenchItem:
        before = self.item(exception_id, entities).assignee
        with self.engine.begin() as conn:
            conn.execute(assignments.delete().where(assignments.c.exception_id == exception_id))
            conn.execute(assignments.insert().values(exception_id=exception_id, assignee=assignee,
                                                     assigned_at=utcnow()))
            self.audit.record(conn, actor, "exception", exception_id, "assign", {"assignee": (before, assignee)},
                              via=via)
        return self.item(exception_id)

    def comment(self, exception_id: str, text: str, actor: str, entities: Entities = None,
                via: Via | None = None) -> Comment:
        self.item(exception_id, entities)
        comment = Comment(id=f"cmt_{uuid.uuid4().hex[:16]}", exception_id=exception_id, author=actor, text=text,
                          created_at=utcnow())
        with self.engine.begin() as conn:
            conn.execute(comments.insert().values(id=comment.id, exception_id=exception_id, author=actor, text=text,
                                                  created_at=comment.created_at))
            self.audit.record(conn, actor, "exception", exception_id, "comment", {"comment": (None, comment.id)},
                              via=via)
        return comment

    def resolve(self, exception_id: str, resolution: str, actor: str, entities: Entities = None,
                via: Via | None = None) -> WorkbenchItem:
        """Close an open exception that needs no replay; refused while a replay is in flight or after."""
        self.item(exception_id, entities)
        changed = self.exceptions.resolve(exception_id, then=lambda conn: self.audit.record(
            conn, actor, "exception", exception_id, "resolve",
            {"status": ("open", "resolved"), "resolution": (None, resolution)}, via=via))
        if not changed:
            status = self.item(exception_id).exception.status
            raise ProblemError(409, "conflict", "Exception is not open",
                               f"Exception {exception_id} is {status}; only open exceptions can be resolved.",
                               code="not_open")
        return self.item(exception_id)

    def record_replay(self, exception_id: str, actor: str, attempt: int, via: Via | None = None) -> None:
        with self.engine.begin() as conn:
            self.audit.record(conn, actor, "exception", exception_id, "replay",
                              {"status": ("open", "replayed"), "attempt": (None, str(attempt))}, via=via)
