"""Xero's receivables rules on the simulator's books: invoices and credit notes saved, approved and voided,
customer payments, credit note allocations, and the ``If-Modified-Since`` filter.

Every refusal is checked before anything changes, so a refused request leaves the books as they were.
Each change stamps ``UpdatedDateUTC`` (`Organisation.touch`), which ``If-Modified-Since`` is compared with.

Docs: https://developer.xero.com/documentation/api/accounting/invoices (status codes; what an approved invoice
accepts), https://developer.xero.com/documentation/api/accounting/payments,
https://developer.xero.com/documentation/api/accounting/creditnotes (allocations),
https://developer.xero.com/documentation/api/accounting/requests-and-responses (``If-Modified-Since``).
"""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from system_apis.xero.simulator._state import Organisation, Refused, ms_date, ms_instant, read_date

__all__ = ["allocate", "changed_since", "modified_since", "save_document", "save_payment"]

Json = dict[str, Any]
DRAFTS: Final = ("DRAFT", "SUBMITTED")
_KINDS: Final = {"Invoices": ("InvoiceID", "InvoiceNumber", "ACCREC"),
                 "CreditNotes": ("CreditNoteID", "CreditNoteNumber", "ACCRECCREDIT")}
_APPROVED_CHANGES: Final = frozenset({"Status", "SentToContact"})
"""What a POST may change on an approved document here. Xero also lets an approved invoice without payments be
edited; psconnect never does, so the simulator refuses it as Xero refuses editing a paid or voided one."""
ZERO: Final = Decimal("0.00")
"""Xero answers amounts to the cent, nothing due as ``0.00``."""
OVERPAID: Final = "Payment amount exceeds the amount outstanding on this document."
NOT_AUTHORISED: Final = "Payments can only be made against Authorised documents."


def modified_since(value: str | None) -> dt.datetime | None:
    """The ``If-Modified-Since`` header: ISO 8601 (Xero's documented ``yyyy-mm-ddThh:mm:ss``, UTC when it has
    no offset) or an HTTP date. A header that is neither is refused rather than ignored, so an adapter that
    sends it wrong finds out here."""
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError) as exc:
            raise Refused(f"The If-Modified-Since header {value!r} is not a date.") from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


def changed_since(records: Iterable[Json], since: dt.datetime | None) -> list[Json]:
    """The records created or changed at or after ``since`` (all of them without it)."""
    return [r for r in records if since is None or ms_instant(r["UpdatedDateUTC"]) >= since]


def _amount(value: object) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise Refused(f"{value!r} is not an amount") from exc


# --- invoices and credit notes ------------------------------------------------------------------------------------

def save_document(org: Organisation, kind: str, data: Json) -> Json:
    """POST one invoice or credit note: create it, update a draft (the fields sent over the stored ones, as Xero
    merges a partial update), approve it (``AUTHORISED``), or change the status of an approved one."""
    id_field, number_field, expected = _KINDS[kind]
    invoice = kind == "Invoices"
    store = org.invoices if invoice else org.credit_notes
    current = store.get(str(data.get(id_field))) if data.get(id_field) else None
    if data.get(id_field) and current is None:
        raise Refused(f"The document {data[id_field]} does not exist.")
    if current is not None and current["Status"] not in DRAFTS:
        return _change_approved(org, kind, current, data)
    merged: Json = {**current, "Date": current["DateString"][:10]} if current is not None else {}
    merged.update(data)
    if merged.get("Type") != expected:
        raise Refused(f"Only {expected} documents are supported here, not {merged.get('Type')!r}.")
    number = str(merged.get(number_field) or "")
    if any(r.get(number_field) == number and r is not current for r in store.values()):
        raise Refused(f"{number_field} must be unique: {number!r} is already used.")
    contact = org.contacts.get(str((merged.get("Contact") or {}).get("ContactID")))
    if contact is None:
        raise Refused("The contact does not exist.")
    day = org.check_date(str(merged.get("Date") or ""))
    lines = org.check_lines(list(merged.get("LineItems") or []))
    status = str(merged.get("Status") or "DRAFT")
    if status not in (*DRAFTS, "AUTHORISED", "DELETED"):
        raise Refused(f"A draft document cannot become {status}.")
    due = read_date(merged["DueDate"]) if invoice and merged.get("DueDate") else None
    if invoice and status == "AUTHORISED" and due is None:
        raise Refused("Due Date is required to approve an invoice (the contact and organisation have no terms).")
    total = sum((ln["LineAmount"] for ln in lines), Decimal(0))
    record: Json = {**(current or {id_field: org.next_id()}), **merged, "Contact": {
        "ContactID": contact["ContactID"], "Name": contact["Name"]}, "LineItems": lines,
        "Date": ms_date(day), "DateString": f"{day.isoformat()}T00:00:00", "Status": status,
        "SubTotal": total, "TotalTax": ZERO, "Total": total, "UpdatedDateUTC": org.touch(),
        "CurrencyCode": merged.get("CurrencyCode") or org.currency, "HasErrors": False}
    if invoice:
        record.update(AmountDue=total, AmountPaid=ZERO, AmountCredited=ZERO, Payments=[], CreditNotes=[])
        if due is not None:
            record["DueDate"] = ms_date(due)
    else:
        record.update(RemainingCredit=total, Allocations=[])
    store[record[id_field]] = record
    return record


def _change_approved(org: Organisation, kind: str, current: Json, data: Json) -> Json:
    """Void an approved document (when nothing is applied to it) or mark an approved invoice sent."""
    id_field, number_field, expected = _KINDS[kind]
    names = {id_field: current[id_field], number_field: current[number_field], "Type": expected}
    if any(k not in _APPROVED_CHANGES and (k not in names or v != names[k]) for k, v in data.items()):
        raise Refused("This document cannot be edited as it has been approved.")
    status = str(data.get("Status") or current["Status"])
    changed = False
    if status != current["Status"]:
        if status != "VOIDED" or current["Status"] != "AUTHORISED":
            raise Refused(f"Invoice not of valid status for modification: a {current['Status']} document cannot "
                          f"become {status}.")
        if kind == "Invoices":
            applied = bool(current.get("AmountPaid") or current.get("AmountCredited"))
        else:
            applied = bool(current.get("Allocations"))
        if applied:
            raise Refused("This document cannot be voided as it has payments or credit allocated to it.")
        current["Status"] = "VOIDED"
        current["AmountDue" if kind == "Invoices" else "RemainingCredit"] = ZERO
        changed = True
    if "SentToContact" in data and kind == "Invoices" and bool(data["SentToContact"]) != current.get("SentToContact"):
        current["SentToContact"] = bool(data["SentToContact"])
        changed = True
    if changed:
        current["UpdatedDateUTC"] = org.touch()
    return current


def _settle(invoice: Json, day: dt.date, stamp: str) -> None:
    invoice["UpdatedDateUTC"] = stamp
    if invoice["AmountDue"] == 0:
        invoice["Status"] = "PAID"
        invoice["FullyPaidOnDate"] = ms_date(day)


def _invoice_summary(invoice: Json) -> Json:
    return {"InvoiceID": invoice["InvoiceID"], "InvoiceNumber": invoice["InvoiceNumber"], "Type": invoice["Type"],
            "CurrencyCode": invoice["CurrencyCode"], "Contact": invoice["Contact"], "IsDiscounted": False,
            "HasErrors": False}


# --- payments -----------------------------------------------------------------------------------------------------

def save_payment(org: Organisation, data: Json) -> Json:
    """PUT one payment: ``Invoice`` (``InvoiceID`` or ``InvoiceNumber``), ``Account`` (``Code`` or
    ``AccountID``) of a bank account, ``Date``, ``Amount`` in the invoice's currency, at most its amount due."""
    target = data.get("Invoice") or {}
    number = target.get("InvoiceNumber") or data.get("InvoiceNumber")
    invoice = org.invoices.get(str(target.get("InvoiceID"))) or next(
        (i for i in org.invoices.values() if number and i["InvoiceNumber"] == number), None)
    if invoice is None:
        raise Refused("The invoice the payment is applied to could not be found.")
    source = data.get("Account") or {}
    account = org.account(str(source.get("Code"))) or next(
        (a for a in org.accounts if a["AccountID"] == source.get("AccountID")), None)
    if account is None:
        raise Refused("The account the payment is made to could not be found.")
    if account["Type"] != "BANK" and not account.get("EnablePaymentsToAccount"):
        raise Refused(f"Account type is invalid for making a payment to/from: {account['Code']}.")
    if account.get("CurrencyCode") not in (invoice["CurrencyCode"], org.currency):
        raise Refused(f"The bank account's currency {account.get('CurrencyCode')} is neither the invoice's nor the "
                      "organisation's base currency.")
    amount = _amount(data.get("Amount"))
    if invoice["Status"] == "PAID" or (invoice["Status"] == "AUTHORISED" and amount > invoice["AmountDue"]):
        raise Refused(OVERPAID)
    if invoice["Status"] != "AUTHORISED":
        raise Refused(NOT_AUTHORISED)
    if amount <= 0:
        raise Refused("The payment amount must be greater than zero.")
    day = read_date(data.get("Date"))
    if day <= org.lock_date:
        raise Refused(f"The payment date cannot be before the period lock date of {org.lock_date:%d %b %Y}.")
    stamp = org.touch()
    payment: Json = {
        "PaymentID": org.next_id(), "Date": ms_date(day), "Amount": amount,
        "Reference": str(data.get("Reference") or ""), "IsReconciled": bool(data.get("IsReconciled", False)),
        "Status": "AUTHORISED", "PaymentType": "ACCRECPAYMENT",
        "UpdatedDateUTC": stamp, "HasAccount": True, "HasValidationErrors": False,
        "Account": {"AccountID": account["AccountID"], "Code": account["Code"]}, "Invoice": _invoice_summary(invoice)}
    if account.get("CurrencyCode") == invoice["CurrencyCode"]:
        payment["BankAmount"] = amount
    org.payments[payment["PaymentID"]] = payment
    invoice["AmountPaid"] += amount
    invoice["AmountDue"] -= amount
    invoice["Payments"] = [*invoice.get("Payments", []), {
        "PaymentID": payment["PaymentID"], "Date": payment["Date"], "Amount": amount,
        "Reference": payment["Reference"], "HasAccount": True, "HasValidationErrors": False}]
    _settle(invoice, day, stamp)
    return payment


# --- credit note allocations --------------------------------------------------------------------------------------

def allocate(org: Organisation, note: Json, data: Json) -> list[Json]:
    """PUT allocations of an approved credit note to approved invoices of its currency: each reduces the invoice's
    amount due (``AmountCredited``) and the note's ``RemainingCredit``; either reaching zero is ``PAID``."""
    if note["Status"] != "AUTHORISED":
        raise Refused("Only an AUTHORISED credit note can be allocated.")
    wanted: list[tuple[Json, Decimal, dt.date]] = []
    for item in data.get("Allocations") or []:
        invoice = org.invoices.get(str((item.get("Invoice") or {}).get("InvoiceID")))
        if invoice is None or invoice["Status"] != "AUTHORISED":
            raise Refused("Credit can only be allocated to an AUTHORISED invoice.")
        if invoice["CurrencyCode"] != note["CurrencyCode"]:
            raise Refused("The credit note and the invoice must be in the same currency.")
        wanted.append((invoice, _amount(item.get("Amount")), read_date(item.get("Date"))))
    if not wanted or any(a <= 0 for _, a, _ in wanted):
        raise Refused("An allocation of a positive amount is required.")
    if sum(a for _, a, _ in wanted) > note["RemainingCredit"]:
        raise Refused("The amount allocated exceeds the credit remaining on the credit note.")
    for invoice in {id(i): i for i, _, _ in wanted}.values():
        if sum(a for i, a, _ in wanted if i is invoice) > invoice["AmountDue"]:
            raise Refused("The amount allocated exceeds the amount outstanding on the invoice.")
    stamp = org.touch()
    out: list[Json] = []
    for invoice, amount, day in wanted:
        allocation: Json = {"AllocationID": org.next_id(), "Amount": amount, "Date": ms_date(day),
                            "Invoice": _invoice_summary(invoice)}
        note["Allocations"] = [*note.get("Allocations", []), allocation]
        note["RemainingCredit"] -= amount
        invoice["AmountCredited"] += amount
        invoice["AmountDue"] -= amount
        invoice["CreditNotes"] = [*invoice.get("CreditNotes", []), {
            "CreditNoteID": note["CreditNoteID"], "CreditNoteNumber": note["CreditNoteNumber"],
            "AppliedAmount": amount, "Total": note["Total"], "HasErrors": False}]
        _settle(invoice, day, stamp)
        out.append(allocation)
    note["UpdatedDateUTC"] = stamp
    if note["RemainingCredit"] == 0:
        note["Status"] = "PAID"
    return out
