"""The routes every process API has: its runs, its exceptions, replaying an exception.

One implementation, parameterised by each process's name, paths, operation ids,
summaries and replay answer; each `api.py` places the handlers among its own routes (the
order of its published document). Handlers get what they read by dependency injection:
`runtime` (anything with the process's run and exception stores), `service` (the
process's service) and `visibility` (the caller's legal-entity grant over the process's
records, `process_apis/_internal/grants.py`) are provided by the process's router.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, TypeVar, runtime_checkable

from litestar import get, post
from litestar.di import NamedDependency, Provide
from litestar.handlers import HTTPRouteHandler
from litestar.params import PathParameter, QueryParameter

from contracts.common import Page
from contracts.runs import ExceptionRecord, ExceptionStatus, Run, RunStatus
from foundation.paging import CURSOR_MAX_LENGTH, CURSOR_PATTERN
from process_apis._internal.exceptions import ExceptionStore
from process_apis._internal.grants import Visibility, filtered_page
from process_apis._internal.runs import RunStore

__all__ = ["Cursor", "Limit", "Op", "RecordRoutes", "Records", "constant", "record_routes", "replay_route",
           "visible_exception"]

Limit = Annotated[int, QueryParameter(ge=1, le=200, description="Page size.")]
Cursor = Annotated[str | None, QueryParameter(
    description="Opaque cursor: the `next_cursor` of the previous page of this same list; any other value is a 422 "
                "`invalid_cursor`.",
    pattern=CURSOR_PATTERN, max_length=CURSOR_MAX_LENGTH)]
RunId = Annotated[str, PathParameter(max_length=120)]
ExceptionId = Annotated[str, PathParameter(max_length=64)]
Owner = Annotated[str | None, QueryParameter(max_length=80)]
R = TypeVar("R")
S = TypeVar("S")


@runtime_checkable
class Records(Protocol):
    """What the shared routes read: the process runtime's run and exception stores."""

    @property
    def runs(self) -> RunStore: ...

    @property
    def exceptions(self) -> ExceptionStore: ...


@dataclass(frozen=True)
class Op:
    operation_id: str
    summary: str


@dataclass(frozen=True)
class RecordRoutes:
    runs: list[HTTPRouteHandler]
    """List runs, get a run."""
    exceptions: list[HTTPRouteHandler]
    """List exceptions, and get one where the process publishes that."""


def constant(value: object) -> Provide:
    """A dependency that is always the same object (a process's service, built before the app)."""
    def provide() -> object:
        return value
    return Provide(provide, use_cache=True, sync_to_thread=False)


def record_routes(process: str, *, runs_path: str, list_runs: Op, get_run: Op, list_exceptions: Op,
                  get_exception: Op | None) -> RecordRoutes:
    """List and get the runs and the exceptions of `process` (`get_exception` None: not published)."""

    @get(runs_path, operation_id=list_runs.operation_id, summary=list_runs.summary)
    async def list_runs_(runtime: NamedDependency[Records], visibility: NamedDependency[Visibility],
                         status: Annotated[RunStatus | None, QueryParameter()] = None, limit: Limit = 50,
                         cursor: Cursor = None) -> Page[Run]:
        if not visibility.restricted:
            return runtime.runs.list(process, status, limit, cursor)
        return await filtered_page(lambda n, c: runtime.runs.list(process, status, n, c),
                                   lambda run: visibility.subject(run.subject), limit, cursor,
                                   f"{process}.runs.granted")

    @get(runs_path + "/{run_id:str}", operation_id=get_run.operation_id, summary=get_run.summary)
    async def get_run_(runtime: NamedDependency[Records], visibility: NamedDependency[Visibility],
                       run_id: RunId) -> Run:
        run = runtime.runs.get_of(process, run_id)
        if not await visibility.subject(run.subject):
            raise visibility.missing("Run", run_id)
        return run

    @get("/exceptions", operation_id=list_exceptions.operation_id, summary=list_exceptions.summary)
    async def list_exceptions_(runtime: NamedDependency[Records], visibility: NamedDependency[Visibility],
                               status: Annotated[ExceptionStatus | None, QueryParameter()] = None,
                               owner: Owner = None, limit: Limit = 50,
                               cursor: Cursor = None) -> Page[ExceptionRecord]:
        if not visibility.restricted:
            return runtime.exceptions.list(process, status, owner, limit, cursor)
        return await filtered_page(lambda n, c: runtime.exceptions.list(process, status, owner, n, c),
                                   lambda record: visible_exception(runtime, visibility, record), limit, cursor,
                                   f"{process}.exceptions.granted")

    exception_routes = [list_exceptions_]
    if get_exception is not None:
        @get("/exceptions/{exception_id:str}", operation_id=get_exception.operation_id,
             summary=get_exception.summary)
        async def get_exception_(runtime: NamedDependency[Records], visibility: NamedDependency[Visibility],
                                 exception_id: ExceptionId) -> ExceptionRecord:
            record = runtime.exceptions.get_of(process, exception_id)
            if not await visible_exception(runtime, visibility, record):
                raise visibility.missing("Exception", exception_id)
            return record
        exception_routes.append(get_exception_)

    return RecordRoutes(runs=[list_runs_, get_run_], exceptions=exception_routes)


async def visible_exception(runtime: Records, visibility: Visibility, record: ExceptionRecord) -> bool:
    """May the caller see this exception (by its subject, or its run's)?"""
    if not visibility.restricted:
        return True
    run = runtime.runs.get(record.run_id)
    return await visibility.exception(record.subject, None if run is None else run.subject)


def replay_route(op: Op, result: Any, answer: Callable[[S, str], Awaitable[R]]) -> HTTPRouteHandler:
    """`POST /exceptions/{exception_id}/replay` (202): `answer(service, exception_id)`, published as `result`.

    Another entity's exception is a 404 to a restricted caller, and nothing is replayed.
    """

    async def replay(service: NamedDependency[Any], runtime: NamedDependency[Records],
                     visibility: NamedDependency[Visibility], exception_id: ExceptionId) -> Any:
        if visibility.restricted:
            record = runtime.exceptions.get(exception_id)
            if record is not None and not await visible_exception(runtime, visibility, record):
                raise visibility.missing("Exception", exception_id)
        return await answer(service, exception_id)

    replay.__annotations__["return"] = result  # the published response type of this process's replay
    return post("/exceptions/{exception_id:str}/replay", operation_id=op.operation_id, status_code=202,
                summary=op.summary)(replay)
