"""A tiny firm for time-to-bill unit tests: one legal entity, one project, one worker, one rate card."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

import process_apis.time_to_bill.ledger  # noqa: F401  (declares the ledger table)
from contracts.billing import RateCard, RateCardLine
from contracts.common import Money
from contracts.erp import BillingMilestone
from contracts.psa import ExpenseTerms
from contracts.time import Expense, TimeEntry
from foundation.db import create_engine, metadata
from process_apis.time_to_bill.rules import PeriodRef, PlannedWork, ProjectRef, Reference, WorkerRef

__all__ = ["AS_OF", "TERMS", "entry", "expense", "memory_engine", "project", "reference"]

AS_OF = dt.date(2026, 11, 2)
RATE = Decimal("210")


TERMS = ExpenseTerms(billable_categories=["Travel", "Lodging", "Meals", "Mileage"], markup_percent=Decimal("10"),
                     receipt_required_above=Money(amount=Decimal("75.00"), currency="USD"),
                     caps={"Lodging": Money(amount=Decimal("400.00"), currency="USD")})


def project(**changes: Any) -> ProjectRef:
    values: dict[str, Any] = {
        "external_id": "PRJ-A0001", "legal_entity_code": "US01", "legal_entity_id": "LE-US01",
        "customer_id": "CUS-1", "currency": "USD", "status": "active", "billing_type": "time_and_materials",
        "rate_card_id": "RC-US01-2026",
        "milestones": (BillingMilestone(name="Milestone 1", due_date=dt.date(2026, 10, 15),
                                        amount=Money(amount=Decimal("5000.00"), currency="USD")),),
        "expense_terms": TERMS,
    }
    return ProjectRef(**{**values, **changes})


def reference(**changes: Any) -> Reference:
    card = RateCard(id="RC-US01-2026", name="US rates", legal_entity_code="US01", currency="USD",
                    valid_from=dt.date(2026, 1, 1), valid_to=dt.date(2026, 12, 31),
                    lines=[RateCardLine(role="consultant", hourly_rate=Money(amount=RATE, currency="USD"))])
    values: dict[str, Any] = {
        "projects": {"PRJ-A0001": project(), "PRJ-A0002": project(external_id="PRJ-A0002")},
        "rate_cards": {card.id: card},
        "roles": {("PRJ-A0001", "ana@example.com"): "consultant", ("PRJ-A0002", "ana@example.com"): "consultant"},
        "workers": {"ana@example.com": WorkerRef(id="W-00001", email="ana@example.com", status="active",
                                                 hire_date=dt.date(2020, 1, 1))},
        "periods": {("US01", f"2026-{m:02d}"): PeriodRef(is_closed=m <= 8, ar_locked=m <= 8) for m in range(1, 13)},
        "entity_currency": {"US01": "USD"},
        "plans": tuple(PlannedWork(project=p, worker_id="W-00001", start_date=dt.date(2026, 1, 1),
                                   end_date=dt.date(2026, 12, 31), planned_hours=Decimal(1000))
                       for p in ("PRJ-A0001", "PRJ-A0002")),
    }
    return Reference(**{**values, **changes})


def entry(entry_id: str = "TE-1", **changes: Any) -> TimeEntry:
    values: dict[str, Any] = {
        "id": entry_id, "source": "harvest", "user_id": "u1", "user_email": "ana@example.com",
        "project_code": "PRJ-A0001", "date": dt.date(2026, 10, 5), "hours": Decimal("6.5"), "billable": True,
        "status": "approved", "updated_at": dt.datetime(2026, 10, 6, tzinfo=dt.UTC),
    }
    return TimeEntry(**{**values, **changes})


def memory_engine() -> sa.Engine:
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    return engine


def expense(expense_id: str = "EX-1", **changes: Any) -> Expense:
    values: dict[str, Any] = {
        "id": expense_id, "source": "harvest", "user_id": "u1", "user_email": "ana@example.com",
        "project_code": "PRJ-A0001", "date": dt.date(2026, 10, 7), "category": "Travel",
        "amount": Money(amount=Decimal("120.00"), currency="USD"), "billable": True, "status": "approved",
        "updated_at": dt.datetime(2026, 10, 8, tzinfo=dt.UTC), "receipt_url": "https://receipts.example.com/1.pdf",
    }
    return Expense(**{**values, **changes})
