"""Process-run contracts shared by every process API: runs, steps, exceptions.

A run is one business transaction (provision this opportunity); its steps show
where it is, how long each took, how often it retried and which vendor records it
created. A business-rule failure becomes an exception record with an owner and a
replay operation — never a silent drop.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from msgspec import Meta

from contracts.common import FrozenStruct, Struct

__all__ = ["ExceptionRecord", "ExceptionStatus", "Run", "RunStatus", "RunStep", "StepState", "Violation"]

RunStatus = Literal["queued", "running", "succeeded", "needs_attention", "failed"]
StepState = Literal["pending", "running", "succeeded", "failed", "skipped"]
ExceptionStatus = Literal["open", "replayed", "resolved"]


class RunStep(Struct):
    name: str
    state: StepState
    attempts: Annotated[int, Meta(ge=0, description="Calls made, retries included.")] = 0
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    duration_ms: float | None = None
    vendor_ids: Annotated[dict[str, str], Meta(description="Records this step created or updated, by kind.")] = {}
    detail: str | None = None


class Run(Struct):
    id: str
    process: Annotated[str, Meta(examples=["provisioning"])]
    subject: Annotated[str, Meta(description="What the run is about, e.g. the opportunity id.")]
    status: RunStatus
    attempt: Annotated[int, Meta(ge=1, description="Incremented by each replay.")]
    created_at: dt.datetime
    updated_at: dt.datetime
    steps: list[RunStep]
    finished_at: dt.datetime | None = None
    result: dict[str, str] = {}
    exception_id: str | None = None


class Violation(FrozenStruct, frozen=True):
    """One broken business rule, with who must fix it."""

    code: Annotated[str, Meta(examples=["missing_tax_id"])]
    detail: str
    owner: Annotated[str, Meta(examples=["finance-master-data"])]


class ExceptionRecord(Struct):
    id: str
    process: str
    run_id: str
    subject: str
    reason: Annotated[str, Meta(description="Code of the first violation or failure class.")]
    detail: str
    owner: str
    status: ExceptionStatus
    created_at: dt.datetime
    updated_at: dt.datetime
    violations: list[Violation] = []
    replay_count: int = 0
