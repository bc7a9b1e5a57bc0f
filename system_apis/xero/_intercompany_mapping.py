"""Intercompany charges <-> Xero invoices, bills and their credit notes (pure; no I/O).

One side of a charge is one document in this organisation's books, numbered `charge_number` (``IC:<external id>``):

- ``receivable`` (this entity employs the consultants and charges the other): an ``ACCREC`` **invoice** to the
  counterparty's contact; ``payable`` (the other entity's consultants worked on this entity's project): an
  ``ACCPAY`` **bill** from the same contact, which Xero then marks a supplier too
  (https://developer.xero.com/documentation/api/accounting/invoices). Xero keeps no external id on either; on
  ``ACCREC`` the number must be unique in the organisation (Xero refuses a second), on ``ACCPAY`` it is the
  supplier's own, non-unique reference (as the expense bills use it, see `_expense_mapping`);
- a charge whose lines add up to less than zero (more reversed than charged) is a **credit note** instead,
  ``ACCRECCREDIT`` / ``ACCPAYCREDIT`` (https://developer.xero.com/documentation/api/accounting/creditnotes):
  Xero refuses an invoice whose total is negative. Its quantities and amounts are written with the sign flipped
  (Xero holds a credit note positive) and flipped back on reading;
- ``Contact`` = the counterparty entity, ``ContactNumber`` ``IC:<entity code>`` (`counterparty_number`, made on
  first use by the adapter): the other entity may keep its books in another ERP, so its code is all both know;
- ``Reference`` = ``IC <counterparty> <period>`` and the memo after it (`reference`): the counterparty and the
  period are read back from here, the memo is for the reader (an invoice has no memo field of its own);
- ``Date`` = the last day of the period (the document lands in it), ``DueDate`` by the organisation's terms,
  ``Status`` ``AUTHORISED`` (a booked receivable or payable, not a draft), ``CurrencyCode`` = the charge's (a
  payable is in the employer's currency: a foreign-currency document, Xero converts it at its day rate),
  ``LineAmountTypes`` ``NoTax`` (the transfer price as agreed between the entities);
- one line item per time line: ``Quantity`` = hours, ``UnitAmount`` = the transfer rate, ``LineAmount`` = the
  amount (a reversal negative, as Xero allows on a line while the total is not), ``AccountCode`` =
  `INTERCOMPANY_ACCOUNTS` (intercompany revenue on the receivable, intercompany cost on the payable: the
  eliminations of consolidation find them there), ``Tracking`` ``Project`` on the payable when this organisation
  knows the project (on the receivable the project is the other entity's), ``Description`` = `describe` (line
  key, consultant, project, date: a line item has no field of its own for them; read back from here).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any, Final, Literal

from contracts.billing import IntercompanyCharge, IntercompanyChargeUpsert, IntercompanyLine, IntercompanySide
from contracts.common import Money
from system_apis.xero.mapping import PROJECT_TRACKING, MappingError

__all__ = ["CHARGE_PREFIX", "INTERCOMPANY_ACCOUNTS", "POSTED_STATUSES", "Collection", "charge_from_record",
           "charge_number", "charge_problem", "collection_of", "counterparty_contact", "counterparty_number",
           "describe", "document_from_charge", "document_type", "external_id_of", "reference"]

Collection = Literal["Invoices", "CreditNotes"]
CHARGE_PREFIX: Final = "IC:"
INTERCOMPANY_ACCOUNTS: Final[dict[IntercompanySide, str]] = {"receivable": "4030", "payable": "5030"}
"""The firm's chart beside its revenue accounts 4000-4020: 4030 Intercompany recharges (revenue), 5030
Intercompany consultant costs (direct costs)."""
POSTED_STATUSES: Final = frozenset({"AUTHORISED", "PAID"})
"""A document in the ledger (settled or not); a voided or deleted one charges nothing."""
SEPARATOR: Final = " | "
_TYPES: Final[dict[tuple[IntercompanySide, Collection], str]] = {
    ("receivable", "Invoices"): "ACCREC", ("receivable", "CreditNotes"): "ACCRECCREDIT",
    ("payable", "Invoices"): "ACCPAY", ("payable", "CreditNotes"): "ACCPAYCREDIT"}
_SIDES: Final[dict[str, tuple[IntercompanySide, Collection]]] = {t: k for k, t in _TYPES.items()}
_NUMBER_FIELD: Final[dict[Collection, str]] = {"Invoices": "InvoiceNumber", "CreditNotes": "CreditNoteNumber"}
_ID_FIELD: Final[dict[Collection, str]] = {"Invoices": "InvoiceID", "CreditNotes": "CreditNoteID"}
_REFERENCE: Final = re.compile(r"^IC ([A-Z]{2}[0-9]{2}) (\d{4}-\d{2})(?: .*)?$", re.DOTALL)
_TEXT: Final = re.compile(r"^[^|\r\n]+$")
"""What a description part may hold and still be read back (no separator, no line break)."""
CENT: Final = Decimal("0.01")
_MAX_PLACES: Final = 4
"""Xero holds quantities and unit amounts to four decimal places (``unitdp=4``), line amounts to the cent."""


def charge_number(external_id: str) -> str:
    return f"{CHARGE_PREFIX}{external_id}"


def external_id_of(number: object) -> str | None:
    """The external id of a document's number; None for a document psconnect did not record as a charge."""
    text = str(number or "")
    return text.removeprefix(CHARGE_PREFIX) if text.startswith(CHARGE_PREFIX) and len(text) > 3 else None


def counterparty_number(code: str) -> str:
    return f"IC:{code}"


def counterparty_contact(code: str) -> dict[str, Any]:
    """The contact standing for the other legal entity (customer of a receivable, supplier of a payable)."""
    return {"ContactNumber": counterparty_number(code), "Name": f"Intercompany {code}"}


def reference(data: IntercompanyChargeUpsert) -> str:
    memo = " ".join((data.memo or "").split())  # one line: Xero shows the reference in lists
    return f"IC {data.counterparty} {data.period}{f' {memo}' if memo else ''}"


def collection_of(data: IntercompanyChargeUpsert) -> Collection:
    return "CreditNotes" if sum((ln.amount.amount for ln in data.lines), Decimal(0)) < 0 else "Invoices"


def document_type(side: IntercompanySide, collection: Collection) -> str:
    return _TYPES[(side, collection)]


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else _MAX_PLACES + 1


def charge_problem(data: IntercompanyChargeUpsert) -> tuple[str, str] | None:
    """Why Xero could not hold this charge so that it reads back exactly, as (JSON pointer, detail); None when it
    can."""
    for i, line in enumerate(data.lines):
        for field, value in (("line_key", line.line_key), ("employee_external_id", line.employee_external_id),
                             ("project_external_id", line.project_external_id)):
            if not _TEXT.match(value):
                return f"/lines/{i}/{field}", "may hold no '|' and no line break (Xero keeps it in the description)"
        if _places(Decimal(line.hours)) > _MAX_PLACES or _places(line.transfer_rate.amount) > _MAX_PLACES:
            return f"/lines/{i}", "Xero holds hours and rates to four decimal places"
    return None


def describe(line: IntercompanyLine) -> str:
    """``<line key> | <consultant> | <project> | <date>``: all four are read back from here."""
    return SEPARATOR.join((line.line_key, line.employee_external_id, line.project_external_id, line.date.isoformat()))


def document_from_charge(external_id: str, data: IntercompanyChargeUpsert, *, contact_id: str, date: dt.date,
                         due: dt.date, tracked: frozenset[str]) -> dict[str, Any]:
    """The document of one side, for ``POST /Invoices`` (``ACCREC``) or ``PUT /Invoices`` (``ACCPAY``), or their
    credit notes. ``tracked``: the projects this organisation has a ``Project`` tracking option for."""
    collection = collection_of(data)
    sign = -1 if collection == "CreditNotes" else 1
    items = []
    for line in data.lines:
        item: dict[str, Any] = {
            "Description": describe(line), "Quantity": sign * Decimal(line.hours),
            "UnitAmount": line.transfer_rate.amount, "LineAmount": sign * line.amount.amount,
            "AccountCode": INTERCOMPANY_ACCOUNTS[data.side], "TaxType": "NONE"}
        if data.side == "payable" and line.project_external_id in tracked:
            item["Tracking"] = [{"Name": PROJECT_TRACKING, "Option": line.project_external_id}]
        items.append(item)
    document: dict[str, Any] = {
        "Type": document_type(data.side, collection), "Contact": {"ContactID": contact_id},
        _NUMBER_FIELD[collection]: charge_number(external_id), "Reference": reference(data),
        "Date": date.isoformat(), "Status": "AUTHORISED", "CurrencyCode": data.currency, "LineAmountTypes": "NoTax",
        "LineItems": items}
    if collection == "Invoices":
        document["DueDate"] = due.isoformat()
    return document


def _line(item: dict[str, Any], currency: str, sign: int, number: str) -> IntercompanyLine:
    parts = str(item.get("Description") or "").split(SEPARATOR)
    if len(parts) != 4 or not all(parts):
        raise MappingError(f"Xero document {number} has a line not described '<line key> | <consultant> | "
                           "<project> | <date>'")
    line_key, employee, project, day = parts
    try:
        date = dt.date.fromisoformat(day)
    except ValueError as exc:
        raise MappingError(f"Xero document {number} has a line dated {day!r}") from exc
    hours = sign * Decimal(str(item.get("Quantity", 0)))
    return IntercompanyLine(line_key=line_key, project_external_id=project, employee_external_id=employee, date=date,
                            hours=format(hours.normalize(), "f") if hours else "0",
                            transfer_rate=Money(amount=Decimal(str(item.get("UnitAmount", 0))), currency=currency),
                            amount=Money(amount=(sign * Decimal(str(item.get("LineAmount", 0)))).quantize(CENT),
                                         currency=currency))


def charge_from_record(record: dict[str, Any], *, tenant: str) -> IntercompanyCharge:
    """An invoice, bill or credit note psconnect recorded as one side of a charge."""
    found = _SIDES.get(str(record.get("Type")))
    if found is None:
        raise MappingError(f"Xero document type {record.get('Type')!r} is no intercompany charge")
    side, collection = found
    number = str(record.get(_NUMBER_FIELD[collection]) or "")
    external_id = external_id_of(number)
    matched = _REFERENCE.match(str(record.get("Reference") or ""))
    if external_id is None or matched is None:
        raise MappingError(f"Xero document {number!r} is not numbered 'IC:<external id>' with an "
                           "'IC <counterparty> <period>' reference")
    currency = str(record.get("CurrencyCode") or "")
    if not currency:
        raise MappingError(f"Xero document {number} has no currency")
    sign = -1 if collection == "CreditNotes" else 1
    lines = [_line(dict(item), currency, sign, number) for item in record.get("LineItems") or []]
    if not lines:
        raise MappingError(f"Xero document {number} has no line items")
    return IntercompanyCharge(id=str(record[_ID_FIELD[collection]]), external_id=external_id, legal_entity_id=tenant,
                              counterparty=matched.group(1), side=side, period=matched.group(2), currency=currency,
                              lines=lines, total=Money(amount=sum((ln.amount.amount for ln in lines),
                                                                  Decimal(0)).quantize(CENT), currency=currency))
