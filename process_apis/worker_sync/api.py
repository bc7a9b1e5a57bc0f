"""Routes of the worker-sync process API: `/process/worker-sync/v1`."""

from __future__ import annotations

from typing import Annotated

from litestar import Response, Router, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, JSONBody, PathParameter, QueryParameter
from msgspec import Meta

from contracts.common import Page, Struct
from contracts.runs import ExceptionRecord, ExceptionStatus, Run, RunStatus
from process_apis.worker_sync.runtime import runtime
from process_apis.worker_sync.service import WorkerSyncService
from process_apis.worker_sync.workflow import PROCESS

__all__ = ["API", "BASE", "StartSync", "worker_sync_router"]

API = "process.worker_sync"
BASE = "/process/worker-sync/v1"
Limit = Annotated[int, QueryParameter(ge=1, le=200, description="Page size.")]
Cursor = Annotated[str | None, QueryParameter(max_length=2000, description="Cursor from the previous page.")]
IdempotencyKey = Annotated[str, HeaderParameter(name="Idempotency-Key", min_length=8, max_length=255,
                                          description="Unique per intended start; a retry sends the same key.")]


class StartSync(Struct):
    full: Annotated[bool, Meta(description="Push every worker, not only those whose HR data changed.")] = False


def _accepted(run: Run, started: bool) -> Response[Run]:
    return Response(run, status_code=202 if started else 200, headers={"Location": f"{BASE}/runs/{run.id}"})


def worker_sync_router(service: WorkerSyncService) -> Router:
    existing = {200: ResponseSpec(data_container=Run,
                                  description="A sync is already running, or this key already started one.")}

    @post("/runs", operation_id="worker_sync.startRun", status_code=202, responses=existing,
          summary="Sync HR workers to the PSA and the ERP")
    async def start_run(data: JSONBody[StartSync], idempotency_key: IdempotencyKey) -> Response[Run]:
        return _accepted(*await service.start(data.full, idempotency_key))

    @get("/runs", operation_id="worker_sync.listRuns", summary="List worker-sync runs")
    async def list_runs(status: Annotated[RunStatus | None, QueryParameter()] = None, limit: Limit = 50,
                        cursor: Cursor = None) -> Page[Run]:
        return runtime().runs.list(PROCESS, status, limit, cursor)

    @get("/runs/{run_id:str}", operation_id="worker_sync.getRun", summary="Get a run with its progress")
    async def get_run(run_id: Annotated[str, PathParameter(max_length=120)]) -> Run:
        return runtime().runs.get_of(PROCESS, run_id)

    @get("/exceptions", operation_id="worker_sync.listExceptions", summary="List worker-sync exceptions")
    async def list_exceptions(status: Annotated[ExceptionStatus | None, QueryParameter()] = None,
                              owner: Annotated[str | None, QueryParameter(max_length=80)] = None,
                              limit: Limit = 50, cursor: Cursor = None) -> Page[ExceptionRecord]:
        return runtime().exceptions.list(PROCESS, status, owner, limit, cursor)

    @get("/exceptions/{exception_id:str}", operation_id="worker_sync.getException", summary="Get an exception")
    async def get_exception(exception_id: Annotated[str, PathParameter(max_length=64)]) -> ExceptionRecord:
        return runtime().exceptions.get_of(PROCESS, exception_id)

    @post("/exceptions/{exception_id:str}/replay", operation_id="worker_sync.replayException", status_code=202,
          summary="Sync again after the data behind an exception was fixed")
    async def replay(exception_id: Annotated[str, PathParameter(max_length=64)]) -> Response[Run]:
        return _accepted(await service.replay(exception_id), True)

    return Router(path=BASE, opt={"api": API}, tags=["worker-sync"],
                  route_handlers=[start_run, list_runs, get_run, list_exceptions, get_exception, replay])
