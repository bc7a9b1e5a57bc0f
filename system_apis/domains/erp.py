"""ERP domain contract: `/system/erp/v1` — legal entities, customers, projects, periods."""

from __future__ import annotations

from typing import Annotated, Protocol

from litestar import Response, Router, get, put
from litestar.params import JSONBody, QueryParameter

from contracts.common import Page
from contracts.erp import AccountingPeriod, Customer, CustomerUpsert, ErpProject, ErpProjectUpsert, LegalEntity
from system_apis.domains._params import Cursor, Limit, created_spec, upserted

__all__ = ["API", "ErpSystem", "erp_router"]

API = "system.erp"
ExternalId = Annotated[str, QueryParameter(max_length=80, pattern=r"^[A-Za-z0-9_.:-]+$")]
RecordId = Annotated[str, QueryParameter(max_length=64)]


class ErpSystem(Protocol):
    """What an ERP vendor adapter provides. Upserts are idempotent by external id."""

    async def list_legal_entities(self, limit: int, cursor: str | None) -> Page[LegalEntity]: ...

    async def get_legal_entity(self, legal_entity_id: str) -> LegalEntity: ...

    async def get_customer(self, customer_id: str) -> Customer: ...

    async def upsert_customer(self, external_id: str, data: JSONBody[CustomerUpsert]) -> tuple[Customer, bool]: ...

    async def list_projects(self, external_id: str | None, limit: int, cursor: str | None) -> Page[ErpProject]: ...

    async def get_project(self, project_id: str) -> ErpProject: ...

    async def upsert_project(self, external_id: str, data: JSONBody[ErpProjectUpsert]) -> tuple[ErpProject, bool]: ...

    async def list_accounting_periods(self, legal_entity_id: str | None, limit: int,
                                      cursor: str | None) -> Page[AccountingPeriod]: ...


def erp_router(system: ErpSystem) -> Router:
    @get("/legal-entities", operation_id="erp.listLegalEntities", summary="List legal entities")
    async def list_legal_entities(limit: Limit = 50, cursor: Cursor = None) -> Page[LegalEntity]:
        return await system.list_legal_entities(limit, cursor)

    @get("/legal-entities/{legal_entity_id:str}", operation_id="erp.getLegalEntity", summary="Get a legal entity")
    async def get_legal_entity(legal_entity_id: RecordId) -> LegalEntity:
        return await system.get_legal_entity(legal_entity_id)

    @get("/customers/{customer_id:str}", operation_id="erp.getCustomer", summary="Get a customer")
    async def get_customer(customer_id: RecordId) -> Customer:
        return await system.get_customer(customer_id)

    @put("/customers/by-external-id/{external_id:str}", operation_id="erp.upsertCustomer",
         summary="Create or update a customer by external id", responses=created_spec(Customer))
    async def upsert_customer(external_id: ExternalId, data: JSONBody[CustomerUpsert]) -> Response[Customer]:
        return upserted(*await system.upsert_customer(external_id, data))

    @get("/projects", operation_id="erp.listProjects", summary="List projects")
    async def list_projects(external_id: Annotated[str | None, QueryParameter(max_length=80)] = None,
                            limit: Limit = 50, cursor: Cursor = None) -> Page[ErpProject]:
        return await system.list_projects(external_id, limit, cursor)

    @get("/projects/{project_id:str}", operation_id="erp.getProject", summary="Get a project")
    async def get_project(project_id: RecordId) -> ErpProject:
        return await system.get_project(project_id)

    @put("/projects/by-external-id/{external_id:str}", operation_id="erp.upsertProject",
         summary="Create or update a project by external id", responses=created_spec(ErpProject))
    async def upsert_project(external_id: ExternalId, data: JSONBody[ErpProjectUpsert]) -> Response[ErpProject]:
        return upserted(*await system.upsert_project(external_id, data))

    @get("/accounting-periods", operation_id="erp.listAccountingPeriods", summary="List accounting periods")
    async def list_accounting_periods(legal_entity_id: Annotated[str | None, QueryParameter(max_length=64)] = None,
                                      limit: Limit = 50, cursor: Cursor = None) -> Page[AccountingPeriod]:
        return await system.list_accounting_periods(legal_entity_id, limit, cursor)

    return Router(path="/system/erp/v1", opt={"api": API}, tags=["erp"],
                  route_handlers=[list_legal_entities, get_legal_entity, get_customer, upsert_customer,
                                  list_projects, get_project, upsert_project, list_accounting_periods])
