"""NetSuite receivables records <-> canonical objects: invoice standing, customer payments, exchange rates. Pure.

Wire choices:

- An invoice's standing comes from NetSuite's own fields: ``status`` (``Pending Approval``, ``Open``,
  ``Paid In Full``, ``Rejected``, ``Voided``; read by ``refName``, else by NetSuite's one-letter id),
  ``amountRemaining`` (what is still owed: payments *and* credits reduce it), ``tranDate`` (the
  invoice date), ``dueDate`` and ``lastModifiedDate``. NetSuite's ``amountPaid`` counts credit memos
  applied too, so the canonical ``amount_paid`` (payments only) comes from the applications the
  adapter reads through SuiteQL (``Applied``, see ``netsuite._queries.applications_query``).
  NetSuite has no separate "approved" or "sent" state: approval posts the invoice (``Open``).
- ``customerPayment``: ``customer``, ``subsidiary``, ``currency``, ``tranDate``, ``payment`` (the
  amount), ``memo`` (the remittance reference), ``undepFunds: true`` (the account's Undeposited Funds,
  as a cash-application integration does), ``autoApply: false`` and one ``apply`` line ``{doc, apply,
  amount}`` naming the invoice; ``externalId`` is psconnect's payment key.
- ``currencyrate`` rows (SuiteQL, every value a string): NetSuite's ``exchangerate`` is units of
  ``basecurrency`` per ONE unit of ``transactioncurrency``, so a row (base Q, transaction B) is the
  canonical rate B -> Q as it stands (canonical ``rate`` = units of quote per one base).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Final, NamedTuple

from contracts.billing import InvoiceStatus, Payment, PaymentUpsert
from contracts.common import Money
from contracts.currency import ExchangeRate
from system_apis.netsuite._queries import CREDIT_TYPE, PAYMENT_TYPE
from system_apis.netsuite.mapping import MappingError, _currency, _currency_ref, _date, _decimal, _ref_id

__all__ = [
    "APPROVAL_STATUSES",
    "APPROVED",
    "DEFAULT_TERMS_DAYS",
    "INVERSE_PLACES",
    "NOTHING_APPLIED",
    "STATUS_IDS",
    "STATUS_NAMES",
    "Applied",
    "applications_from_rows",
    "applied_invoice_id",
    "has_applications",
    "invoice_dates",
    "invoice_standing",
    "payment_from_record",
    "payment_terms_days",
    "payment_to_record",
    "rate_from_rows",
]

Record = dict[str, Any]

STATUS_NAMES: Final[dict[str, InvoiceStatus]] = {
    "pending approval": "draft", "open": "posted", "paid in full": "paid", "rejected": "void", "voided": "void"}
"""An invoice ``status.refName`` -> the canonical status before payments are told from credits."""
STATUS_IDS: Final[dict[str, InvoiceStatus]] = {"D": "draft", "A": "posted", "B": "paid", "E": "void", "V": "void"}
"""NetSuite's one-letter invoice status ids (``CustInvc:A`` Open ...), when ``refName`` is absent."""
APPROVAL_STATUSES: Final[dict[str, InvoiceStatus]] = {"1": "draft", "2": "posted", "3": "void"}
"""``approvalStatus`` (1 Pending Approval, 2 Approved, 3 Rejected): the fallback when no ``status`` came."""
APPROVED: Final = "2"
"""The ``approvalStatus`` id that approves an invoice, which posts it to receivables."""
INVERSE_PLACES: Final = Decimal("1E-10")
DEFAULT_TERMS_DAYS: Final = 30
"""Payment terms of a project that names none (the canonical `BillingSchedule` default)."""
ZERO: Final = Decimal(0)


class Applied(NamedTuple):
    """What has been applied to one invoice, in its currency: customer payments and credit memos."""

    payments: Decimal
    credits: Decimal


NOTHING_APPLIED: Final = Applied(ZERO, ZERO)


def applications_from_rows(rows: Iterable[Record]) -> dict[str, Applied]:
    """The rows of ``applications_query`` by invoice internal id.

    Amounts are taken as magnitudes: the link table records an application once, whatever sign an
    account's reporting shows it with.
    """
    found: dict[str, Applied] = {}
    for row in rows:
        try:
            invoice, kind = str(row["invoice"]), str(row["type"])
            amount = abs(_decimal(row["amount"], "amount"))
        except KeyError as exc:
            raise MappingError(f"application row lacks {exc.args[0]}") from exc
        payments, credits = found.get(invoice, NOTHING_APPLIED)
        if kind == PAYMENT_TYPE:
            payments += amount
        elif kind == CREDIT_TYPE:
            credits += amount
        found[invoice] = Applied(payments, credits)
    return found


def has_applications(record: Record) -> bool:
    """Whether NetSuite says payments or credits have applied to an invoice (its ``amountPaid`` counts both)."""
    return _decimal(record.get("amountPaid") or 0, "amountPaid") != 0


def _base_status(record: Record) -> InvoiceStatus:
    status = record.get("status")
    if isinstance(status, dict):
        name = str(status.get("refName") or "").lower()
        if name in STATUS_NAMES:
            return STATUS_NAMES[name]
        ident = str(status.get("id") or "")
        if ident in STATUS_IDS:
            return STATUS_IDS[ident]
        if ident.lower() in STATUS_NAMES:
            return STATUS_NAMES[ident.lower()]
        raise MappingError(f"invoice {record.get('id')} has an unknown status {status!r}")
    approval = record.get("approvalStatus")
    return APPROVAL_STATUSES.get(str(approval.get("id")) if isinstance(approval, dict) else "1", "draft")


def invoice_standing(record: Record, total: Money,
                     applied: Applied = NOTHING_APPLIED) -> tuple[InvoiceStatus, Money, Money]:
    """``(status, amount_paid, amount_due)`` of an ``invoice`` record.

    Args:
        record: the invoice as NetSuite answers it.
        total: its total, in its currency.
        applied: what payments and credits have applied to it; the adapter reads it whenever
            NetSuite's ``amountPaid`` is not zero (nothing can have applied otherwise).
    """
    currency = total.currency
    status = _base_status(record)
    if status == "draft":
        return "draft", Money(amount=ZERO, currency=currency), total
    payments = Money(amount=applied.payments, currency=currency)
    if status == "void":
        return "void", payments, Money(amount=ZERO, currency=currency)
    remaining = record.get("amountRemaining")
    due = (_decimal(remaining, "amountRemaining") if remaining not in (None, "")
           else total.amount - _decimal(record.get("amountPaid") or 0, "amountPaid"))
    if status == "paid":  # Paid In Full: by payments, or offset by credit memos alone
        status = "paid" if applied.payments > 0 else "credited"
    elif applied.payments > 0:
        status = "partially_paid"
    return status, payments, Money(amount=due, currency=currency)


def invoice_dates(record: Record) -> tuple[dt.date | None, dt.date | None]:
    """``(issue_date, due_date)``: the invoice's ``tranDate`` and ``dueDate`` (none until terms set it)."""
    return _date(record.get("tranDate")), _date(record.get("dueDate"))


def payment_terms_days(job: Record) -> int:
    """A ``job``'s payment terms in days (``custentity_psc_payment_terms_days``), 30 when it names none."""
    raw = job.get("custentity_psc_payment_terms_days")
    try:
        return int(str(raw)) if raw not in (None, "") else DEFAULT_TERMS_DAYS
    except ValueError as exc:
        raise MappingError(f"job {job.get('id')} has payment terms {raw!r}") from exc


# ---------------------------------------------------------------- customer payment


def payment_to_record(external_id: str, data: PaymentUpsert, *, customer_id: str, invoice_id: str) -> Record:
    """The body of ``PUT /customerPayment/eid:{external_id}`` (sent with ``replace=apply``)."""
    return {"externalId": external_id, "customer": {"id": customer_id}, "subsidiary": {"id": data.legal_entity_id},
            "currency": _currency_ref(data.amount.currency), "tranDate": data.date.isoformat(),
            "payment": data.amount.amount, "memo": data.reference or "", "undepFunds": True, "autoApply": False,
            "apply": {"items": [{"doc": {"id": invoice_id}, "apply": True, "amount": data.amount.amount}]}}


def _applied_line(record: Record) -> Record:
    sub = record.get("apply")
    items = sub.get("items") if isinstance(sub, dict) else None
    for line in items or []:
        if line.get("apply") and isinstance(line.get("doc"), dict) and line["doc"].get("id") is not None:
            return dict(line)
    raise MappingError(f"customerPayment {record.get('id')} applies to no invoice (read it expanded)")


def applied_invoice_id(record: Record) -> str:
    """The internal id of the invoice a ``customerPayment`` (read expanded) applies to."""
    return str(_applied_line(record)["doc"]["id"])


def payment_from_record(record: Record, *, invoice_external_id: str) -> Payment:
    """A ``customerPayment`` read with ``expandSubResources=true``; the invoice's external id is resolved
    by the caller. The amount is the one applied to that invoice."""
    if not record.get("externalId"):
        raise MappingError(f"customerPayment {record.get('id')} has no externalId; it was not created by psconnect")
    line = _applied_line(record)
    day = _date(record.get("tranDate"))
    if day is None:
        raise MappingError(f"customerPayment {record.get('id')} has no tranDate")
    return Payment(id=str(record["id"]), external_id=str(record["externalId"]),
                   invoice_external_id=invoice_external_id, legal_entity_id=_ref_id(record, "subsidiary"), date=day,
                   amount=Money(amount=_decimal(line.get("amount") or 0, "amount"), currency=_currency(record)),
                   reference=str(record.get("memo") or "") or None)


# ---------------------------------------------------------------- exchange rate


def rate_from_rows(rows: Iterable[Record], base: str, quote: str) -> ExchangeRate | None:
    """The canonical ``base`` -> ``quote`` rate from ``exchange_rate_query`` rows, or ``None`` if none fits.

    The latest effective date wins; on the same day the stored direction (NetSuite base = ``quote``,
    transaction currency = ``base``) wins over the inverse, which is derived as ``1 / exchangerate``
    quantized to 10 decimal places (so a derived rate and its stored inverse multiply to 1 within 1e-10
    of the stored rate's precision).
    """
    best: tuple[tuple[dt.date, bool], ExchangeRate] | None = None
    for row in rows:
        try:
            pair = (str(row["transactioncurrency"]), str(row["basecurrency"]))
            day = _date(row["effectivedate"])
            stored = _decimal(row["exchangerate"], "exchangerate")
        except KeyError as exc:
            raise MappingError(f"currencyrate row lacks {exc.args[0]}") from exc
        if day is None or stored <= 0:
            raise MappingError(f"currencyrate row {row.get('id')} has no date or a rate that is not positive")
        if pair == (base, quote):
            direct, rate = True, stored
        elif pair == (quote, base):
            direct, rate = False, (1 / stored).quantize(INVERSE_PLACES)
        else:
            continue
        rank = (day, direct)
        if best is None or rank > best[0]:  # strictly: among equals the first row (highest id) stays
            best = (rank, ExchangeRate(base=base, quote=quote, rate=rate, date=day, source="erp"))
    return best[1] if best else None
