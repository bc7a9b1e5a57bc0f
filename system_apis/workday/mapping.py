"""Workday staffing records <-> canonical workers and cost centers. Pure functions, no I/O.

Workday identifies everything by a Workday ID (WID, 32 hex digits) and shows it with a
`descriptor`; references to other objects are `{id, descriptor}` pairs
(https://community.workday.com/sites/default/files/file-hosting/restapi/index.html).
The canonical worker id is the *employee id* (`workerId`, e.g. `W-00001`), not the
WID: it is what people, time sheets, the PSA and the ERP already carry, and it
survives a tenant rebuild, which WIDs do not.

Where our tenant keeps what psconnect needs on a worker:
- legal entity: `primaryJob.company.id` is the company's reference id (`US01`);
- practice: the primary job's supervisory organization, `"<Practice> (<company>)"`;
- role: `primaryJob.jobProfile.id`, the job profile's reference id;
- cost center: `costCenter.code`, the cost center organization's reference id;
- cost rate: `compensation.costRate` (hourly, `{amount, currency: {id}}`);
- employment: `workerStatus` (`active`, `onLeave`, `hireDate`, `terminationDate`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from contracts.common import Money
from contracts.workforce import CostCenter, Worker

__all__ = ["COMPANY_NAMES", "MappingError", "Record", "cost_center_from_record", "cost_center_to_record",
           "practice_label", "wid", "worker_from_record", "worker_to_record"]

Record = dict[str, Any]

COMPANY_NAMES: Final = {"US01": "Meridian Advisory Inc.", "UK01": "Meridian Advisory Ltd",
                        "DE01": "Meridian Advisory GmbH"}


class MappingError(ValueError):
    """A Workday record lacks what the canonical object needs; `field` names the JSON path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def wid(kind: str, key: str) -> str:
    """A stable Workday-style id (32 hex digits) for a seeded object."""
    return hashlib.md5(f"{kind}:{key}".encode(), usedforsecurity=False).hexdigest()


def practice_label(practice: str, company: str) -> str:
    return f"{practice.replace('_', ' ').title()} ({company})"


def _practice(label: str) -> str:
    return label.split(" (", 1)[0].strip().lower().replace(" ", "_")


def _title(role: str) -> str:
    return role.replace("_", " ").title()


def _get(record: Record, path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            raise MappingError(path, "missing")
    return value


def _date(record: Record, path: str, *, required: bool) -> dt.date | None:
    try:
        raw = _get(record, path)
    except MappingError:
        if required:
            raise
        return None
    try:
        return dt.date.fromisoformat(str(raw)[:10])
    except ValueError as exc:
        raise MappingError(path, f"not a date: {raw!r}") from exc


def _money(record: Record, path: str) -> Money:
    amount = _get(record, f"{path}.amount")
    currency = _get(record, f"{path}.currency.id")
    try:
        return Money(amount=Decimal(str(amount)).quantize(Decimal("0.01")), currency=str(currency))
    except InvalidOperation as exc:
        raise MappingError(f"{path}.amount", f"not a number: {amount!r}") from exc


def worker_from_record(record: Record) -> Worker:
    """A Workday worker (as `GET /workers` answers it) as the canonical `Worker`."""
    status = record.get("workerStatus") or {}
    terminated = status.get("active") is False or bool(status.get("terminationDate"))
    return Worker(
        id=str(_get(record, "workerId")),
        name=str(_get(record, "descriptor")),
        email=str(record.get("primaryWorkEmail") or ""),
        legal_entity_code=str(_get(record, "primaryJob.company.id")),
        role=str(_get(record, "primaryJob.jobProfile.id")),
        practice=_practice(str(_get(record, "primaryJob.supervisoryOrganization.descriptor"))),
        cost_center=str(_get(record, "costCenter.code")),
        status="terminated" if terminated else ("on_leave" if status.get("onLeave") else "active"),
        cost_rate=_money(record, "compensation.costRate"),
        hire_date=_date(record, "workerStatus.hireDate", required=True) or dt.date.min,
        termination_date=_date(record, "workerStatus.terminationDate", required=False),
    )


def worker_to_record(worker: Worker, *, last_updated: dt.datetime, tenant: str) -> Record:
    """The canonical worker in Workday's wire shape (the simulator serves this)."""
    worker_wid = wid("worker", worker.id)
    company = worker.legal_entity_code
    return {
        "id": worker_wid,
        "descriptor": worker.name,
        "href": f"/ccx/api/staffing/v6/{tenant}/workers/{worker_wid}",
        "workerId": worker.id,
        "workerType": {"id": wid("workerType", "Employee"), "descriptor": "Employee"},
        "businessTitle": _title(worker.role),
        "isManager": worker.role in ("manager", "director"),
        "primaryWorkEmail": worker.email or None,
        "primaryJob": {
            "id": wid("job", worker.id),
            "descriptor": f"{_title(worker.role)} - {worker.name}",
            "jobProfile": {"id": worker.role, "descriptor": _title(worker.role)},
            "company": {"id": company, "descriptor": COMPANY_NAMES.get(company, company)},
            "supervisoryOrganization": {"id": wid("supervisoryOrganization", f"{worker.practice}:{company}"),
                                        "descriptor": practice_label(worker.practice, company)},
        },
        "costCenter": {"id": wid("costCenter", worker.cost_center), "descriptor": worker.cost_center,
                       "code": worker.cost_center},
        "compensation": {"costRate": {"amount": f"{worker.cost_rate.amount:.2f}",
                                      "currency": {"id": worker.cost_rate.currency,
                                                   "descriptor": worker.cost_rate.currency},
                                      "frequency": {"id": "Hourly", "descriptor": "Hourly"}}},
        "workerStatus": {"active": worker.status != "terminated", "onLeave": worker.status == "on_leave",
                         "hireDate": worker.hire_date.isoformat(),
                         "terminationDate": worker.termination_date.isoformat() if worker.termination_date
                         else None},
        "lastUpdated": last_updated.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
    }


def cost_center_from_record(record: Record) -> CostCenter:
    return CostCenter(id=str(_get(record, "code")), name=str(_get(record, "descriptor")),
                      legal_entity_code=str(_get(record, "company.id")))


def cost_center_to_record(center: CostCenter) -> Record:
    company = center.legal_entity_code
    return {"id": wid("costCenter", center.id), "descriptor": center.name, "code": center.id,
            "organizationType": {"id": "Cost_Center", "descriptor": "Cost Center"},
            "company": {"id": company, "descriptor": COMPANY_NAMES.get(company, company)}, "isActive": True}
