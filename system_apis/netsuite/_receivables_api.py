"""The receivables half of the ERP system API on NetSuite: read, post and pay invoices; exchange rates.

- Posting is NetSuite's approval: ``PATCH /invoice/{id}`` with ``approvalStatus`` 2 (Approved), which
  puts the invoice in receivables (status ``Open``). The invoice date stays the draft's ``tranDate``
  (its period's last day); ``dueDate`` is set with it from the project's payment terms
  (``custentity_psc_payment_terms_days``, 30 without), unless NetSuite has already set one from the
  customer's ``terms``.
- A payment is a ``customerPayment`` upserted by psconnect's key (``PUT eid:`` with ``replace=apply``, so
  a retried write re-applies instead of applying twice) with one ``apply`` line on the invoice. A key
  NetSuite already holds answers that payment unchanged: cash received is corrected by a reversal, never
  by rewriting the receipt. Refusals are checked against the invoice first (``invoice_not_posted``,
  ``currency_mismatch``, ``overpayment``) and NetSuite's own refusals of the same kind, should the
  invoice change in between, keep those codes.
- Rates are ``currencyRate`` records read through SuiteQL (see ``netsuite._receivables_mapping``).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any, Final

from contracts.billing import Invoice, Payment, PaymentUpsert
from contracts.currency import ExchangeRate
from contracts.problems import FieldError, ProblemError
from system_apis._internal.http import VendorRejected
from system_apis.netsuite._billing_api import NetSuiteBilling, vendor_data_invalid
from system_apis.netsuite._intercompany_mapping import is_intercompany
from system_apis.netsuite._queries import exchange_rate_query
from system_apis.netsuite._receivables_mapping import (
    APPROVED,
    applied_invoice_id,
    payment_from_record,
    payment_terms_days,
    payment_to_record,
    rate_from_rows,
)
from system_apis.netsuite.mapping import MappingError, _date

__all__ = ["NetSuiteReceivables"]

Record = dict[str, Any]
_EXTERNAL_ID: Final = re.compile(r"^[A-Za-z0-9_.:-]{1,80}$")
_CURRENCY: Final = re.compile(r"^[A-Z]{3}$")
_PAYABLE: Final = frozenset({"posted", "sent", "approved", "partially_paid", "paid", "credited"})
"""Statuses a payment may apply to (a settled one then fails as an overpayment: nothing is due)."""
_PAYMENT_REFUSALS: Final = {"apply.items[0].doc": "invoice_not_posted", "apply.items[0].amount": "overpayment",
                            "currency": "currency_mismatch"}
"""NetSuite's refusal of a payment, by ``o:errorPath``, as the canonical code."""


def _problem(status: int, code: str, detail: str, pointer: str | None = None) -> ProblemError:
    errors = [FieldError(pointer=pointer, detail=detail)] if pointer else None
    title = "Not found" if status == 404 else "Refused by the ERP"
    return ProblemError(status, code.replace("_", "-"), title, detail, errors=errors, code=code)


def _error_path(exc: VendorRejected) -> str | None:
    body = exc.body
    details = body.get("o:errorDetails") if isinstance(body, dict) else None
    if isinstance(details, list) and details and isinstance(details[0], dict):
        path = details[0].get("o:errorPath")
        return str(path) if path else None
    return None


class NetSuiteReceivables(NetSuiteBilling):
    """Mixed into `NetSuiteErp` over `NetSuiteBilling` (its lookups, writes and invoice reading)."""

    async def _invoice_record(self, external_id: str) -> Record:
        record = (await self.client.find_by_external_id("invoice", external_id, expand=True)
                  if _EXTERNAL_ID.match(external_id) else None)
        if record is None or is_intercompany(record):  # an intercompany receivable is no client invoice
            raise _problem(404, "not_found", f"No invoice with external id {external_id!r}.")
        return record

    async def get_invoice(self, external_id: str) -> Invoice:
        return (await self._invoices([await self._invoice_record(external_id)]))[0]

    async def post_invoice(self, external_id: str) -> Invoice:
        """Approve a draft (``approvalStatus`` 2), setting its due date; anything past draft is returned as is."""
        record = await self._invoice_record(external_id)
        invoice = (await self._invoices([record]))[0]
        if invoice.status == "void":
            raise _problem(422, "invoice_void", f"Invoice {external_id} is void (rejected or voided in NetSuite); "
                           "it cannot be posted.")
        if invoice.status != "draft":
            return invoice
        body: Record = {"approvalStatus": {"id": APPROVED}}
        if not record.get("dueDate"):
            issued = _date(record.get("tranDate"))
            if issued is None:
                raise vendor_data_invalid(MappingError(f"invoice {record.get('id')} has no tranDate"))
            job = await self.client.get("job", str(record["job"]["id"]))
            body["dueDate"] = (issued + dt.timedelta(days=payment_terms_days(job))).isoformat()
        internal = str(record["id"])
        try:
            await self.client.update("invoice", internal, body)
        except VendorRejected as exc:
            if exc.code == "PERIOD_CLOSED":
                raise _problem(422, "period_closed", f"NetSuite refused the posting period: {exc}") from exc
            raise
        return (await self._invoices([await self.client.get("invoice", internal, expand=True)]))[0]

    async def _payment(self, record: Record) -> Payment:
        try:
            invoice_id = applied_invoice_id(record)
            return payment_from_record(record, invoice_external_id=await self._invoice_eid(invoice_id))
        except MappingError as exc:
            raise vendor_data_invalid(exc) from exc

    async def upsert_payment(self, external_id: str, data: PaymentUpsert) -> tuple[Payment, bool]:
        """Apply a customer payment once per ``external_id``; see the module docstring for the refusals."""
        if not _EXTERNAL_ID.match(external_id):
            raise _problem(422, "validation_failed", "A payment key is 1-80 of A-Z a-z 0-9 _ . : -.")
        existing = await self.client.find_by_external_id("customerPayment", external_id, expand=True)
        if existing is not None:
            return await self._payment(existing), False
        record = await self._invoice_record(data.invoice_external_id)
        invoice = (await self._invoices([record]))[0]
        if invoice.status not in _PAYABLE:
            raise _problem(422, "invoice_not_posted", f"Invoice {invoice.external_id} is {invoice.status}; only a "
                           "posted invoice can be paid.", "/invoice_external_id")
        if data.amount.currency != invoice.currency:
            raise _problem(422, "currency_mismatch", f"Invoice {invoice.external_id} is in {invoice.currency}, the "
                           f"payment in {data.amount.currency}.", "/amount/currency")
        due = invoice.amount_due.amount if invoice.amount_due is not None else invoice.total.amount
        if data.amount.amount <= 0 or data.amount.amount > due:
            raise _problem(422, "overpayment" if data.amount.amount > 0 else "validation_failed",
                           f"A payment of {data.amount.amount} {data.amount.currency} must be positive and at most "
                           f"the {due} {invoice.currency} due on invoice {invoice.external_id}.", "/amount/amount")
        body = payment_to_record(external_id, data, customer_id=invoice.customer_id, invoice_id=invoice.id)
        try:
            written = await self._write("customerPayment", external_id, body, ("apply",))
        except VendorRejected as exc:
            code = _PAYMENT_REFUSALS.get(_error_path(exc) or "")
            if code is None:
                raise
            raise _problem(422, code, f"NetSuite refused the payment: {exc}") from exc
        self._invoice_eids.setdefault(invoice.id, invoice.external_id)
        return await self._payment(written), True

    async def exchange_rate(self, base: str, quote: str, on: dt.date) -> ExchangeRate:
        """The rate NetSuite holds for ``base`` -> ``quote`` effective on ``on`` (the latest on or before it).

        NetSuite keeps rates per (base currency, transaction currency); the pair asked for may be stored
        the other way round, and is then derived as 1 / rate, quantized to 10 decimal places.
        """
        if base == quote:
            return ExchangeRate(base=base, quote=quote, rate=Decimal(1), date=on, source="erp")
        found = None
        if _CURRENCY.match(base) and _CURRENCY.match(quote):
            page = await self.client.suiteql(exchange_rate_query(base, quote, on), limit=10)
            try:
                found = rate_from_rows(page.rows, base, quote)
            except MappingError as exc:
                raise vendor_data_invalid(exc) from exc
        if found is None:
            raise _problem(404, "rate_not_found", f"NetSuite holds no {base}/{quote} rate effective on or before "
                           f"{on.isoformat()}.")
        return found
