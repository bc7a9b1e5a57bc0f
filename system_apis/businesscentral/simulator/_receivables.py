"""Receivables in the simulated Business Central: cash receipt journals, cancelling invoices, exchange rates.

- ``customerPaymentJournals`` are batches of the cash receipts journal; their ``customerPayments`` lines stay
  in the batch until ``customerPaymentJournals({id})/Microsoft.NAV.post`` posts every line of it in one
  transaction (a line that cannot post refuses the whole batch and keeps it as it was) and empties it.
  Following the Cash Receipt Journal, a payment received is a credit to the customer: its ``amount`` is
  negative. A line that ``appliesToInvoiceId`` closes that much of the posted invoice (what exceeds the
  invoice's remaining amount stays on the customer's account, unapplied, as Business Central leaves it).
- ``salesInvoices({id})/Microsoft.NAV.cancel`` reverses an open invoice nothing has been applied to with a
  corrective credit memo: the invoice reads ``Canceled``, the credit memo ``Corrective``.
- ``currencyExchangeRates`` (API v2.0): ``exchangeRateAmount`` units of ``currencyCode`` are worth
  ``relationalExchangeRateAmount`` units of ``relationalCurrencyCode`` (blank: the company's local currency)
  from ``startingDate`` on.

Docs: https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/api-reference/v2.0/resources/dynamics_customerpayment
https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/api-reference/v2.0/resources/dynamics_currencyexchangerate
https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/api-reference/v2.0/api/dynamics_salesinvoice_cancel
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from system_apis.businesscentral.simulator._ledger import post_general_journal
from system_apis.businesscentral.simulator._store import BcError, EntityStore, new_id

__all__ = ["act", "add_payment", "seed_receivables"]

Record = dict[str, Any]
_LINE_FIELDS: Final = frozenset({"customerId", "customerNumber", "contactId", "postingDate", "documentNumber",
                                 "externalDocumentNumber", "amount", "appliesToInvoiceId", "appliesToInvoiceNumber",
                                 "description", "comment"})


def _gen_journal_line(journal: Record, line: Record) -> str:
    """How Business Central names a journal line in its errors."""
    return (f"Gen. Journal Line: Journal Template Name=CASHRCPT, Journal Batch Name={journal['code']}, "
            f"Line No.={line['lineNumber']}")


def add_payment(store: EntityStore, company_id: str, journal_id: str, body: Record) -> Record:
    """A ``customerPayments`` line in a journal batch; the customer defaults to the applied invoice's."""
    journal = store.find(company_id, "customerPaymentJournals", journal_id)
    lines = store.document_lines(company_id, "customerPaymentJournals", journal_id)
    unknown = sorted(k for k in body if not k.startswith("@") and k not in _LINE_FIELDS)
    if unknown:
        raise BcError(400, "BadRequest_PropertyNotFound", f"The property '{unknown[0]}' does not exist on type "
                      "'Microsoft.NAV.customerPayment'.")
    line = {k: v for k, v in body.items() if not k.startswith("@")}
    invoices = store.entity_set(company_id, "salesInvoices")
    invoice = invoices.get(str(line.get("appliesToInvoiceId") or "").lower())
    if line.get("appliesToInvoiceId") and invoice is None:
        raise BcError(400, "BadRequest_NotFound", f"The invoice {line['appliesToInvoiceId']} does not exist.")
    customers = store.entity_set(company_id, "customers")
    customer_id = str(line.get("customerId") or (invoice or {}).get("customerId") or "").lower()
    if customer_id not in customers:
        raise BcError(400, "BadRequest_NotFound", f"The customer {customer_id or '(blank)'} does not exist.")
    line.update(id=new_id(), journalId=journal["id"], journalDisplayName=journal["code"], customerId=customer_id,
                customerNumber=customers[customer_id].get("number"),
                lineNumber=10000 * (1 + max((int(x["lineNumber"]) // 10000 for x in lines.values()), default=0)),
                amount=Decimal(str(line.get("amount") or 0)), postingDate=str(line.get("postingDate") or "")[:10])
    if invoice is not None:
        line["appliesToInvoiceNumber"] = invoice.get("number")
    for field in ("contactId", "documentNumber", "externalDocumentNumber", "description", "comment"):
        line.setdefault(field, "")
    lines[line["id"]] = store.stamp(line)
    store.stamp(journal)
    return line


def post_journal(store: EntityStore, company_id: str, journal_id: str) -> None:
    """Post every line of the batch, or none: each line is checked before any is applied."""
    journal = store.find(company_id, "customerPaymentJournals", journal_id)
    lines = sorted(store.document_lines(company_id, "customerPaymentJournals", journal_id).values(),
                   key=lambda x: int(x["lineNumber"]))
    if not lines:
        raise BcError(400, "Application_DialogException", "There is nothing to post.")
    invoices = store.entity_set(company_id, "salesInvoices")
    for line in lines:
        where = _gen_journal_line(journal, line)
        if not line.get("documentNumber"):
            raise BcError(400, "Application_DialogException", f"Document No. must have a value in {where}.")
        if line["amount"] == 0:
            raise BcError(400, "Application_DialogException", f"Amount must have a value in {where}.")
        store.require_open(company_id, line["postingDate"])
        if not journal.get("balancingAccountNumber"):
            raise BcError(400, "Application_DialogException", f"Document No. {line['documentNumber']} is out of "
                          f"balance by {-line['amount']}. Please check that the posting date, document type, "
                          "document number and amount are correct for each line.")
        invoice = invoices.get(str(line.get("appliesToInvoiceId") or "").lower())
        if line.get("appliesToInvoiceId"):
            if invoice is None or invoice.get("status") != "Open":
                raise BcError(400, "Application_DialogException", "Cannot post because the Applies-to Doc. No. "
                              f"{line.get('appliesToInvoiceNumber')} is not an open entry of the customer: {where}.")
            if str(invoice["customerId"]).lower() != line["customerId"]:
                raise BcError(400, "Application_DialogException", "The entry to apply belongs to another "
                              f"customer: {where}.")
            if line["amount"] > 0:
                raise BcError(400, "Application_DialogException", f"Amount must be negative in {where}.")
    for line in lines:
        invoice = invoices.get(str(line.get("appliesToInvoiceId") or "").lower())
        if invoice is not None:
            store.apply(invoice, -line["amount"])
    store.document_lines(company_id, "customerPaymentJournals", journal_id).clear()
    store.stamp(journal)


def cancel_invoice(store: EntityStore, company_id: str, invoice_id: str) -> None:
    """A corrective credit memo for the whole of a posted invoice nothing was applied to yet."""
    invoice = store.find(company_id, "salesInvoices", invoice_id)
    if invoice.get("status") not in ("Open", "Paid"):
        raise BcError(400, "Application_DialogException", "You can only cancel a posted sales invoice.")
    if Decimal(str(invoice["remainingAmount"])) != Decimal(str(invoice["totalAmountIncludingTax"])):
        raise BcError(400, "Application_DialogException", f"You cannot cancel posted sales invoice "
                      f"{invoice.get('number')} because it is fully or partially paid.")
    total = invoice["totalAmountIncludingTax"]
    memo = store.insert(company_id, "salesCreditMemos", {
        "customerId": invoice["customerId"], "creditMemoDate": invoice.get("postingDate"),
        "postingDate": invoice.get("postingDate"), "currencyCode": invoice.get("currencyCode", ""),
        "externalDocumentNumber": invoice.get("externalDocumentNumber", ""), "invoiceId": invoice["id"],
        "invoiceNumber": invoice.get("number")})
    memo.update(status="Corrective", totalAmountExcludingTax=invoice["totalAmountExcludingTax"],
                totalTaxAmount=invoice.get("totalTaxAmount", Decimal("0.00")), totalAmountIncludingTax=total,
                remainingAmount=Decimal("0.00"))
    invoice.update(status="Canceled", remainingAmount=Decimal("0.00"))
    store.stamp(invoice, document=True)


def act(store: EntityStore, company_id: str, entity_set: str, key: str, action: str) -> None:
    """A bound action ``{entity_set}({key})/Microsoft.NAV.{action}`` (204 on success)."""
    if action == "post" and entity_set in ("salesInvoices", "salesCreditMemos", "purchaseInvoices"):
        store.post_document(company_id, entity_set, key)
    elif action == "post" and entity_set == "customerPaymentJournals":
        post_journal(store, company_id, key)
    elif action == "post" and entity_set == "journals":
        post_general_journal(store, company_id, key)
    elif action == "cancel" and entity_set == "salesInvoices":
        cancel_invoice(store, company_id, key)
    else:
        raise BcError(404, "BadRequest_NotFound", f"Resource not found for the segment 'Microsoft.NAV.{action}'.")


def seed_receivables(store: EntityStore, company_id: str, local_currency: str, per_usd: Mapping[str, Decimal],
                     *, year: int = 2026) -> None:
    """The company's cash receipts batch ``GENERAL`` and a rate per month of ``year`` for each other currency.

    ``per_usd`` gives units of each currency per US dollar; a month's rate drifts a little from it (a fixed
    pattern per currency and month), quoted as Business Central companies usually quote: 100 units of the
    foreign currency against the local currency (relational currency blank).
    """
    store.insert(company_id, "customerPaymentJournals", {
        "code": "GENERAL", "displayName": "Default Journal Batch", "balancingAccountNumber": "10100"}, seeding=True)
    for index, (currency, units) in enumerate(sorted(per_usd.items())):
        if currency == local_currency:
            continue
        for month in range(1, 13):
            drift = 1 + Decimal((month * 7 + index * 3) % 11 - 5) / 1000
            rate = (per_usd[local_currency] / units * drift * 100).quantize(Decimal("0.0001"))
            store.insert(company_id, "currencyExchangeRates", {
                "currencyCode": currency, "startingDate": dt.date(year, month, 1).isoformat(),
                "exchangeRateAmount": Decimal(100), "relationalCurrencyCode": "",
                "relationalExchangeRateAmount": rate, "adjustmentExchangeRateAmount": Decimal(100),
                "relationalAdjustmentExchangeRateAmount": rate, "fixedExchangeRateAmount": "Currency"},
                seeding=True)
