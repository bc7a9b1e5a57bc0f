"""The CRM system API on HubSpot: companies as accounts, deals as opportunities.

Canonical ids are HubSpot record ids; a psconnect external id (``ACC-0001``, ``OPP-0001``) is accepted
too and read through ``idProperty=psconnect_external_id``. Cursors wrap HubSpot's own ``after`` token,
bound to the list they came from. HubSpot's list endpoint has no stage filter (the search API has, but
caps results at 10,000 and at 5 requests a second), so the stage is applied to each vendor page here: a
page may hold fewer items than asked for, even none, and still carry a next cursor — callers follow
cursors until there is none.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx
import msgspec
from litestar import Router

from contracts.common import Page
from contracts.crm import Account, AccountUpsert, Opportunity, OpportunityStage
from foundation.paging import decode_position, encode_position
from foundation.retry import RetryPolicy
from system_apis._internal.http import VendorRejected
from system_apis.domains.crm import crm_router
from system_apis.hubspot.client import RATE_LIMIT, VENDOR, HubSpotClient, HubSpotObject, UpsertInput
from system_apis.hubspot.mapping import (
    COMPANY_PROPERTIES,
    DEAL_PROPERTIES,
    EXTERNAL_ID,
    MappingError,
    account_from_company,
    account_upsert_to_properties,
    is_hubspot_id,
    opportunity_from_deal,
)
from system_apis.registry import Connection

__all__ = ["DEFAULT_CURRENCY", "HubSpotCrm", "create_router", "create_systems"]

DEFAULT_CURRENCY = "CAD"
"""Currency of a company without ``psconnect_currency``: the acquired Canadian entity's (CA01)."""


class _Cursor(msgspec.Struct, frozen=True):
    after: str


def _unreadable(exc: MappingError) -> VendorRejected:
    return VendorRejected(VENDOR, f"unreadable record: {exc}", status=502, code="unreadable_response")


class HubSpotCrm:
    """`CrmSystem` on HubSpot CRM v3."""

    def __init__(self, client: HubSpotClient, *, default_currency: str = DEFAULT_CURRENCY) -> None:
        self.client = client
        self.default_currency = default_currency

    def _account(self, record: HubSpotObject) -> Account:
        try:
            return account_from_company(record.id, record.properties, default_currency=self.default_currency)
        except MappingError as exc:
            raise _unreadable(exc) from exc

    def _opportunity(self, record: HubSpotObject) -> Opportunity:
        try:
            return opportunity_from_deal(record.id, record.properties, record.associated("companies"),
                                         default_currency=self.default_currency)
        except MappingError as exc:
            raise _unreadable(exc) from exc

    async def _get(self, object_type: str, key: str, properties: tuple[str, ...],
                   associations: tuple[str, ...] = ()) -> HubSpotObject:
        return await self.client.get(object_type, key, properties=properties, associations=associations,
                                     id_property=None if is_hubspot_id(key) else EXTERNAL_ID)

    async def list_accounts(self, limit: int, cursor: str | None) -> Page[Account]:
        after = decode_position(cursor, _Cursor, "crm.hubspot.companies").after if cursor else None
        page = await self.client.list_page("companies", limit=limit, after=after, properties=COMPANY_PROPERTIES)
        following = page.next_after
        return Page(items=[self._account(r) for r in page.results],
                    next_cursor=encode_position(_Cursor(after=following), "crm.hubspot.companies")
                    if following else None)

    async def get_account(self, account_id: str) -> Account:
        return self._account(await self._get("companies", account_id, COMPANY_PROPERTIES))

    async def upsert_account(self, external_id: str, data: AccountUpsert) -> tuple[Account, bool]:
        [record] = await self.client.batch_upsert("companies", [UpsertInput(
            id=external_id, id_property=EXTERNAL_ID, properties=account_upsert_to_properties(data))])
        # The batch answer carries only the written properties; read the record whole.
        account = await self.get_account(record.id)
        return account, bool(record.new)

    async def list_opportunities(self, stage: OpportunityStage | None, limit: int,
                                 cursor: str | None) -> Page[Opportunity]:
        list_id = f"crm.hubspot.deals.{stage or 'all'}"
        after = decode_position(cursor, _Cursor, list_id).after if cursor else None
        page = await self.client.list_page("deals", limit=limit, after=after, properties=DEAL_PROPERTIES,
                                           associations=("companies",))
        items = [self._opportunity(r) for r in page.results]
        following = page.next_after
        return Page(items=[o for o in items if stage is None or o.stage == stage],
                    next_cursor=encode_position(_Cursor(after=following), list_id) if following else None)

    async def get_opportunity(self, opportunity_id: str) -> Opportunity:
        return self._opportunity(await self._get("deals", opportunity_id, DEAL_PROPERTIES, ("companies",)))


def create_router(http: httpx.AsyncClient, *, token: str = "sim-token", retry: RetryPolicy | None = None) -> Router:
    """The `/system/crm/v1` routes served from the HubSpot portal `http` reaches."""
    return crm_router(HubSpotCrm(HubSpotClient(http, token=token, retry=retry)))


def create_systems(http: httpx.AsyncClient, connection: Connection, *,
                   retry: RetryPolicy | None = None) -> Mapping[str, object]:
    """The CRM adapter on one HubSpot portal: `credentials["token"]` is the private app's access token;
    `credentials["default_currency"]` (optional) the currency of companies without one."""
    client = HubSpotClient(http, token=connection.credentials["token"], retry=retry,
                           budget=connection.budget(RATE_LIMIT))
    currency = connection.credentials.get("default_currency", DEFAULT_CURRENCY)
    return {"crm": HubSpotCrm(client, default_currency=currency)}
