"""Project templates: how a won deal's value becomes tasks, milestones and billing terms.

Templates belong to the process (they are delivery policy, not vendor data), so the
same template yields the same ERP project and PSA workspace whatever the vendors.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

import msgspec

from contracts.common import Money
from contracts.erp import BillingMilestone, BillingSchedule, ProjectTask
from contracts.psa import PsaMilestone

__all__ = ["TEMPLATES", "Template"]

BLENDED_RATE = Decimal("250")  # per hour in the deal currency, to turn value into planned hours
CENT = Decimal("0.01")


class Template(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    billing_type: Literal["time_and_materials", "fixed_fee", "mixed"]
    tasks: tuple[tuple[str, Decimal], ...]
    """(task name, share of planned hours)."""
    milestones: tuple[tuple[str, Decimal, Decimal], ...] = ()
    """(milestone name, position in the schedule 0..1, share of the deal value)."""
    payment_terms_days: int = 30

    def plan_tasks(self, value: Money) -> list[ProjectTask]:
        hours = value.amount / BLENDED_RATE
        return [ProjectTask(name=name, planned_hours=str((hours * share).quantize(Decimal("0.5"))))
                for name, share in self.tasks]

    def plan_milestones(self, value: Money, start: dt.date, end: dt.date) -> list[BillingMilestone]:
        """Milestone amounts add up to the deal value exactly: the last one takes the rounding."""
        span = (end - start).days
        out: list[BillingMilestone] = []
        remaining = value.amount
        for i, (name, position, share) in enumerate(self.milestones):
            last = i == len(self.milestones) - 1
            amount = remaining if last else (value.amount * share).quantize(CENT, ROUND_HALF_UP)
            remaining -= amount
            due = start + dt.timedelta(days=int(span * position))
            out.append(BillingMilestone(name=name, due_date=due, amount=Money(amount=amount,
                                                                            currency=value.currency)))
        return out

    def billing(self, value: Money, start: dt.date, end: dt.date) -> BillingSchedule:
        return BillingSchedule(billing_type=self.billing_type, milestones=self.plan_milestones(value, start, end),
                               payment_terms_days=self.payment_terms_days)

    def psa_milestones(self, value: Money, start: dt.date, end: dt.date) -> list[PsaMilestone]:
        return [PsaMilestone(name=m.name, due_date=m.due_date, amount=m.amount)
                for m in self.plan_milestones(value, start, end)]


TEMPLATES: dict[str, Template] = {
    t.name: t for t in (
        Template(name="tm_standard", billing_type="time_and_materials",
                 tasks=(("Discovery", Decimal("0.15")), ("Delivery", Decimal("0.70")), ("Handover", Decimal("0.15")))),
        Template(name="fixed_fee_milestones", billing_type="fixed_fee",
                 tasks=(("Design", Decimal("0.30")), ("Build", Decimal("0.50")), ("Acceptance", Decimal("0.20"))),
                 milestones=(("Kick-off", Decimal("0"), Decimal("0.20")), ("Mid-point review", Decimal("0.5"),
                             Decimal("0.40")), ("Final acceptance", Decimal("1"), Decimal("0.40"))),
                 payment_terms_days=45),
        Template(name="mixed_retainer", billing_type="mixed",
                 tasks=(("Advisory retainer", Decimal("0.40")), ("Implementation", Decimal("0.60"))),
                 milestones=(("Retainer fee", Decimal("0"), Decimal("0.40")),)),
    )
}
