"""NetSuite intercompany documents and counterparty entities <-> canonical intercompany charges. Pure.

Wire choices:

- A side is one transaction in its subsidiary's books, upserted by external id with ``replace=item``: the
  receivable an ``invoice`` (``PUT /invoice/eid:{id}``) to the customer that represents the counterparty, the
  payable a ``vendorBill`` (``PUT /vendorBill/eid:{id}``) from the vendor that represents it. Both are booked:
  ``approvalStatus`` 2 (Approved), dated the period's last day in its ``postingPeriod``, in the charge's
  ``currency`` (NetSuite takes the rate from its currency table when the currency is not the subsidiary's).
- Lines are ``item`` lines on the account's intercompany service item (``IC_SERVICE_ITEM``, a "for sale and
  purchase" service item with an intercompany income and an intercompany expense account), not ``expense``
  lines: an invoice has no expense sublist, so only item lines let both sides share one shape, and an item line
  carries the hours (``quantity``) and the transfer rate (``rate``) natively. On the payable side a line names
  the job (``customer``) when this account knows the project, so the cost lands on it.
- What NetSuite has no field for travels in custom transaction fields (body ``custbody_psc_ic_side``,
  ``custbody_psc_ic_counterparty``, ``custbody_psc_ic_period``; column ``custcol_psc_line_key``,
  ``custcol_psc_ic_project``, ``custcol_psc_ic_employee``, ``custcol_psc_ic_date``) and, for people reading the
  document, in the line description. ``custbody_psc_period`` is deliberately not set: the client-invoice lists
  filter on it and must not see intercompany documents.
- The counterparty is a ``customer`` ``IC-CUST-<code>`` or a ``vendor`` ``IC-VEND-<code>`` whose
  ``representingSubsidiary`` is the counterparty subsidiary when this account holds it (an entity in another
  ERP has none); ``custentity_psc_ic_code`` keeps the code.

Docs: https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/article_159067444188.html (representing
entities), https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/section_156335203191.html (upsert)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

import msgspec

from contracts.billing import IntercompanyCharge, IntercompanyChargeUpsert, IntercompanyLine, IntercompanySide
from contracts.common import Money
from system_apis.netsuite._queries import IC_INVOICE_TYPE
from system_apis.netsuite.mapping import MappingError, _currency_ref, _decimal, _decimal_text

__all__ = [
    "APPROVED",
    "IC_SERVICE_ITEM",
    "RECORD_TYPES",
    "charge_from_rows",
    "charge_to_record",
    "counterparty_external_id",
    "counterparty_to_record",
    "is_intercompany",
]

Record = dict[str, Any]

IC_SERVICE_ITEM: Final = "505"
"""The account's intercompany service item (beside the billing items 501-504 in ``_billing_mapping``)."""
APPROVED: Final = {"id": "2", "refName": "Approved"}
RECORD_TYPES: Final[Mapping[IntercompanySide, str]] = {"receivable": "invoice", "payable": "vendorBill"}
"""The transaction that books each side."""
_ENTITY_TYPES: Final[Mapping[IntercompanySide, tuple[str, str]]] = {"receivable": ("customer", "IC-CUST-"),
                                                                    "payable": ("vendor", "IC-VEND-")}


def counterparty_external_id(side: IntercompanySide, code: str) -> tuple[str, str]:
    """``(record type, external id)`` of the entity that represents counterparty ``code`` on ``side``."""
    record_type, prefix = _ENTITY_TYPES[side]
    return record_type, prefix + code


def counterparty_to_record(external_id: str, code: str, *, name: str, subsidiary_id: str, currency: str,
                           represented_id: str | None) -> Record:
    """The body of ``PUT /customer|vendor/eid:{external_id}``; this subsidiary is its primary one."""
    record: Record = {"externalId": external_id, "entityId": external_id, "companyName": name, "isPerson": False,
                      "subsidiary": {"id": subsidiary_id}, "currency": _currency_ref(currency),
                      "custentity_psc_ic_code": code}
    if represented_id is not None:
        record["representingSubsidiary"] = {"id": represented_id}
    return record


def is_intercompany(record: Record) -> bool:
    """Whether a transaction read from NetSuite is one side of an intercompany charge (not a client invoice)."""
    return bool(record.get("custbody_psc_ic_side"))


def _description(line: IntercompanyLine) -> str:
    return (f"{line.employee_external_id} on {line.project_external_id}, {line.date.isoformat()}: "
            f"{line.hours} h at {_decimal_text(line.transfer_rate.amount)}")[:4000]


def charge_to_record(external_id: str, data: IntercompanyChargeUpsert, *, entity_id: str, period_id: str,
                     tran_date: dt.date, job_ids: Mapping[str, str]) -> Record:
    """The body of ``PUT /invoice|vendorBill/eid:{external_id}`` (sent with ``replace=item``).

    ``job_ids``: project external id -> job internal id, for the projects this subsidiary holds (payable side).
    """
    items = []
    for line in data.lines:
        item: Record = {"item": {"id": IC_SERVICE_ITEM}, "description": _description(line),
                        "quantity": Decimal(line.hours), "rate": line.transfer_rate.amount,
                        "amount": line.amount.amount, "custcol_psc_line_key": line.line_key,
                        "custcol_psc_ic_project": line.project_external_id,
                        "custcol_psc_ic_employee": line.employee_external_id,
                        "custcol_psc_ic_date": line.date.isoformat()}
        if line.project_external_id in job_ids:
            item["customer"] = {"id": job_ids[line.project_external_id]}
        items.append(item)
    return {"externalId": external_id, "tranId": external_id, "entity": {"id": entity_id},
            "subsidiary": {"id": data.legal_entity_id}, "postingPeriod": {"id": period_id},
            "tranDate": tran_date.isoformat(), "currency": _currency_ref(data.currency),
            "approvalStatus": APPROVED, "memo": data.memo or "", "custbody_psc_ic_side": data.side,
            "custbody_psc_ic_counterparty": data.counterparty, "custbody_psc_ic_period": data.period,
            "item": {"items": items}}


class _Header(msgspec.Struct):
    id: str
    externalid: str
    type: str
    side: IntercompanySide
    counterparty: str
    period: str
    currency: str
    subsidiary: str


def _line(row: Record, currency: str, sign: Decimal) -> IntercompanyLine:
    hours = _decimal(row["quantity"], "quantity") * sign
    return IntercompanyLine(
        line_key=str(row["linekey"]), project_external_id=str(row["project"]),
        employee_external_id=str(row["employee"]), date=dt.date.fromisoformat(str(row["linedate"])[:10]),
        hours=_decimal_text(hours),
        transfer_rate=Money(amount=_decimal(row["rate"], "rate"), currency=currency),
        amount=Money(amount=_decimal(row["amount"], "amount") * sign, currency=currency))


def charge_from_rows(header: Record, lines: Sequence[Record]) -> IntercompanyCharge:
    """One ``intercompany_charges_query`` row and its ``intercompany_lines_query`` rows (every value a string).

    An invoice's lines come back credit-signed (negative quantity and amount); the canonical charge carries
    them as sent, so they are turned back.
    """
    try:
        head = msgspec.convert(header, type=_Header, strict=False)
        sign = Decimal(-1) if head.type == IC_INVOICE_TYPE else Decimal(1)
        items = [_line(row, head.currency, sign) for row in lines]
        total = sum((line.amount.amount for line in items), Decimal(0))
        return IntercompanyCharge(id=head.id, external_id=head.externalid, legal_entity_id=head.subsidiary,
                                  counterparty=head.counterparty, side=head.side, period=head.period,
                                  currency=head.currency, lines=items,
                                  total=Money(amount=total, currency=head.currency))
    except (KeyError, ValueError, TypeError, msgspec.ValidationError) as exc:
        raise MappingError(f"intercompany document {header.get('id')} unreadable: {exc!r}") from exc
