"""Xero's wire protocol: the Accounting API (``/api.xro/2.0``) and the Projects API (``/projects.xro/2.0``).

Spec: ``spec/xero-accounting.openapi.yaml`` and ``spec/xero-projects.openapi.yaml`` (XeroAPI/Xero-OpenAPI, MIT);
the tests validate every request sent here and every simulator answer against them.

- Every call carries ``Authorization: Bearer`` (see `_tokens`: 30-minute access tokens, rotating refresh
  tokens persisted before use) and ``xero-tenant-id`` (the organisation of this connection).
- Every write carries an ``Idempotency-Key`` (at most 128 characters) derived from psconnect's own stable
  key, so a retried write is applied once
  (https://developer.xero.com/documentation/guides/idempotent-requests/idempotency/); writes are therefore
  retried like reads.
- Limits (https://developer.xero.com/documentation/guides/oauth2/limits/): 60 calls a minute per tenant,
  5,000 a day per tenant; beyond them 429 with ``Retry-After`` and ``X-Rate-Limit-Problem`` (minute, day,
  appminute). The client paces itself to the minute limit (`MINUTE_LIMIT`, one pacer per connection =
  per tenant, with the consumers' fair shares) and counts its calls against the day cap (`DAY_LIMIT`): a
  call past it is refused here with the time until the oldest call leaves the 24-hour window, unsent.
- Accounting errors: ``{ErrorNumber, Type, Message, Elements[].ValidationErrors[].Message}`` (400); Projects
  errors: ``{message, modelState}``; 401 ``{Title: Unauthorized, Detail: AuthenticationUnsuccessful}``;
  a 404 of the Accounting API may have no JSON body
  (https://developer.xero.com/documentation/api/accounting/responsecodes).
- Paging: Accounting lists by ``page`` (100 records a page; a short page is the last); Projects lists by
  ``page``/``pageSize`` (at most 500) with ``pagination.pageCount``.
- Changes since an instant: the ``If-Modified-Since`` request header on Accounting lists, compared with each
  record's ``UpdatedDateUTC`` (`if_modified_since`;
  https://developer.xero.com/documentation/api/accounting/requests-and-responses).

Error tree raised (from `system_apis._internal.http`)::

    VendorError
    ├── VendorRateLimited   429 (minute or day limit), retry_after from Retry-After
    ├── VendorUnavailable   5xx, timeouts, connection failures (incl. the token endpoint)
    ├── CircuitOpenError    after repeated transient failures
    └── VendorRejected      4xx; ``code`` = the Accounting ``Type`` (ValidationException...), ``invalid_grant``
                            from the token endpoint, or the status's name
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal
from typing import Any, Final

import httpx
import msgspec

from foundation.retry import RetryPolicy
from system_apis._internal.http import (
    Sleep,
    VendorError,
    VendorHttp,
    VendorRateLimited,
    VendorRejected,
    error_body,
    transient_error,
)
from system_apis._internal.instants import utc_text
from system_apis.pacing import Pacer, Shares, VendorBudget
from system_apis.xero._tokens import TOKEN_URL, MemoryTokenStore, RefreshTokenStore, XeroTokens

__all__ = ["ACCOUNTING", "BASE_URL", "DAY_LIMIT", "MINUTE_LIMIT", "PROJECTS", "TOKEN_URL", "VENDOR", "XeroClient",
           "classify", "decode", "encode", "idempotency_key", "if_modified_since"]

VENDOR: Final = "xero"
BASE_URL: Final = "https://api.xero.com"
ACCOUNTING: Final = "/api.xro/2.0"
PROJECTS: Final = "/projects.xro/2.0"
ACCOUNTING_PAGE: Final = 100
PROJECTS_PAGE: Final = 500
MINUTE_LIMIT: Final = VendorBudget(60, 60.0)
"""Xero's per-tenant minute limit; one client serves one tenant, so its pacer is the tenant's."""
DAY_LIMIT: Final = VendorBudget(5000, 86400.0)
"""Xero's per-tenant day cap, counted by this client as a whole (no per-consumer shares)."""
_WHOLE: Final = Shares(consumer=1.0, service=1.0, reserved=0.0)

_encoder = msgspec.json.Encoder(decimal_format="number")
_decoder = msgspec.json.Decoder(float_hook=Decimal)
_CODES: Final = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 409: "conflict",
                 412: "precondition_failed"}


def encode(body: Any) -> bytes:
    """JSON with ``Decimal`` as numbers: Xero's amounts and quantities are numbers."""
    return _encoder.encode(body)


def decode(content: bytes) -> Any:
    """JSON with every non-integer number as ``Decimal`` (money never passes through float)."""
    return _decoder.decode(content)


def idempotency_key(*parts: str) -> str:
    """A stable key of at most 128 characters: the same write, retried anywhere, sends the same key."""
    joined = ":".join(parts)
    return joined if len(joined) <= 128 else f"psc-{hashlib.sha256(joined.encode()).hexdigest()}"


def if_modified_since(instant: dt.datetime) -> str:
    """The ``If-Modified-Since`` value for "changed at or after `instant`": UTC ``yyyy-mm-ddThh:mm:ss`` as Xero
    documents it, rounded down to the second so nothing changed within that second is missed (the caller keeps
    only what changed at or after `instant` itself). A naive instant is taken as UTC."""
    return utc_text(instant)


def _message(body: object, status: int) -> tuple[str | None, str]:
    if not isinstance(body, dict):
        return None, (str(body)[:200] if body else f"HTTP {status}")
    kind = body.get("Type") if isinstance(body.get("Type"), str) else None
    messages: list[str] = []
    for element in body.get("Elements") or []:
        if isinstance(element, dict):
            messages += [str(e.get("Message")) for e in element.get("ValidationErrors") or [] if isinstance(e, dict)]
    model_state = body.get("modelState")
    if isinstance(model_state, dict):
        messages += [str(m) for v in model_state.values() for m in (v if isinstance(v, list) else [v])]
    text = "; ".join(messages) or str(body.get("Message") or body.get("message") or body.get("Detail")
                                      or body.get("Title") or f"HTTP {status}")
    return kind, text


def classify(response: httpx.Response) -> VendorError | None:
    """Xero's error bodies (Accounting, Projects, auth) into the VendorError tree."""
    status = response.status_code
    if status < 400:
        return None
    body = error_body(response)
    kind, text = _message(body, status)
    transient = transient_error(VENDOR, response, text, body)
    if transient is not None:
        return transient
    return VendorRejected(VENDOR, f"{status} {kind or ''}: {text}", status=status,
                          code=kind or _CODES.get(status, f"http_{status}"), body=body)


class XeroClient:
    """Both Xero APIs for one connection (one tenant) over `VendorHttp`.

    Args:
        http: where requests go (its base URL, or `BASE_URL`); the token endpoint is reached through it too.
        tenant: the ``xero-tenant-id`` of this connection's organisation.
        credentials: ``client_id``, ``client_secret`` and the first ``refresh_token`` (used only while the
            store holds none).
        store: where rotated refresh tokens are persisted (`SqlTokenStore` in production).
        connection: the store's key for this connection.
    """

    def __init__(self, http: httpx.AsyncClient, *, tenant: str, credentials: Mapping[str, str],
                 store: RefreshTokenStore | None = None, connection: str = "xero",
                 retry: RetryPolicy | None = None, sleep: Sleep = asyncio.sleep,
                 budget: VendorBudget | None = MINUTE_LIMIT, day_budget: VendorBudget | None = DAY_LIMIT,
                 token_url: str = TOKEN_URL) -> None:
        self.http = VendorHttp(VENDOR, http, classify=classify, retry=retry, sleep=sleep,
                               pacer=Pacer(budget) if budget is not None else None)
        self.tenant = tenant
        self.tokens = XeroTokens(http, store or MemoryTokenStore(), connection, credentials, token_url=token_url,
                                 sleep=sleep)
        self._base = "" if str(http.base_url) else BASE_URL
        self._day = Pacer(day_budget, _WHOLE) if day_budget is not None else None

    async def request(self, method: str, path: str, *, params: Mapping[str, str | int] | None = None,
                      json: Any = None, key: str | None = None, headers: Mapping[str, str] | None = None) -> Any:
        """One call; a 401 refreshes the access token once and repeats the call. Returns the decoded body.

        ``headers``: request headers of the operation (``If-Modified-Since``) beside the ones every call carries.
        """
        body = msgspec.Raw(encode(json)) if json is not None else None
        if self._day is not None:
            wait, _ = self._day.take(None)
            if wait > 0:
                raise VendorRateLimited(VENDOR, f"the day's {self._day.budget.requests} calls to this tenant are "
                                        "spent", retry_after=wait, status=None)
        for attempt in (1, 2):
            token = await self.tokens.access_token()
            sent = {**(headers or {}), "Authorization": f"Bearer {token}", "xero-tenant-id": self.tenant,
                    "Accept": "application/json"}
            if key is not None:
                sent["Idempotency-Key"] = key
            try:
                response = await self.http.request(method, self._base + path, params=params, json=body,
                                                   headers=sent, idempotent=True if key is not None else None)
            except VendorRejected as exc:
                if exc.status == 401 and attempt == 1:
                    await self.tokens.refresh(token)
                    continue
                raise
            return decode(response.content) if response.content else None
        raise AssertionError("unreachable")

    async def get(self, path: str, params: Mapping[str, str | int] | None = None, *,
                  headers: Mapping[str, str] | None = None) -> Any:
        return await self.request("GET", path, params=params, headers=headers)

    async def find(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        """GET, or None on 404."""
        try:
            return await self.get(path, params)
        except VendorRejected as exc:
            if exc.status == 404:
                return None
            raise

    async def accounting_pages(self, collection: str, params: Mapping[str, str | int] | None = None, *,
                               headers: Mapping[str, str] | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        """Every page of an Accounting collection (``page`` = 1, 2, ... until a short page)."""
        page = 1
        while True:
            body = await self.get(f"{ACCOUNTING}/{collection}", {**(params or {}), "page": page}, headers=headers)
            items: list[dict[str, Any]] = list(body.get(collection) or [])
            yield items
            if len(items) < ACCOUNTING_PAGE:
                return
            page += 1

    async def projects_pages(self, path: str, params: Mapping[str, str | int] | None = None,
                             page_size: int = PROJECTS_PAGE) -> AsyncIterator[list[dict[str, Any]]]:
        """Every page of a Projects collection, following ``pagination.pageCount``."""
        page = 1
        while True:
            body = await self.get(f"{PROJECTS}{path}", {**(params or {}), "page": page, "pageSize": page_size})
            yield list(body.get("items") or [])
            if page >= int((body.get("pagination") or {}).get("pageCount") or 1):
                return
            page += 1
