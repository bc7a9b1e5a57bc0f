"""BambooHR REST API v1 wire protocol: API key as Basic user, JSON on request, error header, rate limiting.

BambooHR publishes no OpenAPI document; this follows its documentation (and /work/shared/VENDOR-NOTES.md):

- Base ``https://api.bamboohr.com/api/gateway.php/{companyDomain}/v1/`` — the company domain is the
  account's subdomain (`Connection.tenant`). https://documentation.bamboohr.com/docs/getting-started
- Auth: HTTP Basic with the API key as the user name and any password ("x").
  https://documentation.bamboohr.com/docs/getting-started#authentication
- JSON only when asked: without ``Accept: application/json`` BambooHR answers XML, so every request says so.
- Errors: the status code carries the meaning and the reason comes in the ``X-BambooHR-Error-Message``
  header (the body is often empty). https://documentation.bamboohr.com/docs/api-details — "Errors"
- Rate limiting: BambooHR publishes no number; a throttled call answers 503 with ``Retry-After`` (newer
  endpoints 429). Both are `VendorRateLimited` honouring ``Retry-After``; a 503 without it is an outage.
  https://documentation.bamboohr.com/docs/api-details — "Rate limiting"
- Endpoints used: ``GET /employees/directory``
  (https://documentation.bamboohr.com/reference/get-employees-directory), ``GET /employees/{id}?fields=``
  (https://documentation.bamboohr.com/reference/get-employee), ``GET /employees/changed?since=``
  (https://documentation.bamboohr.com/reference/get-changed-employee-ids; answers ``{latest, employees:
  {id: {id, action, lastChanged}}}``) and ``POST /reports/custom?format=JSON``
  (https://documentation.bamboohr.com/reference/request-custom-report-1; answers ``{title, fields,
  employees: [...]}``). None of them pages: the directory and a report come whole.

Error tree raised here (all from `system_apis._internal.http`)::

    VendorError
    ├── VendorRateLimited    429, or 503 with Retry-After
    ├── VendorUnavailable    other 5xx, timeouts, connection failures
    ├── CircuitOpenError     too many transient failures in a row
    └── VendorRejected       400/401/403/404; `code` = the status's name (``invalid_api_key`` for 401)

An API key does not expire (it is revoked by hand); a 401 is refused, never retried. Every call is a
read (the custom report is a POST, but reads only), so every call is sent as idempotent.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from foundation.retry import RetryPolicy, parse_retry_after
from system_apis._internal.http import (
    Sleep,
    VendorError,
    VendorHttp,
    VendorRateLimited,
    VendorRejected,
    VendorUnavailable,
    error_body,
)
from system_apis._internal.instants import utc_text

__all__ = [
    "BASE_URL",
    "VENDOR",
    "BambooHRClient",
    "ChangedEmployee",
    "ChangedEmployees",
    "Report",
    "api_path",
    "classify",
]

VENDOR: Final = "bamboohr"
BASE_URL: Final = "https://api.bamboohr.com"
T = TypeVar("T")

_CODES: Final = {400: "bad_request", 401: "invalid_api_key", 403: "forbidden", 404: "not_found",
                 406: "not_acceptable", 409: "conflict"}


def api_path(company_domain: str) -> str:
    return f"/api/gateway.php/{quote(company_domain, safe='')}/v1"


class ReportField(msgspec.Struct, frozen=True):
    id: str
    type: str | None = None
    name: str | None = None


class Report(msgspec.Struct, kw_only=True):
    """A custom report's (or the directory's) answer: field metadata and one record per employee."""

    fields: list[ReportField]
    employees: list[dict[str, Any]]
    title: str | None = None


class ChangedEmployee(msgspec.Struct, kw_only=True, rename="camel"):
    id: str
    action: str
    last_changed: str


class ChangedEmployees(msgspec.Struct, kw_only=True):
    latest: str | None = None
    employees: dict[str, ChangedEmployee] = msgspec.field(default_factory=dict)


def classify(response: httpx.Response) -> VendorError | None:
    status = response.status_code
    if status < 400:
        return None
    body = error_body(response)
    message = response.headers.get("X-BambooHR-Error-Message") or f"HTTP {status}"
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status == 429 or (status == 503 and retry_after is not None):
        return VendorRateLimited(VENDOR, f"rate limited: {message}", retry_after=retry_after, status=status,
                                 body=body)
    if status >= 500:
        return VendorUnavailable(VENDOR, f"server error {status}: {message}", status=status, body=body)
    return VendorRejected(VENDOR, message, status=status, code=_CODES.get(status, f"http_{status}"), body=body)


class BambooHRClient:
    """BambooHR v1 over `VendorHttp`.

    Args:
        http: client reaching BambooHR (or its simulator); relative paths resolve against its base URL.
        api_key: the API key, sent as the Basic user name.
        company_domain: the account's subdomain (``meridian-ca`` of meridian-ca.bamboohr.com).
    """

    def __init__(self, http: httpx.AsyncClient, *, api_key: str = "sim-token", company_domain: str = "meridian-ca",
                 retry: RetryPolicy | None = None, sleep: Sleep = asyncio.sleep) -> None:
        self.http = VendorHttp(VENDOR, http, classify=classify, retry=retry, sleep=sleep)
        basic = base64.b64encode(f"{api_key}:x".encode()).decode()
        self._headers = {"Authorization": f"Basic {basic}", "Accept": "application/json"}
        self._root = ("" if http.base_url.host else BASE_URL) + api_path(company_domain)

    async def _send(self, method: str, path: str, kind: type[T], *, params: Mapping[str, str] | None = None,
                    body: Any = None) -> T:
        response = await self.http.request(method, self._root + path, params=params, json=body,
                                           headers=self._headers, idempotent=True)
        try:
            return msgspec.json.decode(response.content, type=kind)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise VendorRejected(VENDOR, f"unreadable {getattr(kind, '__name__', 'answer')}: {exc}", status=502,
                                 code="unreadable_response") from exc

    async def directory(self) -> Report:
        """Docs: https://documentation.bamboohr.com/reference/get-employees-directory"""
        return await self._send("GET", "/employees/directory", Report)

    async def employee(self, employee_id: str, fields: Sequence[str]) -> dict[str, Any]:
        """Docs: https://documentation.bamboohr.com/reference/get-employee"""
        return await self._send("GET", f"/employees/{quote(employee_id, safe='')}", dict[str, Any],
                                params={"fields": ",".join(fields), "onlyCurrent": "false"})

    async def changed(self, since: dt.datetime, change_type: str | None = None) -> ChangedEmployees:
        """Employees inserted, updated or deleted at or after `since`.

        Docs: https://documentation.bamboohr.com/reference/get-changed-employee-ids
        """
        params = {"since": f"{utc_text(since)}Z"}
        if change_type:
            params["type"] = change_type
        return await self._send("GET", "/employees/changed", ChangedEmployees, params=params)

    async def custom_report(self, fields: Sequence[str], *, title: str = "psconnect",
                            only_current: bool = False) -> Report:
        """A report of `fields` for every employee (former ones too unless `only_current`).

        Docs: https://documentation.bamboohr.com/reference/request-custom-report-1
        """
        return await self._send("POST", "/reports/custom", Report,
                                params={"format": "JSON", "onlyCurrent": "true" if only_current else "false"},
                                body={"title": title, "fields": list(fields)})

    async def check(self) -> bool:
        """Connectivity probe: the key is accepted and the company domain exists."""
        try:
            await self.directory()
        except VendorError:
            return False
        return True
