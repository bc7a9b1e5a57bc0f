"""The ERP system API on Xero: one connection = one Xero organisation (tenant) = one legal entity.

What each canonical object is in Xero: see `mapping`. Time posting is summarised (`_summary`,
``GET /capabilities`` answers ``summarised``) in `_posting`; expenses, posted as bills, in `_expenses`;
intercompany charges, approved invoices (receivable) or bills (payable) to the counterparty's contact, in
`_intercompany`; invoices and credit notes are in `_billing`;
an invoice's status, posting, payments and exchange rates in `_receivables`; the lookups they share in
`_lookups`.
Canonical ids are Xero's own (ContactID, projectId, InvoiceID ... UUIDs; the legal entity's is the
tenant id). Lists that Xero cannot filter or page the way the contract does (projects by external
id) are read whole and paged here with a cursor bound to the list.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import httpx
import msgspec
import sqlalchemy as sa
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
from contracts.problems import FieldError, ProblemError
from contracts.workforce import Employee, EmployeeUpsert
from foundation.db import create_engine
from foundation.retry import RetryPolicy
from system_apis.domains.erp import erp_router
from system_apis.registry import Connection
from system_apis.xero._defaults import DEFAULT_CODE, DEFAULT_TENANT, PAYMENT_ACCOUNT
from system_apis.xero._expense_store import ExpenseStore
from system_apis.xero._expenses import XeroExpenses
from system_apis.xero._intercompany import XeroIntercompany
from system_apis.xero._listing import sliced
from system_apis.xero._lookups import not_found, vendor_data_invalid
from system_apis.xero._receivables import XeroReceivables
from system_apis.xero._summary import SUMMARY_GROUPING, SummaryStore
from system_apis.xero._tokens import TOKEN_URL, RefreshTokenStore, SqlTokenStore
from system_apis.xero.client import ACCOUNTING, DAY_LIMIT, MINUTE_LIMIT, PROJECTS, XeroClient, idempotency_key
from system_apis.xero.mapping import (
    NAME_SEPARATOR,
    MappingError,
    contact_from_customer,
    contact_from_employee,
    customer_from_contact,
    employee_from_contact,
    employee_number,
    legal_entity_from_organisation,
    month_periods,
    project_from_record,
)

__all__ = ["XeroErp", "create_router", "create_systems"]

T = TypeVar("T")
_CONTACT_NUMBER: Final = re.compile(r"^[A-Za-z0-9_.:-]{1,50}$")
_UUID: Final = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _mapped(mapper: Callable[[], T]) -> T:
    try:
        return mapper()
    except (MappingError, KeyError, TypeError) as exc:
        raise vendor_data_invalid(MappingError(str(exc))) from exc


class XeroErp(XeroReceivables, XeroExpenses, XeroIntercompany):
    """`ErpSystem` on one Xero organisation; `code` is psconnect's code of its legal entity, `payment_account`
    the code of the bank account customer payments are applied to, `expenses` where expense posting batches are
    kept (beside the time summaries, in their database, without)."""

    def __init__(self, client: XeroClient, summaries: SummaryStore, *, code: str, connection: str = "xero",
                 today: Callable[[], dt.date] = dt.date.today, payment_account: str = PAYMENT_ACCOUNT,
                 expenses: ExpenseStore | None = None) -> None:
        super().__init__(client, summaries, connection=connection)
        self.code = code
        self.expenses = expenses or ExpenseStore(summaries.engine)
        self._today = today
        self.payment_account = payment_account

    async def capabilities(self) -> ErpCapabilities:
        return ErpCapabilities(time_posting="summarised", summary_grouping=list(SUMMARY_GROUPING),
                               time_unit_minutes=1)

    # ------------------------------------------------------------------ legal entity and periods

    async def _entity(self) -> LegalEntity:
        org = await self._organisation()
        return _mapped(lambda: legal_entity_from_organisation(org, code=self.code, tenant=self.client.tenant))

    async def list_legal_entities(self, limit: int, cursor: str | None) -> Page[LegalEntity]:
        return sliced([await self._entity()], "erp.xero.entities", "", limit, cursor)

    async def get_legal_entity(self, legal_entity_id: str) -> LegalEntity:
        if legal_entity_id not in (self.client.tenant, self.code):
            raise not_found("legal entity", legal_entity_id)
        return await self._entity()

    async def list_accounting_periods(self, legal_entity_id: str | None, limit: int,
                                      cursor: str | None) -> Page[AccountingPeriod]:
        if legal_entity_id is not None and legal_entity_id not in (self.client.tenant, self.code):
            return Page(items=[])
        org = await self._organisation()
        periods = _mapped(lambda: month_periods(org, tenant=self.client.tenant, through=self._today()))
        return sliced(periods, "erp.xero.periods", "", limit, cursor)

    # ------------------------------------------------------------------ customers and employees

    async def _contact(self, number: str) -> dict[str, Any] | None:
        body = await self.client.get(f"{ACCOUNTING}/Contacts", {"where": f'ContactNumber=="{number}"'})
        found = body.get("Contacts") or []
        return dict(found[0]) if found else None

    async def _save_contact(self, contact: dict[str, Any], key: str) -> dict[str, Any]:
        body = await self.client.request("POST", f"{ACCOUNTING}/Contacts", json={"Contacts": [contact]},
                                         key=idempotency_key("contact", key))
        return dict(body["Contacts"][0])

    async def get_customer(self, customer_id: str) -> Customer:
        body = await self.client.find(f"{ACCOUNTING}/Contacts/{customer_id}") if _UUID.match(customer_id) else None
        if not body or not body.get("Contacts"):
            raise not_found("customer", customer_id)
        record = dict(body["Contacts"][0])
        if not record.get("IsCustomer"):
            raise not_found("customer", customer_id)
        currency = (await self._entity()).currency
        return _mapped(lambda: customer_from_contact(record, tenant=self.client.tenant, currency=currency))

    def _check_number(self, number: str, pointer: str) -> None:
        if not _CONTACT_NUMBER.match(number):
            raise ProblemError(422, "validation-error", "Validation failed",
                               f"Xero contact numbers hold at most 50 characters: {number!r}.",
                               errors=[FieldError(pointer=pointer, detail="at most 50 characters")],
                               code="validation_failed")

    async def upsert_customer(self, external_id: str, data: CustomerUpsert) -> tuple[Customer, bool]:
        self._check_number(external_id, "/external_id")
        await self._require_entity(data.legal_entity_id)
        existing = await self._contact(external_id)
        contact = contact_from_customer(external_id, data, existing.get("ContactID") if existing else None)
        saved = await self._write(lambda: self._save_contact(contact, f"{external_id}:{msgspec.json.encode(data)!r}"))
        return _mapped(lambda: customer_from_contact(saved, tenant=self.client.tenant, currency=data.currency)), \
            existing is None

    async def upsert_employee(self, external_id: str, data: EmployeeUpsert) -> tuple[Employee, bool]:
        number = employee_number(external_id)
        self._check_number(number, "/external_id")
        await self._require_entity(data.legal_entity_id)
        existing = await self._contact(number)
        contact = contact_from_employee(external_id, data, existing.get("ContactID") if existing else None)
        saved = await self._write(lambda: self._save_contact(contact, f"{number}:{msgspec.json.encode(data)!r}"))
        return _mapped(lambda: employee_from_contact(saved, data, external_id)), existing is None

    async def _require_entity(self, legal_entity_id: str) -> None:
        if legal_entity_id not in (self.client.tenant, self.code):
            raise ProblemError(422, "unknown-legal-entity", "Unknown legal entity",
                               f"This Xero organisation is legal entity {self.code} ({self.client.tenant}), "
                               f"not {legal_entity_id!r}.", code="unknown_legal_entity")

    # ------------------------------------------------------------------ projects

    async def _tasks(self, project_id: str) -> list[dict[str, Any]]:
        return [t async for page in self.client.projects_pages(f"/Projects/{project_id}/Tasks") for t in page]

    async def _project(self, record: dict[str, Any]) -> ErpProject:
        tasks = await self._tasks(str(record["projectId"]))
        return _mapped(lambda: project_from_record(record, tasks, tenant=self.client.tenant))

    async def list_projects(self, external_id: str | None, limit: int, cursor: str | None) -> Page[ErpProject]:
        if external_id is not None:
            record = await self._project_record(external_id)
            projects = {external_id: record} if record is not None else {}
        else:
            projects = await self._projects(fresh=cursor is None)
        keys = sorted(projects)
        page = sliced(keys, "erp.xero.projects", external_id or "", limit, cursor)
        return Page(items=[await self._project(projects[k]) for k in page.items], next_cursor=page.next_cursor)

    async def get_project(self, project_id: str) -> ErpProject:
        record = await self.client.find(f"{PROJECTS}/Projects/{project_id}") if _UUID.match(project_id) else None
        if not record:
            raise not_found("project", project_id)
        return await self._project(dict(record))

    async def upsert_project(self, external_id: str, data: ErpProjectUpsert) -> tuple[ErpProject, bool]:
        await self._require_entity(data.legal_entity_id)
        if data.billing is not None and data.billing.milestones:
            # Xero Projects hold no billing schedule; dropping the milestones would leave them never invoiced.
            raise ProblemError(422, "validation-error", "Validation failed",
                               "This ERP (Xero) holds no milestone billing schedule on a project: bill this "
                               "project's milestones from an entity whose ERP does, or as time and materials.",
                               errors=[FieldError(pointer="/billing/milestones", detail="not supported by this ERP")],
                               code="milestones_unsupported")
        entity = await self._entity()
        if data.currency != entity.currency or data.budget.currency != entity.currency:
            raise ProblemError(422, "validation-error", "Validation failed",
                               f"Xero projects are in the organisation's currency {entity.currency}.",
                               errors=[FieldError(pointer="/currency", detail=f"must be {entity.currency}")],
                               code="validation_failed")
        existing = await self._project_record(external_id)
        body: dict[str, Any] = {"contactId": data.customer_id, "name": f"{external_id}{NAME_SEPARATOR}{data.name}",
                                "estimateAmount": data.budget.amount}
        if data.end_date is not None:
            body["deadlineUtc"] = f"{data.end_date.isoformat()}T00:00:00Z"
        key = f"{external_id}:{msgspec.json.encode(data)!r}"
        if existing is None:
            created = await self._write(lambda: self.client.request(
                "POST", f"{PROJECTS}/Projects", json=body, key=idempotency_key("project", key)))
            project_id = str(created["projectId"])
        else:
            project_id = str(existing["projectId"])
            await self._write(lambda: self.client.request("PUT", f"{PROJECTS}/Projects/{project_id}", json=body,
                                                          key=idempotency_key("project", key)))
        await self._ensure_tracking_option(external_id)
        have = {str(t.get("name")) for t in await self._tasks(project_id)}
        for task in data.tasks:
            if task.name not in have:
                minutes = int(Decimal(task.planned_hours) * 60)
                await self._write(lambda task=task, minutes=minutes: self.client.request(  # type: ignore[misc]
                    "POST", f"{PROJECTS}/Projects/{project_id}/Tasks",
                    json={"name": task.name, "rate": {"currency": data.currency, "value": 0},
                          "chargeType": "NON_CHARGEABLE", "estimateMinutes": minutes},
                    key=idempotency_key("task", project_id, task.name)))
        record = await self.client.get(f"{PROJECTS}/Projects/{project_id}")
        self._remember(external_id, dict(record))
        return await self._project(dict(record)), existing is None


def create_router(http: httpx.AsyncClient, *, token: str = "sim-token", retry: RetryPolicy | None = None) -> Router:
    """The ``/system/erp/v1`` routes on the simulator's default organisation (``token`` is the refresh token)."""
    engine = create_engine("sqlite://")
    client = XeroClient(http, tenant=DEFAULT_TENANT, retry=retry,
                        credentials={"client_id": "psconnect", "client_secret": "sim-secret", "refresh_token": token},
                        store=SqlTokenStore(engine))
    return erp_router(XeroErp(client, SummaryStore(engine), code=DEFAULT_CODE))


def create_systems(http: httpx.AsyncClient, connection: Connection, *, retry: RetryPolicy | None = None,
                   engine: sa.Engine | None = None) -> Mapping[str, object]:
    """The ERP adapter on one Xero connection.

    ``connection.tenant`` is the Xero tenant id; ``connection.credentials`` hold ``client_id``,
    ``client_secret``, the first ``refresh_token``, the legal entity ``code`` (psconnect's, which Xero
    cannot hold) and optionally ``payment_account``, the code of the bank account payments go to
    (`PAYMENT_ACCOUNT` without). Rotated refresh tokens and summary compositions live in ``engine``: the
    gateway's database for an account reached over HTTP (``registry.systems_of`` passes it), else an in-memory
    SQLite that lasts as long as the process, like the in-process simulator it talks to.
    """
    if not connection.tenant:
        raise ValueError(f"the Xero connection {connection.name!r} names no tenant (its xero-tenant-id)")
    engine = engine or create_engine("sqlite://")
    token_url = f"{connection.identity_url}{urlsplit(TOKEN_URL).path}" if connection.identity_url else TOKEN_URL
    client = XeroClient(http, tenant=connection.tenant, credentials=connection.credentials,
                        store=_token_store(engine), connection=connection.name, retry=retry,
                        budget=connection.budget(MINUTE_LIMIT), day_budget=connection.budget(DAY_LIMIT),
                        token_url=token_url)
    code = connection.credentials.get("code") or connection.name
    return {"erp": XeroErp(client, SummaryStore(engine), code=code, connection=connection.name,
                           payment_account=connection.credentials.get("payment_account") or PAYMENT_ACCOUNT)}


def _token_store(engine: sa.Engine) -> RefreshTokenStore:
    return SqlTokenStore(engine)
