"""PSA domain contract: `/system/psa/v1` — delivery projects with milestones and budget."""

from __future__ import annotations

from typing import Annotated, Protocol

from litestar import Response, Router, get, put
from litestar.params import JSONBody, PathParameter, QueryParameter

from contracts.common import Page
from contracts.psa import PsaProject, PsaProjectUpsert
from system_apis.domains._params import Cursor, Limit, created_spec, upserted

__all__ = ["API", "PsaSystem", "psa_router"]

API = "system.psa"


class PsaSystem(Protocol):
    """What a PSA vendor adapter provides. Upserts are idempotent by external id."""

    async def list_projects(self, external_id: str | None, limit: int, cursor: str | None) -> Page[PsaProject]: ...

    async def get_project(self, project_id: str) -> PsaProject: ...

    async def upsert_project(self, external_id: str, data: JSONBody[PsaProjectUpsert]) -> tuple[PsaProject, bool]: ...


def psa_router(system: PsaSystem) -> Router:
    @get("/projects", operation_id="psa.listProjects", summary="List delivery projects")
    async def list_projects(external_id: Annotated[str | None, QueryParameter(max_length=80)] = None,
                            limit: Limit = 50, cursor: Cursor = None) -> Page[PsaProject]:
        return await system.list_projects(external_id, limit, cursor)

    @get("/projects/{project_id:str}", operation_id="psa.getProject", summary="Get a delivery project")
    async def get_project(project_id: Annotated[str, PathParameter(max_length=64)]) -> PsaProject:
        return await system.get_project(project_id)

    @put("/projects/by-external-id/{external_id:str}", operation_id="psa.upsertProject",
         summary="Create or update a delivery project by external id", responses=created_spec(PsaProject))
    async def upsert_project(external_id: Annotated[str, PathParameter(max_length=80, pattern=r"^[A-Za-z0-9_.:-]+$")],
                             data: JSONBody[PsaProjectUpsert]) -> Response[PsaProject]:
        return upserted(*await system.upsert_project(external_id, data))

    return Router(path="/system/psa/v1", opt={"api": API}, tags=["psa"],
                  route_handlers=[list_projects, get_project, upsert_project])
