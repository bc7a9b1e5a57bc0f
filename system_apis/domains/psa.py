"""PSA domain contract: `/system/psa/v1` — delivery projects, staffing, rate cards, users, time, timesheets.

Legal-entity grant (`system_apis/grants.py`): a delivery project belongs to the entity of
the ERP project of the same external id, and its assignments, time entries and timesheets
with it; a rate card to its `legal_entity_code`. A restricted caller creates or updates a
project only of a granted entity — known from the ERP project, else from the rate card the
body names; one that neither attributes is refused (403). A PSA user carries no entity, so a
restricted caller cannot upsert one (403); deciding another entity's timesheet is a 404.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal, Protocol

from litestar import Request, Response, Router, get, post, put
from litestar.params import JSONBody, PathParameter, QueryParameter
from msgspec import Meta

from contracts.billing import RateCard
from contracts.common import Page, Struct
from contracts.psa import PsaProject, PsaProjectUpsert, TimesheetSubmission
from contracts.time import TimeEntry, TimeEntryStatus
from contracts.workforce import Assignment, PsaUser, PsaUserUpsert
from system_apis.domains._entity import ENTITY_PARAMETER, bind_call
from system_apis.domains._params import Cursor, Limit, created_spec, upserted
from system_apis.grants import kept, system_scope

__all__ = ["API", "PsaSystem", "TimesheetDecision", "psa_router"]

API = "system.psa"
_EXTERNAL_ID = PathParameter(max_length=80, pattern=r"^[A-Za-z0-9_.:-]+$")
SubmissionStatus = Literal["pending", "approved", "rejected"]


class TimesheetDecision(Struct):
    """An approver's decision on one submitted timesheet. Deciding it again the same way changes nothing."""

    decision: Literal["approved", "rejected"]
    comment: Annotated[str, Meta(max_length=2000)] | None = None


class PsaSystem(Protocol):
    """What a PSA vendor adapter provides. Upserts are idempotent by external id."""

    async def list_projects(self, external_id: str | None, limit: int, cursor: str | None) -> Page[PsaProject]: ...

    async def get_project(self, project_id: str) -> PsaProject: ...

    async def upsert_project(self, external_id: str, data: PsaProjectUpsert) -> tuple[PsaProject, bool]: ...

    async def list_assignments(self, project_external_id: str | None, limit: int,
                               cursor: str | None) -> Page[Assignment]: ...

    async def list_rate_cards(self, legal_entity_code: str | None, limit: int,
                              cursor: str | None) -> Page[RateCard]: ...

    async def get_rate_card(self, rate_card_id: str) -> RateCard: ...

    async def upsert_user(self, external_id: str, data: PsaUserUpsert) -> tuple[PsaUser, bool]: ...

    async def list_time_entries(self, status: TimeEntryStatus | None, start: dt.date | None, end: dt.date | None,
                                limit: int, cursor: str | None) -> Page[TimeEntry]: ...

    async def list_timesheet_submissions(self, status: SubmissionStatus | None, limit: int,
                                         cursor: str | None) -> Page[TimesheetSubmission]: ...

    async def decide_timesheet(self, submission_id: str, data: TimesheetDecision) -> TimesheetSubmission: ...


def psa_router(system: PsaSystem) -> Router:
    @get("/projects", operation_id="psa.listProjects", summary="List delivery projects")
    async def list_projects(request: Request[Any, Any, Any],
                            external_id: Annotated[str | None, QueryParameter(max_length=80)] = None,
                            limit: Limit = 50, cursor: Cursor = None) -> Page[PsaProject]:
        allowed = await (await system_scope(request)).project_filter()
        return kept(await system.list_projects(external_id, limit, cursor), lambda p: allowed(p.external_id))

    @get("/projects/{project_id:str}", operation_id="psa.getProject", summary="Get a delivery project")
    async def get_project(request: Request[Any, Any, Any],
                          project_id: Annotated[str, PathParameter(max_length=64)]) -> PsaProject:
        scope = await system_scope(request)
        project = await system.get_project(project_id)
        if not await scope.allows_project(project.external_id):
            scope.grant.found(None, "Project", project_id)
        return project

    @put("/projects/by-external-id/{external_id:str}", operation_id="psa.upsertProject",
         opt={"refers_to": ("/rate_card_id",)}, summary="Create or update a delivery project by external id",
         responses=created_spec(PsaProject))
    async def upsert_project(request: Request[Any, Any, Any], external_id: Annotated[str, _EXTERNAL_ID],
                             data: JSONBody[PsaProjectUpsert]) -> Response[PsaProject]:
        scope = await system_scope(request)
        if scope.restricted:
            entity = await scope.project_entity(external_id)
            if entity is None and data.rate_card_id is not None:
                entity = (await system.get_rate_card(data.rate_card_id)).legal_entity_code
            scope.grant.require(entity)
        return upserted(*await system.upsert_project(external_id, data))

    @get("/assignments", operation_id="psa.listAssignments", summary="List staffing assignments")
    async def list_assignments(
            request: Request[Any, Any, Any],
            project_external_id: Annotated[str | None, QueryParameter(max_length=80,
                                                                      description="Only this project's.")] = None,
            limit: Limit = 50, cursor: Cursor = None) -> Page[Assignment]:
        allowed = await (await system_scope(request)).project_filter()
        page = await system.list_assignments(project_external_id, limit, cursor)
        return kept(page, lambda a: allowed(a.project_external_id))

    @get("/rate-cards", operation_id="psa.listRateCards", summary="List rate cards")
    async def list_rate_cards(
            request: Request[Any, Any, Any],
            legal_entity_code: Annotated[str | None, QueryParameter(max_length=16,
                                                                    description="Only this entity's.")] = None,
            limit: Limit = 50, cursor: Cursor = None) -> Page[RateCard]:
        grant = (await system_scope(request)).grant
        if legal_entity_code is not None:
            grant.require(legal_entity_code)
        page = await system.list_rate_cards(legal_entity_code, limit, cursor)
        return kept(page, lambda c: grant.allows(c.legal_entity_code))

    @get("/rate-cards/{rate_card_id:str}", operation_id="psa.getRateCard", summary="Get a rate card")
    async def get_rate_card(request: Request[Any, Any, Any],
                            rate_card_id: Annotated[str, PathParameter(max_length=80)]) -> RateCard:
        grant = (await system_scope(request)).grant
        card = await system.get_rate_card(rate_card_id)
        grant.found(card.legal_entity_code, "Rate card", rate_card_id)
        return card

    @put("/users/by-external-id/{external_id:str}", operation_id="psa.upsertUser",
         summary="Create or update a PSA user by HR worker id", responses=created_spec(PsaUser))
    async def upsert_user(request: Request[Any, Any, Any], external_id: Annotated[str, _EXTERNAL_ID],
                          data: JSONBody[PsaUserUpsert]) -> Response[PsaUser]:
        scope = await system_scope(request)
        if scope.restricted:
            scope.grant.require(None)  # a PSA user has no entity to attribute the write to
        return upserted(*await system.upsert_user(external_id, data))

    @get("/time-entries", operation_id="psa.listTimeEntries", summary="List time entries booked in the PSA")
    async def list_time_entries(
            request: Request[Any, Any, Any],
            status: Annotated[TimeEntryStatus | None, QueryParameter(description="Only entries in this state.")] = None,
            start: Annotated[dt.date | None, QueryParameter(name="from", description="First date worked.")] = None,
            end: Annotated[dt.date | None, QueryParameter(name="to", description="Last date worked.")] = None,
            limit: Limit = 50, cursor: Cursor = None) -> Page[TimeEntry]:
        allowed = await (await system_scope(request)).project_filter()
        page = await system.list_time_entries(status, start, end, limit, cursor)
        return kept(page, lambda e: allowed(e.project_code))

    @get("/timesheet-submissions", operation_id="psa.listTimesheetSubmissions", summary="List timesheet submissions")
    async def list_timesheet_submissions(
            request: Request[Any, Any, Any],
            status: Annotated[SubmissionStatus | None, QueryParameter(description="Only submissions in this state.")]
            = None, limit: Limit = 50, cursor: Cursor = None) -> Page[TimesheetSubmission]:
        allowed = await (await system_scope(request)).project_filter()
        page = await system.list_timesheet_submissions(status, limit, cursor)
        return kept(page, lambda t: allowed(t.project_external_id))

    @post("/timesheet-submissions/{submission_id:str}/decision", operation_id="psa.decideTimesheet",
          summary="Approve or reject a submitted timesheet", status_code=200)
    async def decide_timesheet(request: Request[Any, Any, Any],
                               submission_id: Annotated[str, PathParameter(max_length=64)],
                               data: JSONBody[TimesheetDecision]) -> TimesheetSubmission:
        scope = await system_scope(request)
        if scope.restricted:
            allowed = await scope.project_filter()
            project: str | None = None
            cursor: str | None = None
            while project is None:
                page = await system.list_timesheet_submissions(None, 200, cursor)
                project = next((t.project_external_id for t in page.items if t.id == submission_id), None)
                cursor = page.next_cursor
                if not cursor:
                    break
            if not allowed(project):
                scope.grant.found(None, "Timesheet submission", submission_id)
        return await system.decide_timesheet(submission_id, data)

    return Router(path="/system/psa/v1", opt={"api": API}, tags=["psa"], before_request=bind_call,
                  parameters=ENTITY_PARAMETER,
                  route_handlers=[list_projects, get_project, upsert_project, list_assignments, list_rate_cards,
                                  get_rate_card, upsert_user, list_time_entries, list_timesheet_submissions,
                                  decide_timesheet])
