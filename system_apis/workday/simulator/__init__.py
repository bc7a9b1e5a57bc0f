"""An in-memory Workday tenant (staffing REST v6) speaking the vendor's wire format, with fault injection.

What an adapter must cope with against the real service, reproduced here: `limit`
above 100 refused (400, not capped), `{total, data}` collections paged by `offset`,
workers addressed by WID while people use employee ids (found through `search`, which
also matches names), the `{error, code, errors[]}` envelope, 401 without a Bearer
token, 404 for an unknown tenant or WID, and 429 + Retry-After for both throttling
and the concurrent-request ceiling.

Seeded from the demo firm's workers (status, cost center, cost rate, termination
date). HR changes — a termination, a cost-center move, a new cost rate — are made
with `change_worker()` or `POST /__sim__/workers/{worker_id}`, so worker sync has
something to notice. Workers are kept as canonical Structs and rendered to wire JSON
on demand: a 10,000-worker firm costs a few MB, not a tree of nested dicts.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Collection
from typing import Annotated, Any

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.params import JSONBody, PathParameter

from contracts.common import Money
from contracts.workforce import CostCenter, Worker
from system_apis._internal.faults import Fault, FaultPlan, ReceivedRequest, control_router, received
from system_apis.demo_firm import HOME_ENTITIES, DemoFirm, firm_for
from system_apis.workday.client import DEFAULT_TENANT, MAX_LIMIT
from system_apis.workday.mapping import (
    COMPANY_NAMES,
    cost_center_to_record,
    practice_label,
    wid,
    worker_to_record,
)

__all__ = ["SEEDED_AT", "WorkdaySimulator", "WorkerChange"]

SEEDED_AT = dt.datetime(2026, 11, 2, 6, 0, tzinfo=dt.UTC)
"""`lastUpdated` of every seeded worker; later changes are stamped after it."""

_PREFIX = "/ccx/api/staffing/v6/"


class WorkerChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An HR change to one worker (absent fields stay as they are)."""

    name: str | None = None
    email: str | None = None
    role: str | None = None
    practice: str | None = None
    cost_center: str | None = None
    cost_rate: Money | None = None
    status: str | None = None
    termination_date: dt.date | None = None


class _Refused(Exception):
    def __init__(self, status: int, message: str, code: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.field = status, message, code, field


def _error(message: str, code: str, field: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": message, "code": code}
    if field:
        body["errors"] = [{"error": message, "field": field}]
    return body


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(msgspec.json.encode(body), status_code=status, media_type="application/json", headers=headers)


def _int(query: dict[str, str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise _Refused(400, f"'{raw}' is not a valid value for {name}", f"invalid_{name}", name) from exc


class WorkdaySimulator:
    """Stateful fake of one Workday tenant; `app` is its ASGI app, `faults` its fault plan."""

    def __init__(self, *, seed: bool = True, firm: DemoFirm | None = None, tenant: str = DEFAULT_TENANT,
                 legal_entities: Collection[str] = HOME_ENTITIES) -> None:
        self.legal_entities = tuple(legal_entities)
        self.faults = FaultPlan()
        self.tenant = tenant
        self._seed = seed
        self._firm = firm
        self._app: Litestar | None = None
        self.workers: dict[str, tuple[Worker, dt.datetime]] = {}
        self.by_wid: dict[str, str] = {}
        self.cost_centers: dict[str, CostCenter] = {}
        self._last_stamp = SEEDED_AT
        self.requests: deque[ReceivedRequest] = deque(maxlen=1000)
        """The latest requests (bounded: a month-end benchmark must not grow this without end)."""
        self.reset()

    # --- state ------------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the seeded tenant, faults cleared."""
        self.faults.clear()
        self.requests.clear()
        self.workers = {}
        self.by_wid = {}
        self.cost_centers = {}
        self._last_stamp = SEEDED_AT
        if self._seed:
            for worker in firm_for(self.legal_entities, self._firm).workers:
                self._put(worker, SEEDED_AT)

    def _put(self, worker: Worker, stamp: dt.datetime) -> None:
        self.workers[worker.id] = (worker, stamp)
        self.by_wid[wid("worker", worker.id)] = worker.id
        if worker.cost_center not in self.cost_centers:
            number = worker.cost_center.rsplit("-", 1)[-1]
            self.cost_centers[worker.cost_center] = CostCenter(
                id=worker.cost_center, legal_entity_code=worker.legal_entity_code,
                name=f"{COMPANY_NAMES.get(worker.legal_entity_code, worker.legal_entity_code)} delivery {number}")

    def _stamp(self) -> dt.datetime:
        self._last_stamp = max(dt.datetime.now(dt.UTC), self._last_stamp + dt.timedelta(milliseconds=1))
        return self._last_stamp

    def hire(self, worker: Worker) -> None:
        """Add a worker, as an HR hire would."""
        self._put(worker, self._stamp())

    def change_worker(self, worker_id: str, change: WorkerChange) -> Worker:
        """Apply an HR change (terminate, move cost center, new cost rate ...) and bump `lastUpdated`."""
        if worker_id not in self.workers:
            raise KeyError(worker_id)
        worker = self.workers[worker_id][0]
        values = {k: v for k, v in msgspec.structs.asdict(change).items() if v is not None}
        if values.get("status") == "terminated" and "termination_date" not in values:
            values["termination_date"] = self._stamp().date()
        if values.get("status") in ("active", "on_leave") and "termination_date" not in values:
            values["termination_date"] = None
        updated = msgspec.convert(msgspec.to_builtins({**msgspec.structs.asdict(worker), **values}), Worker)
        self._put(updated, self._stamp())
        return updated

    def count(self, record_type: str, external_id: str | None = None) -> int:
        """Workers ("worker") or cost centers ("cost_center"), optionally only the one with that id."""
        tables: dict[str, dict[str, Any]] = {"worker": self.workers, "cost_center": self.cost_centers}
        table = tables.get(record_type, {})
        if external_id is None:
            return len(table)
        return 1 if external_id in table else 0

    # --- wire ---------------------------------------------------------------------------------------------

    def _render(self, worker_id: str) -> dict[str, Any]:
        worker, stamp = self.workers[worker_id]
        return worker_to_record(worker, last_updated=stamp, tenant=self.tenant)

    @staticmethod
    def _collection(items: list[Any], query: dict[str, str]) -> tuple[list[Any], int]:
        limit = _int(query, "limit", 20)
        offset = _int(query, "offset", 0)
        if not 1 <= limit <= MAX_LIMIT:
            raise _Refused(400, f"limit must be between 1 and {MAX_LIMIT}", "invalid_limit", "limit")
        if offset < 0:
            raise _Refused(400, "offset must not be negative", "invalid_offset", "offset")
        return items[offset: offset + limit], len(items)

    def handle(self, path: str, query: dict[str, str]) -> dict[str, Any]:
        tenant, _, rest = path.removeprefix(_PREFIX).partition("/")
        if tenant != self.tenant:
            raise _Refused(404, f"tenant {tenant!r} not found", "not_found")
        parts = rest.strip("/").split("/")
        if parts == ["workers"]:
            ids = list(self.workers)
            if query.get("search"):
                needle = query["search"].casefold()
                ids = [i for i in ids if needle in i.casefold() or needle in self.workers[i][0].name.casefold()]
            shown, total = self._collection(ids, query)
            return {"total": total, "data": [self._render(i) for i in shown]}
        if len(parts) == 2 and parts[0] == "workers":
            worker_id = self.by_wid.get(parts[1])
            if worker_id is None:
                raise _Refused(404, f"Invalid ID value. '{parts[1]}' is not a valid ID value for type = WID",
                               "not_found")
            return self._render(worker_id)
        if parts == ["organizations"]:
            if query.get("type") not in (None, "Cost_Center"):
                return {"total": 0, "data": []}
            shown, total = self._collection(list(self.cost_centers.values()), query)
            return {"total": total, "data": [cost_center_to_record(c) for c in shown]}
        if parts == ["supervisoryOrganizations"]:
            orgs = sorted({(w.practice, w.legal_entity_code) for w, _ in self.workers.values()})
            shown, total = self._collection(orgs, query)
            return {"total": total, "data": [
                {"id": wid("supervisoryOrganization", f"{p}:{c}"), "descriptor": practice_label(p, c)}
                for p, c in shown]}
        raise _Refused(404, f"no resource at {path}", "not_found")

    async def _fault_answer(self, fault: Fault) -> Response[bytes] | None:
        await self.faults.delay_for(fault)
        if fault.kind == "rate_limit":
            return _json(429, _error(fault.message or "Too many requests", "rate_limited"),
                         {"Retry-After": str(fault.retry_after)})
        if fault.kind == "concurrency_limit":
            return _json(429, _error(fault.message or "Concurrent request limit exceeded", "concurrency_limit"),
                         {"Retry-After": str(fault.retry_after)})
        if fault.kind == "server_error":
            return _json(fault.status if fault.status >= 500 else 500,
                         _error(fault.message or "Internal Server Error", "server_error"))
        if fault.kind == "timeout":
            return _json(504, _error(fault.message or "Gateway Timeout", "timeout"))
        if fault.kind == "business_error":
            return _json(400, _error(fault.message or "Simulated business rule failure", "validation_error",
                                     "base"))
        return None  # slow: answer normally after the delay

    async def dispatch(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        seen = received(request)
        method, path, query = seen.method, seen.path, seen.query
        self.requests.append(seen)
        fault = self.faults.take(method, path)
        if fault is not None:
            answer = await self._fault_answer(fault)
            if answer is not None:
                return answer
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return _json(401, _error("invalid authentication", "invalid_token"))
        try:
            return _json(200, self.handle(path, query))
        except _Refused as exc:
            return _json(exc.status, _error(exc.message, exc.code, exc.field))

    @property
    def app(self) -> Litestar:
        """The tenant's ASGI app (built once; state lives on the simulator, so reset() needs no rebuild)."""
        if self._app is None:
            self._app = self._build_app()
        return self._app

    def _build_app(self) -> Litestar:
        sim = self

        @get(_PREFIX + "{path:path}", include_in_schema=False)
        async def staffing(request: Request[Any, Any, Any]) -> Response[bytes]:
            return await sim.dispatch(request)

        @post("/__sim__/workers/{worker_id:str}", include_in_schema=False, status_code=200, sync_to_thread=False)
        def change(worker_id: Annotated[str, PathParameter()], data: JSONBody[WorkerChange]) -> Response[bytes]:
            try:
                return _json(200, msgspec.to_builtins(sim.change_worker(worker_id, data)))
            except KeyError:
                return _json(404, _error(f"no worker {worker_id}", "not_found"))
            except msgspec.ValidationError as exc:
                return _json(400, _error(str(exc), "validation_error"))

        return Litestar(route_handlers=[staffing, change, control_router(self)], openapi_config=None)
