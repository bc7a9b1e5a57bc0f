"""The NetSuite simulator's receivables: invoice standing, payments and credits applied, exchange rates.

What NetSuite does and this reproduces (the record store calls in on every write):

- An invoice's ``status`` follows its approval and what is applied to it: ``Pending Approval`` (D)
  until ``approvalStatus`` is 2, then ``Open`` (A) until ``amountRemaining`` reaches zero, then
  ``Paid In Full`` (B); ``Rejected`` (E) for approvalStatus 3, ``Voided`` (V) once voided.
  ``amountPaid`` counts payments and credits alike, as NetSuite's does.
- A ``customerPayment``'s ``apply`` lines may only name open invoices of its customer, in its currency,
  for at most what each still owes; otherwise the whole write is refused (400, ``o:errorPath`` on the
  line) and nothing changes. Editing a payment re-applies it (its old applications are undone first).
- A ``creditMemo`` created from an open invoice is applied to it (as NetSuite's transform does), up
  to what the invoice still owes; one from an invoice not yet open stays unapplied.
- Every application changes the invoice: a new ``lastModifiedDate`` (the store's stamp).
- The link table SuiteQL reads applications from (``nexttransactionlinelink``) and ``currencyrate``,
  seeded monthly through 2026 for every subsidiary's base currency against the demo firm's others.

SuiteQL: only the statements ``netsuite._queries`` builds for these are answered here.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from typing import Any, Final, NamedTuple

from system_apis.netsuite._queries import (
    APPLICATIONS_END,
    APPLICATIONS_SELECT,
    CREDIT_TYPE,
    PAYMENT_TYPE,
    RATE_CONDITION,
    RATE_ORDER,
    RATE_SELECT,
)
from system_apis.netsuite.mapping import CURRENCY_IDS
from system_apis.netsuite.simulator._errors import NsError

__all__ = ["DEMO_USD_VALUE", "Link", "Receivables"]

Record = dict[str, Any]
ZERO: Final = Decimal(0)
STATUSES: Final = {"D": "Pending Approval", "A": "Open", "B": "Paid In Full", "E": "Rejected", "V": "Voided"}
DEMO_USD_VALUE: Final = {"USD": (Decimal("1"), Decimal("0")), "EUR": (Decimal("1.0800"), Decimal("0.0040")),
                         "GBP": (Decimal("1.2600"), Decimal("0.0030")), "CAD": (Decimal("0.7400"), Decimal("-0.0020")),
                         "AUD": (Decimal("0.6600"), Decimal("0.0010"))}
"""USD per unit of each of the demo firm's currencies in January 2026, and its drift a month: the seeded rates'
source."""
_RATE_PLACES: Final = Decimal("1E-6")
_IDS: Final = re.compile(r"^\d+(, \d+)*$")


class Link(NamedTuple):
    """One application: ``doc`` (a payment or credit memo, of ``kind``) applied ``amount`` to ``invoice``."""

    invoice: str
    doc: str
    kind: str
    amount: Decimal


def _number(value: Any, path: str) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise NsError(400, "INVALID_FLD_VALUE", f"Invalid number {value!r}.", path) from None


def _ref(record: Record, field: str) -> str:
    ref = record.get(field)
    return str(ref.get("id")) if isinstance(ref, dict) and ref.get("id") is not None else ""


def _currency(record: Record) -> str:
    ref = record.get("currency") or {}
    code = ref.get("refName") or {v: k for k, v in CURRENCY_IDS.items()}.get(str(ref.get("id")))
    return str(code or "")


class Receivables:
    """Applications and rates beside the record store (``records``: its tables, shared, not copied).

    Args:
        records: the store's records by type and internal id.
        periods: the store's accounting periods by (subsidiary id, ``YYYY-MM``).
        stamp: the store's next ``lastModifiedDate`` for a record type.
    """

    def __init__(self, records: dict[str, dict[str, Record]], periods: dict[tuple[str, str], Record],
                 stamp: Callable[[str], str]) -> None:
        self.records = records
        self.periods = periods
        self.stamp = stamp
        self.links: list[Link] = []

    # ------------------------------------------------------------------ standing

    def applied(self, invoice_id: str, *, besides: str = "") -> Decimal:
        """What is applied to an invoice, leaving out the applications of document ``besides``."""
        return sum((link.amount for link in self.links if link.invoice == invoice_id and link.doc != besides), ZERO)

    def derive(self, invoice: Record) -> None:
        """Set ``status``, ``amountPaid`` and ``amountRemaining`` from approval and applications."""
        applied = self.applied(str(invoice.get("id", "")))
        total = Decimal(str(invoice.get("total") or 0))
        approval = _ref(invoice, "approvalStatus") or "1"
        if _ref(invoice, "status") == "V":
            code, remaining = "V", ZERO
        elif approval == "2":
            remaining = total - applied
            code = "A" if remaining > 0 else "B"
        else:
            code, remaining = ("E", ZERO) if approval == "3" else ("D", total)
        invoice.update(status={"id": code, "refName": STATUSES[code]}, amountPaid=applied, amountRemaining=remaining)

    def _open_for(self, invoice: Record, doc: str) -> Decimal | None:
        """What ``invoice`` still owes to document ``doc`` (its own applications undone), or None if not open."""
        if _ref(invoice, "approvalStatus") != "2" or _ref(invoice, "status") == "V":
            return None
        owed = Decimal(str(invoice.get("total") or 0)) - self.applied(str(invoice["id"]), besides=doc)
        return owed if owed > 0 else None

    # ------------------------------------------------------------------ checks (before a write; may refuse it)

    def check_invoice(self, invoice: Record) -> None:
        if _ref(invoice, "status") == "V":
            raise NsError(400, "USER_ERROR", "You cannot edit a voided transaction.")
        if "id" in invoice and Decimal(str(invoice.get("total") or 0)) < self.applied(str(invoice["id"])):
            raise NsError(400, "USER_ERROR", "The invoice total cannot be less than the payments and credits "
                          "applied to it.", "item")

    def check_payment(self, payment: Record) -> None:
        """Refuse a customerPayment NetSuite would refuse; see the module docstring."""
        customer = self.records["customer"].get(_ref(payment, "customer"))
        if customer is None:
            raise NsError(400, "INVALID_KEY_OR_REF", f"Invalid customer reference key {_ref(payment, 'customer')!r}.",
                          "customer")
        subsidiary = _ref(payment, "subsidiary") or _ref(customer, "subsidiary")
        if subsidiary != _ref(customer, "subsidiary"):
            raise NsError(400, "INVALID_FLD_VALUE", "The subsidiary of a payment must be its customer's.", "subsidiary")
        day = str(payment.get("tranDate") or "")
        try:
            dt.date.fromisoformat(day)
        except ValueError:
            raise NsError(400, "INVALID_FLD_VALUE", f"Invalid date value {day!r}.", "tranDate") from None
        period = self.periods.get((subsidiary, day[:7]))
        if period is None or period.get("isClosed") or period.get("arLocked"):
            raise NsError(400, "PERIOD_CLOSED", f"The accounting period for {day} is closed or locked for accounts "
                          "receivable.", "tranDate")
        total = _number(payment.get("payment"), "payment")
        applied = ZERO
        doc = str(payment.get("id", ""))
        for n, line in enumerate(self._lines(payment)):
            invoice = self.records["invoice"].get(_ref(line, "doc"))
            if invoice is None or _ref(invoice, "entity") != str(customer["id"]):
                raise NsError(400, "INVALID_KEY_OR_REF", f"Invalid doc reference key {_ref(line, 'doc')!r}: no "
                              "invoice of this customer.", f"apply.items[{n}].doc")
            owed = self._open_for(invoice, doc)
            if owed is None:
                raise NsError(400, "INVALID_KEY_OR_REF", f"Invoice {invoice.get('tranId')} is not open "
                              f"({STATUSES.get(_ref(invoice, 'status'), '?')}); a payment cannot apply to it.",
                              f"apply.items[{n}].doc")
            if _currency(invoice) != _currency(payment):
                raise NsError(400, "INVALID_FLD_VALUE", f"Invoice {invoice.get('tranId')} is in {_currency(invoice)}"
                              f"; a payment in {_currency(payment)} cannot apply to it.", "currency")
            amount = _number(line.get("amount"), f"apply.items[{n}].amount")
            if not ZERO < amount <= owed:
                raise NsError(400, "INVALID_FLD_VALUE", f"The amount applied to invoice {invoice.get('tranId')} "
                              f"({amount}) must be positive and at most its amount due ({owed}).",
                              f"apply.items[{n}].amount")
            applied += amount
        if total <= 0 or applied > total:
            raise NsError(400, "INVALID_FLD_VALUE", "The payment must be positive and cover the amounts it applies.",
                          "payment")

    @staticmethod
    def _lines(payment: Record) -> list[Record]:
        return [line for line in (payment.get("apply") or {}).get("items") or [] if line.get("apply")]

    # ------------------------------------------------------------------ effects (after a write)

    def settle(self, record_type: str, record: Record) -> None:
        """Apply what a write of ``record`` applies, and bring every invoice it touched up to date."""
        doc = str(record["id"])
        if record_type == "invoice":
            self.derive(record)
            return
        if record_type not in ("customerPayment", "creditMemo"):
            return
        before = [link for link in self.links if link.doc == doc]
        self.links = [link for link in self.links if link.doc != doc]
        if record_type == "customerPayment":
            now = [Link(_ref(line, "doc"), doc, PAYMENT_TYPE, Decimal(str(line["amount"])))
                   for line in self._lines(record)]
            record.update(applied=sum((link.amount for link in now), ZERO),
                          unapplied=Decimal(str(record["payment"])) - sum((link.amount for link in now), ZERO))
        else:
            now = self._credit(record, doc)
            credit = abs(Decimal(str(record.get("total") or 0)))
            record.update(applied=sum((link.amount for link in now), ZERO),
                          unapplied=credit - sum((link.amount for link in now), ZERO))
        self.links += now
        if sorted(before) != sorted(now):
            self._touch({link.invoice for link in before + now})

    def _credit(self, memo: Record, doc: str) -> list[Link]:
        invoice = self.records["invoice"].get(_ref(memo, "createdFrom"))
        owed = self._open_for(invoice, doc) if invoice is not None else None
        amount = min(abs(Decimal(str(memo.get("total") or 0))), owed or ZERO)
        return [Link(str(invoice["id"]), doc, CREDIT_TYPE, amount)] if invoice is not None and amount > 0 else []

    def _touch(self, invoice_ids: Iterable[str]) -> None:
        for ident in sorted(invoice_ids):
            invoice = self.records["invoice"].get(ident)
            if invoice is not None:
                self.derive(invoice)
                invoice["lastModifiedDate"] = self.stamp("invoice")

    def void(self, invoice: Record) -> None:
        """Void an invoice (the UI's Void; NetSuite refuses it once payments are applied)."""
        if any(link.invoice == str(invoice["id"]) and link.kind == PAYMENT_TYPE for link in self.links):
            raise NsError(400, "USER_ERROR", "You cannot void a transaction with payments applied to it.")
        invoice["status"] = {"id": "V", "refName": STATUSES["V"]}
        self._touch([str(invoice["id"])])

    # ------------------------------------------------------------------ rates

    def seed_rates(self, base_currencies: Iterable[str], stamp: str) -> None:
        """Monthly ``currencyRate`` records through 2026: each base currency against every other demo currency."""
        table = self.records["currencyRate"]
        for base in sorted(set(base_currencies) & DEMO_USD_VALUE.keys()):
            for quote in (c for c in sorted(DEMO_USD_VALUE) if c != base):
                for month in range(12):
                    ident = str(len(table) + 1)
                    table[ident] = {
                        "id": ident, "baseCurrency": _ref_to(base), "transactionCurrency": _ref_to(quote),
                        # NetSuite's exchangeRate: units of the base currency for ONE unit of the transaction's.
                        "exchangeRate": (_usd(quote, month) / _usd(base, month)).quantize(_RATE_PLACES),
                        "effectiveDate": dt.date(2026, month + 1, 1).isoformat(),
                        "createdDate": stamp, "lastModifiedDate": stamp}

    # ------------------------------------------------------------------ SuiteQL

    def query(self, statement: str) -> list[Record] | None:
        """All rows of an applications or rate statement, in order; None for a statement not about these."""
        if statement.startswith(APPLICATIONS_SELECT) and statement.endswith(APPLICATIONS_END):
            ids = statement[len(APPLICATIONS_SELECT):-len(APPLICATIONS_END)]
            if not _IDS.match(ids):
                raise NsError(400, "INVALID_PARAMETER", f"Invalid search query near {ids!r}.", "q")
            wanted = set(ids.split(", "))
            sums: dict[tuple[str, str], Decimal] = {}
            for link in self.links:
                if link.invoice in wanted:
                    sums[(link.invoice, link.kind)] = sums.get((link.invoice, link.kind), ZERO) + link.amount
            return [{"links": [], "invoice": invoice, "type": kind, "amount": str(amount)}
                    for (invoice, kind), amount in sorted(sums.items(), key=lambda i: (int(i[0][0]), i[0][1]))]
        if statement.startswith(RATE_SELECT) and statement.endswith(RATE_ORDER):
            match = RATE_CONDITION.match(statement[len(RATE_SELECT):-len(RATE_ORDER)])
            if not match:
                raise NsError(400, "INVALID_PARAMETER", "Invalid search query: unsupported currencyrate filter.", "q")
            b1, t1, b2, t2, on = match.groups()
            rows = [r for r in self.records["currencyRate"].values()
                    if (r["baseCurrency"]["refName"], r["transactionCurrency"]["refName"]) in ((b1, t1), (b2, t2))
                    and r["effectiveDate"] <= on]
            rows.sort(key=lambda r: (r["effectiveDate"], int(r["id"])), reverse=True)
            return [{"links": [], "id": r["id"], "basecurrency": r["baseCurrency"]["refName"],
                     "transactioncurrency": r["transactionCurrency"]["refName"],
                     "exchangerate": str(r["exchangeRate"]), "effectivedate": r["effectiveDate"]} for r in rows]
        return None


def _usd(code: str, month: int) -> Decimal:
    start, drift = DEMO_USD_VALUE[code]
    return start + drift * month


def _ref_to(code: str) -> Record:
    return {"id": CURRENCY_IDS.get(code, code), "refName": code}
