"""Receivables as last read from each ERP: one row per invoice, and each legal entity's poll cursor.

Recording is idempotent: an invoice read again unchanged writes nothing and publishes nothing, so a
poll step re-executed after a crash, or an overlapping cursor, never repeats an event. A change is
written with the events it causes in one transaction (`publish_in`): an event is never published
for a state that was not kept, nor a state kept without its event.

Amounts are kept in integer units of 1/10,000 of the currency (exact sums in SQL, as the billing
facts do) beside the currency; nothing here is added across currencies.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Final

import msgspec
import sqlalchemy as sa

from contracts.billing import Invoice, InvoiceStatus
from contracts.common import Money
from contracts.events import INVOICE_POSTED, PAYMENT_RECEIVED
from contracts.receivables import ReceivableInvoice
from foundation.clock import as_utc, utcnow
from foundation.db import metadata
from foundation.units import from_units, to_units
from process_apis._internal.events import event, publish_in

__all__ = ["OPEN", "POSTED", "PROCESS", "START_SCOPE", "UNPOSTED", "ReceivablesState", "Recorded", "receivable_cursors",
           "receivable_invoices"]

PROCESS: Final = "receivables"
START_SCOPE: Final = "receivables.startRun"
"""Where a poll's start keys and its wanted follow-up are kept (`process_apis._internal.start_keys`)."""
POSTED: Final[frozenset[InvoiceStatus]] = frozenset({"approved", "posted", "sent", "partially_paid", "paid"})
"""Statuses of an invoice that is in receivables (its `invoice.posted` event has been published)."""
UNPOSTED: Final[tuple[InvoiceStatus, ...]] = ("draft", "approved")
"""Statuses of an invoice the ERP holds but has not yet posted to receivables."""
OPEN: Final[frozenset[InvoiceStatus]] = frozenset({"posted", "sent", "partially_paid"})
"""Statuses of an invoice the customer still owes on: what AR aging and DSO count."""

receivable_invoices = sa.Table(
    "receivable_invoices", metadata,
    sa.Column("external_id", sa.String(120), primary_key=True),
    sa.Column("erp_invoice_id", sa.String(120), nullable=False),
    sa.Column("legal_entity_code", sa.String(20), nullable=False),
    sa.Column("customer_id", sa.String(120), nullable=False),
    sa.Column("project", sa.String(80), nullable=False),
    sa.Column("period", sa.String(7), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("total", sa.BigInteger, nullable=False),
    sa.Column("paid", sa.BigInteger, nullable=False),
    sa.Column("due", sa.BigInteger, nullable=False),
    sa.Column("issue_date", sa.Date),
    sa.Column("due_date", sa.Date),
    sa.Column("erp_updated_at", sa.DateTime(timezone=True)),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_receivable_invoices_entity_status", "legal_entity_code", "status"),
)

receivable_cursors = sa.Table(
    "receivable_cursors", metadata,
    sa.Column("legal_entity_code", sa.String(20), primary_key=True),
    sa.Column("legal_entity_id", sa.String(120), nullable=False),
    sa.Column("updated_since", sa.DateTime(timezone=True)),
    sa.Column("polled_at", sa.DateTime(timezone=True), nullable=False),
)


def _money(units: int, currency: str) -> Money:
    return Money(amount=from_units(units).quantize(Decimal("0.01")), currency=currency)


class Recorded(msgspec.Struct, frozen=True, kw_only=True):
    """What one page of ERP invoices changed here."""

    read: int = 0
    changed: int = 0
    posted: int = 0
    payments: int = 0

    def __add__(self, other: Recorded) -> Recorded:
        return Recorded(read=self.read + other.read, changed=self.changed + other.changed,
                        posted=self.posted + other.posted, payments=self.payments + other.payments)


def _row(invoice: Invoice, entity: str, now: dt.datetime) -> dict[str, Any]:
    total = to_units(invoice.total.amount)
    paid = to_units(invoice.amount_paid.amount) if invoice.amount_paid is not None else 0
    due = to_units(invoice.amount_due.amount) if invoice.amount_due is not None else total - paid
    return {"external_id": invoice.external_id, "erp_invoice_id": invoice.id, "legal_entity_code": entity,
            "customer_id": invoice.customer_id, "project": invoice.project_external_id, "period": invoice.period,
            "currency": invoice.currency, "status": invoice.status, "total": total, "paid": paid, "due": due,
            "issue_date": invoice.issue_date, "due_date": invoice.due_date,
            "erp_updated_at": invoice.updated_at, "recorded_at": now}


_COMPARED: Final = ("status", "total", "paid", "due", "issue_date", "due_date", "customer_id", "erp_invoice_id")


class ReceivablesState:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def cursor(self, entity: str) -> dt.datetime | None:
        with self.engine.connect() as conn:
            at = conn.execute(sa.select(receivable_cursors.c.updated_since)
                              .where(receivable_cursors.c.legal_entity_code == entity)).scalar()
        return as_utc(at) if at is not None else None

    def known_entities(self) -> dict[str, str]:
        """Code -> ERP id of every legal entity polled before: what a poll reads when the entity list cannot be."""
        with self.engine.connect() as conn:
            return {str(code): str(ident) for code, ident in conn.execute(
                sa.select(receivable_cursors.c.legal_entity_code, receivable_cursors.c.legal_entity_id))}

    def record(self, entity: str, entity_id: str, run_id: str, invoices: Sequence[Invoice], *, last: bool,
               cursor: dt.datetime | None) -> Recorded:
        """Keep each invoice's state and publish what changed; with the `last` page, move the entity's cursor to
        `cursor` (None: nothing changed yet) — one transaction."""
        now = utcnow()
        counts = Recorded(read=len(invoices))
        with self.engine.begin() as conn:
            keys = [i.external_id for i in invoices]
            known = {r["external_id"]: r for r in conn.execute(
                sa.select(receivable_invoices).where(receivable_invoices.c.external_id.in_(keys))).mappings()}
            for invoice in invoices:
                row = _row(invoice, entity, now)
                before = known.get(invoice.external_id)
                if before is not None and all(before[c] == row[c] for c in _COMPARED):
                    continue
                counts = counts + Recorded(changed=1) + self._publish(conn, run_id, row, before)
                if before is None:
                    conn.execute(receivable_invoices.insert().values(**row))
                else:
                    conn.execute(receivable_invoices.update()
                                 .where(receivable_invoices.c.external_id == invoice.external_id).values(**row))
            if last:
                self._move_cursor(conn, entity, entity_id, cursor, now)
        return counts

    @staticmethod
    def _publish(conn: sa.Connection, run_id: str, row: dict[str, Any],
                 before: sa.RowMapping | None) -> Recorded:
        """`invoice.posted` the first time an invoice is seen in receivables; `payment.received` per rise in paid.

        Ids are the invoice's key plus what the event is about, so an event is published once however
        often, and by however many polls, the change is read.
        """
        key, currency = row["external_id"], row["currency"]
        data = {"invoice_external_id": key, "erp_invoice_id": row["erp_invoice_id"],
                "legal_entity": row["legal_entity_code"], "customer_id": row["customer_id"],
                "project_external_id": row["project"], "status": row["status"],
                "total": _money(row["total"], currency), "amount_paid": _money(row["paid"], currency),
                "amount_due": _money(row["due"], currency),
                "due_date": row["due_date"].isoformat() if row["due_date"] else None}
        plain = msgspec.to_builtins(data)
        counts = Recorded()
        was_posted = before is not None and before["status"] in POSTED | {"credited", "void"}
        if row["status"] in POSTED and not was_posted:
            publish_in(conn, event(f"rcv:{key}:posted", INVOICE_POSTED, PROCESS, run_id, plain))
            counts = counts + Recorded(posted=1)
        paid_before = int(before["paid"]) if before is not None else 0
        if row["paid"] > paid_before:
            received = _money(row["paid"] - paid_before, currency)
            publish_in(conn, event(f"rcv:{key}:paid:{row['paid']}", PAYMENT_RECEIVED, PROCESS, run_id,
                                   {**plain, "amount_received": msgspec.to_builtins(received)}))
            counts = counts + Recorded(payments=1)
        return counts

    @staticmethod
    def _move_cursor(conn: sa.Connection, entity: str, entity_id: str, cursor: dt.datetime | None,
                     now: dt.datetime) -> None:
        values = {"legal_entity_id": entity_id, "updated_since": cursor, "polled_at": now}
        moved = conn.execute(receivable_cursors.update().where(receivable_cursors.c.legal_entity_code == entity)
                             .values(**values)).rowcount
        if not moved:
            conn.execute(receivable_cursors.insert().values(legal_entity_code=entity, **values))

    def forget_cursors(self) -> None:
        """A full poll reads every invoice again (unchanged ones still publish nothing); the entities stay known."""
        with self.engine.begin() as conn:
            conn.execute(receivable_cursors.update().values(updated_since=None))

    def list(self, entities: frozenset[str] | None, status: InvoiceStatus | None, customer_id: str | None,
             limit: int, offset: int) -> list[ReceivableInvoice]:
        query = sa.select(receivable_invoices)
        if entities is not None:
            query = query.where(receivable_invoices.c.legal_entity_code.in_(sorted(entities)))
        if status is not None:
            query = query.where(receivable_invoices.c.status == status)
        if customer_id is not None:
            query = query.where(receivable_invoices.c.customer_id == customer_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(receivable_invoices.c.external_id).limit(limit).offset(offset)
                                ).mappings().all()
        return [_receivable(r) for r in rows]

    def get(self, external_id: str) -> ReceivableInvoice | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(receivable_invoices)
                               .where(receivable_invoices.c.external_id == external_id)).mappings().first()
        return _receivable(row) if row is not None else None


def _receivable(r: sa.RowMapping) -> ReceivableInvoice:
    currency = r["currency"]
    return ReceivableInvoice(
        external_id=r["external_id"], erp_invoice_id=r["erp_invoice_id"], legal_entity_code=r["legal_entity_code"],
        customer_id=r["customer_id"], project_external_id=r["project"], period=r["period"], currency=currency,
        status=r["status"], total=_money(r["total"], currency), amount_paid=_money(r["paid"], currency),
        amount_due=_money(r["due"], currency), issue_date=r["issue_date"], due_date=r["due_date"],
        erp_updated_at=as_utc(r["erp_updated_at"]) if r["erp_updated_at"] is not None else None,
        recorded_at=as_utc(r["recorded_at"]))
