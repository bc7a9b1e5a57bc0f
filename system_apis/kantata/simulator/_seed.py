"""Seeding the Kantata simulator from the demo firm, in Kantata's own shapes.

Every simulator seeds the same `firm.projects`, so the ERP job, this workspace and the
time system's project agree by external id (PRJ-A0001...). Per project: a workspace
(status Active, or Completed for a closed project) in its client's company group, its
milestones as stories, the legal entity's rate card, one named resource with one
allocation per staffed worker, and the contract's expense terms as workspace custom field
values. Time and expenses are seeded only when a period is asked for: the 10,000-worker benchmark firm
would otherwise hold 440,000 dicts here for nothing.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from typing import Protocol

from system_apis.demo_delivery import defect_entries, expense_terms, time_entries
from system_apis.demo_firm import DemoFirm
from system_apis.kantata._delivery_mapping import (
    HR_SERVICE_NAME,
    LEGAL_ENTITY_MODEL,
    RATE_CARD_MODEL,
    WORKER_MODEL,
    role_name,
)
from system_apis.kantata.mapping import SERVICE_MODEL, SERVICE_NAME, STATUS_KEYS, base_unit, format_price, to_minor
from system_apis.kantata.simulator._custom_fields import ExpenseTermsSeeder
from system_apis.kantata.simulator._delivery import Record
from system_apis.kantata.simulator._expenses import seed_expenses

__all__ = ["seed_firm"]


class _Store(Protocol):
    tables: dict[str, dict[str, Record]]
    me_id: str

    def _insert(self, table: str, record: Record) -> str: ...

    def add_submission(self, wid: str, uid: str, start: str, end: str, entry_ids: list[str], status: str, *,
                       comment: object = None, resolved_at: str | None = None) -> str: ...


def _ref(sim: _Store, subject_type: str, subject_id: str, service_name: str, model: str, ref: str) -> None:
    sim._insert("external_references", {"subject_type": subject_type, "subject_id": subject_id,
                                        "service_name": service_name, "service_model": model,
                                        "service_model_ref": ref, "status": "synced"})


def seed_firm(sim: _Store, firm: DemoFirm, time_period: tuple[dt.date, dt.date] | None,
              parts: list[DemoFirm]) -> None:
    """`firm`: what this account holds; `parts`: the default accounts' parts of the firm its entities come from,
    whose time and expenses it holds (`demo_firm.default_accounts`), each kept to its own workspaces and users."""
    users: dict[str, str] = {}
    for worker in [*firm.workers, *firm.guests]:
        uid = sim._insert("users", {
            "full_name": worker.name, "email_address": worker.email, "headline": role_name(worker.role),
            "disabled": worker.status == "terminated", "role_key": worker.role, "practice": worker.practice,
            "cost_rate_in_cents": to_minor(worker.cost_rate), "cost_rate_currency": worker.cost_rate.currency})
        _ref(sim, "User", uid, HR_SERVICE_NAME, WORKER_MODEL, worker.id)
        users[worker.id] = uid
    roles = {key: sim._insert("roles", {"name": role_name(key)})
             for key in sorted({line.role for card in firm.rate_cards for line in card.lines})}
    cards: dict[str, str] = {}
    rates: dict[tuple[str, str], int] = {}  # (card external id, role key) -> cents, to price seeded time
    for card in firm.rate_cards:
        cid = sim._insert("rate_cards", {"title": card.name, "currency": card.currency,
                                         "currency_base_unit": base_unit(card.currency)})
        _ref(sim, "RateCard", cid, SERVICE_NAME, RATE_CARD_MODEL, card.id)
        _ref(sim, "RateCard", cid, "erp", LEGAL_ENTITY_MODEL, card.legal_entity_code)
        vid = sim._insert("rate_card_versions", {"rate_card_id": cid, "effective_date": card.valid_from.isoformat(),
                                                 "default_rate": 0})
        for line in card.lines:
            sim._insert("rate_card_roles", {"rate_card_version_id": vid, "role_id": roles[line.role],
                                            "rate": to_minor(line.hourly_rate)})
            rates[card.id, line.role] = to_minor(line.hourly_rate)
        cards[card.id] = cid
    accounts = {a.id: a.name for a in firm.accounts}
    groups: dict[str, str] = {}
    workspaces: dict[str, str] = {}
    terms = ExpenseTermsSeeder(sim)
    for project in firm.projects:
        client = accounts.get(project.account_id, project.account_id)
        if client not in groups:
            groups[client] = sim._insert("workspace_groups", {"name": client, "company": True})
        minor = to_minor(project.budget)
        wid = sim._insert("workspaces", {
            "title": project.name, "description": "", "archived": False, "budgeted": True,
            "currency": project.currency, "currency_base_unit": base_unit(project.currency),
            "price_in_cents": minor, "price": format_price(minor, project.currency),
            "start_date": project.start_date.isoformat(), "due_date": project.end_date.isoformat(),
            "status": dict(STATUS_KEYS["completed" if project.status == "closed" else "active"]),
            "stories_are_fixed_fee_by_default": project.billing_type == "fixed_fee",
            "workspace_group_ids": [groups[client]], "rate_card_id": cards.get(project.rate_card_id),
            "client_role_name": "Client", "consultant_role_name": "Provider", "require_expense_approvals": True})
        _ref(sim, "Workspace", wid, SERVICE_NAME, SERVICE_MODEL, project.external_id)
        workspaces[project.external_id] = wid
        terms.seed(wid, expense_terms(project))
        for milestone in project.milestones:
            sim._insert("stories", {"workspace_id": wid, "title": milestone.name, "story_type": "milestone",
                                    "due_date": milestone.due_date.isoformat(), "fixed_fee": True,
                                    "budget_estimate_in_cents": to_minor(milestone.amount), "archived": False,
                                    "state": "not started"})
        for assignment in project.assignments:
            rid = sim._insert("workspace_resources", {
                "workspace_id": wid, "user_id": users[assignment.worker_id], "role_id": roles[assignment.role],
                "label": role_name(assignment.role)})
            sim._insert("workspace_allocations", {
                "resource_id": rid, "workspace_id": wid, "start_date": assignment.start_date.isoformat(),
                "end_date": assignment.end_date.isoformat(), "minutes": int(assignment.planned_hours * 60)})
    if time_period is not None:
        resolved = dt.datetime.combine(time_period[1], dt.time(18), dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        for part in parts:
            _seed_time(sim, part, time_period, users, workspaces, rates, resolved)
            seed_expenses(sim, part, time_period, users, workspaces, resolved)


def _seed_time(sim: _Store, firm: DemoFirm, period: tuple[dt.date, dt.date], users: dict[str, str],
               workspaces: dict[str, str], rates: dict[tuple[str, str], int], resolved: str) -> None:
    """Time of the period (plus the deliberate defects) with weekly submissions per person and project."""
    projects = {p.external_id: p for p in firm.projects}
    weeks: dict[tuple[str, str, str, str], list[str]] = defaultdict(list)
    for entry in [*time_entries(firm.projects, firm.workers, *period), *defect_entries(firm.projects, firm.workers)]:
        if entry.project_external_id not in workspaces or entry.worker_id not in users:
            continue
        project = projects[entry.project_external_id]
        rate = to_minor_rate(entry.billable_rate, project.currency) if entry.billable_rate is not None \
            else rates.get((project.rate_card_id, entry.task))
        wid, uid = workspaces[project.external_id], users[entry.worker_id]
        eid = sim._insert("time_entries", {
            "workspace_id": wid, "user_id": uid, "date_performed": entry.date.isoformat(),
            "time_in_minutes": int(entry.hours * 60), "billable": entry.billable, "approved": False,
            "notes": entry.task.replace("_", " "), "story_id": None, "invoice_id": None, "rate_in_cents": rate,
            "currency": project.currency, "currency_base_unit": base_unit(project.currency),
            "timesheet_submission_id": None})
        if entry.status != "draft":
            monday = entry.date - dt.timedelta(days=entry.date.weekday())
            weeks[wid, uid, monday.isoformat(), entry.status].append(eid)
    for (wid, uid, week_start, status), ids in weeks.items():
        week_end = (dt.date.fromisoformat(week_start) + dt.timedelta(days=6)).isoformat()
        sim.add_submission(wid, uid, week_start, week_end, ids, "approved" if status == "approved" else "pending",
                           resolved_at=resolved if status == "approved" else None)


def to_minor_rate(rate: Decimal, currency: str) -> int:
    return int(rate * base_unit(currency))
