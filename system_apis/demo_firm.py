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
from collections.abc import Collection, Mapping
from decimal import Decimal
from functools import cache

import msgspec

from contracts.billing import RateCard, RateCardLine
from contracts.common import Money
from contracts.crm import Account, Address, Opportunity, OpportunityStage
from contracts.erp import AccountingPeriod, LegalEntity
from contracts.workforce import Worker
from system_apis.demo_delivery import SeedProject, plan_projects

__all__ = ["ACQUIRED_ENTITIES", "ANCHOR_DATE", "BROKEN_OPPORTUNITIES", "HOME_ENTITIES", "LEGAL_ENTITIES", "DemoFirm",
           "build_firm", "demo_firm", "firm_for", "with_worker_ids"]

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

HOME_ENTITIES = ("US01", "UK01", "DE01")
"""The firm's own entities: what a simulator seeds unless told otherwise (`legal_entities=`)."""

ACQUIRED_ENTITIES = [
    LegalEntity(id="LE-CA01", code="CA01", name="Lakeshore Consulting Inc.", country="CA", currency="CAD",
                tax_regime="ca_gst_hst", tax_registration="123456789RT0001", requires_customer_tax_id=False),
    LegalEntity(id="LE-AU01", code="AU01", name="Harbour Advisory Pty Ltd", country="AU", currency="AUD",
                tax_regime="au_gst", tax_registration="ABN 51 824 753 556", requires_customer_tax_id=False),
]
"""Acquired companies that keep their own systems (the connections file routes them to their own accounts)."""
ACQUIRED_BOOK = {"CA01": (6, 8, 24, 6), "AU01": (3, 4, 8, 3)}
"""Per acquired entity: accounts, opportunities, workers, delivering projects (a smaller book than the firm's)."""

ROLES = {  # role -> (USD bill rate, cost rate share)
    "analyst": Decimal("150"),
    "consultant": Decimal("210"),
    "senior_consultant": Decimal("275"),
    "manager": Decimal("340"),
    "director": Decimal("425"),
}
FX = {"USD": Decimal("1"), "GBP": Decimal("0.79"), "EUR": Decimal("0.92"), "CAD": Decimal("1.37"),
      "AUD": Decimal("1.52")}
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
CITY = {"US": ("New York", "10001"), "GB": ("London", "EC1A 1BB"), "DE": ("Berlin", "10115"),
        "CA": ("Toronto", "M5H 2N2"), "AU": ("Sydney", "2000")}

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
    guests: list[Worker] = []
    """Workers another entity employs, seconded onto these projects: a PSA or time account of these entities
    staffs them and captures their time (the project's), an HR account does not hold them."""


def _money(amount: Decimal, currency: str) -> Money:
    return Money(amount=amount.quantize(Decimal("0.01")), currency=currency)


@cache
def demo_firm() -> DemoFirm:
    """The demo firm (240 workers); cached, so treat it as read-only (simulators copy what they keep)."""
    return build_firm(240)


def firm_for(legal_entities: Collection[str], firm: DemoFirm | None = None) -> DemoFirm:
    """The part of `firm` (the demo firm) that belongs to `legal_entities`: what one vendor account holds.

    Accounts go with the entity of their billing country, opportunities with their account (so a
    deliberately broken one naming an unknown entity stays with its customer's CRM), the rest by entity.
    """
    if firm is None:
        return _demo_firm_for(frozenset(legal_entities))
    return _part(firm, frozenset(legal_entities))


def default_accounts(legal_entities: Collection[str]) -> list[tuple[str, ...]]:
    """The default vendor accounts holding `legal_entities`: the home entities share the firm's, each acquired entity
    has its own.

    Demo time and expenses are computed per such account (their patterns cycle by a worker's position in it and
    the deliberate defects sit on its first worker), so an entity moved to another account brings the time and
    expenses it had and no new defects: what the vendor-swap test relies on."""
    accounts: list[tuple[str, ...]] = []
    for entity in legal_entities:
        account = tuple(HOME_ENTITIES) if entity in HOME_ENTITIES else (entity,)
        if account not in accounts:
            accounts.append(account)
    return accounts


def with_worker_ids(firm: DemoFirm, ids: Mapping[str, str]) -> DemoFirm:
    """`firm` with workers known by other ids (old -> new) wherever it names them: what a PSA or ERP account
    holds when the entity's HR account is not the firm's own, whose worker ids name it (`ca01-hr:W-CA01001`)."""
    if not ids:
        return firm
    projects = [msgspec.structs.replace(p, assignments=[
        msgspec.structs.replace(a, worker_id=ids.get(a.worker_id, a.worker_id)) for a in p.assignments])
        for p in firm.projects]
    workers = [msgspec.structs.replace(w, id=ids.get(w.id, w.id)) for w in firm.workers]
    guests = [msgspec.structs.replace(w, id=ids.get(w.id, w.id)) for w in firm.guests]
    return msgspec.structs.replace(firm, workers=workers, projects=projects, guests=guests)


@cache
def _demo_firm_for(legal_entities: frozenset[str]) -> DemoFirm:
    return _part(demo_firm(), legal_entities)


def _part(firm: DemoFirm, legal_entities: frozenset[str]) -> DemoFirm:
    entities = [e for e in firm.legal_entities if e.code in legal_entities]
    codes = {e.code for e in entities}
    ids = {e.id for e in entities}
    countries = {e.country for e in entities}
    accounts = [a for a in firm.accounts if (a.billing_address.country or "US") in countries]
    kept = {a.id for a in accounts}
    projects = [p for p in firm.projects if p.legal_entity_code in codes]
    seconded = {a.worker_id for p in projects for a in p.assignments if a.seconded}
    return DemoFirm(
        legal_entities=entities, accounts=accounts,
        opportunities=[o for o in firm.opportunities if o.account_id in kept],
        workers=[w for w in firm.workers if w.legal_entity_code in codes],
        rate_cards=[c for c in firm.rate_cards if c.legal_entity_code in codes],
        accounting_periods=[p for p in firm.accounting_periods if p.legal_entity_id in ids],
        projects=projects,
        guests=[w for w in [*firm.workers, *firm.guests] if w.id in seconded and w.legal_entity_code not in codes])


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
    projects = plan_projects(entities, accounts, workers, rate_cards)
    for le in ACQUIRED_ENTITIES:
        book = _acquired(le)
        accounts += book.accounts
        opportunities += book.opportunities
        workers += book.workers
        rate_cards += book.rate_cards
        periods += book.accounting_periods
        projects += book.projects
    return DemoFirm(legal_entities=[*entities, *ACQUIRED_ENTITIES], accounts=accounts, opportunities=opportunities,
                    workers=workers, rate_cards=rate_cards, accounting_periods=periods, projects=projects)


def _acquired(le: LegalEntity) -> DemoFirm:
    """An acquired entity's own book, generated like the firm's (its own random stream, its own seed keys:
    `ACC-CA01-01`, `OPP-CA01-01`, `W-CA01001`, `PRJ-C0001`), so the firm's own records stay as they were."""
    rng = random.Random(f"2026-{le.code}")
    n_accounts, n_opportunities, n_workers, n_projects = ACQUIRED_BOOK[le.code]
    city, postcode = CITY[le.country]
    accounts = [Account(
        id=f"ACC-{le.code}-{i + 1:02d}", external_id=f"ACC-{le.code}-{i + 1:02d}",
        name=f"{NAMES_A[(i * 3 + 5) % len(NAMES_A)]} {le.country} {NAMES_B[i % len(NAMES_B)]}",
        billing_address=Address(street=f"{rng.randint(1, 250)} {('Bay', 'George')[le.code == 'AU01']} Street",
                                city=city, postal_code=postcode, country=le.country),
        currency=le.currency, industry=INDUSTRIES[i % len(INDUSTRIES)],
        tax_id=f"{rng.randint(100000000, 999999999)}RT0001" if le.country == "CA" else
        f"{rng.randint(10**10, 10**11 - 1)}") for i in range(n_accounts)]
    stages: list[OpportunityStage] = ["prospecting", "qualification", "proposal", "negotiation"]
    opportunities: list[Opportunity] = []
    for i in range(n_opportunities):
        account = accounts[i % n_accounts]
        won = i % 2 == 0
        stage: OpportunityStage = "closed_won" if won else stages[i % 4]
        close = ANCHOR_DATE - dt.timedelta(days=rng.randint(1, 40)) if won else \
            ANCHOR_DATE + dt.timedelta(days=rng.randint(10, 120))
        start = close + dt.timedelta(days=14)
        opportunities.append(Opportunity(
            id=f"OPP-{le.code}-{i + 1:02d}",
            name=f"{account.name} — {PRACTICES[i % 4].replace('_', ' ').title()} 2026", account_id=account.id,
            stage=stage, is_won=won, amount=_money(Decimal(rng.randrange(40_000, 400_000, 5_000)) * FX[le.currency],
                                                   le.currency),
            close_date=close, legal_entity_code=le.code, project_template=TEMPLATES[i % 3],
            practice=PRACTICES[i % 4], start_date=start, end_date=start + dt.timedelta(days=rng.choice([90, 120]))))
    role_names = list(ROLES)
    workers: list[Worker] = []
    for i in range(n_workers):
        role = role_names[min(4, int(rng.random() ** 1.6 * 5))]
        first, last = FIRST[(i + 7) % 20], LAST[(i * 3 + 1) % 20]
        workers.append(Worker(
            id=f"W-{le.code}{i + 1:03d}", name=f"{first} {last}",
            email=f"{first.lower()}.{last.lower()}.{le.code.lower()}{i + 1}@meridian.example",
            legal_entity_code=le.code, role=role, practice=PRACTICES[i % 4], cost_center=f"CC-{le.code}-{i % 2 + 1}",
            status="active", cost_rate=_money(ROLES[role] * FX[le.currency] * Decimal("0.42"), le.currency),
            hire_date=ANCHOR_DATE - dt.timedelta(days=rng.randint(60, 3000))))
    card = RateCard(id=f"RC-{le.code}-2026", name=f"{le.code} standard rates 2026", legal_entity_code=le.code,
                    currency=le.currency, valid_from=dt.date(2026, 1, 1), valid_to=dt.date(2026, 12, 31),
                    lines=[RateCardLine(role=r, hourly_rate=_money(rate * FX[le.currency], le.currency))
                           for r, rate in ROLES.items()])
    periods = [AccountingPeriod(
        id=f"AP-{le.code}-2026-{month:02d}", name=dt.date(2026, month, 1).strftime("%b %Y"),
        start_date=dt.date(2026, month, 1),
        end_date=dt.date(2026 + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1),
        is_closed=month < 9, ar_locked=month < 9, legal_entity_id=le.id) for month in range(1, 13)]
    projects = plan_projects([le], accounts, workers, [card], key=le.code[:2], count=n_projects)
    return DemoFirm(legal_entities=[le], accounts=accounts, opportunities=opportunities, workers=workers,
                    rate_cards=[card], accounting_periods=periods, projects=projects)
