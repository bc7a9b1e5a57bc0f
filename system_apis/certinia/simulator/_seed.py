"""Seeding the Certinia org from the demo firm, in Certinia's own shapes, for some legal entities only.

Per legal entity: a pse__Region__c (External_Id__c = the entity code), the entity's rate card as
one pse__Rate_Card__c per role, its projects (pse__Proj__c with an approved customer-PO
pse__Budget__c, milestones), the client accounts, its workers as resource Contacts with
practices, and one pse__Assignment__c (+ pse__Schedule__c) per staffed worker; each project's
contract expense terms (`_seed_expenses`). Time is seeded only when a period is asked for: per
resource, project, week (Monday start), status and billability one pse__Timecard_Header__c
carrying the daily hours, and the period's expenses with their reports and receipts.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection
from decimal import Decimal

from contracts.time import TimeEntryStatus
from system_apis.certinia.mapping import DAYS, EXTERNAL_ID_FIELD, STATUS_TO, role_name
from system_apis.certinia.simulator._org import Org
from system_apis.certinia.simulator._seed_expenses import seed_expenses, seed_terms
from system_apis.demo_delivery import defect_entries, time_entries
from system_apis.demo_firm import DemoFirm, firm_for

__all__ = ["seed_firm"]

_BILLING = {"time_and_materials": "Time and Materials", "fixed_fee": "Fixed Price", "mixed": "Mixed"}


def seed_firm(org: Org, firm: DemoFirm, entities: Collection[str],
              time_period: tuple[dt.date, dt.date] | None) -> None:
    regions = {e.code: org.insert("pse__Region__c", {"Name": e.name, EXTERNAL_ID_FIELD: e.code,
                                                     "CurrencyIsoCode": e.currency})
               for e in firm.legal_entities if e.code in entities}
    if not regions:
        return
    rates: dict[tuple[str, str], Decimal] = {}
    for card in firm.rate_cards:
        if card.legal_entity_code not in regions:
            continue
        for line in card.lines:
            org.insert("pse__Rate_Card__c", {
                "Name": f"{card.name} - {role_name(line.role)}", "Rate_Card_Code__c": card.id,
                "pse__Role__c": role_name(line.role), "pse__Suggested_Bill_Rate__c": line.hourly_rate.amount,
                "pse__Start_Date__c": card.valid_from.isoformat(),
                "pse__End_Date__c": card.valid_to.isoformat() if card.valid_to else None,
                "pse__Region__c": regions[card.legal_entity_code], "CurrencyIsoCode": card.currency})
            rates[card.id, line.role] = line.hourly_rate.amount
    practices: dict[str, str] = {}
    resources: dict[str, str] = {}
    seconded = {w.id for w in firm_for(regions, firm).guests}  # staffed here, employed elsewhere: a resource too
    for worker in firm.workers:
        if worker.legal_entity_code not in regions and worker.id not in seconded:
            continue
        if worker.practice not in practices:
            practices[worker.practice] = org.insert("pse__Practice__c", {"Name": worker.practice,
                                                                         EXTERNAL_ID_FIELD: worker.practice})
        first, _, last = worker.name.rpartition(" ")
        resources[worker.id] = org.insert("Contact", {
            "FirstName": first or None, "LastName": last, "Email": worker.email, EXTERNAL_ID_FIELD: worker.id,
            "pse__Is_Resource__c": True, "pse__Is_Resource_Active__c": worker.status != "terminated",
            "pse__Resource_Role__c": role_name(worker.role), "pse__Practice__c": practices[worker.practice],
            "pse__Default_Cost_Rate__c": worker.cost_rate.amount, "CurrencyIsoCode": worker.cost_rate.currency})
    accounts = {a.id: a for a in firm.accounts}
    account_ids: dict[str, str] = {}
    projects: dict[str, str] = {}
    assignments: dict[tuple[str, str], tuple[str, Decimal | None]] = {}
    for project in firm.projects:
        if project.legal_entity_code not in regions:
            continue
        account = accounts.get(project.account_id)
        if project.account_id not in account_ids:
            name = account.name if account is not None else project.account_id
            account_ids[project.account_id] = org.insert("Account", {"Name": name,
                                                                     EXTERNAL_ID_FIELD: project.account_id})
        closed = project.status == "closed"
        pid = org.insert("pse__Proj__c", {
            "Name": project.name[:80], EXTERNAL_ID_FIELD: project.external_id,
            "pse__Account__c": account_ids[project.account_id], "pse__Stage__c": "Completed" if closed
            else "In Progress", "pse__Is_Active__c": not closed, "pse__Is_Billable__c": True,
            "pse__Billing_Type__c": _BILLING[project.billing_type],
            "pse__Start_Date__c": project.start_date.isoformat(),
            "pse__End_Date__c": project.end_date.isoformat(), "CurrencyIsoCode": project.currency,
            "ERP_Project_Id__c": project.external_id, "Rate_Card_Code__c": project.rate_card_id})
        projects[project.external_id] = pid
        seed_terms(org, project, pid)
        org.insert("pse__Budget__c", {"Name": "Customer PO", EXTERNAL_ID_FIELD: f"{project.external_id}:budget",
                                      "pse__Project__c": pid, "pse__Type__c": "Customer Purchase Order",
                                      "pse__Status__c": "Approved", "pse__Approved__c": True,
                                      "pse__Include_In_Financials__c": True, "pse__Amount__c": project.budget.amount,
                                      "CurrencyIsoCode": project.currency})
        for milestone in project.milestones:
            org.insert("pse__Milestone__c", {"Name": milestone.name, "pse__Project__c": pid,
                                             "pse__Target_Date__c": milestone.due_date.isoformat(),
                                             "pse__Milestone_Amount__c": milestone.amount.amount,
                                             "CurrencyIsoCode": project.currency})
        for a in project.assignments:
            if a.worker_id not in resources:
                continue
            sid = org.insert("pse__Schedule__c", {"pse__Start_Date__c": a.start_date.isoformat(),
                                                  "pse__End_Date__c": a.end_date.isoformat(),
                                                  "pse__Scheduled_Hours__c": a.planned_hours})
            rate = rates.get((project.rate_card_id, a.role))
            aid = org.insert("pse__Assignment__c", {
                "Name": f"{project.external_id} - {a.worker_id}", "pse__Project__c": pid,
                "pse__Resource__c": resources[a.worker_id], "pse__Role__c": role_name(a.role),
                "pse__Bill_Rate__c": rate, "pse__Planned_Hours__c": a.planned_hours, "pse__Schedule__c": sid,
                "CurrencyIsoCode": project.currency})
            assignments.setdefault((project.external_id, a.worker_id), (aid, rate))
    if time_period is not None:
        _seed_time(org, firm, time_period, resources, projects, assignments)
        seed_expenses(org, firm, entities, time_period, regions, resources, projects, assignments)


def _seed_time(org: Org, firm: DemoFirm, period: tuple[dt.date, dt.date], resources: dict[str, str],
               projects: dict[str, str], assignments: dict[tuple[str, str], tuple[str, Decimal | None]]) -> None:
    currency = {p.external_id: p.currency for p in firm.projects}
    weeks: dict[tuple[str, str, dt.date, TimeEntryStatus, bool, Decimal | None], dict[dt.date, Decimal]] = \
        defaultdict(dict)
    for entry in [*time_entries(firm.projects, firm.workers, *period), *defect_entries(firm.projects, firm.workers)]:
        if entry.project_external_id not in projects or entry.worker_id not in resources:
            continue
        monday = entry.date - dt.timedelta(days=entry.date.weekday())
        key = (entry.project_external_id, entry.worker_id, monday, entry.status, entry.billable, entry.billable_rate)
        days = weeks[key]
        days[entry.date] = days.get(entry.date, Decimal(0)) + entry.hours
    mispriced: dict[tuple[str, str, Decimal], str] = {}
    for (project_code, worker_id, monday, status, billable, wrong_rate), days in weeks.items():
        fields = {f"pse__{DAYS[d.weekday()]}_Hours__c": h for d, h in days.items()}
        assignment = assignments.get((project_code, worker_id))
        if wrong_rate is not None and assignment is not None:
            # The demo's rate defect: time booked on a second assignment whose bill rate is wrong.
            if (project_code, worker_id, wrong_rate) not in mispriced:
                original = org.tables["pse__Assignment__c"][assignment[0]]
                mispriced[project_code, worker_id, wrong_rate] = org.insert("pse__Assignment__c", {
                    **{k: original[k] for k in ("pse__Project__c", "pse__Resource__c", "pse__Role__c",
                                                "pse__Schedule__c", "CurrencyIsoCode")},
                    "Name": f"{original['Name']} (mispriced)", "pse__Bill_Rate__c": wrong_rate,
                    "pse__Planned_Hours__c": 0})
            assignment = (mispriced[project_code, worker_id, wrong_rate], wrong_rate)
        org.insert("pse__Timecard_Header__c", {
            "pse__Project__c": projects[project_code], "pse__Resource__c": resources[worker_id],
            "pse__Assignment__c": assignment[0] if assignment else None, "pse__Start_Date__c": monday.isoformat(),
            "pse__End_Date__c": (monday + dt.timedelta(days=6)).isoformat(), "pse__Status__c": STATUS_TO[status],
            "pse__Billable__c": billable, "pse__Billed__c": False, "CurrencyIsoCode": currency[project_code],
            **fields}, owned=True)
