"""The demo firm's delivery as NetSuite holds it before the demo starts: customers, jobs, employees.

Every simulator seeds the same projects from ``firm.projects`` so the ERP job, the PSA workspace
and the time system's project agree by external id (``PRJ-A0001``...). Customers keep the CRM
account key (``ACC-0001``) and employees the HR worker id (``W-00001``) as external ids; a
terminated worker is an inactive employee whose ``releaseDate`` is the termination date.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from contracts.erp import BillingSchedule, CustomerUpsert, ErpProjectUpsert
from contracts.workforce import EmployeeUpsert
from system_apis.demo_firm import DemoFirm
from system_apis.netsuite._billing_mapping import employee_to_record
from system_apis.netsuite.mapping import JOB_STATUSES, customer_to_record, project_to_record

__all__ = ["seed_delivery"]

Record = dict[str, Any]


def seed_delivery(firm: DemoFirm, subsidiaries: Mapping[str, str]) -> Iterator[tuple[str, Record]]:
    """Yield ``(record type, record)``; the caller inserts each and sets its ``id`` before resuming.

    Args:
        firm: the seed.
        subsidiaries: legal entity seed id (``LE-US01``) -> subsidiary internal id.
    """
    by_code = {e.code: subsidiaries[e.id] for e in firm.legal_entities if e.id in subsidiaries}
    accounts = {a.id: a for a in firm.accounts}
    customers: dict[str, str] = {}
    for project in firm.projects:
        account = accounts[project.account_id]
        subsidiary = by_code[project.legal_entity_code]
        if account.id not in customers:
            customer = customer_to_record(account.id, CustomerUpsert(
                name=account.name, legal_entity_id=subsidiary, currency=project.currency, tax_id=account.tax_id,
                billing_address=account.billing_address))
            yield "customer", customer
            customers[account.id] = str(customer["id"])
        job = project_to_record(project.external_id, ErpProjectUpsert(
            name=project.name, customer_id=customers[account.id], legal_entity_id=subsidiary,
            currency=project.currency, budget=project.budget, start_date=project.start_date,
            end_date=project.end_date,
            billing=BillingSchedule(billing_type=project.billing_type, milestones=project.milestones)))
        status_id, status_name = JOB_STATUSES["closed" if project.status == "closed" else "active"]
        job.update(entityStatus={"id": status_id, "refName": status_name},
                   custentity_psc_rate_card=project.rate_card_id)
        yield "job", job
    # A consultant seconded from an entity whose books are elsewhere gets an employee record in the host
    # subsidiary, so time can post against the host's project (the firm's own are in their employer's).
    own = {w.id for w in firm.workers}
    hosted = {a.worker_id: p.legal_entity_code for p in firm.projects for a in p.assignments
              if a.seconded and a.worker_id not in own and p.legal_entity_code in by_code}
    for worker in [*firm.workers, *firm.guests]:
        home = worker.legal_entity_code if worker.id in own else hosted[worker.id]
        if home not in by_code:
            continue
        employee = employee_to_record(worker.id, EmployeeUpsert(
            name=worker.name, email=worker.email, legal_entity_id=by_code[home],
            cost_center=worker.cost_center, cost_rate=worker.cost_rate, active=worker.status != "terminated"))
        if worker.termination_date is not None:
            employee["releaseDate"] = worker.termination_date.isoformat()
        yield "employee", employee
