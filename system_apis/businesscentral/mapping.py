"""Business Central API v2.0 records (dicts as on the wire) <-> canonical ERP objects. Pure: no I/O.

What the standard API holds and what it does not. A company is a legal entity (its ``name`` is the
entity code, ``companyInformation`` gives country, currency and tax registration). Customers map
field for field. The standard ``projects`` entity has only ``number`` and ``displayName``, employees
have no cost rate, time registration entries and sales document lines have no free key field: what
psconnect needs beyond that (a project's customer, currency, status, budget, dates, tasks and billing
schedule; an employee's cost rate; the line keys and amounts of posted time; the kind and source keys
of invoice lines; every external id, which may be longer than BC's 20-character ``number``) is kept in
``psconnectRecords`` of the psconnect extension's API page (``/api/psconnect/erp/v1.0``), one record per
(``recordType``, ``recordKey``) with the BC record's ``targetId`` and a JSON ``data`` text.

Receivables come from Business Central's own fields: a sales invoice's ``status``, ``remainingAmount``
(what its customer ledger entry still has open), ``totalAmountIncludingTax``, ``invoiceDate``, ``dueDate``
and ``lastModifiedDateTime``; exchange rates from ``currencyExchangeRates``.

Dates are ``YYYY-MM-DD`` (Edm.Date in v2.0); amounts are JSON numbers decoded as ``Decimal``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Final

import msgspec

from contracts.billing import (
    CreditMemo,
    CreditMemoUpsert,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    InvoiceUpsert,
    Payment,
    PaymentUpsert,
    TimePostingLine,
)
from contracts.common import Money
from contracts.crm import Address
from contracts.erp import (
    AccountingPeriod,
    BillingSchedule,
    Customer,
    CustomerUpsert,
    ErpProject,
    ErpProjectUpsert,
    LegalEntity,
    ProjectTask,
    TaxRegime,
)
from contracts.workforce import Employee, EmployeeUpsert
from system_apis._internal.tax_regimes import requires_customer_tax_id
from system_apis._internal.tax_regimes import tax_regime as regime_of

__all__ = [
    "INVOICE_STATUSES",
    "POSTED_STATUSES",
    "MappingError",
    "ProjectDetails",
    "accounting_periods",
    "company_to_entity",
    "credit_memo_from_records",
    "customer_from_record",
    "customer_to_record",
    "document_line",
    "employee_from_records",
    "employee_to_record",
    "invoice_from_records",
    "invoice_header",
    "line_meta",
    "payment_description",
    "payment_document_number",
    "payment_from_record",
    "payment_line",
    "period_of",
    "project_details",
    "project_from_records",
    "rate_from_rows",
    "receivable",
    "tax_regime",
    "time_entry_body",
]

Record = dict[str, Any]

INVOICE_STATUSES: Final[dict[str, InvoiceStatus]] = {
    "Draft": "draft", "In Review": "draft", "Open": "posted", "Paid": "paid", "Canceled": "void",
    "Corrective": "void"}
"""Business Central salesInvoice ``status`` -> canonical status, before payments and credits refine it.

``In Review`` awaits approval: still a draft. ``Canceled`` was reversed whole by ``Microsoft.NAV.cancel`` and
``Corrective`` is an invoice Business Central issued to cancel a credit memo, closed against it: neither is owed,
both read ``void``. ``Open`` is posted and owed (``partially_paid`` once a payment is applied) and ``Paid`` is
closed (``credited`` when credit memos alone closed it). Business Central does not record sending, so ``sent``
is never reported.
Docs: https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/api-reference/v2.0/resources/dynamics_salesinvoice
"""
POSTED_STATUSES: Final = frozenset({"Open", "Paid"})
"""Statuses whose ``remainingAmount`` is a customer ledger entry's (payments and credits apply to it)."""

CENT = Decimal("0.01")
_RATE_PLACES: Final = Decimal("1e-10")


class MappingError(ValueError):
    """A Business Central record cannot be read as the canonical object."""


class ProjectDetails(msgspec.Struct, kw_only=True):
    """What psconnect keeps beside a BC project (the standard entity has number and name only)."""

    customer_id: str
    currency: str
    status: str
    budget: str
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    tasks: list[ProjectTask] = []
    billing: BillingSchedule | None = None


def _decimal(value: Any, field: str) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise MappingError(f"{field} is not a number: {value!r}") from exc


def _money(value: Any, currency: str, field: str) -> Money:
    return Money(amount=_decimal(value, field).quantize(Decimal("0.01")), currency=currency)


def _date(value: Any) -> dt.date | None:
    if value in (None, "", "0001-01-01"):
        return None
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError as exc:
        raise MappingError(f"bad date {value!r}") from exc


def _hours(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if "." not in text else text.rstrip("0").rstrip(".")


def tax_regime(country: str) -> TaxRegime:
    """The canonical tax regime of a company's country; an unlisted one is a sales-tax country."""
    return regime_of(country, otherwise="us_sales_tax")


def company_to_entity(company: Record, information: Record) -> LegalEntity:
    """A company and its ``companyInformation`` as a legal entity; the company ``name`` is the code."""
    try:
        country = str(information.get("country") or "").upper()
        currency = str(information.get("currencyCode") or "").upper()
        if len(country) != 2 or len(currency) != 3:
            raise MappingError(f"company {company.get('id')} has no country or currency in companyInformation")
        regime = tax_regime(country)
        return LegalEntity(id=str(company["id"]), code=str(company["name"]),
                           name=str(company.get("displayName") or company["name"]), country=country,
                           currency=currency, tax_regime=regime,
                           tax_registration=str(information.get("taxRegistrationNumber") or ""),
                           requires_customer_tax_id=requires_customer_tax_id(regime))
    except KeyError as exc:
        raise MappingError(f"company field {exc} missing") from exc


def customer_from_record(record: Record, *, external_id: str, legal_entity_id: str, currency: str) -> Customer:
    """``currency`` is the company's: BC leaves ``currencyCode`` blank for the local currency."""
    address = Address(street=record.get("addressLine1") or None, city=record.get("city") or None,
                      postal_code=record.get("postalCode") or None, country=record.get("country") or None)
    return Customer(id=str(record["id"]), external_id=external_id, name=str(record.get("displayName") or ""),
                    legal_entity_id=legal_entity_id, currency=str(record.get("currencyCode") or currency),
                    tax_id=record.get("taxRegistrationNumber") or None,
                    billing_address=address if any(msgspec.structs.astuple(address)) else None)


def customer_to_record(external_id: str, data: CustomerUpsert, *, company_currency: str) -> Record:
    address = data.billing_address or Address()
    body: Record = {"displayName": data.name[:100], "type": "Company",
                    "addressLine1": (address.street or "")[:100], "city": (address.city or "")[:30],
                    "postalCode": (address.postal_code or "")[:20], "country": (address.country or "")[:10],
                    "taxRegistrationNumber": (data.tax_id or "")[:20],
                    "currencyCode": "" if data.currency == company_currency else data.currency}
    if len(external_id) <= 20:
        body["number"] = external_id
    return body


def project_details(data: ErpProjectUpsert, status: str) -> ProjectDetails:
    return ProjectDetails(customer_id=data.customer_id, currency=data.currency, status=status,
                          budget=str(data.budget.amount), start_date=data.start_date, end_date=data.end_date,
                          tasks=list(data.tasks), billing=data.billing)


def project_from_records(project: Record, details: ProjectDetails, *, external_id: str,
                         legal_entity_id: str) -> ErpProject:
    status = details.status if details.status in ("pending", "active", "closed") else "active"
    return ErpProject(id=str(project["id"]), external_id=external_id,
                      name=str(project.get("displayName") or ""), customer_id=details.customer_id,
                      legal_entity_id=legal_entity_id, currency=details.currency,
                      status=status,  # type: ignore[arg-type]
                      budget=_money(details.budget, details.currency, "budget"), start_date=details.start_date,
                      end_date=details.end_date, tasks=details.tasks, billing=details.billing)


def employee_to_record(external_id: str, data: EmployeeUpsert) -> Record:
    given, _, surname = data.name.partition(" ")
    body: Record = {"givenName": given[:30], "surname": (surname or given)[:30], "email": data.email[:80],
                    "statisticsGroupCode": data.cost_center[:10], "status": "Active" if data.active else "Inactive"}
    if len(external_id) <= 20:
        body["number"] = external_id
    return body


def employee_from_records(record: Record, cost_rate: Money, *, external_id: str, legal_entity_id: str,
                          cost_center: str) -> Employee:
    name = str(record.get("displayName") or f"{record.get('givenName', '')} {record.get('surname', '')}".strip())
    return Employee(id=str(record["id"]), external_id=external_id, name=name, email=str(record.get("email") or ""),
                    legal_entity_id=legal_entity_id, cost_center=cost_center, cost_rate=cost_rate,
                    active=record.get("status") == "Active")


def accounting_periods(records: list[Record], legal_entity_id: str) -> list[AccountingPeriod]:
    """BC periods carry only their start: each ends the day before the next starts (the last: a month)."""
    ordered = sorted(records, key=lambda r: str(r["startingDate"]))
    out: list[AccountingPeriod] = []
    for i, record in enumerate(ordered):
        start = _date(record["startingDate"])
        if start is None:
            raise MappingError(f"accounting period {record.get('id')} has no startingDate")
        if i + 1 < len(ordered):
            following = _date(ordered[i + 1]["startingDate"])
            assert following is not None
            end = following - dt.timedelta(days=1)
        else:
            end = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
        closed = bool(record.get("closed"))
        out.append(AccountingPeriod(id=str(record["id"]), name=start.strftime("%b %Y"), start_date=start,
                                    end_date=end, is_closed=closed, ar_locked=closed or bool(record.get("dateLocked")),
                                    ap_locked=closed or bool(record.get("dateLocked")),
                                    legal_entity_id=legal_entity_id))
    return out


def period_of(day: dt.date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def time_entry_body(line: TimePostingLine, *, employee_id: str, job_id: str) -> Record:
    return {"employeeId": employee_id, "jobId": job_id, "date": line.date.isoformat(),
            "quantity": Decimal(line.hours)}


def document_line(line: InvoiceLine, *, account_number: str, sequence: int) -> Record:
    """A sales document line on the revenue G/L account (``lineType: Account``).

    BC computes a line's amount as quantity × unit price, rounded once. A time line sums entries each
    rounded on its own (Σ round(h × r), what the time system and the reconciliation value), which can be
    a few cents off round(Σh × r): such a line is written as one unit at its exact amount, and its hours
    and rate travel in the line's metadata (`line_meta`), so the invoice holds exactly what was billed.
    """
    quantity, price = Decimal(line.quantity), line.unit_price.amount
    if (quantity * price).quantize(CENT, rounding=ROUND_HALF_UP) != line.amount.amount:
        quantity, price = Decimal(1), line.amount.amount
    return {"sequence": sequence, "lineType": "Account", "lineObjectNumber": account_number,
            "description": line.description[:100], "quantity": quantity, "unitPrice": price}


def line_meta(lines: list[InvoiceLine]) -> list[Record]:
    """What a BC document line cannot hold: kind, source keys, the canonical amount, hours and rate."""
    return [{"kind": line.kind, "source_keys": list(line.source_keys), "amount": str(line.amount.amount),
             "quantity": line.quantity, "unit_price": str(line.unit_price.amount)} for line in lines]


def _lines(records: list[Record], meta: list[Record], currency: str) -> list[InvoiceLine]:
    ordered = sorted(records, key=lambda r: int(r.get("sequence") or 0))
    out: list[InvoiceLine] = []
    for i, record in enumerate(ordered):
        info = meta[i] if i < len(meta) else {"kind": "time", "source_keys": []}
        kind = str(info.get("kind"))
        if kind not in ("time", "milestone", "expense", "credit"):
            raise MappingError(f"invoice line kind {kind!r} unknown")
        out.append(InvoiceLine(kind=kind,  # type: ignore[arg-type]
                               description=str(record.get("description") or "-"),
                               quantity=_hours(_decimal(info.get("quantity", record.get("quantity", 0)), "quantity")),
                               unit_price=_money(info.get("unit_price", record.get("unitPrice", 0)), currency,
                                                 "unitPrice"),
                               amount=_money(record.get("amountExcludingTax", 0), currency, "amountExcludingTax"),
                               source_keys=list(info.get("source_keys", []))))
    return out


def receivable(invoice: Record, credited: Decimal = Decimal(0)) -> tuple[InvoiceStatus, Decimal, Decimal]:
    """(status, amount paid, amount due) of a salesInvoice, ``credited`` being its posted credit memos' total.

    Business Central's salesInvoice says what is still open (``remainingAmount``), not what closed the rest:
    of the settled part (``totalAmountIncludingTax`` - ``remainingAmount``) the credit memos applied to the
    invoice account for up to ``credited``, payments for what is left. A draft owes its total once posted and
    has nothing paid; a void invoice owes nothing.
    """
    status = str(invoice.get("status"))
    if status not in INVOICE_STATUSES:
        raise MappingError(f"salesInvoice status {status!r} unknown")
    canonical = INVOICE_STATUSES[status]
    total = _decimal(invoice.get("totalAmountIncludingTax") or 0, "totalAmountIncludingTax")
    if canonical == "draft":
        return canonical, Decimal(0), total
    if canonical == "void":
        return canonical, Decimal(0), Decimal(0)
    if invoice.get("remainingAmount") is None:
        raise MappingError(f"posted salesInvoice {invoice.get('number')} has no remainingAmount")
    remaining = _decimal(invoice["remainingAmount"], "remainingAmount")
    settled = max(total - remaining, Decimal(0))
    credit = min(max(credited, Decimal(0)), settled)
    paid = settled - credit
    if canonical == "paid":
        return ("credited" if paid == 0 and credit > 0 else "paid"), paid, Decimal(0)
    return ("partially_paid" if paid > 0 else "posted"), paid, remaining


def _instant(value: Any) -> dt.datetime | None:
    if value in (None, ""):
        return None
    try:
        moment = dt.datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise MappingError(f"bad instant {value!r}") from exc
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def invoice_from_records(invoice: Record, lines: list[Record], meta: Record, *, external_id: str,
                         legal_entity_id: str, company_currency: str, credited: Decimal = Decimal(0)) -> Invoice:
    """The invoice with Business Central's receivable view of it (see `receivable`)."""
    currency = str(invoice.get("currencyCode") or company_currency)
    status, paid, due = receivable(invoice, credited)
    return Invoice(id=str(invoice["id"]), external_id=external_id, customer_id=str(invoice.get("customerId")),
                   project_external_id=str(meta["project_external_id"]), legal_entity_id=legal_entity_id,
                   period=str(meta["period"]), currency=currency, lines=_lines(lines, meta["lines"], currency),
                   total=_money(invoice.get("totalAmountExcludingTax", 0), currency, "totalAmountExcludingTax"),
                   status=status, amount_paid=_money(paid, currency, "amountPaid"),
                   amount_due=_money(due, currency, "remainingAmount"), issue_date=_date(invoice.get("invoiceDate")),
                   due_date=_date(invoice.get("dueDate")), updated_at=_instant(invoice.get("lastModifiedDateTime")))


def credit_memo_from_records(memo: Record, lines: list[Record], meta: Record, *, external_id: str,
                             company_currency: str) -> CreditMemo:
    currency = str(memo.get("currencyCode") or company_currency)
    return CreditMemo(id=str(memo["id"]), external_id=external_id,
                      invoice_external_id=str(meta["invoice_external_id"]),
                      project_external_id=str(meta["project_external_id"]), period=str(meta["period"]),
                      currency=currency, lines=_lines(lines, meta["lines"], currency),
                      total=_money(memo.get("totalAmountExcludingTax", 0), currency, "totalAmountExcludingTax"))


def invoice_header(data: InvoiceUpsert | CreditMemoUpsert, *, customer_id: str, day: dt.date,
                   external_id: str, company_currency: str, date_field: str, due: dt.date | None = None) -> Record:
    """A sales document header dated ``day``; ``due`` (an invoice's) overrides the customer's payment terms."""
    header = {"customerId": customer_id, date_field: day.isoformat(), "postingDate": day.isoformat(),
              "externalDocumentNumber": external_id[:35],
              "currencyCode": "" if data.currency == company_currency else data.currency}
    if due is not None:
        header["dueDate"] = due.isoformat()
    return header


def payment_document_number(external_id: str) -> str:
    """The ``documentNumber`` (Code[20]) of a payment: the external id, or a digest of a longer one."""
    if len(external_id) <= 20:
        return external_id.upper()
    return "PSC" + hashlib.sha256(external_id.encode()).hexdigest()[:17].upper()


def payment_description(external_id: str) -> str:
    """A payment line's ``description``: psconnect's key, by which the line is found again."""
    return f"Payment {external_id}"[:100]


def payment_line(external_id: str, data: PaymentUpsert, *, customer_id: str, invoice_id: str) -> Record:
    """A ``customerPayments`` journal line applying ``data`` to a posted invoice.

    A payment received credits the customer, so the line's ``amount`` is negative, as in the Cash Receipt
    Journal. ``description`` names psconnect's key (the line is found by it if an answer was lost) and
    ``externalDocumentNumber`` carries the remittance's reference, as the customer's own document number.
    """
    return {"customerId": customer_id, "postingDate": data.date.isoformat(),
            "documentNumber": payment_document_number(external_id),
            "externalDocumentNumber": (data.reference or "")[:35], "amount": -data.amount.amount,
            "appliesToInvoiceId": invoice_id, "description": payment_description(external_id),
            "comment": (data.reference or "")[:250]}


def payment_from_record(record: Record, *, legal_entity_id: str) -> Payment:
    """A payment from its ``psconnectRecords`` record (the journal line is gone once posted)."""
    try:
        data = msgspec.json.decode(str(record.get("data") or "{}"))
        return Payment(id=str(record["id"]), external_id=str(record["recordKey"]),
                       invoice_external_id=str(data["invoice_external_id"]), legal_entity_id=legal_entity_id,
                       date=dt.date.fromisoformat(str(data["date"])),
                       amount=_money(data["amount"], str(data["currency"]), "amount"), reference=data.get("reference"))
    except (msgspec.DecodeError, KeyError, ValueError, TypeError) as exc:
        raise MappingError(f"payment record {record.get('recordKey')}: {exc}") from exc


def _rate_places(value: Decimal) -> Decimal:
    """Ten decimal places, trailing zeros dropped (never an exponent)."""
    return Decimal(format(value.quantize(_RATE_PLACES, rounding=ROUND_HALF_UP).normalize(), "f"))


def _leg(rows: list[Record], base: str, quote: str, local: str) -> tuple[Decimal, dt.date] | None:
    """The latest rate ``base`` -> ``quote`` among ``rows``: stored that way, or stored the other way and inverted."""
    best: tuple[dt.date, int, Decimal] | None = None
    for row in rows:
        code = str(row.get("currencyCode") or "")
        relational = str(row.get("relationalCurrencyCode") or local)
        amount = _decimal(row.get("exchangeRateAmount") or 0, "exchangeRateAmount")
        relational_amount = _decimal(row.get("relationalExchangeRateAmount") or 0, "relationalExchangeRateAmount")
        start = _date(row.get("startingDate"))
        if start is None or amount <= 0 or relational_amount <= 0:
            continue
        if (code, relational) == (base, quote):
            candidate = (start, 1, relational_amount / amount)  # stored direction wins a tie
        elif (code, relational) == (quote, base):
            candidate = (start, 0, amount / relational_amount)
        else:
            continue
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    return (best[2], best[0]) if best else None


def rate_from_rows(rows: list[Record], base: str, quote: str, local: str) -> tuple[Decimal, dt.date] | None:
    """Units of ``quote`` per ``base`` from ``currencyExchangeRates`` rows in effect (``startingDate`` <= the day).

    A row says ``exchangeRateAmount`` units of ``currencyCode`` are worth ``relationalExchangeRateAmount`` units
    of ``relationalCurrencyCode`` (blank: ``local``, the company's currency). The pair stored the other way is
    inverted (1 / rate); two foreign currencies are crossed through the local one, as Business Central converts
    between them, dated by the later of the two rates. Derived rates are rounded half-up to 10 decimal places.
    """
    direct = _leg(rows, base, quote, local)
    if direct is not None or local in (base, quote):
        return (_rate_places(direct[0]), direct[1]) if direct else None
    to_local, from_local = _leg(rows, base, local, local), _leg(rows, local, quote, local)
    if to_local is None or from_local is None:
        return None
    return _rate_places(to_local[0] * from_local[0]), max(to_local[1], from_local[1])
