"""Intercompany charges: a consultant of one legal entity staffed on another's project is charged to it at cost plus.

The project's entity bills its client for the consultant's time like any other (the ledger), and owes the
consultant's employer for it: each posted time line of a consultant whose HR legal entity is not the project's
is charged at the transfer rate — the consultant's HR cost rate plus the markup of the connections file's
`intercompany:` entry for that (employer, project entity) pair — in the employer's currency. The charge is
recorded twice, each side in its own entity's ERP through the ERP contract: a receivable in the employer's books,
a payable in the project entity's, under one external id stem (`…-R`, `…-P`).

`ttb_intercompany` holds each charged line once. A billing run of the project's entity (`charge_step` in the
workflow) first takes the lines the table lacks and assigns them to a document per (employer, period, currency)
in one transaction, then sends every assigned document not yet recorded on both sides. A retried or resumed step
re-sends the same documents under the same external ids (the ERPs record an external id once), and a line is in
one document only, so nothing is charged twice; a line changed after it was charged is reversed in the ledger,
and its reversal is charged (negative, at the original's rate) in a later document.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any, Final

import msgspec
import sqlalchemy as sa

from contracts.billing import INTERCOMPANY_DOCUMENT_LINES, IntercompanyChargeUpsert, IntercompanyLine
from contracts.common import Money
from foundation.clock import utcnow
from foundation.db import metadata
from process_apis.time_to_bill.ledger import TIME_KINDS, ledger
from process_apis.time_to_bill.rules import Reference, quantize

__all__ = ["IntercompanyBook", "IntercompanyDocument", "TransferMarkup", "intercompany", "transfer_rate"]

TransferMarkup = Callable[[str, str], Decimal]
"""(employer's entity code, project's entity code) -> markup percent on the consultant's cost rate."""
ASSIGNED: Final = "assigned"
CHARGED: Final = "charged"

intercompany = sa.Table(
    "ttb_intercompany", metadata,
    sa.Column("line_key", sa.String(200), primary_key=True),  # the ledger's time line (or reversal) charged
    sa.Column("employer", sa.String(10), nullable=False),
    sa.Column("project_entity", sa.String(10), nullable=False),
    sa.Column("period", sa.String(7), nullable=False),
    sa.Column("project", sa.String(80), nullable=False),
    sa.Column("worker_id", sa.String(120), nullable=False),
    sa.Column("date", sa.Date, nullable=False),
    sa.Column("hours", sa.String(20), nullable=False),
    sa.Column("transfer_rate", sa.String(24), nullable=False),
    sa.Column("amount", sa.String(24), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("document", sa.String(120), nullable=False),
    sa.Column("state", sa.String(10), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_ttb_intercompany_document", "document"),
    sa.Index("ix_ttb_intercompany_entity_state", "project_entity", "state"),
)


class IntercompanyDocument(msgspec.Struct, frozen=True, kw_only=True):
    """One charge as both sides record it: the employer's receivable and the project entity's payable."""

    stem: str
    employer: str
    project_entity: str
    period: str
    currency: str
    lines: tuple[IntercompanyLine, ...]

    def side(self, side: str, legal_entity_id: str) -> tuple[str, IntercompanyChargeUpsert]:
        """(external id, body) of one side, `legal_entity_id` being the ERP id of the entity whose books it is."""
        counterparty = self.project_entity if side == "receivable" else self.employer
        return f"{self.stem}-{side[0].upper()}", IntercompanyChargeUpsert(
            legal_entity_id=legal_entity_id, counterparty=counterparty, side=side,  # type: ignore[arg-type]
            period=self.period, currency=self.currency, lines=list(self.lines),
            memo=f"Consultants of {self.employer} on {self.project_entity}'s projects, {self.period}")


def transfer_rate(cost_rate: Decimal, markup_percent: Decimal) -> Decimal:
    """The hourly transfer rate: cost plus the markup, half-up to the cent."""
    return quantize(cost_rate * (1 + markup_percent / 100))


class IntercompanyBook:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def assign(self, project_entity: str, ref: Reference, markup: TransferMarkup) -> int:
        """Take the entity's posted time lines of other entities' consultants that no charge holds yet, at their
        transfer rate, into documents; returns the lines assigned. One transaction: a line is in one document."""
        workers = {w.id: w for w in ref.workers.values()}
        borrowed = [w.id for w in workers.values() if w.legal_entity_code not in ("", project_entity)]
        if not borrowed:
            return 0
        now = utcnow()
        c = ledger.c
        with self.engine.begin() as conn:
            rows = conn.execute(sa.select(c.line_key, c.kind, c.reverses, c.project, c.worker_id, c.period, c.date,
                                          c.hours).where(
                c.legal_entity_code == project_entity, c.kind.in_(TIME_KINDS), c.state.in_(("posted", "invoiced")),
                c.worker_id.in_(borrowed),
                ~sa.exists().where(intercompany.c.line_key == c.line_key)).order_by(c.line_key)).all()
            if not rows:
                return 0
            originals = dict(conn.execute(sa.select(intercompany.c.line_key, intercompany.c.transfer_rate).where(
                intercompany.c.line_key.in_([r.reverses for r in rows if r.reverses]))).all())
            values = []
            for r in rows:
                worker = workers[r.worker_id]
                rate = Decimal(originals[r.reverses]) if r.reverses in originals else \
                    transfer_rate(worker.cost_rate or Decimal(0), markup(worker.legal_entity_code, project_entity))
                hours = Decimal(r.hours)
                values.append({"line_key": r.line_key, "employer": worker.legal_entity_code,
                               "project_entity": project_entity, "period": r.period, "project": r.project,
                               "worker_id": r.worker_id, "date": r.date, "hours": str(hours),
                               "transfer_rate": str(rate), "amount": str(quantize(hours * rate)),
                               "currency": worker.cost_currency, "state": ASSIGNED, "updated_at": now})
            groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
            for v in values:
                groups.setdefault((v["employer"], v["period"], v["currency"]), []).append(v)
            for (employer, period, _), members in groups.items():
                for start in range(0, len(members), INTERCOMPANY_DOCUMENT_LINES):
                    chunk = members[start:start + INTERCOMPANY_DOCUMENT_LINES]
                    digest = hashlib.blake2b("\n".join(v["line_key"] for v in chunk).encode(),
                                             digest_size=5).hexdigest()
                    for v in chunk:
                        v["document"] = f"IC-{employer}-{project_entity}-{period}-{digest}"
            conn.execute(intercompany.insert(), values)
        return len(values)

    def pending(self, project_entity: str) -> list[IntercompanyDocument]:
        """Documents of the entity assigned but not yet recorded on both sides, each with every line it holds."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(intercompany).where(
                intercompany.c.project_entity == project_entity, intercompany.c.state == ASSIGNED)
                .order_by(intercompany.c.document, intercompany.c.line_key)).all()
        return _documents(rows)

    def mark_charged(self, stem: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(intercompany.update().where(intercompany.c.document == stem)
                         .values(state=CHARGED, updated_at=utcnow()))

    def charged(self, project_entity: str, period: str) -> list[IntercompanyDocument]:
        """Every document of the entity and period, as recorded here (reconciliation compares both ERPs to it)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(intercompany).where(
                intercompany.c.project_entity == project_entity, intercompany.c.period == period)
                .order_by(intercompany.c.document, intercompany.c.line_key)).all()
        return _documents(rows)


def _documents(rows: Iterable[Any]) -> list[IntercompanyDocument]:
    by_stem: dict[str, list[Any]] = {}
    for r in rows:
        by_stem.setdefault(r.document, []).append(r)
    return [IntercompanyDocument(
        stem=stem, employer=members[0].employer, project_entity=members[0].project_entity,
        period=members[0].period, currency=members[0].currency, lines=tuple(_line(r) for r in members))
        for stem, members in by_stem.items()]


def _line(r: Any) -> IntercompanyLine:
    return IntercompanyLine(line_key=r.line_key, project_external_id=r.project, employee_external_id=r.worker_id,
                            date=r.date if isinstance(r.date, dt.date) else dt.date.fromisoformat(str(r.date)),
                            hours=r.hours, transfer_rate=Money(amount=Decimal(r.transfer_rate), currency=r.currency),
                            amount=Money(amount=Decimal(r.amount), currency=r.currency))


def documents_total(documents: Sequence[IntercompanyDocument], project: str) -> Decimal:
    return sum((ln.amount.amount for d in documents for ln in d.lines if ln.project_external_id == project),
               Decimal(0))
