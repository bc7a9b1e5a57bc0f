"""Routes of the time-to-bill process API: `/process/time-to-bill/v1`.

Legal-entity grant (`process_apis/_internal/grants.py`): a restricted caller starts billing
runs only for a granted entity — `*` (every entity) is a 403 for it (it starts one run per
granted entity instead), so no run it starts touches another entity's time. An approval
event whose entries are on another entity's project is a 403; reconciliation by another
entity (or `*`) is a 403, of another entity's project a 404; runs and exceptions are
filtered like the workbench's.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from litestar import Request, Response, Router, get, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, JSONBody, QueryParameter
from msgspec import Meta

from contracts.common import IDEMPOTENCY_KEY_PATTERN, MONTH_PATTERN, Page, Struct
from contracts.events import CloudEvent
from contracts.problems import FieldError, ProblemError
from contracts.revenue import RevenuePeriod
from contracts.runs import Run
from foundation.grants import Grant, entity_grant
from foundation.paging import decode_cursor, encode_cursor
from process_apis._internal.grants import Visibility
from process_apis._internal.routes import Cursor, Limit, Op, constant, record_routes, replay_route
from process_apis._internal.system_clients import BusinessFailure, TransientFailure
from process_apis.attribution import Attribution, entity_aliases
from process_apis.time_to_bill.reconcile import Reconciliation
from process_apis.time_to_bill.revenue import RevenueSchedule
from process_apis.time_to_bill.runtime import runtime
from process_apis.time_to_bill.service import EventOutcome, TimeToBillService
from process_apis.time_to_bill.workflow import PROCESS

__all__ = ["API", "BASE", "TIMESHEET_APPROVED", "StartBillingRun", "TimesheetApproved", "time_to_bill_router"]

API = "process.time_to_bill"
BASE = "/process/time-to-bill/v1"
TIMESHEET_APPROVED = "psconnect.time.timesheet.approved"
PeriodParam = Annotated[str, QueryParameter(pattern=MONTH_PATTERN, description="Billing period YYYY-MM.")]
IdempotencyKey = Annotated[str | None, HeaderParameter(
    name="Idempotency-Key", min_length=8, max_length=255, pattern=IDEMPOTENCY_KEY_PATTERN,
    description="Unique per intended start.")]


class StartBillingRun(Struct):
    legal_entity_code: Annotated[str, Meta(pattern=r"^([A-Z]{2}\d{2}|\*)$", examples=["US01"],
                                           description="Legal entity code, or * for all.")]
    period: Annotated[str, Meta(pattern=MONTH_PATTERN, examples=["2026-10"],
                                description="Billing period YYYY-MM (month 01-12).")]


EntryId = Annotated[str, Meta(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9_.:-]+$",
                               description="Time-system id of an approved entry.")]


class TimesheetApproved(Struct):
    """Payload of `psconnect.time.timesheet.approved`: the entries the approval covers."""

    entry_ids: Annotated[list[EntryId], Meta(min_length=1, max_length=500)]


class TimesheetApprovedEvent(CloudEvent[TimesheetApproved], kw_only=True, forbid_unknown_fields=False):
    """The one event type this endpoint takes, declared as such (any other `type` is a 422)."""

    type: Annotated[str, Meta(pattern=rf"^{re.escape(TIMESHEET_APPROVED)}$", examples=[TIMESHEET_APPROVED])]
    data: TimesheetApproved


class ReplayOutcome(Struct):
    exception_id: str
    lines_requeued: Annotated[int, Meta(ge=0, description="Held lines re-validated and queued for posting.")]
    runs: Annotated[list[Run], Meta(description="Billing runs started or joined to post them.")]


async def _replay(service: TimeToBillService, exception_id: str) -> ReplayOutcome:
    requeued, runs = await service.replay_runs(exception_id)
    return ReplayOutcome(exception_id=exception_id, lines_requeued=requeued, runs=runs)


async def _visibility(request: Request[Any, Any, Any]) -> Visibility:
    """The caller's view: a run by its subject's entity, an exception as the workbench attributes it."""
    entities = entity_grant(request, outside_gateway=None)

    async def run_entity(subject: str) -> str | None:
        return subject.partition(":")[0]

    if entities is None:
        return Visibility(Grant(None), run_entity=run_entity)
    with runtime().runs.engine.connect() as conn:
        grant = Grant(entities, entity_aliases(conn))
        attribution = Attribution(conn, grant.entities)

    async def exception_visible(subject: str, run_subject: str | None) -> bool:
        return attribution.visible(subject, run_subject)

    return Visibility(grant, run_entity=run_entity, exception_visible=exception_visible)


async def _project_entities() -> dict[str, str]:
    """ERP project external id -> legal entity code, read as the process's service identity."""
    rt = runtime()
    code_of = {e.id: e.code for e in await rt.erp.legal_entities()}
    return {p.external_id: code_of.get(p.legal_entity_id, p.legal_entity_id) for p in await rt.erp.projects()}


async def _require_entries(visibility: Visibility, entry_ids: list[str]) -> None:
    """403 unless every named time entry is on a project of a granted entity (unknown entries: the service's 422)."""
    if not visibility.restricted:
        return
    rt = runtime()
    projects = await _project_entities()
    for entry_id in entry_ids:
        try:
            entry = await rt.time.entry(entry_id)
        except (BusinessFailure, TransientFailure):
            continue  # an unreadable entry is the service's to report (422 / 503)
        visibility.grant.require(projects.get(entry.project_code))


def time_to_bill_router(service: TimeToBillService) -> Router:
    existing = {200: ResponseSpec(data_container=Run, description="The run for this entity and period is running.")}

    @post("/billing-runs", operation_id="timeToBill.startBillingRun", status_code=202, responses=existing,
          opt={"refers_to": ("/legal_entity_code",)},
          summary="Start the billing run of a legal entity and period")
    async def start(service: NamedDependency[TimeToBillService], visibility: NamedDependency[Visibility],
                    data: JSONBody[StartBillingRun], idempotency_key: IdempotencyKey = None) -> Response[Run]:
        visibility.grant.require(data.legal_entity_code)  # `*` too: it would bill entities beyond the grant
        run, started = await service.start_run(data.legal_entity_code, data.period, idempotency_key)
        return Response(run, status_code=202 if started else 200, headers={"Location": f"{BASE}/billing-runs/{run.id}"})

    @post("/events", operation_id="timeToBill.receiveEvent", status_code=202,
          opt={"refers_to": ("/data/entry_ids/*",)},
          summary="Receive a timesheet-approved event (CloudEvents 1.0)")
    async def event(service: NamedDependency[TimeToBillService], visibility: NamedDependency[Visibility],
                    data: JSONBody[TimesheetApprovedEvent]) -> EventOutcome:
        if data.type != TIMESHEET_APPROVED:
            raise ProblemError(422, "validation-error", "Unsupported event type",
                               f"Only {TIMESHEET_APPROVED} is accepted.", code="unsupported_event_type")
        await _require_entries(visibility, data.data.entry_ids)
        return await service.on_approved(data.data.entry_ids)

    records = record_routes(
        PROCESS, runs_path="/billing-runs", list_runs=Op("timeToBill.listBillingRuns", "List billing runs"),
        get_run=Op("timeToBill.getBillingRun", "Get a billing run with its progress per step"),
        list_exceptions=Op("timeToBill.listExceptions", "List time-to-bill exceptions"), get_exception=None)
    replay = replay_route(Op("timeToBill.replayException",
                             "Re-validate the entries behind an exception after the fix and post them"),
                          ReplayOutcome, _replay)

    @get("/reconciliation", operation_id="timeToBill.listReconciliation",
         summary="Time system vs ERP posted time vs invoiced, per project and period",
         description="Give `project` or `legal_entity_code` (`*` for all); with neither, a 422 `missing_filter`.",
         opt={"requires_one_of": ("project", "legal_entity_code")})
    async def reconciliation(service: NamedDependency[TimeToBillService], visibility: NamedDependency[Visibility],
                             period: PeriodParam,
                             project: Annotated[str | None, QueryParameter(max_length=80)] = None,
                             legal_entity_code: Annotated[str | None, QueryParameter(max_length=16)] = None,
                             limit: Limit = 50, cursor: Cursor = None) -> Page[Reconciliation]:
        if visibility.restricted:
            if project:
                entity = (await _project_entities()).get(project)
                if entity is not None and not visibility.grant.allows(entity):
                    raise visibility.missing("Project", project)
            elif legal_entity_code:
                visibility.grant.require(legal_entity_code)
        offset = decode_cursor(cursor, "time_to_bill.reconciliation")
        if project:
            page, more = [await service.reconcile(project, period)][offset:offset + limit], False
        elif legal_entity_code:
            page, more = await service.reconcile_entity(legal_entity_code, period, offset, limit)
        else:
            raise ProblemError(422, "validation-error", "Missing filter", "Give project or legal_entity_code.",
                               errors=[FieldError(pointer="project", detail="give project or legal_entity_code")],
                               code="missing_filter")
        following = encode_cursor(offset + limit, "time_to_bill.reconciliation") if more else None
        return Page(items=page, next_cursor=following)

    @get("/revenue", operation_id="timeToBill.listRevenue",
         summary="Revenue recognised per project and period, with what was billed and the work in progress")
    async def revenue(visibility: NamedDependency[Visibility],
                      legal_entity_code: Annotated[str | None, QueryParameter(
                          pattern=r"^[A-Z]{2}[0-9]{2}$", description="Only this legal entity's projects.")] = None,
                      project: Annotated[str | None, QueryParameter(max_length=80)] = None,
                      period: Annotated[str | None, QueryParameter(
                          pattern=MONTH_PATTERN, description="Only this period (YYYY-MM).")] = None,
                      limit: Limit = 50, cursor: Cursor = None) -> Page[RevenuePeriod]:
        if legal_entity_code is not None:
            visibility.grant.require(legal_entity_code)
        entities = frozenset({legal_entity_code}) if legal_entity_code else visibility.grant.entities
        offset = decode_cursor(cursor, "time_to_bill.revenue")
        rows = RevenueSchedule(runtime().ledger.engine).read(entities, project, period, limit + 1, offset)
        following = encode_cursor(offset + limit, "time_to_bill.revenue") if len(rows) > limit else None
        return Page(items=rows[:limit], next_cursor=following)

    return Router(path=BASE, opt={"api": API}, tags=["time-to-bill"],
                  dependencies={"service": constant(service), "runtime": Provide(runtime, sync_to_thread=False),
                                "visibility": Provide(_visibility)},
                  route_handlers=[start, *records.runs, event, *records.exceptions, replay, reconciliation, revenue])
