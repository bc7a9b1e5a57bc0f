"""The Salesforce platform's REST wire protocol, shared by every vendor that lives on it.

Salesforce (CRM) and Certinia (PSA and time, a managed package on the Salesforce platform)
are separate vendor packages that may not import each other; what they share — the org's
REST API — lives here: OAuth2 sessions, SOQL query paging, sObject reads, external-id
upserts and the error body. Each package passes its own vendor name, so errors, logs and
the circuit breaker stay per vendor.

Errors (Salesforce answers a JSON list ``[{"message", "errorCode", "fields"}]``) become
the shared tree of `system_apis._internal.http`::

    VendorError
    ├── TransientVendorError
    │   ├── VendorRateLimited     429, or errorCode REQUEST_LIMIT_EXCEEDED at any status
    │   │                         (e.g. "ConcurrentPerOrgLongTxn Limit exceeded")
    │   ├── VendorUnavailable     other 5xx, timeouts, connection failures
    │   └── CircuitOpenError
    └── VendorRejected            other 4xx, code = Salesforce errorCode (NOT_FOUND, INVALID_FIELD, ...)

Salesforce has no idempotency header: a write is made safe to repeat by upserting on
an external-id field (PATCH .../sobjects/{Object}/{Field}/{value}), so upserts and
updates by id are sent as idempotent and retried on 5xx.
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm

Sessions (`ForceSession`): the OAuth 2.0 client credentials flow against
``/services/oauth2/token``. Salesforce's token answer carries ``issued_at`` (epoch ms)
but no ``expires_in`` — a session lasts the org's session timeout (Setup > Session
Settings, 2 hours by default) — so the session is renewed `refresh_margin` seconds before
`session_seconds` have passed on our clock since the token arrived, and once more when a call is answered 401
INVALID_SESSION_ID (an admin revoked it, or the org's timeout is shorter than configured).
https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_client_credentials_flow.htm
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/intro_oauth_and_connected_apps.htm
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Final
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
)
from system_apis._internal.instants import utc_text
from system_apis.pacing import Pacer, VendorBudget

__all__ = [
    "API_PATH",
    "API_VERSION",
    "TOKEN_PATH",
    "ForceRestClient",
    "ForceSession",
    "QueryBatch",
    "UpsertResult",
    "decode_json",
    "soql_literal",
]

API_VERSION: Final = "v60.0"
API_PATH: Final = f"/services/data/{API_VERSION}"
TOKEN_PATH: Final = "/services/oauth2/token"

_LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")
_ENCODER = msgspec.json.Encoder(decimal_format="number")  # currency fields are JSON numbers on the wire
_DECODER = msgspec.json.Decoder(float_hook=Decimal)
_SOQL_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b",
                 "\f": "\\f"}


def decode_json(content: bytes) -> Any:
    """Decode a Salesforce body with every JSON number that has a fraction as `Decimal`."""
    return _DECODER.decode(content)


def soql_literal(value: str | bool | dt.datetime | None) -> str:
    """A SOQL literal for `value`: text quoted and escaped so it cannot end the string early; an instant as an
    unquoted dateTime in UTC with a four-digit year (``0087-02-20T02:20:55Z``).

    https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_quotedstringescapes.htm
    https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_dateformats.htm
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return f"{utc_text(value)}Z"
    return "'" + "".join(_SOQL_ESCAPES.get(ch, ch) for ch in value) + "'"


class QueryBatch(msgspec.Struct, kw_only=True):
    """One batch of a SOQL query result; `next_records_url` is set while `done` is false."""

    total_size: int
    done: bool
    records: list[dict[str, Any]]
    next_records_url: str | None = None


class UpsertResult(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    created: bool


class ForceSession:
    """An OAuth2 client-credentials session on one org, renewed before it lapses and after a 401.

    The secret is sent only in the token request's form body; it is never logged nor put
    in an error message.

    Args:
        vendor: name used in errors.
        http: client reaching the org (token endpoint is on the org's My Domain).
        client_id / client_secret: the connected app's consumer key and secret.
        session_seconds: the org's session timeout (Salesforce does not say it in the answer).
        refresh_margin: renew this long before the session would lapse.
        clock: seconds since the epoch (`time.time`); tests move it by hand.
    """

    def __init__(self, vendor: str, http: httpx.AsyncClient, *, client_id: str, client_secret: str,
                 session_seconds: float = 7200.0, refresh_margin: float = 300.0,
                 clock: Callable[[], float] = time.time, root: str = "") -> None:
        self.vendor = vendor
        self._http = http
        self._form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
        self.session_seconds = session_seconds
        self.refresh_margin = refresh_margin
        self._clock = clock
        self._root = root
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.issued = 0
        """How many tokens this session has obtained (the first one included)."""

    async def token(self) -> str:
        """A token that will not lapse within `refresh_margin`; obtained now if need be."""
        async with self._lock:
            if self._token is None or self._clock() >= self._expires_at - self.refresh_margin:
                await self._obtain()
            assert self._token is not None
            return self._token

    async def renew(self, rejected: str) -> str:
        """After a 401 on `rejected`: a new token, unless another call already renewed it."""
        async with self._lock:
            if self._token is None or self._token == rejected:
                await self._obtain()
            assert self._token is not None
            return self._token

    async def _obtain(self) -> None:
        try:
            response = await self._http.post(self._root + TOKEN_PATH, data=self._form,
                                             headers={"Accept": "application/json"})
        except httpx.TransportError as exc:
            raise VendorUnavailable(self.vendor, f"token endpoint unreachable: {type(exc).__name__}") from exc
        try:
            body = decode_json(response.content)
        except msgspec.DecodeError:
            body = {}
        if response.status_code >= 500:
            raise VendorUnavailable(self.vendor, f"token endpoint answered {response.status_code}",
                                    status=response.status_code)
        if response.status_code != 200 or not isinstance(body, dict) or not body.get("access_token"):
            error = body.get("error") if isinstance(body, dict) else None
            described = body.get("error_description") if isinstance(body, dict) else None
            # 401 to our caller whatever the token endpoint said: the connection's credentials are wrong.
            raise VendorRejected(self.vendor, f"token request refused: {error or response.status_code}"
                                 f" ({described or 'no description'})", status=401, code=str(error or "")
                                 or None)
        self._token = str(body["access_token"])
        # Timed from our own clock at receipt, not the org's issued_at: a skewed clock would otherwise
        # renew on every call (ours ahead) or send lapsed tokens (ours behind).
        self._expires_at = self._clock() + self.session_seconds
        self.issued += 1


class ForceRestClient:
    """Salesforce REST over `VendorHttp`, for one vendor package on the platform.

    Args:
        vendor: the vendor package's name (errors, breaker, logs).
        http: client whose transport reaches the org (a simulator in-process in tests and
            embedded mode); relative paths are resolved against its `base_url`, or `base_url`.
        base_url: the org's URL, used when `http` has none.
        token: a fixed OAuth access token sent as `Authorization: Bearer` (no `session`).
        session: an OAuth session that obtains and renews tokens (wins over `token`).
        retry: retry policy for transient failures.
        sleep: how backoff waits; tests pass a recorder instead of `asyncio.sleep`.
        budget: client-side pacing to the org's allocation, if any.
    """

    def __init__(self, vendor: str, http: httpx.AsyncClient, *, base_url: str, token: str = "sim-token",
                 session: ForceSession | None = None, retry: RetryPolicy | None = None,
                 sleep: Sleep = asyncio.sleep, budget: VendorBudget | None = None) -> None:
        self.vendor = vendor
        self.http = VendorHttp(vendor, http, classify=self._classify, retry=retry, sleep=sleep,
                               pacer=Pacer(budget) if budget is not None else None)
        self._token = token
        self.session = session
        self._root = "" if http.base_url.host else base_url
        self._api_usage: tuple[int, int] | None = None

    @property
    def api_usage(self) -> tuple[int, int] | None:
        """(used, allowed) daily API requests from the last `Sforce-Limit-Info` header seen."""
        return self._api_usage

    def _classify(self, response: httpx.Response) -> VendorError | None:
        # Every response passes here, so this is where the quota header is read.
        match = _LIMIT_INFO.search(response.headers.get("Sforce-Limit-Info", ""))
        if match:
            self._api_usage = (int(match.group(1)), int(match.group(2)))
        status = response.status_code
        if status < 400:
            return None
        body = error_body(response)
        first = body[0] if isinstance(body, list) and body and isinstance(body[0], dict) else {}
        code = str(first.get("errorCode")) if first.get("errorCode") else None
        message = str(first.get("message") or f"HTTP {status}")
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if status == 429 or code == "REQUEST_LIMIT_EXCEEDED":
            return VendorRateLimited(self.vendor, f"{code or 'rate limited'}: {message}", retry_after=retry_after,
                                     status=status, body=body)
        if status >= 500:
            error = VendorUnavailable(self.vendor, f"{code or 'server error'} ({status}): {message}", status=status,
                                      body=body)
            error.retry_after = retry_after
            return error
        return VendorRejected(self.vendor, f"{code or status}: {message}", status=status, code=code, body=body)

    async def _send(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                    body: Mapping[str, Any] | None = None, idempotent: bool | None = None) -> httpx.Response:
        json = msgspec.Raw(_ENCODER.encode(body)) if body is not None else None
        token = await self.session.token() if self.session is not None else self._token
        try:
            return await self.http.request(method, self._root + path, params=params, json=json,
                                           headers={"Authorization": f"Bearer {token}"}, idempotent=idempotent)
        except VendorRejected as exc:
            if exc.status != 401 or self.session is None:
                raise
        # Once on a 401: the session lapsed early or was revoked; a second 401 is the caller's problem.
        token = await self.session.renew(token)
        return await self.http.request(method, self._root + path, params=params, json=json,
                                       headers={"Authorization": f"Bearer {token}"}, idempotent=idempotent)

    async def query_batch(self, soql: str) -> QueryBatch:
        """Run a SOQL query and return its first batch (up to 2,000 records).

        Docs: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_query.htm
        """
        return _batch(await self._send("GET", f"{API_PATH}/query", params={"q": soql}))

    async def query_more(self, next_records_url: str) -> QueryBatch:
        """Fetch the batch a previous batch's `nextRecordsUrl` points to.

        Docs: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_query.htm
        """
        if not next_records_url.startswith("/services/data/"):
            raise ValueError(f"not a Salesforce query locator: {next_records_url!r}")
        return _batch(await self._send("GET", next_records_url))

    async def query(self, soql: str) -> AsyncIterator[dict[str, Any]]:
        """Every record of a SOQL query, following `nextRecordsUrl` until `done`.

        Docs: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_query.htm
        """
        batch = await self.query_batch(soql)
        while True:
            for record in batch.records:
                yield record
            if batch.done or not batch.next_records_url:
                return
            batch = await self.query_more(batch.next_records_url)

    async def get_record(self, sobject: str, record_id: str, fields: Sequence[str] | None = None) -> dict[str, Any]:
        """One record by Salesforce id; 404 NOT_FOUND becomes `VendorRejected(status=404)`.

        Docs: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_retrieve_get.htm
        """
        params = {"fields": ",".join(fields)} if fields else None
        response = await self._send("GET", f"{API_PATH}/sobjects/{sobject}/{quote(record_id, safe='')}",
                                    params=params)
        record: dict[str, Any] = decode_json(response.content)
        return record

    async def upsert(self, sobject: str, external_id_field: str, value: str, fields: Mapping[str, Any], *,
                     update_only: bool = False) -> UpsertResult:
        """Create or update the record whose `external_id_field` equals `value`; safe to repeat.

        201 created / 200 updated; 300 (several records carry the value) is refused as a
        conflict, since picking one would update an arbitrary record.

        Docs: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_upsert.htm
        """
        path = f"{API_PATH}/sobjects/{sobject}/{external_id_field}/{quote(value, safe='')}"
        response = await self._send("PATCH", path, params={"updateOnly": "true"} if update_only else None,
                                    body=fields, idempotent=True)
        if response.status_code == 300:
            # VendorRejected carries the canonical meaning (409 conflict), not Salesforce's 300.
            raise VendorRejected(self.vendor, f"several {sobject} records have {external_id_field}={value!r}",
                                 status=409, code="MULTIPLE_CHOICES", body=error_body(response))
        result = decode_json(response.content)
        return UpsertResult(id=str(result["id"]), created=bool(result.get("created", response.status_code == 201)))

    async def update(self, sobject: str, record_id: str, fields: Mapping[str, Any]) -> None:
        """Set fields on one record by Salesforce id (204); setting the same values twice is harmless.

        Docs: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_update_fields.htm
        """
        await self._send("PATCH", f"{API_PATH}/sobjects/{sobject}/{quote(record_id, safe='')}", body=fields,
                         idempotent=True)

    async def limits(self) -> dict[str, Any]:
        """The org's limits (DailyApiRequests and others).

        Docs: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_limits.htm
        """
        limits: dict[str, Any] = decode_json((await self._send("GET", f"{API_PATH}/limits")).content)
        return limits

    async def check(self) -> bool:
        """Connectivity probe: can we reach the org and is our token accepted?"""
        try:
            await self.limits()
        except VendorError:
            return False
        return True


def _batch(response: httpx.Response) -> QueryBatch:
    data = decode_json(response.content)
    return QueryBatch(total_size=int(data.get("totalSize", 0)), done=bool(data.get("done", True)),
                      records=list(data.get("records") or []), next_records_url=data.get("nextRecordsUrl"))


def error_body(response: httpx.Response) -> Any:
    """The decoded error list, or the start of the text when the body is not JSON."""
    try:
        return decode_json(response.content)
    except msgspec.DecodeError:
        return response.text[:500]
