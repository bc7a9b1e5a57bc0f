"""Routes of the provisioning process API: `/process/provisioning/v1`.

Legal-entity grant (`process_apis/_internal/grants.py`): a run, its exceptions and its
events belong to the entity the opportunity is booked to in the CRM. A restricted caller
provisions only opportunities of a granted entity (another entity's, or one booked to no
known entity, is a 403 and starts nothing) and sees only those runs, exceptions and events.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from litestar import Request, Response, Router, get, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, JSONBody, QueryParameter
from msgspec import Meta

from contracts.common import IDEMPOTENCY_KEY_PATTERN, Page, Struct
from contracts.events import CLOSED_WON, CloudEvent
from contracts.problems import ProblemError
from contracts.runs import Run
from foundation.grants import Grant, entity_grant
from process_apis._internal.grants import Visibility, filtered_page
from process_apis._internal.routes import Cursor, Limit, Op, constant, record_routes, replay_route
from process_apis._internal.system_clients import BusinessFailure
from process_apis.provisioning.runtime import Runtime, runtime
from process_apis.provisioning.service import ProvisioningService
from process_apis.provisioning.workflow import PROCESS

__all__ = ["API", "ClosedWon", "StartRun", "provisioning_router"]

API = "process.provisioning"
BASE = "/process/provisioning/v1"
IdempotencyKey = Annotated[str, HeaderParameter(
    name="Idempotency-Key", min_length=8, max_length=255, pattern=IDEMPOTENCY_KEY_PATTERN,
    description="Unique per intended start; a retry sends the same key.")]
OpportunityId = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$",
                                    description="CRM id or external id of the opportunity.")]


class StartRun(Struct):
    opportunity_id: OpportunityId


class ClosedWon(Struct):
    """Payload of `psconnect.crm.opportunity.closed_won`."""

    opportunity_id: OpportunityId


class ClosedWonEvent(CloudEvent[ClosedWon], kw_only=True, forbid_unknown_fields=False):
    """The one event type this endpoint takes, declared as such (any other `type` is a 422)."""

    type: Annotated[str, Meta(pattern=rf"^{re.escape(CLOSED_WON)}$", examples=[CLOSED_WON])]
    data: ClosedWon


def _accepted(run: Run, started: bool) -> Response[Run]:
    return Response(run, status_code=202 if started else 200, headers={"Location": f"{BASE}/runs/{run.id}"})


async def _replay(service: ProvisioningService, exception_id: str) -> Response[Run]:
    return _accepted(await service.replay(exception_id), True)


async def _visibility(request: Request[Any, Any, Any]) -> Visibility:
    """The caller's view: a record by its opportunity's legal entity (CRM, read as the service)."""
    booked: dict[str, str | None] | None = None

    async def run_entity(subject: str) -> str | None:
        nonlocal booked
        if booked is None:
            booked = {o.id: o.legal_entity_code for o in await runtime().crm.opportunities()}
        return booked.get(subject)

    return Visibility(Grant(entity_grant(request, outside_gateway=None)), run_entity=run_entity)


async def _require_opportunity(visibility: Visibility, opportunity_ref: str) -> None:
    """403 unless the opportunity is booked to a granted entity (an unknown one: the service's 404)."""
    if not visibility.restricted:
        return
    try:
        opportunity = await runtime().crm.get_opportunity(opportunity_ref)
    except BusinessFailure:
        return
    visibility.grant.require(opportunity.legal_entity_code)


def provisioning_router(service: ProvisioningService) -> Router:
    existing = {200: ResponseSpec(data_container=Run, description="A run for this opportunity already exists.")}

    @post("/runs", operation_id="provisioning.startRun", summary="Provision a won opportunity",
          status_code=202, responses=existing)
    async def start_run(service: NamedDependency[ProvisioningService], visibility: NamedDependency[Visibility],
                        data: JSONBody[StartRun], idempotency_key: IdempotencyKey) -> Response[Run]:
        await _require_opportunity(visibility, data.opportunity_id)
        return _accepted(*await service.start(data.opportunity_id, idempotency_key))

    @post("/crm-events", operation_id="provisioning.receiveCrmEvent", status_code=202, responses=existing,
          summary="Receive a CRM closed-won event (CloudEvents 1.0)")
    async def crm_event(service: NamedDependency[ProvisioningService], visibility: NamedDependency[Visibility],
                        data: JSONBody[ClosedWonEvent]) -> Response[Run]:
        if data.type != CLOSED_WON:
            raise ProblemError(422, "validation-error", "Unsupported event type",
                               f"Only {CLOSED_WON} starts provisioning.", code="unsupported_event_type")
        await _require_opportunity(visibility, data.data.opportunity_id)
        return _accepted(*await service.start(data.data.opportunity_id, f"event:{data.source}:{data.id}"))

    records = record_routes(
        PROCESS, runs_path="/runs", list_runs=Op("provisioning.listRuns", "List provisioning runs"),
        get_run=Op("provisioning.getRun", "Get a run with its steps"),
        list_exceptions=Op("provisioning.listExceptions", "List provisioning exceptions"),
        get_exception=Op("provisioning.getException", "Get an exception"))
    replay = replay_route(Op("provisioning.replayException",
                             "Replay the run behind an exception after its data was fixed"), Response[Run], _replay)

    @get("/events", operation_id="provisioning.listEvents", summary="List published provisioning events")
    async def list_events(runtime: NamedDependency[Runtime], visibility: NamedDependency[Visibility],
                          type: Annotated[str | None, QueryParameter(max_length=200)] = None,
                          limit: Limit = 50, cursor: Cursor = None) -> Page[CloudEvent[dict[str, Any]]]:
        if not visibility.restricted:
            return runtime.outbox.list(type, limit, cursor)
        return await filtered_page(lambda n, c: runtime.outbox.list(type, n, c),
                                   lambda event: visibility.subject(event.subject), limit, cursor,
                                   "provisioning.events.granted")

    return Router(path=BASE, opt={"api": API}, tags=["provisioning"],
                  dependencies={"service": constant(service), "runtime": Provide(runtime, sync_to_thread=False),
                                "visibility": Provide(_visibility)},
                  route_handlers=[start_run, crm_event, *records.runs, *records.exceptions, replay, list_events])
