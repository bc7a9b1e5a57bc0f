"""The audit trail: who did what to which record, when, through which operation, and how it ended.

One table, `audit_events`, for everything finance must be able to show afterwards:
the workbench's actions on an exception, the portal's changes to an application, and
every write on the system and process APIs (recorded by the `audit` policy, which also
records writes the gateway refused, with their status and problem code).

Append-only, enforced by the database: triggers created with the table refuse every
UPDATE and DELETE (and, on PostgreSQL, TRUNCATE), so not even a bug in psconnect — or
someone with the application's own connection — can rewrite what happened. Code only
ever inserts.

The columns after `changes` came with the API-wide trail; they are nullable, and a
database created before them gets them (and the triggers) when the tables are next
created (`metadata.create_all` at start-up, see `_upgrade`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.pool import StaticPool

from contracts.audit import AuditEntry
from contracts.workbench import AuditEvent
from foundation.clock import as_utc, utcnow
from foundation.db import metadata
from foundation.identity import Principal, RequestContext

__all__ = [
    "APPEND_ONLY",
    "DELEGATE_SCOPE",
    "AuditLog",
    "AuditQuery",
    "Via",
    "audit_events",
    "person_of",
    "via_of",
]

DELEGATE_SCOPE = "experience.console:write"
"""Only a principal holding this scope (the operations console) may name the person it acts for."""
_PERSON = re.compile(r"^[^\s@,;]{1,64}@[^\s@,;]{1,190}$")
APPEND_ONLY = "audit_events is append-only"
"""The text of the database's refusal of an UPDATE or DELETE (both dialects)."""

audit_events = sa.Table(
    "audit_events", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(120), nullable=False),
    sa.Column("entity_type", sa.String(40), nullable=False),
    sa.Column("entity_id", sa.String(120), nullable=False),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("changes", sa.JSON, nullable=False),
    # The API-wide trail (nullable: the portal's rows carry none of it, older rows predate it).
    sa.Column("client_id", sa.String(120), nullable=True),
    sa.Column("person", sa.String(255), nullable=True),
    sa.Column("api", sa.String(80), nullable=True),
    sa.Column("operation_id", sa.String(120), nullable=True),
    sa.Column("method", sa.String(10), nullable=True),
    sa.Column("path", sa.String(500), nullable=True),
    sa.Column("legal_entity", sa.String(120), nullable=True),
    sa.Column("correlation_id", sa.String(120), nullable=True),
    sa.Column("status", sa.Integer, nullable=True),
    sa.Column("problem_code", sa.String(80), nullable=True),
    sa.Column("records", sa.JSON, nullable=True),
    sa.Index("ix_audit_entity", "entity_type", "entity_id"),
    sa.Index("ix_audit_at", "at", "id"),
    sa.Index("ix_audit_client", "client_id", "at"),
    sa.Index("ix_audit_legal_entity", "legal_entity", "at"),
)

_INSERT = audit_events.insert()


def _row(actor: str, entity_type: str, entity_id: str, action: str,
         changes: Mapping[str, tuple[str | None, str | None]], *, via: Via | None = None,
         legal_entity: str | None = None, status: int | None = None, problem_code: str | None = None,
         records: Mapping[str, Collection[str]] | None = None) -> dict[str, Any]:
    """One event's row. One statement serves every event, the values as parameters: `.values(...)` with JSON
    values made a new statement per call, which SQLAlchemy compiled again each time (issue 15)."""
    via = via or Via()
    return {"id": f"aud_{uuid.uuid4().hex[:20]}", "at": utcnow(), "actor": actor[:120],
            "entity_type": entity_type[:40], "entity_id": entity_id[:120], "action": action[:40],
            "changes": {k: list(v) for k, v in changes.items()}, "client_id": via.client_id, "person": via.person,
            "api": via.api, "operation_id": via.operation_id, "method": via.method, "path": via.path,
            "correlation_id": via.correlation_id, "legal_entity": legal_entity or via.legal_entity or None,
            "status": status if status is not None else via.status, "problem_code": problem_code,
            "records": None if records is None else {k: sorted(v) for k, v in records.items()}}


_NEW_COLUMNS = ("client_id", "person", "api", "operation_id", "method", "path", "legal_entity", "correlation_id",
                "status", "problem_code", "records")

# -- append-only, in the database -------------------------------------------------------------------------------

_SQLITE_TRIGGERS = tuple(
    f"CREATE TRIGGER IF NOT EXISTS audit_events_no_{op.lower()} BEFORE {op} ON audit_events "
    f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}: {op} refused'); END"
    for op in ("UPDATE", "DELETE"))
_PG_FUNCTION = (
    "CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    f"BEGIN RAISE EXCEPTION '{APPEND_ONLY}: % refused', TG_OP USING ERRCODE = 'insufficient_privilege'; END $$")
_PG_TRIGGERS = (
    "CREATE OR REPLACE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events "
    "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()",
    "CREATE OR REPLACE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()",
)

for _sql in _SQLITE_TRIGGERS:
    sa.event.listen(audit_events, "after_create",
                    sa.DDL(_sql).execute_if(dialect="sqlite"))  # type: ignore[no-untyped-call]
for _sql in (_PG_FUNCTION, *_PG_TRIGGERS):  # DDL formats with %: the function's own % doubled
    sa.event.listen(audit_events, "after_create",
                    sa.DDL(_sql.replace("%", "%%")).execute_if(dialect="postgresql"))  # type: ignore[no-untyped-call]


@sa.event.listens_for(metadata, "after_create")
def _upgrade(target: sa.MetaData, connection: sa.Connection, **_: Any) -> None:
    """A database whose audit table predates the API-wide trail: add its columns and triggers.

    Runs after every `create_all`; on an up-to-date table it only reads the column list.
    Nullable columns only, so adding them never rewrites a row.
    """
    inspector = sa.inspect(connection)
    if not inspector.has_table("audit_events"):
        return
    present = {c["name"] for c in inspector.get_columns("audit_events")}
    missing = [c for c in _NEW_COLUMNS if c not in present]
    if not missing:
        return
    for name in missing:
        column = audit_events.c[name]
        kind = column.type.compile(dialect=connection.dialect)
        connection.execute(sa.text(f"ALTER TABLE audit_events ADD COLUMN {name} {kind}"))
    statements = _SQLITE_TRIGGERS if connection.dialect.name == "sqlite" else (_PG_FUNCTION, *_PG_TRIGGERS)
    for sql in statements:
        connection.execute(sa.text(sql))
    for index in audit_events.indexes:
        index.create(connection, checkfirst=True)


# -- who and through what ---------------------------------------------------------------------------------------


def person_of(principal: Principal, on_behalf_of: str | None) -> str | None:
    """The person a delegating caller (the console) acts for; None for anyone else, whatever they claim."""
    if on_behalf_of and DELEGATE_SCOPE in principal.scopes and _PERSON.match(on_behalf_of):
        return on_behalf_of
    return None


class Via(msgspec.Struct, frozen=True, kw_only=True):
    """How an action reached psconnect: the calling client, the person, the operation, the request's id."""

    client_id: str | None = None
    person: str | None = None
    api: str | None = None
    operation_id: str | None = None
    method: str | None = None
    path: str | None = None
    correlation_id: str | None = None
    status: int | None = None
    """The answer the request gets when the recorded change commits (the handler's success status)."""
    legal_entity: str | None = None


def via_of(scope: Mapping[str, Any]) -> Via | None:
    """The `Via` of a governed request, from the context the policy chain put on its ASGI scope."""
    ctx = scope.get("state", {}).get("policy_context")
    if not isinstance(ctx, RequestContext):
        return None
    principal = ctx.principal
    handler = scope.get("route_handler")
    status = getattr(handler, "status_code", None)
    return Via(client_id=principal.client_id if principal else None,
               person=person_of(principal, ctx.request.headers.get("x-on-behalf-of")) if principal else None,
               api=ctx.route.api, operation_id=ctx.route.operation_id, method=ctx.route.method,
               path=ctx.route.path[:500], correlation_id=ctx.correlation_id or None,
               status=status if isinstance(status, int) else None)


class AuditQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Filters of the trail as the audit API and the console read it; None = any."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    client_id: str | None = None
    operation_id: str | None = None
    legal_entities: frozenset[str] | None = None
    """Rows of these legal-entity values only (every alias of the granted entities); None = every row."""
    outcome: str | None = None
    """`success` (< 400, or recorded by the change itself), `refused` (4xx) or `error` (5xx)."""
    entity_id: str | None = None


_Event = tuple[str, str, str, str, dict[str, Any]]
_Waiting = tuple[asyncio.Future[None], _Event]
_WRITER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="psconnect-audit")
"""The audit writer: one thread for the process, so commits never run on an event loop and one trail never has
two under way; its thread starts with the first write (after any fork of the server's workers)."""


class AuditLog:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._pending: list[_Waiting] = []
        self._writing = False  # a write is on the writer thread, or scheduled
        self._one_connection = isinstance(engine.pool, StaticPool)

    def record(self, conn: sa.Connection, actor: str, entity_type: str, entity_id: str, action: str,
               changes: Mapping[str, tuple[str | None, str | None]], *, via: Via | None = None,
               legal_entity: str | None = None, status: int | None = None, problem_code: str | None = None,
               records: Mapping[str, Collection[str]] | None = None) -> None:
        """Append one event inside the caller's transaction, so the change and its audit commit together.

        `via` says how the request came (client, person, operation, correlation id); `status`
        and `legal_entity` override its own.
        """
        conn.execute(_INSERT, _row(actor, entity_type, entity_id, action, changes, via=via, legal_entity=legal_entity,
                                   status=status, problem_code=problem_code, records=records))

    def append(self, actor: str, entity_type: str, entity_id: str, action: str, **fields: Any) -> None:
        """`record` in a transaction of its own (a request's outcome, recorded after it was answered)."""
        with self.engine.begin() as conn:
            self.record(conn, actor, entity_type, entity_id, action, fields.pop("changes", {}), **fields)

    async def append_soon(self, actor: str, entity_type: str, entity_id: str, action: str, **fields: Any) -> None:
        """`append`, committed with the other events waiting for the writer: returns once it is committed.

        Group commit, off the event loop (issue 15): the commit was most of the audit policy's cost per
        write, and on the loop it stalled every other request for its length (a network round trip on
        PostgreSQL). One write at a time runs on the audit writer thread; the events that arrive while it
        runs wait for the next, so the busier the gateway the more events share a commit. Each caller
        still waits for its own event to be committed before it goes on (the policy sends the last byte
        of the answer only then), so no answer completes without its event.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append((done, (actor, entity_type, entity_id, action, fields)))
        if not self._writing:
            self._writing = True
            loop.call_soon(self._write_pending, loop)  # after this turn's other requests have joined
        await done

    def _write_pending(self, loop: asyncio.AbstractEventLoop) -> None:
        pending, self._pending = self._pending, []
        events = [event for _, event in pending]
        if self._one_connection:  # an in-memory database's single connection is never used from two threads
            self._written(loop, pending, self._commit(events))
            return
        try:
            written = loop.run_in_executor(_WRITER, self._commit, events)
        except RuntimeError as exc:  # the interpreter is shutting down: the callers hear it, none waits forever
            self._written(loop, pending, [exc] * len(events))
            return
        written.add_done_callback(lambda outcome: self._written(loop, pending, outcome.result()))

    def _written(self, loop: asyncio.AbstractEventLoop, pending: list[_Waiting],
                 failures: list[Exception | None]) -> None:
        for (done, _), failure in zip(pending, failures, strict=True):
            if done.done():  # its request was cancelled (the client left); the event is stored all the same
                continue
            if failure is None:
                done.set_result(None)
            else:  # handed to the caller, who reports it
                done.set_exception(failure)
        if self._pending:
            self._write_pending(loop)
        else:
            self._writing = False

    def _commit(self, events: list[_Event]) -> list[Exception | None]:
        """The events in one `executemany`, each on its own when that fails, so one bad event does not lose the
        others; what failed, per event. On the writer thread (on the loop for an in-memory database)."""
        try:
            rows = [_row(actor, entity_type, entity_id, action, dict(fields.get("changes", {})),
                         **{k: v for k, v in fields.items() if k != "changes"})
                    for actor, entity_type, entity_id, action, fields in events]
            with self.engine.begin() as conn:
                conn.execute(_INSERT, rows)
            return [None] * len(events)
        except Exception:
            failures: list[Exception | None] = []
            for actor, entity_type, entity_id, action, fields in events:
                try:
                    self.append(actor, entity_type, entity_id, action, **fields)
                    failures.append(None)
                except Exception as exc:
                    failures.append(exc)
            return failures

    def trail(self, entity_type: str, entity_id: str) -> list[AuditEvent]:
        """What was done to one record, oldest first; attempts that were refused are not actions on it."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(audit_events).where(
                audit_events.c.entity_type == entity_type, audit_events.c.entity_id == entity_id,
                sa.or_(audit_events.c.status.is_(None), audit_events.c.status < 400))
                .order_by(audit_events.c.at, audit_events.c.id)).mappings().all()
        return [AuditEvent(id=r["id"], at=as_utc(r["at"]), actor=r["actor"], entity_type=r["entity_type"],
                           entity_id=r["entity_id"], action=r["action"],
                           changes=msgspec.convert(r["changes"], dict[str, list[str | None]])) for r in rows]

    def events(self, query: AuditQuery, *, limit: int, after: tuple[dt.datetime, str] | None = None,
               ) -> list[AuditEntry]:
        """The trail newest first, `limit` rows after the position `(at, id)` of the previous page's last."""
        c = audit_events.c
        where: list[sa.ColumnElement[bool]] = []
        if query.since is not None:
            where.append(c.at >= query.since)
        if query.until is not None:
            where.append(c.at < query.until)
        if query.client_id is not None:
            where.append(c.client_id == query.client_id)
        if query.operation_id is not None:
            where.append(c.operation_id == query.operation_id)
        if query.entity_id is not None:
            where.append(c.entity_id == query.entity_id)
        if query.legal_entities is not None:
            where.append(c.legal_entity.in_(sorted(query.legal_entities)))
        if query.outcome == "success":
            where.append(sa.or_(c.status.is_(None), c.status < 400))
        elif query.outcome == "refused":
            where.append(sa.and_(c.status >= 400, c.status < 500))
        elif query.outcome == "error":
            where.append(c.status >= 500)
        if after is not None:
            at, event_id = after
            where.append(sa.or_(c.at < at, sa.and_(c.at == at, c.id < event_id)))
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(audit_events).where(*where).order_by(c.at.desc(), c.id.desc())
                                .limit(limit)).mappings().all()
        return [_entry(r) for r in rows]


def _entry(r: sa.RowMapping) -> AuditEntry:
    return AuditEntry(
        id=r["id"], at=as_utc(r["at"]), actor=r["actor"], client_id=r["client_id"], person=r["person"],
        api=r["api"], operation_id=r["operation_id"], method=r["method"], path=r["path"],
        entity_type=r["entity_type"], entity_id=r["entity_id"], action=r["action"], legal_entity=r["legal_entity"],
        correlation_id=r["correlation_id"], status=r["status"], problem_code=r["problem_code"],
        records=msgspec.convert(r["records"] or {}, dict[str, list[str]]),
        changes=msgspec.convert(r["changes"] or {}, dict[str, list[str | None]]))
