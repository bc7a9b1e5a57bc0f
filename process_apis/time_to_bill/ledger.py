"""The billing ledger: one row per time-entry or expense *version*, so billing is tracked per line, never per timesheet.

Expenses (`kind = expense`, reversed as `exp_rev`) share the ledger with time: one unit each, the cost
in `rate`, the billed amount (with markup) in `amount`, the category in `role`, the captured expense in
`payload`. They are claimed and posted apart from time (`EXPENSE_KINDS`), and invoiced and credited with it.

A row's key is the entry id plus a hash of its billable fields (`rules.line_key`). Seeing
the same version again changes nothing; a new version supersedes the old row and, if the
old one reached the ERP, adds a reversal row (negative hours and amount) — so the ERP and
the invoice receive exactly the difference, once. Rows move
`validated -> posted -> invoiced`; reversals of invoiced lines become credit-memo lines.

Writes are batched (`executemany`) and posting claims rows atomically with a claim token
(`run:batch`), so a retried or re-executed step re-sends the same rows under the same
ERP batch key and two concurrent runs never post one row twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

import msgspec
import sqlalchemy as sa

from foundation.clock import utcnow
from foundation.db import insert_new, metadata
from process_apis.time_to_bill.rules import PricedLine

__all__ = ["EXPENSE_KINDS", "LEDGER_STATES", "TIME_KINDS", "ExceptionLine", "Ledger", "LedgerRow", "RecordCounts",
           "ledger"]

LEDGER_STATES = ("validated", "exception", "posted", "invoiced", "superseded", "failed")
TIME_KINDS = ("time", "reversal")
EXPENSE_KINDS = ("expense", "exp_rev")
"""What one posting claims: time goes to the ERP as time, expenses as project costs (`expense_rules.py`)."""
_REVERSAL = {"time": "reversal", "expense": "exp_rev"}

ledger = sa.Table(
    "ttb_ledger", metadata,
    sa.Column("line_key", sa.String(200), primary_key=True),
    sa.Column("entry_id", sa.String(120), nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),  # time | reversal | milestone | expense | exp_rev
    sa.Column("reverses", sa.String(200)),
    sa.Column("project", sa.String(80), nullable=False),
    sa.Column("worker_id", sa.String(120), nullable=False),
    sa.Column("legal_entity_code", sa.String(10), nullable=False),
    sa.Column("period", sa.String(7), nullable=False),
    sa.Column("date", sa.Date, nullable=False),
    sa.Column("hours", sa.String(20), nullable=False),
    sa.Column("rate", sa.String(20), nullable=False),
    sa.Column("amount", sa.String(24), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("billable", sa.Boolean, nullable=False),
    sa.Column("role", sa.String(60), nullable=False),
    sa.Column("state", sa.String(12), nullable=False),
    sa.Column("claim", sa.String(120)),
    sa.Column("erp_time_id", sa.String(64)),
    sa.Column("invoice_id", sa.String(120)),
    sa.Column("exception_id", sa.String(64)),
    sa.Column("reason", sa.String(60)),
    sa.Column("payload", sa.LargeBinary),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_ttb_ledger_entry", "entry_id"),
    sa.Index("ix_ttb_ledger_le_state", "legal_entity_code", "state"),
    sa.Index("ix_ttb_ledger_project_period", "project", "period"),
    sa.Index("ix_ttb_ledger_exception", "exception_id"),
)

unclaimed = sa.Index(
    "ix_ttb_ledger_unclaimed", ledger.c.legal_entity_code, ledger.c.line_key,
    sqlite_where=sa.and_(ledger.c.state == "validated", ledger.c.claim.is_(None)),
    postgresql_where=sa.and_(ledger.c.state == "validated", ledger.c.claim.is_(None)))
"""Only the rows still waiting to be posted, in claim order: each claim reads its batch off the front of this
index instead of sorting every validated row of the legal entity (which made a month-end run quadratic)."""


_VALIDATED: sa.ColumnElement[str] = sa.literal_column("'validated'", sa.String)
"""Inline, not a bound parameter: a cached generic plan must still see that the partial index applies."""


claimed = sa.Index("ix_ttb_ledger_claimed", ledger.c.claim, sqlite_where=ledger.c.claim.is_not(None),
                   postgresql_where=ledger.c.claim.is_not(None))
"""Every posting step looks its claim up. Claimed rows only: in SQLite's plain index on `claim` (the former
`ix_ttb_ledger_claim`) each claim's update had to find its rows' entries among every other NULL — a month-end
run's claims took quadratic time."""


@sa.event.listens_for(metadata, "after_create")
def _ensure_claim_indexes(_target: sa.MetaData, connection: sa.Connection, **_kw: Any) -> None:
    """`create_all` creates indexes only with a new table: a ledger created before these indexes gets them here."""
    if not sa.inspect(connection).has_table(ledger.name):
        return
    connection.execute(sa.schema.CreateIndex(unclaimed, if_not_exists=True))
    connection.execute(sa.schema.CreateIndex(claimed, if_not_exists=True))
    connection.execute(sa.text("DROP INDEX IF EXISTS ix_ttb_ledger_claim"))


class ExceptionLine(msgspec.Struct, frozen=True, kw_only=True):
    """An entry (or expense) version that failed validation, kept with its payload so a replay can re-validate it."""

    line_key: str
    entry_id: str
    project: str
    worker_id: str
    legal_entity_code: str
    period: str
    date: dt.date
    hours: Decimal
    billable: bool
    exception_id: str
    reason: str
    payload: bytes
    kind: str = "time"


class LedgerRow(msgspec.Struct, frozen=True, kw_only=True):
    line_key: str
    entry_id: str
    kind: str
    reverses: str | None
    project: str
    worker_id: str
    legal_entity_code: str
    period: str
    date: dt.date
    hours: Decimal
    rate: Decimal
    amount: Decimal
    currency: str
    billable: bool
    role: str
    state: str
    erp_time_id: str | None
    invoice_id: str | None
    exception_id: str | None
    reason: str | None


class RecordCounts(msgspec.Struct, kw_only=True):
    new: int = 0
    unchanged: int = 0
    superseded: int = 0
    reversals: int = 0
    exceptions: int = 0


_COLS = [c for c in ledger.c if c.name != "payload"]


def _row(r: Any) -> LedgerRow:
    m = r._mapping
    return LedgerRow(line_key=m["line_key"], entry_id=m["entry_id"], kind=m["kind"], reverses=m["reverses"],
                     project=m["project"], worker_id=m["worker_id"], legal_entity_code=m["legal_entity_code"],
                     period=m["period"], date=m["date"], hours=Decimal(m["hours"]), rate=Decimal(m["rate"]),
                     amount=Decimal(m["amount"]), currency=m["currency"], billable=m["billable"], role=m["role"],
                     state=m["state"], erp_time_id=m["erp_time_id"], invoice_id=m["invoice_id"],
                     exception_id=m["exception_id"], reason=m["reason"])


def _chunks(items: Sequence[str], size: int = 500) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


class Ledger:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    # --- recording validated and rejected versions -------------------------------------------------------------

    def record(self, outcomes: Sequence[PricedLine | ExceptionLine]) -> RecordCounts:
        """Store each entry version once; a changed version supersedes (and if needed reverses) the old one."""
        counts = RecordCounts()
        if not outcomes:
            return counts
        now = utcnow()
        latest = list({o.entry_id: o for o in outcomes}.values())  # one version per entry per call: the last
        entry_ids = [o.entry_id for o in latest]
        with self.engine.begin() as conn:
            current: dict[str, LedgerRow] = {}
            taken: set[str] = set()
            for chunk in _chunks(entry_ids):
                for r in conn.execute(sa.select(*_COLS).where(ledger.c.entry_id.in_(chunk),
                                                              ledger.c.kind.in_(tuple(_REVERSAL)))):
                    row = _row(r)
                    taken.add(row.line_key)
                    if row.state != "superseded":
                        current[row.entry_id] = row
            inserts: list[dict[str, Any]] = []
            supersede: list[str] = []
            revalidated: list[dict[str, Any]] = []
            reopened: list[dict[str, Any]] = []
            for o in latest:
                cur = current.get(o.entry_id)
                if cur is not None and cur.line_key == o.line_key:
                    if cur.state == "exception" and isinstance(o, PricedLine):
                        revalidated.append({"k": o.line_key, **_priced_values(o)})
                        counts.new += 1
                    elif cur.state == "exception" and isinstance(o, ExceptionLine):
                        reopened.append({"k": o.line_key, "exception_id": o.exception_id, "reason": o.reason})
                        counts.exceptions += 1
                    else:
                        counts.unchanged += 1
                    continue
                key = o.line_key
                if cur is not None:
                    supersede.append(cur.line_key)
                    counts.superseded += 1
                    if cur.state in ("posted", "invoiced") or (cur.state == "validated" and _claimed(conn, cur)):
                        inserts.append(_reversal(cur, now))
                        counts.reversals += 1
                generation = 1
                while key in taken:  # a version seen before, superseded since, approved again
                    generation += 1
                    key = f"{o.line_key}~{generation}"
                taken.add(key)
                inserts.append({**_values(o, now), "line_key": key})
                if isinstance(o, ExceptionLine):
                    counts.exceptions += 1
                else:
                    counts.new += 1
            if supersede:
                for chunk in _chunks(supersede):
                    conn.execute(ledger.update().where(ledger.c.line_key.in_(chunk))
                                 .values(state="superseded", updated_at=now))
            if revalidated:
                conn.execute(ledger.update().where(ledger.c.line_key == sa.bindparam("k")).values(
                    state="validated", exception_id=None, reason=None, payload=sa.bindparam("payload"),
                    updated_at=now,
                    rate=sa.bindparam("rate"), amount=sa.bindparam("amount"), role=sa.bindparam("role"),
                    worker_id=sa.bindparam("worker_id"), currency=sa.bindparam("currency")), revalidated)
            if reopened:
                conn.execute(ledger.update().where(ledger.c.line_key == sa.bindparam("k")).values(
                    exception_id=sa.bindparam("exception_id"), reason=sa.bindparam("reason"), updated_at=now),
                    reopened)
            if inserts:
                conn.execute(ledger.insert(), inserts)
        return counts

    # --- posting -----------------------------------------------------------------------------------------------

    def claim(self, legal_entity_code: str, claim: str, limit: int = 1000,
              kinds: Sequence[str] = TIME_KINDS) -> list[LedgerRow]:
        """Rows this claim holds, or (if none yet) up to `limit` unclaimed validated rows of `kinds`, claimed
        atomically."""
        with self.engine.begin() as conn:
            held = conn.execute(sa.select(*_COLS).where(ledger.c.claim == claim, ledger.c.state == "validated")
                                .order_by(ledger.c.line_key)).all()
            if held:
                return [_row(r) for r in held]
            free = list(conn.execute(
                sa.select(ledger.c.line_key).where(ledger.c.legal_entity_code == legal_entity_code,
                                                   ledger.c.state == _VALIDATED, ledger.c.claim.is_(None),
                                                   ledger.c.kind.in_(list(kinds)))
                .order_by(ledger.c.line_key).limit(limit)).scalars())  # the front of `ix_ttb_ledger_unclaimed`
            if not free:
                return []
            for chunk in _chunks(free):  # by primary key; a row another claim took meanwhile stays its
                conn.execute(ledger.update().where(ledger.c.line_key.in_(chunk), ledger.c.claim.is_(None),
                                                   ledger.c.state == "validated").values(claim=claim))
            rows = conn.execute(sa.select(*_COLS).where(ledger.c.claim == claim, ledger.c.state == "validated")
                                .order_by(ledger.c.line_key)).all()
        return [_row(r) for r in rows]

    def release(self, claim: str) -> None:
        """Give back a claim's unposted rows (its ERP step gave up), so a later run can post them."""
        with self.engine.begin() as conn:
            conn.execute(ledger.update().where(ledger.c.claim == claim, ledger.c.state == "validated")
                         .values(claim=None))

    def mark_posted(self, posted: dict[str, str], failed: dict[str, str]) -> None:
        now = utcnow()
        with self.engine.begin() as conn:
            if posted:
                conn.execute(ledger.update().where(ledger.c.line_key == sa.bindparam("k"),
                                                   ledger.c.state == "validated")
                             .values(state="posted", erp_time_id=sa.bindparam("erp"), updated_at=now),
                             [{"k": k, "erp": v} for k, v in posted.items()])
            if failed:
                conn.execute(ledger.update().where(ledger.c.line_key == sa.bindparam("k"))
                             .values(state="failed", reason=sa.bindparam("why"), updated_at=now),
                             [{"k": k, "why": v[:60]} for k, v in failed.items()])

    def to_exception(self, keys: Sequence[str], exception_id: str, reason: str) -> None:
        """Park rows the ERP refused (e.g. a period closed meanwhile) on an exception, for replay."""
        with self.engine.begin() as conn:
            for chunk in _chunks(list(keys)):
                conn.execute(ledger.update().where(ledger.c.line_key.in_(chunk), ledger.c.state == "validated")
                             .values(state="exception", claim=None, exception_id=exception_id, reason=reason[:60],
                                     updated_at=utcnow()))

    def requeue(self, keys: Sequence[str]) -> None:
        """Back to validated (unclaimed): a replay after the ERP-side cause was fixed."""
        with self.engine.begin() as conn:
            for chunk in _chunks(list(keys)):
                conn.execute(ledger.update().where(ledger.c.line_key.in_(chunk), ledger.c.state == "exception")
                             .values(state="validated", claim=None, exception_id=None, reason=None,
                                     updated_at=utcnow()))

    # --- invoicing ---------------------------------------------------------------------------------------------

    def invoiceable(self, project: str, period: str) -> list[LedgerRow]:
        """Posted, billable, not yet invoiced time and expense lines: partial billing leaves the rest for later."""
        return self.invoiceable_many([project], period).get(project, [])

    def invoiceable_many(self, projects: Sequence[str], period: str) -> dict[str, list[LedgerRow]]:
        """`invoiceable` for a chunk of projects in one query per 500 (an invoicing step reads its chunk once)."""
        out: dict[str, list[LedgerRow]] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(projects)):
                for r in conn.execute(sa.select(*_COLS).where(
                        ledger.c.project.in_(chunk), ledger.c.period == period,
                        ledger.c.kind.in_(("time", "expense")),
                        ledger.c.state == "posted", ledger.c.billable.is_(True)).order_by(ledger.c.line_key)):
                    row = _row(r)
                    out.setdefault(row.project, []).append(row)
        return out

    def creditable(self, project: str, period: str) -> list[tuple[LedgerRow, str]]:
        """Posted reversals whose original was invoiced, with that invoice's external id."""
        return self.creditable_many([project], period).get(project, [])

    def creditable_many(self, projects: Sequence[str], period: str) -> dict[str, list[tuple[LedgerRow, str]]]:
        original = ledger.alias("original")
        out: dict[str, list[tuple[LedgerRow, str]]] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(projects)):
                for r in conn.execute(sa.select(*_COLS, original.c.invoice_id.label("original_invoice")).join(
                        original, original.c.line_key == ledger.c.reverses).where(
                        ledger.c.project.in_(chunk), ledger.c.period == period,
                        ledger.c.kind.in_(tuple(_REVERSAL.values())),
                        ledger.c.state == "posted", original.c.invoice_id.is_not(None), ledger.c.billable.is_(True))
                        .order_by(ledger.c.line_key)):
                    row = _row(r)
                    out.setdefault(row.project, []).append((row, r._mapping["original_invoice"]))
        return out

    def billed_milestones(self, project: str) -> set[str]:
        return self.billed_milestones_many([project]).get(project, set())

    def billed_milestones_many(self, projects: Sequence[str]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(projects)):
                for project, key in conn.execute(sa.select(ledger.c.project, ledger.c.line_key).where(
                        ledger.c.project.in_(chunk), ledger.c.kind == "milestone")):
                    out.setdefault(project, set()).add(key)
        return out

    def mark_invoiced(self, keys: Sequence[str], invoice_id: str, milestones: Sequence[dict[str, Any]] = ()) -> None:
        self.mark_invoiced_many([(keys, invoice_id, milestones)])

    def mark_invoiced_many(self, documents: Sequence[tuple[Sequence[str], str, Sequence[dict[str, Any]]]]) -> None:
        """Mark the lines (and add the milestone rows) of several written documents in one transaction.

        One `executemany` per kind, not a statement and commit per document: a month-end run writes
        over a thousand. A milestone row already there (a retried step) is left as it is.
        """
        now = utcnow()
        lines = [{"k": key, "inv": invoice_id} for keys, invoice_id, _ in documents for key in keys]
        milestones = [{**m, "kind": "milestone", "state": "invoiced", "invoice_id": invoice_id, "updated_at": now}
                      for _, invoice_id, ms in documents for m in ms]
        if not lines and not milestones:
            return
        with self.engine.begin() as conn:
            if lines:
                conn.execute(ledger.update().where(ledger.c.line_key == sa.bindparam("k"), ledger.c.state == "posted")
                             .values(state="invoiced", invoice_id=sa.bindparam("inv"), updated_at=now), lines)
            if milestones:
                conn.execute(insert_new(conn, ledger, ledger.c.line_key), milestones)

    def projects_with_work(self, legal_entity_code: str, period: str) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(ledger.c.project).distinct().where(
                ledger.c.legal_entity_code == legal_entity_code, ledger.c.period == period,
                ledger.c.state == "posted").order_by(ledger.c.project)).scalars())

    # --- reading -----------------------------------------------------------------------------------------------

    def lines(self, project: str, period: str) -> list[LedgerRow]:
        return self._select((ledger.c.project == project, ledger.c.period == period))

    def by_exception(self, exception_id: str) -> list[tuple[LedgerRow, bytes]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(*_COLS, ledger.c.payload).where(
                ledger.c.exception_id == exception_id, ledger.c.state == "exception")).all()
        return [(_row(r), r._mapping["payload"]) for r in rows]

    def states(self, keys: Sequence[str]) -> dict[str, str]:
        """The state of each line key the ledger holds (reconciliation tells a line the ERP refused from a gap)."""
        out: dict[str, str] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(keys)):
                out.update((k, s) for k, s in conn.execute(
                    sa.select(ledger.c.line_key, ledger.c.state).where(ledger.c.line_key.in_(chunk))))
        return out

    def payloads(self, keys: Sequence[str]) -> dict[str, bytes | None]:
        """The captured item kept with each line (an expense's receipt and original currency travel to the ERP)."""
        out: dict[str, bytes | None] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(keys)):
                out.update((k, p) for k, p in conn.execute(
                    sa.select(ledger.c.line_key, ledger.c.payload).where(ledger.c.line_key.in_(chunk))))
        return out

    def state_counts(self, legal_entity_code: str | None = None) -> dict[str, int]:
        query = sa.select(ledger.c.state, sa.func.count()).group_by(ledger.c.state)
        if legal_entity_code:
            query = query.where(ledger.c.legal_entity_code == legal_entity_code)
        with self.engine.connect() as conn:
            return {str(r[0]): int(r[1]) for r in conn.execute(query)}

    def _select(self, where: Iterable[sa.ColumnElement[bool]]) -> list[LedgerRow]:
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(sa.select(*_COLS).where(*where).order_by(ledger.c.line_key))]


def _claimed(conn: sa.Connection, row: LedgerRow) -> bool:
    return conn.execute(sa.select(ledger.c.claim).where(ledger.c.line_key == row.line_key)).scalar() is not None


def _priced_values(o: PricedLine) -> dict[str, Any]:
    return {"rate": str(o.rate), "amount": str(o.amount), "role": o.role, "worker_id": o.worker_id,
            "currency": o.currency, "payload": o.payload}


def _values(o: PricedLine | ExceptionLine, now: dt.datetime) -> dict[str, Any]:
    base = {"entry_id": o.entry_id, "kind": o.kind, "reverses": None, "project": o.project, "worker_id": o.worker_id,
            "legal_entity_code": o.legal_entity_code, "period": o.period, "date": o.date, "hours": str(o.hours),
            "billable": o.billable, "claim": None, "erp_time_id": None, "invoice_id": None, "updated_at": now}
    if isinstance(o, PricedLine):
        return {**base, **_priced_values(o), "state": "validated", "exception_id": None, "reason": None}
    return {**base, "rate": "0", "amount": "0", "role": "", "currency": "XXX", "state": "exception",
            "exception_id": o.exception_id, "reason": o.reason, "payload": o.payload}


def _reversal(cur: LedgerRow, now: dt.datetime) -> dict[str, Any]:
    return {"line_key": f"{cur.line_key}:rev", "entry_id": cur.entry_id, "kind": _REVERSAL[cur.kind],
            "reverses": cur.line_key,
            "project": cur.project, "worker_id": cur.worker_id, "legal_entity_code": cur.legal_entity_code,
            "period": cur.period, "date": cur.date, "hours": str(-cur.hours), "rate": str(cur.rate),
            "amount": str(-cur.amount), "currency": cur.currency, "billable": cur.billable, "role": cur.role,
            "state": "validated", "claim": None, "erp_time_id": None, "invoice_id": None, "exception_id": None,
            "reason": None, "payload": None, "updated_at": now}

