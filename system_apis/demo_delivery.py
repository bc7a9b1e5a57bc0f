"""The demo firm's delivery: projects already running, their staffing, and the time booked to them.

Every simulator seeds from here, so the ERP job, the PSA workspace (with its rate card
and assignments) and the time system's project all describe one project, keyed by
its ERP external id (`PRJ-A0001`). Time is generated, not stored: two entries per
worker per weekday, deterministic, so the 10,000-worker benchmark firm costs no
memory until a simulator asks for a period. A few entries are wrong on purpose —
each listed in `TIME_DEFECTS` with the exception it must raise.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Literal

import msgspec

from contracts.billing import RateCard
from contracts.common import Money
from contracts.crm import Account
from contracts.erp import BillingMilestone, LegalEntity
from contracts.psa import ExpenseTerms
from contracts.workforce import Worker

__all__ = [
    "DEMO_PERIOD",
    "EXPENSE_CATEGORIES",
    "EXPENSE_DEFECTS",
    "MILEAGE_RATE",
    "MISPRICED_PROJECT_INDEX",
    "SECONDMENTS",
    "TIME_DEFECTS",
    "SeedAssignment",
    "SeedExpense",
    "SeedProject",
    "SeedTimeEntry",
    "defect_entries",
    "defect_expenses",
    "expense_terms",
    "expenses",
    "plan_projects",
    "time_entries",
]

DEMO_PERIOD = (dt.date(2026, 10, 1), dt.date(2026, 10, 31))
"""The month the demo bills: closed for time, open for posting and invoicing."""

BillingType = Literal["time_and_materials", "fixed_fee", "mixed"]
CLOSED_PROJECT_INDEX = 7
MISPRICED_PROJECT_INDEX = 3
SECONDMENTS = (("UK01", "US01"), ("DE01", "UK01"))
"""(employing entity, project's entity): the second active worker of the first is also staffed on the first active
time-and-materials project of the second, an hour a weekday — the demo's intercompany charges."""
SECONDED_HOURS = Decimal("1.0")


class SeedAssignment(msgspec.Struct, frozen=True, kw_only=True):
    worker_id: str
    role: str
    start_date: dt.date
    end_date: dt.date
    planned_hours: Decimal
    seconded: bool = False
    """The worker is employed by another legal entity than the project's (`SECONDMENTS`): an intercompany charge."""


class SeedProject(msgspec.Struct, kw_only=True):
    external_id: str
    name: str
    account_id: str
    legal_entity_code: str
    currency: str
    billing_type: BillingType
    rate_card_id: str
    budget: Money
    start_date: dt.date
    end_date: dt.date
    status: Literal["active", "closed"]
    milestones: list[BillingMilestone]
    assignments: list[SeedAssignment]


class SeedTimeEntry(msgspec.Struct, frozen=True, array_like=True):
    """Compact on purpose: the benchmark holds 440,000 of them in the time simulator."""

    id: str
    worker_id: str
    project_external_id: str
    date: dt.date
    hours: Decimal
    billable: bool
    status: Literal["draft", "submitted", "approved", "rejected"]
    task: str
    billable_rate: Decimal | None = None
    """Set only where the time system prices time differently from the rate card (a defect)."""


def plan_projects(entities: Sequence[LegalEntity], accounts: Sequence[Account], workers: Sequence[Worker],
                  rate_cards: Sequence[RateCard], *, key: str = "A", count: int | None = None) -> list[SeedProject]:
    """One project per eight workers, staffed within its legal entity; each worker on two projects.

    Plans match the time `time_entries` books (about 6 h a day on the primary project and 2 h on the
    secondary): 6 h and 1.5 h a weekday over the assignment, so planned utilization sits a little under
    actual. A project's budget is its planned hours at the rate card's rates plus 5-25 % headroom, so the
    backlog (contracted minus delivered) stays positive through the demo months. `key` and `count` give an
    acquired entity its own external ids (`PRJ-C0001`) and a smaller book."""
    if count is None:
        count = max(12, len(workers) // 8)
        count -= count % len(entities)
    cards = {c.legal_entity_code: c for c in rate_cards}
    by_entity: dict[str, list[SeedProject]] = {e.code: [] for e in entities}
    projects: list[SeedProject] = []
    for i in range(count):
        entity = entities[i % len(entities)]
        entity_accounts = [a for a in accounts if a.currency == entity.currency]
        account = entity_accounts[(i // 3) % len(entity_accounts)]
        billing: BillingType = ("time_and_materials", "time_and_materials", "time_and_materials", "fixed_fee",
                                "mixed")[i % 5]
        start, end = dt.date(2026, 6, 1) + dt.timedelta(days=i % 60), dt.date(2027, 3, 31)
        project = SeedProject(
            external_id=f"PRJ-{key}{i + 1:04d}", name=f"{account.name} — delivery {i + 1}", account_id=account.id,
            legal_entity_code=entity.code, currency=entity.currency, billing_type=billing,
            rate_card_id=cards[entity.code].id, budget=Money(amount=Decimal("0.00"), currency=entity.currency),
            start_date=start, end_date=end, status="closed" if i == CLOSED_PROJECT_INDEX else "active",
            milestones=[], assignments=[])
        projects.append(project)
        by_entity[entity.code].append(project)
    for i, worker in enumerate(workers):
        pool = by_entity[worker.legal_entity_code]
        primary, secondary = pool[(i // 3) % len(pool)], pool[(i // 3 + 1) % len(pool)]
        for project, per_day in ((primary, Decimal("6")), (secondary, Decimal("1.5"))):
            days = sum(1 for _ in _weekdays(project.start_date, project.end_date))
            project.assignments.append(SeedAssignment(worker_id=worker.id, role=worker.role,
                                                      start_date=project.start_date, end_date=project.end_date,
                                                      planned_hours=per_day * days))
    _second(projects, workers)
    for i, project in enumerate(projects):
        rates = {line.role: line.hourly_rate.amount for line in cards[project.legal_entity_code].lines}
        planned_value = sum((a.planned_hours * rates.get(a.role, Decimal(0)) for a in project.assignments), Decimal(0))
        headroom = Decimal("1.05") + Decimal("0.05") * (i % 5)
        project.budget = Money(amount=(planned_value * headroom).quantize(Decimal("0.01")), currency=project.currency)
        if project.billing_type != "time_and_materials":
            share = Decimal("0.25") if project.billing_type == "fixed_fee" else Decimal("0.10")
            project.milestones = [
                BillingMilestone(name=f"Milestone {n}", due_date=due, amount=Money(
                    amount=(project.budget.amount * share).quantize(Decimal("0.01")), currency=project.currency))
                for n, due in enumerate((dt.date(2026, 10, 15), dt.date(2026, 12, 15)), start=1)]
    return projects


def _second(projects: Sequence[SeedProject], workers: Sequence[Worker]) -> None:
    """Staff each `SECONDMENTS` pair's consultant on the other entity's project, when both entities are planned."""
    for lender, borrower in SECONDMENTS:
        staff = [w for w in workers if w.legal_entity_code == lender and w.status == "active"]
        host = next((p for p in projects if p.legal_entity_code == borrower and p.status == "active"
                     and p.billing_type == "time_and_materials"), None)
        if len(staff) < 2 or host is None:
            continue
        worker = staff[1]
        days = sum(1 for _ in _weekdays(host.start_date, host.end_date))
        host.assignments.append(SeedAssignment(worker_id=worker.id, role=worker.role, start_date=host.start_date,
                                               end_date=host.end_date, planned_hours=SECONDED_HOURS * days,
                                               seconded=True))


def _weekdays(start: dt.date, end: dt.date) -> Iterator[dt.date]:
    day = start
    while day <= end:
        if day.weekday() < 5:
            yield day
        day += dt.timedelta(days=1)


def time_entries(projects: Sequence[SeedProject], workers: Sequence[Worker], start: dt.date,
                 end: dt.date) -> Iterator[SeedTimeEntry]:
    """Two entries per worker per weekday in [start, end]: most approved, some still in the workflow."""
    primary: dict[str, tuple[str, str]] = {}
    secondary: dict[str, tuple[str, str]] = {}
    seconded: list[tuple[str, SeedAssignment]] = []
    for project in projects:
        for a in project.assignments:
            if a.seconded:
                seconded.append((project.external_id, a))
                continue
            slot = primary if a.worker_id not in primary else secondary
            slot.setdefault(a.worker_id, (project.external_id, a.role))
    mispriced = projects[MISPRICED_PROJECT_INDEX].external_id if len(projects) > MISPRICED_PROJECT_INDEX else ""
    for w_index, worker in enumerate(workers):
        if worker.id not in primary:
            continue
        first, second = primary[worker.id], secondary.get(worker.id, primary[worker.id])
        for day in _weekdays(start, end):
            d = day.toordinal()
            stamp = day.strftime("%Y%m%d")
            for n, ((project_id, role), hours) in enumerate(((first, Decimal((6, 5.5, 6.5)[(w_index + d) % 3])),
                                                             (second, Decimal((2, 2.5, 1.5)[(w_index + d) % 3])))):
                roll = (w_index * 31 + d * 7 + n) % 100
                status: Literal["draft", "submitted", "approved"] = \
                    "approved" if roll < 97 else ("submitted" if roll < 99 else "draft")
                billable = (w_index + d + n) % 20 != 0  # one entry in twenty is internal time
                # Every fifth day of the mispriced project's primary staff carries the time system's wrong rate.
                rate = Decimal("1.00") if project_id == mispriced and n == 0 and d % 5 == 0 else None
                yield SeedTimeEntry(id=f"TE-{worker.id[2:]}-{stamp}-{n}", worker_id=worker.id,
                                    project_external_id=project_id, date=day, hours=hours.quantize(Decimal("0.1")),
                                    billable=billable, status=status, task=role, billable_rate=rate)
    for project_id, a in seconded:  # an hour a weekday on the other entity's project, approved, billable
        for day in _weekdays(max(start, a.start_date), min(end, a.end_date)):
            yield SeedTimeEntry(id=f"TE-{a.worker_id[2:]}-{day.strftime('%Y%m%d')}-2", worker_id=a.worker_id,
                                project_external_id=project_id, date=day, hours=SECONDED_HOURS, billable=True,
                                status="approved", task=a.role)


def defect_entries(projects: Sequence[SeedProject], workers: Sequence[Worker]) -> list[SeedTimeEntry]:
    """Approved entries that must not post: in a closed period, and dated in the future."""
    worker, project = workers[0], next(p for p in projects if p.legal_entity_code == workers[0].legal_entity_code)
    role = worker.role
    return [
        SeedTimeEntry(id=f"TE-{worker.id[2:]}-20260828-9", worker_id=worker.id, project_external_id=project.external_id,
                      date=dt.date(2026, 8, 28), hours=Decimal("3.0"), billable=True, status="approved", task=role),
        SeedTimeEntry(id=f"TE-{worker.id[2:]}-20261120-9", worker_id=worker.id, project_external_id=project.external_id,
                      date=dt.date(2026, 11, 20), hours=Decimal("4.0"), billable=True, status="approved", task=role),
    ]


TIME_DEFECTS = {
    "project_inactive": f"entries on project index {CLOSED_PROJECT_INDEX} (status closed)",
    "worker_inactive": "entries of terminated workers dated after their termination date (2026-10-16)",
    "rate_card_mismatch": f"entries on project index {MISPRICED_PROJECT_INDEX} whose time-system rate is 1.00",
    "period_closed": "the approved entry dated 2026-08-28 (August is closed)",
    "future_dated": "the approved entry dated 2026-11-20",
}
"""Which seeded entries are wrong on purpose, by the exception reason they must raise."""


# --- expenses ----------------------------------------------------------------------------------------------------

EXPENSE_CATEGORIES = ("Travel", "Lodging", "Meals", "Mileage", "Software")
"""The time system's expense categories; Mileage is unit-priced (miles x `MILEAGE_RATE`), Software is internal."""
MILEAGE_RATE = Decimal("0.70")
RECEIPT_ABOVE = Decimal("75.00")


class SeedExpense(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    worker_id: str
    project_external_id: str
    date: dt.date
    category: str
    amount: Decimal
    currency: str
    billable: bool
    status: Literal["draft", "submitted", "approved", "rejected"]
    has_receipt: bool
    units: Decimal | None = None
    notes: str = ""


def expense_terms(project: SeedProject) -> ExpenseTerms:
    """The demo contracts' expense terms: travel, lodging, meals and mileage are billed, at 10 % markup on time and
    materials, 5 % on mixed and at cost on fixed fee; a receipt above 75.00; lodging capped at 400, meals at 100."""
    markup = {"time_and_materials": Decimal("10"), "mixed": Decimal("5"), "fixed_fee": Decimal("0")}
    cur = project.currency
    return ExpenseTerms(billable_categories=["Travel", "Lodging", "Meals", "Mileage"],
                        markup_percent=markup[project.billing_type],
                        receipt_required_above=Money(amount=RECEIPT_ABOVE, currency=cur),
                        caps={"Lodging": Money(amount=Decimal("400.00"), currency=cur),
                              "Meals": Money(amount=Decimal("100.00"), currency=cur)})


def expenses(projects: Sequence[SeedProject], workers: Sequence[Worker], start: dt.date,
             end: dt.date) -> Iterator[SeedExpense]:
    """One expense per worker per week in [start, end], on the worker's primary project, in its currency.

    Each line is within its contract's terms (a receipt above 75.00, under the caps); categories and amounts cycle
    deterministically, a few are still submitted, and Software is internal (not billable)."""
    primary: dict[str, str] = {}
    for project in projects:
        for a in project.assignments:
            if not a.seconded:
                primary.setdefault(a.worker_id, project.external_id)
    by_id = {p.external_id: p for p in projects}
    for w_index, worker in enumerate(workers):
        project_id = primary.get(worker.id)
        if project_id is None:
            continue
        project = by_id[project_id]
        for day in _weekdays(start, end):
            if day.weekday() != w_index % 5:
                continue
            week = day.toordinal() // 7
            category = EXPENSE_CATEGORIES[(w_index + week) % len(EXPENSE_CATEGORIES)]
            step = Decimal((w_index * 13 + week * 7) % 40)
            units: Decimal | None = None
            if category == "Mileage":
                units = Decimal(20) + step * 2
                amount = (units * MILEAGE_RATE).quantize(Decimal("0.01"))
            else:
                base = {"Travel": Decimal("120"), "Lodging": Decimal("180"), "Meals": Decimal("22"),
                        "Software": Decimal("30")}[category]
                amount = (base + step * (Decimal("4.75") if category != "Meals" else Decimal("1.5"))).quantize(
                    Decimal("0.01"))
            roll = (w_index * 17 + week) % 100
            yield SeedExpense(
                id=f"EX-{worker.id[2:]}-{day.strftime('%Y%m%d')}", worker_id=worker.id, project_external_id=project_id,
                date=day, category=category, amount=amount, currency=project.currency,
                billable=category != "Software", status="approved" if roll < 96 else "submitted",
                has_receipt=amount > RECEIPT_ABOVE or roll % 2 == 0, units=units,
                notes=f"{category} — {project.name}"[:120])


def defect_expenses(projects: Sequence[SeedProject], workers: Sequence[Worker]) -> list[SeedExpense]:
    """Approved expenses that must not post or bill, one per rule (`EXPENSE_DEFECTS`), on the first worker's
    primary project in October, except the closed-period one (August) and the unassigned one (another project).
    A firm too small to hold them (no worker, or no second active project of the worker's entity) has none."""
    if not workers:
        return []
    worker = workers[0]
    mine = next((p for p in projects if any(a.worker_id == worker.id for a in p.assignments)), None)
    if mine is None:
        return []
    other = next((p for p in projects if p.legal_entity_code == mine.legal_entity_code and p.status == "active"
                  and all(a.worker_id != worker.id for a in p.assignments)), None)
    if other is None:
        return []
    cur = mine.currency

    def bad(n: int, day: dt.date, category: str, amount: str, *, receipt: bool = True,
            project: SeedProject = mine) -> SeedExpense:
        return SeedExpense(id=f"EX-{worker.id[2:]}-{day.strftime('%Y%m%d')}-9{n}", worker_id=worker.id,
                           project_external_id=project.external_id, date=day, category=category,
                           amount=Decimal(amount), currency=cur, billable=True, status="approved", has_receipt=receipt)

    return [bad(1, dt.date(2026, 10, 6), "Lodging", "240.00", receipt=False),
            bad(2, dt.date(2026, 10, 7), "Entertainment", "180.00"),
            bad(3, dt.date(2026, 10, 8), "Lodging", "650.00"),
            bad(4, dt.date(2026, 10, 9), "Travel", "95.00", project=other),
            bad(5, dt.date(2026, 8, 27), "Travel", "130.00")]


EXPENSE_DEFECTS = {
    "receipt_missing": "the Lodging expense of 240.00 without a receipt (2026-10-06)",
    "expense_not_billable": "the Entertainment expense marked billable (2026-10-07)",
    "expense_over_cap": "the Lodging expense of 650.00 over the 400.00 cap (2026-10-08)",
    "worker_not_assigned": "the Travel expense on a project the worker is not staffed on (2026-10-09)",
    "period_closed": "the Travel expense dated 2026-08-27 (August is closed)",
}
"""Which seeded expenses are wrong on purpose, by the exception reason they must raise."""
