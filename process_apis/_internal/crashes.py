"""A workflow that crashes ends `failed` with an owned exception — it never stays `queued` or `running`.

Every process wraps its workflow body: an exception nothing else handled (a bug, bad data
a rule did not foresee) is recorded here, in a durable step of the process, so the run
resource says `failed`, names the exception, and integration operations own it in the
queue with the error text. Replaying it re-runs the process once the cause is fixed.
"""

from __future__ import annotations

import hashlib
from typing import Final

from contracts.runs import Violation
from process_apis._internal.exceptions import ExceptionStore
from process_apis._internal.runs import RunStore

__all__ = ["INTERNAL_ERROR", "describe", "record_crash"]

INTERNAL_ERROR: Final = "internal_error"
OWNER: Final = "integration-operations"


def describe(exc: BaseException) -> str:
    """The error text the exception carries: its type and message, bounded."""
    return f"{type(exc).__name__}: {exc}"[:400]


def record_crash(runs: RunStore, exceptions: ExceptionStore, process: str, run_id: str, attempt: int,
                 error: str) -> str:
    """Mark the run `failed` with an `internal_error` exception (one per run attempt); returns its id."""
    run = runs.get(run_id)
    exception_id = "exc_" + hashlib.sha256(f"{run_id}|a{attempt}|{INTERNAL_ERROR}".encode()).hexdigest()[:16]
    record = exceptions.open(process, run_id, run.subject if run else run_id, [Violation(
        code=INTERNAL_ERROR, detail=f"the {process} workflow crashed: {error}", owner=OWNER)],
        exception_id=exception_id)
    runs.set_status(run_id, "failed", exception_id=record.id)
    runs.skip_pending(run_id)
    return record.id
