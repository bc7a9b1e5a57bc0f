"""Routes of the worker-sync process API: `/process/worker-sync/v1`.

Legal-entity grant (`process_apis/_internal/grants.py`): a sync pushes every entity's
workers, so its runs and exceptions belong to no single entity — a caller restricted to
legal entities sees none of them (404 by id), cannot start a sync (403) nor replay one (404).
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, Router, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, JSONBody
from msgspec import Meta

from contracts.common import IDEMPOTENCY_KEY_PATTERN, Struct
from contracts.runs import Run
from foundation.grants import Grant, entity_grant
from process_apis._internal.grants import Visibility
from process_apis._internal.routes import Op, constant, record_routes, replay_route
from process_apis.worker_sync.runtime import runtime
from process_apis.worker_sync.service import WorkerSyncService
from process_apis.worker_sync.workflow import PROCESS

__all__ = ["API", "BASE", "StartSync", "worker_sync_router"]

API = "process.worker_sync"
BASE = "/process/worker-sync/v1"
IdempotencyKey = Annotated[str, HeaderParameter(
    name="Idempotency-Key", min_length=8, max_length=255, pattern=IDEMPOTENCY_KEY_PATTERN,
    description="Unique per intended start; a retry sends the same key.")]


class StartSync(Struct):
    full: Annotated[bool, Meta(description="Push every worker, not only those whose HR data changed.")] = False


def _accepted(run: Run, started: bool) -> Response[Run]:
    return Response(run, status_code=202 if started else 200, headers={"Location": f"{BASE}/runs/{run.id}"})


async def _replay(service: WorkerSyncService, exception_id: str) -> Response[Run]:
    return _accepted(await service.replay(exception_id), True)


async def _firm_wide(subject: str) -> str | None:
    return None  # a sync (and what it raises) spans every legal entity


async def _visibility(request: Request[Any, Any, Any]) -> Visibility:
    return Visibility(Grant(entity_grant(request, outside_gateway=None)), run_entity=_firm_wide)


def worker_sync_router(service: WorkerSyncService) -> Router:
    existing = {200: ResponseSpec(data_container=Run,
                                  description="A sync is already running, or this key already started one.")}

    @post("/runs", operation_id="worker_sync.startRun", status_code=202, responses=existing,
          summary="Sync HR workers to the PSA and the ERP")
    async def start_run(service: NamedDependency[WorkerSyncService], visibility: NamedDependency[Visibility],
                        data: JSONBody[StartSync], idempotency_key: IdempotencyKey) -> Response[Run]:
        if visibility.restricted:
            visibility.grant.require(None)  # it would write every entity's workers
        return _accepted(*await service.start(data.full, idempotency_key))

    records = record_routes(
        PROCESS, runs_path="/runs", list_runs=Op("worker_sync.listRuns", "List worker-sync runs"),
        get_run=Op("worker_sync.getRun", "Get a run with its progress"),
        list_exceptions=Op("worker_sync.listExceptions", "List worker-sync exceptions"),
        get_exception=Op("worker_sync.getException", "Get an exception"))
    replay = replay_route(Op("worker_sync.replayException",
                             "Sync again after the data behind an exception was fixed"), Response[Run], _replay)

    return Router(path=BASE, opt={"api": API}, tags=["worker-sync"],
                  dependencies={"service": constant(service), "runtime": Provide(runtime, sync_to_thread=False),
                                "visibility": Provide(_visibility)},
                  route_handlers=[start_run, *records.runs, *records.exceptions, replay])
