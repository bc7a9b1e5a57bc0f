"""CRM domain contract: `/system/crm/v1` — accounts and opportunities, CRM is their owner."""

from __future__ import annotations

from typing import Annotated, Protocol

from litestar import Response, Router, get, put
from litestar.params import JSONBody, PathParameter, QueryParameter

from contracts.common import Page
from contracts.crm import Account, AccountUpsert, Opportunity, OpportunityStage
from system_apis.domains._params import Cursor, Limit, created_spec, upserted
from system_apis.pacing import bind_consumer

__all__ = ["API", "CrmSystem", "crm_router"]

API = "system.crm"


class CrmSystem(Protocol):
    """What a CRM vendor adapter provides. Upserts return (record, created)."""

    async def list_accounts(self, limit: int, cursor: str | None) -> Page[Account]: ...

    async def get_account(self, account_id: str) -> Account: ...

    async def upsert_account(self, external_id: str, data: JSONBody[AccountUpsert]) -> tuple[Account, bool]: ...

    async def list_opportunities(self, stage: OpportunityStage | None, limit: int,
                                 cursor: str | None) -> Page[Opportunity]: ...

    async def get_opportunity(self, opportunity_id: str) -> Opportunity: ...


def crm_router(system: CrmSystem) -> Router:
    @get("/accounts", operation_id="crm.listAccounts", summary="List client accounts")
    async def list_accounts(limit: Limit = 50, cursor: Cursor = None) -> Page[Account]:
        return await system.list_accounts(limit, cursor)

    @get("/accounts/{account_id:str}", operation_id="crm.getAccount", summary="Get a client account")
    async def get_account(account_id: Annotated[str, PathParameter(max_length=64)]) -> Account:
        return await system.get_account(account_id)

    @put("/accounts/by-external-id/{external_id:str}", operation_id="crm.upsertAccount",
         summary="Create or update an account by external id", responses=created_spec(Account))
    async def upsert_account(external_id: Annotated[str, PathParameter(max_length=80, pattern=r"^[A-Za-z0-9_.:-]+$")],
                             data: JSONBody[AccountUpsert]) -> Response[Account]:
        return upserted(*await system.upsert_account(external_id, data))

    @get("/opportunities", operation_id="crm.listOpportunities", summary="List opportunities")
    async def list_opportunities(stage: Annotated[OpportunityStage | None, QueryParameter()] = None, limit: Limit = 50,
                                 cursor: Cursor = None) -> Page[Opportunity]:
        return await system.list_opportunities(stage, limit, cursor)

    @get("/opportunities/{opportunity_id:str}", operation_id="crm.getOpportunity", summary="Get an opportunity")
    async def get_opportunity(opportunity_id: Annotated[str, PathParameter(max_length=64)]) -> Opportunity:
        return await system.get_opportunity(opportunity_id)

    return Router(path="/system/crm/v1", opt={"api": API}, tags=["crm"], before_request=bind_consumer,
                  route_handlers=[list_accounts, get_account, upsert_account, list_opportunities, get_opportunity])
