"""Executor leases on a real PostgreSQL database: one winner per dead executor, live leases left alone.

The processes are `Executors` objects with their own engines (as separate processes have);
what a claim hands to DBOS is recorded instead of run, since these tests are about who claims.
The DBOS side (re-enqueue, one runner) is proven with real processes in test_executors.py.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa

from foundation.db import create_engine, metadata
from gateway.executors import Executors, workflow_executors
from gateway.settings import load_settings
from tests.stack import postgres_database

pytestmark = pytest.mark.postgres


class Process:
    """One gateway process's executor bookkeeping, with the executors it recovered."""

    def __init__(self, url: str, home: Path, *, ttl: float) -> None:
        self.engine = create_engine(url)
        self.recovered: list[str] = []
        settings = load_settings(env={"DATABASE_URL": url, "PSCONNECT_HOME": str(home)})
        self.executors = Executors(settings, self.engine, ttl=ttl, recover=self._recover)
        self.executors.configure({})

    def _recover(self, executor_ids: Sequence[str]) -> None:
        self.recovered += executor_ids


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with postgres_database() as db:
        engine = create_engine(db)
        metadata.create_all(engine, tables=[workflow_executors])
        engine.dispose()
        yield db


Spawn = Callable[[], Process]


@pytest.fixture
def process(url: str, tmp_path: Path) -> Iterator[Spawn]:
    made: list[Process] = []

    def spawn() -> Process:
        made.append(Process(url, tmp_path, ttl=15))
        return made[-1]

    yield spawn
    for p in made:
        p.engine.dispose()


def _lapse(engine: sa.Engine, executor_id: str) -> None:
    """What a SIGKILL amounts to once `ttl` has passed: a lease nobody renewed."""
    with engine.begin() as conn:
        conn.execute(workflow_executors.update().where(workflow_executors.c.executor_id == executor_id)
                     .values(lease_until=sa.func.now() - sa.text("interval '1 second'")))


def test_embedded_keeps_dbos_default_executor(tmp_path: Path) -> None:
    settings = load_settings(env={}, home=str(tmp_path))
    engine = create_engine(settings.database_url)
    executors = Executors(settings, engine)
    assert executors.configure({"name": "psconnect"}) == {"name": "psconnect"}  # DBOS keeps "local"
    assert executors.executor_id == "local" and not executors.shared
    engine.dispose()


def test_every_start_is_a_new_executor(process: Spawn) -> None:
    one, two = process(), process()
    ids = {one.executors.executor_id, two.executors.executor_id}
    assert len(ids) == 2 and "local" not in ids
    before = one.executors.executor_id
    assert one.executors.configure({})["executor_id"] not in {before, "local"}  # a restart is a new executor too


def test_live_leases_are_never_claimed(process: Spawn) -> None:
    processes = [process() for _ in range(3)]
    for p in processes:
        p.executors.renew()
    for p in processes:
        assert p.executors.sweep() == []
    assert all(p.recovered == [] for p in processes)


def test_a_dead_executor_is_recovered_by_exactly_one_of_many_concurrent_survivors(process: Spawn) -> None:
    dead = process()
    dead.executors.renew()
    _lapse(dead.engine, dead.executors.executor_id)
    survivors = [process() for _ in range(8)]
    for s in survivors:
        s.executors.renew()
    gate = threading.Barrier(len(survivors))

    def sweep(s: Process) -> None:
        gate.wait()
        s.executors.sweep()

    threads = [threading.Thread(target=sweep, args=(s,)) for s in survivors]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(e for s in survivors for e in s.recovered) == [dead.executors.executor_id]
    with dead.engine.connect() as conn:
        left = set(conn.execute(sa.select(workflow_executors.c.executor_id)).scalars())
    assert left == {s.executors.executor_id for s in survivors}  # the dead row is gone once recovered


def test_a_claimer_that_dies_mid_recovery_leaves_the_claim_to_another(process: Spawn) -> None:
    dead, first, second = (process() for _ in range(3))
    for p in (dead, first, second):
        p.executors.renew()
    _lapse(dead.engine, dead.executors.executor_id)
    assert first.executors.claim_lapsed() == [dead.executors.executor_id]  # ... and dies before recovering
    assert second.executors.sweep() == []  # the claim renewed the lease: not lapsed yet
    _lapse(dead.engine, dead.executors.executor_id)  # the claim's lease ran out too
    _lapse(dead.engine, first.executors.executor_id)
    assert second.executors.sweep() == sorted([dead.executors.executor_id, first.executors.executor_id])


def test_a_process_taken_for_dead_takes_a_lease_again_once_recovered(process: Spawn) -> None:
    stalled, survivor = process(), process()
    stalled.executors.renew()
    survivor.executors.renew()
    _lapse(stalled.engine, stalled.executors.executor_id)
    assert survivor.executors.sweep() == [stalled.executors.executor_id]
    stalled.executors.renew()  # wakes up: its old workflows moved on; new ones are covered by a new lease
    assert survivor.executors.sweep() == []
    with stalled.engine.connect() as conn:
        row = conn.execute(sa.select(workflow_executors).where(
            workflow_executors.c.executor_id == stalled.executors.executor_id)).one()
    assert row.claimed_by is None
