"""Intercompany charges <-> Business Central sales and purchase invoices and psconnect's records. Pure: no I/O.

A receivable side is a ``salesInvoices`` document to the counterparty's intercompany customer, a payable side a
``purchaseInvoices`` document from its intercompany vendor; both are posted. Where each canonical field goes:

- the counterparty: a customer or vendor whose ``number`` is ``IC-<entity code>`` (Code[20], the table's unique
  key, so it is created once however many calls race to create it);
- ``externalDocumentNumber`` (sales) / ``vendorInvoiceNumber`` (purchase), Code[35]: the external id (a digest
  when longer), by which a document whose answer was lost is found again; Business Central refuses to post a
  vendor's invoice number twice;
- ``currencyCode`` on the header: blank for the company's own currency, else the charge's (a foreign-currency
  document; Business Central converts it at its own rate when posting);
- a G/L account line per time line (``lineType: Account``) on the intercompany revenue or cost account:
  ``quantity`` = hours and unit price = transfer rate when they multiply to the line's amount to the cent, else
  one unit at the exact amount; ``description`` (100) carries the employee, project, date and line key, which
  neither document line has a field for.

All of it, uncut, is kept in the ``psconnectRecords`` record ``intercompany``/<external id> (``ChargeMeta``),
written in the same transaction as the document's lines; ``parentKey`` = the period, ``groupKey`` = the
counterparty code, so the list filters on Business Central's side.

Docs: https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/api-reference/v2.0/resources/dynamics_purchaseinvoice
https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/api-reference/v2.0/resources/dynamics_purchaseinvoiceline
https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/api-reference/v2.0/resources/dynamics_vendor
https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/api-reference/v2.0/api/dynamics_purchaseinvoice_post
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Final, Literal

import msgspec

from contracts.billing import IntercompanyCharge, IntercompanyChargeUpsert, IntercompanyLine
from contracts.common import Money
from system_apis.businesscentral.mapping import MappingError

__all__ = ["INTERCOMPANY", "ChargeMeta", "Document", "charge_from_records", "charge_header", "charge_line",
           "charge_meta", "counterparty_number", "document_of", "document_reference", "meta_of"]

Record = dict[str, Any]
INTERCOMPANY: Final = "intercompany"
"""``psconnectRecords`` type of one charge side (key: the external id); ``targetId`` is the document's id."""
_CENT: Final = Decimal("0.01")


class Document(msgspec.Struct, frozen=True):
    """The entity sets a side is booked in and the names of its party and reference fields."""

    entity_set: str
    lines_set: str
    party_set: str
    party_field: str
    reference_field: str
    price_field: str


_DOCUMENTS: Final = {
    "receivable": Document("salesInvoices", "salesInvoiceLines", "customers", "customerId", "externalDocumentNumber",
                           "unitPrice"),
    "payable": Document("purchaseInvoices", "purchaseInvoiceLines", "vendors", "vendorId", "vendorInvoiceNumber",
                        "directUnitCost")}


def document_of(side: str) -> Document:
    try:
        return _DOCUMENTS[side]
    except KeyError as exc:
        raise MappingError(f"intercompany side {side!r} unknown") from exc


class ChargeLineMeta(msgspec.Struct, kw_only=True):
    line_key: str
    project: str
    employee: str
    date: dt.date
    hours: str
    rate: str
    amount: str


class ChargeMeta(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An ``intercompany`` record's data: what the document cannot hold."""

    side: Literal["receivable", "payable"]
    counterparty: str
    period: str
    currency: str
    lines: list[ChargeLineMeta]
    memo: str | None = None
    project_ids: dict[str, str] = {}
    """Business Central project ids of the lines' projects this company knows (the payable side's own)."""


def counterparty_number(code: str) -> str:
    """The ``number`` of the customer or vendor that stands for entity ``code`` in this company."""
    return f"IC-{code}"


def document_reference(external_id: str) -> str:
    """The document's Code[35] reference: the external id, or ``PSC`` + a digest of a longer one."""
    if len(external_id) <= 35:
        return external_id
    return "PSC" + hashlib.sha256(external_id.encode()).hexdigest()[:32].upper()


def charge_header(data: IntercompanyChargeUpsert, *, party_id: str, day: dt.date, external_id: str,
                  company_currency: str) -> Record:
    """A posted-to-be document dated ``day`` (the period's last day), in the charge's currency."""
    kind = document_of(data.side)
    return {kind.party_field: party_id, "invoiceDate": day.isoformat(), "postingDate": day.isoformat(),
            "dueDate": day.isoformat(), kind.reference_field: document_reference(external_id),
            "currencyCode": "" if data.currency == company_currency else data.currency}


def charge_line(line: IntercompanyLine, *, side: str, account_number: str, sequence: int) -> Record:
    """A G/L account line of one time line; see the module docstring for quantity and price."""
    quantity, price = Decimal(line.hours), line.transfer_rate.amount
    if (quantity * price).quantize(_CENT, rounding=ROUND_HALF_UP) != line.amount.amount:
        quantity, price = Decimal(1), line.amount.amount
    description = f"{line.employee_external_id} {line.project_external_id} {line.date} {line.line_key}"
    return {"sequence": sequence, "lineType": "Account", "lineObjectNumber": account_number,
            "description": description[:100], "quantity": quantity, document_of(side).price_field: price}


def charge_meta(data: IntercompanyChargeUpsert, project_ids: dict[str, str]) -> ChargeMeta:
    return ChargeMeta(side=data.side, counterparty=data.counterparty, period=data.period, currency=data.currency,
                      memo=data.memo, project_ids=project_ids,
                      lines=[ChargeLineMeta(line_key=ln.line_key, project=ln.project_external_id,
                                            employee=ln.employee_external_id, date=ln.date, hours=ln.hours,
                                            rate=str(ln.transfer_rate.amount), amount=str(ln.amount.amount))
                             for ln in data.lines])


def meta_of(record: Record) -> ChargeMeta:
    try:
        return msgspec.json.decode(str(record.get("data") or ""), type=ChargeMeta)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MappingError(f"intercompany {record.get('recordKey')}: {exc}") from exc


def _decimal(value: Any, field: str) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise MappingError(f"{field} is not a number: {value!r}") from exc


def charge_from_records(record: Record, document: Record, lines: list[Record], *, legal_entity_id: str,
                        company_currency: str) -> IntercompanyCharge:
    """A charge side as Business Central holds it: currency, line amounts and total from the posted document,
    the keys and hours from psconnect's record (its lines in the document's line order)."""
    meta = meta_of(record)
    currency = str(document.get("currencyCode") or company_currency)
    ordered = sorted(lines, key=lambda r: int(r.get("sequence") or 0))
    if len(ordered) != len(meta.lines):
        raise MappingError(f"intercompany {record.get('recordKey')}: {len(ordered)} document lines, "
                           f"{len(meta.lines)} recorded")
    out = []
    for line, info in zip(ordered, meta.lines, strict=True):
        amount = _decimal(line.get("amountExcludingTax", 0), "amountExcludingTax").quantize(_CENT)
        out.append(IntercompanyLine(line_key=info.line_key, project_external_id=info.project,
                                    employee_external_id=info.employee, date=info.date, hours=info.hours,
                                    transfer_rate=Money(amount=_decimal(info.rate, "rate"), currency=currency),
                                    amount=Money(amount=amount, currency=currency)))
    total = _decimal(document.get("totalAmountExcludingTax", 0), "totalAmountExcludingTax").quantize(_CENT)
    return IntercompanyCharge(id=str(document["id"]), external_id=str(record["recordKey"]),
                              legal_entity_id=legal_entity_id, counterparty=meta.counterparty, side=meta.side,
                              period=meta.period, currency=currency, lines=out,
                              total=Money(amount=total, currency=currency))
