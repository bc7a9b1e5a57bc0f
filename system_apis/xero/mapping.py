"""Xero records <-> psconnect's canonical ERP objects (pure; no I/O).

What each canonical object is in Xero:

- legal entity = the **organisation** of the connection's tenant (``GET /Organisation``); its ``id`` is the
  tenant id, its ``code`` is psconnect's (Xero has no field for it: the connection names it);
- customer = a **Contact** (``IsCustomer``) whose ``ContactNumber`` is the external id; an employee = a
  Contact whose ``ContactNumber`` is ``EMP:<external id>`` (Xero's Accounting API has no employee with a
  cost rate; the cost centre and cost rate are not held by Xero);
- project = a **Projects API project** named ``<external id> · <name>`` (Xero projects have no external id
  field); its planning tasks are non-chargeable tasks; the tasks named ``Time @ …`` carry the posting rates;
- accounting periods = the months of the organisation's financial years, closed up to its
  ``PeriodLockDate``;
- posted time = **summarised time entries** (see `_summary`);
- posted expense = an **ACCPAY bill** per line on the employee's contact, a reversal an **ACCPAYCREDIT credit
  note** (see `_expense_mapping`);
- invoice = an **ACCREC Invoice** (``InvoiceNumber`` = external id, ``Reference`` = ``<project> <period>``,
  revenue **Account** per line kind, **TrackingCategory** ``Project`` option = the project's external id);
  its ``Status`` (with ``SentToContact``, ``AmountPaid``, ``AmountCredited``) is the canonical status (see
  `invoice_status`), ``UpdatedDateUTC`` its ``updated_at``; posting is approving it (``AUTHORISED``: Xero has no
  approval apart from posting to the receivables ledger);
- credit memo = an **ACCRECCREDIT CreditNote** (``CreditNoteNumber`` = external id, ``Reference`` =
  ``<project> <period> <invoice external id>``). Quantities and amounts are written with the sign flipped
  (a canonical credit line is negative, a Xero credit note line positive) and flipped back on reading;
- payment = an **ACCRECPAYMENT Payment** on the invoice into a bank account, whose ``Reference`` is
  ``<external id> <remittance reference>`` (Xero has no external id on a payment: the reference carries it);
- intercompany charge = an approved **ACCREC invoice** (receivable) or **ACCPAY bill** (payable) to the counterparty
  entity's contact (``ContactNumber`` ``IC:<code>``), numbered ``IC:<external id>`` (see `_intercompany_mapping`);
- payment terms = the contact's (else the organisation's) ``PaymentTerms.Sales`` (see `due_date`).

Docs: https://developer.xero.com/documentation/api/accounting/organisation,
https://developer.xero.com/documentation/api/accounting/contacts,
https://developer.xero.com/documentation/api/accounting/invoices,
https://developer.xero.com/documentation/api/accounting/creditnotes,
https://developer.xero.com/documentation/api/accounting/payments,
https://developer.xero.com/documentation/api/accounting/types#invoices (status codes),
https://developer.xero.com/documentation/api/accounting/types#payment-terms,
https://developer.xero.com/documentation/api/projects/projects
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any, Final, Literal

from contracts.billing import (
    CreditMemo,
    CreditMemoUpsert,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    InvoiceUpsert,
    Payment,
    PaymentUpsert,
)
from contracts.common import Money
from contracts.crm import Address
from contracts.erp import AccountingPeriod, Customer, CustomerUpsert, ErpProject, LegalEntity, ProjectTask
from contracts.workforce import Employee, EmployeeUpsert
from foundation.periods import month_of
from system_apis._internal.tax_regimes import requires_customer_tax_id, tax_regime

__all__ = [
    "ACCOUNT_CODES",
    "NAME_SEPARATOR",
    "PROJECT_TRACKING",
    "RATE_TASK_PREFIX",
    "MappingError",
    "contact_from_customer",
    "contact_from_employee",
    "credit_memo_from_note",
    "credit_note_from_upsert",
    "customer_from_contact",
    "due_date",
    "employee_from_contact",
    "employee_number",
    "invoice_from_record",
    "invoice_from_upsert",
    "invoice_status",
    "legal_entity_from_organisation",
    "month_periods",
    "payment_external_id",
    "payment_from_record",
    "payment_from_upsert",
    "project_external_id",
    "project_from_record",
    "rate_task_name",
    "xero_date",
    "xero_instant",
]

NAME_SEPARATOR: Final = " · "
RATE_TASK_PREFIX: Final = "Time @ "
PROJECT_TRACKING: Final = "Project"
ACCOUNT_CODES: Final = {"time": "4000", "milestone": "4010", "expense": "4020"}
"""Revenue account per invoice line kind (seeded by the firm's chart of accounts; checked at start)."""
_KINDS: Final = {code: kind for kind, code in ACCOUNT_CODES.items()}
_MS_DATE: Final = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
DEFAULT_TERMS_DAYS: Final = 30
"""Days to pay when neither the contact nor the organisation has sales terms (psconnect's default terms; a Xero
project holds none)."""


class MappingError(ValueError):
    """A Xero record psconnect cannot read (made by hand, or missing a field we rely on)."""


def xero_date(value: object) -> dt.date:
    """Xero answers dates as ``/Date(1539993600000+0000)/`` (Accounting) or ISO 8601 (Projects, DateString)."""
    text = str(value or "")
    found = _MS_DATE.match(text)
    if found:
        return dt.datetime.fromtimestamp(int(found.group(1)) / 1000, dt.UTC).date()
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError as exc:
        raise MappingError(f"not a Xero date: {text!r}") from exc


def xero_instant(value: object) -> dt.datetime:
    """A Xero timestamp as a UTC instant: ``/Date(1573755038314+0000)/`` (milliseconds since the epoch, UTC; the
    offset only says how it was shown) or ISO 8601 (UTC when it names no offset)."""
    text = str(value or "")
    found = _MS_DATE.match(text)
    if found:
        return _EPOCH + dt.timedelta(milliseconds=int(found.group(1)))
    try:
        instant = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise MappingError(f"not a Xero timestamp: {text!r}") from exc
    return instant.replace(tzinfo=dt.UTC) if instant.tzinfo is None else instant.astimezone(dt.UTC)


def _money(value: object, currency: str) -> Money:
    return Money(amount=Decimal(str(value if value is not None else 0)), currency=currency)


def _text(record: dict[str, Any], field: str) -> str:
    value = record.get(field)
    if not value:
        raise MappingError(f"Xero record without {field}")
    return str(value)


# --- legal entity and periods -----------------------------------------------------------------------------------

def legal_entity_from_organisation(org: dict[str, Any], *, code: str, tenant: str) -> LegalEntity:
    country = _text(org, "CountryCode")
    # An unlisted country is one of Xero's other GST countries (NZ): a tax charged on the invoice, like UK VAT.
    regime = tax_regime(country, otherwise="uk_vat")
    return LegalEntity(id=tenant, code=code, name=str(org.get("LegalName") or _text(org, "Name")), country=country,
                       currency=_text(org, "BaseCurrency"), tax_regime=regime,
                       tax_registration=str(org.get("TaxNumber") or org.get("RegistrationNumber") or ""),
                       requires_customer_tax_id=requires_customer_tax_id(regime))


def month_periods(org: dict[str, Any], *, tenant: str, through: dt.date) -> list[AccountingPeriod]:
    """Months from the financial year holding the lock date through the year of `through`; locked = closed."""
    lock = xero_date(org["PeriodLockDate"]) if org.get("PeriodLockDate") else None
    first_year = (lock or through).year
    out: list[AccountingPeriod] = []
    for year in range(first_year, max(first_year, through.year) + 1):
        for month in range(1, 13):
            start, end = month_of(dt.date(year, month, 1))
            closed = lock is not None and end <= lock
            out.append(AccountingPeriod(id=f"{tenant}:{start:%Y-%m}", name=start.strftime("%b %Y"), start_date=start,
                                        end_date=end, is_closed=closed, ar_locked=closed, ap_locked=closed,
                                        legal_entity_id=tenant))
    return out


# --- contacts -----------------------------------------------------------------------------------------------------

def _address(address: Address | None) -> list[dict[str, Any]]:
    if address is None:
        return []
    return [{"AddressType": "POBOX", "AddressLine1": address.street or "", "City": address.city or "",
             "PostalCode": address.postal_code or "", "Country": address.country or ""}]


def _address_from(record: dict[str, Any]) -> Address | None:
    for found in record.get("Addresses") or []:
        if found.get("AddressType") == "POBOX":
            return Address(street=found.get("AddressLine1") or None, city=found.get("City") or None,
                           postal_code=found.get("PostalCode") or None, country=found.get("Country") or None)
    return None


def contact_from_customer(external_id: str, data: CustomerUpsert, contact_id: str | None) -> dict[str, Any]:
    contact: dict[str, Any] = {"ContactNumber": external_id, "Name": data.name, "IsCustomer": True,
                               "DefaultCurrency": data.currency, "Addresses": _address(data.billing_address),
                               "TaxNumber": data.tax_id or ""}
    if contact_id:
        contact["ContactID"] = contact_id
    return contact


def customer_from_contact(record: dict[str, Any], *, tenant: str, currency: str) -> Customer:
    return Customer(id=_text(record, "ContactID"), external_id=_text(record, "ContactNumber"),
                    name=_text(record, "Name"), legal_entity_id=tenant,
                    currency=str(record.get("DefaultCurrency") or currency), tax_id=record.get("TaxNumber") or None,
                    billing_address=_address_from(record))


def employee_number(external_id: str) -> str:
    return f"EMP:{external_id}"


def contact_from_employee(external_id: str, data: EmployeeUpsert, contact_id: str | None) -> dict[str, Any]:
    first, _, last = data.name.partition(" ")
    contact: dict[str, Any] = {"ContactNumber": employee_number(external_id), "Name": f"{data.name} ({external_id})",
                               "FirstName": first, "LastName": last, "EmailAddress": data.email,
                               "ContactStatus": "ACTIVE" if data.active else "ARCHIVED"}
    if contact_id:
        contact["ContactID"] = contact_id
    return contact


def employee_from_contact(record: dict[str, Any], data: EmployeeUpsert, external_id: str) -> Employee:
    """Name, email and status as Xero holds them; cost centre and cost rate as sent (Xero holds neither)."""
    name = " ".join(p for p in (record.get("FirstName"), record.get("LastName")) if p) or data.name
    return Employee(id=_text(record, "ContactID"), external_id=external_id, name=name,
                    email=str(record.get("EmailAddress") or data.email), legal_entity_id=data.legal_entity_id,
                    cost_center=data.cost_center, cost_rate=data.cost_rate,
                    active=record.get("ContactStatus", "ACTIVE") == "ACTIVE")


# --- projects -----------------------------------------------------------------------------------------------------

def project_external_id(record: dict[str, Any]) -> str | None:
    name = str(record.get("name") or "")
    external_id, separator, _ = name.partition(NAME_SEPARATOR)
    return external_id if separator and external_id else None


def rate_task_name(rate: Money | None) -> str:
    """The task that carries a posting rate (non-billable time has its own, without a rate)."""
    return f"{RATE_TASK_PREFIX}{rate.amount} {rate.currency}" if rate is not None else f"{RATE_TASK_PREFIX}non-billable"


def project_from_record(record: dict[str, Any], tasks: list[dict[str, Any]], *, tenant: str) -> ErpProject:
    external_id = project_external_id(record)
    if external_id is None:
        raise MappingError(f"Xero project {record.get('projectId')} is not named '<external id>{NAME_SEPARATOR}…'")
    currency = str(record.get("currencyCode") or "")
    estimate = record.get("estimate") or record.get("estimateAmount") or {}
    deadline = record.get("deadlineUtc")
    status: Literal["active", "closed"] = "closed" if record.get("status") == "CLOSED" else "active"
    planning = [ProjectTask(name=str(t["name"]), planned_hours=str(Decimal(int(t.get("estimateMinutes") or 0)) / 60))
                for t in tasks if not str(t.get("name", "")).startswith(RATE_TASK_PREFIX)]
    return ErpProject(id=_text(record, "projectId"), external_id=external_id,
                      name=str(record["name"]).partition(NAME_SEPARATOR)[2], customer_id=str(record.get("contactId")),
                      legal_entity_id=tenant, currency=currency, status=status,
                      budget=_money(estimate.get("value") if isinstance(estimate, dict) else estimate,
                                    currency or str((estimate or {}).get("currency", ""))),
                      end_date=xero_date(deadline) if deadline else None, tasks=planning)


# --- invoices and credit notes ------------------------------------------------------------------------------------

def _line(line: InvoiceLine, project_external_id: str, *, sign: int) -> dict[str, Any]:
    code = ACCOUNT_CODES.get(line.kind, ACCOUNT_CODES["time"])
    return {"Description": line.description, "Quantity": sign * Decimal(line.quantity),
            "UnitAmount": line.unit_price.amount, "LineAmount": sign * line.amount.amount, "AccountCode": code,
            "TaxType": "NONE", "Tracking": [{"Name": PROJECT_TRACKING, "Option": project_external_id}]}


def invoice_from_upsert(external_id: str, data: InvoiceUpsert, *, invoice_id: str | None, date: dt.date,
                        due_days: int = 30) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Type": "ACCREC", "Contact": {"ContactID": data.customer_id}, "InvoiceNumber": external_id,
        "Reference": f"{data.project_external_id} {data.period}", "Date": date.isoformat(),
        "DueDate": (date + dt.timedelta(days=due_days)).isoformat(), "CurrencyCode": data.currency,
        "Status": "DRAFT", "LineAmountTypes": "Exclusive",
        "LineItems": [_line(ln, data.project_external_id, sign=1) for ln in data.lines]}
    if invoice_id:
        body["InvoiceID"] = invoice_id
    return body


def _reference(record: dict[str, Any]) -> list[str]:
    parts = str(record.get("Reference") or "").split(" ")
    if len(parts) < 2 or not re.fullmatch(r"\d{4}-\d{2}", parts[1]):
        raise MappingError(f"Xero document {record.get('InvoiceNumber') or record.get('CreditNoteNumber')} has no "
                           "'<project> <period>' reference")
    return parts


def _lines(record: dict[str, Any], currency: str, *, credit: bool) -> list[InvoiceLine]:
    sign = -1 if credit else 1
    out = []
    for item in record.get("LineItems") or []:
        kind = "credit" if credit else _KINDS.get(str(item.get("AccountCode")), "time")
        out.append(InvoiceLine(kind=kind, description=str(item.get("Description") or kind),  # type: ignore[arg-type]
                               quantity=str(sign * Decimal(str(item.get("Quantity", 0)))),
                               unit_price=_money(item.get("UnitAmount"), currency),
                               amount=_money(sign * Decimal(str(item.get("LineAmount", 0))), currency)))
    return out


def _amount(record: dict[str, Any], field: str) -> Decimal:
    return Decimal(str(record.get(field) or 0))


def invoice_status(record: dict[str, Any]) -> InvoiceStatus:
    """Xero's invoice ``Status`` as the canonical lifecycle.

    ``DRAFT`` and ``SUBMITTED`` (awaiting approval) are not in the ledger yet: ``draft``. ``AUTHORISED`` is
    approved and posted at once (Xero has no separate approval, so ``approved`` is skipped): ``posted``, or
    ``sent`` once ``SentToContact``, or ``partially_paid`` once payments are applied. ``PAID`` means nothing is
    due: ``credited`` when credit notes, not payments, settled it, else ``paid``. ``VOIDED`` and ``DELETED``
    (a deleted draft) are ``void``.
    """
    status = str(record.get("Status") or "")
    if status in ("VOIDED", "DELETED"):
        return "void"
    if status == "PAID":
        return "credited" if _amount(record, "AmountPaid") == 0 and _amount(record, "AmountCredited") > 0 else "paid"
    if status == "AUTHORISED":
        if _amount(record, "AmountPaid") > 0:
            return "partially_paid"
        return "sent" if record.get("SentToContact") else "posted"
    if status in ("DRAFT", "SUBMITTED"):
        return "draft"
    raise MappingError(f"Xero invoice {record.get('InvoiceNumber')} has an unknown status {status!r}")


def invoice_from_record(record: dict[str, Any], *, tenant: str) -> Invoice:
    """The invoice with its state in Xero: a credit applied lowers ``AmountDue`` without counting as paid; a void
    invoice owes nothing."""
    project, period = _reference(record)[:2]
    currency = _text(record, "CurrencyCode")
    lines = _lines(record, currency, credit=False)
    total = _money(sum((ln.amount.amount for ln in lines), Decimal(0)), currency)
    status = invoice_status(record)
    if status == "void":
        due = _money(Decimal(0).quantize(total.amount), currency)  # nothing owed, to the total's places
    else:
        due = _money(record["AmountDue"], currency) if record.get("AmountDue") is not None else total
    return Invoice(id=_text(record, "InvoiceID"), external_id=_text(record, "InvoiceNumber"),
                   customer_id=str((record.get("Contact") or {}).get("ContactID")), project_external_id=project,
                   legal_entity_id=tenant, period=period, currency=currency, lines=lines, total=total, status=status,
                   amount_paid=_money(record.get("AmountPaid"), currency), amount_due=due,
                   issue_date=xero_date(record["Date"]) if record.get("Date") else None,
                   due_date=xero_date(record["DueDate"]) if record.get("DueDate") else None,
                   updated_at=xero_instant(record["UpdatedDateUTC"]) if record.get("UpdatedDateUTC") else None)


def due_date(issued: dt.date, terms: dict[str, Any] | None) -> dt.date:
    """When an invoice issued on ``issued`` is due under Xero's sales ``PaymentTerms`` (``{Day, Type}``), or
    `DEFAULT_TERMS_DAYS` after it without terms.

    Types: ``DAYSAFTERBILLDATE`` (days after the invoice date), ``DAYSAFTERBILLMONTH`` (days after the end of its
    month), ``OFCURRENTMONTH`` (that day of its month, never before the invoice date), ``OFFOLLOWINGMONTH`` (that
    day of the next month); a day past a month's end is its last day.
    """
    if not terms or terms.get("Day") is None:
        return issued + dt.timedelta(days=DEFAULT_TERMS_DAYS)
    day, kind = int(terms["Day"]), str(terms.get("Type"))
    month_end = month_of(issued)[1]
    if kind == "DAYSAFTERBILLDATE":
        return issued + dt.timedelta(days=day)
    if kind == "DAYSAFTERBILLMONTH":
        return month_end + dt.timedelta(days=day)
    if kind == "OFCURRENTMONTH":
        return max(issued, month_end.replace(day=min(max(day, 1), month_end.day)))
    if kind == "OFFOLLOWINGMONTH":
        following, last = month_of(month_end + dt.timedelta(days=1))
        return following.replace(day=min(max(day, 1), last.day))
    raise MappingError(f"unknown Xero payment terms type {kind!r}")


# --- payments -----------------------------------------------------------------------------------------------------

def payment_from_upsert(external_id: str, data: PaymentUpsert, *, invoice_id: str, account_code: str) -> dict[str, Any]:
    """``PUT /Payments`` of one payment; the reference starts with the external id, by which it is found again."""
    reference = f"{external_id} {data.reference}" if data.reference else external_id
    return {"Invoice": {"InvoiceID": invoice_id}, "Account": {"Code": account_code}, "Date": data.date.isoformat(),
            "Amount": data.amount.amount, "Reference": reference}


def payment_external_id(record: dict[str, Any]) -> str | None:
    """The external id a payment's reference starts with (None for a payment made in Xero without one)."""
    return str(record.get("Reference") or "").partition(" ")[0] or None


def payment_from_record(record: dict[str, Any], *, tenant: str) -> Payment:
    invoice = record.get("Invoice") or {}
    external_id = payment_external_id(record)
    if external_id is None:
        raise MappingError(f"Xero payment {record.get('PaymentID')} carries no external id in its reference")
    currency = _text(invoice, "CurrencyCode")
    return Payment(id=_text(record, "PaymentID"), external_id=external_id,
                   invoice_external_id=_text(invoice, "InvoiceNumber"), legal_entity_id=tenant,
                   date=xero_date(record.get("Date")), amount=_money(record.get("Amount"), currency),
                   reference=str(record.get("Reference") or "").partition(" ")[2] or None)


def credit_note_from_upsert(external_id: str, data: CreditMemoUpsert, *, credit_note_id: str | None,
                            date: dt.date) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Type": "ACCRECCREDIT", "Contact": {"ContactID": data.customer_id}, "CreditNoteNumber": external_id,
        "Reference": f"{data.project_external_id} {data.period} {data.invoice_external_id}", "Date": date.isoformat(),
        "CurrencyCode": data.currency, "Status": "DRAFT", "LineAmountTypes": "Exclusive",
        "LineItems": [_line(ln, data.project_external_id, sign=-1) for ln in data.lines]}
    if credit_note_id:
        body["CreditNoteID"] = credit_note_id
    return body


def credit_memo_from_note(record: dict[str, Any]) -> CreditMemo:
    parts = _reference(record)
    if len(parts) < 3:
        raise MappingError(f"Xero credit note {record.get('CreditNoteNumber')} names no invoice in its reference")
    currency = _text(record, "CurrencyCode")
    lines = _lines(record, currency, credit=True)
    return CreditMemo(id=_text(record, "CreditNoteID"), external_id=_text(record, "CreditNoteNumber"),
                      invoice_external_id=parts[2], project_external_id=parts[0], period=parts[1], currency=currency,
                      lines=lines, total=_money(sum((ln.amount.amount for ln in lines), Decimal(0)), currency))
