"""Workday REST (staffing v6) wire protocol: auth, `limit`/`offset` paging, the error envelope.

Error tree raised here (all from `system_apis._internal.http`)::

    VendorError
    ├── VendorRateLimited    429 — Workday throttles REST calls with 429, and answers a
    │                        tenant's concurrent-request ceiling the same way
    ├── VendorUnavailable    5xx, timeouts, connection failures
    ├── CircuitOpenError     too many transient failures in a row
    └── VendorRejected       400/401/403/404; `code` = the envelope's `code`
                             (e.g. "invalid_limit", "not_found")

Collections answer `{"total": n, "data": [...]}`; the page is chosen by `offset` and
`limit` (default 20, at most 100 — Workday refuses more rather than capping it).
Errors answer `{"error": message, "code": code, "errors": [{"error", "field"}]}`.
Everything psconnect does in Workday is a read, so every call is safe to retry.
Docs: https://community.workday.com/sites/default/files/file-hosting/restapi/index.html
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

import httpx
import msgspec

from foundation.retry import RetryPolicy
from system_apis._internal.http import Sleep, VendorError, VendorHttp, VendorRejected, error_body, transient_error

__all__ = ["BASE_URL", "DEFAULT_TENANT", "MAX_LIMIT", "VENDOR", "WorkdayClient", "WorkdayPage", "classify",
           "is_wid"]

VENDOR: Final = "workday"
BASE_URL: Final = "https://wd2-impl-services1.workday.com"
DEFAULT_TENANT: Final = "meridian"
MAX_LIMIT: Final = 100

Record = dict[str, Any]


class WorkdayPage(msgspec.Struct, kw_only=True):
    """One page of a collection and where it sits in the whole."""

    data: list[Record]
    total: int
    offset: int

    @property
    def next_offset(self) -> int | None:
        following = self.offset + len(self.data)
        return following if self.data and following < self.total else None


def is_wid(value: str) -> bool:
    """A Workday ID is 32 lowercase hex digits; anything else is a reference id such as an employee id."""
    return len(value) == 32 and all(c in "0123456789abcdef" for c in value)


def classify(response: httpx.Response) -> VendorError | None:
    """Workday's `{error, code, errors[]}` envelope to the VendorError tree."""
    status = response.status_code
    if status < 400:
        return None
    body = error_body(response)
    envelope = body if isinstance(body, dict) else {}
    message = str(envelope.get("error") or f"HTTP {status}")
    transient = transient_error(VENDOR, response, message, body)
    if transient is not None:
        return transient
    details = envelope.get("errors")
    first = details[0] if isinstance(details, list) and details and isinstance(details[0], dict) else {}
    if first.get("field"):
        message = f"{first['field']}: {message}"
    code = envelope.get("code")
    return VendorRejected(VENDOR, message, status=status, code=str(code) if code else None, body=body)


class WorkdayClient:
    """Workday staffing v6 over `VendorHttp`; requests go wherever `http`'s transport points."""

    def __init__(self, http: httpx.AsyncClient, *, token: str = "sim-token", retry: RetryPolicy | None = None,
                 sleep: Sleep = asyncio.sleep, tenant: str = DEFAULT_TENANT) -> None:
        self.http = VendorHttp(VENDOR, http, classify=classify, retry=retry, sleep=sleep)
        self.tenant = tenant
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    @property
    def prefix(self) -> str:
        return f"/ccx/api/staffing/v6/{self.tenant}"

    async def _get(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        response = await self.http.request("GET", f"{self.prefix}/{path}", params=params, headers=self._headers)
        return response.json()

    async def _page(self, path: str, *, offset: int, limit: int, params: Mapping[str, str | int] | None = None
                    ) -> WorkdayPage:
        query: dict[str, str | int] = {**(params or {}), "offset": max(0, offset),
                                       "limit": max(1, min(limit, MAX_LIMIT))}
        body = await self._get(path, query)
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise VendorRejected(VENDOR, f"GET {path} answered no data list", status=502, body=body)
        return WorkdayPage(data=body["data"], total=int(body.get("total") or 0), offset=offset)

    async def _iterate(self, path: str, *, limit: int = MAX_LIMIT,
                       params: Mapping[str, str | int] | None = None) -> AsyncIterator[Record]:
        offset: int | None = 0
        while offset is not None:
            page = await self._page(path, offset=offset, limit=limit, params=params)
            for record in page.data:
                yield record
            offset = page.next_offset

    # --- workers --------------------------------------------------------------------------------------

    async def list_workers(self, *, offset: int = 0, limit: int = 20, search: str | None = None) -> WorkdayPage:
        """One page of workers.

        Docs: https://community.workday.com/sites/default/files/file-hosting/restapi/index.html#staffing/v6/get-/workers
        """
        return await self._page("workers", offset=offset, limit=limit, params={"search": search} if search else None)

    async def iter_workers(self, *, limit: int = MAX_LIMIT) -> AsyncIterator[Record]:
        """Every worker, page by page (`offset` advanced by what each page held)."""
        async for record in self._iterate("workers", limit=limit):
            yield record

    async def get_worker(self, worker_wid: str) -> Record:
        """One worker by Workday ID.

        Docs: https://community.workday.com/sites/default/files/file-hosting/restapi/index.html#staffing/v6/get-/workers/-ID-
        """
        body: Record = await self._get(f"workers/{worker_wid}")
        return body

    async def find_worker(self, employee_id: str) -> Record | None:
        """The worker with this employee id: `search` matches names and ids, so the hit is checked exactly.

        Docs: https://community.workday.com/sites/default/files/file-hosting/restapi/index.html#staffing/v6/get-/workers
        """
        async for record in self._iterate("workers", params={"search": employee_id}):
            if record.get("workerId") == employee_id:
                return record
        return None

    # --- organizations ------------------------------------------------------------------------------

    async def list_cost_centers(self, *, offset: int = 0, limit: int = 20) -> WorkdayPage:
        """One page of cost center organizations.

        Docs: https://community.workday.com/sites/default/files/file-hosting/restapi/index.html#staffing/v6/get-/organizations
        """
        return await self._page("organizations", offset=offset, limit=limit, params={"type": "Cost_Center"})

    async def list_supervisory_organizations(self, *, offset: int = 0, limit: int = 20) -> WorkdayPage:
        """One page of supervisory organizations (practices per company).

        Docs: https://community.workday.com/sites/default/files/file-hosting/restapi/index.html#staffing/v6/get-/supervisoryOrganizations
        """
        return await self._page("supervisoryOrganizations", offset=offset, limit=limit)

    async def check(self) -> bool:
        """Connectivity probe: the token is accepted and the tenant answers a one-worker page."""
        try:
            await self.list_workers(limit=1)
        except VendorError:
            return False
        return True
