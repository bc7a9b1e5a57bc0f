"""ERP domain contract: `/system/erp/v1` — legal entities, customers, projects, periods, and time-to-bill.

Capabilities (`GET /capabilities`): whether the ERP posts time per entry or as summarised
lines. Either way the posting result and the posted-time list answer per line key, so the
caller and reconciliation never see the difference.

Time-to-bill additions: employees (upserted from HR), time posting in batches (202 + a job;
the batch key posts once), posted time, expense costs posted in batches (answered at once; the batch
key posts once, and a line key once across batches), posted expenses, intercompany charges (each side
in its own entity's books, by external id), invoice drafts and credit memos for reconciliation.
Posting or invoicing into a closed or AR-locked period is refused by the ERP with a 422
problem whose code is ``period_closed``: the process checks first, the ERP is the last line.

A caller restricted to legal entities sees and writes only theirs (`system_apis/grants.py`):
lists are filtered (a page may hold fewer than `limit`), a write naming another entity (the
body's `legal_entity_id`, a line's or invoice's project) is a 403, another entity's record
by id a 404. A time-posting result is shown to a restricted caller when every line it
posted is on a granted project (a batch that posted nothing cannot be attributed: 404).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Protocol

from litestar import Request, Response, Router, get, post, put
from litestar.params import JSONBody, PathParameter, QueryParameter

from contracts.billing import (
    CreditMemo,
    CreditMemoUpsert,
    ExpensePostingBatch,
    ExpensePostingResult,
    IntercompanyCharge,
    IntercompanyChargeUpsert,
    Invoice,
    InvoiceUpsert,
    Payment,
    PaymentUpsert,
    PostedExpense,
    PostedTime,
    PostedTimeTotal,
    TimePostingBatch,
    TimePostingJob,
    TimePostingResult,
)
from contracts.common import MONTH_PATTERN, Page
from contracts.currency import ExchangeRate
from contracts.erp import (
    AccountingPeriod,
    Customer,
    CustomerUpsert,
    ErpCapabilities,
    ErpProject,
    ErpProjectUpsert,
    LegalEntity,
)
from contracts.problems import ProblemError
from contracts.workforce import Employee, EmployeeUpsert
from system_apis.domains._amounts import check_expense_batch, check_intercompany_charge
from system_apis.domains._entity import ENTITY_PARAMETER, bind_call
from system_apis.domains._params import Cursor, Limit, created_spec, upserted
from system_apis.grants import SystemScope, kept, system_scope

__all__ = ["API", "ErpSystem", "erp_router"]

API = "system.erp"
ExternalId = Annotated[str, QueryParameter(max_length=80, pattern=r"^[A-Za-z0-9_.:-]+$")]
RecordId = Annotated[str, QueryParameter(max_length=64)]
BatchKey = Annotated[str, QueryParameter(min_length=8, max_length=120)]
ProjectFilter = Annotated[str | None, QueryParameter(max_length=80, description="The project's external id.")]
PeriodFilter = Annotated[str | None, QueryParameter(pattern=MONTH_PATTERN, description="Billing period YYYY-MM.")]
CurrencyCode = Annotated[str, PathParameter(pattern=r"^[A-Z]{3}$", description="ISO 4217 currency code.")]
DateFrom = Annotated[dt.date | None, QueryParameter(name="from", description="Inclusive first date (YYYY-MM-DD).")]
DateTo = Annotated[dt.date | None, QueryParameter(name="to", description="Inclusive last date (YYYY-MM-DD).")]
PostedLimit = Annotated[int, QueryParameter(ge=1, le=1000, description="Page size (reconciliation reads in bulk).")]


class ErpSystem(Protocol):
    """What an ERP vendor adapter provides. Upserts are idempotent by external id."""

    async def capabilities(self) -> ErpCapabilities:
        """How this ERP holds posted time (per entry or summarised); constant for a connection."""
        ...

    async def list_legal_entities(self, limit: int, cursor: str | None) -> Page[LegalEntity]: ...

    async def get_legal_entity(self, legal_entity_id: str) -> LegalEntity: ...

    async def get_customer(self, customer_id: str) -> Customer: ...

    async def upsert_customer(self, external_id: str, data: JSONBody[CustomerUpsert]) -> tuple[Customer, bool]: ...

    async def list_projects(self, external_id: str | None, limit: int, cursor: str | None) -> Page[ErpProject]: ...

    async def get_project(self, project_id: str) -> ErpProject: ...

    async def upsert_project(self, external_id: str, data: JSONBody[ErpProjectUpsert]) -> tuple[ErpProject, bool]: ...

    async def list_accounting_periods(self, legal_entity_id: str | None, limit: int,
                                      cursor: str | None) -> Page[AccountingPeriod]: ...

    async def upsert_employee(self, external_id: str, data: EmployeeUpsert) -> tuple[Employee, bool]: ...

    async def post_time(self, batch: TimePostingBatch) -> TimePostingJob:
        """Post a batch once: the same ``batch_key`` again returns the same job and posts nothing twice."""
        ...

    async def get_time_posting(self, batch_key: str) -> TimePostingResult: ...

    async def list_posted_time(self, project_external_id: str | None, date_from: dt.date | None,
                               date_to: dt.date | None, limit: int, cursor: str | None) -> Page[PostedTime]: ...

    async def list_posted_time_totals(self, project_external_id: str | None, date_from: dt.date | None,
                                      date_to: dt.date | None, limit: int,
                                      cursor: str | None) -> Page[PostedTimeTotal]:
        """Per project, in project order, the billable lines `list_posted_time` lists with the same filters, summed
        (`system_apis.posted_totals.summed_listing` where the ERP cannot sum)."""
        ...

    async def post_expenses(self, batch: ExpensePostingBatch) -> ExpensePostingResult:
        """Post a batch of expense costs once: the same ``batch_key`` returns the first result and posts nothing
        twice; a line key posted before under another batch is reported posted with its first record."""
        ...

    async def get_expense_posting(self, batch_key: str) -> ExpensePostingResult: ...

    async def list_posted_expenses(self, project_external_id: str | None, date_from: dt.date | None,
                                   date_to: dt.date | None, limit: int, cursor: str | None) -> Page[PostedExpense]: ...

    async def upsert_intercompany_charge(self, external_id: str,
                                         data: IntercompanyChargeUpsert) -> tuple[IntercompanyCharge, bool]:
        """Record one side of an intercompany charge once per external id (a receivable from, or a payable to,
        the counterparty entity); the same external id again with the same lines changes nothing."""
        ...

    async def list_intercompany_charges(self, period: str | None, counterparty: str | None, limit: int,
                                        cursor: str | None) -> Page[IntercompanyCharge]: ...

    async def upsert_invoice(self, external_id: str, data: InvoiceUpsert) -> tuple[Invoice, bool]: ...

    async def list_invoices(self, project_external_id: str | None, period: str | None, limit: int,
                            cursor: str | None, updated_since: dt.datetime | None = None) -> Page[Invoice]:
        """Invoices with their ERP status; ``updated_since`` keeps those the ERP changed at or after it."""
        ...

    async def get_invoice(self, external_id: str) -> Invoice:
        """The invoice psconnect drafted under ``external_id``, as the ERP holds it now (404 if none)."""
        ...

    async def post_invoice(self, external_id: str) -> Invoice:
        """Approve and post a draft into receivables; an invoice posted already is returned unchanged."""
        ...

    async def upsert_payment(self, external_id: str, data: PaymentUpsert) -> tuple[Payment, bool]:
        """Apply a customer payment to a posted invoice once per external id (422 ``overpayment`` beyond
        the amount due, ``invoice_not_posted`` for a draft or void invoice, ``currency_mismatch``)."""
        ...

    async def exchange_rate(self, base: str, quote: str, on: dt.date) -> ExchangeRate:
        """The ERP's rate in effect on ``on`` (latest on or before it); 404 ``rate_not_found`` when the ERP
        holds none for the pair (or keeps no rates: the process then uses the configured rate table)."""
        ...

    async def upsert_credit_memo(self, external_id: str, data: CreditMemoUpsert) -> tuple[CreditMemo, bool]: ...

    async def list_credit_memos(self, project_external_id: str | None, period: str | None, limit: int,
                                cursor: str | None) -> Page[CreditMemo]: ...


def erp_router(system: ErpSystem) -> Router:
    async def existing_project(external_id: str) -> ErpProject | None:
        found = await system.list_projects(external_id, 1, None)
        return found.items[0] if found.items else None

    async def posted_projects(keys: set[str], expenses: bool = False) -> set[str] | None:
        """The projects of the posted lines `keys` (None when some line is not found among posted time or
        expenses)."""
        projects: dict[str, str] = {}
        cursor: str | None = None
        while True:
            page: Page[PostedTime] | Page[PostedExpense] = \
                await (system.list_posted_expenses if expenses else system.list_posted_time)(None, None, None, 1000,
                                                                                              cursor)
            projects.update({p.line_key: p.project_external_id for p in page.items if p.line_key in keys})
            cursor = page.next_cursor
            if not cursor:
                break
        return set(projects.values()) if set(projects) == keys else None

    async def require_entity(scope: SystemScope, legal_entity_id: str, projects: list[str]) -> None:
        scope.grant.require(legal_entity_id)
        await scope.require_projects(projects)

    @get("/capabilities", operation_id="erp.getCapabilities",
         summary="What this ERP can take: time posted per entry or as summarised lines")
    async def get_capabilities() -> ErpCapabilities:
        return await system.capabilities()

    @get("/legal-entities", operation_id="erp.listLegalEntities", summary="List legal entities")
    async def list_legal_entities(request: Request[Any, Any, Any], limit: Limit = 50,
                                  cursor: Cursor = None) -> Page[LegalEntity]:
        grant = (await system_scope(request)).grant
        return kept(await system.list_legal_entities(limit, cursor), lambda e: grant.allows(e.code))

    @get("/legal-entities/{legal_entity_id:str}", operation_id="erp.getLegalEntity", summary="Get a legal entity")
    async def get_legal_entity(request: Request[Any, Any, Any], legal_entity_id: RecordId) -> LegalEntity:
        grant = (await system_scope(request)).grant
        entity = await system.get_legal_entity(legal_entity_id)
        grant.found(entity.code, "Legal entity", legal_entity_id)
        return entity

    @get("/customers/{customer_id:str}", operation_id="erp.getCustomer", summary="Get a customer")
    async def get_customer(request: Request[Any, Any, Any], customer_id: RecordId) -> Customer:
        grant = (await system_scope(request)).grant
        customer = await system.get_customer(customer_id)
        grant.found(customer.legal_entity_id, "Customer", customer_id)
        return customer

    @put("/customers/by-external-id/{external_id:str}", operation_id="erp.upsertCustomer",
         opt={"refers_to": ("/legal_entity_id",)},
         summary="Create or update a customer by external id", responses=created_spec(Customer))
    async def upsert_customer(request: Request[Any, Any, Any], external_id: ExternalId,
                              data: JSONBody[CustomerUpsert]) -> Response[Customer]:
        (await system_scope(request)).grant.require(data.legal_entity_id)
        return upserted(*await system.upsert_customer(external_id, data))

    @get("/projects", operation_id="erp.listProjects", summary="List projects")
    async def list_projects(request: Request[Any, Any, Any],
                            external_id: Annotated[str | None, QueryParameter(max_length=80)] = None,
                            limit: Limit = 50, cursor: Cursor = None) -> Page[ErpProject]:
        grant = (await system_scope(request)).grant
        return kept(await system.list_projects(external_id, limit, cursor), lambda p: grant.allows(p.legal_entity_id))

    @get("/projects/{project_id:str}", operation_id="erp.getProject", summary="Get a project")
    async def get_project(request: Request[Any, Any, Any], project_id: RecordId) -> ErpProject:
        grant = (await system_scope(request)).grant
        project = await system.get_project(project_id)
        grant.found(project.legal_entity_id, "Project", project_id)
        return project

    @put("/projects/by-external-id/{external_id:str}", operation_id="erp.upsertProject",
         opt={"refers_to": ("/legal_entity_id", "/customer_id")},
         summary="Create or update a project by external id", responses=created_spec(ErpProject))
    async def upsert_project(request: Request[Any, Any, Any], external_id: ExternalId,
                             data: JSONBody[ErpProjectUpsert]) -> Response[ErpProject]:
        scope = await system_scope(request)
        scope.grant.require(data.legal_entity_id)
        if scope.restricted and (existing := await existing_project(external_id)) is not None:
            scope.grant.require(existing.legal_entity_id)  # never move another entity's project
        return upserted(*await system.upsert_project(external_id, data))

    @get("/accounting-periods", operation_id="erp.listAccountingPeriods", summary="List accounting periods")
    async def list_accounting_periods(request: Request[Any, Any, Any],
                                      legal_entity_id: Annotated[str | None, QueryParameter(max_length=64)] = None,
                                      limit: Limit = 50, cursor: Cursor = None) -> Page[AccountingPeriod]:
        grant = (await system_scope(request)).grant
        if legal_entity_id is not None:
            grant.require(legal_entity_id)
        return kept(await system.list_accounting_periods(legal_entity_id, limit, cursor),
                    lambda p: p.legal_entity_id is None or grant.allows(p.legal_entity_id))

    @put("/employees/by-external-id/{external_id:str}", operation_id="erp.upsertEmployee",
         opt={"refers_to": ("/legal_entity_id",)},
         summary="Create or update an employee by external id (the HR worker id)",
         responses=created_spec(Employee))
    async def upsert_employee(request: Request[Any, Any, Any], external_id: ExternalId,
                              data: JSONBody[EmployeeUpsert]) -> Response[Employee]:
        (await system_scope(request)).grant.require(data.legal_entity_id)
        return upserted(*await system.upsert_employee(external_id, data))

    @post("/time-postings", operation_id="erp.postTime", status_code=202,
          opt={"refers_to": ("/legal_entity_id", "/lines/*/project_external_id", "/lines/*/employee_external_id")},
          summary="Post a batch of approved time (the same batch key posts once)")
    async def post_time(request: Request[Any, Any, Any], data: JSONBody[TimePostingBatch]) -> TimePostingJob:
        await require_entity(await system_scope(request), data.legal_entity_id,
                             [line.project_external_id for line in data.lines])
        return await system.post_time(data)

    @get("/time-postings/{batch_key:str}", operation_id="erp.getTimePosting",
         summary="Result of a time posting batch, per line")
    async def get_time_posting(request: Request[Any, Any, Any], batch_key: BatchKey) -> TimePostingResult:
        scope = await system_scope(request)
        result = await system.get_time_posting(batch_key)
        if scope.restricted:
            projects = await posted_projects(set(result.posted)) if result.posted else None
            allowed = await scope.project_filter()
            if projects is None or not all(allowed(p) for p in projects):
                scope.grant.found(None, "Time posting", batch_key)
        return result

    @get("/posted-time", operation_id="erp.listPostedTime", summary="List time as posted in the ERP")
    async def list_posted_time(request: Request[Any, Any, Any], project_external_id: ProjectFilter = None,
                               date_from: DateFrom = None, date_to: DateTo = None,
                               limit: PostedLimit = 200, cursor: Cursor = None) -> Page[PostedTime]:
        allowed = await (await system_scope(request)).project_filter()
        page = await system.list_posted_time(project_external_id, date_from, date_to, limit, cursor)
        return kept(page, lambda p: allowed(p.project_external_id))

    @get("/posted-time/totals", operation_id="erp.listPostedTimeTotals",
         summary="Billable time as posted in the ERP, summed per project (what reconciliation compares)")
    async def list_posted_time_totals(request: Request[Any, Any, Any], project_external_id: ProjectFilter = None,
                                      date_from: DateFrom = None, date_to: DateTo = None,
                                      limit: PostedLimit = 200, cursor: Cursor = None) -> Page[PostedTimeTotal]:
        allowed = await (await system_scope(request)).project_filter()
        page = await system.list_posted_time_totals(project_external_id, date_from, date_to, limit, cursor)
        return kept(page, lambda t: allowed(t.project_external_id))

    @post("/expense-postings", operation_id="erp.postExpenses", status_code=200,
          opt={"refers_to": ("/legal_entity_id", "/lines/*/project_external_id", "/lines/*/employee_external_id")},
          summary="Post a batch of approved expenses as project costs (the same batch key posts once)")
    async def post_expenses(request: Request[Any, Any, Any],
                            data: JSONBody[ExpensePostingBatch]) -> ExpensePostingResult:
        await require_entity(await system_scope(request), data.legal_entity_id,
                             [line.project_external_id for line in data.lines])
        check_expense_batch(data)
        return await system.post_expenses(data)

    @get("/expense-postings/{batch_key:str}", operation_id="erp.getExpensePosting",
         summary="Result of an expense posting batch, per line")
    async def get_expense_posting(request: Request[Any, Any, Any], batch_key: BatchKey) -> ExpensePostingResult:
        scope = await system_scope(request)
        result = await system.get_expense_posting(batch_key)
        if scope.restricted:
            projects = await posted_projects(set(result.posted), expenses=True) if result.posted else None
            allowed = await scope.project_filter()
            if projects is None or not all(allowed(p) for p in projects):
                scope.grant.found(None, "Expense posting", batch_key)
        return result

    @get("/posted-expenses", operation_id="erp.listPostedExpenses", summary="List expenses as posted in the ERP")
    async def list_posted_expenses(request: Request[Any, Any, Any], project_external_id: ProjectFilter = None,
                                   date_from: DateFrom = None, date_to: DateTo = None,
                                   limit: PostedLimit = 200, cursor: Cursor = None) -> Page[PostedExpense]:
        allowed = await (await system_scope(request)).project_filter()
        page = await system.list_posted_expenses(project_external_id, date_from, date_to, limit, cursor)
        return kept(page, lambda p: allowed(p.project_external_id))

    @put("/intercompany-charges/by-external-id/{external_id:str}", operation_id="erp.upsertIntercompanyCharge",
         opt={"refers_to": ("/legal_entity_id", "/counterparty", "/lines/*/project_external_id",
                            "/lines/*/employee_external_id")},
         summary="Record one side of an intercompany charge by external id (a receivable or a payable)",
         responses=created_spec(IntercompanyCharge))
    async def upsert_intercompany_charge(request: Request[Any, Any, Any], external_id: ExternalId,
                                         data: JSONBody[IntercompanyChargeUpsert]) -> Response[IntercompanyCharge]:
        grant = (await system_scope(request)).grant
        grant.require(data.legal_entity_id)
        grant.require(data.counterparty)  # the lines name the counterparty's consultants or projects
        check_intercompany_charge(data)
        return upserted(*await system.upsert_intercompany_charge(external_id, data))

    @get("/intercompany-charges", operation_id="erp.listIntercompanyCharges",
         summary="List intercompany charges (each side in its own entity's books)")
    async def list_intercompany_charges(request: Request[Any, Any, Any], period: PeriodFilter = None,
                                        counterparty: Annotated[str | None, QueryParameter(
                                            pattern=r"^[A-Z]{2}[0-9]{2}$",
                                            description="The other entity's code.")] = None,
                                        limit: Limit = 50, cursor: Cursor = None) -> Page[IntercompanyCharge]:
        grant = (await system_scope(request)).grant
        page = await system.list_intercompany_charges(period, counterparty, limit, cursor)
        return kept(page, lambda c: grant.allows(c.legal_entity_id))  # a side is its own entity's books

    @put("/invoices/by-external-id/{external_id:str}", operation_id="erp.upsertInvoice",
         opt={"refers_to": ("/legal_entity_id", "/customer_id", "/project_external_id")},
         summary="Create or update an invoice draft by external id", responses=created_spec(Invoice))
    async def upsert_invoice(request: Request[Any, Any, Any], external_id: ExternalId,
                             data: JSONBody[InvoiceUpsert]) -> Response[Invoice]:
        await require_entity(await system_scope(request), data.legal_entity_id, [data.project_external_id])
        return upserted(*await system.upsert_invoice(external_id, data))

    @get("/invoices", operation_id="erp.listInvoices", summary="List invoices with their ERP status")
    async def list_invoices(request: Request[Any, Any, Any], project_external_id: ProjectFilter = None,
                            period: PeriodFilter = None, limit: Limit = 50, cursor: Cursor = None,
                            updated_since: Annotated[dt.datetime | None, QueryParameter(
                                description="Only invoices the ERP changed at or after this instant (ISO 8601 "
                                            "with offset): the status poll's cursor.")] = None) -> Page[Invoice]:
        grant = (await system_scope(request)).grant
        page = await system.list_invoices(project_external_id, period, limit, cursor, updated_since)
        return kept(page, lambda i: grant.allows(i.legal_entity_id))

    async def granted_invoice(request: Request[Any, Any, Any], external_id: str) -> Invoice:
        scope = await system_scope(request)
        invoice = await system.get_invoice(external_id)
        scope.grant.found(invoice.legal_entity_id, "Invoice", external_id)
        return invoice

    @get("/invoices/by-external-id/{external_id:str}", operation_id="erp.getInvoice",
         summary="Get an invoice by external id, with its ERP status and payments")
    async def get_invoice(request: Request[Any, Any, Any], external_id: ExternalId) -> Invoice:
        return await granted_invoice(request, external_id)

    @post("/invoices/by-external-id/{external_id:str}/post", operation_id="erp.postInvoice", status_code=200,
          summary="Approve and post an invoice draft into receivables (posting a posted invoice changes nothing)")
    async def post_invoice(request: Request[Any, Any, Any], external_id: ExternalId) -> Invoice:
        await granted_invoice(request, external_id)
        return await system.post_invoice(external_id)

    @put("/payments/by-external-id/{external_id:str}", operation_id="erp.upsertPayment",
         opt={"refers_to": ("/legal_entity_id", "/invoice_external_id")},
         summary="Apply a customer payment to a posted invoice (once per external id)",
         responses=created_spec(Payment))
    async def upsert_payment(request: Request[Any, Any, Any], external_id: ExternalId,
                             data: JSONBody[PaymentUpsert]) -> Response[Payment]:
        (await system_scope(request)).grant.require(data.legal_entity_id)
        invoice = await granted_invoice(request, data.invoice_external_id)
        if invoice.legal_entity_id != data.legal_entity_id:
            raise ProblemError(422, "entity-mismatch", "Invoice of another legal entity",
                               f"Invoice {data.invoice_external_id} belongs to {invoice.legal_entity_id}, "
                               f"not {data.legal_entity_id}.", code="entity_mismatch")
        return upserted(*await system.upsert_payment(external_id, data))

    @get("/exchange-rates/{base:str}/{quote:str}", operation_id="erp.getExchangeRate",
         summary="The ERP's exchange rate for a currency pair in effect on a day")
    async def get_exchange_rate(base: CurrencyCode, quote: CurrencyCode,
                                on: Annotated[dt.date, QueryParameter(
                                    description="The day (YYYY-MM-DD); the rate in effect then.")]) -> ExchangeRate:
        return await system.exchange_rate(base, quote, on)

    @put("/credit-memos/by-external-id/{external_id:str}", operation_id="erp.upsertCreditMemo",
         opt={"refers_to": ("/legal_entity_id", "/customer_id", "/project_external_id", "/invoice_external_id")},
         summary="Create or update a credit memo by external id", responses=created_spec(CreditMemo))
    async def upsert_credit_memo(request: Request[Any, Any, Any], external_id: ExternalId,
                                 data: JSONBody[CreditMemoUpsert]) -> Response[CreditMemo]:
        await require_entity(await system_scope(request), data.legal_entity_id, [data.project_external_id])
        return upserted(*await system.upsert_credit_memo(external_id, data))

    @get("/credit-memos", operation_id="erp.listCreditMemos", summary="List credit memos")
    async def list_credit_memos(request: Request[Any, Any, Any], project_external_id: ProjectFilter = None,
                                period: PeriodFilter = None, limit: Limit = 50,
                                cursor: Cursor = None) -> Page[CreditMemo]:
        allowed = await (await system_scope(request)).project_filter()
        page = await system.list_credit_memos(project_external_id, period, limit, cursor)
        return kept(page, lambda m: allowed(m.project_external_id))

    return Router(path="/system/erp/v1", opt={"api": API}, tags=["erp"], before_request=bind_call,
                  parameters=ENTITY_PARAMETER,
                  route_handlers=[get_capabilities, list_legal_entities, get_legal_entity, get_customer,
                                  upsert_customer, list_projects, get_project, upsert_project, list_accounting_periods,
                                  upsert_employee, post_time, get_time_posting, list_posted_time,
                                  list_posted_time_totals, post_expenses,
                                  get_expense_posting, list_posted_expenses, upsert_intercompany_charge,
                                  list_intercompany_charges,
                                  upsert_invoice, list_invoices, get_invoice, post_invoice, upsert_payment,
                                  get_exchange_rate, upsert_credit_memo, list_credit_memos])
