"""An in-memory Harvest v2 account speaking the vendor's wire format, with fault injection.

Reproduces what an adapter must cope with against the real service
(https://help.getharvest.com/api-v2/): Bearer token *and* `Harvest-Account-Id` (401
otherwise), 400 without a `User-Agent`, lists of at most 2000 a page (`per_page` above
that is a 422), cursor paging after the first page with `page`/`next_page`/
`previous_page` null between the first and last pages, and the rate limits — 100
requests per 15 s, reports 100 per 15 minutes — answered with 429 + `Retry-After`. The
windows are constructor arguments so the benchmark can raise them (a real account can
ask Harvest support for a higher limit). Harvest has no concurrency error of its own, so
an injected concurrency limit is a 429 too.

Seeded from the demo firm: workers as users (email), projects with code = ERP external
id and the client's currency, user/task assignments priced from the project's rate
card, and the period's time entries plus the deliberate defects, each entry keeping its
seed key as external reference. Expenses (one per worker per week, plus the deliberate
defects) and their categories (Mileage priced per mile) are seeded the first time they
are read — most runs never ask. Control routes under `/__sim__/time_entries/…` play the
approval workflow — unapprove (Harvest hands the timesheet back to its owner), edit,
submit, approve, or all four as `reapprove` — each moving `updated_at`; under
`/__sim__/expenses/…` unapprove, submit, approve and invoice do the same for expenses.
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import math
import time
from collections.abc import Callable, Collection
from decimal import Decimal
from typing import Annotated, Any, Final

import msgspec
from litestar import Litestar, Request, Response, Router, get, patch, post, route
from litestar.params import JSONBody, PathParameter

from system_apis._internal.faults import Fault, FaultPlan, ReceivedRequest, control_router, received
from system_apis.demo_delivery import DEMO_PERIOD, defect_entries, defect_expenses, expenses, time_entries
from system_apis.demo_firm import HOME_ENTITIES, DemoFirm, firm_for
from system_apis.harvest.simulator._expenses import ExpenseRow, ExpenseStore, WireExpense
from system_apis.harvest.simulator._lists import Invalid, Lists
from system_apis.harvest.simulator._store import Entry, Store, WireEntry

__all__ = ["EntryEdit", "HarvestSimulator"]

_ENCODER: Final = msgspec.json.Encoder(decimal_format="number")
_INVALID_TOKEN: Final = {"error": "invalid_token",
                         "error_description": "The access token provided is expired, revoked, malformed, or invalid "
                                              "for other reasons."}
_REPORT_PATHS: Final = ("/v2/reports/",)
EntryId = Annotated[int, PathParameter(description="Harvest time entry id.")]
ExpenseId = Annotated[int, PathParameter(description="Harvest expense id.")]


class EntryEdit(msgspec.Struct, kw_only=True):
    """What the owner changes on an entry handed back to them."""

    hours: Decimal | None = None
    notes: str | None = None


class _Window:
    """Sliding window of request instants per key (token); answers how long until the next is allowed."""

    def __init__(self, limit: int | None, seconds: float, clock: Callable[[], float]) -> None:
        self.limit, self.seconds, self._clock = limit, seconds, clock
        self._seen: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)

    def hit(self, key: str) -> int | None:
        if self.limit is None:
            return None
        now, seen = self._clock(), self._seen[key]
        while seen and seen[0] <= now - self.seconds:
            seen.popleft()
        if len(seen) >= self.limit:
            return max(1, math.ceil(seen[0] + self.seconds - now))
        seen.append(now)
        return None


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(_ENCODER.encode(body), status_code=status, media_type="application/json", headers=headers)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response[bytes]:
    return _json(status, {"code": status, "message": message}, headers)


def _answer(action: Callable[[], msgspec.Struct]) -> Response[bytes]:
    """A control route's answer: the record as Harvest would now show it, or the workflow's refusal."""
    try:
        return _json(200, action())
    except Invalid as exc:
        return _error(exc.status, exc.message)


class HarvestSimulator:
    """Stateful fake of one Harvest v2 account; `app` is its ASGI app, `faults` its fault plan."""

    def __init__(self, *, seed: bool = True, firm: DemoFirm | None = None,
                 period: tuple[dt.date, dt.date] = DEMO_PERIOD, requests_per_window: int | None = 100,
                 window_seconds: float = 15.0, report_requests_per_window: int | None = 100,
                 report_window_seconds: float = 900.0, clock: Callable[[], float] = time.monotonic,
                 legal_entities: Collection[str] = HOME_ENTITIES, seed_expenses: bool = True) -> None:
        self.legal_entities = tuple(legal_entities)
        self.seed_expenses = seed_expenses
        self.faults = FaultPlan()
        self.firm = firm
        self.period = period
        self._seed = seed
        self._limits = (requests_per_window, window_seconds, report_requests_per_window, report_window_seconds)
        self._clock = clock
        self._app: Litestar | None = None
        self._seeded_firm: DemoFirm | None = None
        self._expense_store: ExpenseStore | None = None
        self.requests: list[ReceivedRequest] = []
        self.record_requests = True
        self.reset()

    # --- state ------------------------------------------------------------------------------------------

    def reset(self) -> None:
        self.faults.clear()
        self.requests = []
        per, seconds, report_per, report_seconds = self._limits
        self.rate_window = _Window(per, seconds, self._clock)
        self.report_window = _Window(report_per, report_seconds, self._clock)
        if not self._seed:
            self.store = Store([], [], {}, {}, iter(()))
        else:
            self.store = self._seeded()
        self._expense_store = None
        self.lists = Lists(self.store, lambda: self.expense_store)

    @property
    def expense_store(self) -> ExpenseStore:
        """The account's expenses, seeded from the same firm and period as the time entries on first use."""
        if self._expense_store is None:
            firm = self._seeded_firm
            seeded = [] if firm is None or not self.seed_expenses else [
                *expenses(firm.projects, firm.workers, *self.period), *defect_expenses(firm.projects, firm.workers)]
            self._expense_store = ExpenseStore(self.store, seeded)
        return self._expense_store

    def _seeded(self) -> Store:
        firm = self._seeded_firm = firm_for(self.legal_entities, self.firm)
        rates = {c.id: {line.role: line.hourly_rate.amount for line in c.lines} for c in firm.rate_cards}
        names = {a.id: a.name for a in firm.accounts}
        seeded = itertools.chain(time_entries(firm.projects, firm.workers, *self.period),
                                 defect_entries(firm.projects, firm.workers))
        return Store([*firm.workers, *firm.guests], firm.projects, rates, names, seeded)

    def count(self, record_type: str, external_id: str | None = None) -> int:
        """Records of a type; `external_id` is the seed key (entry or expense reference, project code, worker id,
        account id)."""
        store = self.store
        if record_type == "expense":
            spent = self.expense_store
            return len(spent.rows) if external_id is None else int(spent.find(external_id) is not None)
        if record_type == "time_entry":
            if external_id is None:
                return len(store.entries)
            return 1 if store.find(external_id) is not None else 0
        keyed: dict[str, Any] = {"project": store.project_index, "user": store.user_index,
                                 "client": store.client_ids}
        if record_type not in keyed:
            return 0
        return len(keyed[record_type]) if external_id is None else int(external_id in keyed[record_type])

    # --- the approval workflow (what the owner and the approver do in Harvest's UI) -------------------------

    def entry(self, entry_id: int) -> Entry:
        position = self.store.position(entry_id)
        if position is None:
            raise Invalid(404, f"time entry {entry_id} not found")
        return self.store.entries[position]

    def entry_id(self, reference: str) -> int:
        """The Harvest id of the entry seeded as `reference` (e.g. TE-00001-20261001-0)."""
        found = self.store.find(reference)
        if found is None:
            raise KeyError(reference)
        return found.id

    def render(self, entry_id: int) -> WireEntry:
        return self.store.render(self.entry(entry_id))

    def _move(self, entry_id: int, *, allowed: tuple[int, ...], to: int) -> WireEntry:
        entry = self.entry(entry_id)
        if entry.state not in allowed or entry.is_billed:
            raise Invalid(409, f"time entry {entry_id} cannot go from state {entry.state} to {to}")
        entry.state, entry.updated_at = to, self.store.tick()
        return self.store.render(entry)

    def unapprove(self, entry_id: int) -> WireEntry:
        """Hand an approved (or submitted) entry back to its owner: unlocked, editable."""
        return self._move(entry_id, allowed=(1, 2), to=0)

    def submit(self, entry_id: int) -> WireEntry:
        return self._move(entry_id, allowed=(0,), to=1)

    def approve(self, entry_id: int) -> WireEntry:
        return self._move(entry_id, allowed=(0, 1), to=2)

    def edit(self, entry_id: int, *, hours: Decimal | None = None, notes: str | None = None) -> WireEntry:
        """The owner changes an unlocked entry; a locked one (submitted/approved/billed) refuses."""
        entry = self.entry(entry_id)
        if entry.state != 0 or entry.is_billed:
            raise Invalid(409, f"time entry {entry_id} is locked")
        if hours is not None:
            if hours < 0 or hours > 24:
                raise Invalid(422, "hours must be between 0 and 24")
            entry.hours = hours
        if notes is not None:
            entry.notes = notes
        entry.updated_at = self.store.tick()
        return self.store.render(entry)

    def reapprove(self, entry_id: int, *, hours: Decimal | None = None, notes: str | None = None) -> WireEntry:
        """Unapprove -> edit -> submit -> approve: an approved entry changed after approval."""
        self.unapprove(entry_id)
        self.edit(entry_id, hours=hours, notes=notes)
        self.submit(entry_id)
        return self.approve(entry_id)

    # --- the expense approval workflow (the same timesheet approval as time) ----------------------------------

    def expense(self, expense_id: int) -> ExpenseRow:
        spent = self.expense_store
        position = spent.position(expense_id)
        if position is None:
            raise Invalid(404, f"expense {expense_id} not found")
        return spent.rows[position]

    def expense_id(self, reference: str) -> int:
        """The Harvest id of the expense seeded as `reference` (e.g. EX-00001-20261006-91)."""
        found = self.expense_store.find(reference)
        if found is None:
            raise KeyError(reference)
        return found.id

    def _move_expense(self, expense_id: int, *, allowed: tuple[int, ...], to: int) -> WireExpense:
        row = self.expense(expense_id)
        if row.state not in allowed or row.is_billed:
            raise Invalid(409, f"expense {expense_id} cannot go from state {row.state} to {to}")
        row.state, row.updated_at = to, self.store.tick()
        return self.expense_store.render(row)

    def unapprove_expense(self, expense_id: int) -> WireExpense:
        return self._move_expense(expense_id, allowed=(1, 2), to=0)

    def submit_expense(self, expense_id: int) -> WireExpense:
        return self._move_expense(expense_id, allowed=(0,), to=1)

    def approve_expense(self, expense_id: int) -> WireExpense:
        return self._move_expense(expense_id, allowed=(0, 1), to=2)

    def invoice_expense(self, expense_id: int) -> WireExpense:
        """Harvest marks an approved expense invoiced when an invoice takes it: locked for good, `is_billed`."""
        row = self.expense(expense_id)
        if row.state != 2 or row.is_billed:
            raise Invalid(409, f"expense {expense_id} is not approved and uninvoiced")
        row.is_billed, row.updated_at = True, self.store.tick()
        return self.expense_store.render(row)

    async def _fault_answer(self, fault: Fault) -> Response[bytes] | None:
        await self.faults.delay_for(fault)
        message = fault.message
        if fault.kind in ("rate_limit", "concurrency_limit"):
            return _error(429, message or "Too many requests. Retry later.", {"Retry-After": str(fault.retry_after)})
        if fault.kind == "server_error":
            return _error(fault.status if fault.status >= 500 else 500, message or "Internal server error")
        if fault.kind == "timeout":
            return _error(504, message or "Gateway timeout")
        if fault.kind == "business_error":
            return _error(422, message or "Simulated business rule failure")
        return None  # slow: answer normally after the delay

    async def _dispatch(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        seen = received(request)
        method, path, query = seen.method, seen.path, seen.query
        headers = request.headers
        if self.record_requests:
            self.requests.append(seen)
        fault = self.faults.take(method, path)
        if fault is not None:
            answer = await self._fault_answer(fault)
            if answer is not None:
                return answer
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip() or not headers.get("harvest-account-id", ""):
            return _json(401, _INVALID_TOKEN)
        if not headers.get("user-agent", "").strip():
            return _error(400, "Please include a User-Agent header with the name of your application and a contact.")
        window = self.report_window if path.startswith(_REPORT_PATHS) else self.rate_window
        wait = window.hit(auth)
        if wait is not None:
            return _error(429, "Too many requests. Retry later.", {"Retry-After": str(wait)})
        if method != "GET":
            return _error(405, f"{method} {path} is not simulated")
        try:
            return _json(200, self.lists.handle(path, query, str(request.base_url).rstrip("/")))
        except Invalid as exc:
            return _error(exc.status, exc.message)

    @property
    def app(self) -> Litestar:
        """The simulator's ASGI app (built once; state lives on the simulator, so reset() needs no rebuild)."""
        if self._app is None:
            self._app = self._build_app()
        return self._app

    def _build_app(self) -> Litestar:
        sim = self

        @route("/v2/{path:path}", http_method=["GET", "POST", "PATCH", "PUT", "DELETE"], include_in_schema=False)
        async def harvest(request: Request[Any, Any, Any]) -> Response[bytes]:
            return await sim._dispatch(request)

        return Litestar(route_handlers=[harvest, control_router(self), self._workflow_router(),
                                        self._expense_workflow_router()], openapi_config=None)

    def _workflow_router(self) -> Router:
        sim = self

        @get("/by-reference/{reference:str}", sync_to_thread=False)
        def by_reference(reference: Annotated[str, PathParameter()]) -> Response[bytes]:
            found = sim.store.find(reference)
            return _json(200, sim.store.render(found)) if found else _error(404, "Not found")

        @patch("/{entry_id:int}", sync_to_thread=False)
        def edit(entry_id: EntryId, data: JSONBody[EntryEdit]) -> Response[bytes]:
            return _answer(lambda: sim.edit(entry_id, hours=data.hours, notes=data.notes))

        @post("/{entry_id:int}/unapprove", sync_to_thread=False)
        def unapprove(entry_id: EntryId) -> Response[bytes]:
            return _answer(lambda: sim.unapprove(entry_id))

        @post("/{entry_id:int}/submit", sync_to_thread=False)
        def submit(entry_id: EntryId) -> Response[bytes]:
            return _answer(lambda: sim.submit(entry_id))

        @post("/{entry_id:int}/approve", sync_to_thread=False)
        def approve(entry_id: EntryId) -> Response[bytes]:
            return _answer(lambda: sim.approve(entry_id))

        @post("/{entry_id:int}/reapprove", sync_to_thread=False)
        def reapprove(entry_id: EntryId, data: JSONBody[EntryEdit]) -> Response[bytes]:
            return _answer(lambda: sim.reapprove(entry_id, hours=data.hours, notes=data.notes))

        return Router(path="/__sim__/time_entries", include_in_schema=False,
                      route_handlers=[by_reference, edit, unapprove, submit, approve, reapprove])

    def _expense_workflow_router(self) -> Router:
        sim = self

        @get("/by-reference/{reference:str}", sync_to_thread=False)
        def by_reference(reference: Annotated[str, PathParameter()]) -> Response[bytes]:
            found = sim.expense_store.find(reference)
            return _json(200, sim.expense_store.render(found)) if found else _error(404, "Not found")

        @post("/{expense_id:int}/unapprove", sync_to_thread=False)
        def unapprove(expense_id: ExpenseId) -> Response[bytes]:
            return _answer(lambda: sim.unapprove_expense(expense_id))

        @post("/{expense_id:int}/submit", sync_to_thread=False)
        def submit(expense_id: ExpenseId) -> Response[bytes]:
            return _answer(lambda: sim.submit_expense(expense_id))

        @post("/{expense_id:int}/approve", sync_to_thread=False)
        def approve(expense_id: ExpenseId) -> Response[bytes]:
            return _answer(lambda: sim.approve_expense(expense_id))

        @post("/{expense_id:int}/invoice", sync_to_thread=False)
        def invoice(expense_id: ExpenseId) -> Response[bytes]:
            return _answer(lambda: sim.invoice_expense(expense_id))

        return Router(path="/__sim__/expenses", include_in_schema=False,
                      route_handlers=[by_reference, unapprove, submit, approve, invoice])
