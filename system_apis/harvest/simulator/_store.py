"""The Harvest simulator's state: compact records, Harvest's JSON built only when asked for.

The benchmark seeds 440,000 time entries, so an entry is one array-like, GC-untracked
Struct of ids, small ints and shared values (dates, timestamps and hours are interned),
kept in Harvest's list order — spent date newest first, then id. Ids are handed out in
reverse of that order, so an entry's position is computed from its id (no index dict),
and a `from`/`to` range is found by bisection instead of a scan.
"""

from __future__ import annotations

import bisect
import datetime as dt
from array import array
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any, Final

import msgspec

from contracts.workforce import Worker
from system_apis.demo_delivery import SeedProject, SeedTimeEntry
from system_apis.harvest.mapping import status_flags

__all__ = ["STATES", "Entry", "EntryFilter", "Store"]

ENTRY_ID_BASE: Final = 1_500_000_000
USER_ID_BASE: Final = 3_100_000
PROJECT_ID_BASE: Final = 14_300_000
CLIENT_ID_BASE: Final = 5_700_000
TASK_ID_BASE: Final = 8_080_000
STATES: Final = ("draft", "submitted", "approved")
_FLAGS: Final = (status_flags("draft"), status_flags("submitted"), status_flags("approved"))


class Entry(msgspec.Struct, array_like=True, gc=False):
    id: int
    user: int
    project: int
    task: int
    spent_date: dt.date
    slot: int
    hours: Decimal
    billable: bool
    state: int
    is_billed: bool
    rate: Decimal | None
    notes: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


_NONE: Final = array("i")


class EntryFilter(msgspec.Struct, frozen=True, kw_only=True):
    start: dt.date | None = None
    end: dt.date | None = None
    user: int | None = None
    project: int | None = None
    client: int | None = None
    task: int | None = None
    is_billed: bool | None = None
    is_running: bool | None = None
    updated_since: dt.datetime | None = None
    reference: str | None = None


class _Ref(msgspec.Struct, frozen=True):
    id: int
    name: str


class _ProjectRef(msgspec.Struct, frozen=True):
    id: int
    name: str
    code: str


class _UserAssignment(msgspec.Struct, frozen=True):
    id: int
    is_project_manager: bool
    is_active: bool
    use_default_rates: bool
    budget: None
    created_at: dt.datetime
    updated_at: dt.datetime
    hourly_rate: Decimal


class _TaskAssignment(msgspec.Struct, frozen=True):
    id: int
    billable: bool
    is_active: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    hourly_rate: Decimal
    budget: None


class _ExternalReference(msgspec.Struct, frozen=True):
    id: str
    group_id: str
    account_id: None
    permalink: str
    service: str
    service_icon_url: None


class WireEntry(msgspec.Struct):
    """A time entry exactly as Harvest answers it (all fields, nulls included)."""

    id: int
    spent_date: dt.date
    user: _Ref
    client: _Ref
    project: _ProjectRef
    task: _Ref
    user_assignment: _UserAssignment
    task_assignment: _TaskAssignment
    hours: Decimal
    hours_without_timer: Decimal
    rounded_hours: Decimal
    notes: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    is_locked: bool
    locked_reason: str | None
    is_closed: bool
    is_billed: bool
    timer_started_at: None
    started_time: None
    ended_time: None
    is_running: bool
    invoice: None
    external_reference: _ExternalReference
    billable: bool
    budgeted: bool
    billable_rate: Decimal | None
    cost_rate: Decimal


def _stamp(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=dt.UTC)


class Store:
    """Users, clients, projects, tasks, assignments and entries of one Harvest account."""

    def __init__(self, workers: Sequence[Worker], projects: Sequence[SeedProject], rates: dict[str, dict[str, Decimal]],
                 client_names: dict[str, str], entries: Iterator[SeedTimeEntry]) -> None:
        self.created = _stamp(dt.date(2026, 1, 5), 9)
        self.workers = list(workers)
        self.user_index = {w.id: i for i, w in enumerate(self.workers)}
        self._prefixes = [f"TE-{w.id[2:]}-" for w in self.workers]
        self._days: dict[dt.date, str] = {}
        self.user_refs = [_Ref(USER_ID_BASE + i, w.name) for i, w in enumerate(self.workers)]
        self.seeds = list(projects)
        self.project_index = {p.external_id: i for i, p in enumerate(self.seeds)}
        self.project_refs = [_ProjectRef(PROJECT_ID_BASE + i, p.name, p.external_id) for i, p in enumerate(self.seeds)]
        accounts = sorted({p.account_id for p in self.seeds})
        self.client_ids = {a: CLIENT_ID_BASE + i for i, a in enumerate(accounts)}
        self.client_refs = {a: _Ref(self.client_ids[a], client_names.get(a, a)) for a in accounts}
        self.client_currency = {p.account_id: p.currency for p in self.seeds}
        self.rates = rates  # rate card id -> role -> hourly rate
        self.tasks = sorted({a.role for p in self.seeds for a in p.assignments} | {w.role for w in self.workers})
        self.task_index = {t: i for i, t in enumerate(self.tasks)}
        self.task_refs = [_Ref(TASK_ID_BASE + i, t) for i, t in enumerate(self.tasks)]  # tasks named by role
        self.user_assignments: dict[tuple[int, int], _UserAssignment] = {}
        self.task_assignments: dict[tuple[int, int], _TaskAssignment] = {}
        for p_index, project in enumerate(self.seeds):
            for assignment in project.assignments:
                if assignment.worker_id in self.user_index:
                    self.user_assignment(p_index, self.user_index[assignment.worker_id])
        self.entries: list[Entry] = []
        self.version = 0
        self._load(entries)

    # --- assignments ------------------------------------------------------------------------------------

    def rate(self, p_index: int, role: str) -> Decimal:
        return self.rates.get(self.seeds[p_index].rate_card_id, {}).get(role, Decimal("0.00"))

    def user_assignment(self, p_index: int, u_index: int) -> _UserAssignment:
        key = (p_index, u_index)
        found = self.user_assignments.get(key)
        if found is None:
            found = self.user_assignments[key] = _UserAssignment(
                125_000_000 + len(self.user_assignments), False, True, False, None, self.created, self.created,
                self.rate(p_index, self.workers[u_index].role))
            self.task_assignment(p_index, self.task_index[self.workers[u_index].role])
        return found

    def task_assignment(self, p_index: int, t_index: int) -> _TaskAssignment:
        key = (p_index, t_index)
        found = self.task_assignments.get(key)
        if found is None:
            found = self.task_assignments[key] = _TaskAssignment(
                155_000_000 + len(self.task_assignments), True, True, self.created, self.created,
                self.rate(p_index, self.tasks[t_index]), None)
        return found

    # --- entries ----------------------------------------------------------------------------------------

    def _load(self, seeded: Iterator[SeedTimeEntry]) -> None:
        hours: dict[Decimal, Decimal] = {}
        stamps: dict[tuple[dt.date, int], tuple[dt.date, dt.datetime, dt.datetime]] = {}
        rows: list[Entry] = []
        for seed in seeded:
            u_index, p_index = self.user_index.get(seed.worker_id), self.project_index.get(seed.project_external_id)
            if u_index is None or p_index is None:
                continue
            state = STATES.index(seed.status) if seed.status in STATES else 0
            day_stamps = stamps.get((seed.date, state))
            if day_stamps is None:
                created = _stamp(seed.date, 17)
                day_stamps = stamps[(seed.date, state)] = (
                    seed.date, created, created + dt.timedelta(days=(0, 1, 3)[state]))
            self.user_assignment(p_index, u_index)
            t_index = self.task_index.get(seed.task, self.task_index[self.workers[u_index].role])
            rows.append(Entry(0, u_index, p_index, t_index, day_stamps[0], int(seed.id.rsplit("-", 1)[1]),
                              hours.setdefault(seed.hours, seed.hours), seed.billable, state, False,
                              seed.billable_rate, None, day_stamps[1], day_stamps[2]))
        rows.sort(key=lambda e: (e.spent_date, e.user, e.slot), reverse=True)
        top = ENTRY_ID_BASE + len(rows) - 1
        for position, entry in enumerate(rows):
            entry.id = top - position
        self.entries = rows
        self._keys = [-e.spent_date.toordinal() for e in rows]
        # Positions per project and per user, ascending (Harvest filters by these server-side: a per-project
        # read must not walk the whole firm's time). The store's rows never move or change owner after loading.
        self._by_project: dict[int, array[int]] = {}
        self._by_user: dict[int, array[int]] = {}
        for position, entry in enumerate(rows):
            self._by_project.setdefault(entry.project, array("i")).append(position)
            self._by_user.setdefault(entry.user, array("i")).append(position)
        self.last_stamp = max((e.updated_at for e in rows), default=self.created)

    def position(self, entry_id: int) -> int | None:
        position = ENTRY_ID_BASE + len(self.entries) - 1 - entry_id
        return position if 0 <= position < len(self.entries) else None

    def reference(self, entry: Entry) -> str:
        """The seed key of an entry (`TE-<worker>-<yyyymmdd>-<n>`), Harvest's external reference id."""
        day = self._days.get(entry.spent_date)
        if day is None:
            day = self._days[entry.spent_date] = entry.spent_date.strftime("%Y%m%d")
        return f"{self._prefixes[entry.user]}{day}-{entry.slot}"

    def find(self, reference: str) -> Entry | None:
        try:
            _, worker, stamp, slot = reference.split("-")
            day = dt.datetime.strptime(stamp, "%Y%m%d").date()
        except ValueError:
            return None
        u_index = self.user_index.get(f"W-{worker}")
        for position in range(*self.bounds(day, day)):
            entry = self.entries[position]
            if entry.user == u_index and str(entry.slot) == slot:
                return entry
        return None

    def bounds(self, start: dt.date | None, end: dt.date | None) -> tuple[int, int]:
        lo = 0 if end is None else bisect.bisect_left(self._keys, -end.toordinal())
        hi = len(self._keys) if start is None else bisect.bisect_right(self._keys, -start.toordinal())
        return lo, max(lo, hi)

    def scan(self, f: EntryFilter, start: int = 0) -> Iterator[Entry]:
        lo, hi = self.bounds(f.start, f.end)
        if f.is_running:  # nothing in the store runs a timer
            return
        lo = max(lo, start)
        positions: Sequence[int] = range(lo, hi)
        for index, key in ((self._by_project, f.project), (self._by_user, f.user)):
            if key is not None:
                owned = index.get(key, _NONE)
                owned = owned[bisect.bisect_left(owned, lo):bisect.bisect_left(owned, hi)]
                if len(owned) < len(positions):
                    positions = owned
        for position in positions:
            e = self.entries[position]
            if ((f.user is not None and e.user != f.user) or (f.project is not None and e.project != f.project)
                    or (f.task is not None and e.task != f.task)
                    or (f.client is not None and self.client_ids[self.seeds[e.project].account_id] != f.client)
                    or (f.is_billed is not None and e.is_billed != f.is_billed)
                    or (f.updated_since is not None and e.updated_at < f.updated_since)
                    or (f.reference is not None and self.reference(e) != f.reference)):
                continue
            yield e

    def tick(self) -> dt.datetime:
        """The next `updated_at`: now, but always after every stamp already handed out (1 s resolution)."""
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        self.last_stamp = max(now, self.last_stamp + dt.timedelta(seconds=1))
        self.version += 1
        return self.last_stamp

    # --- rendering --------------------------------------------------------------------------------------

    def render(self, e: Entry) -> WireEntry:
        is_closed, is_locked, reason = _FLAGS[e.state]
        seed, worker = self.seeds[e.project], self.workers[e.user]
        ua = self.user_assignment(e.project, e.user)
        rate = (e.rate if e.rate is not None else ua.hourly_rate) if e.billable else None
        code = seed.external_id
        reference = self.reference(e)
        return WireEntry(
            e.id, e.spent_date, self.user_refs[e.user], self.client_refs[seed.account_id], self.project_refs[e.project],
            self.task_refs[e.task], ua, self.task_assignment(e.project, e.task), e.hours, e.hours, e.hours,
            e.notes, e.created_at, e.updated_at, is_locked or e.is_billed,
            reason if not e.is_billed else "Item Invoiced and Approved and Locked for this Time Period",
            is_closed, e.is_billed, None, None, None, False, None,
            _ExternalReference(reference, code, None, f"https://psconnect.example/time/{reference}", "psconnect",
                               None),
            e.billable, True, rate, worker.cost_rate.amount)

    def user_record(self, index: int) -> dict[str, Any]:
        worker = self.workers[index]
        first, _, last = worker.name.partition(" ")
        return {"id": USER_ID_BASE + index, "first_name": first, "last_name": last, "email": worker.email,
                "telephone": "", "timezone": "Eastern Time (US & Canada)",
                "has_access_to_all_future_projects": False, "is_contractor": False,
                "is_active": worker.status != "terminated", "weekly_capacity": 144000,
                "default_hourly_rate": None, "cost_rate": worker.cost_rate.amount,
                "roles": [worker.role.replace("_", " ").title()], "access_roles": ["member"],
                "avatar_url": "https://d3s3969qhosaug.cloudfront.net/v2/user.png",
                "created_at": self.created, "updated_at": self.created}

    def project_record(self, index: int) -> dict[str, Any]:
        seed = self.seeds[index]
        client = self.client_refs[seed.account_id]
        fixed = seed.billing_type == "fixed_fee"
        return {"id": PROJECT_ID_BASE + index,
                "client": {"id": client.id, "name": client.name, "currency": seed.currency},
                "name": seed.name, "code": seed.external_id, "is_active": seed.status == "active",
                "is_billable": True, "is_fixed_fee": fixed, "bill_by": "People", "hourly_rate": None,
                "budget": None, "budget_by": "none", "budget_is_monthly": False, "notify_when_over_budget": False,
                "over_budget_notification_percentage": 80.0, "over_budget_notification_date": None,
                "show_budget_to_all": False, "cost_budget": None, "cost_budget_include_expenses": False,
                "fee": seed.budget.amount if fixed else None, "notes": "", "starts_on": seed.start_date,
                "ends_on": seed.end_date, "created_at": self.created, "updated_at": self.created}

    def client_record(self, account_id: str) -> dict[str, Any]:
        client = self.client_refs[account_id]
        return {"id": client.id, "name": client.name, "is_active": True, "address": "",
                "statement_key": f"{client.id:x}", "currency": self.client_currency[account_id],
                "created_at": self.created, "updated_at": self.created}

    def user_assignment_record(self, key: tuple[int, int]) -> dict[str, Any]:
        ua, ref = self.user_assignments[key], self.project_refs[key[0]]
        return {"id": ua.id, "project": {"id": ref.id, "name": ref.name, "code": ref.code},
                "user": {"id": self.user_refs[key[1]].id, "name": self.user_refs[key[1]].name},
                "is_active": True, "is_project_manager": False, "use_default_rates": False,
                "hourly_rate": ua.hourly_rate, "budget": None, "created_at": ua.created_at,
                "updated_at": ua.updated_at}

    def task_assignment_record(self, key: tuple[int, int]) -> dict[str, Any]:
        ta, ref = self.task_assignments[key], self.project_refs[key[0]]
        return {"id": ta.id, "project": {"id": ref.id, "name": ref.name, "code": ref.code},
                "task": {"id": self.task_refs[key[1]].id, "name": self.task_refs[key[1]].name},
                "is_active": True, "billable": True, "hourly_rate": ta.hourly_rate, "budget": None,
                "created_at": ta.created_at, "updated_at": ta.updated_at}
