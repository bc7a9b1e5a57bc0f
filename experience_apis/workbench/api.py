"""Routes of the exception workbench: `/experience/workbench/v1`."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Router, get, post
from litestar.params import JSONBody, PathParameter, QueryParameter

from contracts.common import Page
from contracts.runs import ExceptionStatus
from contracts.workbench import (
    AssignRequest,
    Comment,
    CommentRequest,
    ResolveRequest,
    WorkbenchDetail,
    WorkbenchItem,
    WorkbenchReplay,
)
from experience_apis._internal.actor import actor_of
from experience_apis._internal.scope import entity_grant
from experience_apis.workbench.store import Entities, WorkbenchStore
from foundation.audit import via_of
from foundation.paging import CURSOR_MAX_LENGTH, CURSOR_PATTERN
from process_apis.exception_queue import replay

__all__ = ["API", "workbench_router"]

API = "experience.workbench"
ExceptionId = Annotated[str, PathParameter(max_length=64)]
Text = Annotated[str | None, QueryParameter(max_length=120)]


def workbench_router(store: WorkbenchStore) -> Router:
    def seen_by(request: Request[Any, Any, Any]) -> Entities:
        return store.entities_of(entity_grant(request))

    @get("/exceptions", operation_id="workbench.listExceptions", summary="List exceptions with filters")
    async def list_exceptions(
        request: Request[Any, Any, Any], status: Annotated[ExceptionStatus | None, QueryParameter()] = None,
        owner: Text = None, process: Text = None, reason: Text = None, assignee: Text = None,
        older_than_hours: Annotated[float | None, QueryParameter(ge=0, le=24 * 365)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, QueryParameter(
            description="Opaque cursor: the `next_cursor` of the previous page; any other value is a 422.",
            pattern=CURSOR_PATTERN, max_length=CURSOR_MAX_LENGTH)] = None,
    ) -> Page[WorkbenchItem]:
        return store.list(status=status, owner=owner, process=process, reason=reason, assignee=assignee,
                          older_than_hours=older_than_hours, limit=limit, cursor=cursor, entities=seen_by(request))

    @get("/exceptions/{exception_id:str}", operation_id="workbench.getException",
         summary="An exception with its comments and audit trail")
    async def get_exception(exception_id: ExceptionId, request: Request[Any, Any, Any]) -> WorkbenchDetail:
        return store.detail(exception_id, seen_by(request))

    @post("/exceptions/{exception_id:str}/assignment", operation_id="workbench.assignException",
          summary="Assign an exception to a person or team", status_code=200)
    async def assign(exception_id: ExceptionId, data: JSONBody[AssignRequest],
                     request: Request[Any, Any, Any]) -> WorkbenchItem:
        return store.assign(exception_id, data.assignee, actor_of(request), seen_by(request), via_of(request.scope))

    @post("/exceptions/{exception_id:str}/comments", operation_id="workbench.commentException",
          summary="Comment on an exception", status_code=201)
    async def comment(exception_id: ExceptionId, data: JSONBody[CommentRequest],
                      request: Request[Any, Any, Any]) -> Comment:
        return store.comment(exception_id, data.text, actor_of(request), seen_by(request), via_of(request.scope))

    @post("/exceptions/{exception_id:str}/resolution", operation_id="workbench.resolveException",
          summary="Resolve an exception that needs no replay", status_code=200)
    async def resolve(exception_id: ExceptionId, data: JSONBody[ResolveRequest],
                      request: Request[Any, Any, Any]) -> WorkbenchItem:
        return store.resolve(exception_id, data.resolution, actor_of(request), seen_by(request),
                             via_of(request.scope))

    @post("/exceptions/{exception_id:str}/replay", operation_id="workbench.replayException",
          summary="Replay the process run behind an exception", status_code=202)
    async def replay_exception(exception_id: ExceptionId, request: Request[Any, Any, Any]) -> WorkbenchReplay:
        record = store.item(exception_id, seen_by(request)).exception
        run = await replay(record.process, exception_id)
        store.record_replay(exception_id, actor_of(request), run.attempt, via_of(request.scope))
        return WorkbenchReplay(exception_id=exception_id, run=run)

    # Every write records its own audit event with the change (`audit: handler`); the audit policy
    # records only the refused ones.
    return Router(path="/experience/workbench/v1", opt={"api": API, "audit": "handler"}, tags=["workbench"],
                  route_handlers=[list_exceptions, get_exception, assign, comment, resolve, replay_exception])
