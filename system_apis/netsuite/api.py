"""The ERP system API on NetSuite: legal entities = subsidiaries, projects = jobs, time = timeBills.

Employees, time posting, invoices and credit memos live in ``_billing_api``; posting and paying
invoices and exchange rates in ``_receivables_api``; expense costs (one expenseReport per line) in
``_expenses_api``; intercompany charges (an invoice or a vendorBill per side) in ``_intercompany_api`` (all
mixed in here).

Canonical ids are NetSuite internal ids (strings of digits); external ids are psconnect's
keys (``ACC-0001``, ``OPP-0001``...). Cursors are urlsafe base64 of the vendor paging state
(offset and page size): NetSuite requires the offset to be a multiple of the page size, so a
follow-up page keeps the first page's size unless the new ``limit`` divides the offset.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final, TypeVar

import httpx
import msgspec
from litestar import Router

from contracts.common import Page
from contracts.erp import (
    AccountingPeriod,
    Customer,
    CustomerUpsert,
    ErpCapabilities,
    ErpProject,
    ErpProjectUpsert,
    LegalEntity,
)
from contracts.problems import FieldError, ProblemError, invalid_cursor
from foundation.paging import decode_position, encode_position
from foundation.retry import RetryPolicy
from system_apis.domains.erp import erp_router
from system_apis.netsuite._billing_api import not_found, vendor_data_invalid
from system_apis.netsuite._expenses_api import NetSuiteExpenses
from system_apis.netsuite._intercompany_api import NetSuiteIntercompany
from system_apis.netsuite._receivables_api import NetSuiteReceivables
from system_apis.netsuite.client import NetSuiteClient
from system_apis.netsuite.mapping import (
    MappingError,
    customer_from_record,
    customer_to_record,
    period_from_record,
    project_from_record,
    project_to_record,
    subsidiary_from_record,
)
from system_apis.registry import Connection

__all__ = ["NetSuiteErp", "create_router"]

T = TypeVar("T")
_INTERNAL_ID: Final = re.compile(r"^[0-9]{1,18}$")
_EXTERNAL_ID: Final = re.compile(r"^[A-Za-z0-9_.:-]{1,80}$")


class _Cursor(msgspec.Struct, frozen=True):
    record: str
    q: str
    offset: int
    size: int


def _decode_cursor(value: str, record: str, q: str) -> _Cursor:
    cursor = decode_position(value, _Cursor, f"erp.{record}")
    if cursor.record != record or cursor.q != q or cursor.offset < 0 or cursor.size < 1:
        raise invalid_cursor("The cursor is not one this list issued.")
    return cursor


def _mapped(mapper: Callable[[dict[str, Any]], T], record: dict[str, Any]) -> T:
    try:
        return mapper(record)
    except MappingError as exc:
        raise vendor_data_invalid(exc) from exc


def _record(record: dict[str, Any]) -> dict[str, Any]:
    return record


class NetSuiteErp(NetSuiteReceivables, NetSuiteExpenses, NetSuiteIntercompany):
    """`ErpSystem` on NetSuite. Upserts are idempotent by external id (``PUT eid:``); time posts in async batches,
    expenses one report per line at once, intercompany charges one booked document per side."""

    def __init__(self, client: NetSuiteClient) -> None:
        super().__init__(client)

    async def _records(self, record_type: str, q: str, limit: int, cursor: str | None) -> Page[dict[str, Any]]:
        return await self._page(record_type, q or None, limit, cursor, _record, expand=True)

    async def _page(self, record: str, q: str | None, limit: int, cursor: str | None,
                    mapper: Callable[[dict[str, Any]], T], *, expand: bool = False) -> Page[T]:
        offset, size = 0, limit
        if cursor is not None:
            state = _decode_cursor(cursor, record, q or "")
            offset, size = state.offset, (limit if state.offset % limit == 0 else state.size)
        page = await self.client.list_ids(record, q=q, limit=size, offset=offset)
        records = await self.client.get_many(record, page.ids, expand=expand)
        items = [_mapped(mapper, r) for r in records]
        next_offset = page.next_offset
        next_cursor = (encode_position(_Cursor(record=record, q=q or "", offset=next_offset, size=size),
                                       f"erp.{record}")
                       if next_offset is not None else None)
        return Page(items=items, next_cursor=next_cursor)

    async def _get(self, record: str, kind: str, ident: str, mapper: Callable[[dict[str, Any]], T], *,
                   expand: bool = False) -> T:
        if not _INTERNAL_ID.match(ident):  # never let an id like "eid:X" or "1/projectTask" reach the URL
            raise not_found(kind, ident)
        return _mapped(mapper, await self.client.get(record, ident, expand=expand))

    async def capabilities(self) -> ErpCapabilities:
        # One timeBill per posting line: NetSuite's map/reduce batch takes a thousand lines a call.
        return ErpCapabilities(time_posting="per_entry")

    async def list_legal_entities(self, limit: int, cursor: str | None) -> Page[LegalEntity]:
        return await self._page("subsidiary", None, limit, cursor, subsidiary_from_record)

    async def get_legal_entity(self, legal_entity_id: str) -> LegalEntity:
        return await self._get("subsidiary", "legal entity", legal_entity_id, subsidiary_from_record)

    async def get_customer(self, customer_id: str) -> Customer:
        return await self._get("customer", "customer", customer_id, customer_from_record, expand=True)

    async def upsert_customer(self, external_id: str, data: CustomerUpsert) -> tuple[Customer, bool]:
        # NetSuite's upsert does not say whether it created; a read by external id first does.
        # Two racing first upserts may both report "created", but NetSuite still holds one record.
        existing = await self.client.find_by_external_id("customer", external_id)
        internal = await self.client.upsert("customer", external_id, customer_to_record(external_id, data),
                                            replace=("addressBook",))
        record = await self.client.get("customer", internal, expand=True)
        return _mapped(customer_from_record, record), existing is None

    async def list_projects(self, external_id: str | None, limit: int, cursor: str | None) -> Page[ErpProject]:
        q = None
        if external_id is not None:
            if not _EXTERNAL_ID.match(external_id):
                return Page(items=[])  # upserts only accept this alphabet, so no job can carry it
            q = f'externalId IS "{external_id}"'
        return await self._page("job", q, limit, cursor, project_from_record, expand=True)

    async def get_project(self, project_id: str) -> ErpProject:
        return await self._get("job", "project", project_id, project_from_record, expand=True)

    async def upsert_project(self, external_id: str, data: ErpProjectUpsert) -> tuple[ErpProject, bool]:
        try:
            body = project_to_record(external_id, data)
        except MappingError as exc:
            raise ProblemError(422, "validation-error", "Validation failed", str(exc),
                               errors=[FieldError(pointer="/budget/currency", detail=str(exc))],
                               code="validation_failed") from exc
        existing = await self.client.find_by_external_id("job", external_id)
        # replace=projectTask: the task list we send is the whole list, not lines to append.
        internal = await self.client.upsert("job", external_id, body, replace=("projectTask",))
        record = await self.client.get("job", internal, expand=True)
        return _mapped(project_from_record, record), existing is None

    async def list_accounting_periods(self, legal_entity_id: str | None, limit: int,
                                      cursor: str | None) -> Page[AccountingPeriod]:
        q = None
        if legal_entity_id is not None:
            if not _INTERNAL_ID.match(legal_entity_id):
                return Page(items=[])  # subsidiary ids are internal ids; nothing else can match
            q = f"custrecord_psc_subsidiary EQUAL {legal_entity_id}"
        return await self._page("accountingPeriod", q, limit, cursor, period_from_record)


def create_router(http: httpx.AsyncClient, *, token: str = "sim-token", retry: RetryPolicy | None = None) -> Router:
    """The ``/system/erp/v1`` routes on NetSuite; ``http`` decides where NetSuite is (simulator or real)."""
    return erp_router(NetSuiteErp(NetSuiteClient(http, token=token, retry=retry)))


def create_systems(http: httpx.AsyncClient, connection: Connection, *,
                   retry: RetryPolicy | None = None) -> dict[str, object]:
    """The erp adapter on one netsuite account (`connection`: token, tenant, pacing), for routing per legal entity."""
    return {"erp": NetSuiteErp(NetSuiteClient(http, token=connection.credential("token", "sim-token"), retry=retry))}
