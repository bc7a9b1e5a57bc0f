"""The worker-sync workflow: HR page by page, each changed worker upserted to the PSA and the ERP.

Durability: each HR page is read in one step and synced in the next, so a process
killed mid-run resumes at the first unfinished page; a batch step re-executed after a
crash skips the workers it already synced (their fingerprints were stored as each
finished) and re-upserts the rest — upserts by HR id, so nothing is created twice.

Failure classes: a PSA or ERP refusal for one worker (4xx) becomes an exception
record for that worker and the others carry on; a system API that stays unavailable
past the retries stops the run as `failed` with one exception — the workers not yet
synced have no fingerprint, so the next run (or a replay) picks them up.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Final, Literal, TypeVar

import msgspec
import sqlalchemy as sa
from dbos import DBOS

from contracts.common import Page
from contracts.events import WORKER_SYNCED
from contracts.runs import Violation
from contracts.workforce import Worker
from foundation.clock import utcnow
from foundation.tracing import span
from process_apis._internal.crashes import describe, record_crash
from process_apis._internal.events import EventOutbox, event
from process_apis._internal.exceptions import publish_resolved
from process_apis._internal.steps import StepExhausted, retrying
from process_apis._internal.system_clients import BusinessFailure
from process_apis._internal.tables import exceptions, run_steps
from process_apis.worker_sync.runtime import Runtime, runtime
from process_apis.worker_sync.state import employee_for, fingerprint, psa_user_for

__all__ = ["INTEGRATION_OPS", "PROCESS", "STEPS", "SyncCounts", "exception_id_for", "sync_workers",
           "workflow_id"]

PROCESS: Final = "worker_sync"
STEPS: Final = ("read_erp", "read_hr", "sync_workers", "finish")
INTEGRATION_OPS: Final = "integration-operations"
HR_MASTER_DATA: Final = "hr-master-data"
FINANCE_MASTER_DATA: Final = "finance-master-data"

T = TypeVar("T")


class SyncCounts(msgspec.Struct, frozen=True, kw_only=True):
    """Progress of one run, summed over its batches."""

    pages: int = 0
    workers: int = 0
    changed: int = 0
    synced: int = 0
    failed: int = 0
    exception_ids: tuple[str, ...] = ()

    def __add__(self, other: SyncCounts) -> SyncCounts:
        return SyncCounts(pages=self.pages + other.pages, workers=self.workers + other.workers,
                          changed=self.changed + other.changed, synced=self.synced + other.synced,
                          failed=self.failed + other.failed, exception_ids=self.exception_ids + other.exception_ids)

    def as_ids(self) -> dict[str, str]:
        return {"pages": str(self.pages), "workers": str(self.workers), "changed": str(self.changed),
                "unchanged": str(self.workers - self.changed), "synced": str(self.synced),
                "failed": str(self.failed)}


def workflow_id(run_id: str, attempt: int) -> str:
    return f"{run_id}:a{attempt}"


def exception_id_for(run_id: str, attempt: int, worker_id: str | None = None) -> str:
    """Deterministic, so a re-executed step re-opens the same record instead of a second one."""
    key = workflow_id(run_id, attempt) + (f":{worker_id}" if worker_id else "")
    return "exc_" + hashlib.sha256(key.encode()).hexdigest()[:16]


@DBOS.step(name="worker_sync.read_erp")
async def read_legal_entities(run_id: str) -> dict[str, str]:
    """ERP legal-entity ids by code: HR names a worker's company by code, the ERP employee needs the id."""
    rt = runtime()
    rt.runs.step(run_id, "read_erp", "running", attempt=True)
    try:
        entities = await retrying(rt.erp.legal_entities, retry=rt.retry, sleep=rt.sleep, exhausted_as="read_erp")
    except (StepExhausted, BusinessFailure) as exc:
        rt.runs.step(run_id, "read_erp", "failed", detail=str(exc))
        raise
    rt.runs.step(run_id, "read_erp", "succeeded", vendor_ids={"legal_entities": str(len(entities))})
    return {e.code: e.id for e in entities}


@DBOS.step(name="worker_sync.read_hr")
async def read_hr_page(run_id: str, cursor: str | None, before: SyncCounts) -> Page[Worker]:
    rt = runtime()
    rt.runs.step(run_id, "read_hr", "running", attempt=True)
    try:
        page = await retrying(lambda: rt.hr.list_workers(rt.batch_size, cursor), retry=rt.retry, sleep=rt.sleep,
                              exhausted_as="read_hr")
    except (StepExhausted, BusinessFailure) as exc:
        rt.runs.step(run_id, "read_hr", "failed", detail=str(exc))
        raise
    rt.runs.step(run_id, "read_hr", "running" if page.next_cursor else "succeeded",
                 vendor_ids={"pages": str(before.pages + 1), "workers": str(before.workers + len(page.items))})
    return page


Outcome = tuple[Literal["synced", "failed", "exhausted"], str]


async def _sync_one(rt: Runtime, run_id: str, attempt: int, worker: Worker, print_: str,
                    entities: dict[str, str]) -> Outcome:
    try:
        entity_id = entities.get(worker.legal_entity_code)
        if entity_id is None:
            raise BusinessFailure(422, {"code": "unknown_legal_entity", "detail":
                                        f"the ERP has no legal entity {worker.legal_entity_code!r}"})
        # The worker's id names its HR account (system API ids); the PSA account is its employer's.
        user = await retrying(lambda: rt.psa.upsert_user(worker.id, psa_user_for(worker), worker.legal_entity_code),
                              retry=rt.retry, sleep=rt.sleep, exhausted_as="sync_workers")
        employee = await retrying(lambda: rt.erp.upsert_employee(worker.id, employee_for(worker, entity_id)),
                                  retry=rt.retry, sleep=rt.sleep, exhausted_as="sync_workers")
    except BusinessFailure as exc:
        owner = FINANCE_MASTER_DATA if exc.code == "unknown_legal_entity" else \
            HR_MASTER_DATA if exc.status in (400, 404, 409, 422) else INTEGRATION_OPS
        record = rt.exceptions.open(PROCESS, run_id, worker.id, [Violation(
            code=exc.code or "rejected", detail=f"worker {worker.id}: {exc}", owner=owner)],
            exception_id=exception_id_for(run_id, attempt, worker.id))
        return "failed", record.id
    except StepExhausted as exc:
        return "exhausted", str(exc)
    rt.state.record(worker.id, print_, psa_user_id=user.id, erp_employee_id=employee.id, run_id=run_id)
    _resolve(rt, subject=worker.id)
    return "synced", worker.id


def _resolve(rt: Runtime, *, subject: str | None = None) -> None:
    """Close worker-sync exceptions made moot: one worker's once it synced, or all after a clean run."""
    where = [exceptions.c.process == PROCESS, exceptions.c.status.in_(("open", "replayed"))]
    if subject is not None:
        where.append(exceptions.c.subject == subject)
    with rt.runs.engine.begin() as conn:
        moot = [str(i) for i in conn.execute(sa.select(exceptions.c.id).where(*where)).scalars()]
        if moot:
            conn.execute(exceptions.update().where(exceptions.c.id.in_(moot)).values(status="resolved",
                                                                                    updated_at=utcnow()))
            publish_resolved(conn, moot)


@DBOS.step(name="worker_sync.sync_batch")
async def sync_batch(run_id: str, attempt: int, workers: list[Worker], full: bool, entities: dict[str, str],
                     before: SyncCounts, last: bool) -> SyncCounts:
    """Upsert the changed workers of one HR page; per-worker refusals become exceptions."""
    rt = runtime()
    rt.runs.step(run_id, "sync_workers", "running", attempt=True)
    known = rt.state.fingerprints(w.id for w in workers)
    prints = {w.id: fingerprint(w) for w in workers}
    changed = [w for w in workers if full or known.get(w.id) != prints[w.id]]
    gate = asyncio.Semaphore(rt.concurrency)

    async def one(worker: Worker) -> Outcome:
        async with gate:
            return await _sync_one(rt, run_id, attempt, worker, prints[worker.id], entities)

    outcomes = await asyncio.gather(*(one(w) for w in changed))
    failed = tuple(ref for kind, ref in outcomes if kind == "failed")
    batch = SyncCounts(pages=1, workers=len(workers), changed=len(changed),
                       synced=sum(1 for kind, _ in outcomes if kind == "synced"), failed=len(failed),
                       exception_ids=failed)
    total = before + batch
    exhausted = [ref for kind, ref in outcomes if kind == "exhausted"]
    if exhausted:
        rt.runs.step(run_id, "sync_workers", "failed", vendor_ids=total.as_ids(), detail=exhausted[0])
        raise StepExhausted("sync_workers", exhausted[0])
    rt.runs.step(run_id, "sync_workers", "succeeded" if last else "running", vendor_ids=total.as_ids(),
                 detail=f"{total.failed} worker(s) in the exception queue" if total.failed else None)
    return batch


@DBOS.step(name="worker_sync.finish")
async def finish(run_id: str, totals: SyncCounts) -> str:
    rt = runtime()
    status: Literal["succeeded", "needs_attention"] = "needs_attention" if totals.failed else "succeeded"
    rt.runs.step(run_id, "finish", "succeeded", vendor_ids=totals.as_ids())
    rt.runs.set_status(run_id, status, result=totals.as_ids(),
                       exception_id=totals.exception_ids[0] if totals.exception_ids else None)
    EventOutbox(rt.runs.engine).publish(event(f"{run_id}:synced", WORKER_SYNCED, PROCESS, run_id, {
        "run_id": run_id, "status": status, **totals.as_ids()}))
    if status == "succeeded":
        _resolve(rt)  # HR, PSA and ERP now agree on every worker: older exceptions are moot
    return status


@DBOS.step(name="worker_sync.open_exception")
async def open_exception(run_id: str, subject: str, attempt: int, violation: Violation) -> str:
    rt = runtime()
    record = rt.exceptions.open(PROCESS, run_id, subject, [violation], exception_id=exception_id_for(run_id, attempt))
    rt.runs.set_status(run_id, "failed", exception_id=record.id)
    with rt.runs.engine.begin() as conn:  # steps that never ran will not run in this attempt
        conn.execute(run_steps.update().where(run_steps.c.run_id == run_id, run_steps.c.state == "pending")
                     .values(state="skipped"))
    return record.id


@DBOS.step(name="worker_sync.crashed")
async def crashed(run_id: str, attempt: int, error: str) -> str:
    rt = runtime()
    record_crash(rt.runs, rt.exceptions, PROCESS, run_id, attempt, error)
    return "failed"


@DBOS.workflow(name="worker_sync.sync")
async def sync_workers(run_id: str, subject: str, attempt: int, full: bool) -> str:
    """Sync every HR worker whose PSA/ERP view changed (all of them when `full`); returns the final status.

    A crash anywhere (an error no step handles) ends the run `failed` with an owned exception.
    """
    try:
        with span("process worker_sync", {"psconnect.run_id": run_id}):
            return await _sync_workers(run_id, subject, attempt, full)
    except Exception as exc:
        return await crashed(run_id, attempt, describe(exc))


async def _sync_workers(run_id: str, subject: str, attempt: int, full: bool) -> str:
    try:
        entities = await read_legal_entities(run_id)
        totals = SyncCounts()
        cursor: str | None = None
        while True:
            page = await read_hr_page(run_id, cursor, totals)
            totals = totals + await sync_batch(run_id, attempt, page.items, full, entities, totals,
                                               page.next_cursor is None)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        return await finish(run_id, totals)
    except StepExhausted as exc:
        await open_exception(run_id, subject, attempt, Violation(code="vendor_unavailable", detail=str(exc),
                                                                 owner=INTEGRATION_OPS))
        return "failed"
    except BusinessFailure as exc:  # HR or ERP refused a read: configuration, not data of one worker
        await open_exception(run_id, subject, attempt, Violation(code=exc.code or "rejected", detail=str(exc),
                                                                 owner=INTEGRATION_OPS))
        return "failed"
