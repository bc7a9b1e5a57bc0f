"""How a process API reaches the system APIs: over HTTP, through the gateway, as a service.

Process APIs never import a vendor package. They call the domain contracts
(`/system/<domain>/v1`) with a client-credentials token of their own service
identity, so the same policies — authentication, scopes, later rate limits — protect
the ERP from our own month-end bursts. In embedded mode the transport is the
gateway app itself (no socket); distributed, it is the gateway's URL.

Answers are classified once, here: 429/502/503/504 and transport errors are
`TransientFailure` (retry, honouring `Retry-After`); any other 4xx is a
`BusinessFailure` carrying the problem the system API returned.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, TypeVar

import httpx
import msgspec

from contracts.billing import (
    CreditMemo,
    CreditMemoUpsert,
    ExpensePostingBatch,
    ExpensePostingResult,
    IntercompanyCharge,
    IntercompanyChargeUpsert,
    Invoice,
    InvoiceUpsert,
    PostedExpense,
    PostedTimeTotal,
    RateCard,
    TimePostingBatch,
    TimePostingJob,
    TimePostingResult,
)
from contracts.common import ENTITY_CODE, Page
from contracts.correlation import outgoing_headers
from contracts.crm import Account, Opportunity
from contracts.currency import ExchangeRate
from contracts.erp import AccountingPeriod, Customer, CustomerUpsert, ErpProject, ErpProjectUpsert, LegalEntity
from contracts.psa import PsaProject, PsaProjectUpsert
from contracts.time import Expense, TimeEntry
from contracts.workforce import Assignment, Employee, EmployeeUpsert, PsaUser, PsaUserUpsert, Worker
from foundation.retry import parse_retry_after
from process_apis.failures import BusinessFailure, TransientFailure
from process_apis.registry import TokenSource

__all__ = ["BusinessFailure", "CrmApi", "ErpApi", "HrApi", "PsaApi", "SystemApi", "TimeApi", "TokenSource",
           "TransientFailure"]

T = TypeVar("T")
TRANSIENT_STATUSES = frozenset({408, 429, 502, 503, 504})


class SystemApi:
    def __init__(self, http: httpx.AsyncClient, token: TokenSource, base: str) -> None:
        self.http = http
        self.token = token
        self.base = base

    async def call(self, method: str, path: str, type_: type[T], *, json: object = None,
                   params: dict[str, str | int] | None = None) -> T:
        headers = {**outgoing_headers(), "Authorization": f"Bearer {await self.token()}"}
        content = None
        if json is not None:
            content = msgspec.json.encode(json)
            headers["Content-Type"] = "application/json"
        try:
            response = await self.http.request(method, self.base + path, content=content, params=params,
                                               headers=headers)
        except httpx.TransportError as exc:
            raise TransientFailure(f"{method} {path}: {exc!r}") from exc
        if response.status_code in TRANSIENT_STATUSES:
            raise TransientFailure(f"{method} {path} answered {response.status_code}",
                                   parse_retry_after(response.headers.get("Retry-After")))
        if response.status_code >= 400:
            try:
                problem = msgspec.json.decode(response.content, type=dict[str, Any])
            except msgspec.DecodeError:
                problem = {"title": response.text[:200]}
            raise BusinessFailure(response.status_code, problem)
        return msgspec.json.decode(response.content, type=type_)

    async def all_pages(self, path: str, type_: type[Page[T]], limit: int,
                        params: dict[str, str | int] | None = None) -> list[T]:
        """Every item of a cursor-paged list (reference data, read once per run)."""
        items: list[T] = []
        cursor: str | None = None
        while True:
            query: dict[str, str | int] = {**(params or {}), "limit": limit, **({"cursor": cursor} if cursor else {})}
            page = await self.call("GET", path, type_, params=query)
            items += page.items
            if not page.next_cursor:
                return items
            cursor = page.next_cursor


class CrmApi(SystemApi):
    def __init__(self, http: httpx.AsyncClient, token: TokenSource) -> None:
        super().__init__(http, token, "/system/crm/v1")

    async def get_opportunity(self, opportunity_id: str) -> Opportunity:
        return await self.call("GET", f"/opportunities/{opportunity_id}", Opportunity)

    async def get_account(self, account_id: str) -> Account:
        return await self.call("GET", f"/accounts/{account_id}", Account)

    async def opportunities(self) -> list[Opportunity]:
        return await self.all_pages("/opportunities", Page[Opportunity], 200)


class ErpApi(SystemApi):
    def __init__(self, http: httpx.AsyncClient, token: TokenSource) -> None:
        super().__init__(http, token, "/system/erp/v1")

    async def legal_entities(self, legal_entity: str | None = None) -> list[LegalEntity]:
        """Every legal entity the ERP accounts know; with `legal_entity`, those of its account only."""
        items: list[LegalEntity] = []
        cursor: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": 200, **({"cursor": cursor} if cursor else {}),
                                            **_entity(legal_entity)}
            page = await self.call("GET", "/legal-entities", Page[LegalEntity], params=params)
            items += page.items
            if not page.next_cursor:
                return items
            cursor = page.next_cursor

    async def upsert_customer(self, external_id: str, data: CustomerUpsert) -> Customer:
        return await self.call("PUT", f"/customers/by-external-id/{external_id}", Customer, json=data)

    async def upsert_project(self, external_id: str, data: ErpProjectUpsert) -> ErpProject:
        return await self.call("PUT", f"/projects/by-external-id/{external_id}", ErpProject, json=data)

    async def projects(self, legal_entity: str | None = None) -> list[ErpProject]:
        return await self.all_pages("/projects", Page[ErpProject], 200, _entity(legal_entity))

    async def accounting_periods(self, legal_entity: str | None = None) -> list[AccountingPeriod]:
        return await self.all_pages("/accounting-periods", Page[AccountingPeriod], 200, _entity(legal_entity))

    async def post_time(self, batch: TimePostingBatch) -> TimePostingJob:
        return await self.call("POST", "/time-postings", TimePostingJob, json=batch)

    async def time_posting(self, batch_key: str) -> TimePostingResult:
        return await self.call("GET", f"/time-postings/{batch_key}", TimePostingResult)

    async def posted_time_totals(self, params: dict[str, str | int], cursor: str | None) -> Page[PostedTimeTotal]:
        """One page of the billable time the ERP holds as posted, summed per project (`from`/`to`;
        `project_external_id` and `legal_entity` narrow it: without a project, every project of the account)."""
        return await self.call("GET", "/posted-time/totals", Page[PostedTimeTotal], params=_paged(params, cursor))

    async def post_expenses(self, batch: ExpensePostingBatch) -> ExpensePostingResult:
        return await self.call("POST", "/expense-postings", ExpensePostingResult, json=batch)

    async def posted_expenses(self, params: dict[str, str | int], cursor: str | None) -> Page[PostedExpense]:
        """One page of the expenses the ERP holds as posted, narrowed as `posted_time_totals`."""
        return await self.call("GET", "/posted-expenses", Page[PostedExpense], params=_paged(params, cursor))

    async def upsert_intercompany_charge(self, external_id: str, data: IntercompanyChargeUpsert) -> IntercompanyCharge:
        return await self.call("PUT", f"/intercompany-charges/by-external-id/{external_id}", IntercompanyCharge,
                               json=data)

    async def intercompany_charges(self, legal_entity: str, period: str) -> list[IntercompanyCharge]:
        """Both sides' documents as one entity's ERP holds them (its receivables and its payables) for a period."""
        return await self.all_pages("/intercompany-charges", Page[IntercompanyCharge], 200,
                                    {"period": period, **_entity(legal_entity)})

    async def upsert_invoice(self, external_id: str, data: InvoiceUpsert) -> Invoice:
        return await self.call("PUT", f"/invoices/by-external-id/{external_id}", Invoice, json=data)

    async def invoices(self, params: dict[str, str | int], cursor: str | None) -> Page[Invoice]:
        """One page of the invoices of a `period`, narrowed as `posted_time_totals`."""
        return await self.call("GET", "/invoices", Page[Invoice], params=_paged(params, cursor))

    async def invoice_changes(self, legal_entity: str, updated_since: dt.datetime | None, cursor: str | None,
                              limit: int) -> Page[Invoice]:
        """One page of the invoices `legal_entity`'s ERP changed at or after `updated_since` (all of them without)."""
        params: dict[str, str | int] = {"limit": limit, **_entity(legal_entity)}
        if updated_since is not None:
            params["updated_since"] = updated_since.isoformat()
        if cursor:
            params["cursor"] = cursor
        return await self.call("GET", "/invoices", Page[Invoice], params=params)

    async def exchange_rate(self, base: str, quote: str, on: dt.date, legal_entity: str | None) -> ExchangeRate:
        return await self.call("GET", f"/exchange-rates/{base}/{quote}", ExchangeRate,
                               params={"on": on.isoformat(), **_entity(legal_entity)})

    async def upsert_credit_memo(self, external_id: str, data: CreditMemoUpsert) -> CreditMemo:
        return await self.call("PUT", f"/credit-memos/by-external-id/{external_id}", CreditMemo, json=data)

    async def credit_memos(self, params: dict[str, str | int], cursor: str | None) -> Page[CreditMemo]:
        """One page of the credit memos of a `period`, narrowed as `posted_time_totals`."""
        return await self.call("GET", "/credit-memos", Page[CreditMemo], params=_paged(params, cursor))

    async def upsert_employee(self, external_id: str, data: EmployeeUpsert) -> Employee:
        return await self.call("PUT", f"/employees/by-external-id/{external_id}", Employee, json=data)


class PsaApi(SystemApi):
    def __init__(self, http: httpx.AsyncClient, token: TokenSource) -> None:
        super().__init__(http, token, "/system/psa/v1")

    async def upsert_project(self, external_id: str, data: PsaProjectUpsert) -> PsaProject:
        return await self.call("PUT", f"/projects/by-external-id/{external_id}", PsaProject, json=data)

    async def rate_cards(self, legal_entity_code: str) -> list[RateCard]:
        """Every rate card of one legal entity."""
        return await self.all_pages("/rate-cards", Page[RateCard], 200, {"legal_entity_code": legal_entity_code})

    async def projects(self) -> list[PsaProject]:
        return await self.all_pages("/projects", Page[PsaProject], 200)

    async def assignments(self) -> list[Assignment]:
        return await self.all_pages("/assignments", Page[Assignment], 200)

    async def all_rate_cards(self) -> list[RateCard]:
        return await self.all_pages("/rate-cards", Page[RateCard], 200)

    async def upsert_user(self, external_id: str, data: PsaUserUpsert, legal_entity: str | None = None) -> PsaUser:
        """A PSA user carries no entity: `legal_entity` (the worker's employer) names the PSA account it goes to."""
        params: dict[str, str | int] | None = {"legal_entity": legal_entity} if legal_entity else None
        return await self.call("PUT", f"/users/by-external-id/{external_id}", PsaUser, json=data, params=params)


class TimeApi(SystemApi):
    """The time domain (`/system/time/v1`): approved entries and expenses are read in pages of up to 2,000."""

    def __init__(self, http: httpx.AsyncClient, token: TokenSource) -> None:
        super().__init__(http, token, "/system/time/v1")

    async def entries(self, params: dict[str, str | int], cursor: str | None) -> Page[TimeEntry]:
        return await self.call("GET", "/time-entries", Page[TimeEntry], params=_paged(params, cursor))

    async def entry(self, entry_id: str) -> TimeEntry:
        return await self.call("GET", f"/time-entries/{entry_id}", TimeEntry)

    async def expenses(self, params: dict[str, str | int], cursor: str | None) -> Page[Expense]:
        return await self.call("GET", "/expenses", Page[Expense], params=_paged(params, cursor))


class HrApi(SystemApi):
    """The HR domain (`/system/hr/v1`, read only here): workers, their status and employment dates."""

    def __init__(self, http: httpx.AsyncClient, token: TokenSource) -> None:
        super().__init__(http, token, "/system/hr/v1")

    async def workers(self) -> list[Worker]:
        """Every worker (reference data, read once per billing run)."""
        return await self.all_pages("/workers", Page[Worker], 100)

    async def list_workers(self, limit: int, cursor: str | None) -> Page[Worker]:
        """One page of workers (the worker sync reads and syncs page by page)."""
        params: dict[str, str | int] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        return await self.call("GET", "/workers", Page[Worker], params=params)

    async def get_worker(self, worker_id: str) -> Worker:
        return await self.call("GET", f"/workers/{worker_id}", Worker)


def _paged(params: dict[str, str | int], cursor: str | None) -> dict[str, str | int]:
    return {**params, "cursor": cursor} if cursor else params


def _entity(legal_entity: str | None) -> dict[str, str | int]:
    """The `legal_entity` parameter: the call reaches that entity's account only (another account's outage or
    refusal cannot fail it). An entity known only by an id, not a code, reaches every account, as without."""
    return {"legal_entity": legal_entity} if legal_entity and _CODE.fullmatch(legal_entity) else {}


_CODE = re.compile(ENTITY_CODE)
