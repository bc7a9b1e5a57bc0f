"""Reconciliation per project and period: the time system vs the ERP's posted time vs what was invoiced.

Approved billable hours and their amounts (priced by the same rules the run uses) in the time system, the
billable hours and amounts the ERP holds as posted time, and invoiced minus credited. Time of consultants
employed by another entity is also charged to the project's entity: the transfer-rate value of its valid
approved entries vs the receivables in the employers' ERPs and the payables in the project entity's ERP
(`intercompany.py`). Expenses the same way: approved cost (converted and checked by the expense rules) vs the
cost the ERP holds as posted expenses, and the billed amounts with markup vs the invoices' expense lines minus
the credits of expense lines. Entries and expenses held in the exception queue are counted, not hidden: they are
the expected difference until someone fixes and replays them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from functools import partial

import msgspec

from contracts.billing import IntercompanyCharge, InvoiceLine
from contracts.common import Struct
from contracts.time import TimeEntry
from foundation.periods import month_bounds
from process_apis.time_to_bill.enrich import expense_rates
from process_apis.time_to_bill.expense_rules import validate_expense
from process_apis.time_to_bill.intercompany import transfer_rate
from process_apis.time_to_bill.invoicing import EXPENSE_CREDIT
from process_apis.time_to_bill.rules import PricedLine, ProjectRef, Reference, period_of, quantize, validate
from process_apis.time_to_bill.runtime import pages, retried, runtime

__all__ = ["Approved", "Booked", "Reconciliation", "approved", "booked", "reconcile_project"]


class IntercompanyFigures(Struct):
    employer: str
    currency: str
    expected: str
    receivable: str
    payable: str


class Reconciliation(Struct):
    project: str
    period: str
    currency: str
    approved_hours: str
    approved_amount: str
    held_in_exceptions: int
    posted_hours: str
    posted_amount: str
    invoiced_amount: str
    credited_amount: str
    milestone_amount: str
    discrepancies: list[str]
    approved_expense_cost: str = "0"
    billable_expense_amount: str = "0"
    expenses_held: int = 0
    posted_expense_cost: str = "0"
    invoiced_expense_amount: str = "0"
    credited_expense_amount: str = "0"
    intercompany: list[IntercompanyFigures] = []
    """Per employing entity of consultants staffed on the project: the transfer-rate value of their approved time
    and the charges each side's ERP holds for it, in the employer's currency."""

    @property
    def clean(self) -> bool:
        return not self.discrepancies


ChargeCache = dict[tuple[str, str], asyncio.Task[list[IntercompanyCharge]]]
"""(entity code, period) -> the read of the intercompany documents its ERP lists: once per reconciliation of an
entity, shared by the projects reconciled at the same time."""


class Approved(msgspec.Struct):
    """The time system's side of one project's reconciliation: its approved time and expenses of the period, priced
    by the run's rules, and what of them is held."""

    hours: Decimal = Decimal(0)
    amount: Decimal = Decimal(0)
    held: int = 0
    seconded: dict[str, tuple[str, Decimal]] = {}
    """employer -> (currency, transfer-rate value) of the time of consultants another entity employs"""
    expense_cost: Decimal = Decimal(0)
    expense_billed: Decimal = Decimal(0)
    expenses_held: int = 0


class Booked(msgspec.Struct):
    """The ERP's side of one project's reconciliation for the period: time posted (billable), time and milestones
    invoiced, time credited, and expenses posted (cost), invoiced and credited."""

    posted_hours: Decimal = Decimal(0)
    posted_amount: Decimal = Decimal(0)
    invoiced: Decimal = Decimal(0)
    milestones: Decimal = Decimal(0)
    credited: Decimal = Decimal(0)
    expense_cost: Decimal = Decimal(0)
    expenses_invoiced: Decimal = Decimal(0)
    expenses_credited: Decimal = Decimal(0)


Narrowing = dict[str, str | int]
"""What a read of the time system is narrowed to: `{"project_code": …}` (one project), `{"legal_entity": …}` (that
entity's time account, every project in it) or `{}` (every account); the ERP's lists take `project_external_id`
for one project and the same `legal_entity`."""


async def approved(codes: set[str], period: str, ref: Reference, as_of: dt.date,
                   narrowing: Narrowing) -> dict[str, Approved]:
    """The approved figures of the projects `codes`, from one paged read of entries and one of expenses narrowed
    as given: per project, or one read for many projects when a reconciliation covers all of an entity's — a few
    pages, not a read per project (a time system allows few requests: 100 per 15 s for one of ours)."""
    rt = runtime()
    start, end = month_bounds(period)
    out = {code: Approved() for code in codes}
    params: Narrowing = {"status": "approved", "from": start.isoformat(), "to": end.isoformat(),
                         "limit": rt.page_size, **narrowing}
    async for entries in pages(rt.time.entries, params, "Time system"):
        for entry in entries:
            if (figures := out.get(entry.project_code)) is not None:
                _count_time(figures, entry, ref, as_of)
    async for expenses in pages(rt.time.expenses, params, "Time system"):
        mine = [x for x in expenses if x.project_code in out]
        rates = await expense_rates(mine, ref, rt.rates)
        priced = [(out[x.project_code], validate_expense(x, ref, as_of, rates.get(x.id))) for x in mine]
        refused = rt.ledger.states([p.line_key for _, p in priced if isinstance(p, PricedLine)])
        for figures, line in priced:
            # held: broken rules, or a line the ERP refused (parked on an owned exception until replayed)
            if not isinstance(line, PricedLine) or refused.get(line.line_key) == "exception":
                figures.expenses_held += 1
                continue
            figures.expense_cost += line.rate
            figures.expense_billed += line.amount
    return out


async def booked(codes: set[str], period: str, narrowing: Narrowing) -> dict[str, Booked]:
    """What the ERP holds for the projects `codes` in the period, from one paged read of each of its four lists
    narrowed as the ERP takes it: for one project, or for an entity's (or every) account whole — as many reads
    as pages instead of four per project. Posted time is read summed per project (an account's month is hundreds
    of thousands of lines); the other lists are summed here page by page, never held whole."""
    erp = runtime().erp
    start, end = month_bounds(period)
    out = {code: Booked() for code in codes}
    dates: Narrowing = {"from": start.isoformat(), "to": end.isoformat(), "limit": 1000, **narrowing}
    by_period: Narrowing = {"period": period, "limit": 200, **narrowing}
    async for totals in pages(erp.posted_time_totals, dates, "ERP"):  # summed by the ERP: a row per project
        for total in totals:
            if (books := out.get(total.project_external_id)) is not None:
                books.posted_hours += Decimal(total.billable_hours)
                books.posted_amount += total.billable_amount.amount
    async for invoices in pages(erp.invoices, by_period, "ERP"):
        for invoice in invoices:
            if (books := out.get(invoice.project_external_id)) is not None:
                for ln in invoice.lines:
                    if ln.kind == "time":
                        books.invoiced += ln.amount.amount
                    elif ln.kind == "milestone":
                        books.milestones += ln.amount.amount
                    elif ln.kind == "expense":
                        books.expenses_invoiced += ln.amount.amount
    async for memos in pages(erp.credit_memos, by_period, "ERP"):
        for memo in memos:
            if (books := out.get(memo.project_external_id)) is not None:
                for ln in memo.lines:
                    if _of_expense(ln):
                        books.expenses_credited += ln.amount.amount
                    else:
                        books.credited += ln.amount.amount
    async for expenses in pages(erp.posted_expenses, dates, "ERP"):
        for x in expenses:
            if (books := out.get(x.project_external_id)) is not None:
                books.expense_cost += x.amount.amount
    return out


def _count_time(into: Approved, entry: TimeEntry, ref: Reference, as_of: dt.date) -> None:
    priced = validate(entry, ref, as_of, keyed=False)
    if not isinstance(priced, PricedLine):
        into.held += 1
        return
    if priced.billable:
        into.hours += priced.hours
        into.amount += priced.amount
    worker = ref.workers[entry.user_email.lower()]
    employer, entity = worker.legal_entity_code, ref.projects[entry.project_code].legal_entity_code
    if employer not in ("", entity):
        value = quantize(priced.hours * transfer_rate(worker.cost_rate or Decimal(0),
                                                      runtime().transfer_markup(employer, entity)))
        into.seconded[employer] = (worker.cost_currency, into.seconded.get(employer, ("", Decimal(0)))[1] + value)


async def reconcile_project(project_code: str, period: str, ref: Reference, as_of: dt.date,
                            charges: ChargeCache | None = None, figures: Approved | None = None,
                            books: Booked | None = None) -> Reconciliation:
    """One project's reconciliation; `figures` and `books`, its two sides when reads for many projects already
    have them."""
    project = ref.projects[project_code]
    if figures is None:
        figures = (await approved({project_code}, period, ref, as_of, {"project_code": project_code}))[project_code]
    if books is None:  # the project's ERP account only: another account's outage is not ours
        books = (await booked({project_code}, period, {"project_external_id": project_code,
                                                       "legal_entity": project.legal_entity_code}))[project_code]
    due = sum((m.amount.amount for m in project.milestones if period_of(m.due_date) == period), Decimal(0)) \
        if project.billing_type in ("fixed_fee", "mixed") else Decimal(0)
    expected_time = figures.amount if project.billing_type != "fixed_fee" else Decimal(0)
    out: list[str] = []
    if figures.hours != books.posted_hours:
        out.append(f"approved billable hours {figures.hours} != posted {books.posted_hours}")
    if figures.amount != books.posted_amount:
        out.append(f"approved amount {figures.amount} != posted {books.posted_amount}")
    if books.invoiced + books.credited != expected_time:
        out.append(f"invoiced time {books.invoiced} + credits {books.credited} != billable {expected_time}")
    if books.milestones != due:
        out.append(f"invoiced milestones {books.milestones} != due {due}")
    if figures.expense_cost != books.expense_cost:
        out.append(f"approved expense cost {figures.expense_cost} != posted {books.expense_cost}")
    if books.expenses_invoiced + books.expenses_credited != figures.expense_billed:
        out.append(f"invoiced expenses {books.expenses_invoiced} + credits {books.expenses_credited} != billable "
                   f"{figures.expense_billed}")
    receivable, payable = await _charged(project, period, set(figures.seconded), ref,
                                         {} if charges is None else charges)
    intercompany = [IntercompanyFigures(employer=e, currency=c, expected=str(v), receivable=str(receivable.get(e, 0)),
                                        payable=str(payable.get(e, 0)))
                    for e, (c, v) in sorted(figures.seconded.items())]
    for employer in sorted((set(receivable) | set(payable)) - set(figures.seconded)):  # charged, yet nothing approved
        intercompany.append(IntercompanyFigures(employer=employer, currency="", expected="0",
                                                receivable=str(receivable.get(employer, 0)),
                                                payable=str(payable.get(employer, 0))))
    for f in intercompany:
        if not Decimal(f.expected) == Decimal(f.receivable) == Decimal(f.payable):
            out.append(f"intercompany from {f.employer}: charged {f.receivable} in its books and {f.payable} in the "
                       f"project entity's != {f.expected} {f.currency} at the transfer rate")
    return Reconciliation(project=project_code, period=period, currency=project.currency,
                          approved_hours=str(figures.hours), approved_amount=str(figures.amount),
                          held_in_exceptions=figures.held, posted_hours=str(books.posted_hours),
                          posted_amount=str(books.posted_amount),
                          invoiced_amount=str(books.invoiced + books.milestones), credited_amount=str(books.credited),
                          milestone_amount=str(books.milestones), discrepancies=out,
                          approved_expense_cost=str(figures.expense_cost),
                          billable_expense_amount=str(figures.expense_billed), expenses_held=figures.expenses_held,
                          posted_expense_cost=str(books.expense_cost),
                          invoiced_expense_amount=str(books.expenses_invoiced),
                          credited_expense_amount=str(books.expenses_credited), intercompany=intercompany)


async def _charged(project: ProjectRef, period: str, employers: set[str], ref: Reference,
                   cache: ChargeCache) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """Per employer, the project's lines in the employers' receivables and in its entity's payables, as each ERP
    lists them (an account shared by several entities lists all their documents once per entity asked: taken once
    by id); a line's employer is its consultant's."""
    documents: dict[str, IntercompanyCharge] = {}
    for code in sorted({project.legal_entity_code, *employers}):
        if (code, period) not in cache:
            cache[(code, period)] = asyncio.ensure_future(retried(partial(runtime().erp.intercompany_charges, code,
                                                                          period), "ERP"))
        documents.update((c.id, c) for c in await cache[(code, period)])
    receivable: dict[str, Decimal] = {}
    payable: dict[str, Decimal] = {}
    for charge in documents.values():
        if charge.side == "receivable" and charge.counterparty == project.legal_entity_code:
            into = receivable
        elif charge.side == "payable" and charge.legal_entity_id == project.legal_entity_id:
            into = payable
        else:
            continue
        for ln in charge.lines:
            if ln.project_external_id == project.external_id:
                employer = ref.employer(ln.employee_external_id)
                into[employer] = into.get(employer, Decimal(0)) + ln.amount.amount
    return receivable, payable


def _of_expense(line: InvoiceLine) -> bool:
    """A credit line that reverses an expense (`invoicing.EXPENSE_CREDIT`)."""
    return line.description.startswith(EXPENSE_CREDIT)
