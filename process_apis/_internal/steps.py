"""Running one durable step: progress on the run resource, retries for transient failures.

The retry loop lives inside the step (not in DBOS's step retries) because it must
honour each answer's `Retry-After` and count attempts on the run resource people
watch. A step that exhausts its retries raises `StepExhausted`; the workflow turns
that into an exception record, so a long outage loses nothing and can be replayed.
`retrying` is that loop on its own, for calls that record progress their own way or
answer a caller directly (`unavailable`: the 503 a request gets when a system API
stays down).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from contracts.problems import ProblemError, upstream_unavailable
from foundation import metrics
from foundation.retry import RetryPolicy
from foundation.tracing import span
from process_apis._internal.runs import RunStore
from process_apis._internal.system_clients import BusinessFailure, TransientFailure

__all__ = ["StepExhausted", "retrying", "run_step", "unavailable"]

T = TypeVar("T")


class StepExhausted(Exception):
    def __init__(self, step: str, last_error: str) -> None:
        super().__init__(step, last_error)
        self.step = step
        self.last_error = last_error

    def __str__(self) -> str:
        return f"step {self.step} gave up after retries: {self.last_error}"


async def retrying(fn: Callable[[], Awaitable[T]], *, retry: RetryPolicy,
                   sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                   on_retry: Callable[[TransientFailure], None] | None = None, exhausted_as: str | None = None) -> T:
    """Call `fn`, retrying `TransientFailure` with backoff that honours Retry-After.

    The last failure propagates as it is, or as `StepExhausted(exhausted_as, ...)` when a step name is given.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return await fn()
        except TransientFailure as exc:
            if attempt >= retry.max_attempts:
                if exhausted_as is not None:
                    raise StepExhausted(exhausted_as, str(exc)) from exc
                raise
            if on_retry is not None:
                on_retry(exc)
            await sleep(retry.delay(attempt, exc.retry_after))


def unavailable(exc: TransientFailure, what: str) -> ProblemError:
    """The 503 a caller gets when a system API stays down, with the Retry-After it announced."""
    return upstream_unavailable(f"{what} unavailable", str(exc), exc.retry_after)


async def run_step(runs: RunStore, run_id: str, name: str, fn: Callable[[], Awaitable[T]], *,
                   retry: RetryPolicy, vendor_ids: Callable[[T], dict[str, str]] | None = None,
                   sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> T:
    async def attempt() -> T:
        runs.step(run_id, name, "running", attempt=True)
        return await fn()

    started = time.perf_counter()
    outcome = "failed"
    try:
        with span(f"step {name}", {"psconnect.run_id": run_id}):
            result = await retrying(attempt, retry=retry, sleep=sleep, on_retry=lambda exc: runs.step(
                run_id, name, "running", detail=f"retrying after: {exc}"))
        outcome = "succeeded"
    except TransientFailure as exc:
        runs.step(run_id, name, "failed", detail=str(exc))
        raise StepExhausted(name, str(exc)) from exc
    except BusinessFailure as exc:
        runs.step(run_id, name, "failed", detail=str(exc))
        raise
    finally:
        metrics.observe_step(name, outcome, time.perf_counter() - started)
    runs.step(run_id, name, "succeeded", vendor_ids=vendor_ids(result) if vendor_ids else {})
    return result
