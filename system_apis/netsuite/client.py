"""NetSuite SuiteTalk REST record API client (``/services/rest/record/v1/``).

How NetSuite differs from the other vendors, and what this client does about it:

- A collection GET returns ids and links only; each record is fetched on its own
  (``expandSubResources=true`` for sublists). Results are unordered, so nothing here
  relies on order. Paging is ``limit``/``offset``; the next page is at ``offset + count``.
- The binding limit is *concurrency*, not rate: the account answers excess in-flight
  requests 429 ``CONCURRENCY_LIMIT_EXCEEDED``. The client holds a semaphore
  (``max_concurrency``) so its own fan-out never trips the limit, and treats the error as
  transient when other integrations do.
- Writes are idempotent by external id: ``PUT /{record}/eid:{externalId}`` upserts and
  answers 204 with the record's ``Location``.
- Batches go through asynchronous requests: ``Prefer: respond-async`` with an
  ``X-NetSuite-Idempotency-Key`` (a UUID) answers 202 + ``Preference-Applied`` + the ``Location``
  of a job under ``/services/rest/async/v1/job/{id}``; the same key again answers 400
  ``IDEMPOTENCY_ERROR`` with the ``Location`` of the first job and never runs twice.
- Bulk reads (posted time for reconciliation) use SuiteQL (``POST /services/rest/query/v1/suiteql``),
  one row per record instead of one GET per record.

Time posting carrier. NetSuite's REST record API has no batch create, and asynchronous
processing applies to REST web services (record and query), not to RESTlets. So one batch of up
to 1,000 time lines is ONE asynchronous ``POST /customrecord_psc_time_batch`` (a custom record
type installed in the account by the psconnect SuiteCloud bundle) whose external id is the batch
key and whose long-text field ``custrecord_psc_tb_lines`` carries the lines. Its user-event script
``customscript_psc_time_batch_ue`` queues the map/reduce script ``customscript_psc_time_batch_mr``
(deployment ``customdeploy_psc_time_batch_mr``), which creates one ``timeBill`` per line with
``externalId`` = line key (unique per record type, so a line already posted under another batch is
reported as posted with the existing id, never created twice), refuses lines per line (codes
``PERIOD_CLOSED``, ``EMPLOYEE_INACTIVE``, ``JOB_CLOSED``, ``INVALID_KEY_OR_REF``,
``INVALID_FLD_VALUE``), and writes ``custrecord_psc_tb_status`` / ``custrecord_psc_tb_results``.
A map/reduce because creating 1,000 timeBills exceeds a user-event script's governance. Two
guards make a batch post once: the idempotency key (derived from the batch key) and the batch
record's unique external id (for replays after NetSuite forgets the key).
Docs: https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/chapter_161251386312.html

Errors, as raised to callers (see ``system_apis._internal.http``)::

    VendorError
    ├── VendorRateLimited   429 (rate or CONCURRENCY_LIMIT_EXCEEDED), retry_after from Retry-After
    ├── VendorUnavailable   5xx, timeouts, connection failures
    ├── CircuitOpenError    after repeated transient failures
    └── VendorRejected      4xx; ``code`` = ``o:errorCode`` (USER_ERROR, INVALID_PARAMETER,
                            INSUFFICIENT_PERMISSION, NONEXISTENT_ID, INVALID_LOGIN)

Docs: https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/section_156570709583.html (errors),
https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/section_156414087576.html (collection paging)
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Mapping
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

__all__ = [
    "ASYNC_PATH",
    "BASE_URL",
    "CONCURRENCY_LIMIT_EXCEEDED",
    "IDEMPOTENCY_ERROR",
    "RECORD_PATH",
    "SUITEQL_PATH",
    "VENDOR",
    "AsyncJob",
    "IdPage",
    "NetSuiteClient",
    "QueryPage",
    "classify",
    "decode",
    "encode",
    "idempotency_key",
]

VENDOR: Final = "netsuite"
BASE_URL: Final = "https://1234567.suitetalk.api.netsuite.com"
RECORD_PATH: Final = "/services/rest/record/v1"
ASYNC_PATH: Final = "/services/rest/async/v1"
SUITEQL_PATH: Final = "/services/rest/query/v1/suiteql"
CONCURRENCY_LIMIT_EXCEEDED: Final = "CONCURRENCY_LIMIT_EXCEEDED"
IDEMPOTENCY_ERROR: Final = "IDEMPOTENCY_ERROR"
MAX_PAGE: Final = 1000
_KEY_NAMESPACE: Final = uuid.UUID("5b0e1a52-8d5e-4f43-9a7c-3c1f0c5e7d21")

_encoder = msgspec.json.Encoder(decimal_format="number")
_decoder = msgspec.json.Decoder(float_hook=Decimal)

Record = dict[str, Any]


def encode(body: Any) -> bytes:
    """JSON with ``Decimal`` as numbers, as NetSuite expects numeric fields such as ``plannedWork``."""
    return _encoder.encode(body)


def decode(content: bytes) -> Any:
    """JSON with every non-integer number as ``Decimal``: NetSuite sends amounts and hours as numbers."""
    return _decoder.decode(content)


def _details(body: object) -> tuple[str | None, str]:
    if isinstance(body, dict):
        details = body.get("o:errorDetails")
        if isinstance(details, list) and details and isinstance(details[0], dict):
            return details[0].get("o:errorCode"), str(details[0].get("detail") or body.get("title") or "")
        return None, str(body.get("title") or "")
    return None, ""


def classify(response: httpx.Response) -> VendorError | None:
    """Read NetSuite's error envelope ``{type, title, status, o:errorDetails[]}`` into the VendorError tree.

    Docs: https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/section_156570709583.html
    """
    status = response.status_code
    if status < 400:
        return None
    try:
        body: object = decode(response.content)
    except (msgspec.DecodeError, ValueError):
        body = response.text[:500]
    code, detail = _details(body)
    if code == IDEMPOTENCY_ERROR and response.headers.get("Location"):
        return None  # a replay of a submitted async request: the Location names the original job
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status == 429 or code == CONCURRENCY_LIMIT_EXCEEDED:
        return VendorRateLimited(VENDOR, f"{code or 'rate limited'}: {detail}", retry_after=retry_after,
                                 status=status, body=body)
    if status >= 500:
        err = VendorUnavailable(VENDOR, f"server error {status} {code or ''}: {detail}", status=status, body=body)
        err.retry_after = retry_after
        return err
    if status == 404 and code is None:
        code = "NONEXISTENT_ID"
    reference = _REFERENCE.search(detail)
    return VendorRejected(VENDOR, f"{status} {code or ''}: {detail}", status=status, code=code, body=body,
                          field=REFERENCE_FIELDS.get(reference.group(1)) if reference else None)


_REFERENCE: Final = re.compile(r"for the reference field (\w+)")
REFERENCE_FIELDS: Final = {
    "subsidiary": "/legal_entity_id", "custrecord_psc_tb_subsidiary": "/legal_entity_id",
    "parent": "/customer_id", "entity": "/customer_id", "job": "/project_external_id",
    "createdFrom": "/invoice_external_id", "postingPeriod": "/period",
}
"""NetSuite's reference fields as the canonical request fields they come from (mapping.py fills them)."""


class IdPage(msgspec.Struct, kw_only=True):
    """One collection page: ids only, in whatever order NetSuite chose."""

    ids: list[str]
    offset: int
    count: int
    has_more: bool
    total_results: int | None = None

    @property
    def next_offset(self) -> int | None:
        return self.offset + self.count if self.has_more else None


def idempotency_key(key: str) -> str:
    """NetSuite wants a UUID; derive it from our stable key so a retry anywhere sends the same one."""
    return str(uuid.uuid5(_KEY_NAMESPACE, key))


class AsyncJob(msgspec.Struct, kw_only=True):
    """An asynchronous request's job: ``progress`` is NetSuite's (pending, succeeded, failed...)."""

    id: str
    completed: bool
    progress: str


class QueryPage(msgspec.Struct, kw_only=True):
    rows: list[dict[str, Any]]
    offset: int
    has_more: bool
    total_results: int | None = None


class NetSuiteClient:
    """NetSuite's wire protocol over `VendorHttp`.

    Args:
        http: where requests go; give it ``base_url=BASE_URL`` (or the account's URL) or leave
            the base URL unset and requests are sent to ``BASE_URL``.
        token: OAuth 2.0 access token sent as ``Authorization: Bearer``.
        retry: retry policy for transient failures.
        sleep: injected so tests need not wait out backoff.
        max_concurrency: in-flight requests this client allows itself; keep it below the
            account's concurrency limit minus what other integrations use.
    """

    def __init__(self, http: httpx.AsyncClient, *, token: str = "sim-token", retry: RetryPolicy | None = None,
                 sleep: Sleep = asyncio.sleep, max_concurrency: int = 4) -> None:
        self.http = VendorHttp(VENDOR, http, classify=classify, retry=retry, sleep=sleep)
        self._base = "" if str(http.base_url) else BASE_URL
        self._root = self._base + RECORD_PATH
        self._auth = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._slots = asyncio.Semaphore(max_concurrency)
        self._sleep = sleep

    def _url(self, record: str, key: str | None = None) -> str:
        return f"{self._root}/{record}" + (f"/{quote(key, safe=':')}" if key is not None else "")

    async def _send(self, method: str, url: str, *, params: Mapping[str, str | int] | None = None,
                    json: Any = None, headers: Mapping[str, str] | None = None,
                    idempotent: bool | None = None) -> httpx.Response:
        body = msgspec.Raw(encode(json)) if json is not None else None
        sent = {**self._auth, **headers} if headers else self._auth
        async with self._slots:
            return await self.http.request(method, url, params=params, json=body, headers=sent,
                                           idempotent=idempotent)

    async def list_ids(self, record: str, *, q: str | None = None, limit: int = MAX_PAGE,
                       offset: int = 0) -> IdPage:
        """One page of a record collection.

        Docs: https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/section_156414087576.html
        """
        params: dict[str, str | int] = {"limit": min(limit, MAX_PAGE), "offset": offset}
        if q:
            params["q"] = q
        body = decode((await self._send("GET", self._url(record), params=params)).content)
        return IdPage(ids=[str(item["id"]) for item in body.get("items", [])], offset=int(body.get("offset", offset)),
                      count=int(body.get("count", 0)), has_more=bool(body.get("hasMore", False)),
                      total_results=body.get("totalResults"))

    async def iter_ids(self, record: str, *, q: str | None = None, page_size: int = MAX_PAGE) -> AsyncIterator[str]:
        """Every id of a collection, page after page.

        Docs: https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/section_156414087576.html
        """
        offset: int | None = 0
        while offset is not None:
            page = await self.list_ids(record, q=q, limit=page_size, offset=offset)
            for ident in page.ids:
                yield ident
            offset = page.next_offset

    async def get(self, record: str, internal_id: str, *, expand: bool = False) -> Record:
        """One record by internal id; ``expand`` inlines sublists (project tasks, address book).

        Docs: https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/section_159894563219.html
        """
        params = {"expandSubResources": "true"} if expand else None
        result: Record = decode((await self._send("GET", self._url(record, internal_id), params=params)).content)
        return result

    async def get_many(self, record: str, internal_ids: list[str], *, expand: bool = False) -> list[Record]:
        """Fetch records concurrently, bounded by ``max_concurrency`` (the collection gave ids only).

        Docs: https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/section_159894563219.html
        """
        return list(await asyncio.gather(*(self.get(record, i, expand=expand) for i in internal_ids)))

    async def find_by_external_id(self, record: str, external_id: str, *, expand: bool = False) -> Record | None:
        """The record with this external id, or None when NetSuite has none.

        Docs: https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/section_159894563219.html
        """
        try:
            return await self.get(record, f"eid:{external_id}", expand=expand)
        except VendorRejected as exc:
            if exc.status == 404:
                return None
            raise

    async def upsert(self, record: str, external_id: str, body: Record, *,
                     replace: tuple[str, ...] = ()) -> str:
        """Create or update by external id; returns the internal id from ``Location``.

        ``replace`` names sublists whose lines the body replaces instead of appending to.
        Docs: https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/section_156335203191.html
        """
        params = {"replace": ",".join(replace)} if replace else None
        response = await self._send("PUT", self._url(record, f"eid:{external_id}"), params=params, json=body)
        return _location_id(response)

    async def update(self, record: str, internal_id: str, body: Record) -> str:
        """Set fields of one record (``PATCH /{record}/{id}``, answered 204 + ``Location``); returns its id.

        Retried on 5xx like a read: psconnect only patches fields to fixed values (an invoice's
        approval), which applied twice is applied once.
        Docs: https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/section_1545141395.html (record
        operations, of which update is one)
        """
        response = await self._send("PATCH", self._url(record, internal_id), json=body, idempotent=True)
        return _location_id(response)

    async def create(self, record: str, body: Record) -> str:
        """Create a record; not retried on 5xx (a POST may have been applied).

        Docs: https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/section_1545141395.html
        """
        return _location_id(await self._send("POST", self._url(record), json=body))

    async def submit_async(self, record: str, body: Record, *, key: str) -> str:
        """Create a record asynchronously, once per ``key``; returns the async job id.

        Retried on 5xx like a read: the idempotency key makes a repeated submission answer with the
        first job (400 ``IDEMPOTENCY_ERROR`` + ``Location``) instead of running again.
        Docs: https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/subsect_164494900632.html
        """
        response = await self._send("POST", self._url(record), json=body, idempotent=True,
                                    headers={"Prefer": "respond-async",
                                             "X-NetSuite-Idempotency-Key": idempotency_key(key)})
        return _location_id(response)

    async def job(self, job_id: str) -> AsyncJob:
        """The state of an asynchronous job.

        Docs: https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/subsect_161278579295.html
        """
        body = decode((await self._send("GET", f"{self._base}{ASYNC_PATH}/job/{quote(job_id)}")).content)
        return AsyncJob(id=str(body.get("id", job_id)), completed=bool(body.get("completed")),
                        progress=str(body.get("progress") or "pending"))

    async def wait_job(self, job_id: str, *, interval: float = 0.5, max_polls: int = 240) -> AsyncJob:
        """Poll a job until NetSuite says it completed (or give up and return its last state)."""
        state = await self.job(job_id)
        polls = 1
        while not state.completed and polls < max_polls:
            await self._sleep(interval)
            state = await self.job(job_id)
            polls += 1
        return state

    async def job_result(self, job_id: str) -> Record:
        """The result of a completed job's (single) task: the record created, or the refusal raised.

        Docs: https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/subsect_161252889998.html
        """
        tasks = decode((await self._send("GET", f"{self._base}{ASYNC_PATH}/job/{quote(job_id)}/task")).content)
        task_id = str(tasks["items"][0]["id"])
        url = f"{self._base}{ASYNC_PATH}/job/{quote(job_id)}/task/{quote(task_id)}/result"
        result: Record = decode((await self._send("GET", url)).content)
        return result

    async def suiteql(self, query: str, *, limit: int = MAX_PAGE, offset: int = 0) -> QueryPage:
        """One page of a SuiteQL query; every value comes back as a string.

        Docs: https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/section_157909186990.html
        """
        response = await self._send("POST", f"{self._base}{SUITEQL_PATH}", json={"q": query}, idempotent=True,
                                    params={"limit": min(limit, MAX_PAGE), "offset": offset},
                                    headers={"Prefer": "transient"})
        body = decode(response.content)
        return QueryPage(rows=list(body.get("items", [])), offset=int(body.get("offset", offset)),
                         has_more=bool(body.get("hasMore", False)), total_results=body.get("totalResults"))

    async def check(self) -> bool:
        """Connectivity probe: can we list one subsidiary with this token?

        Docs: https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/section_156414087576.html
        """
        try:
            await self.list_ids("subsidiary", limit=1)
        except VendorError:
            return False
        return True


def _location_id(response: httpx.Response) -> str:
    location = response.headers.get("Location")
    if not location:
        raise VendorUnavailable(VENDOR, f"{response.status_code} without a Location header",
                                status=response.status_code)
    return str(location).rstrip("/").rsplit("/", 1)[-1]
