"""Receivables on Xero: an invoice read back with its status, posted (approved), paid; and exchange rates.

- Posting is Xero's approval: ``POST /Invoices/{InvoiceID}`` with ``Status: AUTHORISED`` and the due date of the
  customer's payment terms (`_due`). Xero has no approval apart from posting to the receivables ledger.
- A payment is ``PUT /Payments`` (``Invoice``, ``Account`` = the connection's bank account, ``Date``, ``Amount``,
  ``Reference``). Xero keeps no external id on a payment, so the reference starts with psconnect's and the
  payment is looked up by it before one is made; the ``Idempotency-Key`` covers a retry whose answer was lost.
  What Xero would refuse is checked first (so nothing is sent), and Xero's own refusal, should the invoice
  change meanwhile, keeps the same code.

Docs: https://developer.xero.com/documentation/api/accounting/invoices,
https://developer.xero.com/documentation/api/accounting/payments
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from typing import Any, Final

import msgspec

from contracts.billing import Invoice, Payment, PaymentUpsert
from contracts.currency import ExchangeRate
from contracts.problems import ProblemError
from system_apis._internal.http import VendorRejected
from system_apis.xero._billing import XeroBilling
from system_apis.xero._defaults import PAYMENT_ACCOUNT
from system_apis.xero._lookups import not_found, refusal, vendor_data_invalid
from system_apis.xero.client import ACCOUNTING, idempotency_key
from system_apis.xero.mapping import (
    MappingError,
    due_date,
    invoice_from_record,
    payment_external_id,
    payment_from_record,
    payment_from_upsert,
    xero_date,
)

__all__ = ["XeroReceivables"]

_OVERPAID: Final = "exceeds the amount outstanding"
_NOT_AUTHORISED: Final = "only be made against authorised"


def _not_posted(external_id: str, status: str) -> ProblemError:
    return ProblemError(422, "invoice-not-posted", "Invoice not posted",
                        f"Invoice {external_id} is {status}: a payment applies only to a posted invoice.",
                        code="invoice_not_posted")


def _overpayment(external_id: str, due: Decimal | None) -> ProblemError:
    return ProblemError(422, "overpayment", "Payment exceeds the amount due",
                        f"Invoice {external_id} has {due if due is not None else 'less'} due.", code="overpayment")


class XeroReceivables(XeroBilling):
    """Invoice status, posting, payments and exchange rates; the base of `XeroErp`."""

    payment_account: str = PAYMENT_ACCOUNT
    """The ``Account.Code`` of the bank account payments are applied to (`XeroErp` sets the connection's)."""

    def _invoice(self, record: dict[str, Any]) -> Invoice:
        try:
            return invoice_from_record(record, tenant=self.client.tenant)
        except MappingError as exc:
            raise vendor_data_invalid(exc) from exc

    async def _invoice_record(self, external_id: str) -> dict[str, Any]:
        record = await self._document("Invoices", "InvoiceNumber", external_id)
        if record is None or record.get("Type") != "ACCREC":
            raise not_found("invoice", external_id)
        return record

    async def get_invoice(self, external_id: str) -> Invoice:
        return self._invoice(await self._invoice_record(external_id))

    # ------------------------------------------------------------------ posting

    async def _due(self, record: dict[str, Any]) -> dt.date:
        """The due date Xero's terms give: the contact's sales terms, else the organisation's, else the draft's
        own due date (psconnect's default terms when it drafted it), else the default terms from its date."""
        issued = xero_date(record.get("Date"))
        contact_id = str((record.get("Contact") or {}).get("ContactID") or "")
        found = await self.client.find(f"{ACCOUNTING}/Contacts/{contact_id}") if contact_id else None
        contact = ((found or {}).get("Contacts") or [{}])[0]
        terms = (contact.get("PaymentTerms") or {}).get("Sales") \
            or ((await self._organisation()).get("PaymentTerms") or {}).get("Sales")
        if not terms and record.get("DueDate"):
            return xero_date(record["DueDate"])
        try:
            return max(issued, due_date(issued, terms))
        except MappingError as exc:
            raise vendor_data_invalid(exc) from exc

    async def post_invoice(self, external_id: str) -> Invoice:
        record = await self._invoice_record(external_id)
        status = str(record.get("Status"))
        if status in ("VOIDED", "DELETED"):
            raise ProblemError(422, "invoice-void", "Invoice is void",
                               f"Invoice {external_id} is {status.lower()} in Xero and cannot be posted.",
                               code="invoice_void")
        if status not in ("DRAFT", "SUBMITTED"):
            return self._invoice(record)  # posted already: unchanged
        invoice_id = str(record["InvoiceID"])
        body = {"InvoiceID": invoice_id, "Status": "AUTHORISED", "DueDate": (await self._due(record)).isoformat()}
        try:
            saved = await self._write(lambda: self.client.request(
                "POST", f"{ACCOUNTING}/Invoices/{invoice_id}", json={"Invoices": [body]},
                key=idempotency_key("post-invoice", invoice_id)))
        except ProblemError:
            again = await self._invoice_record(external_id)  # posted meanwhile by another worker: that is fine
            if str(again.get("Status")) in ("DRAFT", "SUBMITTED", "VOIDED", "DELETED"):
                raise
            return self._invoice(again)
        return self._invoice(dict(saved["Invoices"][0]))

    # ------------------------------------------------------------------ payments

    async def _payment_record(self, external_id: str) -> dict[str, Any] | None:
        """The payment whose reference starts with `external_id` (a deleted one no longer counts: it paid nothing)."""
        where = f'Reference.StartsWith("{external_id}")'
        async for page in self.client.accounting_pages("Payments", {"where": where}):
            for record in page:
                if payment_external_id(record) == external_id and record.get("Status") != "DELETED":
                    return dict(record)
        return None

    def _payment(self, record: dict[str, Any]) -> Payment:
        try:
            return payment_from_record(record, tenant=self.client.tenant)
        except MappingError as exc:
            raise vendor_data_invalid(exc) from exc

    async def upsert_payment(self, external_id: str, data: PaymentUpsert) -> tuple[Payment, bool]:
        """Apply a payment once: an existing payment of `external_id` is returned as it is (Xero cannot change
        a payment's amount; a correction is a payment of its own)."""
        existing = await self._payment_record(external_id)
        if existing is not None:
            return self._payment(existing), False
        record = await self._invoice_record(data.invoice_external_id)
        invoice = self._invoice(record)
        if invoice.status in ("draft", "void"):
            raise _not_posted(invoice.external_id, invoice.status)
        if data.amount.currency != invoice.currency:
            raise ProblemError(422, "currency-mismatch", "Payment in another currency",
                               f"Invoice {invoice.external_id} is in {invoice.currency}, the payment in "
                               f"{data.amount.currency}.", code="currency_mismatch")
        due = invoice.amount_due.amount if invoice.amount_due is not None else None
        if due is not None and data.amount.amount > due:
            raise _overpayment(invoice.external_id, due)
        body = payment_from_upsert(external_id, data, invoice_id=str(record["InvoiceID"]),
                                   account_code=self.payment_account)
        key = idempotency_key("payment", external_id, hashlib.sha256(msgspec.json.encode(data)).hexdigest()[:16])
        try:
            saved = await self.client.request("PUT", f"{ACCOUNTING}/Payments", json={"Payments": [body]}, key=key)
        except VendorRejected as exc:  # the invoice changed since it was read
            text = str(exc).lower()
            if _OVERPAID in text:
                raise _overpayment(invoice.external_id, None) from exc
            if _NOT_AUTHORISED in text:
                raise _not_posted(invoice.external_id, "not authorised") from exc
            raise refusal(exc) or exc from exc
        return self._payment(dict(saved["Payments"][0])), True

    # ------------------------------------------------------------------ exchange rates

    async def exchange_rate(self, base: str, quote: str, on: dt.date) -> ExchangeRate:
        """Xero's Accounting API publishes no dated exchange-rate table (only the ``CurrencyRate`` it used on each
        document, and ``/Currencies`` without rates), so every pair but ``base == quote`` (rate 1, no rate
        needed) is a 404 ``rate_not_found``: the caller falls back to its configured rate table."""
        if base == quote:
            return ExchangeRate(base=base, quote=quote, rate=Decimal(1), date=on, source="identity")
        raise ProblemError(404, "rate-not-found", "No exchange rate",
                           f"Xero keeps no exchange-rate table: no {base}/{quote} rate for {on.isoformat()}.",
                           code="rate_not_found")
