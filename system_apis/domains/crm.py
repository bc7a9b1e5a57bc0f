"""CRM domain contract: `/system/crm/v1` — accounts and opportunities, CRM is their owner.

Legal-entity grant (`system_apis/grants.py`): an opportunity belongs to the entity it is
booked to (`legal_entity_code`; one of no or an unknown entity is hidden from restricted
callers). An account has no entity of its own — its deals may be booked to several — so a
restricted caller sees the accounts with a deal booked to a granted entity, may update only
those, and cannot create one (a new account has no deal to attribute it by: 403).
"""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from litestar import Request, Response, Router, get, put
from litestar.params import JSONBody, PathParameter, QueryParameter

from contracts.common import Page
from contracts.crm import Account, AccountUpsert, Opportunity, OpportunityStage
from system_apis.domains._entity import ENTITY_PARAMETER, bind_call
from system_apis.domains._params import Cursor, Limit, created_spec, upserted
from system_apis.grants import SystemScope, kept, system_scope

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
    async def granted_accounts(scope: SystemScope) -> set[str]:
        """Ids of the accounts with a deal booked to a granted entity (read only for restricted callers)."""
        ids: set[str] = set()
        cursor: str | None = None
        while True:
            page = await system.list_opportunities(None, 200, cursor)
            ids.update(o.account_id for o in page.items if scope.grant.allows(o.legal_entity_code))
            cursor = page.next_cursor
            if not cursor:
                return ids

    @get("/accounts", operation_id="crm.listAccounts", summary="List client accounts")
    async def list_accounts(request: Request[Any, Any, Any], limit: Limit = 50,
                            cursor: Cursor = None) -> Page[Account]:
        scope = await system_scope(request)
        page = await system.list_accounts(limit, cursor)
        if not scope.restricted:
            return page
        granted = await granted_accounts(scope)
        return kept(page, lambda a: a.id in granted)

    @get("/accounts/{account_id:str}", operation_id="crm.getAccount", summary="Get a client account")
    async def get_account(request: Request[Any, Any, Any],
                          account_id: Annotated[str, PathParameter(max_length=64)]) -> Account:
        scope = await system_scope(request)
        account = await system.get_account(account_id)
        if scope.restricted and account.id not in await granted_accounts(scope):
            scope.grant.found(None, "Account", account_id)
        return account

    @put("/accounts/by-external-id/{external_id:str}", operation_id="crm.upsertAccount",
         summary="Create or update an account by external id", responses=created_spec(Account))
    async def upsert_account(request: Request[Any, Any, Any],
                             external_id: Annotated[str, PathParameter(max_length=80, pattern=r"^[A-Za-z0-9_.:-]+$")],
                             data: JSONBody[AccountUpsert]) -> Response[Account]:
        scope = await system_scope(request)
        if scope.restricted:
            granted = await granted_accounts(scope)
            mine = False
            cursor: str | None = None
            while not mine:
                page = await system.list_accounts(200, cursor)
                mine = any(a.external_id == external_id and a.id in granted for a in page.items)
                cursor = page.next_cursor
                if not cursor:
                    break
            if not mine:
                scope.grant.require(None)
        return upserted(*await system.upsert_account(external_id, data))

    @get("/opportunities", operation_id="crm.listOpportunities", summary="List opportunities")
    async def list_opportunities(request: Request[Any, Any, Any],
                                 stage: Annotated[OpportunityStage | None, QueryParameter()] = None, limit: Limit = 50,
                                 cursor: Cursor = None) -> Page[Opportunity]:
        grant = (await system_scope(request)).grant
        return kept(await system.list_opportunities(stage, limit, cursor), lambda o: grant.allows(o.legal_entity_code))

    @get("/opportunities/{opportunity_id:str}", operation_id="crm.getOpportunity", summary="Get an opportunity")
    async def get_opportunity(request: Request[Any, Any, Any],
                              opportunity_id: Annotated[str, PathParameter(max_length=64)]) -> Opportunity:
        grant = (await system_scope(request)).grant
        opportunity = await system.get_opportunity(opportunity_id)
        grant.found(opportunity.legal_entity_code, "Opportunity", opportunity_id)
        return opportunity

    return Router(path="/system/crm/v1", opt={"api": API}, tags=["crm"], before_request=bind_call,
                  parameters=ENTITY_PARAMETER,
                  route_handlers=[list_accounts, get_account, upsert_account, list_opportunities, get_opportunity])
