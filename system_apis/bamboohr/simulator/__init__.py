"""A stateful BambooHR account in memory, speaking API v1 at BambooHR's own paths.

Seeded with the demo firm's workers of the given legal entities (``division`` = entity code), employee
numbers kept as the seed keys. It reproduces what an adapter must cope with: Basic auth with the API key as
user (401 otherwise), XML unless ``Accept: application/json`` asks for JSON, the company domain in the path
(404 for another), error reasons in ``X-BambooHR-Error-Message``, ``/employees/changed`` keyed by id with
``lastChanged`` instants, custom reports that answer every employee at once, throttling as 503 with
``Retry-After``, and injected faults.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import itertools
from collections.abc import Collection
from typing import Annotated, Any, Final

import msgspec
from litestar import Litestar, Request, Response, Router, get, post
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery, QueryParameter

from system_apis._internal.faults import FaultPlan, control_router
from system_apis.bamboohr.mapping import employee_fields
from system_apis.demo_firm import demo_firm

__all__ = ["BambooHRApiError", "BambooHRSimulator"]

COMPANY_DOMAIN: Final = "meridian-ca"
SEEDED_AT: Final = dt.datetime(2026, 10, 1, 8, 0, tzinfo=dt.UTC)
_FIELDS: Final = frozenset({
    "employeeNumber", "firstName", "lastName", "displayName", "workEmail", "jobTitle", "department", "division",
    "status", "employmentHistoryStatus", "hireDate", "terminationDate", "payRate", "payPer", "customCostCenter",
    "customHourlyCostRate", "lastChanged",
})
_DIRECTORY: Final = ("displayName", "firstName", "lastName", "jobTitle", "workEmail", "department", "division")
_ENCODER = msgspec.json.Encoder()


class BambooHRApiError(Exception):
    """Raise in a simulator route: BambooHR answers a status and the reason in a header, with no body."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = {"X-BambooHR-Error-Message": message, **(headers or {})}


def _instant(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


class BambooHRSimulator:
    """An in-memory BambooHR account.

    Args:
        legal_entities: entity codes whose workers are seeded.
        company_domain: the account's subdomain, part of every path.
    """

    def __init__(self, *, legal_entities: Collection[str] = ("CA01",), company_domain: str = COMPANY_DOMAIN) -> None:
        self.legal_entities = tuple(legal_entities)
        self.company_domain = company_domain
        self.faults = FaultPlan()
        self.employees: dict[int, dict[str, str]] = {}
        self.changes: dict[int, tuple[str, dt.datetime]] = {}
        self.revoked: set[str] = set()
        self.requests: list[dict[str, str]] = []
        self.now = SEEDED_AT
        self._ids = itertools.count(101)
        self._app: Litestar | None = None
        self.reset()

    # -- state ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the seeded account; faults, revoked keys and the change log cleared."""
        self.faults.clear()
        self.employees = {}
        self.changes = {}
        self.revoked.clear()
        self.requests.clear()
        self.now = SEEDED_AT
        self._ids = itertools.count(101)
        for worker in demo_firm().workers:
            if worker.legal_entity_code in self.legal_entities:
                self.hire(employee_fields(worker), at=SEEDED_AT)

    def hire(self, fields: dict[str, str], *, at: dt.datetime | None = None) -> int:
        employee_id = next(self._ids)
        self.employees[employee_id] = {**fields, "id": str(employee_id)}
        self._log(employee_id, "Inserted", at)
        return employee_id

    def update(self, employee_id: int, **fields: str) -> None:
        """Change fields of an employee now (as HR does in the UI); logs an Updated change."""
        self.employees[employee_id].update(fields)
        self._log(employee_id, "Updated", None)

    def delete(self, employee_id: int) -> None:
        del self.employees[employee_id]
        self._log(employee_id, "Deleted", None)

    def _log(self, employee_id: int, action: str, at: dt.datetime | None) -> None:
        when = at or self.now
        self.changes[employee_id] = (action, when)
        if employee_id in self.employees:
            self.employees[employee_id]["lastChanged"] = _instant(when)

    def employee_id(self, employee_number: str) -> int:
        return next(i for i, e in self.employees.items() if e.get("employeeNumber") == employee_number)

    def count(self, record_type: str, external_id: str | None = None) -> int:
        """How many employees exist (record_type ``employee``), optionally with that employee number."""
        if record_type != "employee":
            return 0
        return sum(1 for e in self.employees.values() if external_id is None or e.get("employeeNumber") == external_id)

    # -- wire format ---------------------------------------------------------------------
    def _pick(self, employee: dict[str, str], fields: list[str]) -> dict[str, Any]:
        unknown = [f for f in fields if f != "id" and f not in _FIELDS]
        if unknown:
            raise BambooHRApiError(400, f"Invalid field(s): {', '.join(unknown)}")
        return {"id": employee["id"], **{f: employee.get(f) for f in fields if f != "id"}}

    def _report(self, body: Any, only_current: bool) -> dict[str, Any]:
        fields = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(fields, list) or not fields or not all(isinstance(f, str) for f in fields):
            raise BambooHRApiError(400, "A report needs a list of fields")
        rows = [self._pick(e, fields) for _, e in sorted(self.employees.items())
                if not only_current or e.get("status") == "Active"]
        return {"title": body.get("title") or "Custom report",
                "fields": [{"id": f, "type": "text", "name": f} for f in fields], "employees": rows}

    def _changed(self, since: str | None, change_type: str | None) -> dict[str, Any]:
        if not since:
            raise BambooHRApiError(400, "since is required")
        try:
            instant = dt.datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError as exc:
            raise BambooHRApiError(400, f"Invalid since: {since}") from exc
        if instant.tzinfo is None:
            raise BambooHRApiError(400, "since must be an ISO 8601 instant with a time zone")
        wanted = (change_type or "all").lower()
        hits = {str(i): {"id": str(i), "action": action, "lastChanged": _instant(when)}
                for i, (action, when) in self.changes.items()
                if when >= instant and wanted in ("all", action.lower())}
        latest = max((when for _, when in self.changes.values()), default=SEEDED_AT)
        return {"latest": _instant(latest), "employees": hits}

    def _json(self, body: Any, status: int = 200) -> Response[bytes]:
        return Response(_ENCODER.encode(body), status_code=status, media_type="application/json")

    async def _gate(self, request: Request[Any, Any, Any]) -> Response[bytes] | None:
        """Before every vendor route: company domain, Basic auth with the key as user, JSON asked, faults."""
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append({"method": request.method, "path": request.url.path, **headers})
        if request.path_params.get("company") != self.company_domain:
            return self._error(BambooHRApiError(404, "Company not found"))
        key = _basic_user(headers.get("authorization", ""))
        if not key or key in self.revoked:
            return self._error(BambooHRApiError(401, "Invalid API key", {"WWW-Authenticate": 'Basic realm="api"'}))
        if "application/json" not in headers.get("accept", ""):
            return Response(b'<?xml version="1.0"?><employees/>', status_code=200, media_type="text/xml")
        fault = self.faults.take(request.method, request.url.path)
        if fault is None:
            return None
        await self.faults.delay_for(fault)
        if fault.kind == "slow":
            return None
        retry = {"Retry-After": str(fault.retry_after)}
        if fault.kind in ("rate_limit", "concurrency_limit"):
            return self._error(BambooHRApiError(503, fault.message or "Rate limit exceeded", retry))
        if fault.kind == "business_error":
            return self._error(BambooHRApiError(403, fault.message or "API access is not allowed for this user"))
        if fault.kind == "timeout":
            return self._error(BambooHRApiError(504, fault.message or "Gateway timeout"))
        return self._error(BambooHRApiError(fault.status, fault.message or "Internal server error"))

    @staticmethod
    def _error(error: BambooHRApiError) -> Response[bytes]:
        return Response(b"", status_code=error.status, headers=error.headers)

    @property
    def app(self) -> Litestar:
        """The account as an ASGI app; built once, so state and faults stay shared with this object."""
        if self._app is None:
            self._app = self._build_app()
        return self._app

    def _build_app(self) -> Litestar:
        sim = self

        @get("/employees/directory", sync_to_thread=False)
        def directory() -> Response[bytes]:
            rows = [sim._pick(e, list(_DIRECTORY)) for _, e in sorted(sim.employees.items())
                    if e.get("status") == "Active"]
            return sim._json({"fields": [{"id": f, "type": "text", "name": f} for f in _DIRECTORY],
                              "employees": rows})

        @get("/employees/changed", sync_to_thread=False)
        def changed(since: FromQuery[str | None] = None,
                    change_type: Annotated[str | None, QueryParameter(name="type")] = None) -> Response[bytes]:
            return sim._json(sim._changed(since, change_type))

        @get("/employees/{employee_id:str}", sync_to_thread=False)
        def employee(employee_id: FromPath[str], fields: FromQuery[str | None] = None) -> Response[bytes]:
            record = sim.employees.get(int(employee_id)) if employee_id.isdigit() else None
            if record is None:
                raise BambooHRApiError(404, "Employee not found")
            wanted = [f.strip() for f in (fields or "firstName,lastName").split(",") if f.strip()]
            return sim._json(sim._pick(record, wanted))

        @post("/reports/custom")
        async def custom_report(request: Request[Any, Any, Any],
                                answer_format: Annotated[str, QueryParameter(name="format")] = "XML",
                                only_current: Annotated[str, QueryParameter(name="onlyCurrent")] = "true",
                                ) -> Response[bytes]:
            if answer_format.upper() != "JSON":
                return Response(b'<?xml version="1.0"?><report/>', status_code=200, media_type="text/xml")
            try:
                body = msgspec.json.decode(await request.body())
            except msgspec.DecodeError as exc:
                raise BambooHRApiError(400, f"Invalid JSON: {exc}") from exc
            return sim._json(sim._report(body, only_current.lower() == "true"))

        async def gate(request: Request[Any, Any, Any]) -> Response[bytes] | None:
            # A plain function: Litestar deep-copies hooks, and a copied bound method would copy the simulator.
            return await sim._gate(request)

        vendor = Router(path="/api/gateway.php/{company:str}/v1",
                        route_handlers=[directory, changed, employee, custom_report], before_request=gate,
                        include_in_schema=False)

        def vendor_error(_: Request[Any, Any, Any], exc: BambooHRApiError) -> Response[bytes]:
            return sim._error(exc)

        def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
            return sim._error(BambooHRApiError(exc.status_code, str(exc.detail)))

        return Litestar(route_handlers=[vendor, control_router(self)], openapi_config=None,
                        exception_handlers={BambooHRApiError: vendor_error, HTTPException: http_error})


def _basic_user(header: str) -> str | None:
    if not header.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, _, _ = decoded.partition(":")
    return user or None
