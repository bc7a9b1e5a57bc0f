"""Enrichment: the reference data validation and the billing facts need, read once per run from the system APIs.

Project (ERP job: legal entity, customer, status, billing schedule), contract (PSA
workspace: billing terms and rate card id), rate cards and each worker's role on a
project (PSA), legal entities and accounting periods (ERP), worker status (HR). A few
paged reads per run, never one per entry; per-entry work is then dictionary lookups.
The same reads also carry what the billing facts (`facts.py`) need: each worker's practice
and cost rate (HR), assignments' planned hours and each workspace's budget (PSA).
"""

from __future__ import annotations

import asyncio

from contracts.currency import ExchangeRate
from contracts.erp import AccountingPeriod, LegalEntity
from contracts.problems import ProblemError
from contracts.time import Expense
from process_apis._internal.system_clients import ErpApi, HrApi, PsaApi, TransientFailure
from process_apis.exchange_rates import RateBook
from process_apis.time_to_bill.rules import PeriodRef, PlannedWork, ProjectRef, Reference, WorkerRef, period_of

__all__ = ["expense_rates", "load_reference", "periods_by_entity"]


def periods_by_entity(periods: list[AccountingPeriod],
                      entities: list[LegalEntity]) -> dict[tuple[str, str], PeriodRef]:
    """(legal entity code, YYYY-MM) -> period state; a period without an entity applies to all of them."""
    code_of = {e.id: e.code for e in entities}
    out: dict[tuple[str, str], PeriodRef] = {}
    for p in sorted(periods, key=lambda p: p.legal_entity_id is not None):  # entity-specific rows win
        ref = PeriodRef(is_closed=p.is_closed, ar_locked=p.ar_locked)
        codes = [code_of[p.legal_entity_id]] if p.legal_entity_id in code_of else \
            ([] if p.legal_entity_id else list(code_of.values()))
        for code in codes:
            out[(code, period_of(p.start_date))] = ref
    return out


async def load_reference(erp: ErpApi, psa: PsaApi, hr: HrApi, legal_entity: str | None = None) -> Reference:
    """What validation and invoicing look up. With `legal_entity` the ERP is read at that entity's account only,
    so a run for one entity does not fail because another entity's ERP account is down or refuses us."""
    entities, periods, erp_projects, psa_projects = await asyncio.gather(
        erp.legal_entities(legal_entity), erp.accounting_periods(legal_entity), erp.projects(legal_entity),
        psa.projects())
    cards, assignments, workers = await asyncio.gather(psa.all_rate_cards(), psa.assignments(), hr.workers())
    code_of = {e.id: e.code for e in entities}
    contracts = {p.external_id: p for p in psa_projects}
    projects: dict[str, ProjectRef] = {}
    for p in erp_projects:
        contract = contracts.get(p.external_id)
        billing = p.billing.billing_type if p.billing else (contract.billing_terms if contract else
                                                            "time_and_materials")
        projects[p.external_id] = ProjectRef(
            external_id=p.external_id, legal_entity_code=code_of.get(p.legal_entity_id, p.legal_entity_id),
            legal_entity_id=p.legal_entity_id, customer_id=p.customer_id, currency=p.currency, status=p.status,
            billing_type=billing, rate_card_id=contract.rate_card_id if contract else None,
            milestones=tuple(p.billing.milestones) if p.billing else (),
            budget=contract.budget.amount if contract and contract.budget.currency == p.currency else None,
            expense_terms=contract.expense_terms if contract else None)
    id_of = {w.email.lower(): w.id for w in workers}
    plans = tuple(PlannedWork(project=a.project_external_id, worker_id=a.worker_id or id_of.get(a.worker_email.lower(),
                                                                                            a.worker_email),
                              start_date=a.start_date, end_date=a.end_date, planned_hours=a.planned_hours)
                  for a in assignments)
    return Reference(
        projects=projects, rate_cards={c.id: c for c in cards},
        roles={(a.project_external_id, a.worker_email.lower()): a.role for a in assignments},
        workers={w.email.lower(): WorkerRef(id=w.id, email=w.email, status=w.status, hire_date=w.hire_date,
                                            termination_date=w.termination_date, legal_entity_code=w.legal_entity_code,
                                            practice=w.practice, cost_rate=w.cost_rate.amount,
                                            cost_currency=w.cost_rate.currency) for w in workers},
        periods=periods_by_entity(periods, entities), entity_currency={e.code: e.currency for e in entities},
        entity_ids={e.code: e.id for e in entities}, plans=plans)


async def expense_rates(expenses: list[Expense], ref: Reference, book: RateBook) -> dict[str, ExchangeRate | None]:
    """The conversion rate of each expense spent in another currency than its project's (None: there is none).

    From the entity's ERP, else the configured table, cached per day (`exchange_rates.RateBook`); a rate
    source that cannot answer now fails the step for a retry rather than holding the expense as unconvertible.
    """
    rates: dict[str, ExchangeRate | None] = {}
    for x in expenses:
        project = ref.projects.get(x.project_code)
        if project is None or x.amount.currency == project.currency:
            continue
        try:
            rates[x.id] = await book.rate(project.legal_entity_code, x.amount.currency, project.currency, x.date)
        except ProblemError as exc:
            if exc.problem.status == 503:
                raise TransientFailure(str(exc)) from exc
            rates[x.id] = None
    return rates
