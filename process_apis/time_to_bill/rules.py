"""Validation rules an approved time entry must pass before it may post to the ERP.

Pure functions over reference data loaded once per run (`Reference`): per-entry work is
dictionary lookups, so 440,000 entries validate in seconds. Every broken rule becomes a
`Violation` naming the team that owns the fix; a passing entry becomes a `PricedLine`
carrying the rate that applies and its amount, quantized to the currency's cents.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import ROUND_HALF_UP, Decimal

import msgspec

from contracts.billing import RateCard
from contracts.erp import BillingMilestone
from contracts.psa import ExpenseTerms
from contracts.runs import Violation
from contracts.time import TimeEntry

__all__ = [
    "CENT",
    "PeriodRef",
    "PlannedWork",
    "PricedLine",
    "ProjectRef",
    "Reference",
    "WorkerRef",
    "line_key",
    "period_of",
    "quantize",
    "validate",
]

CENT = Decimal("0.01")
DELIVERY_OPS = "delivery-operations"
COMMERCIAL = "commercial-finance"
FINANCE_CLOSE = "finance-close"
MASTER_DATA = "finance-master-data"
HR_OPS = "hr-operations"


class ProjectRef(msgspec.Struct, frozen=True, kw_only=True):
    """A project as billing sees it: the ERP job joined with its PSA workspace (the contract)."""

    external_id: str
    legal_entity_code: str
    legal_entity_id: str
    customer_id: str
    currency: str
    status: str
    billing_type: str
    rate_card_id: str | None
    milestones: tuple[BillingMilestone, ...] = ()
    budget: Decimal | None = None
    """Contracted value (the PSA workspace's budget) in `currency`; None when the PSA has no workspace."""
    expense_terms: ExpenseTerms | None = None
    """The contract's expense terms (PSA); None: no expense of the project is billable."""


class WorkerRef(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    email: str
    status: str
    hire_date: dt.date | None = None
    termination_date: dt.date | None = None
    legal_entity_code: str = ""
    practice: str = ""
    cost_rate: Decimal | None = None
    cost_currency: str = ""


class PlannedWork(msgspec.Struct, frozen=True, kw_only=True):
    """A PSA assignment as the billing facts need it: planned hours over a date range."""

    project: str
    worker_id: str
    start_date: dt.date
    end_date: dt.date
    planned_hours: Decimal


class PeriodRef(msgspec.Struct, frozen=True, kw_only=True):
    is_closed: bool
    ar_locked: bool = False


class Reference(msgspec.Struct, kw_only=True):
    """Everything validation needs, keyed for lookups; loaded once per run by `enrich`."""

    projects: dict[str, ProjectRef]
    rate_cards: dict[str, RateCard]
    roles: dict[tuple[str, str], str]
    """(project external id, worker email) -> role on the project (PSA assignment)."""
    workers: dict[str, WorkerRef]
    """Worker email -> worker (HR)."""
    periods: dict[tuple[str, str], PeriodRef]
    """(legal entity code, YYYY-MM) -> accounting period state."""
    entity_currency: dict[str, str]
    """Legal entity code -> functional currency."""
    entity_ids: dict[str, str] = {}
    """Legal entity code -> ERP id (LE-US01): consumers may name an entity either way."""
    plans: tuple[PlannedWork, ...] = ()
    """Assignments with planned hours (PSA), for the billing facts' planned utilization."""
    _rates: dict[tuple[str, str], Decimal] = {}
    _staffed: dict[tuple[str, str], list[tuple[dt.date, dt.date]]] | None = None
    _employers: dict[str, str] | None = None

    def employer(self, worker_id: str) -> str:
        """The code of the entity employing a worker known by HR id (`?` for one HR does not know); the map is
        built once, not per project reconciled (workers x projects at month end)."""
        if self._employers is None:
            self._employers = {w.id: w.legal_entity_code for w in self.workers.values()}
        return self._employers.get(worker_id, "?")

    def staffed(self, project: str, worker_id: str, day: dt.date) -> bool:
        """Whether the PSA has the worker assigned to the project on that day (an assignment spanning it)."""
        if self._staffed is None:
            self._staffed = {}
            for plan in self.plans:
                self._staffed.setdefault((plan.project, plan.worker_id), []).append((plan.start_date, plan.end_date))
        return any(start <= day <= end for start, end in self._staffed.get((project, worker_id), ()))

    def rate(self, card: RateCard, role: str) -> Decimal | None:
        key = (card.id, role)
        if key not in self._rates:
            line = next((ln for ln in card.lines if ln.role == role), None)
            self._rates[key] = line.hourly_rate.amount if line is not None else Decimal(-1)
        found = self._rates[key]
        return None if found < 0 else found


class PricedLine(msgspec.Struct, frozen=True, array_like=True):
    """One entry (or expense) version, validated and priced: a ledger line to be posted.

    An expense (`kind="expense"`, `expense_rules.py`) reads as one unit: `rate` is its cost in the
    project's currency (what the ERP posts), `amount` what the client is billed (cost plus the
    contract's markup; 0 when not billable), `role` its category, and `payload` the captured expense
    (its receipt and original currency travel with it to the ERP)."""

    line_key: str
    entry_id: str
    project: str
    worker_id: str
    legal_entity_code: str
    period: str
    date: dt.date
    hours: Decimal
    rate: Decimal
    amount: Decimal
    currency: str
    billable: bool
    role: str
    kind: str = "time"
    payload: bytes | None = None


def quantize(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_UP)


def period_of(day: dt.date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def line_key(entry: TimeEntry) -> str:
    """Entry id + a hash of the fields that change what is billed: a new version gets a new key."""
    rate = entry.billable_rate.amount if entry.billable_rate is not None else ""
    raw = f"{entry.hours.normalize()}|{entry.date}|{entry.project_code}|{int(entry.billable)}|{rate}"
    return f"{entry.id}:{hashlib.blake2b(raw.encode(), digest_size=6).hexdigest()}"


def validate(entry: TimeEntry, ref: Reference, as_of: dt.date, *, keyed: bool = True,
             ) -> PricedLine | tuple[Violation, ...]:
    """Price the entry, or say every reason it cannot post, each with its owner.

    `keyed=False` leaves the line's `line_key` empty, for a reading that only sums what it prices (the
    reconciliation): the key's hash is over a quarter of pricing an entry."""
    out: list[Violation] = []

    def broken(code: str, detail: str, owner: str) -> None:
        out.append(Violation(code=code, detail=detail, owner=owner))

    if entry.status != "approved":
        broken("entry_not_approved", f"Entry {entry.id} is {entry.status}, not approved.", DELIVERY_OPS)
    if entry.date > as_of:
        broken("future_dated", f"Entry {entry.id} is dated {entry.date}, after {as_of}.", DELIVERY_OPS)
    email, month = entry.user_email.lower(), period_of(entry.date)
    project = ref.projects.get(entry.project_code)
    worker = ref.workers.get(email)
    role = ref.roles.get((entry.project_code, email))
    rate: Decimal | None = None
    if project is None:
        broken("unknown_project", f"Project {entry.project_code!r} is not an ERP project.", DELIVERY_OPS)
    else:
        if project.status != "active":
            broken("project_inactive", f"Project {project.external_id} is {project.status}.", DELIVERY_OPS)
        card = ref.rate_cards.get(project.rate_card_id or "")
        if card is None:
            broken("rate_card_missing", f"Project {project.external_id} has no rate card "
                   f"({project.rate_card_id!r} not found).", COMMERCIAL)
        else:
            if entry.date < card.valid_from or (card.valid_to is not None and entry.date > card.valid_to):
                broken("rate_card_not_valid", f"Rate card {card.id} is not valid on {entry.date}.", COMMERCIAL)
            if card.currency != project.currency:
                broken("rate_card_mismatch", f"Rate card {card.id} is in {card.currency}, the contract of "
                       f"{project.external_id} in {project.currency}.", COMMERCIAL)
            if role is None:
                broken("worker_not_assigned", f"{entry.user_email} is not staffed on {project.external_id}.",
                       DELIVERY_OPS)
            else:
                rate = ref.rate(card, role)
                if rate is None:
                    broken("rate_card_missing", f"Rate card {card.id} has no rate for role {role!r}.", COMMERCIAL)
                elif entry.billable_rate is not None and entry.billable_rate.amount != rate:
                    broken("rate_card_mismatch", f"The time system prices entry {entry.id} at "
                           f"{entry.billable_rate.amount}, rate card {card.id} at {rate} for {role}.", COMMERCIAL)
        period = ref.periods.get((project.legal_entity_code, month))
        if period is None or period.is_closed or period.ar_locked:
            state = "missing" if period is None else "closed"
            broken("period_closed", f"Accounting period {month} of {project.legal_entity_code} "
                   f"is {state}.", FINANCE_CLOSE)
        entity_currency = ref.entity_currency.get(project.legal_entity_code)
        if entity_currency != project.currency:
            broken("currency_mismatch", f"Project {project.external_id} bills in {project.currency}, legal entity "
                   f"{project.legal_entity_code} in {entity_currency}.", MASTER_DATA)
    if worker is None:
        broken("worker_inactive", f"{entry.user_email} is not a worker in HR.", HR_OPS)
    elif (worker.status == "terminated" and (worker.termination_date is None or entry.date > worker.termination_date)) \
            or (worker.hire_date is not None and entry.date < worker.hire_date):
        broken("worker_inactive", f"Worker {worker.id} was not employed on {entry.date}.", HR_OPS)
    if out:
        return tuple(out)
    assert project is not None and worker is not None and role is not None and rate is not None
    amount = quantize(entry.hours * rate) if entry.billable else Decimal("0.00")
    return PricedLine(line_key=line_key(entry) if keyed else "", entry_id=entry.id, project=project.external_id,
                      worker_id=worker.id, legal_entity_code=project.legal_entity_code, period=month, date=entry.date,
                      hours=entry.hours, rate=rate, amount=amount, currency=project.currency,
                      billable=entry.billable, role=role)

