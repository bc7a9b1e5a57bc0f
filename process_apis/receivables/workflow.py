"""The receivables poll: each legal entity's ERP read for invoices changed since that entity's cursor.

One durable step per legal entity. A step reads the ERP page by page (`updated_since` = the cursor,
inclusive, so a change made in the very instant of the last read is read again, not missed) and
records each page in one transaction; the entity's cursor moves to the newest change read together
with the last page. A step re-executed after a crash reads from the old cursor again; recording is
idempotent, so nothing is published twice and nothing is lost.

An ERP that stays unavailable or refuses the read fails its entity only: an owned exception names
the entity, the other entities are polled, and the run ends `needs_attention`. Its cursor has not
moved, so the next poll (or the exception's replay) reads what was missed.
"""

from __future__ import annotations

import hashlib
from functools import partial
from typing import Final

import msgspec
from dbos import DBOS

from contracts.billing import Invoice
from contracts.common import Page
from contracts.runs import RunStatus, Violation
from foundation.tracing import span
from foundation.workflow_queue import start_workflow
from process_apis._internal.crashes import describe, record_crash
from process_apis._internal.single_runs import take_follow_up
from process_apis._internal.steps import StepExhausted, retrying
from process_apis._internal.system_clients import BusinessFailure
from process_apis.receivables.runtime import runtime
from process_apis.receivables.state import PROCESS, START_SCOPE, Recorded

__all__ = ["INTEGRATION_OPS", "PROCESS", "STEPS", "exception_id_for", "poll_receivables", "workflow_id"]

STEPS: Final = ("read_erp", "poll", "finish")
INTEGRATION_OPS: Final = "integration-operations"


class EntityPoll(msgspec.Struct, frozen=True, kw_only=True):
    recorded: Recorded = Recorded()
    exception_id: str | None = None


def workflow_id(run_id: str, attempt: int) -> str:
    return f"{run_id}:a{attempt}"


def exception_id_for(run_id: str, attempt: int, entity: str) -> str:
    return "exc_" + hashlib.sha256(f"{workflow_id(run_id, attempt)}:{entity}".encode()).hexdigest()[:16]


def _progress(entities_done: int, entities: int, totals: Recorded) -> dict[str, str]:
    return {"entities": f"{entities_done}/{entities}", "invoices_read": str(totals.read),
            "changed": str(totals.changed), "posted": str(totals.posted), "payments": str(totals.payments)}


@DBOS.step(name="receivables.read_erp")
async def read_legal_entities(run_id: str) -> dict[str, str]:
    """ERP legal-entity ids by code: each poll asks for one entity's account and keeps that entity's invoices.

    The list merges every ERP account, so one account down fails it: the entities polled before are then
    polled as they were known (each ERP still answers for its own), and only a first poll fails outright.
    """
    rt = runtime()
    rt.runs.step(run_id, "read_erp", "running", attempt=True)
    try:
        entities = await retrying(rt.erp.legal_entities, retry=rt.retry, sleep=rt.sleep, exhausted_as="read_erp")
    except (StepExhausted, BusinessFailure) as exc:
        known = rt.state.known_entities()
        if not known:
            rt.runs.step(run_id, "read_erp", "failed", detail=str(exc))
            raise
        rt.runs.step(run_id, "read_erp", "succeeded", vendor_ids={"legal_entities": str(len(known))},
                     detail=f"the ERPs' entity list failed ({exc}); polling the {len(known)} entities known")
        return known
    rt.runs.step(run_id, "read_erp", "succeeded", vendor_ids={"legal_entities": str(len(entities))})
    return {e.code: e.id for e in entities}


@DBOS.step(name="receivables.poll_entity")
async def poll_entity(run_id: str, attempt: int, code: str, entity_id: str, position: int, count: int,
                      before: Recorded) -> EntityPoll:
    rt = runtime()
    rt.runs.step(run_id, "poll", "running", attempt=True)
    since = rt.state.cursor(code)
    counts = Recorded()
    newest = since
    cursor: str | None = None
    try:
        while True:
            page: Page[Invoice] = await retrying(
                partial(rt.erp.invoice_changes, code, since, cursor, rt.page_size),
                retry=rt.retry, sleep=rt.sleep, exhausted_as="poll")
            # A shared account lists every entity's invoices; this entity keeps its own.
            mine = [i for i in page.items if i.legal_entity_id in (entity_id, code)]
            changes = [i.updated_at for i in mine if i.updated_at is not None]
            newest = max([*changes, *([newest] if newest else [])], default=None)
            cursor = page.next_cursor
            counts = counts + rt.state.record(code, entity_id, run_id, mine, last=not cursor, cursor=newest)
            rt.runs.step(run_id, "poll", "running", vendor_ids=_progress(position, count, before + counts))
            if not cursor:
                return EntityPoll(recorded=counts)
    except (StepExhausted, BusinessFailure) as exc:
        owner = INTEGRATION_OPS
        record = rt.exceptions.open(PROCESS, run_id, code, [Violation(
            code="vendor_unavailable" if isinstance(exc, StepExhausted) else (exc.code or "rejected"),
            detail=f"{code}: invoices could not be read from the ERP: {exc}", owner=owner)],
            exception_id=exception_id_for(run_id, attempt, code))
        return EntityPoll(recorded=counts, exception_id=record.id)


@DBOS.step(name="receivables.finish")
async def finish(run_id: str, totals: Recorded, entities: int, exception_ids: list[str]) -> str:
    rt = runtime()
    status: RunStatus = "needs_attention" if exception_ids else "succeeded"
    result = _progress(entities, entities, totals)
    rt.runs.step(run_id, "poll", "failed" if exception_ids else "succeeded", vendor_ids=result,
                 detail=f"{len(exception_ids)} legal entit(y/ies) not read" if exception_ids else None)
    rt.runs.step(run_id, "finish", "succeeded", vendor_ids=result)
    rt.runs.set_status(run_id, status, result=result, exception_id=exception_ids[0] if exception_ids else None)
    return status


@DBOS.step(name="receivables.crashed")
async def crashed(run_id: str, attempt: int, error: str) -> str:
    rt = runtime()
    record_crash(rt.runs, rt.exceptions, PROCESS, run_id, attempt, error)
    return "failed"


@DBOS.step(name="receivables.follow_up")
async def follow_up() -> str | None:
    """The id of the poll to run next, when an ERP reported a change while this one was in flight."""
    rt = runtime()
    run = take_follow_up(rt.runs, PROCESS, START_SCOPE, "rcv", STEPS)
    return run.id if run is not None else None


@DBOS.workflow(name="receivables.poll")
async def poll_receivables(run_id: str, attempt: int, entities_only: list[str] | None) -> str:
    """Poll every legal entity's ERP (or `entities_only`); returns the run's final status."""
    try:
        with span("process receivables", {"psconnect.run_id": run_id}):
            status = await _poll(run_id, attempt, entities_only)
    except Exception as exc:
        return await crashed(run_id, attempt, describe(exc))
    following = await follow_up()
    if following is not None:
        await start_workflow(workflow_id(following, 1), poll_receivables, following, 1, None)
    return status


async def _poll(run_id: str, attempt: int, entities_only: list[str] | None) -> str:
    try:
        entities = await read_legal_entities(run_id)
    except (StepExhausted, BusinessFailure) as exc:
        rt = runtime()
        record = rt.exceptions.open(PROCESS, run_id, "*", [Violation(
            code="vendor_unavailable", detail=str(exc), owner=INTEGRATION_OPS)],
            exception_id=exception_id_for(run_id, attempt, "*"))
        rt.runs.set_status(run_id, "failed", exception_id=record.id)
        rt.runs.skip_pending(run_id)
        return "failed"
    chosen = sorted(c for c in entities if entities_only is None or c in entities_only)
    totals = Recorded()
    failed: list[str] = []
    for position, code in enumerate(chosen, start=1):
        polled = await poll_entity(run_id, attempt, code, entities[code], position, len(chosen), totals)
        totals = totals + polled.recorded
        if polled.exception_id:
            failed.append(polled.exception_id)
    return await finish(run_id, totals, len(chosen), failed)
