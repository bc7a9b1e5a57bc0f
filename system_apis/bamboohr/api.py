"""The HR system API on BambooHR: workers from a custom report, changes from `/employees/changed`.

BambooHR pages nothing: one custom report (`WORKER_FIELDS`, former employees included) answers every
worker at once. A canonical page is cut from that report by employee id (ids only grow, so a cursor — the
last id given — stays valid while people are hired). The report is kept for `REPORT_TTL` seconds, so
following the cursors of one listing costs one report, not one per page (re-reading a 10,000-row report for
each of 100 pages would be quadratic); an HR change shows at most that much later in a full listing.
``updated_since`` asks ``/employees/changed?since=`` which employees were inserted or updated, then reads
the report afresh for its first page (a cached report would give a changed worker's old data to a caller
about to move its watermark past the change), and keeps only those; deleted ones cannot be read any more
and are left out. Workers are looked up by BambooHR id, or by the firm-wide
employee number (W-00001). Cost centers are the distinct ``customCostCenter`` values, with their entity.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence

import httpx
import msgspec
from litestar import Router

from contracts.common import Page
from contracts.problems import ProblemError, invalid_cursor
from contracts.workforce import CostCenter, Worker
from foundation.paging import decode_position, encode_position
from foundation.retry import RetryPolicy
from system_apis._internal.http import VendorRejected
from system_apis.bamboohr.client import VENDOR, BambooHRClient
from system_apis.bamboohr.mapping import WORKER_FIELDS, MappingError, worker_from_employee
from system_apis.domains.hr import hr_router
from system_apis.registry import Connection

__all__ = ["REPORT_TTL", "BambooHRHr", "create_router", "create_systems"]

REPORT_TTL = 30.0


class _Cursor(msgspec.Struct, frozen=True, omit_defaults=True):
    after: int
    limit: int
    since: dt.datetime | None = None


def _id(record: Mapping[str, object]) -> int:
    value = str(record.get("id") or "")
    return int(value) if value.isdigit() else 0


class BambooHRHr:
    """`HrSystem` on BambooHR.

    Args:
        default_entity: the legal entity of employees whose ``division`` is empty (a one-entity account).
        default_currency: the currency of money fields that name none.
    """

    def __init__(self, client: BambooHRClient, *, default_entity: str = "CA01", default_currency: str = "CAD",
                 report_ttl: float = REPORT_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.default_entity = default_entity
        self.default_currency = default_currency
        self.report_ttl = report_ttl
        self._clock = clock
        self._reports: dict[tuple[str, ...], tuple[float, list[dict[str, object]]]] = {}

    async def _report(self, fields: Sequence[str], *, fresh: bool = False) -> list[dict[str, object]]:
        """The custom report of `fields`, sorted by employee id; reused while younger than `report_ttl` unless
        `fresh`."""
        key = tuple(fields)
        now = self._clock()
        cached = self._reports.get(key)
        if not fresh and cached is not None and now - cached[0] < self.report_ttl:
            return cached[1]
        employees = sorted((await self.client.custom_report(fields)).employees, key=_id)
        self._reports[key] = (now, employees)
        return employees

    def _worker(self, record: Mapping[str, object]) -> Worker:
        try:
            return worker_from_employee(record, default_entity=self.default_entity,
                                        default_currency=self.default_currency)
        except MappingError as exc:
            raise VendorRejected(VENDOR, f"unreadable employee record: {exc}", status=502,
                                 code="unreadable_response") from exc

    async def _employees(self) -> list[dict[str, object]]:
        return await self._report(WORKER_FIELDS)

    async def list_workers(self, limit: int, cursor: str | None,
                           updated_since: dt.datetime | None) -> Page[Worker]:
        if cursor:
            position = decode_position(cursor, _Cursor, "hr.bamboohr.workers")
            if position.after < 0 or not 1 <= position.limit <= 100:
                raise invalid_cursor("The cursor is out of range.")
        else:
            since = updated_since.replace(tzinfo=dt.UTC) if updated_since and updated_since.tzinfo is None \
                else updated_since
            position = _Cursor(after=0, limit=limit, since=since)
        wanted: set[str] | None = None
        if position.since is not None:  # what changed first, then a report at least as new as those changes
            changed = await self.client.changed(position.since)
            wanted = {c.id for c in changed.employees.values() if c.action in ("Inserted", "Updated")}
        report = await self._report(WORKER_FIELDS, fresh=wanted is not None and not cursor)
        employees = [e for e in report if _id(e) > position.after and (wanted is None or str(e.get("id")) in wanted)]
        page = employees[:position.limit]
        more = len(employees) > position.limit
        return Page(items=[self._worker(e) for e in page],
                    next_cursor=encode_position(_Cursor(after=_id(page[-1]), limit=position.limit,
                                                        since=position.since), "hr.bamboohr.workers")
                    if more else None)

    async def get_worker(self, worker_id: str) -> Worker:
        if worker_id.isdigit():
            return self._worker(await self.client.employee(worker_id, WORKER_FIELDS))
        found = [e for e in await self._employees() if e.get("employeeNumber") == worker_id]
        if not found:
            raise ProblemError(404, "not-found", "Not found",
                               f"BambooHR has no employee with employee number {worker_id!r}.", code="not_found")
        return self._worker(found[0])

    async def list_cost_centers(self, limit: int, cursor: str | None) -> Page[CostCenter]:
        offset = decode_position(cursor, _Cursor, "hr.bamboohr.cost_centers").after if cursor else 0
        centers: dict[str, str] = {}
        for record in await self._report(("id", "division", "customCostCenter")):
            code = str(record.get("customCostCenter") or "")
            if code:
                centers.setdefault(code, str(record.get("division") or self.default_entity))
        ordered = sorted(centers.items())
        page = ordered[offset:offset + limit]
        following = offset + limit
        return Page(items=[CostCenter(id=code, name=code, legal_entity_code=entity) for code, entity in page],
                    next_cursor=encode_position(_Cursor(after=following, limit=limit), "hr.bamboohr.cost_centers")
                    if following < len(ordered) else None)


def create_router(http: httpx.AsyncClient, *, token: str = "sim-token", retry: RetryPolicy | None = None) -> Router:
    """The `/system/hr/v1` router backed by the BambooHR account `http` reaches (`token` is the API key)."""
    return hr_router(BambooHRHr(BambooHRClient(http, api_key=token, retry=retry)))


def create_systems(http: httpx.AsyncClient, connection: Connection, *,
                   retry: RetryPolicy | None = None) -> Mapping[str, object]:
    """The HR adapter on one BambooHR account: `tenant` is the company domain, `credentials["api_key"]` the
    key; `credentials["default_entity"]` / `["default_currency"]` (optional) fill what records leave empty."""
    client = BambooHRClient(http, api_key=connection.credentials["api_key"],
                            company_domain=connection.tenant or "meridian-ca", retry=retry)
    return {"hr": BambooHRHr(client, default_entity=connection.credentials.get("default_entity", "CA01"),
                             default_currency=connection.credentials.get("default_currency", "CAD"))}
