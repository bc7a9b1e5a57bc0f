"""A process that runs one at a time (worker sync, receivables poll) starts one run however many starts race.

Each start below runs on its own thread and event loop with its own connections, as starts on two workers
would (two webhook deliveries, a schedule and a client at once), against the same database: PostgreSQL as a
distributed deployment, and SQLite.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from contracts.runs import Run
from foundation.db import create_engine, metadata
from process_apis._internal.runs import RunStore
from process_apis._internal.single_runs import start_or_join
from tests.stack import postgres_database

STARTS = 8


@pytest.fixture(params=["postgresql", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunStore]:
    async def made(url: str) -> RunStore:
        engine = create_engine(url)
        metadata.create_all(engine)
        return RunStore(engine)

    if request.param == "sqlite":
        yield await made(f"sqlite:///{tmp_path / 'runs.db'}")
        return
    async with postgres_database() as url:
        runs = await made(url)
        yield runs
        runs.engine.dispose()


def _race(store: RunStore, launched: list[str]) -> list[tuple[str, bool]]:
    """STARTS starts released at once, each on its own thread and event loop; (run id, started) of each."""
    gate = threading.Barrier(STARTS)

    async def launch(run: Run) -> None:
        launched.append(run.id)

    async def start() -> tuple[str, bool]:
        gate.wait()
        run, started = await start_or_join(store, "race", "race.start", "rc", ("only",), full=False,
                                           idempotency_key=None, launch=launch)
        return run.id, started

    with ThreadPoolExecutor(STARTS) as pool:
        return list(pool.map(lambda _: asyncio.run(start()), range(STARTS)))


async def test_starts_racing_on_several_workers_create_one_run_and_join_it(store: RunStore) -> None:
    launched: list[str] = []
    answers = await asyncio.to_thread(_race, store, launched)
    assert len(answers) == STARTS
    assert len({run_id for run_id, _ in answers}) == 1, answers  # one run, every start answers it
    assert [started for _, started in answers].count(True) == 1 and len(launched) == 1
    assert [r.id for r in store.unfinished("race")] == launched

    # Once it has ended, the next race starts the next run: the slot passes on, once.
    store.set_status(launched[0], "succeeded")
    again = await asyncio.to_thread(_race, store, launched)
    assert len({run_id for run_id, _ in again}) == 1 and len(launched) == 2 and launched[1] != launched[0]
