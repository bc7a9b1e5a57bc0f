"""The Harvest simulator's expenses and expense categories, stored compactly like its time entries.

The benchmark firm spends ~44,000 expenses a month, so an expense is one array-like,
GC-untracked Struct of indexes into the time-entry `Store` (user, project) and into the
category list, kept in Harvest's list order — spent date newest first
(https://help.getharvest.com/api-v2/expenses-api/expenses/expenses/#list-all-expenses).
Ids are handed out in reverse of that order, so an expense's position follows from its
id, a `from`/`to` range is found by bisection and a per-project or per-user read walks
only that owner's positions. The wire record (spec `Expense`) is built when asked for.
"""

from __future__ import annotations

import bisect
import datetime as dt
from array import array
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any, Final

import msgspec

from system_apis.demo_delivery import EXPENSE_CATEGORIES, MILEAGE_RATE, SeedExpense
from system_apis.harvest.mapping import LOCKED_INVOICED, status_flags
from system_apis.harvest.simulator._store import STATES, EntryFilter, Store
from system_apis.harvest.simulator._store import _ProjectRef as ProjectRef
from system_apis.harvest.simulator._store import _Ref as Ref
from system_apis.harvest.simulator._store import _UserAssignment as UserAssignment

__all__ = ["EXPENSE_ID_BASE", "ExpenseRow", "ExpenseStore", "WireExpense"]

EXPENSE_ID_BASE: Final = 15_200_000
CATEGORY_ID_BASE: Final = 4_195_900
RECEIPT_HOST: Final = "https://meridian.harvestapp.com"
"""Receipts live on the account's own subdomain (`https://{ACCOUNT_SUBDOMAIN}.harvestapp.com/expenses/{id}/receipt`)."""
_UNITS: Final = {"Mileage": ("mile", MILEAGE_RATE)}
_ONE: Final = Decimal("1.0")
_FLAGS: Final = tuple(status_flags(s) for s in STATES)
_NONE: Final = array("i")


class ExpenseRow(msgspec.Struct, array_like=True, gc=False):
    id: int
    user: int
    project: int
    category: int
    spent_date: dt.date
    slot: int
    total_cost: Decimal
    units: Decimal | None
    billable: bool
    state: int
    is_billed: bool
    has_receipt: bool
    notes: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class _ClientRef(msgspec.Struct, frozen=True):
    id: int
    name: str
    currency: str


class _CategoryRef(msgspec.Struct, frozen=True):
    id: int
    name: str
    unit_price: str | None  # the spec types it a string inside an expense (a number in the category list)
    unit_name: str | None


class _Receipt(msgspec.Struct, frozen=True):
    url: str
    file_name: str
    file_size: int
    content_type: str


class WireExpense(msgspec.Struct):
    """An expense exactly as Harvest answers it (all fields, nulls included)."""

    id: int
    client: _ClientRef
    project: ProjectRef
    expense_category: _CategoryRef
    user: Ref
    user_assignment: UserAssignment | None
    receipt: _Receipt | None
    invoice: None
    notes: str | None
    units: Decimal
    total_cost: Decimal
    billable: bool
    is_closed: bool
    is_locked: bool
    is_billed: bool
    locked_reason: str | None
    spent_date: dt.date
    created_at: dt.datetime
    updated_at: dt.datetime


def _stamp(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=dt.UTC)


class ExpenseStore:
    """Expenses and expense categories of the account whose users and projects `store` holds."""

    def __init__(self, store: Store, seeded: Iterable[SeedExpense]) -> None:
        self.store = store
        seeds = list(seeded)
        names = list(EXPENSE_CATEGORIES) + sorted({s.category for s in seeds} - set(EXPENSE_CATEGORIES))
        self.category_names = names
        self.category_index = {n: i for i, n in enumerate(names)}
        self.category_refs = [_CategoryRef(CATEGORY_ID_BASE + i, n, str(_UNITS[n][1]) if n in _UNITS else None,
                                           _UNITS[n][0] if n in _UNITS else None) for i, n in enumerate(names)]
        self.client_refs = {a: _ClientRef(ref.id, ref.name, store.client_currency[a])
                            for a, ref in store.client_refs.items()}
        self.rows: list[ExpenseRow] = []
        self._load(seeds)

    def _load(self, seeds: Sequence[SeedExpense]) -> None:
        store, rows = self.store, []
        for seed in seeds:
            u_index, p_index = store.user_index.get(seed.worker_id), store.project_index.get(seed.project_external_id)
            if u_index is None or p_index is None:
                continue
            state = STATES.index(seed.status) if seed.status in STATES else 0  # a rejection is handed back: draft
            created = _stamp(seed.date, 18)
            slot = int(seed.id.split("-")[3]) if seed.id.count("-") == 3 else 0
            rows.append(ExpenseRow(0, u_index, p_index, self.category_index[seed.category], seed.date, slot,
                                   seed.amount, seed.units, seed.billable, state, False, seed.has_receipt,
                                   seed.notes or None, created, created + dt.timedelta(days=(0, 1, 3)[state])))
        rows.sort(key=lambda e: (e.spent_date, e.user, e.slot), reverse=True)
        top = EXPENSE_ID_BASE + len(rows) - 1
        for position, row in enumerate(rows):
            row.id = top - position
        self.rows = rows
        self._keys = [-e.spent_date.toordinal() for e in rows]
        # Positions per project and per user, ascending: Harvest filters by these server-side.
        self._by_project: dict[int, array[int]] = {}
        self._by_user: dict[int, array[int]] = {}
        for position, row in enumerate(rows):
            self._by_project.setdefault(row.project, array("i")).append(position)
            self._by_user.setdefault(row.user, array("i")).append(position)

    # --- lookups ----------------------------------------------------------------------------------------

    def position(self, expense_id: int) -> int | None:
        position = EXPENSE_ID_BASE + len(self.rows) - 1 - expense_id
        return position if 0 <= position < len(self.rows) else None

    def reference(self, row: ExpenseRow) -> str:
        """The seed key of an expense (`EX-<worker>-<yyyymmdd>[-9n]`)."""
        key = f"EX-{self.store.workers[row.user].id[2:]}-{row.spent_date.strftime('%Y%m%d')}"
        return f"{key}-{row.slot}" if row.slot else key

    def find(self, reference: str) -> ExpenseRow | None:
        try:
            day = dt.datetime.strptime(reference.split("-")[2], "%Y%m%d").date()
        except (IndexError, ValueError):
            return None
        lo, hi = self.bounds(day, day)
        return next((self.rows[p] for p in range(lo, hi) if self.reference(self.rows[p]) == reference), None)

    def bounds(self, start: dt.date | None, end: dt.date | None) -> tuple[int, int]:
        lo = 0 if end is None else bisect.bisect_left(self._keys, -end.toordinal())
        hi = len(self._keys) if start is None else bisect.bisect_right(self._keys, -start.toordinal())
        return lo, max(lo, hi)

    def scan(self, f: EntryFilter, start: int = 0) -> Iterator[ExpenseRow]:
        """Expenses matching the list's filters (user, client, project, is_billed, updated_since, from, to)."""
        lo, hi = self.bounds(f.start, f.end)
        lo = max(lo, start)
        positions: Sequence[int] = range(lo, hi)
        for index, key in ((self._by_project, f.project), (self._by_user, f.user)):
            if key is not None:
                owned = index.get(key, _NONE)
                owned = owned[bisect.bisect_left(owned, lo):bisect.bisect_left(owned, hi)]
                if len(owned) < len(positions):
                    positions = owned
        store = self.store
        for position in positions:
            e = self.rows[position]
            if ((f.user is not None and e.user != f.user) or (f.project is not None and e.project != f.project)
                    or (f.client is not None and store.client_ids[store.seeds[e.project].account_id] != f.client)
                    or (f.is_billed is not None and e.is_billed != f.is_billed)
                    or (f.updated_since is not None and e.updated_at < f.updated_since)):
                continue
            yield e

    # --- rendering --------------------------------------------------------------------------------------

    def render(self, e: ExpenseRow) -> WireExpense:
        store = self.store
        is_closed, is_locked, reason = _FLAGS[e.state]
        seed = store.seeds[e.project]
        receipt = _Receipt(f"{RECEIPT_HOST}/expenses/{e.id}/receipt", f"receipt-{e.id}.pdf",
                           40_000 + e.id % 60_000, "application/pdf") if e.has_receipt else None
        return WireExpense(
            e.id, self.client_refs[seed.account_id], store.project_refs[e.project], self.category_refs[e.category],
            store.user_refs[e.user], store.user_assignments.get((e.project, e.user)), receipt, None, e.notes,
            e.units if e.units is not None else _ONE, e.total_cost, e.billable, is_closed, is_locked or e.is_billed,
            e.is_billed, LOCKED_INVOICED if e.is_billed else reason, e.spent_date, e.created_at, e.updated_at)

    def category_record(self, index: int) -> dict[str, Any]:
        ref = self.category_refs[index]
        unit = _UNITS.get(ref.name)
        return {"id": ref.id, "name": ref.name, "unit_name": unit[0] if unit else None,
                "unit_price": unit[1] if unit else None, "is_active": True, "created_at": self.store.created,
                "updated_at": self.store.created}
