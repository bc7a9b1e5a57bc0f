"""BambooHR employee fields (strings on the wire) <-> canonical workers and cost centers. Pure functions.

Standard fields (https://documentation.bamboohr.com/docs/list-of-field-names): ``employeeNumber``,
``firstName``, ``lastName``, ``displayName``, ``workEmail``, ``jobTitle``, ``department``, ``division``,
``status`` (Active / Inactive), ``employmentHistoryStatus`` (Full-Time, Leave of Absence, Terminated, ...),
``hireDate``, ``terminationDate`` (``0000-00-00`` when empty), ``payRate`` (``"85000.00 CAD"``), ``payPer``,
``lastChanged``.

How the canonical worker is read from them — the firm's BambooHR conventions, decided here:

- legal entity: ``division`` holds the entity code (CA01); an account for one entity may leave it empty and
  the connection's default entity stands in;
- role: ``jobTitle`` in words (``Senior Consultant`` -> ``senior_consultant``); practice: ``department``;
- cost center and hourly cost rate: two custom fields, ``customCostCenter`` (``CC-CA01-2``) and
  ``customHourlyCostRate`` (``"92.40 CAD"``); without the latter, ``payRate`` is used when it is paid per hour
  (a salary is not an hourly cost rate, so a salaried worker without the custom field is a mapping error);
- id: ``employeeNumber``, the firm-wide key (W-CA01001) that outlives a change of HR system and that the
  other HR vendors use as the worker id too; BambooHR's own numeric ``id`` only when no number is set.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal

from contracts.common import Money
from contracts.workforce import Worker

__all__ = [
    "WORKER_FIELDS",
    "MappingError",
    "employee_fields",
    "money_from_bamboo",
    "worker_from_employee",
]

WORKER_FIELDS: Final = (
    "id", "employeeNumber", "firstName", "lastName", "displayName", "workEmail", "jobTitle", "department",
    "division", "status", "employmentHistoryStatus", "hireDate", "terminationDate", "payRate", "payPer",
    "customCostCenter", "customHourlyCostRate", "lastChanged",
)


class MappingError(ValueError):
    """An employee record the canonical contract cannot hold."""


def _text(record: Mapping[str, Any], name: str) -> str | None:
    value = record.get(name)
    return None if value in (None, "") else str(value)


def _date(value: str | None) -> dt.date | None:
    if not value or value.startswith("0000-00-00"):
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError as exc:
        raise MappingError(f"unreadable date {value!r}") from exc


def _slug(value: str) -> str:
    return "_".join(value.lower().replace("-", " ").split())


def _words(value: str) -> str:
    return " ".join(w.capitalize() for w in value.split("_"))


def money_from_bamboo(value: str, default_currency: str) -> Money:
    """``"92.40 CAD"`` (BambooHR's money fields: amount, space, ISO currency) as `Money`."""
    amount, _, currency = value.strip().partition(" ")
    try:
        return Money(amount=Decimal(amount.replace(",", "")), currency=currency.strip() or default_currency)
    except InvalidOperation as exc:
        raise MappingError(f"unreadable amount {value!r}") from exc


def worker_from_employee(record: Mapping[str, Any], *, default_entity: str, default_currency: str) -> Worker:
    employee_id = _text(record, "id")
    if employee_id is None:
        raise MappingError("employee without id")
    hire = _date(_text(record, "hireDate"))
    if hire is None:
        raise MappingError(f"employee {employee_id} has no hire date")
    rate = _text(record, "customHourlyCostRate")
    if rate is None and (_text(record, "payPer") or "").lower() == "hour":
        rate = _text(record, "payRate")
    if rate is None:
        raise MappingError(f"employee {employee_id} has no hourly cost rate (customHourlyCostRate)")
    history = (_text(record, "employmentHistoryStatus") or "").lower()
    status: Literal["active", "on_leave", "terminated"]
    if (_text(record, "status") or "Active") == "Inactive" or history == "terminated":
        status = "terminated"
    elif "leave" in history:
        status = "on_leave"
    else:
        status = "active"
    name = _text(record, "displayName") or " ".join(
        p for p in (_text(record, "firstName"), _text(record, "lastName")) if p)
    return Worker(
        id=_text(record, "employeeNumber") or employee_id, name=name, email=_text(record, "workEmail") or "",
        legal_entity_code=_text(record, "division") or default_entity,
        role=_slug(_text(record, "jobTitle") or "unassigned"), practice=_slug(_text(record, "department") or "none"),
        cost_center=_text(record, "customCostCenter") or "", status=status,
        cost_rate=money_from_bamboo(rate, default_currency), hire_date=hire,
        termination_date=_date(_text(record, "terminationDate")) if status == "terminated" else None,
    )


def employee_fields(worker: Worker) -> dict[str, str]:
    """A BambooHR employee record from a canonical worker, without ``id`` (seeding the simulator)."""
    first, _, last = worker.name.partition(" ")
    return {
        "employeeNumber": worker.id, "firstName": first, "lastName": last, "displayName": worker.name,
        "workEmail": worker.email, "jobTitle": _words(worker.role), "department": _words(worker.practice),
        "division": worker.legal_entity_code, "status": "Inactive" if worker.status == "terminated" else "Active",
        "employmentHistoryStatus": {"terminated": "Terminated", "on_leave": "Leave of Absence"}.get(worker.status,
                                                                                                   "Full-Time"),
        "hireDate": worker.hire_date.isoformat(),
        "terminationDate": worker.termination_date.isoformat() if worker.termination_date else "0000-00-00",
        "payRate": f"{(worker.cost_rate.amount * 2080 / Decimal('0.42')).quantize(Decimal('1'))}.00 "
                   f"{worker.cost_rate.currency}",
        "payPer": "Year", "customCostCenter": worker.cost_center,
        "customHourlyCostRate": f"{worker.cost_rate.amount} {worker.cost_rate.currency}",
    }
