"""Tables the process APIs own, declared on the shared metadata."""

from __future__ import annotations

import sqlalchemy as sa

from foundation.db import metadata

__all__ = ["events", "exceptions", "idempotency_keys", "run_steps", "runs"]

runs = sa.Table(
    "process_runs", metadata,
    sa.Column("id", sa.String(120), primary_key=True),
    sa.Column("process", sa.String(40), nullable=False),
    sa.Column("subject", sa.String(120), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("result", sa.JSON, nullable=False, default=dict),
    sa.Column("exception_id", sa.String(64)),
    sa.UniqueConstraint("process", "subject", name="uq_process_runs_subject"),
)

run_steps = sa.Table(
    "process_run_steps", metadata,
    sa.Column("run_id", sa.String(120), sa.ForeignKey("process_runs.id"), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(60), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("vendor_ids", sa.JSON, nullable=False, default=dict),
    sa.Column("detail", sa.Text),
)

exceptions = sa.Table(
    "process_exceptions", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("process", sa.String(40), nullable=False),
    sa.Column("run_id", sa.String(120), nullable=False),
    sa.Column("subject", sa.String(120), nullable=False),
    sa.Column("reason", sa.String(80), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("owner", sa.String(80), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("violations", sa.JSON, nullable=False, default=list),
    sa.Column("replay_count", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_process_exceptions_status", "status"),
)

events = sa.Table(
    "events_outbox", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(120), nullable=False, unique=True),
    sa.Column("type", sa.String(120), nullable=False),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("subject", sa.String(200)),
    sa.Column("time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
)

idempotency_keys = sa.Table(
    "process_idempotency_keys", metadata,
    sa.Column("scope", sa.String(80), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(120), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
