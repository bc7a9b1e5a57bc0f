"""Writes waiting for the audit writer share a commit, off the event loop, and each caller returns only once its
event is stored."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from foundation.audit import AuditLog, AuditQuery
from foundation.db import create_engine, metadata


def _trail(tmp_path: Path) -> AuditLog:
    engine = create_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    metadata.create_all(engine)
    return AuditLog(engine)


async def test_concurrent_writes_are_each_committed_before_their_caller_goes_on(tmp_path: Path) -> None:
    trail = _trail(tmp_path)
    stored_on_return: list[bool] = []

    async def write(n: int) -> None:
        await trail.append_soon("client-a", "order", f"ord-{n}", "create", changes={}, status=200)
        # visible to any reader (another connection) as soon as the call returns
        stored_on_return.append(len(trail.events(AuditQuery(entity_id=f"ord-{n}"), limit=5)) == 1)

    await asyncio.gather(*(write(n) for n in range(25)))
    assert stored_on_return == [True] * 25
    assert {e.entity_id for e in trail.events(AuditQuery(), limit=100)} == {f"ord-{n}" for n in range(25)}


async def test_one_event_that_cannot_be_stored_does_not_lose_the_others(tmp_path: Path) -> None:
    trail = _trail(tmp_path)
    good = [trail.append_soon("client-a", "order", f"ord-{n}", "create", changes={}, status=201) for n in range(3)]
    bad = trail.append_soon("client-a", "order", "ord-bad", "create", changes={"x": (object(), None)}, status=201)
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    assert results[:3] == [None, None, None] and isinstance(results[3], Exception)
    assert sorted(e.entity_id for e in trail.events(AuditQuery(), limit=100)) == ["ord-0", "ord-1", "ord-2"]


async def test_a_slow_audit_database_does_not_stall_other_requests(tmp_path: Path) -> None:
    """The commit runs off the event loop: while it waits on the database, the loop goes on serving; the events
    that arrive meanwhile are committed together by the next write, each caller returning once its own is."""
    trail = _trail(tmp_path)
    writers: set[str] = set()

    @sa.event.listens_for(trail.engine, "before_cursor_execute")
    def slow_insert(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO audit_events"):
            writers.add(threading.current_thread().name)
            time.sleep(0.2)  # a database under load, or far away

    ticks = 0

    async def other_requests() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(other_requests())
    first = asyncio.create_task(trail.append_soon("client-a", "order", "ord-0", "create", changes={}, status=201))
    await asyncio.sleep(0.05)  # the first write is under way; these wait for the next
    await asyncio.gather(first, *(trail.append_soon("client-a", "order", f"ord-{n}", "create", changes={}, status=201)
                                  for n in range(1, 6)))
    ticker.cancel()
    assert ticks >= 10  # 0.2-0.4 s of writes (one or two commits); with the commit on the loop it ticked twice
    assert threading.current_thread().name not in writers
    assert {e.entity_id for e in trail.events(AuditQuery(), limit=10)} == {f"ord-{n}" for n in range(6)}


def test_outside_an_event_loop_append_still_writes_at_once(tmp_path: Path) -> None:
    trail = _trail(tmp_path)
    trail.append("client-a", "order", "ord-1", "create", changes={}, status=200)
    assert [e.entity_id for e in trail.events(AuditQuery(), limit=10)] == ["ord-1"]
