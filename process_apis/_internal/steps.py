"""Running one durable step: progress on the run resource, retries for transient failures.

The retry loop lives inside the step (not in DBOS's step retries) because it must
honour each answer's `Retry-After` and count attempts on the run resource people
watch. A step that exhausts its retries raises `StepExhausted`; the workflow turns
that into an exception record, so a long outage loses nothing and can be replayed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from process_apis._internal.runs import RunStore
from process_apis._internal.system_clients import BusinessFailure, TransientFailure
from system_apis._internal.http import RetryPolicy

__all__ = ["StepExhausted", "run_step"]

T = TypeVar("T")


class StepExhausted(Exception):
    def __init__(self, step: str, last_error: str) -> None:
        super().__init__(step, last_error)
        self.step = step
        self.last_error = last_error

    def __str__(self) -> str:
        return f"step {self.step} gave up after retries: {self.last_error}"


async def run_step(runs: RunStore, run_id: str, name: str, fn: Callable[[], Awaitable[T]], *,
                   retry: RetryPolicy, vendor_ids: Callable[[T], dict[str, str]] | None = None,
                   sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> T:
    attempt = 0
    while True:
        attempt += 1
        runs.step(run_id, name, "running", attempt=True)
        try:
            result = await fn()
        except TransientFailure as exc:
            if attempt >= retry.max_attempts:
                runs.step(run_id, name, "failed", detail=str(exc))
                raise StepExhausted(name, str(exc)) from exc
            runs.step(run_id, name, "running", detail=f"retrying after: {exc}")
            await sleep(retry.delay(attempt, exc.retry_after))
            continue
        except BusinessFailure as exc:
            runs.step(run_id, name, "failed", detail=str(exc))
            raise
        runs.step(run_id, name, "succeeded", vendor_ids=vendor_ids(result) if vendor_ids else {})
        return result
