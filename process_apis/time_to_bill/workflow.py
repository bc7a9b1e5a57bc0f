"""The billing run: one DBOS workflow per legal entity and period; every step a batch, never an entry.

Steps: read a page of approved entries and validate it into the ledger (as many steps as
pages), post claimed ledger lines to the ERP in batches of up to 1,000, draft invoices and
credit memos for a chunk of projects, then refresh the billing facts the dashboards read.
Step outputs are small (a cursor, counts); the data lives in the ledger, so checkpoints
stay tiny and a run killed mid-way resumes at its first unfinished step. A re-executed
posting step re-claims the same rows (its claim token is the run, attempt and batch
number), so the ERP sees the same batch key and posts nothing twice.

A run for `*` covers every legal entity in one pass over the time system; its posting is
still per entity, so one entity's ERP outage fails that entity's part only.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any, Final

import msgspec
from dbos import DBOS

from contracts.billing import ExpensePostingBatch, ExpensePostingLine, TimePostingBatch, TimePostingLine
from contracts.common import Money, Page
from contracts.currency import ExchangeRate
from contracts.events import (
    BILLING_RUN_FINISHED,
    CREDIT_MEMO_ISSUED,
    EXPENSE_POSTED,
    INVOICE_DRAFTED,
    TIME_POSTED,
    CloudEvent,
)
from contracts.runs import Violation
from contracts.time import Expense, TimeEntry
from foundation import metrics
from foundation.periods import month_bounds
from foundation.tracing import span
from process_apis._internal.crashes import describe, record_crash
from process_apis._internal.events import event
from process_apis._internal.steps import StepExhausted, retrying, run_step
from process_apis._internal.system_clients import BusinessFailure, TransientFailure
from process_apis.time_to_bill.enrich import expense_rates, load_reference
from process_apis.time_to_bill.expense_rules import EXPENSE, expense_key, validate_expense
from process_apis.time_to_bill.expense_rules import entry_id as expense_entry_id
from process_apis.time_to_bill.facts import BillingFacts, window_start
from process_apis.time_to_bill.invoicing import credit_memos, invoice_draft, milestone_key
from process_apis.time_to_bill.ledger import EXPENSE_KINDS, TIME_KINDS, ExceptionLine, LedgerRow
from process_apis.time_to_bill.revenue import RevenueSchedule
from process_apis.time_to_bill.rules import PricedLine, Reference, line_key, period_of, validate
from process_apis.time_to_bill.runtime import runtime

__all__ = ["ALL_ENTITIES", "PROCESS", "STEPS", "billing_run", "exception_id_for", "record_entries", "record_expenses",
           "refresh_facts", "workflow_id"]

PROCESS: Final = "time_to_bill"
STEPS: Final = ("read_validate", "read_expenses", "post_time", "post_expenses", "intercompany", "invoice", "finish")
"""The steps a run shows; the facts refresh is a durable step too, but reported in `finish`'s totals."""
ALL_ENTITIES: Final = "*"
INTEGRATION_OPS: Final = "integration-operations"
CATCH_UP_MONTHS: Final = 3
_MAX_REFERENCES: Final = 8
ERP_REFUSALS: Final = {"period_closed": ("period_closed", "finance-close"),
                       "project_inactive": ("project_inactive", "delivery-operations"),
                       "worker_inactive": ("worker_inactive", "hr-operations")}
"""The ERP's canonical per-line refusal reasons -> (exception reason, owner); any other refusal is integration's."""


def workflow_id(run_id: str, attempt: int) -> str:
    return f"{run_id}:a{attempt}"


def exception_id_for(run_id: str, subject: str, reason: str) -> str:
    """Deterministic: a re-executed step re-opens the same record; one record per project and reason."""
    return "exc_" + hashlib.sha256(f"{run_id}|{subject}|{reason}".encode()).hexdigest()[:16]


async def reference(run_id: str, legal_entity_code: str = ALL_ENTITIES) -> Reference:
    """Reference data for a run, read once per process (after a restart it is simply read again).

    Keyed by run, so concurrent runs keep their own; a run's entry goes when it finishes, and
    the oldest go first should runs die without finishing. A throttled or briefly unavailable
    system API is waited out as for any step (a 429 here once crashed a rerun after an outage). A run
    for one entity reads the ERP at that entity's account only (a step that does not know the entity
    and loads first after a restart reads every account: a superset, as correct).
    """
    cache = runtime().references
    if run_id not in cache:
        rt = runtime()
        scope = None if legal_entity_code == ALL_ENTITIES else legal_entity_code
        loaded = await retrying(lambda: load_reference(rt.erp, rt.psa, rt.hr, scope), retry=rt.retry,
                                sleep=rt.sleep, exhausted_as="reference_data")
        while len(cache) >= _MAX_REFERENCES:
            cache.pop(next(iter(cache)))
        cache[run_id] = loaded
    return cache[run_id]


def _window(period: str) -> tuple[dt.date, dt.date]:
    year, month = (int(x) for x in period.split("-"))
    back_year, back_month = divmod(year * 12 + month - 1 - CATCH_UP_MONTHS, 12)
    return dt.date(back_year, back_month + 1, 1), month_bounds(period)[1]


Held = Callable[[str, str, str, str], ExceptionLine]
"""(worker id, legal entity code, exception id, reason) -> the exception line of an item that failed validation."""


def record_entries(run_id: str, entries: list[TimeEntry], ref: Reference, as_of: dt.date,
                   legal_entity_code: str) -> tuple[int, int]:
    """Validate entries into the ledger; open one exception per project and reason. Returns (valid, failed)."""
    def held(entry: TimeEntry) -> Held:
        return lambda worker_id, code, exception_id, reason: ExceptionLine(
            line_key=line_key(entry), entry_id=entry.id, project=entry.project_code, worker_id=worker_id,
            legal_entity_code=code, period=period_of(entry.date), date=entry.date, hours=entry.hours,
            billable=entry.billable, exception_id=exception_id, reason=reason, payload=msgspec.json.encode(entry))

    return _record(run_id, ref, [(e.project_code, e.user_email, partial(validate, e, ref, as_of), held(e))
                                 for e in entries if _in_scope(ref, e.project_code, legal_entity_code)])


def record_expenses(run_id: str, expenses: list[Expense], ref: Reference, as_of: dt.date, legal_entity_code: str,
                    rates: Mapping[str, ExchangeRate | None]) -> tuple[int, int]:
    """Validate expenses into the ledger (`expense_rules.py`); `rates`: expense id -> its conversion rate."""
    def held(expense: Expense) -> Held:
        return lambda worker_id, code, exception_id, reason: ExceptionLine(
            line_key=expense_key(expense), entry_id=expense_entry_id(expense), project=expense.project_code,
            worker_id=worker_id, legal_entity_code=code, period=period_of(expense.date), date=expense.date,
            hours=Decimal(1), billable=expense.billable, exception_id=exception_id, reason=reason,
            payload=msgspec.json.encode(expense), kind=EXPENSE)

    return _record(run_id, ref, [
        (x.project_code, x.user_email, partial(validate_expense, x, ref, as_of, rates.get(x.id)), held(x))
        for x in expenses if _in_scope(ref, x.project_code, legal_entity_code)])


def _in_scope(ref: Reference, project_code: str, legal_entity_code: str) -> bool:
    project = ref.projects.get(project_code)
    return legal_entity_code in (ALL_ENTITIES, project.legal_entity_code if project else "?")


def _record(run_id: str, ref: Reference,
            checked: list[tuple[str, str, Callable[[], PricedLine | tuple[Violation, ...]], Held]]) -> tuple[int, int]:
    """Record what passed and park what failed: one exception per project and reason, at most 20 violations shown.

    `checked`: (project code, person's email, the validation, how to describe the item if it failed)."""
    rt = runtime()
    outcomes: list[PricedLine | ExceptionLine] = []
    groups: dict[tuple[str, str], list[Violation]] = defaultdict(list)
    failed = 0
    for project_code, email, check, held in checked:
        result = check()
        if isinstance(result, PricedLine):
            outcomes.append(result)
            continue
        failed += 1
        reason = result[0].code
        subject = f"{project_code}:{reason}"
        if len(groups[(subject, reason)]) < 20:
            groups[(subject, reason)].append(result[0])
        project, worker = ref.projects.get(project_code), ref.workers.get(email.lower())
        outcomes.append(held(worker.id if worker else email, project.legal_entity_code if project else "?",
                             exception_id_for(run_id, subject, reason), reason))
    for (subject, reason), violations in groups.items():
        record = rt.exceptions.open(PROCESS, run_id, subject, violations,
                                    exception_id=exception_id_for(run_id, subject, reason))
        if record.status == "replayed":  # its lines are held by it again (a later attempt): replayable again
            rt.exceptions.set_status(record.id, "open")
    rt.ledger.record(outcomes)
    return len(outcomes) - failed, failed


@DBOS.step(name="time_to_bill.read_validate")
async def read_page(run_id: str, legal_entity_code: str, period: str, as_of: str, cursor: str | None,
                    totals: dict[str, int]) -> tuple[str | None, dict[str, int]]:
    rt = runtime()
    ref = await reference(run_id, legal_entity_code)
    start, end = _window(period)
    params: dict[str, str | int] = {"status": "approved", "from": start.isoformat(), "to": end.isoformat(),
                                    "limit": rt.page_size}
    page = await run_step(rt.runs, run_id, "read_validate", lambda: rt.time.entries(params, cursor), retry=rt.retry,
                          sleep=rt.sleep)
    valid, failed = record_entries(run_id, page.items, ref, dt.date.fromisoformat(as_of), legal_entity_code)
    out = {"entries_read": totals.get("entries_read", 0) + len(page.items),
           "validated": totals.get("validated", 0) + valid, "exceptions": totals.get("exceptions", 0) + failed}
    rt.runs.step(run_id, "read_validate", "running" if page.next_cursor else "succeeded",
                 vendor_ids={k: str(v) for k, v in out.items()})
    return page.next_cursor, out


@DBOS.step(name="time_to_bill.read_expenses")
async def read_expense_page(run_id: str, legal_entity_code: str, period: str, as_of: str, cursor: str | None,
                            totals: dict[str, int]) -> tuple[str | None, dict[str, int]]:
    """One page of approved expenses of the run's window, validated into the ledger like time."""
    rt = runtime()
    ref = await reference(run_id, legal_entity_code)
    start, end = _window(period)
    params: dict[str, str | int] = {"status": "approved", "from": start.isoformat(), "to": end.isoformat(),
                                    "limit": rt.page_size}

    async def read() -> tuple[Page[Expense], dict[str, ExchangeRate | None]]:
        page = await rt.time.expenses(params, cursor)
        return page, await expense_rates(page.items, ref, rt.rates)

    page, rates = await run_step(rt.runs, run_id, "read_expenses", read, retry=rt.retry, sleep=rt.sleep)
    valid, failed = record_expenses(run_id, page.items, ref, dt.date.fromisoformat(as_of), legal_entity_code, rates)
    out = {**totals, "expenses_read": totals.get("expenses_read", 0) + len(page.items),
           "expenses_validated": totals.get("expenses_validated", 0) + valid,
           "expense_exceptions": totals.get("expense_exceptions", 0) + failed}
    rt.runs.step(run_id, "read_expenses", "running" if page.next_cursor else "succeeded",
                 vendor_ids={k: str(v) for k, v in out.items() if k.startswith("expense")})
    return page.next_cursor, out


def _posting_line(row: LedgerRow) -> TimePostingLine:
    return TimePostingLine(line_key=row.line_key, project_external_id=row.project,
                           employee_external_id=row.worker_id, date=row.date, hours=str(row.hours),
                           rate=Money(amount=row.rate, currency=row.currency),
                           amount=Money(amount=row.amount, currency=row.currency), billable=row.billable,
                           memo=row.entry_id)


def _expense_line(row: LedgerRow, payload: bytes | None) -> ExpensePostingLine:
    captured = msgspec.json.decode(payload, type=Expense) if payload else None
    original = captured.amount if captured is not None and captured.amount.currency != row.currency else None
    cost = row.rate if row.kind == EXPENSE else -row.rate
    return ExpensePostingLine(line_key=row.line_key, project_external_id=row.project,
                              employee_external_id=row.worker_id, date=row.date, category=row.role,
                              amount=Money(amount=cost, currency=row.currency), billable=row.billable,
                              original_amount=original, receipt_url=captured.receipt_url if captured else None,
                              memo=row.entry_id.removeprefix("expense:")[:200])


class _Outcome(msgspec.Struct):
    posted: dict[str, str] = {}
    failed: dict[str, str] = {}
    refusals: dict[str, str] = {}
    refused: list[tuple[str, str, str]] = []
    """(line key, reason code, detail) of lines the ERP refused as a whole batch."""


Sent = dict[str, dict[str, str]]
"""What the ERP answered for a batch: {"posted": {key: ERP id}, "failed": {key: error}, "refusals": {key: reason}}."""


async def _send_time(entity_id: str, batch_key: str, rows: list[LedgerRow]) -> Sent:
    """Time posts as a job (the ERP contract's asynchronous posting): submit, then poll its result."""
    rt = runtime()
    batch = TimePostingBatch(batch_key=batch_key, legal_entity_id=entity_id, lines=[_posting_line(r) for r in rows])
    await rt.erp.post_time(batch)
    for _ in range(200):
        result = await rt.erp.time_posting(batch.batch_key)
        if result.status != "pending":
            return {"posted": result.posted, "failed": result.failed, "refusals": dict(result.refusals)}
        await rt.sleep(0.05)
    raise TransientFailure(f"time posting {batch.batch_key} still pending")


async def _send_expenses(entity_id: str, batch_key: str, rows: list[LedgerRow]) -> Sent:
    rt = runtime()
    payloads = rt.ledger.payloads([r.line_key for r in rows] + [r.reverses for r in rows if r.reverses])
    lines = [_expense_line(r, payloads.get(r.reverses or r.line_key)) for r in rows]
    result = await rt.erp.post_expenses(ExpensePostingBatch(batch_key=batch_key, legal_entity_id=entity_id,
                                                            lines=lines))
    return {"posted": result.posted, "failed": result.failed, "refusals": dict(result.refusals)}


@dataclass(frozen=True)
class _Posting:
    """How one kind of ledger line reaches the ERP: time as time, expenses as project costs."""

    step: str
    tag: str
    kinds: tuple[str, ...]
    batch_size: int
    event_type: str
    send: Callable[[str, str, list[LedgerRow]], Awaitable[Sent]]


TIME_POSTING = _Posting("post_time", "b", TIME_KINDS, 1000, TIME_POSTED, _send_time)
EXPENSE_POSTING = _Posting("post_expenses", "e", EXPENSE_KINDS, 200, EXPENSE_POSTED, _send_expenses)


async def _post_lines(run_id: str, how: _Posting, entity_id: str, batch_key: str, rows: list[LedgerRow]) -> _Outcome:
    """Post rows as one ERP batch; a batch the ERP refuses as a whole is split until the refused lines are found.

    The halves get derived batch keys (`…L`, `…R`), so a retried step re-sends the same keys
    and the ERP's idempotency still holds; only the lines that are refused alone are parked.
    """
    rt = runtime()
    try:
        result = await run_step(rt.runs, run_id, how.step, partial(how.send, entity_id, batch_key, rows),
                                retry=rt.retry, sleep=rt.sleep)
    except BusinessFailure as exc:
        if len(rows) == 1:
            return _Outcome(refused=[(rows[0].line_key, exc.code or "erp_rejected", str(exc))])
        half = len(rows) // 2
        left = await _post_lines(run_id, how, entity_id, f"{batch_key}L", rows[:half])
        right = await _post_lines(run_id, how, entity_id, f"{batch_key}R", rows[half:])
        return _Outcome(posted={**left.posted, **right.posted}, failed={**left.failed, **right.failed},
                        refusals={**left.refusals, **right.refusals}, refused=left.refused + right.refused)
    return _Outcome(posted=result["posted"], failed=result["failed"], refusals=result.get("refusals", {}))


def _park(run_id: str, rows: list[LedgerRow], problems: list[tuple[str, str, str, str]]) -> None:
    """Refused lines become owned exceptions, one per project and reason: never a silent `failed` state.

    `problems`: (line key, reason, owner, detail). The exception is keyed by the run, project
    and reason, so a re-executed step re-opens the same record.
    """
    rt = runtime()
    project_of = {r.line_key: r.project for r in rows}
    groups: dict[tuple[str, str, str], list[tuple[str, str]]] = defaultdict(list)
    for key, reason, owner, detail in problems:
        groups[(project_of.get(key, "?"), reason, owner)].append((key, detail))
    for (project, reason, owner), items in sorted(groups.items()):
        subject = f"{project}:{reason}"
        eid = exception_id_for(run_id, f"{subject}:erp", reason)
        violations = [Violation(code=reason, detail=f"ERP refused {key}: {detail}"[:500], owner=owner)
                      for key, detail in items[:20]]
        rt.exceptions.open(PROCESS, run_id, subject, violations, exception_id=eid)
        rt.ledger.to_exception([key for key, _ in items], eid, reason)


def _classify(reason: str | None) -> tuple[str, str]:
    return ERP_REFUSALS.get(reason or "", ("erp_rejected", INTEGRATION_OPS))


async def _post_claimed(how: _Posting, run_id: str, attempt: int, legal_entity_code: str, number: int,
                        posted_so_far: int) -> list[int]:
    rt = runtime()
    ref = await reference(run_id, legal_entity_code)
    claim = f"{workflow_id(run_id, attempt)}:{legal_entity_code}:{how.tag}{number}"
    rows = rt.ledger.claim(legal_entity_code, claim, min(rt.batch_size, how.batch_size), how.kinds)
    if not rows:
        return [0, 0]
    entity_id = ref.projects[rows[0].project].legal_entity_id if rows[0].project in ref.projects else \
        f"LE-{legal_entity_code}"
    digest = hashlib.blake2b("\n".join(r.line_key for r in rows).encode(), digest_size=6).hexdigest()
    try:
        outcome = await _post_lines(run_id, how, entity_id, f"{claim}:{digest}", rows)
    except StepExhausted:
        rt.ledger.release(claim)
        raise
    rt.ledger.mark_posted(outcome.posted, {})
    if how is TIME_POSTING:
        metrics.observe_hours_posted(legal_entity_code,
                                     (float(r.hours) for r in rows if r.line_key in outcome.posted))
    if outcome.posted:
        keys = "time_entry_keys" if how is TIME_POSTING else "expense_keys"
        rt.outbox.publish(event(f"{claim}:{digest}:posted", how.event_type, PROCESS, run_id, {
            "run_id": run_id, "legal_entity": legal_entity_code, "legal_entity_id": entity_id,
            "lines_posted": len(outcome.posted), keys: sorted(outcome.posted)}))
    problems = [(key, *_classify(outcome.refusals.get(key)), detail) for key, detail in outcome.failed.items()]
    problems += [(key, code, "finance-close" if code == "period_closed" else INTEGRATION_OPS, detail)
                 for key, code, detail in outcome.refused]
    if problems:
        _park(run_id, rows, problems)
    rt.runs.step(run_id, how.step, "running", vendor_ids={
        "posted": str(posted_so_far + len(outcome.posted)), "batches": str(number)})
    return [len(rows), len(outcome.posted)]


@DBOS.step(name="time_to_bill.post_time")
async def post_batch(run_id: str, attempt: int, legal_entity_code: str, number: int,
                     posted_so_far: int) -> list[int]:
    """Post one claimed batch of time: [lines handled, lines posted]; [0, 0] when nothing is left for the entity."""
    return await _post_claimed(TIME_POSTING, run_id, attempt, legal_entity_code, number, posted_so_far)


@DBOS.step(name="time_to_bill.post_expenses")
async def post_expense_batch(run_id: str, attempt: int, legal_entity_code: str, number: int,
                             posted_so_far: int) -> list[int]:
    """Post one claimed batch of expense costs (and reversals of changed ones), as `post_batch` does time."""
    return await _post_claimed(EXPENSE_POSTING, run_id, attempt, legal_entity_code, number, posted_so_far)


@DBOS.step(name="time_to_bill.invoice")
async def invoice_projects(run_id: str, period: str, projects: list[str]) -> int:
    """Draft the period's invoice (and credit memos) for a chunk of projects; returns documents written.

    The chunk's ledger lines are read in one query each and its written documents marked in one
    transaction (`executemany`) — also when a later document of the chunk fails, so nothing the ERP
    accepted is drafted again under another key.
    """
    rt = runtime()
    ref = await reference(run_id)
    invoiceable = rt.ledger.invoiceable_many(projects, period)
    creditable = rt.ledger.creditable_many(projects, period)
    milestones = rt.ledger.billed_milestones_many(projects)
    written: list[tuple[Sequence[str], str, Sequence[dict[str, Any]]]] = []
    announced: list[CloudEvent[dict[str, Any]]] = []
    try:
        for code in projects:
            project = ref.projects[code]
            draft = invoice_draft(project, period, invoiceable.get(code, []), milestones.get(code, set()))
            if draft is not None:
                await run_step(rt.runs, run_id, "invoice", partial(rt.erp.upsert_invoice, draft.external_id,
                                                                   draft.invoice), retry=rt.retry, sleep=rt.sleep)
                written.append((draft.time_keys, draft.external_id, draft.milestones))
                announced.append(event(f"{run_id}:{draft.external_id}:drafted", INVOICE_DRAFTED, PROCESS, code, {
                    "run_id": run_id, "project": code, "period": period, "invoice_external_id": draft.external_id,
                    "legal_entity_id": project.legal_entity_id}))
            for external_id, memo, keys in credit_memos(project, period, creditable.get(code, [])):
                await run_step(rt.runs, run_id, "invoice", partial(rt.erp.upsert_credit_memo, external_id, memo),
                               retry=rt.retry, sleep=rt.sleep)
                written.append((keys, external_id, ()))
                announced.append(event(f"{run_id}:{external_id}:issued", CREDIT_MEMO_ISSUED, PROCESS, code, {
                    "run_id": run_id, "project": code, "period": period, "credit_memo_external_id": external_id,
                    "legal_entity_id": project.legal_entity_id}))
    finally:
        rt.ledger.mark_invoiced_many(written)
        for announcement in announced:
            rt.outbox.publish(announcement)
    return len(written)


def _projects_to_invoice(ref: Reference, legal_entity_code: str, period: str, with_posted: list[str]) -> list[str]:
    due = {p.external_id for p in ref.projects.values() if any(period_of(m.due_date) == period and
                                                               milestone_key(p.external_id, m) for m in p.milestones)}
    return sorted(c for c in set(with_posted) | due if c in ref.projects and
                  legal_entity_code in (ALL_ENTITIES, ref.projects[c].legal_entity_code))


@DBOS.step(name="time_to_bill.plan_invoices")
async def plan_invoices(run_id: str, legal_entity_code: str, period: str) -> list[str]:
    rt = runtime()
    ref = await reference(run_id, legal_entity_code)
    entities = sorted({p.legal_entity_code for p in ref.projects.values()}) \
        if legal_entity_code == ALL_ENTITIES else [legal_entity_code]
    posted = [c for e in entities for c in rt.ledger.projects_with_work(e, period)]
    return _projects_to_invoice(ref, legal_entity_code, period, posted)


@DBOS.step(name="time_to_bill.entities")
async def entities_of(run_id: str, legal_entity_code: str) -> list[str]:
    if legal_entity_code != ALL_ENTITIES:
        return [legal_entity_code]
    return sorted((await reference(run_id, legal_entity_code)).entity_currency)


@DBOS.step(name="time_to_bill.refresh_facts")
async def refresh_facts(run_id: str, legal_entity_code: str, period: str) -> int:
    """Recompute the dashboards' billing facts for every period of the run's window that has ledger lines, and
    the revenue schedule of the run's legal entities (`revenue.py`).

    The catch-up window reaches back `CATCH_UP_MONTHS`, so late entries of earlier periods
    are counted there too. Off the event loop: at month-end volume this is seconds of Decimal
    work, and live requests must not wait behind it. Returns the slices refreshed.
    """
    rt = runtime()
    ref = await reference(run_id, legal_entity_code)
    facts = BillingFacts(rt.ledger.engine)
    entities = sorted(ref.entity_currency) if legal_entity_code == ALL_ENTITIES else [legal_entity_code]
    since = window_start(period, CATCH_UP_MONTHS)

    def refresh() -> int:
        slices = [(e, p) for e in entities for p in facts.periods_with_work(e, since) if p <= period]
        slices += [(e, period) for e in entities]  # the run's own period, even when it has no lines (yet)
        refreshed = len(facts.refresh_many(ref, slices))
        RevenueSchedule(rt.ledger.engine).refresh(ref, entities, run_id)  # and revenue.recognized where it moved
        return refreshed

    return await asyncio.to_thread(refresh)


@DBOS.step(name="time_to_bill.finish")
async def finish(run_id: str, status: str, totals: dict[str, str], failures: list[str]) -> str:
    rt = runtime()
    exception_id = None
    if failures:
        exception_id = exception_id_for(run_id, "erp", "vendor_unavailable")
        violations = [Violation(code="vendor_unavailable", detail=f, owner=INTEGRATION_OPS) for f in failures]
        rt.exceptions.open(PROCESS, run_id, run_id, violations, exception_id=exception_id)
    rt.runs.step(run_id, "finish", "succeeded", vendor_ids=totals)
    rt.runs.skip_pending(run_id)  # e.g. `invoice` when nothing was due
    rt.runs.set_status(run_id, status, result=totals, exception_id=exception_id)  # type: ignore[arg-type]
    run = rt.runs.get(run_id)
    entity, period = ((run.subject if run else "") + "::").split(":")[:2]
    rt.outbox.publish(event(f"{run_id}:finished", BILLING_RUN_FINISHED, PROCESS, run_id, {
        "run_id": run_id, "status": status, "legal_entity": entity, "period": period, **totals}))
    rt.references.pop(run_id, None)
    return status


@DBOS.step(name="time_to_bill.posted")
async def posting_done(run_id: str, failed: bool) -> None:
    """`post_time` and `post_expenses` end here: each batch leaves them `running`; the last, empty claim is silent."""
    for step in (TIME_POSTING.step, EXPENSE_POSTING.step, "intercompany"):
        runtime().runs.step(run_id, step, "failed" if failed else "succeeded")


@DBOS.step(name="time_to_bill.crashed")
async def crashed(run_id: str, attempt: int, error: str) -> str:
    rt = runtime()
    record_crash(rt.runs, rt.exceptions, PROCESS, run_id, attempt, error)
    rt.references.pop(run_id, None)
    return "failed"


async def _entity_id(ref: Reference, code: str) -> str:
    """An entity's ERP id: from the run's reference data, else its own ERP (a run for one entity reads only that
    entity's account, and a seconded consultant's employer may keep its books in another)."""
    if code in ref.entity_ids:
        return ref.entity_ids[code]
    found = [e.id for e in await runtime().erp.legal_entities(code) if e.code == code]
    if not found:
        raise BusinessFailure(404, {"code": "unknown_legal_entity", "detail": f"no ERP knows legal entity {code}"})
    ref.entity_ids[code] = found[0]
    return found[0]


@DBOS.step(name="time_to_bill.intercompany")
async def charge_intercompany(run_id: str, legal_entity_code: str, so_far: list[int]) -> list[int]:
    """Charge the entity's posted time of other entities' consultants (`intercompany.py`): each document recorded
    as a receivable in the employer's ERP and a payable in this entity's. Returns [lines, documents, refused]
    added to `so_far`; a document an ERP refuses (a closed period) is an owned exception, retried by a rerun."""
    rt = runtime()
    ref = await reference(run_id, legal_entity_code)
    lines = rt.intercompany.assign(legal_entity_code, ref, rt.transfer_markup)
    recorded = refused = 0
    for document in rt.intercompany.pending(legal_entity_code):
        try:
            for side, code in (("receivable", document.employer), ("payable", document.project_entity)):
                external_id, body = document.side(side, await _entity_id(ref, code))
                await run_step(rt.runs, run_id, "intercompany", partial(rt.erp.upsert_intercompany_charge,
                                                                        external_id, body),
                               retry=rt.retry, sleep=rt.sleep)
        except BusinessFailure as exc:
            refused += 1
            reason, owner = _classify(exc.code)
            rt.exceptions.open(PROCESS, run_id, document.stem, [Violation(
                code=reason, detail=f"ERP refused intercompany charge {document.stem}: {exc}"[:500], owner=owner)],
                exception_id=exception_id_for(run_id, document.stem, reason))
            continue
        rt.intercompany.mark_charged(document.stem)
        recorded += 1
    out = [so_far[0] + lines, so_far[1] + recorded, so_far[2] + refused]
    rt.runs.step(run_id, "intercompany", "running", vendor_ids={
        "lines": str(out[0]), "documents": str(out[1]), "refused": str(out[2])})
    return out


async def _post_all(step: Callable[[str, int, str, int, int], Awaitable[list[int]]], run_id: str, attempt: int,
                    entity: str, counts: list[int]) -> None:
    """Run a posting step batch after batch until the entity has nothing left of its kind; adds to `counts`
    [lines posted, lines the ERP refused] (a refused line is parked on an owned exception)."""
    number = 0
    while True:
        number += 1
        handled, n = await step(run_id, attempt, entity, number, counts[0])
        if handled == 0:
            return
        counts[0] += n
        counts[1] += handled - n


@DBOS.workflow(name="time_to_bill.billing_run")
async def billing_run(run_id: str, legal_entity_code: str, period: str, as_of: str, attempt: int,
                      invoice: bool = True) -> str:
    """Take a legal entity's approved time for a period to posted ERP time and invoice drafts.

    ``invoice=False`` is the near-real-time posting path (a schedule's fire during the working day):
    time reaches the ERP, but no invoice is drafted before the month-end run, which would otherwise
    leave one draft per project per fire. A crash anywhere (an error no step handles) ends the run
    `failed` with an owned exception.
    """
    try:
        with span("process time_to_bill", {"psconnect.run_id": run_id,
                                           "psconnect.legal_entity": legal_entity_code}):
            return await _billing_run(run_id, legal_entity_code, period, as_of, attempt, invoice)
    except Exception as exc:
        return await crashed(run_id, attempt, describe(exc))


async def _billing_run(run_id: str, legal_entity_code: str, period: str, as_of: str, attempt: int,
                       invoice: bool) -> str:
    totals: dict[str, int] = {}
    cursor: str | None = None
    try:
        while True:
            cursor, totals = await read_page(run_id, legal_entity_code, period, as_of, cursor, totals)
            if cursor is None:
                break
    except (StepExhausted, BusinessFailure) as exc:
        return await finish(run_id, "failed", {k: str(v) for k, v in totals.items()}, [f"reading approved time: {exc}"])
    failures: list[str] = []
    cursor = None
    try:  # expenses the time system cannot give now fail the run, but the time read above still posts
        while True:
            cursor, totals = await read_expense_page(run_id, legal_entity_code, period, as_of, cursor, totals)
            if cursor is None:
                break
    except (StepExhausted, BusinessFailure) as exc:
        failures.append(f"reading approved expenses: {exc}")
    time, expenses, charges = [0, 0], [0, 0], [0, 0, 0]  # [posted, refused by the ERP and parked]; see below
    for entity in await entities_of(run_id, legal_entity_code):
        try:  # one entity's ERP outage fails that entity's posting only
            await _post_all(post_batch, run_id, attempt, entity, time)
            await _post_all(post_expense_batch, run_id, attempt, entity, expenses)
            charges = await charge_intercompany(run_id, entity, charges)
        except StepExhausted as exc:
            failures.append(f"{entity}: {exc}")
    await posting_done(run_id, bool(failures))
    rt_totals = {**{k: str(v) for k, v in totals.items()}, "posted": str(time[0]),
                 "expenses_posted": str(expenses[0]), "erp_refused": str(time[1] + expenses[1] + charges[2]),
                 "intercompany_lines": str(charges[0]), "intercompany_documents": str(charges[1])}
    projects = await plan_invoices(run_id, legal_entity_code, period) if invoice else []
    documents = 0
    for i in range(0, len(projects), 50):
        try:
            documents += await invoice_projects(run_id, period, projects[i:i + 50])
        except (StepExhausted, BusinessFailure) as exc:
            failures.append(f"invoicing {projects[i]}..: {exc}")
    rt_totals["invoice_documents"] = str(documents)
    rt_totals["fact_slices"] = str(await refresh_facts(run_id, legal_entity_code, period))
    held = totals.get("exceptions", 0) + totals.get("expense_exceptions", 0) + time[1] + expenses[1] + charges[2]
    status = "failed" if failures else ("needs_attention" if held else "succeeded")
    return await finish(run_id, status, rt_totals, failures)
