"""Expense posting lines <-> Xero bills and supplier credit notes (pure; no I/O).

Xero's Expense Claims API is deprecated (and Receipts with it): a reimbursable employee expense is a **bill**, an
``ACCPAY`` Invoice with the employee's contact as its supplier
(https://developer.xero.com/documentation/api/accounting/invoices;
https://developer.xero.com/documentation/api/accounting/expenseclaims says to use bills instead). One expense line
is one bill with one line item, so each line is posted, found again and read back on its own:

- ``InvoiceNumber`` = `EXPENSE_PREFIX` + the line key. Xero keeps no external id on a bill; on ``ACCPAY`` the number
  is the supplier's own, non-unique reference (shown as "Reference" in Xero), so it can carry ours, and
  ``GET /Invoices?InvoiceNumbers=`` finds it again;
- ``Contact`` = the employee's contact (``ContactNumber`` ``EMP:<external id>``, see `mapping.employee_number`);
  Xero marks it a supplier once it has a bill;
- ``Date`` = the line's date (the period it costs into), ``DueDate`` the same day (reimbursed with the next pay run),
  ``Status`` ``AUTHORISED`` (an approved bill is in the ledger; a draft is no cost yet), ``CurrencyCode`` = the
  amount's (the project's; the process converts first), ``LineAmountTypes`` ``NoTax`` (the cost as approved);
- the line item: ``AccountCode`` = the category's expense account (`EXPENSE_ACCOUNTS`, Xero's default chart; any
  other category `GENERAL_EXPENSES`), ``Quantity`` 1, ``UnitAmount`` = ``LineAmount`` = the amount, ``Tracking``
  ``Project`` = the project's external id (as on invoices), ``Description`` = `describe` (the category as captured,
  billable or not, the memo, what was spent in its own currency: a bill line has no field of its own for them);
- ``Url`` = the receipt's URL (Xero's "link to a source document", shown as "Go to ..." on the bill).

A negative amount reverses an earlier line: an ``ACCPAYCREDIT`` CreditNote of the same shape
(https://developer.xero.com/documentation/api/accounting/creditnotes), its amounts positive as Xero holds them and
negative again when read back. A credit note has no ``Url``: its receipt URL goes into the description.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final, Literal

from contracts.billing import ExpensePostingLine, PostedExpense
from contracts.common import Money
from system_apis.xero.mapping import PROJECT_TRACKING, MappingError, xero_date

__all__ = ["BILL", "CREDIT", "EXPENSE_ACCOUNTS", "EXPENSE_PREFIX", "GENERAL_EXPENSES", "POSTED_STATUSES",
           "Collection", "collection_of", "describe", "document_from_line", "expense_account", "expense_number",
           "line_key_of", "line_problem", "posted_expense_from_record"]

Collection = Literal["Invoices", "CreditNotes"]
BILL: Final = "ACCPAY"
CREDIT: Final = "ACCPAYCREDIT"
EXPENSE_PREFIX: Final = "EXP:"
EXPENSE_ACCOUNTS: Final = {"Travel": "493", "Lodging": "494", "Meals": "420", "Mileage": "449", "Software": "485"}
"""Xero's default chart of accounts: 493 Travel - National, 494 Travel - International (accommodation away),
420 Entertainment, 449 Motor Vehicle Expenses, 485 Subscriptions."""
GENERAL_EXPENSES: Final = "429"
POSTED_STATUSES: Final = frozenset({"AUTHORISED", "PAID"})
"""A bill in the ledger (reimbursed or not); a draft, voided or deleted one costs nothing."""
SEPARATOR: Final = " | "
_BILLABLE: Final = {"billable": True, "not billable": False}
_SAFE_KEY: Final = re.compile(r"^[A-Za-z0-9_.:@/+=-]{1,200}$")
"""What Xero's ``InvoiceNumbers`` list (comma-separated) and ``where`` strings (double-quoted) carry unescaped."""


def expense_number(line_key: str) -> str:
    return f"{EXPENSE_PREFIX}{line_key}"


def line_key_of(number: object) -> str | None:
    """The line key of a bill's or credit note's number; None for a document psconnect did not post."""
    text = str(number or "")
    return text.removeprefix(EXPENSE_PREFIX) if text.startswith(EXPENSE_PREFIX) and len(text) > 4 else None


def expense_account(category: str) -> str:
    return EXPENSE_ACCOUNTS.get(category, GENERAL_EXPENSES)


def collection_of(line: ExpensePostingLine) -> Collection:
    return "CreditNotes" if line.amount.amount < 0 else "Invoices"


def line_problem(line: ExpensePostingLine) -> str | None:
    """Why Xero could not hold this line so that it reads back exactly (None when it can)."""
    if not _SAFE_KEY.match(line.line_key):
        return (f"the line key {line.line_key!r} holds characters a Xero bill number cannot be searched by "
                "(letters, digits and _ . : @ / + = - only)")
    if SEPARATOR.strip() in line.category or "\n" in line.category:
        return f"the category {line.category!r} holds '|' or a line break"
    return None


def describe(line: ExpensePostingLine, *, receipt: bool) -> str:
    """``<category> | billable|not billable | <memo> | spent <original> | receipt <url>``: the category and the
    billable flag come first and are read back from here; the rest is for the reader in Xero."""
    parts = [line.category, "billable" if line.billable else "not billable", line.memo or ""]
    if line.original_amount is not None:
        parts.append(f"spent {line.original_amount.amount} {line.original_amount.currency}")
    if receipt and line.receipt_url:
        parts.append(f"receipt {line.receipt_url}")
    return SEPARATOR.join(parts).rstrip()


def document_from_line(line: ExpensePostingLine, contact_id: str) -> dict[str, Any]:
    """The bill (or, for a negative amount, the supplier credit note) of one line, for ``PUT /Invoices`` or
    ``PUT /CreditNotes``."""
    credit = collection_of(line) == "CreditNotes"
    amount = abs(line.amount.amount)
    item = {"Description": describe(line, receipt=credit), "Quantity": Decimal(1), "UnitAmount": amount,
            "LineAmount": amount, "AccountCode": expense_account(line.category), "TaxType": "NONE",
            "Tracking": [{"Name": PROJECT_TRACKING, "Option": line.project_external_id}]}
    document: dict[str, Any] = {
        "Type": CREDIT if credit else BILL, "Contact": {"ContactID": contact_id},
        "Date": line.date.isoformat(), "DueDate": line.date.isoformat(), "Status": "AUTHORISED",
        "CurrencyCode": line.amount.currency, "LineAmountTypes": "NoTax", "LineItems": [item]}
    if credit:
        document["CreditNoteNumber"] = expense_number(line.line_key)
    else:
        document["InvoiceNumber"] = expense_number(line.line_key)
        if line.receipt_url:
            document["Url"] = line.receipt_url
    return document


def _category(description: str, number: str) -> tuple[str, bool]:
    parts = description.split(SEPARATOR)
    if len(parts) < 2 or not parts[0] or parts[1] not in _BILLABLE:
        raise MappingError(f"Xero document {number} has no '<category> | billable' description")
    return parts[0], _BILLABLE[parts[1]]


def posted_expense_from_record(record: Mapping[str, Any], employees: Mapping[str, str]) -> PostedExpense:
    """A bill or supplier credit note psconnect posted, as the expense line it holds. ``employees``: external id
    of each employee contact by ``ContactID``."""
    credit = record.get("Type") == CREDIT
    number = str(record.get("CreditNoteNumber" if credit else "InvoiceNumber") or "")
    line_key = line_key_of(number)
    items = list(record.get("LineItems") or [])
    if line_key is None or len(items) != 1:
        raise MappingError(f"Xero document {number!r} is not one expense line ({len(items)} line items)")
    item = items[0]
    project = next((str(t.get("Option")) for t in item.get("Tracking") or [] if t.get("Name") == PROJECT_TRACKING),
                   None)
    if not project:
        raise MappingError(f"Xero document {number} is tracked to no project")
    contact_id = str((record.get("Contact") or {}).get("ContactID") or "")
    if contact_id not in employees:
        raise MappingError(f"Xero document {number} is not billed by an employee contact")
    category, billable = _category(str(item.get("Description") or ""), number)
    amount = Decimal(str(item.get("LineAmount") or 0))
    currency = str(record.get("CurrencyCode") or "")
    if not currency:
        raise MappingError(f"Xero document {number} has no currency")
    day: dt.date = xero_date(record.get("Date"))
    return PostedExpense(id=str(record["CreditNoteID" if credit else "InvoiceID"]), line_key=line_key,
                         project_external_id=project, employee_external_id=employees[contact_id], date=day,
                         category=category, amount=Money(amount=-amount if credit else amount, currency=currency),
                         billable=billable)
