"""The provisioning workflow: durable orchestration only, every vendor touch a step.

Each step is a DBOS step: its result is checkpointed, so a process killed between
steps resumes on restart at the first unfinished step and never repeats a finished
vendor write. A step killed *during* its write runs again, and the write is an
upsert by external id, so it lands once. The workflow id is `<run id>:a<attempt>`:
starting the same run twice (or concurrently) joins the one workflow.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Final

import msgspec
from dbos import DBOS

from contracts.crm import Account, Opportunity
from contracts.erp import Customer, CustomerUpsert, ErpProject, ErpProjectUpsert
from contracts.events import PROJECT_PROVISIONED, CloudEvent
from contracts.psa import PsaProject, PsaProjectUpsert
from contracts.runs import Violation
from foundation.clock import utcnow
from foundation.tracing import span
from process_apis._internal.crashes import describe, record_crash
from process_apis._internal.steps import StepExhausted, run_step
from process_apis._internal.system_clients import BusinessFailure
from process_apis.provisioning.rules import Verdict, validate
from process_apis.provisioning.runtime import runtime

__all__ = ["PROCESS", "STEPS", "exception_id_for", "provision", "workflow_id"]

PROCESS: Final = "provisioning"
STEPS: Final = ("read_crm", "validate", "erp_customer", "erp_project", "psa_project", "publish_event")
INTEGRATION_OPS: Final = "integration-operations"


def workflow_id(run_id: str, attempt: int) -> str:
    return f"{run_id}:a{attempt}"


def exception_id_for(run_id: str, attempt: int) -> str:
    """Deterministic, so a re-executed step re-opens the same record instead of a second one."""
    return "exc_" + hashlib.sha256(workflow_id(run_id, attempt).encode()).hexdigest()[:16]


def _dates(opp: Opportunity) -> tuple[dt.date, dt.date]:
    start = opp.start_date or opp.close_date + dt.timedelta(days=14)
    return start, opp.end_date or start + dt.timedelta(days=90)


@DBOS.step(name="provisioning.read_crm")
async def read_crm(run_id: str, opportunity_id: str) -> tuple[Opportunity, Account]:
    rt = runtime()

    async def read() -> tuple[Opportunity, Account]:
        opp = await rt.crm.get_opportunity(opportunity_id)
        return opp, await rt.crm.get_account(opp.account_id)

    return await run_step(rt.runs, run_id, "read_crm", read, retry=rt.retry,
                          vendor_ids=lambda r: {"crm_opportunity": r[0].id, "crm_account": r[1].id})


@DBOS.step(name="provisioning.validate")
async def check_rules(run_id: str, opp: Opportunity, account: Account) -> Verdict:
    rt = runtime()

    async def check() -> Verdict:
        return validate(opp, account, await rt.erp.legal_entities())

    verdict = await run_step(rt.runs, run_id, "validate", check, retry=rt.retry)
    if not verdict.ok:
        rt.runs.step(run_id, "validate", "failed", detail="; ".join(v.code for v in verdict.violations))
    return verdict


@DBOS.step(name="provisioning.erp_customer")
async def erp_customer(run_id: str, account: Account, verdict: Verdict) -> Customer:
    rt = runtime()
    entity = verdict.legal_entity
    assert entity is not None
    data = CustomerUpsert(name=account.name, legal_entity_id=entity.id, currency=entity.currency,
                          tax_id=account.tax_id, billing_address=account.billing_address)
    external_id = account.external_id or f"CRM-{account.id}"
    return await run_step(rt.runs, run_id, "erp_customer", lambda: rt.erp.upsert_customer(external_id, data),
                          retry=rt.retry, vendor_ids=lambda c: {"erp_customer": c.id})


@DBOS.step(name="provisioning.erp_project")
async def erp_project(run_id: str, opp: Opportunity, customer: Customer, verdict: Verdict) -> ErpProject:
    rt = runtime()
    assert verdict.legal_entity is not None and verdict.template is not None
    start, end = _dates(opp)
    data = ErpProjectUpsert(name=opp.name, customer_id=customer.id, legal_entity_id=verdict.legal_entity.id,
                            currency=opp.amount.currency, budget=opp.amount, start_date=start, end_date=end,
                            tasks=verdict.template.plan_tasks(opp.amount),
                            billing=verdict.template.billing(opp.amount, start, end))
    return await run_step(rt.runs, run_id, "erp_project", lambda: rt.erp.upsert_project(f"PRJ-{opp.id}", data),
                          retry=rt.retry, vendor_ids=lambda p: {"erp_project": p.id})


@DBOS.step(name="provisioning.psa_project")
async def psa_project(run_id: str, opp: Opportunity, account: Account, project: ErpProject,
                      verdict: Verdict) -> PsaProject:
    rt = runtime()
    template, legal_entity = verdict.template, verdict.legal_entity
    assert template is not None and legal_entity is not None
    start, end = _dates(opp)
    entity = legal_entity.code

    async def upsert() -> PsaProject:
        # The legal entity's rate card in force on the start date prices the project's time; none found
        # leaves the PSA's default, and time-to-bill raises "rate card not found" for it.
        cards = [c for c in await rt.psa.rate_cards(entity) if c.currency == opp.amount.currency
                 and c.valid_from <= start and (c.valid_to is None or start <= c.valid_to)]
        data = PsaProjectUpsert(title=opp.name, client_name=account.name, budget=opp.amount,
                                billing_terms=template.billing_type, start_date=start, due_date=end,
                                milestones=template.psa_milestones(opp.amount, start, end),
                                erp_project_id=project.id,
                                rate_card_id=max(cards, key=lambda c: c.valid_from).id if cards else None)
        return await rt.psa.upsert_project(f"PRJ-{opp.id}", data)

    return await run_step(rt.runs, run_id, "psa_project", upsert, retry=rt.retry,
                          vendor_ids=lambda p: {"psa_project": p.id})


@DBOS.step(name="provisioning.publish")
async def publish(run_id: str, opp: Opportunity, customer: Customer, project: ErpProject,
                  psa: PsaProject) -> dict[str, str]:
    rt = runtime()
    result = {"opportunity_id": opp.id, "erp_customer_id": customer.id, "erp_project_id": project.id,
              "psa_project_id": psa.id, "legal_entity_id": project.legal_entity_id}
    rt.runs.step(run_id, "publish_event", "running", attempt=True)
    event = CloudEvent(id=f"{run_id}:provisioned", source="/process/provisioning/v1", type=PROJECT_PROVISIONED,
                       subject=opp.id, time=utcnow(),
                       data={**result, "budget": msgspec.to_builtins(opp.amount), "name": opp.name})
    rt.outbox.publish(event)
    rt.runs.step(run_id, "publish_event", "succeeded", vendor_ids={"event": event.id})
    run = rt.runs.get(run_id)
    rt.runs.set_status(run_id, "succeeded", result=result)
    if run is not None and run.exception_id:
        rt.exceptions.set_status(run.exception_id, "resolved")
    return result


@DBOS.step(name="provisioning.open_exception")
async def open_exception(run_id: str, subject: str, attempt: int, violations: list[Violation],
                         failed: bool) -> str:
    rt = runtime()
    record = rt.exceptions.open(PROCESS, run_id, subject, violations,
                                exception_id=exception_id_for(run_id, attempt))
    rt.runs.set_status(run_id, "failed" if failed else "needs_attention", exception_id=record.id)
    return record.id


@DBOS.step(name="provisioning.crashed")
async def crashed(run_id: str, attempt: int, error: str) -> str:
    rt = runtime()
    record_crash(rt.runs, rt.exceptions, PROCESS, run_id, attempt, error)
    return "failed"


@DBOS.workflow(name="provisioning.provision")
async def provision(run_id: str, opportunity_id: str, attempt: int) -> str:
    """Provision one won opportunity; returns the run's final status (`failed` with an exception on a crash)."""
    try:
        with span("process provisioning", {"psconnect.run_id": run_id}):
            return await _provision(run_id, opportunity_id, attempt)
    except Exception as exc:
        return await crashed(run_id, attempt, describe(exc))


async def _provision(run_id: str, opportunity_id: str, attempt: int) -> str:
    try:
        opp, account = await read_crm(run_id, opportunity_id)
        verdict = await check_rules(run_id, opp, account)
        if not verdict.ok:
            await open_exception(run_id, opp.id, attempt, list(verdict.violations), False)
            return "needs_attention"
        customer = await erp_customer(run_id, account, verdict)
        project = await erp_project(run_id, opp, customer, verdict)
        psa = await psa_project(run_id, opp, account, project, verdict)
        await publish(run_id, opp, customer, project, psa)
        return "succeeded"
    except BusinessFailure as exc:
        owner = "finance-master-data" if exc.status in (404, 422) else INTEGRATION_OPS
        await open_exception(run_id, opportunity_id, attempt,
                             [Violation(code=exc.code or "rejected", detail=str(exc), owner=owner)], False)
        return "needs_attention"
    except StepExhausted as exc:
        await open_exception(run_id, opportunity_id, attempt,
                             [Violation(code="vendor_unavailable", detail=str(exc), owner=INTEGRATION_OPS)], True)
        return "failed"


