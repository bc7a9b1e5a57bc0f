"""HR domain contract: `/system/hr/v1` — workers and cost centers, read-only.

HR is the system of record for worker identity, employment status, cost center and
cost rate; nothing writes to it through psconnect. Other systems learn about workers
from here (the worker-sync process API pushes changes to the PSA and the ERP).

Legal-entity grant (`system_apis/grants.py`): a worker belongs to its employing entity and a
cost center to its entity (`legal_entity_code`); a restricted caller sees only theirs.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Protocol

from litestar import Request, Router, get
from litestar.params import PathParameter, QueryParameter

from contracts.common import Page
from contracts.workforce import CostCenter, Worker
from system_apis.domains._entity import ENTITY_PARAMETER, bind_call
from system_apis.domains._params import Cursor
from system_apis.grants import kept, system_scope

__all__ = ["API", "HrLimit", "HrSystem", "hr_router"]

API = "system.hr"
HrLimit = Annotated[int, QueryParameter(ge=1, le=100, description="Page size (HR vendors page by at most 100).")]


class HrSystem(Protocol):
    """What an HR vendor adapter provides."""

    async def list_workers(self, limit: int, cursor: str | None,
                           updated_since: dt.datetime | None) -> Page[Worker]: ...

    async def get_worker(self, worker_id: str) -> Worker: ...

    async def list_cost_centers(self, limit: int, cursor: str | None) -> Page[CostCenter]: ...


def hr_router(system: HrSystem) -> Router:
    @get("/workers", operation_id="hr.listWorkers", summary="List workers")
    async def list_workers(request: Request[Any, Any, Any], limit: HrLimit = 100, cursor: Cursor = None,
                           updated_since: Annotated[dt.datetime | None, QueryParameter(
                               description="Only workers whose HR record changed at or after this instant.")]
                           = None) -> Page[Worker]:
        grant = (await system_scope(request)).grant
        page = await system.list_workers(limit, cursor, updated_since)
        return kept(page, lambda w: grant.allows(w.legal_entity_code))

    @get("/workers/{worker_id:str}", operation_id="hr.getWorker", summary="Get a worker by HR id")
    async def get_worker(request: Request[Any, Any, Any],
                         worker_id: Annotated[str, PathParameter(max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
                         ) -> Worker:
        grant = (await system_scope(request)).grant
        worker = await system.get_worker(worker_id)
        grant.found(worker.legal_entity_code, "Worker", worker_id)
        return worker

    @get("/cost-centers", operation_id="hr.listCostCenters", summary="List cost centers")
    async def list_cost_centers(request: Request[Any, Any, Any], limit: HrLimit = 100,
                                cursor: Cursor = None) -> Page[CostCenter]:
        grant = (await system_scope(request)).grant
        return kept(await system.list_cost_centers(limit, cursor), lambda c: grant.allows(c.legal_entity_code))

    return Router(path="/system/hr/v1", opt={"api": API}, tags=["hr"], before_request=bind_call,
                  parameters=ENTITY_PARAMETER,
                  route_handlers=[list_workers, get_worker, list_cost_centers])
