"""The audit trail is append-only in the database itself: the application's own engine cannot rewrite it.

On SQLite and on PostgreSQL, an UPDATE and a DELETE of an audit row fail with the table's
own refusal and leave the row as it was; a database whose audit table predates the
API-wide trail gets the new columns and the same triggers at start-up.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from foundation.audit import APPEND_ONLY, AuditLog, Via, audit_events
from foundation.db import create_engine, metadata
from tests.stack import PG_ADMIN_URL


def _postgres() -> Iterator[str]:
    import uuid

    name = f"psconnect_t_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    urls = iter([f"sqlite:///{tmp_path / 'audit.db'}"]) if request.param == "sqlite" else _postgres()
    url = next(urls)
    engine = create_engine(url)
    try:
        metadata.create_all(engine)
        yield engine
    finally:
        engine.dispose()
        next(urls, None)  # drops the PostgreSQL database


def _one_event(engine: sa.Engine) -> dict[str, object]:
    AuditLog(engine).append("app-finance", "billing-run", "run_1", "create", status=202, legal_entity="US01",
                            via=Via(client_id="app-finance", operation_id="timeToBill.startBillingRun"))
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(audit_events)).mappings().one())


def test_update_and_delete_of_an_audit_row_are_refused_by_the_database(engine: sa.Engine) -> None:
    before = _one_event(engine)
    for statement in (audit_events.update().values(status=200, actor="someone-else"),
                      audit_events.delete(),
                      sa.text("DELETE FROM audit_events WHERE id = :id").bindparams(id=before["id"])):
        with pytest.raises(sa.exc.DBAPIError, match=APPEND_ONLY), engine.begin() as conn:
            conn.execute(statement)
    with engine.connect() as conn:
        assert [dict(r) for r in conn.execute(sa.select(audit_events)).mappings()] == [before]


def test_inserting_stays_possible(engine: sa.Engine) -> None:
    _one_event(engine)
    AuditLog(engine).append("app-finance", "exception", "exc_1", "replay", status=202)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_events)).scalar() == 2


def test_an_audit_table_from_before_the_trail_gets_its_columns_and_triggers(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        with engine.begin() as conn:  # the table as the previous release created it
            conn.execute(sa.text(
                "CREATE TABLE audit_events (id VARCHAR(40) PRIMARY KEY, at DATETIME NOT NULL, actor VARCHAR(120) "
                "NOT NULL, entity_type VARCHAR(40) NOT NULL, entity_id VARCHAR(120) NOT NULL, action VARCHAR(40) "
                "NOT NULL, changes JSON NOT NULL)"))
            conn.execute(sa.text("INSERT INTO audit_events VALUES ('aud_old', '2026-01-05 10:00:00', 'ops', "
                                 "'exception', 'exc_1', 'assign', '{}')"))
        metadata.create_all(engine)
        AuditLog(engine).append("app-finance", "exception", "exc_1", "replay", status=202)
        assert [e.action for e in AuditLog(engine).trail("exception", "exc_1")] == ["assign", "replay"]
        with pytest.raises(sa.exc.DBAPIError, match=APPEND_ONLY), engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM audit_events WHERE id = 'aud_old'"))
    finally:
        engine.dispose()
