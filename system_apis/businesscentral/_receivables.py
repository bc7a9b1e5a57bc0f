"""The receivables half of the ERP system API on Business Central: invoice status, posting, payments, rates.

Invoices are read as Business Central holds them (``mapping.receivable``): ``status``, ``remainingAmount``,
the posted credit memos that name the invoice, ``invoiceDate``, ``dueDate`` and ``lastModifiedDateTime``. So a
payment entered in Business Central by the receivables team shows as well as one psconnect applied. The
status poll (``updated_since``) is Business Central's own filter, ``$filter=lastModifiedDateTime ge …`` on
``salesInvoices``; invoices psconnect did not draft are left out.

Posting is the bound action ``salesInvoices({id})/Microsoft.NAV.post``, called only on a draft: an invoice
posted already is returned as it is, so a retried post (its answer lost) posts nothing twice.

Payments are cash receipt journal lines (``customerPaymentJournals({id})/customerPayments``) in a batch of
psconnect's own (``PSCONNECT`` unless the connection names another; created on first use, balanced to the
connection's ``payment_account``), posted by the journal's ``Microsoft.NAV.post``. A dedicated batch because
posting a journal posts every line in it: psconnect must never post lines someone left in ``GENERAL``.
Each line ``appliesToInvoiceId`` the invoice and carries a negative ``amount`` (a payment received credits the
customer, as in the Cash Receipt Journal). Business Central has no idempotency key, so a payment is made once
this way: its ``psconnectRecords`` record ``payment``/<external id> (a unique key) is inserted in the same
transactional ``$batch`` as its journal line, so a second request with that key finds the record and only
finishes what the first left undone (posts the line if it is still in the journal) — the line is never entered
twice. The record outlives the journal line (posting deletes the line; API v2.0 exposes no customer ledger
entries), so it is the payment's id. Before anything is written the invoice is read and the payment refused
(422) when it is not posted (``invoice_not_posted``), in another currency (``currency_mismatch``), more than
is due (``overpayment``; Business Central itself would leave the excess unapplied on the customer's account)
or dated in a closed period (``period_closed``); a refusal by Business Central at posting withdraws the line
and its record, so a refused payment leaves nothing behind.

Exchange rates are ``currencyExchangeRates`` (API v2.0), see ``mapping.rate_from_rows``.

Docs: https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/api-reference/v2.0/resources/dynamics_customerpaymentjournal
https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/api-reference/v2.0/resources/dynamics_customerpayment
https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/api-reference/v2.0/api/dynamics_salesinvoice_post
"""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from typing import Any, Final

import msgspec

from contracts.billing import Invoice, Payment, PaymentUpsert
from contracts.common import Page
from contracts.currency import ExchangeRate
from contracts.problems import FieldError, ProblemError
from system_apis._internal.http import VendorRejected
from system_apis.businesscentral._billing import BusinessCentralBilling
from system_apis.businesscentral._index import EXISTS, RECORDS, data_of, odata_instant, odata_string, unprocessable
from system_apis.businesscentral.client import EXTENSION_PATH, BusinessCentralClient
from system_apis.businesscentral.mapping import (
    MappingError,
    payment_description,
    payment_document_number,
    payment_from_record,
    payment_line,
    period_of,
    rate_from_rows,
)

__all__ = ["BusinessCentralReceivables"]

Record = dict[str, Any]
_DRAFTS: Final = frozenset({"Draft", "In Review"})
_JOURNAL_SET: Final = "customerPaymentJournals"


def _not_found(external_id: str) -> ProblemError:
    return ProblemError(404, "not-found", "Not found", f"No invoice {external_id!r}.", code="not_found")


def _unreadable(exc: Exception) -> ProblemError:
    return ProblemError(502, "vendor-data-invalid", "Vendor record unreadable", str(exc), code="vendor_data_invalid")


class BusinessCentralReceivables(BusinessCentralBilling):
    """Invoice status, posting, cash application and exchange rates; `BusinessCentralErp` is the whole adapter.

    Args:
        payment_journal: the code (10 characters) of the cash receipts batch psconnect posts payments in.
        payment_account: the G/L account number that batch balances to (the bank's), when psconnect creates it.
    """

    def __init__(self, client: BusinessCentralClient, *, revenue_account: str, payment_journal: str = "PSCONNECT",
                 payment_account: str = "10100") -> None:
        super().__init__(client, revenue_account=revenue_account)
        self.payment_journal = payment_journal.upper()[:10]
        self.payment_account = payment_account
        self._journal_id: str | None = None
        self._payments = asyncio.Lock()  # one journal batch: this adapter enters and posts one payment at a time

    # ------------------------------------------------------------------ invoices

    async def _invoice_index(self, external_id: str) -> Record:
        index = await self.index.find("invoice", external_id)
        if index is None:
            raise _not_found(external_id)
        return index

    async def _invoice(self, index: Record, document: Record | None = None) -> Invoice:
        try:
            invoice = await self._read_document("salesInvoices", "invoice", str(index["recordKey"]),
                                                str(index["targetId"]), index, document)
        except VendorRejected as exc:
            if exc.status == 404:  # the draft was deleted in Business Central
                raise _not_found(str(index["recordKey"])) from exc
            raise
        assert isinstance(invoice, Invoice)
        return invoice

    async def get_invoice(self, external_id: str) -> Invoice:
        return await self._invoice(await self._invoice_index(external_id))

    async def list_invoices(self, project_external_id: str | None, period: str | None, limit: int,
                            cursor: str | None, updated_since: dt.datetime | None = None) -> Page[Invoice]:
        if updated_since is not None:
            return await self._changed_invoices(project_external_id, period, limit, cursor, updated_since)
        items, following = await self._documents("salesInvoices", "invoice", project_external_id, period, limit,
                                                  cursor)
        return Page(items=[i for i in items if isinstance(i, Invoice)], next_cursor=following)

    async def _changed_invoices(self, project_external_id: str | None, period: str | None, limit: int,
                                cursor: str | None, since: dt.datetime) -> Page[Invoice]:
        """psconnect's invoices Business Central changed at or after ``since`` (a page may hold fewer than
        ``limit``: other invoices on it are not psconnect's, or not of the project or period asked for)."""
        documents, following = await self._page(await self.client.url("salesInvoices"),
                                                 f"lastModifiedDateTime ge {odata_instant(since)}", limit, cursor,
                                                 "invoicesChanged")
        indexes = await asyncio.gather(*(self.index.by_target("invoice", str(d["id"])) for d in documents))
        kept = [(index, document) for index, document in zip(indexes, documents, strict=True)
                if index is not None and project_external_id in (None, index.get("groupKey"))
                and period in (None, index.get("parentKey"))]
        items = await asyncio.gather(*(self._invoice(index, document) for index, document in kept))
        return Page(items=list(items), next_cursor=following)

    async def post_invoice(self, external_id: str) -> Invoice:
        """Post a draft (``Microsoft.NAV.post``); any other invoice is returned as Business Central holds it."""
        index = await self._invoice_index(external_id)
        invoice = await self._invoice(index)
        if invoice.status != "draft":
            return invoice
        try:
            await self.client.action(await self.client.url(f"salesInvoices({index['targetId']})/Microsoft.NAV.post"))
        except VendorRejected as exc:
            if "allowed posting dates" in str(exc):
                raise unprocessable("period_closed", f"Business Central refused the posting date: {exc}",
                                    "Accounting period closed") from exc
            raise
        return await self._invoice(index)

    # ------------------------------------------------------------------ payments

    async def upsert_payment(self, external_id: str, data: PaymentUpsert) -> tuple[Payment, bool]:
        entity = await self._require_entity(data.legal_entity_id)
        async with self._payments:
            record = await self.index.find("payment", external_id)
            line: Record | None = None
            if record is None:
                record, line = await self._enter_payment(external_id, data)
            created = line is not None  # this request entered the line (else an earlier one did)
            record = await self._settle(record, line)
        try:
            return payment_from_record(record, legal_entity_id=entity.id), created
        except MappingError as exc:
            raise _unreadable(exc) from exc

    async def _enter_payment(self, external_id: str, data: PaymentUpsert) -> tuple[Record, Record | None]:
        """Check, then write the payment's record and journal line in one transaction: (record, line).

        The line is None when the record was there already (written meanwhile under the same key).
        """
        index = await self.index.find("invoice", data.invoice_external_id)
        if index is None:
            raise unprocessable("unknown_invoice", f"Business Central has no invoice {data.invoice_external_id!r}.")
        invoice = await self._invoice(index)
        _refuse(invoice, data)
        await self._period_open(period_of(data.date))
        journal = await self._journal()
        company = await self.client.company()
        meta = {"invoice_external_id": data.invoice_external_id, "date": data.date.isoformat(),
                "amount": str(data.amount.amount), "currency": data.amount.currency, "reference": data.reference,
                "document_number": payment_document_number(external_id), "status": "entered"}
        json = {"Content-Type": "application/json"}
        record = {"recordType": "payment", "recordKey": external_id, "targetId": "",
                  "parentKey": data.invoice_external_id, "groupKey": "", "recordDate": data.date.isoformat(),
                  "data": msgspec.json.encode(meta).decode()}
        line = payment_line(external_id, data, customer_id=invoice.customer_id, invoice_id=invoice.id)
        answers = await self.client.batch([
            {"id": "x", "method": "POST", "url": f"{self.client.root}{EXTENSION_PATH}/companies({company})/{RECORDS}",
             "headers": json, "body": record},
            {"id": "l", "method": "POST", "url": f"companies({company})/{_JOURNAL_SET}({journal})/customerPayments",
             "headers": json, "body": line}])
        failed = [a for a in answers if int(a.get("status", 500)) >= 400 and int(a.get("status", 500)) != 424]
        if not failed:
            return dict(answers[0]["body"]), dict(answers[1]["body"])
        error = (failed[0].get("body") or {}).get("error", {})
        if failed[0]["id"] == "x" and error.get("code") == EXISTS:
            again = await self.index.find("payment", external_id)
            if again is not None:
                return again, None
        raise VendorRejected("businesscentral", f"{error.get('code')}: {error.get('message')}",
                             status=int(failed[0]["status"]), code=error.get("code"))

    async def _settle(self, record: Record, line: Record | None) -> Record:
        """Post the payment's journal line if it is still in the journal; the record then says ``posted``.

        A line no longer in the journal was posted (by this request before its answer was lost, or with the
        batch someone else posted). A line Business Central refuses to post is withdrawn with its record.
        """
        data = data_of(record)
        if data.get("status") == "posted":
            return record
        journal = await self._journal()
        key = str(record["recordKey"])
        if line is None:  # entered by an earlier request: is its line still in the journal?
            line = await self._journal_line(journal, "", key)
        if line is not None:
            try:
                await self.client.action(await self.client.url(f"{_JOURNAL_SET}({journal})/Microsoft.NAV.post"))
            except VendorRejected as exc:
                refused = await self._journal_line(journal, str(line["id"]), key)
                if refused is not None:  # still in the journal: nothing was posted, withdraw ours
                    await self._withdraw(journal, refused, record)
                    if "allowed posting dates" in str(exc):
                        raise unprocessable("period_closed", f"Business Central refused the posting date: {exc}",
                                            "Accounting period closed") from exc
                    raise
        target = str(line["id"]) if line is not None else str(record.get("targetId") or "")
        return await self.index.put("payment", key, target=target, data={**data, "status": "posted"},
                                    parent=str(record.get("parentKey") or ""), date=str(record.get("recordDate") or ""))

    async def _journal_line(self, journal: str, line_id: str, external_id: str) -> Record | None:
        url = await self.client.url(f"{_JOURNAL_SET}({journal})/customerPayments")
        if not line_id:  # the answer that named it was lost: find it by its description
            return await self.client.find(url, f"description eq {odata_string(payment_description(external_id))}")
        try:
            return await self.client.get(f"{url}({line_id})")
        except VendorRejected as exc:
            if exc.status == 404:
                return None
            raise

    async def _withdraw(self, journal: str, line: Record, record: Record) -> None:
        """Delete a refused line and its record in one transaction: the payment was never made."""
        company = await self.client.company()
        current = await self.index.find("payment", str(record["recordKey"])) or record
        lines = f"companies({company})/{_JOURNAL_SET}({journal})/customerPayments"
        await self.client.batch([
            {"id": "l", "method": "DELETE", "url": f"{lines}({line['id']})",
             "headers": {"If-Match": str(line["@odata.etag"])}},
            {"id": "x", "method": "DELETE",
             "url": f"{self.client.root}{EXTENSION_PATH}/companies({company})/{RECORDS}({current['id']})",
             "headers": {"If-Match": str(current["@odata.etag"])}}])

    async def _journal(self) -> str:
        """The id of psconnect's cash receipts batch, created (balanced to the payment account) on first use."""
        if self._journal_id is None:
            url = await self.client.url(_JOURNAL_SET)
            code = f"code eq {odata_string(self.payment_journal)}"
            journal = await self.client.find(url, code)
            if journal is None:
                try:
                    journal = await self.client.create(url, {
                        "code": self.payment_journal, "displayName": "psconnect cash application",
                        "balancingAccountNumber": self.payment_account})
                except VendorRejected as exc:
                    journal = await self.client.find(url, code) if exc.code == EXISTS else None
                    if journal is None:
                        raise
            self._journal_id = str(journal["id"])
        return self._journal_id

    # ------------------------------------------------------------------ exchange rates

    async def exchange_rate(self, base: str, quote: str, on: dt.date) -> ExchangeRate:
        """Business Central's rate in effect on ``on``: the latest ``startingDate`` on or before it.

        Rates are stored per foreign currency against the company's (or a named relational) currency; the
        pair asked the other way round is 1 / the stored rate, and two foreign currencies are crossed through
        the company's currency — each derived rate rounded half-up to 10 decimal places (``rate_from_rows``).
        """
        if base == quote:
            return ExchangeRate(base=base, quote=quote, rate=Decimal(1), date=on, source="erp")
        local = (await self.entity()).currency
        url = await self.client.url("currencyExchangeRates")
        rows: list[Record] = []
        for code in sorted({base, quote} - {local}):
            rows += [r async for r in self.client.iter_all(
                url, filter=f"currencyCode eq {odata_string(code)} and startingDate le {on.isoformat()}")]
        try:
            found = rate_from_rows(rows, base, quote, local)
        except MappingError as exc:
            raise _unreadable(exc) from exc
        if found is None:
            raise ProblemError(404, "not-found", "Exchange rate not found", f"Business Central holds no {base}/{quote} "
                               f"rate in effect on {on.isoformat()}.", code="rate_not_found")
        return ExchangeRate(base=base, quote=quote, rate=found[0], date=found[1], source="erp")


def _refuse(invoice: Invoice, data: PaymentUpsert) -> None:
    """The 422 for a payment psconnect does not apply to this invoice; nothing is written before it."""
    if invoice.status in ("draft", "void"):
        raise unprocessable("invoice_not_posted", f"Invoice {invoice.external_id} is {invoice.status} in Business "
                            "Central; only a posted invoice can be paid.", "Invoice not posted")
    if data.amount.currency != invoice.currency:
        raise unprocessable("currency_mismatch", f"The payment is in {data.amount.currency}, invoice "
                            f"{invoice.external_id} in {invoice.currency}.", "Currency mismatch")
    if data.amount.amount <= 0:
        raise ProblemError(422, "validation-error", "Validation failed", "A payment's amount is positive.",
                           errors=[FieldError(pointer="/amount/amount", detail="must be positive")],
                           code="validation_failed")
    due = invoice.amount_due.amount if invoice.amount_due is not None else Decimal(0)
    if data.amount.amount > due:
        raise unprocessable("overpayment", f"The payment of {data.amount.amount} exceeds the {due} due on invoice "
                            f"{invoice.external_id}.", "Overpayment")
