"""NetSuite REST records (dicts as on the wire) <-> canonical ERP objects. Pure: no I/O.

Wire conventions this module relies on:

- References are objects: ``subsidiary: {"id": "2", "refName": "..."}``; only ``id`` is needed.
- Currency references carry the ISO code as ``refName`` (the account's currency records are
  named by ISO code); when ``refName`` is absent the well-known internal ids below are used.
- Money fields are decimal strings (``custentity_psc_budget_amount``); numeric fields such as
  ``plannedWork`` arrive as JSON numbers and are decoded as ``Decimal`` by the client, never float.
- Date fields use ``%Y-%m-%d``: NetSuite parses input dates by the account's date-format
  preference (``%m/%d/%Y`` by default), so the account must be set to ``YYYY-MM-DD``; output
  instants (``createdDate``, ``lastModifiedDate``) are ``%Y-%m-%dT%H:%M:%SZ``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import msgspec

from contracts.common import Money
from contracts.crm import Address
from contracts.erp import (
    AccountingPeriod,
    BillingMilestone,
    BillingSchedule,
    Customer,
    CustomerUpsert,
    ErpProject,
    ErpProjectUpsert,
    LegalEntity,
    ProjectTask,
)

__all__ = [
    "CURRENCY_IDS",
    "DATE_FORMAT",
    "INSTANT_FORMAT",
    "JOB_STATUSES",
    "MappingError",
    "accounting_period_to_record",
    "customer_from_record",
    "customer_to_record",
    "format_instant",
    "legal_entity_to_subsidiary",
    "parse_instant",
    "period_from_record",
    "project_from_record",
    "project_to_record",
    "subsidiary_from_record",
]

Record = dict[str, Any]

DATE_FORMAT: Final = "%Y-%m-%d"
INSTANT_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"

CURRENCY_IDS: Final = {"USD": "1", "GBP": "2", "CAD": "3", "EUR": "4", "AUD": "5"}
"""Internal ids of NetSuite's default currency records, the fallback when ``refName`` is missing."""
_CURRENCY_BY_ID: Final = {v: k for k, v in CURRENCY_IDS.items()}

JOB_STATUSES: Final = {"closed": ("1", "Closed"), "active": ("2", "In Progress"), "pending": ("4", "Pending")}
"""Canonical status -> NetSuite job ``entityStatus`` (id, refName) of a default account."""
_STATUS_BY_ID: Final = {ident: status for status, (ident, _) in JOB_STATUSES.items()}
_STATUS_BY_NAME: Final = {name.lower(): status for status, (_, name) in JOB_STATUSES.items()}


class MappingError(ValueError):
    """A vendor record cannot be read as the canonical object (missing or malformed field)."""


def _ref_id(record: Record, field: str) -> str:
    ref = record.get(field)
    if isinstance(ref, dict) and ref.get("id") is not None:
        return str(ref["id"])
    raise MappingError(f"{field}.id missing on record {record.get('id')}")


def _opt_ref_id(record: Record, field: str) -> str | None:
    ref = record.get(field)
    return str(ref["id"]) if isinstance(ref, dict) and ref.get("id") is not None else None


def _currency(record: Record) -> str:
    ref = record.get("currency")
    if isinstance(ref, dict):
        if isinstance(ref.get("refName"), str) and len(ref["refName"]) == 3:
            return str(ref["refName"]).upper()
        if str(ref.get("id")) in _CURRENCY_BY_ID:
            return _CURRENCY_BY_ID[str(ref["id"])]
    raise MappingError(f"currency missing or unknown on record {record.get('id')}")


def _currency_ref(code: str) -> Record:
    ref: Record = {"refName": code}
    if code in CURRENCY_IDS:
        ref["id"] = CURRENCY_IDS[code]
    return ref


def _date(value: Any) -> dt.date | None:
    if value in (None, ""):
        return None
    try:
        return dt.datetime.strptime(str(value)[:10], DATE_FORMAT).date()
    except ValueError as exc:
        raise MappingError(f"bad date {value!r}") from exc


def _fmt_date(value: dt.date | None) -> str | None:
    return value.strftime(DATE_FORMAT) if value else None


def _decimal(value: Any, field: str) -> Decimal:
    if isinstance(value, float):  # never trust binary floats with amounts; go through their repr
        value = repr(value)
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise MappingError(f"{field} is not a decimal: {value!r}") from exc


def _decimal_text(value: Decimal) -> str:
    """Plain positional notation (``Decimal('1E+2')`` would otherwise print as ``1E+2``)."""
    return format(value, "f")


def format_instant(value: dt.datetime) -> str:
    """NetSuite's output instant format, always UTC."""
    return value.astimezone(dt.UTC).strftime(INSTANT_FORMAT)


def parse_instant(value: Any) -> dt.datetime | None:
    """An output instant (``lastModifiedDate``) as an aware UTC datetime; ``None`` when absent."""
    if value in (None, ""):
        return None
    try:
        instant = dt.datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise MappingError(f"bad instant {value!r}") from exc
    return (instant if instant.tzinfo else instant.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


# ---------------------------------------------------------------- subsidiary <-> legal entity


def subsidiary_from_record(record: Record) -> LegalEntity:
    """A ``subsidiary`` as a legal entity; its id is the NetSuite internal id."""
    try:
        return LegalEntity(
            id=str(record["id"]), code=str(record["custrecord_psc_code"]), name=str(record["name"]),
            country=str(record["country"]), currency=_currency(record),
            tax_regime=record["custrecord_psc_tax_regime"],
            tax_registration=str(record.get("federalIdNumber") or ""),
            requires_customer_tax_id=bool(record.get("custrecord_psc_requires_customer_tax_id", False)),
        )
    except KeyError as exc:
        raise MappingError(f"subsidiary {record.get('id')} lacks {exc.args[0]}") from exc


def legal_entity_to_subsidiary(entity: LegalEntity, internal_id: str) -> Record:
    """The subsidiary record for a seeded legal entity; the seed key stays the external id."""
    return {
        "id": internal_id, "externalId": entity.id, "name": entity.name, "country": entity.country,
        "currency": _currency_ref(entity.currency), "federalIdNumber": entity.tax_registration,
        "custrecord_psc_code": entity.code, "custrecord_psc_tax_regime": entity.tax_regime,
        "custrecord_psc_requires_customer_tax_id": entity.requires_customer_tax_id,
    }


# ---------------------------------------------------------------- customer


def _address_from_record(record: Record) -> Address | None:
    book = record.get("addressBook") or record.get("addressbook")
    items = book.get("items") if isinstance(book, dict) else None
    if not items:
        return None
    entry = next((i for i in items if i.get("defaultBilling")), items[0])
    addr = entry.get("addressBookAddress") or {}
    country = addr.get("country")
    return Address(street=addr.get("addr1"), city=addr.get("city"), postal_code=addr.get("zip"),
                   country=country.get("id") if isinstance(country, dict) else country)


def customer_from_record(record: Record) -> Customer:
    """A ``customer`` (read with ``expandSubResources=true`` to get its address book)."""
    if not record.get("externalId"):
        raise MappingError(f"customer {record.get('id')} has no externalId; it was not created by psconnect")
    return Customer(
        id=str(record["id"]), external_id=str(record["externalId"]),
        name=str(record.get("companyName") or record.get("entityId") or ""),
        legal_entity_id=_ref_id(record, "subsidiary"), currency=_currency(record),
        tax_id=record.get("vatRegNumber") or None, billing_address=_address_from_record(record),
    )


def customer_to_record(external_id: str, data: CustomerUpsert) -> Record:
    """The body of ``PUT /customer/eid:{external_id}``; the address book replaces the old one."""
    record: Record = {
        "externalId": external_id, "entityId": external_id, "companyName": data.name, "isPerson": False,
        "subsidiary": {"id": data.legal_entity_id}, "currency": _currency_ref(data.currency),
        "vatRegNumber": data.tax_id or "",
    }
    if data.billing_address is not None:
        a = data.billing_address
        addr: Record = {k: v for k, v in {"addr1": a.street, "city": a.city, "zip": a.postal_code}.items() if v}
        if a.country:
            addr["country"] = {"id": a.country}
        record["addressBook"] = {"items": [{"defaultBilling": True, "defaultShipping": True,
                                            "addressBookAddress": addr}]}
    return record


# ---------------------------------------------------------------- job <-> project


def _status(record: Record) -> str:
    ref = record.get("entityStatus")
    if not isinstance(ref, dict):
        return "pending"
    if str(ref.get("id")) in _STATUS_BY_ID:
        return _STATUS_BY_ID[str(ref["id"])]
    name = str(ref.get("refName") or "").lower()
    if name in _STATUS_BY_NAME:
        return _STATUS_BY_NAME[name]
    if name in JOB_STATUSES:
        return name
    raise MappingError(f"unknown job status {ref!r}")


def _tasks(record: Record) -> list[ProjectTask]:
    sub = record.get("projectTask")
    items = sub.get("items") if isinstance(sub, dict) else None
    return [ProjectTask(name=str(i["title"]),
                        planned_hours=_decimal_text(_decimal(i.get("plannedWork") or 0, "plannedWork")))
            for i in items or []]


class _WireMilestone(msgspec.Struct, kw_only=True):
    name: str
    due_date: dt.date
    amount: Decimal
    currency: str


def _billing(record: Record) -> BillingSchedule | None:
    billing_type = record.get("custentity_psc_billing_type")
    if not billing_type:
        return None
    raw = record.get("custentity_psc_billing_milestones") or "[]"
    try:
        wire = msgspec.json.decode(raw, type=list[_WireMilestone])
        milestones = [BillingMilestone(name=m.name, due_date=m.due_date,
                                       amount=Money(amount=m.amount, currency=m.currency)) for m in wire]
        return BillingSchedule(billing_type=billing_type, milestones=milestones,
                               payment_terms_days=int(record.get("custentity_psc_payment_terms_days") or 30))
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError) as exc:
        raise MappingError(f"job {record.get('id')} has unreadable billing fields: {exc}") from exc


def project_from_record(record: Record) -> ErpProject:
    """A ``job`` (read with ``expandSubResources=true`` so its project tasks are included)."""
    if not record.get("externalId"):
        raise MappingError(f"job {record.get('id')} has no externalId; it was not created by psconnect")
    currency = _currency(record)
    return ErpProject(
        id=str(record["id"]), external_id=str(record["externalId"]),
        name=str(record.get("companyName") or record.get("entityId") or ""),
        customer_id=_ref_id(record, "parent"), legal_entity_id=_ref_id(record, "subsidiary"),
        currency=currency, status=_status(record),  # type: ignore[arg-type]
        budget=Money(amount=_decimal(record.get("custentity_psc_budget_amount") or "0",
                                     "custentity_psc_budget_amount"), currency=currency),
        start_date=_date(record.get("startDate")), end_date=_date(record.get("projectedEndDate")),
        tasks=_tasks(record), billing=_billing(record),
    )


def project_to_record(external_id: str, data: ErpProjectUpsert) -> Record:
    """The body of ``PUT /job/eid:{external_id}``; sent with ``replace=projectTask``.

    ``plannedWork`` is a ``Decimal`` the client encodes as a JSON number; the budget is a
    decimal string because the custom field is free-form text. Status is left to NetSuite
    (new jobs start pending) — a process decides when a project becomes active.
    """
    if data.budget.currency != data.currency:
        raise MappingError(f"budget currency {data.budget.currency} differs from project currency {data.currency}")
    record: Record = {
        "externalId": external_id, "entityId": external_id, "companyName": data.name,
        "parent": {"id": data.customer_id}, "subsidiary": {"id": data.legal_entity_id},
        "currency": _currency_ref(data.currency),
        "custentity_psc_budget_amount": _decimal_text(data.budget.amount),
        "startDate": _fmt_date(data.start_date), "projectedEndDate": _fmt_date(data.end_date),
        "projectTask": {"items": [{"title": t.name, "plannedWork": Decimal(t.planned_hours)} for t in data.tasks]},
    }
    if data.billing is not None:
        b = data.billing
        record["custentity_psc_billing_type"] = b.billing_type
        record["custentity_psc_billing_milestones"] = msgspec.json.encode(
            [_WireMilestone(name=m.name, due_date=m.due_date, amount=m.amount.amount, currency=m.amount.currency)
             for m in b.milestones]).decode()
        record["custentity_psc_payment_terms_days"] = b.payment_terms_days
    return record


# ---------------------------------------------------------------- accounting period


def period_from_record(record: Record) -> AccountingPeriod:
    start, end = _date(record.get("startDate")), _date(record.get("endDate"))
    if start is None or end is None:
        raise MappingError(f"accountingPeriod {record.get('id')} lacks its dates")
    return AccountingPeriod(
        id=str(record["id"]), name=str(record.get("periodName") or ""), start_date=start, end_date=end,
        is_closed=bool(record.get("isClosed", False)), ar_locked=bool(record.get("arLocked", False)),
        ap_locked=bool(record.get("apLocked", False)),
        legal_entity_id=_opt_ref_id(record, "custrecord_psc_subsidiary"),
    )


def accounting_period_to_record(period: AccountingPeriod, internal_id: str, subsidiary_id: str | None) -> Record:
    """The accountingPeriod record of a seeded period; the seed key stays the external id."""
    record: Record = {
        "id": internal_id, "externalId": period.id, "periodName": period.name,
        "startDate": _fmt_date(period.start_date), "endDate": _fmt_date(period.end_date),
        "isClosed": period.is_closed, "arLocked": period.ar_locked, "apLocked": period.ap_locked,
        "isAdjust": False, "isQuarter": False, "isYear": False,
    }
    if subsidiary_id is not None:
        record["custrecord_psc_subsidiary"] = {"id": subsidiary_id}
    return record
