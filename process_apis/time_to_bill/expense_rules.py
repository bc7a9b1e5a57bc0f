"""Validation rules an approved expense must pass before it is posted to the ERP as cost and billed to the client.

Pure functions over the run's reference data, like the time rules (`rules.py`): every broken rule
is a `Violation` naming the team that owns the fix, so a held expense lands in the exception queue
with a reason someone can act on, and replays once fixed. The rules, in the order a reviewer reads
them: approved; not future-dated; an active ERP project; a worker employed on the date and staffed
on the project then (PSA assignment); an open accounting period; a currency we can convert (the
caller looks the rate up, since that is I/O); a receipt above the contract's threshold; and, for a
billable expense, a category the contract bills and an amount within its cap for that category.

A passing expense becomes a `PricedLine` of one unit: cost = the amount converted into the project's
currency (half-up to the cent); billed = cost x (1 + markup %) half-up to the cent, 0 when not billable.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from typing import Final

import msgspec

from contracts.currency import ExchangeRate
from contracts.runs import Violation
from contracts.time import Expense
from process_apis.time_to_bill.rules import (
    COMMERCIAL,
    DELIVERY_OPS,
    FINANCE_CLOSE,
    HR_OPS,
    MASTER_DATA,
    PricedLine,
    Reference,
    period_of,
    quantize,
)

__all__ = ["DEFAULT_RECEIPT_ABOVE", "EXPENSE", "EXPENSE_REVERSAL", "entry_id", "expense_key", "validate_expense"]

EXPENSE: Final = "expense"
EXPENSE_REVERSAL: Final = "exp_rev"
DEFAULT_RECEIPT_ABOVE: Final = Decimal("75.00")
"""The receipt threshold of a project whose contract names none (in the project's currency)."""


def entry_id(expense: Expense) -> str:
    """The ledger's entry id of an expense: its own namespace, so an expense never meets a time entry's id."""
    return f"expense:{expense.id}"


def expense_key(expense: Expense) -> str:
    """Expense id + a hash of what is billed or posted: a changed expense gets a new key (and reverses the old)."""
    units = expense.units.normalize() if expense.units is not None else ""
    raw = (f"{expense.amount.amount.normalize()}|{expense.amount.currency}|{expense.date}|{expense.project_code}|"
           f"{int(expense.billable)}|{expense.category}|{units}|{int(expense.receipt_url is not None)}")
    return f"{entry_id(expense)}:{hashlib.blake2b(raw.encode(), digest_size=6).hexdigest()}"


def validate_expense(expense: Expense, ref: Reference, as_of: dt.date,
                     rate: ExchangeRate | None) -> PricedLine | tuple[Violation, ...]:
    """Price the expense, or say every reason it cannot post, each with its owner.

    `rate` converts the expense's currency into the project's (None when they are the same or when no
    rate could be found; the latter is the `expense_currency_unhandled` violation).
    """
    out: list[Violation] = []

    def broken(code: str, detail: str, owner: str) -> None:
        out.append(Violation(code=code, detail=detail, owner=owner))

    what = f"Expense {expense.id}"
    if expense.status != "approved":
        broken("expense_not_approved", f"{what} is {expense.status}, not approved.", DELIVERY_OPS)
    if expense.date > as_of:
        broken("future_dated", f"{what} is dated {expense.date}, after {as_of}.", DELIVERY_OPS)
    if expense.amount.amount < 0:
        broken("expense_negative", f"{what} is negative ({expense.amount.amount}).", DELIVERY_OPS)
    project = ref.projects.get(expense.project_code)
    worker = ref.workers.get(expense.user_email.lower())
    if worker is None:
        broken("worker_inactive", f"{expense.user_email} is not a worker in HR.", HR_OPS)
    elif (worker.status == "terminated" and (worker.termination_date is None or
                                             expense.date > worker.termination_date)) \
            or (worker.hire_date is not None and expense.date < worker.hire_date):
        broken("worker_inactive", f"Worker {worker.id} was not employed on {expense.date}.", HR_OPS)
    if project is None:
        broken("unknown_project", f"Project {expense.project_code!r} is not an ERP project.", DELIVERY_OPS)
        return tuple(out)
    if project.status != "active":
        broken("project_inactive", f"Project {project.external_id} is {project.status}.", DELIVERY_OPS)
    if worker is not None and not ref.staffed(project.external_id, worker.id, expense.date):
        broken("worker_not_assigned", f"{expense.user_email} is not staffed on {project.external_id} on "
               f"{expense.date}.", DELIVERY_OPS)
    period = ref.periods.get((project.legal_entity_code, period_of(expense.date)))
    if period is None or period.is_closed or period.ar_locked:
        state = "missing" if period is None else "closed"
        broken("period_closed", f"Accounting period {period_of(expense.date)} of {project.legal_entity_code} "
               f"is {state}.", FINANCE_CLOSE)
    cost: Decimal | None = expense.amount.amount
    if expense.amount.currency != project.currency:
        if rate is None or (rate.base, rate.quote) != (expense.amount.currency, project.currency):
            cost = None
            broken("expense_currency_unhandled", f"{what} is in {expense.amount.currency}; no "
                   f"{expense.amount.currency}→{project.currency} rate for {expense.date} in "
                   f"{project.legal_entity_code}'s ERP or the rate table.", MASTER_DATA)
        else:
            cost = expense.amount.amount * rate.rate
    terms = project.expense_terms
    if cost is not None:
        cost = quantize(cost)
        threshold = terms.receipt_required_above.amount if terms is not None else DEFAULT_RECEIPT_ABOVE
        if expense.receipt_url is None and cost > threshold:
            broken("receipt_missing", f"{what} of {cost} {project.currency} has no receipt (required above "
                   f"{threshold}).", DELIVERY_OPS)
        if expense.billable and terms is not None and expense.category in terms.caps and \
                cost > terms.caps[expense.category].amount:
            broken("expense_over_cap", f"{what} of {cost} {project.currency} exceeds the contract's "
                   f"{expense.category} cap of {terms.caps[expense.category].amount}.", COMMERCIAL)
    if expense.billable and (terms is None or expense.category not in terms.billable_categories):
        why = "names no expense terms" if terms is None else f"does not bill {expense.category!r} expenses"
        broken("expense_not_billable", f"{what} is marked billable but the contract of {project.external_id} "
               f"{why}.", COMMERCIAL)
    if out:
        return tuple(out)
    assert worker is not None and cost is not None
    markup = terms.markup_percent if terms is not None else Decimal(0)
    billed = quantize(cost * (1 + markup / 100)) if expense.billable else Decimal("0.00")
    return PricedLine(line_key=expense_key(expense), entry_id=entry_id(expense), project=project.external_id,
                      worker_id=worker.id, legal_entity_code=project.legal_entity_code,
                      period=period_of(expense.date), date=expense.date, hours=Decimal(1), rate=cost, amount=billed,
                      currency=project.currency, billable=expense.billable, role=expense.category[:60], kind=EXPENSE,
                      payload=msgspec.json.encode(expense))
