"""Seeding the org's expense side from the demo firm, in Certinia's shapes: contract terms, rates, expenses, receipts.

- every project carries its contract's expense terms (`demo_delivery.expense_terms`) as the custom
  fields and per-category ``pse__Expense_Limit_Rate__c`` caps `_expense_mapping` reads;
- a region-wide mileage rate (``pse__Expense_Limit_Rate__c``, Auto Mileage, pse__Is_Rate__c, per
  Mile) per currency the entity's projects use, applied to every mileage line;
- when time is seeded, `demo_delivery.expenses` for the period plus `defect_expenses`, each in an
  expense report of its own (every Certinia expense belongs to one) with the report's status, and
  a receipt File (ContentVersion published to the expense) where the seed has one; a defect without
  a receipt is a declared lost receipt.

`demo_delivery.expenses` and `defect_expenses` depend on the workers and projects they are given
(the pattern cycles by a worker's position; the defects sit on the first worker), so an entity's
expenses are computed on the part of the firm its default account holds — the home entities
together (one time account), an acquired entity alone — whichever account this org is: an entity
moved here from another account brings the expenses it had there and no new defects (what the
vendor-swap test relies on), and CA01 holds exactly what the shared journey test computes for it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from decimal import Decimal

from system_apis.certinia._expense_mapping import EXPENSE_STATUS_TO, expense_type, limit_fields, terms_fields
from system_apis.certinia.simulator._org import Org
from system_apis.demo_delivery import MILEAGE_RATE, SeedExpense, SeedProject, defect_expenses, expense_terms, expenses
from system_apis.demo_firm import DemoFirm, default_accounts, firm_for

__all__ = ["seed_expenses", "seed_terms"]


def seed_terms(org: Org, project: SeedProject, project_id: str) -> None:
    """The project's contract expense terms: custom fields on pse__Proj__c, a limit record per capped category."""
    terms = expense_terms(project)
    org.update("pse__Proj__c", org.tables["pse__Proj__c"][project_id], terms_fields(terms))
    for category, cap in terms.caps.items():
        org.insert("pse__Expense_Limit_Rate__c", {"Name": f"{project.external_id} {category} cap"[:80],
                                                  **limit_fields(project_id, category, cap)})


def seed_expenses(org: Org, firm: DemoFirm, entities: Collection[str], period: tuple[dt.date, dt.date],
                  regions: Mapping[str, str], resources: Mapping[str, str], projects: Mapping[str, str],
                  assignments: Mapping[tuple[str, str], tuple[str, Decimal | None]]) -> None:
    entity_of = {p.external_id: p.legal_entity_code for p in firm.projects}
    rates: dict[tuple[str, str], str] = {}
    seeds: list[SeedExpense] = []
    lost: set[str] = set()
    for account in default_accounts(entities):
        part = firm_for(account, firm)
        defects = defect_expenses(part.projects, part.workers)
        lost |= {e.id for e in defects if not e.has_receipt}
        seeds += [*expenses(part.projects, part.workers, *period), *defects]
    for seed in seeds:
        if seed.project_external_id not in projects or seed.worker_id not in resources:
            continue
        status = EXPENSE_STATUS_TO[seed.status]
        approved = seed.status == "approved"
        report = org.insert("pse__Expense_Report__c", {
            "Name": f"{seed.worker_id} {seed.date.isoformat()}", "pse__Resource__c": resources[seed.worker_id],
            "pse__Project__c": projects[seed.project_external_id], "pse__Status__c": status,
            "pse__Approved__c": approved, "CurrencyIsoCode": seed.currency})
        fields = {
            "pse__Expense_Report__c": report, "pse__Project__c": projects[seed.project_external_id],
            "pse__Resource__c": resources[seed.worker_id],
            "pse__Assignment__c": (assignments.get((seed.project_external_id, seed.worker_id)) or (None, None))[0],
            "pse__Expense_Date__c": seed.date.isoformat(), "pse__Type__c": expense_type(seed.category),
            "pse__Amount__c": seed.amount, "CurrencyIsoCode": seed.currency, "pse__Billable__c": seed.billable,
            "pse__Billed__c": False, "pse__Status__c": status, "pse__Approved__c": approved,
            "pse__Lost_Receipt__c": seed.id in lost, "pse__Notes__c": seed.notes or None}
        if seed.units is not None:
            region = regions[entity_of[seed.project_external_id]]
            if (region, seed.currency) not in rates:
                rates[region, seed.currency] = org.insert("pse__Expense_Limit_Rate__c", {
                    "Name": f"Auto Mileage {seed.currency}", "pse__Region__c": region,
                    "pse__Type__c": expense_type("Mileage"), "pse__Amount__c": MILEAGE_RATE, "pse__Is_Rate__c": True,
                    "pse__Is_Active__c": True, "pse__Cascading__c": True, "pse__Rate_Unit__c": "Mile",
                    "CurrencyIsoCode": seed.currency})
            fields |= {"pse__Distance__c": seed.units, "pse__Rate_Unit__c": "Mile",
                       "pse__Applied_Expense_Rate__c": rates[region, seed.currency]}
        expense = org.insert("pse__Expense__c", fields)
        if seed.has_receipt:
            org.insert("ContentVersion", {"Title": f"Receipt {seed.id}", "PathOnClient": f"{seed.id}.pdf",
                                          "VersionData": b"%PDF-1.4\n% receipt " + seed.id.encode() + b"\n%%EOF\n",
                                          "FirstPublishLocationId": expense})
