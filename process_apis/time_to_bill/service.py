"""Starting billing runs, taking approval events, replaying exceptions, reconciling — behind routes and CLI.

One run per legal entity and period (its subject): starting it again while it runs joins
it; starting it again after it finished runs a new attempt, which bills only what the
ledger has not billed yet. Events validate the entries they name into the ledger at once
(the real-time path); the next run posts them. Wherever the ledger changes outside a run
(events, replays) the billing facts of the touched slices are refreshed at once, so the
dashboards never wait for month-end to show a change.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import TypeVar

import msgspec
from dbos import WorkflowHandleAsync

from contracts.common import Page
from contracts.problems import FieldError, ProblemError
from contracts.runs import Run
from contracts.time import Expense, TimeEntry
from foundation.clock import utcnow
from foundation.workflow_queue import start_workflow
from process_apis._internal.start_keys import StartKeys
from process_apis._internal.steps import unavailable
from process_apis._internal.system_clients import BusinessFailure, TransientFailure
from process_apis._internal.tables import runs
from process_apis.time_to_bill.enrich import expense_rates, load_reference
from process_apis.time_to_bill.expense_rules import EXPENSE
from process_apis.time_to_bill.expense_rules import entry_id as expense_entry_id
from process_apis.time_to_bill.facts import BillingFacts
from process_apis.time_to_bill.ledger import LedgerRow
from process_apis.time_to_bill.reconcile import (
    Approved,
    Booked,
    ChargeCache,
    Narrowing,
    Reconciliation,
    approved,
    booked,
    reconcile_project,
)
from process_apis.time_to_bill.rules import Reference, period_of
from process_apis.time_to_bill.runtime import pages, retried, runtime
from process_apis.time_to_bill.workflow import (
    ALL_ENTITIES,
    PROCESS,
    STEPS,
    billing_run,
    record_entries,
    record_expenses,
    workflow_id,
)

SCOPE = "time_to_bill.startRun"

__all__ = ["EventOutcome", "TimeToBillService"]

TERMINAL = ("succeeded", "needs_attention", "failed")
POSTING_ONLY = "_posting"
"""The run-id suffix of an entity's posting-only run of a period (`start_run(..., invoice=False)`)."""
RECONCILE_CONCURRENCY = 8
"""Projects reconciled at a time: each is ~5 reads of the ERP and 2 of the time system (1 of the ERP, its
intercompany documents per entity, when its page covers the entity whole), which against real vendors wait on the
network; the vendors' clients still hold their own concurrency and pacing limits."""
PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
"""A billing period: YYYY-MM with a real month (01-12) and a year from 0001 on."""


Captured = TypeVar("Captured", TimeEntry, Expense)


async def _current(rows: list[LedgerRow], read: Callable[[dict[str, str | int], str | None], Awaitable[Page[Captured]]],
                   entry_id: Callable[[Captured], str]) -> dict[str, Captured]:
    """The captured items behind ledger rows as the time system has them now, by ledger entry id: a few paged
    reads per project over the rows' dates, not one read per item."""
    wanted = {row.entry_id for row in rows}
    found: dict[str, Captured] = {}
    spans: dict[str, tuple[dt.date, dt.date]] = {}
    for row in rows:
        lo, hi = spans.get(row.project, (row.date, row.date))
        spans[row.project] = (min(lo, row.date), max(hi, row.date))
    for project, (start, end) in sorted(spans.items()):
        params: dict[str, str | int] = {"project_code": project, "from": start.isoformat(), "to": end.isoformat(),
                                        "limit": runtime().page_size}
        async for items in pages(read, params, "Time system"):
            found.update((entry_id(e), e) for e in items if entry_id(e) in wanted)
    return found


@asynccontextmanager
async def _first_failure_answers() -> AsyncIterator[asyncio.TaskGroup]:
    """Tasks run together whose first failure stops the rest and is the answer as itself (a vendor's 503 stays a
    503), not wrapped in the task group's ExceptionGroup (which would answer 500)."""
    try:
        async with asyncio.TaskGroup() as group:
            yield group
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None


def check_period(period: str) -> None:
    """A 422 on `period` unless it names a real month: a run for `2026-13` would crash, never bill."""
    found = PERIOD.match(period)
    if found is None or int(found.group(1)) < 1:
        raise ProblemError(422, "validation-error", "Validation failed",
                           f"Period {period!r} is not a month: give YYYY-MM with a month from 01 to 12.",
                           errors=[FieldError(pointer="/period", detail="expected YYYY-MM, month 01-12")],
                           code="invalid_period")


def origin_run_id(run_id: str) -> str:
    """The billing run behind an exception: a replay's exceptions carry `<run id>:replay<n>`."""
    return re.sub(r":replay\d+$", "", run_id)


class EventOutcome(msgspec.Struct, kw_only=True):
    entries: int
    validated: int
    exceptions: int


class TimeToBillService:
    def __init__(self, as_of: dt.date | None = None) -> None:
        self.as_of = as_of
        """The firm's 'today' (future-dated checks); None means the real date."""

    def today(self) -> dt.date:
        return self.as_of or dt.date.today()

    async def start_run(self, legal_entity_code: str, period: str, idempotency_key: str | None = None,
                        *, wait: bool = False, invoice: bool = True) -> tuple[Run, bool]:
        """Start (or join) the billing run for a legal entity and period; True when this call started it.

        ``invoice=False`` starts the entity's posting-only run of the period (its own run id, ending
        in ``POSTING_ONLY``): approved time is posted, nothing is drafted until the billing run.
        """
        rt = runtime()
        check_period(period)
        if legal_entity_code != ALL_ENTITIES:
            await self._check_entity(legal_entity_code)
        subject = f"{legal_entity_code}:{period}" + ("" if invoice else ":posting")  # one run per subject
        fingerprint = hashlib.sha256(subject.encode()).hexdigest()
        if idempotency_key:
            earlier_id = StartKeys(runtime().runs.engine, SCOPE).earlier_run(idempotency_key, fingerprint)
            earlier = runtime().runs.get(earlier_id) if earlier_id else None
            if earlier is not None:
                return earlier, False
        run_id = f"ttb_{'ALL' if legal_entity_code == ALL_ENTITIES else legal_entity_code}_{period}"
        run_id += "" if invoice else POSTING_ONLY
        run, created = rt.runs.create(PROCESS, subject, run_id, STEPS)
        if not created and run.status in TERMINAL:
            with rt.runs.engine.begin() as conn:
                conn.execute(runs.update().where(runs.c.id == run.id).values(
                    attempt=runs.c.attempt + 1, status="queued", updated_at=utcnow(), finished_at=None))
            run = rt.runs.new_attempt_steps(run.id)
            created = True
        handle = await self._launch(run, legal_entity_code, period)
        if idempotency_key:
            StartKeys(runtime().runs.engine, SCOPE).remember(idempotency_key, fingerprint, run.id)
        if wait:
            await handle.get_result()
        found = rt.runs.get(run.id)
        assert found is not None
        return found, created

    @staticmethod
    async def _check_entity(legal_entity_code: str) -> None:
        """A 422 unless the ERP has this legal entity: a run for an unknown one would bill nothing and succeed.
        Asked at the entity's own account (an unknown code reaches the default one), so another entity's ERP
        being down does not refuse this run."""
        known = {e.code for e in await retried(partial(runtime().erp.legal_entities, legal_entity_code), "ERP")}
        if legal_entity_code not in known:
            raise ProblemError(422, "validation-error", "Unknown legal entity",
                               f"The ERP has no legal entity {legal_entity_code!r}; known: "
                               f"{', '.join(sorted(known))} (or * for all).",
                               errors=[FieldError(pointer="/legal_entity_code", detail="unknown legal entity")],
                               code="unknown_legal_entity")

    async def run_and_wait(self, legal_entity_code: str, period: str) -> Run:
        """For the CLI and the demo: run to the end and return the finished run."""
        run, _ = await self.start_run(legal_entity_code, period, wait=True)
        return run

    async def on_approved(self, entry_ids: list[str]) -> EventOutcome:
        """The real-time path: validate the named entries into the ledger now; the next run posts them."""
        rt = runtime()
        entries: list[TimeEntry] = []
        try:
            for entry_id in entry_ids:
                entries.append(await rt.time.entry(entry_id))
            ref = await load_reference(rt.erp, rt.psa, rt.hr)
        except TransientFailure as exc:
            raise unavailable(exc, "Time system") from exc
        except BusinessFailure as exc:
            # The entry that failed is the one after those read: `errors[]` names it in the event.
            pointer = f"/data/entry_ids/{len(entries)}" if len(entries) < len(entry_ids) else "/data/entry_ids"
            raise ProblemError(422, "validation-error", "Entry cannot be read", str(exc),
                               errors=[FieldError(pointer=pointer, detail="no such entry in the time system")],
                               code="unknown_time_entry") from exc
        valid, failed = record_entries(f"ttb_events_{self.today():%Y-%m}", entries, ref, self.today(), ALL_ENTITIES)
        await self._refresh_facts(ref, {(p.legal_entity_code, period_of(e.date)) for e in entries
                                        if (p := ref.projects.get(e.project_code)) is not None})
        return EventOutcome(entries=len(entries), validated=valid, exceptions=failed)

    async def replay(self, exception_id: str) -> int:
        """Re-validate the entries behind an exception with fresh data and bill them; returns lines fixed."""
        fixed, _ = await self.replay_runs(exception_id)
        return fixed

    async def replay_run(self, exception_id: str) -> Run:
        """Re-validate the held lines and start (or join) the billing runs that will post them; the first one.

        The workbench's replay: one run to answer with (the exception's own run when nothing needed posting).
        """
        rt = runtime()
        record = rt.exceptions.get(exception_id)
        _, started = await self.replay_runs(exception_id)
        run = started[0] if started else (rt.runs.get(origin_run_id(record.run_id)) if record else None)
        if run is None:  # e.g. an exception of the approval events, whose lines all moved on meanwhile
            raise ProblemError(409, "conflict", "Nothing left to replay",
                               f"Exception {exception_id} holds no entries any more and belongs to no billing run; "
                               "it is resolved.", code="nothing_to_replay")
        return run

    async def replay_runs(self, exception_id: str) -> tuple[int, list[Run]]:
        """Replay, then start (or join) the billing run of every legal entity and period the lines belong to.

        Replaying only re-validates into the ledger; the runs post the fixed lines (and invoice
        them), so a replay after the fix ends with the entries posted once, not merely queued.
        """
        rt = runtime()
        record = rt.exceptions.claim(exception_id, PROCESS)  # atomic: of two concurrent replays one proceeds
        lines = rt.ledger.by_exception(exception_id)
        parked = [row.line_key for row, payload in lines if payload is None]
        rt.ledger.requeue(parked)
        held = [(row, payload) for row, payload in lines if payload is not None and row.kind != EXPENSE]
        held_expenses = [(row, payload) for row, payload in lines if payload is not None and row.kind == EXPENSE]
        fresh = await self._current_entries([row for row, _ in held])
        entries = [fresh.get(row.entry_id) or msgspec.json.decode(payload, type=TimeEntry) for row, payload in held]
        fresh_expenses = await self._current_expenses([row for row, _ in held_expenses])
        expenses = [fresh_expenses.get(row.entry_id) or msgspec.json.decode(payload, type=Expense)
                    for row, payload in held_expenses]
        ref = await load_reference(rt.erp, rt.psa, rt.hr)
        # A replay's exceptions carry `<run>:replay<n>`; a replay of one of those that fails again re-opens it
        # (same label, same id) rather than growing the label replay after replay.
        label = record.run_id if origin_run_id(record.run_id) != record.run_id else \
            f"{record.run_id}:replay{record.replay_count + 1}"
        valid, failed = record_entries(label, entries, ref, self.today(), ALL_ENTITIES)
        rates = await retried(partial(expense_rates, expenses, ref, rt.rates), "Exchange rates")
        valid_x, failed_x = record_expenses(label, expenses, ref, self.today(), ALL_ENTITIES, rates)
        valid, failed = valid + valid_x, failed + failed_x
        if not failed:
            rt.exceptions.set_status(exception_id, "resolved")
        await self._refresh_facts(ref, {(row.legal_entity_code, row.period) for row, _ in lines})
        slices = {(row.legal_entity_code, row.period) for row, _ in lines}
        if record.subject.startswith("IC-"):  # an intercompany charge an ERP refused: its entity's run sends it again
            _, _employer, entity, year, month, _digest = record.subject.split("-")
            slices.add((entity, f"{year}-{month}"))
        started = [await self.start_run(entity, period) for entity, period in  # `?`: a project the ERP lacks
                   sorted(slices) if entity in ref.entity_currency]
        return valid + len(parked), [run for run, _ in started]

    @staticmethod
    async def _refresh_facts(ref: Reference, slices: set[tuple[str, str]]) -> None:
        """Recompute the billing facts of the (legal entity, period) slices the ledger just changed in."""
        facts = BillingFacts(runtime().ledger.engine)
        known = {(e, p) for e, p in slices if e in ref.entity_currency}
        if known:
            await asyncio.to_thread(facts.refresh_many, ref, known)

    async def _current_entries(self, rows: list[LedgerRow]) -> dict[str, TimeEntry]:
        """The held entries as the time system has them now: a few paged reads per project, not one per entry."""
        return await _current(rows, runtime().time.entries, lambda e: e.id)

    async def _current_expenses(self, rows: list[LedgerRow]) -> dict[str, Expense]:
        """The held expenses as the time system has them now, by their ledger entry id."""
        return await _current(rows, runtime().time.expenses, expense_entry_id)

    async def reconcile(self, project: str, period: str) -> Reconciliation:
        rt = runtime()
        ref = await retried(partial(load_reference, rt.erp, rt.psa, rt.hr), "Reference data")
        if project not in ref.projects:
            raise ProblemError(404, "not-found", "Project not found", f"The ERP has no project {project!r}.")
        return await reconcile_project(project, period, ref, self.today())

    async def reconcile_entity(self, legal_entity_code: str, period: str, offset: int = 0,
                               limit: int | None = None) -> tuple[list[Reconciliation], bool]:
        """The entity's projects (`*`: every entity's) in code order, from `offset`, at most `limit` of them, and
        whether more follow. Only those are reconciled: a page costs its own projects' reads, not the firm's, and a
        page of the entity whole reads its time and ERP accounts once instead of once per project."""
        rt = runtime()
        scope = None if legal_entity_code == ALL_ENTITIES else legal_entity_code  # one entity's: its ERP account only
        ref = await retried(partial(load_reference, rt.erp, rt.psa, rt.hr, scope), "Reference data")
        codes = sorted(c for c, p in ref.projects.items() if legal_entity_code in (ALL_ENTITIES, p.legal_entity_code))
        end = len(codes) if limit is None else offset + limit
        page = codes[offset:end]
        figures: dict[str, Approved] = {}
        books: dict[str, Booked] = {}
        if len(page) > 1 and len(page) == len(codes):  # the entity whole: its accounts read once, side by side
            narrowing: Narrowing = {"legal_entity": scope} if scope else {}
            async with _first_failure_answers() as sides:
                time_side = sides.create_task(approved(set(page), period, ref, self.today(), narrowing))
                erp_side = sides.create_task(booked(set(page), period, narrowing))
            figures, books = time_side.result(), erp_side.result()
        charges: ChargeCache = {}
        slots = asyncio.Semaphore(RECONCILE_CONCURRENCY)

        async def one(code: str) -> Reconciliation:
            async with slots:
                return await reconcile_project(code, period, ref, self.today(), charges, figures.get(code),
                                               books.get(code))

        async with _first_failure_answers() as projects:
            tasks = [projects.create_task(one(c)) for c in page]
        return [task.result() for task in tasks], end < len(codes)

    async def resume_unstarted(self) -> int:
        unfinished = runtime().runs.unfinished(PROCESS)
        for run in unfinished:
            entity, period = run.subject.split(":")[:2]
            await self._launch(run, entity, period)
        return len(unfinished)

    async def _launch(self, run: Run, legal_entity_code: str, period: str) -> WorkflowHandleAsync[str]:
        return await start_workflow(workflow_id(run.id, run.attempt), billing_run, run.id, legal_entity_code,
                                    period, self.today().isoformat(), run.attempt, not run.id.endswith(POSTING_ONLY))

