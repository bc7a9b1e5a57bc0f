"""The audit trail: who did what to which record, when, and what it changed.

Append-only: rows are inserted, never updated or deleted, so the trail of an
exception (or, later, a portal application) can be shown and trusted as it was.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import msgspec
import sqlalchemy as sa

from contracts.workbench import AuditEvent
from foundation.clock import as_utc, utcnow
from foundation.db import metadata

__all__ = ["AuditLog", "audit_events"]

audit_events = sa.Table(
    "audit_events", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(120), nullable=False),
    sa.Column("entity_type", sa.String(40), nullable=False),
    sa.Column("entity_id", sa.String(120), nullable=False),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("changes", sa.JSON, nullable=False),
    sa.Index("ix_audit_entity", "entity_type", "entity_id"),
)


class AuditLog:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def record(self, conn: sa.Connection, actor: str, entity_type: str, entity_id: str, action: str,
               changes: Mapping[str, tuple[str | None, str | None]]) -> None:
        """Append one event inside the caller's transaction, so the change and its audit commit together."""
        conn.execute(audit_events.insert().values(
            id=f"aud_{uuid.uuid4().hex[:20]}", at=utcnow(), actor=actor, entity_type=entity_type,
            entity_id=entity_id, action=action, changes={k: list(v) for k, v in changes.items()}))

    def trail(self, entity_type: str, entity_id: str) -> list[AuditEvent]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(audit_events).where(
                audit_events.c.entity_type == entity_type, audit_events.c.entity_id == entity_id)
                .order_by(audit_events.c.at, audit_events.c.id)).mappings().all()
        return [AuditEvent(id=r["id"], at=as_utc(r["at"]), actor=r["actor"], entity_type=r["entity_type"],
                           entity_id=r["entity_id"], action=r["action"],
                           changes=msgspec.convert(r["changes"], dict[str, list[str | None]])) for r in rows]
