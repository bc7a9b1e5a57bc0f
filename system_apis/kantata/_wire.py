"""Kantata OX API v1 wire protocol (https://developer.kantata.com/): auth, paging, errors, filters.

Error tree raised here (all from `system_apis._internal.http`)::

    VendorError
    ├── VendorRateLimited    429 — request rate *and* concurrency: Kantata has no separate
    │                        concurrency error, both answer 429 with Retry-After
    ├── VendorUnavailable    5xx, timeouts, connection failures
    ├── CircuitOpenError     too many transient failures in a row
    └── VendorRejected       401/403/404/422; `code` = the first error's `type`
                             ("validation", "system", ...) from `{"errors": [...]}`

Kantata answers collections *indexed by id* under the collection key, with their
order in `results: [{key, id}]`, included associations under their own top-level
keys, and paging in `meta` (`page`/`per_page`, at most 200 a page)
(https://developer.kantata.com/#section/Introduction/Pagination).

Kantata has no idempotency header; idempotent writes rest on external references
(see `api.py`). POSTs are therefore never retried after a 5xx/timeout here — the
caller's re-run of the whole upsert is what is safe.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

import httpx
import msgspec

from foundation.retry import RetryPolicy
from system_apis._internal.http import Sleep, VendorError, VendorHttp, VendorRejected, error_body, transient_error

__all__ = ["API_PREFIX", "BASE_URL", "MAX_PER_PAGE", "VENDOR", "Filter", "KantataPage", "KantataWire", "Record",
           "classify", "filter_params"]

VENDOR: Final = "kantata"
BASE_URL: Final = "https://api.mavenlink.com"
API_PREFIX: Final = "/api/v1"
MAX_PER_PAGE: Final = 200

Record = dict[str, Any]
Filter = str | int | bool | list[str] | None


class KantataPage(msgspec.Struct, kw_only=True):
    """One page of a collection: records in `results` order plus included associations."""

    records: list[Record]
    included: dict[str, dict[str, Record]]
    page_number: int
    page_count: int
    count: int

    @property
    def has_next(self) -> bool:
        return self.page_number < self.page_count

    def associated(self, record: Record, key: str, ids_field: str) -> list[Record]:
        """The included `key` records a record points to through `ids_field` (e.g. external_reference_ids)."""
        pool = self.included.get(key, {})
        return [pool[str(i)] for i in record.get(ids_field) or [] if str(i) in pool]


def classify(response: httpx.Response) -> VendorError | None:
    """Kantata's `{"errors": [{type, message, field?}]}` envelope to the VendorError tree."""
    status = response.status_code
    if status < 400:
        return None
    body = error_body(response)
    errors = body.get("errors") if isinstance(body, dict) else None
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    message = "; ".join(str(e.get("message")) for e in errors if isinstance(e, dict)) if errors else f"HTTP {status}"
    transient = transient_error(VENDOR, response, message, body)
    if transient is not None:
        return transient
    code = str(first.get("type")) if first.get("type") else None
    if first.get("field"):
        message = f"{first['field']}: {message}"
    return VendorRejected(VENDOR, message, status=status, code=code, body=body)


def filter_params(filters: Mapping[str, Filter]) -> dict[str, str | int]:
    """Query parameters for Kantata filters.

    Kantata applies a boolean filter whenever the parameter is present, whatever its
    value: `archived=false` selects the archived records exactly like `archived=true`
    (https://developer.kantata.com/#section/Introduction/Filters). So a False filter is
    never sent — leaving it out is how "not archived" is asked for.
    """
    params: dict[str, str | int] = {}
    for name, value in filters.items():
        if value is None or value is False:
            continue
        if value is True:
            params[name] = "true"
        elif isinstance(value, list):
            params[name] = ",".join(value)
        else:
            params[name] = value
    return params


class KantataWire:
    """Transport half of the client: auth header, the indexed-by-id envelope, paging. Endpoints live in client.py."""

    def __init__(self, http: httpx.AsyncClient, *, token: str = "sim-token", retry: RetryPolicy | None = None,
                 sleep: Sleep = asyncio.sleep) -> None:
        self.http = VendorHttp(VENDOR, http, classify=classify, retry=retry, sleep=sleep)
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    async def _call(self, method: str, path: str, *, params: Mapping[str, str | int] | None = None,
                     json: Any = None) -> Any:
        response = await self.http.request(method, f"{API_PREFIX}/{path}", params=params, json=json,
                                           headers=self._headers)
        return response.json()

    @staticmethod
    def _page(body: dict[str, Any], key: str) -> KantataPage:
        pool: dict[str, Record] = body.get(key) or {}
        records = [pool[str(r["id"])] for r in body.get("results") or []
                   if r.get("key") == key and str(r.get("id")) in pool]
        meta = body.get("meta") or {}
        included = {k: v for k, v in body.items()
                    if k not in (key, "results", "meta", "count") and isinstance(v, dict)}
        return KantataPage(records=records, included=included, page_number=int(meta.get("page_number") or 1),
                           page_count=int(meta.get("page_count") or 1), count=int(body.get("count") or 0))

    async def list_page(self, key: str, *, page: int = 1, per_page: int = 20,
                        filters: Mapping[str, Filter] | None = None) -> KantataPage:
        """One page of `/api/v1/{key}.json`; `per_page` is capped at Kantata's 200."""
        params = {**filter_params(filters or {}), "page": page, "per_page": min(per_page, MAX_PER_PAGE)}
        return self._page(await self._call("GET", f"{key}.json", params=params), key)

    async def iterate(self, key: str, *, per_page: int = MAX_PER_PAGE,
                      filters: Mapping[str, Filter] | None = None) -> AsyncIterator[KantataPage]:
        """Every page of a collection, following `meta.page_count`."""
        page = 1
        while True:
            current = await self.list_page(key, page=page, per_page=per_page, filters=filters)
            yield current
            if not current.has_next:
                return
            page += 1

    async def _one(self, method: str, key: str, path: str, *, params: Mapping[str, str | int] | None = None,
                   json: Any = None) -> KantataPage:
        page = self._page(await self._call(method, path, params=params, json=json), key)
        if not page.records:
            raise VendorRejected(VENDOR, f"{method} {path} answered no {key} record", status=502)
        return page
