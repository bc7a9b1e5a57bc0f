"""The CRM system API on Salesforce: accounts and opportunities through SOQL and sObject calls.

Pages are keyset pages (`WHERE Id > :last ORDER BY Id LIMIT n+1`) rather than Salesforce
query locators: a locator expires after 15 minutes of inactivity and a canonical cursor
must not, and Id order stays stable while records are added.
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_query.htm
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import httpx
import msgspec
from litestar import Router

from contracts.common import Page
from contracts.crm import Account, AccountUpsert, Opportunity, OpportunityStage
from contracts.problems import invalid_cursor
from foundation.paging import decode_position, encode_position
from foundation.retry import RetryPolicy
from system_apis._internal.http import VendorRejected
from system_apis.domains.crm import crm_router
from system_apis.registry import Connection
from system_apis.salesforce.client import VENDOR, SalesforceClient, soql_literal
from system_apis.salesforce.mapping import (
    ACCOUNT_FIELDS,
    ACCOUNT_PREFIX,
    EXTERNAL_ID_FIELD,
    OPPORTUNITY_FIELDS,
    OPPORTUNITY_PREFIX,
    account_from_sf,
    account_upsert_to_sf,
    is_salesforce_id,
    opportunity_from_sf,
    stage_to_sf,
)

__all__ = ["SalesforceCrm", "create_router", "decode_cursor", "encode_cursor"]

T = TypeVar("T")


class _Cursor(msgspec.Struct, frozen=True):
    after: str


def encode_cursor(after_id: str, prefix: str) -> str:
    return encode_position(_Cursor(after=after_id), f"crm.{prefix}")


def decode_cursor(cursor: str, prefix: str) -> str:
    """The Id a cursor resumes after; a cursor this API did not issue is a 400, never SOQL."""
    after = decode_position(cursor, _Cursor, f"crm.{prefix}").after
    if not is_salesforce_id(after, prefix):
        raise invalid_cursor()
    return after


class SalesforceCrm:
    """`CrmSystem` on Salesforce. Canonical ids are Salesforce ids; seed keys are External_Id__c.

    Args:
        client: the Salesforce REST client.
        default_currency: currency of records from an org without multi-currency.
    """

    def __init__(self, client: SalesforceClient, *, default_currency: str = "USD") -> None:
        self.client = client
        self.default_currency = default_currency

    def _account(self, record: dict[str, Any]) -> Account:
        return account_from_sf(record, default_currency=self.default_currency)

    def _opportunity(self, record: dict[str, Any]) -> Opportunity:
        return opportunity_from_sf(record, default_currency=self.default_currency)

    async def _page(self, sobject: str, prefix: str, fields: Sequence[str], where: list[str], limit: int,
                    cursor: str | None, convert: Callable[[dict[str, Any]], T]) -> Page[T]:
        conditions = list(where)
        if cursor is not None:
            conditions.append(f"Id > {soql_literal(decode_cursor(cursor, prefix))}")
        soql = f"SELECT {', '.join(fields)} FROM {sobject}"
        if conditions:
            soql += " WHERE " + " AND ".join(conditions)
        # One extra row tells whether another page exists without a COUNT() round trip.
        soql += f" ORDER BY Id LIMIT {limit + 1}"
        records = [record async for record in self.client.query(soql)]
        next_cursor = encode_cursor(str(records[limit - 1]["Id"]), prefix) if len(records) > limit else None
        return Page(items=[convert(r) for r in records[:limit]], next_cursor=next_cursor)

    async def _get(self, sobject: str, prefix: str, fields: Sequence[str], key: str) -> dict[str, Any]:
        """By Salesforce id when `key` is shaped like one of this object, else by External_Id__c."""
        if is_salesforce_id(key, prefix):
            return await self.client.get_record(sobject, key, fields)
        soql = (f"SELECT {', '.join(fields)} FROM {sobject} WHERE {EXTERNAL_ID_FIELD} = {soql_literal(key)}"
                f" LIMIT 2")
        records = [record async for record in self.client.query(soql)]
        if not records:
            raise VendorRejected(VENDOR, f"no {sobject} with Id or {EXTERNAL_ID_FIELD} {key!r}", status=404,
                                 code="NOT_FOUND")
        if len(records) > 1:
            raise VendorRejected(VENDOR, f"several {sobject} records have {EXTERNAL_ID_FIELD} {key!r}", status=409,
                                 code="MULTIPLE_CHOICES")
        return records[0]

    async def list_accounts(self, limit: int, cursor: str | None) -> Page[Account]:
        return await self._page("Account", ACCOUNT_PREFIX, ACCOUNT_FIELDS, [], limit, cursor, self._account)

    async def get_account(self, account_id: str) -> Account:
        return self._account(await self._get("Account", ACCOUNT_PREFIX, ACCOUNT_FIELDS, account_id))

    async def upsert_account(self, external_id: str, data: AccountUpsert) -> tuple[Account, bool]:
        result = await self.client.upsert("Account", EXTERNAL_ID_FIELD, external_id, account_upsert_to_sf(data))
        record = await self.client.get_record("Account", result.id, ACCOUNT_FIELDS)
        return self._account(record), result.created

    async def list_opportunities(self, stage: OpportunityStage | None, limit: int,
                                 cursor: str | None) -> Page[Opportunity]:
        where: list[str] = []
        if stage == "closed_won":
            # IsWon also catches an org's own won stages, matching how stage_from_sf reads them.
            where.append("IsWon = true")
        elif stage is not None:
            where.append(f"StageName = {soql_literal(stage_to_sf(stage))}")
        return await self._page("Opportunity", OPPORTUNITY_PREFIX, OPPORTUNITY_FIELDS, where, limit, cursor,
                                self._opportunity)

    async def get_opportunity(self, opportunity_id: str) -> Opportunity:
        return self._opportunity(await self._get("Opportunity", OPPORTUNITY_PREFIX, OPPORTUNITY_FIELDS,
                                                 opportunity_id))


def create_router(http: httpx.AsyncClient, *, token: str = "sim-token", retry: RetryPolicy | None = None) -> Router:
    """The `/system/crm/v1` routes served from the Salesforce org `http` reaches."""
    return crm_router(SalesforceCrm(SalesforceClient(http, token=token, retry=retry)))


def create_systems(http: httpx.AsyncClient, connection: Connection, *,
                   retry: RetryPolicy | None = None) -> dict[str, object]:
    """The crm adapter on one salesforce account (`connection`: token, tenant, pacing), for routing per legal entity."""
    token = connection.credential("token", "sim-token")
    return {"crm": SalesforceCrm(SalesforceClient(http, token=token, retry=retry))}
