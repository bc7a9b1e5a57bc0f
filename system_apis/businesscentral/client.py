"""Dynamics 365 Business Central API client (OData v4, ``/api/v2.0/companies({id})/…``).

What Business Central asks of a client, and what this one does:

- OAuth 2.0 client credentials against the Microsoft identity platform
  (``https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token``, scope
  ``https://api.businesscentral.dynamics.com/.default``). Access tokens live about an hour; the
  client asks for a new one shortly before expiry and once more on a 401, and never logs it.
- Server-driven paging: ``Prefer: odata.maxpagesize=N``; follow ``@odata.nextLink`` (a
  ``$skiptoken``) until none. Only links on our own service root are followed.
- Optimistic concurrency: ``PATCH``/``DELETE`` carry ``If-Match`` with the record's ``@odata.etag``;
  a stale ETag is 412 ``Request_EntityChanged`` and changes nothing (the caller re-reads).
- ``$batch`` (JSON format) of at most 100 operations; ``Isolation: snapshot`` runs them in one
  transaction (all or nothing).
- Limits: 6,000 requests per 5-minute sliding window per user / service principal, 100 concurrent
  requests; excess is 429 with ``Retry-After``. The client paces itself to the window (`VendorBudget`).
- Error body ``{"error": {"code": "...", "message": "..."}}`` (codes such as ``BadRequest_NotFound``,
  ``Request_EntityChanged``, ``Internal_EntityWithSameKeyExists``, ``Application_TooManyRequests``).

The connection's base URL is the environment root
``https://api.businesscentral.dynamics.com/v2.0/{tenant}/{environment}``, optionally followed by
``/api/v2.0/companies({company id})``: the company of the connection is named in its base URL (it is
not a secret). Without it the client serves the environment's first company.

Docs: https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/api-reference/v2.0/
https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/webservices/use-odata-batch
https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/api-reference/v2.0/dynamics-rate-limits
https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from decimal import Decimal
from typing import Any, Final
from urllib.parse import quote

import httpx
import msgspec

from foundation.retry import RetryPolicy
from system_apis._internal.http import (
    Sleep,
    VendorError,
    VendorHttp,
    VendorRejected,
    VendorUnavailable,
    transient_error,
)
from system_apis.pacing import Pacer, VendorBudget

__all__ = [
    "API_PATH",
    "BASE_URL",
    "BATCH_LIMIT",
    "EXTENSION_PATH",
    "RATE_LIMIT",
    "SCOPE",
    "TOKEN_HOST",
    "VENDOR",
    "BusinessCentralClient",
    "classify",
    "decode",
    "encode",
    "split_base_url",
]

VENDOR: Final = "businesscentral"
BASE_URL: Final = "https://api.businesscentral.dynamics.com/v2.0/sim-tenant/production"
API_PATH: Final = "/api/v2.0"
EXTENSION_PATH: Final = "/api/psconnect/erp/v1.0"
"""The psconnect extension's API page (AL app installed in the environment): what the standard API lacks."""
TOKEN_HOST: Final = "https://login.microsoftonline.com"
SCOPE: Final = "https://api.businesscentral.dynamics.com/.default"
BATCH_LIMIT: Final = 100
RATE_LIMIT: Final = VendorBudget(6000, 300.0)
_EARLY: Final = 120.0
"""Seconds before expiry at which a token is renewed."""
_COMPANY_SUFFIX: Final = re.compile(r"^(?P<root>.*?)/api/v2\.0/companies\((?P<company>[0-9a-fA-F-]{36})\)/?$")

_encoder = msgspec.json.Encoder(decimal_format="number")
_decoder = msgspec.json.Decoder(float_hook=Decimal)

Record = dict[str, Any]


def encode(body: Any) -> bytes:
    """JSON with ``Decimal`` as numbers (Edm.Decimal fields such as ``quantity``, ``unitPrice``)."""
    return _encoder.encode(body)


def decode(content: bytes) -> Any:
    """JSON with non-integer numbers as ``Decimal``, never float."""
    return _decoder.decode(content)


def split_base_url(base_url: str) -> tuple[str, str | None]:
    """(environment root, company id or None) of a connection's base URL."""
    url = base_url.rstrip("/")
    match = _COMPANY_SUFFIX.match(url)
    if match:
        return match["root"], match["company"].lower()
    return url, None


def classify(response: httpx.Response) -> VendorError | None:
    """Business Central's ``{"error": {"code", "message"}}`` into the VendorError tree."""
    status = response.status_code
    if status < 400:
        return None
    try:
        body: object = decode(response.content)
    except (msgspec.DecodeError, ValueError):
        body = response.text[:500]
    code: str | None = None
    message = ""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = body["error"].get("code")
        message = str(body["error"].get("message") or "")
    transient = transient_error(VENDOR, response, f"{code or status}: {message}", body)
    if transient is not None:
        return transient
    return VendorRejected(VENDOR, f"{status} {code or ''}: {message}", status=status, code=code, body=body)


class _Token(msgspec.Struct):
    access_token: str
    expires_in: int
    token_type: str = "Bearer"


class BusinessCentralClient:
    """Business Central's wire protocol over `VendorHttp`, for one company of one environment.

    Args:
        http: reaches Business Central (its ``base_url``, when set, is the environment root or the
            company URL; unset, requests go to ``BASE_URL``) and the identity platform (absolute URLs).
        tenant: the Microsoft Entra tenant (``Connection.tenant``).
        client_id, client_secret: the app registration's credentials (``Connection.credentials``).
        company_id: the company; by default the one in the base URL, else the environment's first.
        clock: monotonic seconds, for token expiry.
        budget: the request window the client paces itself to; None = unpaced.
        max_concurrency: requests this client keeps in flight (BC allows 100 per user, shared with others).
    """

    def __init__(self, http: httpx.AsyncClient, *, tenant: str = "sim-tenant", client_id: str = "sim-client",
                 client_secret: str = "sim-secret", company_id: str | None = None, base_url: str | None = None,
                 retry: RetryPolicy | None = None, sleep: Sleep = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic, budget: VendorBudget | None = RATE_LIMIT,
                 max_concurrency: int = 8, token_host: str = TOKEN_HOST) -> None:
        self.http = VendorHttp(VENDOR, http, classify=classify, retry=retry, sleep=sleep,
                               pacer=Pacer(budget) if budget is not None else None)
        self._raw = http
        root, company = split_base_url(base_url or (str(http.base_url) if str(http.base_url) else BASE_URL))
        self.root = root
        self._company = company_id or company
        self._tenant = tenant
        self._token_host = token_host
        self._client_id = client_id
        self._secret = client_secret
        self._clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self._token_lock = asyncio.Lock()
        self.token_requests = 0
        self._slots = asyncio.Semaphore(max_concurrency)

    # ------------------------------------------------------------------ auth

    async def _access_token(self, *, renew: bool = False) -> str:
        async with self._token_lock:
            if renew or self._token is None or self._clock() >= self._expires - _EARLY:
                await self._fetch_token()
            assert self._token is not None
            return self._token

    async def _fetch_token(self) -> None:
        url = f"{self._token_host}/{quote(self._tenant, safe='')}/oauth2/v2.0/token"
        form = {"grant_type": "client_credentials", "client_id": self._client_id,
                "client_secret": self._secret, "scope": SCOPE}
        self.token_requests += 1
        try:
            response = await self._raw.post(url, data=form, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise VendorUnavailable(VENDOR, f"token endpoint unreachable: {type(exc).__name__}") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise VendorUnavailable(VENDOR, f"token endpoint answered {response.status_code}",
                                    status=response.status_code)
        if response.status_code != 200:
            try:
                error = str(response.json().get("error") or "invalid_client")
            except ValueError:
                error = "invalid_client"
            # the error description may echo the client id, never the secret; keep only the code
            raise VendorRejected(VENDOR, f"token request refused: {error}", status=401, code=error)
        token = msgspec.json.decode(response.content, type=_Token)
        self._token = token.access_token
        self._expires = self._clock() + token.expires_in

    # ------------------------------------------------------------------ requests

    async def _send(self, method: str, url: str, *, params: Mapping[str, str | int] | None = None,
                    json: Any = None, headers: Mapping[str, str] | None = None,
                    idempotent: bool | None = None) -> httpx.Response:
        body = msgspec.Raw(encode(json)) if json is not None else None
        renewed = False
        while True:
            sent = {"Authorization": f"Bearer {await self._access_token(renew=renewed)}",
                    "Accept": "application/json", **(headers or {})}
            try:
                async with self._slots:
                    return await self.http.request(method, url, params=params, json=body, headers=sent,
                                                   idempotent=idempotent)
            except VendorRejected as exc:
                if exc.status != 401 or renewed:
                    raise
                renewed = True  # expired or revoked early: one new token, one more try

    async def company(self) -> str:
        """The company id this client writes to."""
        if self._company is None:
            first = await self.list_page(f"{self.root}{API_PATH}/companies", page_size=1)
            if not first[0]:
                raise VendorRejected(VENDOR, "the environment has no company", status=404, code="BadRequest_NotFound")
            self._company = str(first[0][0]["id"])
        return self._company

    async def url(self, entity: str, *, extension: bool = False) -> str:
        """The URL of an entity set (or entity, or action) of this client's company."""
        api = EXTENSION_PATH if extension else API_PATH
        return f"{self.root}{api}/companies({await self.company()})/{entity}"

    async def list_page(self, url: str, *, filter: str | None = None, page_size: int | None = None,
                        link: str | None = None) -> tuple[list[Record], str | None]:
        """One page of an entity set: its records and the ``@odata.nextLink`` to the next, if any."""
        headers = {"Prefer": f"odata.maxpagesize={page_size}"} if page_size else None
        if link is not None:
            if not link.startswith(self.root + "/api/"):
                raise ValueError("not a link of this Business Central environment")
            response = await self._send("GET", link, headers=headers)
        else:
            response = await self._send("GET", url, params={"$filter": filter} if filter else None, headers=headers)
        body = decode(response.content)
        return list(body.get("value", [])), body.get("@odata.nextLink")

    async def iter_all(self, url: str, *, filter: str | None = None, page_size: int = 1000) -> AsyncIterator[Record]:
        """Every record of an entity set, following ``@odata.nextLink``."""
        records, link = await self.list_page(url, filter=filter, page_size=page_size)
        while True:
            for record in records:
                yield record
            if link is None:
                return
            records, link = await self.list_page(url, link=link, page_size=page_size)

    async def find(self, url: str, filter: str) -> Record | None:
        """The first record matching ``filter``, or None."""
        records, _ = await self.list_page(url, filter=filter, page_size=1)
        return records[0] if records else None

    async def get(self, url: str) -> Record:
        result: Record = decode((await self._send("GET", url)).content)
        return result

    async def create(self, url: str, body: Record) -> Record:
        """POST a new record; not retried on 5xx (it may have been created)."""
        result: Record = decode((await self._send("POST", url, json=body)).content)
        return result

    async def patch(self, url: str, body: Record, etag: str) -> Record:
        """Update with ``If-Match``: a stale ``etag`` is 412 and nothing changes."""
        result: Record = decode((await self._send("PATCH", url, json=body, headers={"If-Match": etag},
                                                  idempotent=True)).content)
        return result

    async def delete(self, url: str, etag: str) -> None:
        await self._send("DELETE", url, headers={"If-Match": etag})

    async def action(self, url: str) -> None:
        """A bound action such as ``salesInvoices({id})/Microsoft.NAV.post`` (204, no body)."""
        await self._send("POST", url, idempotent=False)

    async def batch(self, requests: list[Record], *, transactional: bool = True) -> list[Record]:
        """One JSON ``$batch`` of at most 100 operations; ``transactional`` = ``Isolation: snapshot``.

        Each request is ``{"id", "method", "url", "headers"?, "body"?}`` with ``url`` relative to the
        API root (``companies(…)/timeRegistrationEntries``) or absolute; the answer is the list of
        ``{"id", "status", "body"}`` in request order. Retried on 5xx only when ``transactional``:
        the batch then either committed whole or not at all, and callers make it idempotent.
        """
        if not 1 <= len(requests) <= BATCH_LIMIT:
            raise ValueError(f"a $batch holds 1 to {BATCH_LIMIT} operations, not {len(requests)}")
        headers = {"Isolation": "snapshot"} if transactional else None
        response = await self._send("POST", f"{self.root}{API_PATH}/$batch", json={"requests": requests},
                                    headers=headers, idempotent=transactional)
        answers = {str(r.get("id")): r for r in decode(response.content).get("responses", [])}
        return [answers.get(str(r["id"]), {"id": r["id"], "status": 424}) for r in requests]

    async def check(self) -> bool:
        """Connectivity probe: a token and one company."""
        try:
            await self.list_page(f"{self.root}{API_PATH}/companies", page_size=1)
        except VendorError:
            return False
        return True

