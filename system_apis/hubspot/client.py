"""HubSpot CRM v3 wire protocol: private-app token, cursor paging, batch upsert, error body, rate-limit headers.

Error tree raised here (all from `system_apis._internal.http`)::

    VendorError
    ├── VendorRateLimited    429 (`errorType: RATE_LIMIT`, `policyName` TEN_SECONDLY_ROLLING / DAILY), or our
    │                        own hold after `X-HubSpot-RateLimit-Remaining: 0`
    ├── VendorUnavailable    5xx, timeouts, connection failures
    ├── CircuitOpenError     too many transient failures in a row
    └── VendorRejected       other 4xx; `code` = the body's `category` (VALIDATION_ERROR, OBJECT_NOT_FOUND,
                             INVALID_AUTHENTICATION, ...), the message carries `correlationId` for support

HubSpot's error body is ``{status, message, correlationId, category, subCategory, errors[], context, links}``
(https://developers.hubspot.com/docs/api/overview — "Error handling").

Auth is a private app's access token as ``Authorization: Bearer`` (`Connection.credentials["token"]`).
Private-app tokens do not expire (they are rotated by hand in HubSpot), so there is no refresh: a 401 is a
`VendorRejected` (`INVALID_AUTHENTICATION`) answered as a problem, never retried.
https://developers.hubspot.com/docs/api/private-apps

Rate limits: private apps get 100 requests per rolling 10 s (190 on Professional/Enterprise) and a daily
cap; every answer carries ``X-HubSpot-RateLimit-Max``, ``-Remaining``, ``-Interval-Milliseconds``,
``-Daily`` and ``-Daily-Remaining``. The client paces itself to the published 100/10 s (`RATE_LIMIT`) and
also honours the headers: when HubSpot says none remain, no request is sent until the interval has passed
(or, for the daily cap, until the next UTC midnight — HubSpot resets it at midnight in the account's time
zone, so this errs late, never early). HubSpot's 429 carries no ``Retry-After``; its interval is used.
https://developers.hubspot.com/docs/api/usage-details

Lists page by cursor: request ``after``, answer ``paging.next.after`` (absent on the last page); at most 100
records a page. Writes are ``POST /crm/v3/objects/{type}/batch/upsert`` keyed by a unique-value property
(``idProperty``), safe to repeat, so they are sent as idempotent and retried on 5xx.
https://developers.hubspot.com/docs/api/crm/understanding-the-crm — "Create or update (upsert) records".
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
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
from system_apis.pacing import Pacer, VendorBudget

__all__ = [
    "BASE_URL",
    "MAX_LIMIT",
    "RATE_LIMIT",
    "VENDOR",
    "HubSpotClient",
    "HubSpotObject",
    "ObjectPage",
    "RateLimitState",
    "UpsertInput",
    "classify",
]

T = TypeVar("T")

VENDOR: Final = "hubspot"
BASE_URL: Final = "https://api.hubapi.com"
MAX_LIMIT: Final = 100
RATE_LIMIT: Final = VendorBudget(100, 10.0)
"""A private app's published burst limit (Free/Starter; higher tiers allow 190): the client paces to it."""


class AssociatedId(msgspec.Struct, frozen=True):
    id: str
    type: str


class AssociationPage(msgspec.Struct, frozen=True):
    results: list[AssociatedId]


class HubSpotObject(msgspec.Struct, kw_only=True, rename="camel"):
    """`SimplePublicObject(WithAssociations)`: property values are strings (or null when unset)."""

    id: str
    properties: dict[str, str | None]
    created_at: str
    updated_at: str
    archived: bool = False
    associations: dict[str, AssociationPage] | None = None
    new: bool | None = None
    """Set on batch-upsert results: whether this call created the record."""

    def associated(self, object_type: str) -> list[str]:
        page = (self.associations or {}).get(object_type)
        return [a.id for a in page.results] if page else []


class NextPage(msgspec.Struct, frozen=True):
    after: str
    link: str | None = None


class Paging(msgspec.Struct, frozen=True):
    next: NextPage | None = None


class ObjectPage(msgspec.Struct, kw_only=True):
    results: list[HubSpotObject]
    paging: Paging | None = None

    @property
    def next_after(self) -> str | None:
        return self.paging.next.after if self.paging and self.paging.next else None


class BatchResult(msgspec.Struct, kw_only=True, rename="camel"):
    status: str
    results: list[HubSpotObject]
    num_errors: int = 0
    errors: list[dict[str, Any]] = msgspec.field(default_factory=list)


class UpsertInput(msgspec.Struct, frozen=True, rename="camel"):
    """One input of a batch upsert: `id` is the value of the unique property `idProperty`."""

    id: str
    id_property: str
    properties: dict[str, str]


class RateLimitState(msgspec.Struct, kw_only=True):
    """The last `X-HubSpot-RateLimit-*` values seen."""

    max: int | None = None
    remaining: int | None = None
    interval_ms: int | None = None
    daily: int | None = None
    daily_remaining: int | None = None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def classify(response: httpx.Response) -> VendorError | None:
    """HubSpot's error body to the shared tree (used by `HubSpotClient`, which also reads the headers)."""
    status = response.status_code
    if status < 400:
        return None
    body = error_body(response)
    fields = body if isinstance(body, dict) else {}
    category = fields.get("category") or fields.get("errorType")
    message = str(fields.get("message") or f"HTTP {status}")
    if fields.get("correlationId"):
        message += f" (correlationId {fields['correlationId']})"
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status == 429:
        if retry_after is None:
            interval = _int(response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds"))
            retry_after = interval / 1000 if interval else None
        return VendorRateLimited(VENDOR, f"{category or 'RATE_LIMIT'}: {message}", retry_after=retry_after,
                                 body=body)
    if status >= 500:
        error = VendorUnavailable(VENDOR, f"server error {status}: {message}", status=status, body=body)
        error.retry_after = retry_after
        return error
    return VendorRejected(VENDOR, message, status=status, code=str(category) if category else None, body=body)


class HubSpotClient:
    """HubSpot CRM v3 over `VendorHttp`; requests go wherever `http`'s transport points.

    Args:
        http: client reaching HubSpot (or its simulator); relative paths resolve against its base URL.
        token: the private app's access token.
        budget: the pacing budget (None: unpaced, for tests of the vendor's own 429).
        clock: monotonic clock for the header-driven hold; tests move it by hand.
    """

    def __init__(self, http: httpx.AsyncClient, *, token: str = "sim-token", retry: RetryPolicy | None = None,
                 sleep: Sleep = asyncio.sleep, budget: VendorBudget | None = RATE_LIMIT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.http = VendorHttp(VENDOR, http, classify=self._classify, retry=retry, sleep=sleep,
                               pacer=Pacer(budget, clock=clock) if budget is not None else None)
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._root = "" if http.base_url.host else BASE_URL
        self._sleep = sleep
        self._clock = clock
        self._hold_until = 0.0
        self.rate_limit = RateLimitState()

    def _classify(self, response: httpx.Response) -> VendorError | None:
        # Every answer passes here, so this is where the rate-limit headers are read.
        headers = response.headers
        state = RateLimitState(max=_int(headers.get("X-HubSpot-RateLimit-Max")),
                               remaining=_int(headers.get("X-HubSpot-RateLimit-Remaining")),
                               interval_ms=_int(headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")),
                               daily=_int(headers.get("X-HubSpot-RateLimit-Daily")),
                               daily_remaining=_int(headers.get("X-HubSpot-RateLimit-Daily-Remaining")))
        if state.max is not None or state.daily is not None:
            self.rate_limit = state
            now = self._clock()
            if state.daily_remaining is not None and state.daily_remaining <= 0:
                utc = dt.datetime.now(dt.UTC)
                midnight = dt.datetime.combine(utc.date() + dt.timedelta(days=1), dt.time(), dt.UTC)
                self._hold_until = max(self._hold_until, now + (midnight - utc).total_seconds())
            elif state.remaining is not None and state.remaining <= 0:
                self._hold_until = max(self._hold_until, now + (state.interval_ms or 10_000) / 1000)
        return classify(response)

    async def _respect_hold(self) -> None:
        """Wait out a short hold the headers asked for; refuse at once (503 + Retry-After) if it is long."""
        wait = self._hold_until - self._clock()
        if wait <= 0:
            return
        if wait > self.http.max_wait:
            raise VendorRateLimited(VENDOR, f"HubSpot reported no requests remaining for {wait:.1f}s",
                                    retry_after=wait, status=None)
        await self._sleep(wait)

    async def _send(self, method: str, path: str, *, params: Mapping[str, str | int] | None = None,
                    body: Any = None, idempotent: bool | None = None) -> httpx.Response:
        await self._respect_hold()
        return await self.http.request(method, self._root + path, params=params, json=body,
                                       headers=self._headers, idempotent=idempotent)

    async def list_page(self, object_type: str, *, limit: int = MAX_LIMIT, after: str | None = None,
                        properties: Sequence[str] = (), associations: Sequence[str] = ()) -> ObjectPage:
        """One page of `object_type` (deals, companies).

        Docs: https://developers.hubspot.com/docs/api/crm/deals — "Retrieve deals" (GET /crm/v3/objects/deals)
        """
        params: dict[str, str | int] = {"limit": max(1, min(limit, MAX_LIMIT))}
        if after:
            params["after"] = after
        if properties:
            params["properties"] = ",".join(properties)
        if associations:
            params["associations"] = ",".join(associations)
        response = await self._send("GET", f"/crm/v3/objects/{object_type}", params=params)
        return _decode(response, ObjectPage)

    async def get(self, object_type: str, object_id: str, *, properties: Sequence[str] = (),
                  associations: Sequence[str] = (), id_property: str | None = None) -> HubSpotObject:
        """One record by HubSpot id, or by the value of the unique property `id_property`.

        Docs: https://developers.hubspot.com/docs/api/crm/deals — "Retrieve deals" (by record ID or idProperty)
        """
        params: dict[str, str | int] = {}
        if properties:
            params["properties"] = ",".join(properties)
        if associations:
            params["associations"] = ",".join(associations)
        if id_property:
            params["idProperty"] = id_property
        response = await self._send("GET", f"/crm/v3/objects/{object_type}/{quote(object_id, safe='')}",
                                    params=params)
        return _decode(response, HubSpotObject)

    async def batch_upsert(self, object_type: str, inputs: Sequence[UpsertInput]) -> list[HubSpotObject]:
        """Create or update records by a unique-value property; each result says whether it is `new`.

        Docs: https://developers.hubspot.com/docs/api/crm/understanding-the-crm — batch upsert
        (POST /crm/v3/objects/{objectType}/batch/upsert, up to 100 inputs)
        """
        response = await self._send("POST", f"/crm/v3/objects/{object_type}/batch/upsert",
                                    body={"inputs": [msgspec.to_builtins(i) for i in inputs]}, idempotent=True)
        result = _decode(response, BatchResult)
        if result.num_errors or result.errors:
            first = result.errors[0] if result.errors else {}
            raise VendorRejected(VENDOR, str(first.get("message") or "batch upsert failed"), status=422,
                                 code=str(first.get("category") or "VALIDATION_ERROR"), body=result.errors)
        return result.results

    async def check(self) -> bool:
        """Connectivity probe: the token is accepted and the CRM answers."""
        try:
            await self.list_page("companies", limit=1)
        except VendorError:
            return False
        return True


def _decode(response: httpx.Response, kind: type[T]) -> T:
    try:
        return msgspec.json.decode(response.content, type=kind)
    except msgspec.ValidationError as exc:
        raise VendorRejected(VENDOR, f"unreadable {kind.__name__}: {exc}", status=502,
                             code="unreadable_response") from exc
