"""The HR system API on Workday: workers and cost centers from the staffing REST API.

Workers are looked up by employee id (`W-00001`), the canonical HR id; a WID is
accepted too. Workday has no "changed since" filter on the workers collection, so
`updated_since` is applied here to each vendor page by its `lastUpdated`: a page may
hold fewer items than asked for (even none) and still carry a next cursor — callers
follow cursors until there is none, never until a short page.
"""

from __future__ import annotations

import datetime as dt

import httpx
import msgspec
from litestar import Router

from contracts.common import Page
from contracts.problems import ProblemError, invalid_cursor
from contracts.workforce import CostCenter, Worker
from foundation.paging import decode_position, encode_position
from foundation.retry import RetryPolicy
from system_apis._internal.http import VendorRejected
from system_apis.domains.hr import hr_router
from system_apis.registry import Connection
from system_apis.workday.client import DEFAULT_TENANT, MAX_LIMIT, VENDOR, WorkdayClient, is_wid
from system_apis.workday.mapping import MappingError, Record, cost_center_from_record, worker_from_record

__all__ = ["WorkdayHr", "create_router"]


class _Cursor(msgspec.Struct, frozen=True, omit_defaults=True):
    offset: int
    limit: int
    since: dt.datetime | None = None


def _decode(value: str, collection: str) -> _Cursor:
    cursor = decode_position(value, _Cursor, f"hr.{collection}")
    if cursor.offset < 0 or not 1 <= cursor.limit <= MAX_LIMIT:
        raise invalid_cursor("The cursor is out of range.")
    return cursor


def _updated(record: Record) -> dt.datetime | None:
    raw = record.get("lastUpdated")
    try:
        return dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00")) if raw else None
    except ValueError:
        return None


def _worker(record: Record) -> Worker:
    try:
        return worker_from_record(record)
    except MappingError as exc:
        raise VendorRejected(VENDOR, f"unreadable worker record: {exc}", status=502) from exc


class WorkdayHr:
    """`HrSystem` on Workday staffing v6."""

    def __init__(self, client: WorkdayClient) -> None:
        self.client = client

    async def list_workers(self, limit: int, cursor: str | None,
                           updated_since: dt.datetime | None) -> Page[Worker]:
        if cursor:
            position = _decode(cursor, "workers")
        else:
            since = updated_since.replace(tzinfo=dt.UTC) if updated_since and updated_since.tzinfo is None \
                else updated_since
            position = _Cursor(offset=0, limit=min(limit, MAX_LIMIT), since=since)
        page = await self.client.list_workers(offset=position.offset, limit=position.limit)
        records = page.data
        if position.since is not None:
            since = position.since
            records = [r for r in records if (_updated(r) or dt.datetime.max.replace(tzinfo=dt.UTC)) >= since]
        following = page.next_offset
        return Page(items=[_worker(r) for r in records],
                    next_cursor=encode_position(_Cursor(offset=following, limit=position.limit, since=position.since),
                                           "hr.workers")
                    if following is not None else None)

    async def get_worker(self, worker_id: str) -> Worker:
        if is_wid(worker_id):
            return _worker(await self.client.get_worker(worker_id))
        record = await self.client.find_worker(worker_id)
        if record is None:
            raise ProblemError(404, "not-found", "Not found", f"Workday has no worker with employee id {worker_id!r}.",
                               code="not_found")
        return _worker(record)

    async def list_cost_centers(self, limit: int, cursor: str | None) -> Page[CostCenter]:
        position = _decode(cursor, "cost_centers") if cursor else _Cursor(offset=0, limit=min(limit, MAX_LIMIT))
        page = await self.client.list_cost_centers(offset=position.offset, limit=position.limit)
        try:
            items = [cost_center_from_record(r) for r in page.data]
        except MappingError as exc:
            raise VendorRejected(VENDOR, f"unreadable cost center record: {exc}", status=502) from exc
        following = page.next_offset
        return Page(items=items,
                    next_cursor=encode_position(_Cursor(offset=following, limit=position.limit), "hr.cost_centers")
                    if following is not None else None)


def create_router(http: httpx.AsyncClient, *, token: str = "sim-token", retry: RetryPolicy | None = None) -> Router:
    """The `/system/hr/v1` router backed by Workday reached through `http`."""
    return hr_router(WorkdayHr(WorkdayClient(http, token=token, retry=retry)))


def create_systems(http: httpx.AsyncClient, connection: Connection, *,
                   retry: RetryPolicy | None = None) -> dict[str, object]:
    """The hr adapter on one workday account (`connection`: token, tenant, pacing), for routing per legal entity."""
    return {"hr": WorkdayHr(WorkdayClient(http, token=connection.credential("token", "sim-token"), retry=retry,
                                    tenant=connection.tenant or DEFAULT_TENANT))}
