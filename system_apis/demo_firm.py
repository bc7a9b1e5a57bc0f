"""The demo firm every simulator is seeded with: one deterministic, realistic dataset.

Records use canonical contract types with seed keys as ids (`ACC-0001`, `OPP-0001`,
`W-00001`, `LE-US01`); each simulator loads them in its own wire format and gives
them vendor ids, keeping the seed key as the external id. A few closed-won
opportunities are deliberately broken (missing tax id, unknown legal entity,
currency mismatch) so the exception queue and replay have something to show.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from functools import cache

import msgspec

from contracts.billing import RateCard, RateCardLine
from contracts.common import Money
from contracts.crm import Account, Address, Opportunity, OpportunityStage
from contracts.erp import AccountingPeriod, LegalEntity
from contracts.workforce import Worker
from system_apis.demo_delivery import SeedProject, plan_projects

__all__ = ["ANCHOR_DATE", "BROKEN_OPPORTUNITIES", "LEGAL_ENTITIES", "DemoFirm", "build_firm", "demo_firm"]

ANCHOR_DATE = dt.date(2026, 11, 2)
"""The firm's 'today' for seeded dates, fixed so every run seeds the same firm."""

LEGAL_ENTITIES = [
    LegalEntity(id="LE-US01", code="US01", name="Meridian Advisory Inc.", country="US", currency="USD",
                tax_regime="us_sales_tax", tax_registration="EIN 84-1234567", requires_customer_tax_id=False),
    LegalEntity(id="LE-UK01", code="UK01", name="Meridian Advisory Ltd", country="GB", currency="GBP",
                tax_regime="uk_vat", tax_registration="GB123456789", requires_customer_tax_id=True),
    LegalEntity(id="LE-DE01", code="DE01", name="Meridian Advisory GmbH", country="DE", currency="EUR",
                tax_regime="eu_vat", tax_registration="DE811234567", requires_customer_tax_id=True),
]

ROLES = {  # role -> (USD bill rate, cost rate share)
    "analyst": Decimal("150"),
    "consultant": Decimal("210"),
    "senior_consultant": Decimal("275"),
    "manager": Decimal("340"),
    "director": Decimal("425"),
}
FX = {"USD": Decimal("1"), "GBP": Decimal("0.79"), "EUR": Decimal("0.92")}
PRACTICES = ["strategy", "technology", "finance_transformation", "data_analytics"]
TEMPLATES = ["tm_standard", "fixed_fee_milestones", "mixed_retainer"]
INDUSTRIES = ["Manufacturing", "Retail", "Healthcare", "Financial Services", "Energy", "Media", "Logistics"]
NAMES_A = ["Northwind", "Contoso", "Fabrikam", "Tailspin", "Litware", "Adatum", "Proseware", "Wingtip",
           "Lucerne", "Coho", "Alpine", "Woodgrove", "Margie", "Trey", "Humongous", "Blue Yonder",
           "Fourth Coffee", "Graphic Design", "Southridge", "Wide World"]
NAMES_B = ["Holdings", "Group", "Industries"]
FIRST = ["Ana", "Ben", "Chloe", "Dev", "Elif", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kira", "Liam",
         "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sami", "Tara"]
LAST = ["Ahmed", "Becker", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Hughes", "Ito", "Jensen",
        "Kowalski", "Lopez", "Müller", "Novak", "Okafor", "Patel", "Rossi", "Schmidt", "Tanaka", "Weber"]
CITY = {"US": ("New York", "10001"), "GB": ("London", "EC1A 1BB"), "DE": ("Berlin", "10115")}

BROKEN_OPPORTUNITIES = {
    "OPP-0003": "missing_tax_id",
    "OPP-0006": "unknown_legal_entity",
    "OPP-0009": "currency_mismatch",
}
"""Closed-won opportunities seeded with a business-rule defect, and the reason each raises."""


class DemoFirm(msgspec.Struct, kw_only=True):
    legal_entities: list[LegalEntity]
    accounts: list[Account]
    opportunities: list[Opportunity]
    workers: list[Worker]
    rate_cards: list[RateCard]
    accounting_periods: list[AccountingPeriod]
    projects: list[SeedProject]
    """Projects already delivering (provisioned before the demo starts), with their staffing."""


def _money(amount: Decimal, currency: str) -> Money:
    return Money(amount=amount.quantize(Decimal("0.01")), currency=currency)


@cache
def demo_firm() -> DemoFirm:
    """The demo firm (240 workers); cached, so treat it as read-only (simulators copy what they keep)."""
    return build_firm(240)


@cache
def build_firm(worker_count: int) -> DemoFirm:
    """A firm of `worker_count` workers; the benchmark builds a 10,000-worker one."""
    rng = random.Random(2026)
    entities = LEGAL_ENTITIES
    accounts: list[Account] = []
    for i in range(48):
        le = entities[i % 3]
        name = f"{NAMES_A[i % len(NAMES_A)]} {NAMES_B[i // len(NAMES_A)]}"
        city, postcode = CITY[le.country]
        tax_id = {"US": f"{rng.randint(10, 99)}-{rng.randint(1000000, 9999999)}",
                  "GB": f"GB{rng.randint(100000000, 999999999)}",
                  "DE": f"DE{rng.randint(100000000, 999999999)}"}[le.country]
        accounts.append(Account(
            id=f"ACC-{i + 1:04d}", external_id=f"ACC-{i + 1:04d}", name=name,
            billing_address=Address(street=f"{rng.randint(1, 250)} Market Street", city=city,
                                    postal_code=postcode, country=le.country),
            currency=le.currency, tax_id=tax_id, industry=INDUSTRIES[i % len(INDUSTRIES)],
        ))
    # OPP-0003's account is a UK customer without a VAT number.
    accounts[1].tax_id = None

    stages: list[OpportunityStage] = ["prospecting", "qualification", "proposal", "negotiation"]
    opportunities: list[Opportunity] = []
    for i in range(60):
        key = f"OPP-{i + 1:04d}"
        account = accounts[(i * 7 + 1) % len(accounts)] if i else accounts[0]
        if key == "OPP-0003":
            account = accounts[1]
        le = entities[[e.country for e in entities].index(account.billing_address.country or "US")]
        won = i % 3 == 2 or i < 2  # 22 closed-won, 34 open, 4 lost
        stage: OpportunityStage = "closed_won" if won else ("closed_lost" if i % 11 == 10 else stages[i % 4])
        amount = Decimal(rng.randrange(60_000, 900_000, 5_000)) * FX[le.currency]
        close = ANCHOR_DATE - dt.timedelta(days=rng.randint(1, 40)) if won else \
            ANCHOR_DATE + dt.timedelta(days=rng.randint(10, 120))
        start = close + dt.timedelta(days=14)
        opportunities.append(Opportunity(
            id=key, name=f"{account.name} — {PRACTICES[i % 4].replace('_', ' ').title()} {2026 + i % 2}",
            account_id=account.id, stage=stage, is_won=stage == "closed_won",
            amount=_money(amount, le.currency), close_date=close, legal_entity_code=le.code,
            project_template=TEMPLATES[i % 3], practice=PRACTICES[i % 4],
            start_date=start, end_date=start + dt.timedelta(days=rng.choice([90, 120, 180])),
        ))
    opportunities[5].legal_entity_code = "FR01"  # OPP-0006: no such legal entity
    opportunities[8].amount = _money(opportunities[8].amount.amount, "CHF")  # OPP-0009

    workers: list[Worker] = []
    role_names = list(ROLES)
    for i in range(worker_count):
        le = entities[i % 3]
        role = role_names[min(4, int(rng.random() ** 1.6 * 5))]
        cost = ROLES[role] * FX[le.currency] * Decimal("0.42")
        first, last = FIRST[i % 20], LAST[(i // 20 + i) % 20]
        workers.append(Worker(
            id=f"W-{i + 1:05d}", name=f"{first} {last}",
            email=f"{first.lower()}.{last.lower()}{i + 1}@meridian.example",
            legal_entity_code=le.code, role=role, practice=PRACTICES[i % 4], cost_center=f"CC-{le.code}-{i % 4 + 1}",
            status="terminated" if i % 97 == 96 else "active", cost_rate=_money(cost, le.currency),
            hire_date=ANCHOR_DATE - dt.timedelta(days=rng.randint(60, 3000)),
            termination_date=dt.date(2026, 10, 16) if i % 97 == 96 else None,
        ))

    rate_cards = [
        RateCard(id=f"RC-{le.code}-2026", name=f"{le.code} standard rates 2026", legal_entity_code=le.code,
                 currency=le.currency, valid_from=dt.date(2026, 1, 1), valid_to=dt.date(2026, 12, 31),
                 lines=[RateCardLine(role=r, hourly_rate=_money(rate * FX[le.currency], le.currency))
                        for r, rate in ROLES.items()])
        for le in entities
    ]

    periods: list[AccountingPeriod] = []
    for le in entities:
        for month in range(1, 13):
            start = dt.date(2026, month, 1)
            end = (dt.date(2026 + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1))
            periods.append(AccountingPeriod(
                id=f"AP-{le.code}-2026-{month:02d}", name=start.strftime("%b %Y"), start_date=start, end_date=end,
                is_closed=end < dt.date(2026, 9, 1), ar_locked=end < dt.date(2026, 9, 1), legal_entity_id=le.id,
            ))
    return DemoFirm(legal_entities=entities, accounts=accounts, opportunities=opportunities, workers=workers,
                    rate_cards=rate_cards, accounting_periods=periods,
                    projects=plan_projects(entities, accounts, workers, rate_cards))
