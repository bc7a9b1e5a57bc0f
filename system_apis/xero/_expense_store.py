"""What each expense posting batch did, per line: the Xero document that holds a line, or why it was refused.

Xero holds the posted lines (one bill or credit note per line key, see `_expense_mapping`), but not a batch:
the answer to a batch key — which lines it posted, which it refused and why — is kept here
(``xero_expense_lines``, ``foundation.db.metadata``). A batch's lines are written *before* anything reaches Xero,
so a batch cut short (a crash, Xero down) is known and finished when its key is posted again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec
import sqlalchemy as sa

from foundation.db import metadata

__all__ = ["ExpenseLine", "ExpenseStore", "expense_lines"]

expense_lines = sa.Table(
    "xero_expense_lines", metadata,
    sa.Column("connection", sa.String(120), primary_key=True),
    sa.Column("batch_key", sa.String(120), primary_key=True),
    sa.Column("line_key", sa.String(200), primary_key=True, index=True),
    sa.Column("record_id", sa.String(64)),
    sa.Column("error", sa.Text),
    sa.Column("refusal", sa.String(32)),
)


class ExpenseLine(msgspec.Struct, frozen=True, kw_only=True):
    """One line of a batch: unsettled, posted (``record_id``: the Xero InvoiceID or CreditNoteID) or refused."""

    batch_key: str
    line_key: str
    record_id: str | None = None
    error: str | None = None
    refusal: str | None = None

    @property
    def settled(self) -> bool:
        return self.record_id is not None or self.error is not None


class ExpenseStore:
    """The expense posting batches of each connection."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        expense_lines.create(engine, checkfirst=True)

    def record(self, connection: str, batch_key: str, line_keys: Iterable[str]) -> None:
        """Keep the lines of a batch not kept yet (a batch posted again keeps its first lines' outcomes)."""
        with self.engine.begin() as conn:
            known = set(conn.execute(sa.select(expense_lines.c.line_key).where(
                expense_lines.c.connection == connection, expense_lines.c.batch_key == batch_key)).scalars())
            fresh = [{"connection": connection, "batch_key": batch_key, "line_key": key}
                     for key in dict.fromkeys(line_keys) if key not in known]
            if fresh:
                conn.execute(sa.insert(expense_lines), fresh)

    def batch(self, connection: str, batch_key: str) -> list[ExpenseLine]:
        columns = [c for c in expense_lines.c if c.name != "connection"]
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(*columns).where(
                expense_lines.c.connection == connection, expense_lines.c.batch_key == batch_key)
                .order_by(expense_lines.c.line_key)).mappings().all()
        return [ExpenseLine(**dict(r)) for r in rows]

    def posted_before(self, connection: str, line_keys: Iterable[str]) -> dict[str, str]:
        """The Xero record of each line key some batch of this connection posted."""
        wanted = list(dict.fromkeys(line_keys))
        out: dict[str, str] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), 500):
                rows = conn.execute(sa.select(expense_lines.c.line_key, expense_lines.c.record_id).where(
                    expense_lines.c.connection == connection, expense_lines.c.record_id.is_not(None),
                    expense_lines.c.line_key.in_(wanted[start:start + 500])))
                out.update({str(key): str(record) for key, record in rows})
        return out

    def posted(self, connection: str, batch_key: str, records: Mapping[str, str]) -> None:
        with self.engine.begin() as conn:
            for line_key, record_id in records.items():
                conn.execute(sa.update(expense_lines).where(
                    expense_lines.c.connection == connection, expense_lines.c.batch_key == batch_key,
                    expense_lines.c.line_key == line_key).values(record_id=record_id, error=None, refusal=None))

    def failed(self, connection: str, batch_key: str, refusals: Mapping[str, tuple[str, str]]) -> None:
        """``refusals``: line key -> (Xero's or psconnect's error, canonical refusal reason)."""
        with self.engine.begin() as conn:
            for line_key, (error, refusal) in refusals.items():
                conn.execute(sa.update(expense_lines).where(
                    expense_lines.c.connection == connection, expense_lines.c.batch_key == batch_key,
                    expense_lines.c.line_key == line_key).values(error=error, refusal=refusal))
