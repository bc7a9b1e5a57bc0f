"""Routing by legal entity: each domain's Protocol implemented by choosing a connection's adapter.

Every system API call is resolved by (domain, legal entity) through the connections file
(`system_apis/connections.py`). The domain routers stay as they are: they wrap a *routed*
adapter (`routed_systems`) that implements the domain Protocol by handing each call to the
adapter of one connection (built with the vendor's `create_systems`).

How a call finds its connection:

- **The `legal_entity` query parameter** (every system API route; optional, additive in v1):
  the connection serving that entity. A restricted caller naming an entity it is not granted
  gets 403 (`bind_call`).
- **Writes that carry the entity** (`legal_entity_id` in an ERP body): that entity's connection.
- **Ids.** A record of a connection other than the domain's default carries it in its id:
  ``<connection>:<vendor id>`` (e.g. ``ca01-hr:W-00241``); the default connection's ids are
  unprefixed, so every id published before routing stays valid. A call by id goes to the id's
  connection; an unprefixed id to the `legal_entity` parameter's connection, else the default.
  Objects that arrive before their entity is known (a CRM opportunity, an HR worker) therefore
  name their source, and the processes route follow-up calls by them. The same prefix is put on
  the reference fields that hold such ids (an opportunity's `account_id`, an ERP record's
  `legal_entity_id` / `customer_id`, a PSA project's `rate_card_id`) and taken off again when a
  write carries them back to that connection. External ids (``PRJ-…``, ``OPP-…``) are
  psconnect's own and never prefixed.
- **Lists without an entity** are every connection of the domain merged: the default's first,
  then the others in file order, one after another behind one opaque cursor. A list with
  `legal_entity` is that entity's connection alone. (One connection per domain — the shipped
  default — passes the vendor's cursor through unchanged.)
- **A time-posting batch** is found by its key: on the `legal_entity` parameter's connection,
  else on each ERP connection in turn (batch keys are psconnect's, never prefixed).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar, cast

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
    Payment,
    PaymentUpsert,
    PostedExpense,
    PostedTime,
    PostedTimeTotal,
    RateCard,
    TimePostingBatch,
    TimePostingJob,
    TimePostingResult,
)
from contracts.common import Page
from contracts.crm import Account, AccountUpsert, Opportunity, OpportunityStage
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
from contracts.problems import ProblemError, invalid_cursor
from contracts.psa import PsaProject, PsaProjectUpsert, TimesheetSubmission
from contracts.time import Expense, TimeEntry, TimeEntryStatus, TimeProject, UninvoicedProject
from contracts.workforce import (
    Assignment,
    CostCenter,
    Employee,
    EmployeeUpsert,
    PsaUser,
    PsaUserUpsert,
    Worker,
)
from foundation import metrics
from foundation.paging import decode_position, encode_position
from system_apis._internal.http import VendorError, VendorRejected
from system_apis.connections import DEFAULT_ENTITY, Connections
from system_apis.domains._entity import ENTITY_PARAMETER, bind_call, legal_entity
from system_apis.domains.crm import CrmSystem
from system_apis.domains.erp import ErpSystem
from system_apis.domains.hr import HrSystem
from system_apis.domains.psa import PsaSystem, SubmissionStatus, TimesheetDecision
from system_apis.domains.time import TimeEntryQuery, TimeSystem

__all__ = ["ENTITY_PARAMETER", "REFS", "SEPARATOR", "bind_call", "legal_entity", "routed_systems", "split_id"]

SEPARATOR = ":"
LIST_AGAIN_AFTER = 60.0
"""Seconds before an ERP's legal entities are listed again for an id or code not among them."""
S = TypeVar("S")
T = TypeVar("T", bound=msgspec.Struct)


def split_id(routed: str, known: Sequence[str]) -> tuple[str | None, str]:
    """(connection, vendor id) of a routed id; (None, id) when it names none of `known`."""
    head, sep, rest = routed.partition(SEPARATOR)
    if sep and rest and head in known:
        return head, rest
    return None, routed


class _At(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A merged list's position: the connection (index in routing order) and its own cursor there."""

    c: int
    i: str | None = None


def _not_found(exc: Exception) -> bool:
    if isinstance(exc, ProblemError):
        return exc.problem.status == 404
    return isinstance(exc, VendorRejected) and exc.status == 404


class _Routes(Generic[S]):
    """The connections of one domain and their adapters; the id and list rules of the module docstring."""

    def __init__(self, domain: str, connections: Connections, systems: Mapping[str, S], refs: tuple[str, ...]) -> None:
        self.domain = domain
        self._connections = connections
        self.default = connections.default_for(domain).connection.name
        self.order = tuple(e.connection.name for e in connections.for_domain(domain))
        self.systems = systems
        self.refs = refs
        served: dict[str, set[str]] = {}
        for entity, domains in connections.routes.items():
            if entity != DEFAULT_ENTITY and domain in domains:
                served.setdefault(domains[domain], set()).add(entity)
        self.sole_entity = {name: next(iter(codes)) for name, codes in served.items()
                            if len(codes) == 1 and name != self.default}
        """Connection -> the one legal entity it serves (an acquired entity's own account)."""

    def for_entity(self, entity: str | None) -> str:
        """The connection serving `entity`; the vendor calls that follow are labelled with the entity in metrics."""
        name = self._connections.connection_for(self.domain, entity).connection.name
        metrics.legal_entity.set(entity or self.sole_entity.get(name, "-"))
        return name

    def requested(self) -> str:
        """The connection of the request's `legal_entity` (the default's without one)."""
        return self.for_entity(legal_entity.get())

    def by_id(self, routed: str) -> tuple[str, str]:
        """(connection, the vendor's id) of an id as published; an id of an entity's own account labels the
        vendor calls that follow with that entity (the shared account's records name none until read)."""
        name, raw = split_id(routed, [n for n in self.order if n != self.default])
        if name is None:
            return self.requested(), raw
        return self.visiting(name), raw

    def visiting(self, name: str) -> str:
        """`name`, reached while going through connections: its calls name the requested entity, else the
        connection's sole entity, if any."""
        metrics.legal_entity.set(legal_entity.get() or self.sole_entity.get(name, "-"))
        return name

    def tag(self, name: str, obj: T) -> T:
        """`obj` as published: the connection's prefix on its id and reference fields (none for the default)."""
        if name == self.default:
            return obj
        changes = {f: f"{name}{SEPARATOR}{v}" for f in self.refs
                   if isinstance(v := getattr(obj, f, None), str) and v}
        return msgspec.structs.replace(obj, **changes) if changes else obj

    def untag(self, name: str, obj: T) -> T:
        """A write body for connection `name`: its own prefix taken off the reference fields."""
        prefix = f"{name}{SEPARATOR}"
        changes = {f: v.removeprefix(prefix) for f in self.refs
                   if isinstance(v := getattr(obj, f, None), str) and v.startswith(prefix)}
        return msgspec.structs.replace(obj, **changes) if changes else obj

    def tag_page(self, name: str, page: Page[T], cursor: str | None) -> Page[T]:
        return Page(items=[self.tag(name, i) for i in page.items], next_cursor=cursor)

    async def one(self, name: str, call: Callable[[S], Awaitable[T]]) -> T:
        return self.tag(name, await call(self.systems[name]))

    async def listed(self, list_id: str, cursor: str | None,
                     fetch: Callable[[S, str | None], Awaitable[Page[T]]]) -> Page[T]:
        """A list: the requested entity's connection alone, else every connection merged."""
        entity = legal_entity.get()
        if entity is not None or len(self.order) == 1:
            name = self.for_entity(entity)
            page = await fetch(self.systems[name], cursor)
            return self.tag_page(name, page, page.next_cursor)
        key = f"routed.{self.domain}.{list_id}"
        at = decode_position(cursor, _At, key) if cursor else _At(c=0)
        if not 0 <= at.c < len(self.order):
            raise invalid_cursor()
        while True:  # a connection with nothing (left) to list gives way to the next, not an empty page
            name = self.visiting(self.order[at.c])
            page = await fetch(self.systems[name], at.i)
            if page.next_cursor:
                return self.tag_page(name, page, encode_position(_At(c=at.c, i=page.next_cursor), key))
            if at.c + 1 == len(self.order):
                return self.tag_page(name, page, None)
            at = _At(c=at.c + 1)
            if page.items:
                return self.tag_page(name, page, encode_position(at, key))

    async def everywhere(self, fetch: Callable[[S], Awaitable[Page[T]]]) -> Page[T]:
        """An unpaged list (a report): the requested entity's connection, else all of them concatenated."""
        entity = legal_entity.get()
        names = (self.for_entity(entity),) if entity is not None else self.order
        items: list[T] = []
        for name in names:
            items += [self.tag(name, i) for i in (await fetch(self.systems[self.visiting(name)])).items]
        return Page(items=items)

    async def found(self, call: Callable[[S], Awaitable[T]]) -> T:
        """A record psconnect keys itself: the requested connection, else the first connection that has it."""
        entity = legal_entity.get()
        names = (self.for_entity(entity),) if entity is not None else self.order
        for n, name in enumerate(names):
            try:
                return await self.one(self.visiting(name), call)
            except Exception as exc:
                if not _not_found(exc) or n + 1 == len(names):
                    raise
        raise AssertionError("unreachable: the loop returns or raises")


class RoutedCrm:
    """`CrmSystem` over every CRM connection. An account or opportunity id names its connection."""

    def __init__(self, routes: _Routes[CrmSystem]) -> None:
        self.r = routes

    async def list_accounts(self, limit: int, cursor: str | None) -> Page[Account]:
        return await self.r.listed("accounts", cursor, lambda s, c: s.list_accounts(limit, c))

    async def get_account(self, account_id: str) -> Account:
        name, raw = self.r.by_id(account_id)
        return await self.r.one(name, lambda s: s.get_account(raw))

    async def upsert_account(self, external_id: str, data: AccountUpsert) -> tuple[Account, bool]:
        name = self.r.requested()
        account, created = await self.r.systems[name].upsert_account(external_id, data)
        return self.r.tag(name, account), created

    async def list_opportunities(self, stage: OpportunityStage | None, limit: int,
                                 cursor: str | None) -> Page[Opportunity]:
        return await self.r.listed("opportunities", cursor, lambda s, c: s.list_opportunities(stage, limit, c))

    async def get_opportunity(self, opportunity_id: str) -> Opportunity:
        name, raw = self.r.by_id(opportunity_id)
        return await self.r.one(name, lambda s: s.get_opportunity(raw))


class RoutedHr:
    """`HrSystem` over every HR connection. A worker id names its connection."""

    def __init__(self, routes: _Routes[HrSystem]) -> None:
        self.r = routes

    async def list_workers(self, limit: int, cursor: str | None, updated_since: dt.datetime | None) -> Page[Worker]:
        return await self.r.listed("workers", cursor, lambda s, c: s.list_workers(limit, c, updated_since))

    async def get_worker(self, worker_id: str) -> Worker:
        name, raw = self.r.by_id(worker_id)
        return await self.r.one(name, lambda s: s.get_worker(raw))

    async def list_cost_centers(self, limit: int, cursor: str | None) -> Page[CostCenter]:
        return await self.r.listed("cost_centers", cursor, lambda s, c: s.list_cost_centers(limit, c))


class RoutedTime:
    """`TimeSystem` over every time connection. An entry id names its connection."""

    def __init__(self, routes: _Routes[TimeSystem]) -> None:
        self.r = routes

    async def list_time_entries(self, query: TimeEntryQuery, limit: int, cursor: str | None) -> Page[TimeEntry]:
        return await self.r.listed("time_entries", cursor, lambda s, c: s.list_time_entries(query, limit, c))

    async def get_time_entry(self, entry_id: str) -> TimeEntry:
        name, raw = self.r.by_id(entry_id)
        return await self.r.one(name, lambda s: s.get_time_entry(raw))

    async def list_projects(self, limit: int, cursor: str | None) -> Page[TimeProject]:
        return await self.r.listed("projects", cursor, lambda s, c: s.list_projects(limit, c))

    async def uninvoiced_report(self, start: dt.date, end: dt.date) -> Page[UninvoicedProject]:
        return await self.r.everywhere(lambda s: s.uninvoiced_report(start, end))

    async def list_expenses(self, query: TimeEntryQuery, limit: int, cursor: str | None) -> Page[Expense]:
        return await self.r.listed("expenses", cursor, lambda s, c: s.list_expenses(query, limit, c))

    async def get_expense(self, expense_id: str) -> Expense:
        name, raw = self.r.by_id(expense_id)
        return await self.r.one(name, lambda s: s.get_expense(raw))


class RoutedPsa:
    """`PsaSystem` over every PSA connection. Project, rate-card and timesheet ids name their connection.

    A project write goes to the `legal_entity` parameter's connection, else to the connection of the
    rate card it names, else the default's; a user write to the `legal_entity` parameter's connection.
    """

    def __init__(self, routes: _Routes[PsaSystem]) -> None:
        self.r = routes

    async def list_projects(self, external_id: str | None, limit: int, cursor: str | None) -> Page[PsaProject]:
        return await self.r.listed("projects", cursor, lambda s, c: s.list_projects(external_id, limit, c))

    async def get_project(self, project_id: str) -> PsaProject:
        name, raw = self.r.by_id(project_id)
        return await self.r.one(name, lambda s: s.get_project(raw))

    async def upsert_project(self, external_id: str, data: PsaProjectUpsert) -> tuple[PsaProject, bool]:
        name = self.r.requested()
        if legal_entity.get() is None and data.rate_card_id:
            name, _ = self.r.by_id(data.rate_card_id)
        project, created = await self.r.systems[name].upsert_project(external_id, self.r.untag(name, data))
        return self.r.tag(name, project), created

    async def list_assignments(self, project_external_id: str | None, limit: int,
                               cursor: str | None) -> Page[Assignment]:
        return await self.r.listed("assignments", cursor,
                                   lambda s, c: s.list_assignments(project_external_id, limit, c))

    async def list_rate_cards(self, legal_entity_code: str | None, limit: int, cursor: str | None) -> Page[RateCard]:
        if legal_entity_code is not None and legal_entity.get() is None:
            token = legal_entity.set(legal_entity_code)  # an entity's rate cards live in its own PSA
            try:
                return await self.r.listed("rate_cards", cursor,
                                           lambda s, c: s.list_rate_cards(legal_entity_code, limit, c))
            finally:
                legal_entity.reset(token)
        return await self.r.listed("rate_cards", cursor, lambda s, c: s.list_rate_cards(legal_entity_code, limit, c))

    async def get_rate_card(self, rate_card_id: str) -> RateCard:
        name, raw = self.r.by_id(rate_card_id)
        return await self.r.one(name, lambda s: s.get_rate_card(raw))

    async def upsert_user(self, external_id: str, data: PsaUserUpsert) -> tuple[PsaUser, bool]:
        name = self.r.requested()
        user, created = await self.r.systems[name].upsert_user(external_id, data)
        return self.r.tag(name, user), created

    async def list_time_entries(self, status: TimeEntryStatus | None, start: dt.date | None, end: dt.date | None,
                                limit: int, cursor: str | None) -> Page[TimeEntry]:
        return await self.r.listed("time_entries", cursor,
                                   lambda s, c: s.list_time_entries(status, start, end, limit, c))

    async def list_timesheet_submissions(self, status: SubmissionStatus | None, limit: int,
                                         cursor: str | None) -> Page[TimesheetSubmission]:
        return await self.r.listed("timesheet_submissions", cursor,
                                   lambda s, c: s.list_timesheet_submissions(status, limit, c))

    async def decide_timesheet(self, submission_id: str, data: TimesheetDecision) -> TimesheetSubmission:
        name, raw = self.r.by_id(submission_id)
        return await self.r.one(name, lambda s: s.decide_timesheet(raw, data))


class RoutedErp:
    """`ErpSystem` over every ERP connection. Writes go by the body's `legal_entity_id`.

    `legal_entity_id` is an ERP legal-entity id as published (prefixed for a non-default
    connection) or an entity code; either names the connection.
    """

    def __init__(self, routes: _Routes[ErpSystem]) -> None:
        self.r = routes
        self._codes: dict[str, dict[str, str]] = {}
        """Per connection: each legal entity's id and code -> its code, as the ERP lists them."""
        self._listed_at: dict[str, float] = {}

    async def _entity_connection(self, legal_entity_id: str) -> str:
        """The connection of the entity a body or path names (its id as published, or its code). The vendor calls
        that follow are labelled with the entity's code — in the metrics and for the connection's circuit breaker —
        even when it is named by the ERP's id."""
        name, raw = split_id(legal_entity_id, [n for n in self.r.order if n != self.r.default])
        if name is None and legal_entity.get() is not None:
            return self.r.requested()
        if name is None:
            name = self.r.for_entity(raw)  # a code names its entity's connection; any other id the default's
        metrics.legal_entity.set(self.r.sole_entity.get(name, "-"))  # a listing for the code names no entity
        if code := await self._code_of(name, raw):
            metrics.legal_entity.set(code)
        return name

    async def _code_of(self, name: str, id_or_code: str) -> str | None:
        """The code of the entity `id_or_code` names on connection `name`; its legal entities are listed again
        on an unknown one, at most once a minute (a body naming no entity must not cost a listing each)."""
        codes = self._codes.get(name, {})
        now = time.monotonic()
        if id_or_code not in codes and now - self._listed_at.get(name, -LIST_AGAIN_AFTER) >= LIST_AGAIN_AFTER:
            self._listed_at[name] = now
            listed: dict[str, str] = {}
            cursor: str | None = None
            try:
                while True:
                    page = await self.r.systems[name].list_legal_entities(200, cursor)
                    for entity in page.items:
                        listed[entity.id] = listed[entity.code] = entity.code
                    if not (cursor := page.next_cursor):
                        break
            except (VendorError, ProblemError):
                return None  # a label is not worth failing the write for: its calls name no entity this time
            self._codes[name] = codes = listed
        return codes.get(id_or_code)

    async def capabilities(self) -> ErpCapabilities:
        """The requested entity's ERP (the default's without `legal_entity`): each ERP answers its own."""
        return await self.r.systems[self.r.requested()].capabilities()

    async def list_legal_entities(self, limit: int, cursor: str | None) -> Page[LegalEntity]:
        return await self.r.listed("legal_entities", cursor, lambda s, c: s.list_legal_entities(limit, c))

    async def get_legal_entity(self, legal_entity_id: str) -> LegalEntity:
        name = await self._entity_connection(legal_entity_id)  # by its id or its code
        raw = legal_entity_id.removeprefix(f"{name}{SEPARATOR}")
        return await self.r.one(name, lambda s: s.get_legal_entity(raw))

    async def get_customer(self, customer_id: str) -> Customer:
        name, raw = self.r.by_id(customer_id)
        return await self.r.one(name, lambda s: s.get_customer(raw))

    async def upsert_customer(self, external_id: str, data: CustomerUpsert) -> tuple[Customer, bool]:
        name = await self._entity_connection(data.legal_entity_id)
        customer, created = await self.r.systems[name].upsert_customer(external_id, self.r.untag(name, data))
        return self.r.tag(name, customer), created

    async def list_projects(self, external_id: str | None, limit: int, cursor: str | None) -> Page[ErpProject]:
        return await self.r.listed("projects", cursor, lambda s, c: s.list_projects(external_id, limit, c))

    async def get_project(self, project_id: str) -> ErpProject:
        name, raw = self.r.by_id(project_id)
        return await self.r.one(name, lambda s: s.get_project(raw))

    async def upsert_project(self, external_id: str, data: ErpProjectUpsert) -> tuple[ErpProject, bool]:
        name = await self._entity_connection(data.legal_entity_id)
        project, created = await self.r.systems[name].upsert_project(external_id, self.r.untag(name, data))
        return self.r.tag(name, project), created

    async def list_accounting_periods(self, legal_entity_id: str | None, limit: int,
                                      cursor: str | None) -> Page[AccountingPeriod]:
        if legal_entity_id is not None:  # the id names its account (with `legal_entity` too: the same one)
            name = await self._entity_connection(legal_entity_id)
            raw = legal_entity_id.removeprefix(f"{name}{SEPARATOR}")
            page = await self.r.systems[name].list_accounting_periods(raw, limit, cursor)
            return self.r.tag_page(name, page, page.next_cursor)
        return await self.r.listed("accounting_periods", cursor,
                                   lambda s, c: s.list_accounting_periods(legal_entity_id, limit, c))

    async def upsert_employee(self, external_id: str, data: EmployeeUpsert) -> tuple[Employee, bool]:
        name = await self._entity_connection(data.legal_entity_id)
        employee, created = await self.r.systems[name].upsert_employee(external_id, self.r.untag(name, data))
        return self.r.tag(name, employee), created

    async def post_time(self, batch: TimePostingBatch) -> TimePostingJob:
        name = await self._entity_connection(batch.legal_entity_id)
        return await self.r.systems[name].post_time(self.r.untag(name, batch))

    async def get_time_posting(self, batch_key: str) -> TimePostingResult:
        return await self.r.found(lambda s: s.get_time_posting(batch_key))

    async def post_expenses(self, batch: ExpensePostingBatch) -> ExpensePostingResult:
        name = await self._entity_connection(batch.legal_entity_id)
        return await self.r.systems[name].post_expenses(self.r.untag(name, batch))

    async def get_expense_posting(self, batch_key: str) -> ExpensePostingResult:
        return await self.r.found(lambda s: s.get_expense_posting(batch_key))

    async def list_posted_expenses(self, project_external_id: str | None, date_from: dt.date | None,
                                   date_to: dt.date | None, limit: int, cursor: str | None) -> Page[PostedExpense]:
        return await self.r.listed("posted_expenses", cursor, lambda s, c: s.list_posted_expenses(
            project_external_id, date_from, date_to, limit, c))

    async def list_posted_time(self, project_external_id: str | None, date_from: dt.date | None,
                               date_to: dt.date | None, limit: int, cursor: str | None) -> Page[PostedTime]:
        return await self.r.listed("posted_time", cursor, lambda s, c: s.list_posted_time(
            project_external_id, date_from, date_to, limit, c))

    async def list_posted_time_totals(self, project_external_id: str | None, date_from: dt.date | None,
                                      date_to: dt.date | None, limit: int,
                                      cursor: str | None) -> Page[PostedTimeTotal]:
        return await self.r.listed("posted_time_totals", cursor, lambda s, c: s.list_posted_time_totals(
            project_external_id, date_from, date_to, limit, c))

    async def upsert_intercompany_charge(self, external_id: str,
                                         data: IntercompanyChargeUpsert) -> tuple[IntercompanyCharge, bool]:
        name = await self._entity_connection(data.legal_entity_id)
        charge, created = await self.r.systems[name].upsert_intercompany_charge(external_id, self.r.untag(name, data))
        return self.r.tag(name, charge), created

    async def list_intercompany_charges(self, period: str | None, counterparty: str | None, limit: int,
                                        cursor: str | None) -> Page[IntercompanyCharge]:
        return await self.r.listed("intercompany_charges", cursor, lambda s, c: s.list_intercompany_charges(
            period, counterparty, limit, c))

    async def upsert_invoice(self, external_id: str, data: InvoiceUpsert) -> tuple[Invoice, bool]:
        name = await self._entity_connection(data.legal_entity_id)
        invoice, created = await self.r.systems[name].upsert_invoice(external_id, self.r.untag(name, data))
        return self.r.tag(name, invoice), created

    async def list_invoices(self, project_external_id: str | None, period: str | None, limit: int,
                            cursor: str | None, updated_since: dt.datetime | None = None) -> Page[Invoice]:
        return await self.r.listed("invoices", cursor, lambda s, c: s.list_invoices(
            project_external_id, period, limit, c, updated_since))

    async def get_invoice(self, external_id: str) -> Invoice:
        return await self.r.found(lambda s: s.get_invoice(external_id))

    async def post_invoice(self, external_id: str) -> Invoice:
        return await self.r.found(lambda s: s.post_invoice(external_id))

    async def upsert_payment(self, external_id: str, data: PaymentUpsert) -> tuple[Payment, bool]:
        name = await self._entity_connection(data.legal_entity_id)
        payment, created = await self.r.systems[name].upsert_payment(external_id, self.r.untag(name, data))
        return self.r.tag(name, payment), created

    async def exchange_rate(self, base: str, quote: str, on: dt.date) -> ExchangeRate:
        """The requested entity's ERP (the default's without `legal_entity`): each ERP keeps its own rates."""
        return await self.r.systems[self.r.requested()].exchange_rate(base, quote, on)

    async def upsert_credit_memo(self, external_id: str, data: CreditMemoUpsert) -> tuple[CreditMemo, bool]:
        name = await self._entity_connection(data.legal_entity_id)
        memo, created = await self.r.systems[name].upsert_credit_memo(external_id, self.r.untag(name, data))
        return self.r.tag(name, memo), created

    async def list_credit_memos(self, project_external_id: str | None, period: str | None, limit: int,
                                cursor: str | None) -> Page[CreditMemo]:
        return await self.r.listed("credit_memos", cursor,
                                   lambda s, c: s.list_credit_memos(project_external_id, period, limit, c))


REFS: Mapping[str, tuple[str, ...]] = {
    "crm": ("id", "account_id"),
    "hr": ("id",),
    "time": ("id",),
    "psa": ("id", "rate_card_id"),
    "erp": ("id", "legal_entity_id", "customer_id"),
}
"""The fields of each domain's objects that hold a connection's own ids (prefixed when published)."""

_ROUTED: Mapping[str, Callable[[_Routes[Any]], object]] = {
    "crm": RoutedCrm, "hr": RoutedHr, "time": RoutedTime, "psa": RoutedPsa, "erp": RoutedErp}


def routed_systems(domain: str, connections: Connections, systems: Mapping[str, object]) -> object:
    """The routed adapter of `domain`: `systems` is {connection name: that connection's adapter of the domain}."""
    return _ROUTED[domain](_Routes(domain, connections, cast(Mapping[str, Any], systems), REFS[domain]))
