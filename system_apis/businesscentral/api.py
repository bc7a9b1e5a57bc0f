"""The ERP system API on Dynamics 365 Business Central: legal entity = company, projects = jobs.

An adapter serves ONE company: the connection's (its id is in the base URL, see ``client``); the
legal entity list is that company. Canonical ids are BC record ids (GUIDs); external ids are
psconnect's keys, kept in the psconnect extension's ``psconnectRecords`` (``_index``) because BC's
``number`` holds only 20 characters and its projects, employees, time entries and document lines lack
fields psconnect needs (``mapping``). Time posting, invoice and credit memo drafts are in ``_billing``;
invoice status, posting, payments and exchange rates in ``_receivables``; expense costs (general journal
lines) in ``_expenses``; intercompany charges (posted sales and purchase invoices) in ``_intercompany``.

API v1.0 (the vendored ``spec/business-central-v1.openapi.yaml``) vs v2.0 (what this package speaks):

- paths: ``/api/v2.0/companies({id})/…`` instead of ``/api/v1.0/…``; entity sets used here exist in
  both except ``accountingPeriods`` (v2.0 only: ``startingDate``, ``closed``, ``dateLocked``);
- customers, employees, companyInformation: v2.0 flattens the ``address`` object into ``addressLine1``,
  ``addressLine2``, ``city``, ``state``, ``country``, ``postalCode``; employees gain
  ``statisticsGroupCode``;
- dates (``date``, ``invoiceDate``, ``postingDate``, ``creditMemoDate``) are ``Edm.Date``
  (``YYYY-MM-DD``) in v2.0 where v1.0 documents ``date-time``;
- sales documents gain ``postingDate``; document lines gain ``lineObjectNumber`` (v1.0 has
  ``accountId`` / ``lineDetails``) and ``amountExcludingTax``; salesCreditMemos gain ``invoiceId``;
- ``currencyExchangeRates`` and the bound action ``customerPaymentJournals({id})/Microsoft.NAV.post``
  exist in v2.0 only; customerPayments gain ``journalId``;
  ``salesInvoiceLines`` / ``salesCreditMemoLines`` keys are GUIDs in v2.0 (``'…'`` strings in v1.0);
- paging: ``@odata.nextLink`` with ``$skiptoken`` and ``Prefer: odata.maxpagesize`` are OData v4
  protocol features, in neither document; ``$batch`` is not in the document either.
The tests validate every request and response against the v1.0 document for what the two share
(paths mapped from v2.0 to v1.0, bodies against v1.0's schemas, the listed v2.0 fields and
``accountingPeriods`` / ``psconnectRecords`` / ``$batch`` checked only against the documentation).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

import httpx
import msgspec
from litestar import Router

from contracts.common import Money, Page
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
from foundation.paging import decode_cursor, decode_position, encode_cursor, encode_position
from foundation.retry import RetryPolicy
from system_apis._internal.http import VendorRejected
from system_apis.businesscentral._index import GUID, data_of, not_found, odata_string
from system_apis.businesscentral._intercompany import BusinessCentralIntercompany
from system_apis.businesscentral.client import API_PATH, RATE_LIMIT, TOKEN_HOST, BusinessCentralClient
from system_apis.businesscentral.mapping import (
    MappingError,
    ProjectDetails,
    accounting_periods,
    company_to_entity,
    customer_from_record,
    customer_to_record,
    project_details,
    project_from_records,
)
from system_apis.domains.erp import erp_router
from system_apis.registry import Connection

__all__ = ["BusinessCentralErp", "create_router", "create_systems"]

Record = dict[str, Any]
_CURRENCY_PATH: Final = "/budget/currency"


class _Link(msgspec.Struct, frozen=True):
    link: str


def vendor_data_invalid(exc: Exception) -> ProblemError:
    return ProblemError(502, "vendor-data-invalid", "Vendor record unreadable", str(exc), code="vendor_data_invalid")


class BusinessCentralErp(BusinessCentralIntercompany):
    """`ErpSystem` on Business Central, for the client's company.

    Args:
        revenue_account: the G/L account invoice lines post to.
        payment_journal, payment_account: the cash receipts batch payments are posted in and the G/L
            account it balances to (see ``_receivables``).
        expense_journal, expense_account, expense_balancing_account: the general journal batch expenses
            are posted in, the G/L account they are booked to and the one the batch balances to (see
            ``_expenses``).
        intercompany_revenue_account, intercompany_cost_account: the G/L accounts intercompany receivable and
            payable lines are booked to (see ``_intercompany``).
    """

    def __init__(self, client: BusinessCentralClient, *, revenue_account: str = "40100",
                 payment_journal: str = "PSCONNECT", payment_account: str = "10100",
                 expense_journal: str = "PSCEXPENSE", expense_account: str = "60100",
                 expense_balancing_account: str = "20700", intercompany_revenue_account: str = "40900",
                 intercompany_cost_account: str = "50900") -> None:
        super().__init__(client, revenue_account=revenue_account, payment_journal=payment_journal,
                         payment_account=payment_account, expense_journal=expense_journal,
                         expense_account=expense_account, expense_balancing_account=expense_balancing_account,
                         intercompany_revenue_account=intercompany_revenue_account,
                         intercompany_cost_account=intercompany_cost_account)

    # ------------------------------------------------------------------ paging helpers

    def _link_cursor(self, link: str | None, list_id: str) -> str | None:
        """The ``@odata.nextLink`` as a cursor, less the environment root (cursors stay short)."""
        if not link:
            return None
        if not link.startswith(self.client.root + "/api/"):
            raise vendor_data_invalid(ValueError("Business Central sent a next link outside its environment"))
        return encode_position(_Link(link=link[len(self.client.root):]), f"erp.bc.{list_id}")

    def _link_of(self, cursor: str | None, list_id: str) -> str | None:
        if cursor is None:
            return None
        link = decode_position(cursor, _Link, f"erp.bc.{list_id}").link
        if not link.startswith("/api/"):
            raise invalid_cursor("The cursor is not one this list issued.")
        return self.client.root + link

    async def _page(self, url: str, filter: str | None, limit: int, cursor: str | None,
                    list_id: str) -> tuple[list[Record], str | None]:
        records, link = await self.client.list_page(url, filter=filter, page_size=limit,
                                                    link=self._link_of(cursor, list_id))
        return records, self._link_cursor(link, list_id)

    # ------------------------------------------------------------------ legal entities

    async def capabilities(self) -> ErpCapabilities:
        # One timeRegistrationEntry per posting line, fifty to a transactional $batch.
        return ErpCapabilities(time_posting="per_entry")

    async def list_legal_entities(self, limit: int, cursor: str | None) -> Page[LegalEntity]:
        if cursor is not None:
            decode_cursor(cursor, "erp.bc.companies")
            return Page(items=[])
        return Page(items=[await self.entity()])

    async def get_legal_entity(self, legal_entity_id: str) -> LegalEntity:
        entity = await self.entity()
        if legal_entity_id.lower() not in (entity.id.lower(), entity.code.lower()):
            raise not_found("legal entity", legal_entity_id)
        return entity

    async def entity(self) -> LegalEntity:
        if self._entity is None:
            company = await self.client.get(f"{self.client.root}{API_PATH}/companies({await self.client.company()})")
            information, _ = await self.client.list_page(await self.client.url("companyInformation"))
            if not information:
                raise vendor_data_invalid(MappingError("the company has no companyInformation"))
            try:
                self._entity = company_to_entity(company, information[0])
            except MappingError as exc:
                raise vendor_data_invalid(exc) from exc
        return self._entity

    async def _require_entity(self, legal_entity_id: str, pointer: str = "/legal_entity_id") -> LegalEntity:
        entity = await self.entity()
        if legal_entity_id.lower() not in (entity.id.lower(), entity.code.lower()):
            raise ProblemError(422, "validation-error", "Validation failed",
                               f"This Business Central connection serves legal entity {entity.code} "
                               f"({entity.id}), not {legal_entity_id!r}.",
                               errors=[FieldError(pointer=pointer, detail="not this connection's legal entity")],
                               code="validation_failed")
        return entity

    # ------------------------------------------------------------------ customers

    async def _customer(self, record: Record, external_id: str | None = None) -> Customer:
        entity = await self.entity()
        if external_id is None:
            index = await self.index.by_target("customer", str(record["id"]))
            external_id = str(index["recordKey"]) if index else str(record.get("number") or record["id"])
        try:
            return customer_from_record(record, external_id=external_id, legal_entity_id=entity.id,
                                        currency=entity.currency)
        except (MappingError, KeyError) as exc:
            raise vendor_data_invalid(exc) from exc

    async def get_customer(self, customer_id: str) -> Customer:
        if not GUID.match(customer_id):
            raise not_found("customer", customer_id)
        try:
            record = await self.client.get(await self.client.url(f"customers({customer_id})"))
        except VendorRejected as exc:
            if exc.status == 404:
                raise not_found("customer", customer_id) from exc
            raise
        return await self._customer(record)

    async def upsert_customer(self, external_id: str, data: CustomerUpsert) -> tuple[Customer, bool]:
        entity = await self._require_entity(data.legal_entity_id)
        body = customer_to_record(external_id, data, company_currency=entity.currency)
        record, created = await self._upsert("customers", "customer", external_id, body)
        return await self._customer(record, external_id), created

    async def _upsert(self, entity_set: str, record_type: str, external_id: str, body: Record,
                      data: Record | None = None) -> tuple[Record, bool]:
        """Create or update a BC record by external id (index first, then ``number``), with its index record."""
        index = await self.index.find(record_type, external_id)
        target: Record | None = None
        if index is not None and index.get("targetId"):
            try:
                target = await self.client.get(await self.client.url(f"{entity_set}({index['targetId']})"))
            except VendorRejected as exc:
                if exc.status != 404:
                    raise
        if target is None and "number" in body:  # created before a crash lost its index record: adopt it
            target = await self.client.find(await self.client.url(entity_set),
                                            f"number eq {odata_string(str(body['number']))}")
        created = target is None
        if target is None:
            record = await self.client.create(await self.client.url(entity_set), body)
        else:
            record = await self._patch(entity_set, target, {k: v for k, v in body.items() if k != "number"})
        await self.index.put(record_type, external_id, target=str(record["id"]), data=data)
        return record, created

    async def _patch(self, entity_set: str, record: Record, body: Record) -> Record:
        """PATCH with the record's ETag; on 412 (changed meanwhile) re-read and apply once more."""
        for attempt in (1, 2):
            url = await self.client.url(f"{entity_set}({record['id']})")
            try:
                return await self.client.patch(url, body, str(record["@odata.etag"]))
            except VendorRejected as exc:
                if exc.status != 412 or attempt == 2:
                    raise
                record = await self.client.get(url)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ projects

    async def _project(self, index: Record, record: Record | None = None) -> ErpProject:
        entity = await self.entity()
        if record is None:
            record = await self.client.get(await self.client.url(f"projects({index['targetId']})"))
        try:
            details = msgspec.convert(data_of(index), ProjectDetails)
            return project_from_records(record, details, external_id=str(index["recordKey"]),
                                        legal_entity_id=entity.id)
        except (MappingError, msgspec.ValidationError, KeyError) as exc:
            raise vendor_data_invalid(exc) from exc

    async def list_projects(self, external_id: str | None, limit: int, cursor: str | None) -> Page[ErpProject]:
        if external_id is not None:
            index = await self.index.find("project", external_id)
            return Page(items=[await self._project(index)] if index else [])
        indexes, following = await self._page(await self.index.url(), "recordType eq 'project'", limit, cursor,
                                              "projects")
        items = await asyncio.gather(*(self._project(i) for i in indexes))
        return Page(items=list(items), next_cursor=following)

    async def get_project(self, project_id: str) -> ErpProject:
        if not GUID.match(project_id):
            raise not_found("project", project_id)
        index = await self.index.by_target("project", project_id.lower())
        if index is None:
            raise not_found("project", project_id)
        return await self._project(index)

    async def upsert_project(self, external_id: str, data: ErpProjectUpsert) -> tuple[ErpProject, bool]:
        await self._require_entity(data.legal_entity_id)
        if data.budget.currency != data.currency:
            detail = f"The budget is in {data.budget.currency}, the project in {data.currency}."
            raise ProblemError(422, "validation-error", "Validation failed", detail,
                               errors=[FieldError(pointer=_CURRENCY_PATH, detail=detail)], code="validation_failed")
        previous = await self.index.find("project", external_id)
        status = str(data_of(previous).get("status") or "active") if previous else "active"
        details = msgspec.to_builtins(project_details(data, status))
        body: Record = {"displayName": data.name[:100]}
        if len(external_id) <= 20:
            body["number"] = external_id
        record, created = await self._upsert("projects", "project", external_id, body, details)
        index = await self.index.find("project", external_id)
        assert index is not None
        return await self._project(index, record), created

    # ------------------------------------------------------------------ accounting periods

    async def list_accounting_periods(self, legal_entity_id: str | None, limit: int,
                                      cursor: str | None) -> Page[AccountingPeriod]:
        entity = await self.entity()
        if legal_entity_id is not None and legal_entity_id.lower() not in (entity.id.lower(), entity.code.lower()):
            return Page(items=[])
        periods = await self.periods()
        offset = decode_cursor(cursor, "erp.bc.periods")
        following = encode_cursor(offset + limit, "erp.bc.periods") if offset + limit < len(periods) else None
        return Page(items=periods[offset:offset + limit], next_cursor=following)

    async def periods(self) -> list[AccountingPeriod]:
        """Every accounting period of the company, flags as BC holds them now (never cached)."""
        records = [r async for r in self.client.iter_all(await self.client.url("accountingPeriods"))]
        try:
            return accounting_periods(records, (await self.entity()).id)
        except (MappingError, KeyError) as exc:
            raise vendor_data_invalid(exc) from exc

    async def _cost_rate(self, index: Record | None) -> Money:
        data = data_of(index or {})
        entity = await self.entity()
        return Money(amount=Decimal(str(data.get("cost_rate") or "0")),
                     currency=str(data.get("currency") or entity.currency))


def create_router(http: httpx.AsyncClient, *, token: str = "sim-token", retry: RetryPolicy | None = None) -> Router:
    """The ``/system/erp/v1`` routes on Business Central.

    ``token`` is ``client_id:client_secret`` (the registry's one-string credential); the tenant is
    taken from the base URL (``…/v2.0/{tenant}/{environment}``).
    """
    client_id, _, secret = token.partition(":")
    root = str(http.base_url) or None
    tenant = root.split("/v2.0/", 1)[1].split("/", 1)[0] if root and "/v2.0/" in root else "sim-tenant"
    client = BusinessCentralClient(http, tenant=tenant, client_id=client_id or "sim-client",
                                   client_secret=secret or "sim-secret", retry=retry)
    return erp_router(BusinessCentralErp(client))


def create_systems(http: httpx.AsyncClient, connection: Connection, *,
                   retry: RetryPolicy | None = None) -> Mapping[str, object]:
    """The ERP adapter on one connection.

    ``tenant`` is the Microsoft Entra tenant (the token endpoint's); ``credentials`` are the app
    registration's ``client_id`` and ``client_secret`` (``revenue_account``, the G/L account invoice lines
    post to, may ride along, default 40100; so may ``payment_journal``, the cash receipts batch payments
    are posted in, default PSCONNECT, and ``payment_account``, the G/L account a batch psconnect creates
    balances to, default 10100; and ``expense_journal``, ``expense_account`` and ``expense_balancing_account``,
    the general journal batch expenses are posted in, default PSCEXPENSE, the G/L account they are booked to,
    default 60100, and the one a batch psconnect creates balances to, default 20700); the company is named in
    ``base_url``
    (``https://api.businesscentral.dynamics.com/v2.0/{tenant}/{environment}/api/v2.0/companies({id})``) —
    a base URL without it serves the environment's first company.
    """
    missing = [k for k in ("client_id", "client_secret") if not connection.credentials.get(k)]
    if missing:
        raise ValueError(f"connection {connection.name}: Business Central needs credentials {missing}")
    client = BusinessCentralClient(http, tenant=connection.tenant or "common",
                                   client_id=connection.credentials["client_id"],
                                   client_secret=connection.credentials["client_secret"],
                                   base_url=connection.base_url, retry=retry, budget=connection.budget(RATE_LIMIT),
                                   token_host=connection.identity_url or TOKEN_HOST)
    options = connection.credentials
    return {"erp": BusinessCentralErp(client, revenue_account=options.get("revenue_account", "40100"),
                                      payment_journal=options.get("payment_journal", "PSCONNECT"),
                                      payment_account=options.get("payment_account", "10100"),
                                      expense_journal=options.get("expense_journal", "PSCEXPENSE"),
                                      expense_account=options.get("expense_account", "60100"),
                                      expense_balancing_account=options.get("expense_balancing_account", "20700"),
                                      intercompany_revenue_account=options.get("intercompany_revenue_account",
                                                                               "40900"),
                                      intercompany_cost_account=options.get("intercompany_cost_account", "50900"))}

