"""Routes of the provisioning process API: `/process/provisioning/v1`."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Response, Router, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, JSONBody, PathParameter, QueryParameter
from msgspec import Meta

from contracts.common import Page, Struct
from contracts.events import CLOSED_WON, CloudEvent
from contracts.problems import ProblemError
from contracts.runs import ExceptionRecord, ExceptionStatus, Run, RunStatus
from process_apis.provisioning.runtime import runtime
from process_apis.provisioning.service import ProvisioningService
from process_apis.provisioning.workflow import PROCESS

__all__ = ["API", "ClosedWon", "StartRun", "provisioning_router"]

API = "process.provisioning"
BASE = "/process/provisioning/v1"
Limit = Annotated[int, QueryParameter(ge=1, le=200, description="Page size.")]
Cursor = Annotated[str | None, QueryParameter(max_length=2000, description="Cursor from the previous page.")]
IdempotencyKey = Annotated[str, HeaderParameter(name="Idempotency-Key", min_length=8, max_length=255,
                                          description="Unique per intended start; a retry sends the same key.")]
OpportunityId = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$",
                                    description="CRM id or external id of the opportunity.")]


class StartRun(Struct):
    opportunity_id: OpportunityId


class ClosedWon(Struct):
    """Payload of `psconnect.crm.opportunity.closed_won`."""

    opportunity_id: OpportunityId


def _accepted(run: Run, started: bool) -> Response[Run]:
    return Response(run, status_code=202 if started else 200, headers={"Location": f"{BASE}/runs/{run.id}"})


def provisioning_router(service: ProvisioningService) -> Router:
    existing = {200: ResponseSpec(data_container=Run, description="A run for this opportunity already exists.")}

    @post("/runs", operation_id="provisioning.startRun", summary="Provision a won opportunity",
          status_code=202, responses=existing)
    async def start_run(data: JSONBody[StartRun], idempotency_key: IdempotencyKey) -> Response[Run]:
        return _accepted(*await service.start(data.opportunity_id, idempotency_key))

    @post("/crm-events", operation_id="provisioning.receiveCrmEvent", status_code=202, responses=existing,
          summary="Receive a CRM closed-won event (CloudEvents 1.0)")
    async def crm_event(data: JSONBody[CloudEvent[ClosedWon]]) -> Response[Run]:
        if data.type != CLOSED_WON:
            raise ProblemError(422, "validation-error", "Unsupported event type",
                               f"Only {CLOSED_WON} starts provisioning.", code="unsupported_event_type")
        return _accepted(*await service.start(data.data.opportunity_id, f"event:{data.source}:{data.id}"))

    @get("/runs", operation_id="provisioning.listRuns", summary="List provisioning runs")
    async def list_runs(status: Annotated[RunStatus | None, QueryParameter()] = None, limit: Limit = 50,
                        cursor: Cursor = None) -> Page[Run]:
        return runtime().runs.list(PROCESS, status, limit, cursor)

    @get("/runs/{run_id:str}", operation_id="provisioning.getRun", summary="Get a run with its steps")
    async def get_run(run_id: Annotated[str, PathParameter(max_length=120)]) -> Run:
        return runtime().runs.get_of(PROCESS, run_id)

    @get("/exceptions", operation_id="provisioning.listExceptions", summary="List provisioning exceptions")
    async def list_exceptions(status: Annotated[ExceptionStatus | None, QueryParameter()] = None,
                              owner: Annotated[str | None, QueryParameter(max_length=80)] = None,
                              limit: Limit = 50, cursor: Cursor = None) -> Page[ExceptionRecord]:
        return runtime().exceptions.list(PROCESS, status, owner, limit, cursor)

    @get("/exceptions/{exception_id:str}", operation_id="provisioning.getException", summary="Get an exception")
    async def get_exception(exception_id: Annotated[str, PathParameter(max_length=64)]) -> ExceptionRecord:
        return runtime().exceptions.get_of(PROCESS, exception_id)

    @post("/exceptions/{exception_id:str}/replay", operation_id="provisioning.replayException", status_code=202,
          summary="Replay the run behind an exception after its data was fixed")
    async def replay(exception_id: Annotated[str, PathParameter(max_length=64)]) -> Response[Run]:
        return _accepted(await service.replay(exception_id), True)

    @get("/events", operation_id="provisioning.listEvents", summary="List published provisioning events")
    async def list_events(type: Annotated[str | None, QueryParameter(max_length=200)] = None,
                          limit: Limit = 50, cursor: Cursor = None) -> Page[CloudEvent[dict[str, Any]]]:
        return runtime().outbox.list(type, limit, cursor)

    return Router(path=BASE, opt={"api": API}, tags=["provisioning"],
                  route_handlers=[start_run, crm_event, list_runs, get_run, list_exceptions, get_exception, replay,
                                  list_events])
