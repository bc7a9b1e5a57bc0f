"""Summarised time posting: the lines of a batch become one Xero time entry per summary, exactly.

Xero's Projects API holds a time entry as whole minutes against a user and a task, and its limits
(60 calls a minute, 5,000 a day per organisation) cannot take a month of single entries. So a
batch's lines are grouped per project, worker, rate, billable and month (`summary_key`) and each
group is posted as **one** time entry: on the rate's task, for the connection's integration user,
dated at the group's last day, its duration the sum of its lines' minutes, its description naming
the summary key and the worker. A summary that adds up to no time (reversals of lines posted in an
earlier batch: Xero holds no negative duration) is folded into the group's earlier entry instead: that
entry's duration is set (``PUT``, absolute, so a replay sets the same value) to the sum of all its lines.

The composition — which line keys (with their date, hours and amount) make a summary — is kept in
``xero_time_lines`` (``foundation.db.metadata``), written *before* the entry is posted. Reading posted
time reads Xero's entries and expands each summary into its lines again, after checking that the
entry's minutes equal the sum of its lines' minutes; so the posting result and the posted-time list
answer per line key, and reconciliation matches every ledger line, as with an ERP that posts per entry.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Final

import msgspec
import sqlalchemy as sa

from contracts.billing import TimePostingLine
from foundation.db import metadata

__all__ = ["SUMMARY_GROUPING", "SummaryLine", "SummaryStore", "group_key", "minutes", "summary_key", "time_lines"]

SUMMARY_GROUPING: Final = ["project_external_id", "employee_external_id", "rate", "billable", "period"]
DESCRIPTION_PREFIX: Final = "psconnect summary "

time_lines = sa.Table(
    "xero_time_lines", metadata,
    sa.Column("connection", sa.String(120), primary_key=True),
    sa.Column("batch_key", sa.String(120), primary_key=True),
    sa.Column("line_key", sa.String(200), primary_key=True),
    sa.Column("summary_key", sa.String(64), nullable=False, index=True),
    sa.Column("group_key", sa.String(64), nullable=False, index=True),
    sa.Column("project_external_id", sa.String(80), nullable=False),
    sa.Column("employee_external_id", sa.String(80), nullable=False),
    sa.Column("date", sa.Date, nullable=False),
    sa.Column("hours", sa.String(32), nullable=False),
    sa.Column("amount", sa.String(32), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("billable", sa.Boolean, nullable=False),
    sa.Column("time_entry_id", sa.String(64)),
    sa.Column("error", sa.Text),
    sa.Column("refusal", sa.String(32)),
)


class SummaryLine(msgspec.Struct, frozen=True, kw_only=True):
    """One posting line as kept beside its summary."""

    batch_key: str
    line_key: str
    summary_key: str
    group_key: str
    project_external_id: str
    employee_external_id: str
    date: dt.date
    hours: str
    amount: str
    currency: str
    billable: bool
    time_entry_id: str | None = None
    error: str | None = None
    refusal: str | None = None


def minutes(hours: str) -> int | None:
    """Whole minutes of decimal hours, or None when the hours are not a whole number of minutes."""
    value = Decimal(hours) * 60
    return int(value) if value == value.to_integral_value() else None


def group_key(line: TimePostingLine) -> str:
    """What a summary groups by, whatever the batch: project, worker, rate, billable and month."""
    parts = (line.project_external_id, line.employee_external_id, str(line.rate.amount), line.rate.currency,
             "b" if line.billable else "n", f"{line.date:%Y-%m}")
    return "g" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:31]


def summary_key(batch_key: str, line: TimePostingLine) -> str:
    """The summary a line belongs to: its group within its batch."""
    return "s" + hashlib.sha256(f"{batch_key}\x1f{group_key(line)}".encode()).hexdigest()[:31]


def _row(connection: str, line: SummaryLine) -> dict[str, object]:
    return {"connection": connection, **msgspec.structs.asdict(line)}


class SummaryStore:
    """The compositions of summarised time entries, per connection."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        time_lines.create(engine, checkfirst=True)

    def record(self, connection: str, lines: Sequence[SummaryLine]) -> None:
        """Keep lines not kept yet (a replayed batch keeps its first composition)."""
        if not lines:
            return
        batch = lines[0].batch_key
        with self.engine.begin() as conn:
            known = set(conn.execute(sa.select(time_lines.c.line_key).where(
                time_lines.c.connection == connection, time_lines.c.batch_key == batch)).scalars())
            fresh = [_row(connection, ln) for ln in lines if ln.line_key not in known]
            if fresh:
                conn.execute(sa.insert(time_lines), fresh)

    def posted(self, connection: str, summary: str, time_entry_id: str) -> None:
        """The summary's entry in Xero: its lines not refused before are posted in it."""
        with self.engine.begin() as conn:
            conn.execute(sa.update(time_lines).where(time_lines.c.connection == connection,
                                                     time_lines.c.summary_key == summary,
                                                     time_lines.c.error.is_(None))
                         .values(time_entry_id=time_entry_id))

    def failed(self, connection: str, batch_key: str, line_keys: Iterable[str], error: str, refusal: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.update(time_lines).where(time_lines.c.connection == connection,
                                                     time_lines.c.batch_key == batch_key,
                                                     time_lines.c.line_key.in_(list(line_keys)))
                         .values(error=error, refusal=refusal))

    def entry_lines(self, connection: str, group: str) -> dict[str, list[SummaryLine]]:
        """The posted lines of a group, by the Xero time entry holding them (earlier batches' summaries)."""
        out: dict[str, list[SummaryLine]] = {}
        for line in self._select(time_lines.c.connection == connection, time_lines.c.group_key == group,
                                 time_lines.c.time_entry_id.is_not(None)):
            out.setdefault(str(line.time_entry_id), []).append(line)
        return out

    def batch(self, connection: str, batch_key: str) -> list[SummaryLine]:
        return self._select(time_lines.c.connection == connection, time_lines.c.batch_key == batch_key)

    def by_entry(self, connection: str, entry_ids: Iterable[str]) -> dict[str, list[SummaryLine]]:
        """The lines each Xero time entry holds (its summary's, and reversals folded into it later)."""
        wanted = list(dict.fromkeys(entry_ids))
        out: dict[str, list[SummaryLine]] = {k: [] for k in wanted}
        for start in range(0, len(wanted), 500):
            for line in self._select(time_lines.c.connection == connection,
                                     time_lines.c.time_entry_id.in_(wanted[start:start + 500])):
                out[str(line.time_entry_id)].append(line)
        return out

    def _select(self, *where: sa.ColumnElement[bool]) -> list[SummaryLine]:
        columns = [c for c in time_lines.c if c.name != "connection"]
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(*columns).where(*where).order_by(time_lines.c.line_key)).mappings().all()
        return [SummaryLine(**dict(r)) for r in rows]
