"""Xero's rules for documents created with ``PUT`` on the simulator's books, one element or many: bills (``ACCPAY``
Invoices) and supplier credit notes (``ACCPAYCREDIT`` CreditNotes), and the sales invoices (``ACCREC``) and customer
credit notes (``ACCRECCREDIT``) that ``PUT`` creates too (the intercompany receivables; `_receivables` keeps the
``POST`` of drafts). A sales document's number must be unique in the organisation; a bill's is the supplier's own.
A line may be negative while the document's total is not; a document in a currency other than the organisation's
needs the currency added first (``PUT /Currencies``) and gets the day's ``CurrencyRate`` when it names none.

``PUT /Invoices`` and ``PUT /CreditNotes`` create. With ``summarizeErrors=false`` Xero answers 200 and each
element on its own: saved, or echoed with ``HasErrors``, ``ValidationErrors`` and ``StatusAttributeString: ERROR``
while the others are saved. Otherwise an element in error fails the request: 400 ``ValidationException`` whose
``Elements`` are the elements with their errors, and nothing is saved (read here as all or nothing: every element is
checked before any is saved). The vendored document declares ``summarizeErrors`` ``default: false``; Xero's guide
answers a batch in error with 400 unless ``false`` is sent, which the simulator follows; the adapter sends ``false``
for expense batches (the per-element answer either way) and ``true`` for a single intercompany document. Every
refusal is checked before anything changes.

Docs: https://developer.xero.com/documentation/api/accounting/invoices (PUT, bill fields, ``summarizeErrors``),
https://developer.xero.com/documentation/api/accounting/creditnotes, https://developer.xero.com/documentation/api/
accounting/contacts (``IsSupplier`` / ``IsCustomer`` are set by Xero once a contact has a bill / an invoice),
https://developer.xero.com/documentation/api/accounting/currencies.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any, Final

from system_apis.xero.simulator._state import Organisation, Refused, ms_date, read_date

__all__ = ["PAYABLE_TYPES", "RECEIVABLE_TYPES", "create_payables"]

Json = dict[str, Any]
PAYABLE_TYPES: Final = {"Invoices": "ACCPAY", "CreditNotes": "ACCPAYCREDIT"}
RECEIVABLE_TYPES: Final = {"Invoices": "ACCREC", "CreditNotes": "ACCRECCREDIT"}
_ACCOUNT_TYPES: Final = {False: frozenset({"EXPENSE", "DIRECTCOSTS", "OVERHEADS"}),
                         True: frozenset({"REVENUE", "SALES", "OTHERINCOME"})}
"""What a bill's lines (False) and a sales document's lines (True) may be coded to."""
_FIELDS: Final = {"Invoices": ("InvoiceID", "InvoiceNumber"), "CreditNotes": ("CreditNoteID", "CreditNoteNumber")}
_ZERO: Final = Decimal("0.00")


def _lines(org: Organisation, lines: list[Json], *, sales: bool) -> list[Json]:
    """A document's lines: each coded to an active account of its side (expense or revenue), tracked to known
    options, to the cent; negative lines are allowed, a negative total is not (see `_prepare`)."""
    if not lines:
        raise Refused("A document must have at least one line item.")
    codes = {a["Code"] for a in org.accounts if a["Type"] in _ACCOUNT_TYPES[sales] and a["Status"] == "ACTIVE"}
    for line in lines:
        if line.get("AccountCode") not in codes:
            raise Refused(f"Account code '{line.get('AccountCode')}' is not a valid code for this document.")
        if not str(line.get("Description") or ""):
            raise Refused("Description needs to be at least 1 char long.")
        if line.get("DiscountRate") or line.get("DiscountAmount"):
            raise Refused("Discounts are not supported on bills and credit notes.")
    checked = org.check_lines(lines)
    for line in checked:
        amount = line["LineAmount"]
        if amount != amount.quantize(Decimal("0.01")):
            raise Refused("Line amounts must have at most 2 decimal places.")
        line["TaxType"] = line.get("TaxType") or "NONE"
    return checked


def _prepare(org: Organisation, kind: str, data: Json, taken: set[str]) -> Json:
    """The record one element would create, or Refused; nothing changes. ``taken``: the sales numbers the
    elements before it in the same call would take."""
    id_field, number_field = _FIELDS[kind]
    expected = str(data.get("Type"))
    if expected not in (PAYABLE_TYPES[kind], RECEIVABLE_TYPES[kind]):
        raise Refused(f"Only {PAYABLE_TYPES[kind]} and {RECEIVABLE_TYPES[kind]} documents are created here, not "
                      f"{data.get('Type')!r}.")
    sales = expected == RECEIVABLE_TYPES[kind]
    number = str(data.get(number_field) or "")
    store = org.invoices if kind == "Invoices" else org.credit_notes
    if sales and number and (number in taken or any(
            r.get(number_field) == number and r["Type"] == expected for r in store.values())):
        raise Refused(f"{'Invoice' if kind == 'Invoices' else 'Credit Note'} # must be unique.")
    if data.get(id_field):
        raise Refused(f"{id_field} cannot be given when creating a document (PUT creates; POST updates).")
    contact = org.contacts.get(str((data.get("Contact") or {}).get("ContactID")))
    if contact is None:
        raise Refused("The contact does not exist.")
    if contact.get("ContactStatus") == "ARCHIVED":
        raise Refused("The contact is archived: a document cannot be created for an archived contact.")
    day = org.check_date(str(data.get("Date") or ""))
    currency = str(data.get("CurrencyCode") or org.currency)
    if currency not in org.currencies:
        raise Refused(f"The currency {currency} is not enabled for this organisation.")
    if data.get("LineAmountTypes", "Exclusive") not in ("Exclusive", "Inclusive", "NoTax"):
        raise Refused(f"LineAmountTypes {data.get('LineAmountTypes')!r} is not valid.")
    lines = _lines(org, list(data.get("LineItems") or []), sales=sales)
    status = str(data.get("Status") or "DRAFT")
    if status not in ("DRAFT", "SUBMITTED", "AUTHORISED"):
        raise Refused(f"A new document cannot be {status}.")
    due = read_date(data["DueDate"]) if data.get("DueDate") else None
    if status == "AUTHORISED" and due is None and kind == "Invoices":
        raise Refused("Due Date is required to approve a bill (the contact and organisation have no terms).")
    total = sum((ln["LineAmount"] for ln in lines), Decimal(0)).quantize(_ZERO)
    if total < 0:
        raise Refused("The document total cannot be negative: enter a credit note instead.")
    rate = data.get("CurrencyRate")
    if sales:
        taken.add(number)
    record: Json = {
        **data, id_field: str(uuid.uuid4()), number_field: number, "Type": expected,
        "Contact": {"ContactID": contact["ContactID"], "Name": contact["Name"]}, "LineItems": lines,
        "Date": ms_date(day), "DateString": f"{day.isoformat()}T00:00:00", "Status": status,
        "LineAmountTypes": data.get("LineAmountTypes", "Exclusive"), "CurrencyCode": currency,
        "CurrencyRate": Decimal(str(rate)) if rate else org.currency_rate(currency), "SubTotal": total,
        "TotalTax": _ZERO, "Total": total, "HasErrors": False, "HasAttachments": False}
    if due is not None:
        record.update(DueDate=ms_date(due), DueDateString=f"{due.isoformat()}T00:00:00")
    if kind == "Invoices":
        record.update(AmountDue=total, AmountPaid=_ZERO, AmountCredited=_ZERO, Payments=[], CreditNotes=[])
    else:
        record.update(RemainingCredit=total, Allocations=[])
    return record


def _save(org: Organisation, kind: str, record: Json) -> Json:
    record["UpdatedDateUTC"] = org.touch()
    (org.invoices if kind == "Invoices" else org.credit_notes)[record[_FIELDS[kind][0]]] = record
    contact = org.contacts[record["Contact"]["ContactID"]]
    flag = "IsCustomer" if record["Type"] == RECEIVABLE_TYPES[kind] else "IsSupplier"
    if not contact.get(flag):
        contact.update({flag: True, "UpdatedDateUTC": org.now()})
    return record


def _in_error(element: Json, message: str) -> Json:
    return {**element, "HasErrors": True, "StatusAttributeString": "ERROR", "ValidationErrors": [{"Message": message}]}


def create_payables(org: Organisation, kind: str, elements: list[Json], *, summarize: bool) -> tuple[int, Json]:
    """``PUT`` of documents (bills, sales invoices, their credit notes): (status, the body's elements or the 400
    error body)."""
    prepared: list[Json | str] = []
    taken: set[str] = set()
    for element in elements:
        try:
            prepared.append(_prepare(org, kind, element, taken))
        except Refused as exc:
            prepared.append(str(exc))
    if summarize and any(isinstance(p, str) for p in prepared):
        return 400, {"ErrorNumber": 10, "Type": "ValidationException", "Message": "A validation exception occurred",
                     "Elements": [_in_error(e, p) for e, p in zip(elements, prepared, strict=True)
                                  if isinstance(p, str)]}
    out: list[Json] = []
    for element, outcome in zip(elements, prepared, strict=True):
        if isinstance(outcome, str):
            out.append(_in_error(element, outcome))
        else:
            out.append({**_save(org, kind, outcome), "StatusAttributeString": "OK"})
    return 200, {kind: out}
