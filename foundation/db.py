"""The relational store of the gateway and process APIs: SQLite embedded, PostgreSQL distributed.

One SQLAlchemy `MetaData` holds every table psconnect owns; each module that owns a
table declares it against `metadata`, and `create_all` runs at start-up. Queries are
SQLAlchemy Core (portable across both engines), short, and run synchronously:
each is sub-millisecond on SQLite and one round-trip on PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.pool import StaticPool

__all__ = ["create_engine", "insert_new", "metadata"]

metadata = sa.MetaData()


def create_engine(url: str) -> sa.Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url == "sqlite://":
        return sa.create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: object, _record: object) -> None:
            cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return sa.create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


def insert_new(conn: sa.Connection, table: sa.Table, *key: sa.Column[object]) -> sa.Insert:
    """An insert into `table` that skips rows whose `key` is already there (`ON CONFLICT DO NOTHING`, both
    engines): its rowcount says whether this statement wrote the row, even against a concurrent writer."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(key))
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(key))
