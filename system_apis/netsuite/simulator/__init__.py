"""A stateful NetSuite REST record API, in memory, with NetSuite's failure modes.

What it reproduces (so an adapter passing here should pass against NetSuite):

- ``/services/rest/record/v1/{record}`` collections answer ids and links only, in no
  particular order, paged by ``limit`` (1-1000) and ``offset`` (a multiple of ``limit``);
- ``GET /{record}/{id}`` and ``/{record}/eid:{externalId}``, sublists inlined only with
  ``expandSubResources=true``;
- ``PUT /{record}/eid:{externalId}`` upsert, ``POST /{record}`` create, ``PATCH`` update,
  all answering 204 + ``Location``; sublist lines append unless ``replace=`` names them;
- the error body ``{type, title, status, o:errorDetails[{detail, o:errorCode, o:errorPath}]}``,
  401 ``INVALID_LOGIN`` without credentials;
- concurrency governance: more than ``concurrency_limit`` requests in flight get 429
  ``CONCURRENCY_LIMIT_EXCEEDED``;
- asynchronous requests (``Prefer: respond-async`` on a POST): 202 + ``Preference-Applied`` +
  ``Location`` of ``/services/rest/async/v1/job/{id}``; a repeated ``X-NetSuite-Idempotency-Key``
  answers 400 ``IDEMPOTENCY_ERROR`` with the first job's ``Location`` and runs nothing; job, task
  and task result under ``/services/rest/async/v1/job/…``;
- the psconnect time batch record and its map/reduce (timeBills per line, refusals per line), and
  SuiteQL over timeBills (``/services/rest/query/v1/suiteql``), in ``system_apis.netsuite.simulator._ledger``;
- invoice approval and standing, ``customerPayment`` applications, credit memos applied, and
  ``currencyRate`` records, with SuiteQL over the transaction links and ``currencyrate``, in
  ``system_apis.netsuite.simulator._receivables``;
- ``expenseReport`` rules (employee, period, category, job per line), ``expenseCategory`` records and
  SuiteQL over expense reports and categories, in ``system_apis.netsuite.simulator._expenses``;
- ``vendor`` and ``vendorBill`` rules, entities shared by subsidiary relationship records, representing
  subsidiaries and SuiteQL over intercompany documents, in ``system_apis.netsuite.simulator._intercompany``.

Supported ``q`` forms are listed in ``system_apis.netsuite.simulator._store``.
Docs: https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/section_156570709583.html
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import deque
from collections.abc import Callable, Collection
from typing import Any, Final

import msgspec
from litestar import Litestar, Request, Response, route
from litestar.params import FromPath

from system_apis._internal.faults import Fault, FaultPlan, control_router
from system_apis.demo_firm import HOME_ENTITIES, DemoFirm, firm_for
from system_apis.netsuite._billing_mapping import BATCH_RECORD
from system_apis.netsuite.client import (
    ASYNC_PATH,
    BASE_URL,
    CONCURRENCY_LIMIT_EXCEEDED,
    IDEMPOTENCY_ERROR,
    RECORD_PATH,
    SUITEQL_PATH,
    decode,
    encode,
)
from system_apis.netsuite.mapping import format_instant
from system_apis.netsuite.simulator._ledger import AsyncJobs, SimJob, TimeLedger
from system_apis.netsuite.simulator._store import RECORD_TYPES, NsError, RecordStore

__all__ = ["NetSuiteSimulator", "SeenRequest"]

_W3C: Final = "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html"
_TYPES: Final = {400: f"{_W3C}#sec10.4.1", 401: _W3C, 403: f"{_W3C}#sec10.4.4", 404: f"{_W3C}#sec10.4.5",
                 405: f"{_W3C}#sec10.4.6", 429: "https://tools.ietf.org/html/rfc6585#section-4",
                 500: f"{_W3C}#sec10.5.1", 502: f"{_W3C}#sec10.5.3", 503: f"{_W3C}#sec10.5.4",
                 504: f"{_W3C}#sec10.5.5"}
_TITLES: Final = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                  405: "Method Not Allowed", 429: "Too Many Requests", 500: "Internal Server Error",
                  502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


class SeenRequest(msgspec.Struct, frozen=True):
    """What the simulator saw of one request, for tests proving headers travel."""

    method: str
    path: str
    correlation_id: str | None
    traceparent: str | None


def _error(status: int, code: str, detail: str, *, path: str | None = None,
           headers: dict[str, str] | None = None) -> Response[bytes]:
    item: dict[str, str] = {"detail": detail, "o:errorCode": code}
    if path:
        item["o:errorPath"] = path
    body = {"type": _TYPES.get(status, _W3C), "title": _TITLES.get(status, "Error"), "status": status,
            "o:errorDetails": [item]}
    return Response(encode(body), status_code=status, media_type="application/vnd.oracle.resource+json",
                    headers=headers)


def _json(body: Any) -> Response[bytes]:
    return Response(encode(body), status_code=200, media_type="application/vnd.oracle.resource+json")


class NetSuiteSimulator:
    """NetSuite seeded with the demo firm: subsidiaries, periods, customers, jobs and employees.

    Args:
        seed: load the firm (subsidiaries keep the seed key, e.g. ``LE-US01``, as external id;
            customers the account key, jobs ``PRJ-A…``, employees the worker id).
        firm: the firm to seed; ``demo_firm()`` by default (the benchmark passes a 10,000-worker one).
        concurrency_limit: the account's concurrent request limit (NetSuite's lowest tier is 5).
        clock: source of ``createdDate``/``lastModifiedDate``.
        defer_postings: leave time batches ``PENDING`` until `run_postings` (the map/reduce has not
            run yet); by default a batch is posted as soon as its async job runs.
    """

    def __init__(self, *, seed: bool = True, firm: DemoFirm | None = None, concurrency_limit: int = 5,
                 legal_entities: Collection[str] = HOME_ENTITIES,
                 clock: Callable[[], dt.datetime] | None = None, defer_postings: bool = False) -> None:
        self.faults = FaultPlan()
        self.concurrency_limit = concurrency_limit
        self.in_flight = 0
        self.peak_in_flight = 0
        self.seen: deque[SeenRequest] = deque(maxlen=1000)
        self._seed = seed
        self._firm = firm
        self.legal_entities = tuple(legal_entities)
        self.defer_postings = defer_postings
        self._clock: Callable[[], dt.datetime] = clock or (lambda: dt.datetime.now(dt.UTC))
        self.store = RecordStore(self._clock)
        self.ledger = TimeLedger(self.store)
        self.async_jobs = AsyncJobs()
        self._app: Litestar | None = None
        self.reset()

    def count(self, record_type: str, external_id: str | None) -> int:
        """How many records of a NetSuite type exist (``customer``, ``job``, ``employee``, ``timeBill``,
        ``invoice``, ``creditMemo``, ``customerPayment``, ``currencyRate``, ``customrecord_psc_time_batch``,
        ``expenseReport``, ``expenseCategory``, ``customrecord_psc_expense_batch``, ``subsidiary``,
        ``accountingPeriod``, ``vendor``, ``vendorBill``, ``customerSubsidiaryRelationship``,
        ``vendorSubsidiaryRelationship``)."""
        if record_type == "timeBill":
            return self.ledger.count(external_id)
        return self.store.count(record_type, external_id)

    def run_postings(self) -> int:
        """Run the map/reduce over every pending time batch; returns how many it posted."""
        pending = [r for r in self.store.records[BATCH_RECORD].values()
                   if r.get("custrecord_psc_tb_status") == "PENDING"]
        for batch in pending:
            self.ledger.post_batch(batch)
        return len(pending)

    def void_invoice(self, external_id: str) -> None:
        """Void an invoice as a user would in NetSuite's UI (the REST record API has no void)."""
        self.store.receivables.void(self.store.find("invoice", f"eid:{external_id}"))

    def reset(self) -> None:
        """Back to the seeded state, faults cleared."""
        self.faults = FaultPlan()
        self.seen.clear()
        self.peak_in_flight = 0
        self.store = RecordStore(self._clock)
        if self._seed:
            self.store.seed(firm_for(self.legal_entities, self._firm))
        self.ledger = TimeLedger(self.store)
        self.async_jobs = AsyncJobs()

    @property
    def app(self) -> Litestar:
        if self._app is None:
            @route(RECORD_PATH + "/{rest:path}", http_method=["GET", "PUT", "POST", "PATCH", "DELETE"],
                   include_in_schema=False)
            async def record_api(request: Request[Any, Any, Any], rest: FromPath[str]) -> Response[bytes]:
                return await self._serve(request, rest)

            @route(ASYNC_PATH + "/job/{rest:path}", http_method=["GET"], include_in_schema=False)
            async def async_api(request: Request[Any, Any, Any], rest: FromPath[str]) -> Response[bytes]:
                return await self._serve(request, rest, self._async_dispatch)

            @route(SUITEQL_PATH, http_method=["POST"], include_in_schema=False)
            async def suiteql(request: Request[Any, Any, Any]) -> Response[bytes]:
                return await self._serve(request, "", self._suiteql)

            self._app = Litestar(route_handlers=[record_api, async_api, suiteql, control_router(self)],
                                 openapi_config=None)
        return self._app

    # ------------------------------------------------------------------ request pipeline

    async def _serve(self, request: Request[Any, Any, Any], rest: str,
                     handler: Callable[[Request[Any, Any, Any], list[str]], Any] | None = None) -> Response[bytes]:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            # Concurrency governance is checked first: NetSuite refuses the excess before any work.
            if self.in_flight > self.concurrency_limit:
                return _error(429, CONCURRENCY_LIMIT_EXCEEDED, "Concurrent request limit exceeded. Request blocked.")
            auth = request.headers.get("Authorization", "")
            if not auth.startswith(("Bearer ", "OAuth ")) or len(auth.split(" ", 1)[1].strip()) == 0:
                return _error(401, "INVALID_LOGIN", "Invalid login attempt. For more details, see the Login Audit "
                              "Trail in the NetSuite UI at Setup > Users/Roles > User Management > View Login "
                              "Audit Trail.")
            self.seen.append(SeenRequest(method=request.method, path=request.url.path,
                                         correlation_id=request.headers.get("X-Correlation-ID"),
                                         traceparent=request.headers.get("traceparent")))
            fault = self.faults.take(request.method, request.url.path)
            if fault is not None:
                await self.faults.delay_for(fault)
                if fault.kind != "slow":
                    return self._render_fault(fault)
            result: Response[bytes] = await (handler or self._dispatch)(request, [p for p in rest.split("/") if p])
            return result
        except NsError as exc:
            return _error(exc.status, exc.code, exc.detail, path=exc.path)
        finally:
            self.in_flight -= 1

    @staticmethod
    def _render_fault(fault: Fault) -> Response[bytes]:
        if fault.kind == "rate_limit":
            return _error(429, "REQUEST_LIMIT_EXCEEDED", fault.message or "Request limit exceeded.",
                          headers={"Retry-After": str(fault.retry_after)})
        if fault.kind == "concurrency_limit":
            return _error(429, CONCURRENCY_LIMIT_EXCEEDED, "Concurrent request limit exceeded. Request blocked.")
        if fault.kind == "timeout":
            return _error(504, "UNEXPECTED_ERROR", fault.message or "The request timed out.")
        if fault.kind == "business_error":
            status = fault.status if 400 <= fault.status < 500 else 400
            return _error(status, "USER_ERROR", fault.message or "Error while accessing a resource: simulated "
                          "business rule refusal.")
        status = fault.status if fault.status >= 500 else 503
        return _error(status, "UNEXPECTED_ERROR", fault.message or "An unexpected error occurred.")

    async def _dispatch(self, request: Request[Any, Any, Any], parts: list[str]) -> Response[bytes]:
        method = request.method
        if not parts or (parts[0] not in RECORD_TYPES and parts[0] != "timeBill"):
            raise NsError(404, "INVALID_RCRD_TYPE", f"Record type '{parts[0] if parts else ''}' does not exist.")
        record_type = parts[0]
        if method == "POST" and len(parts) == 1 and "respond-async" in request.headers.get("Prefer", ""):
            return await self._submit_async(request, record_type)
        if record_type == "timeBill":
            if method != "GET" or len(parts) != 2:
                raise NsError(405, "INVALID_PARAMETER", "timeBills are written by the psconnect time batch "
                              "script only; read them one by one or through SuiteQL.")
            return _json(self.ledger.render(parts[1], BASE_URL + RECORD_PATH))
        if len(parts) > 2:
            raise NsError(400, "INVALID_PARAMETER", "Subresource access is not supported by this simulator.")
        if len(parts) == 1:
            if method == "GET":
                return self._collection(request, record_type)
            if method == "POST":
                return self._written(record_type, self.store.create(record_type, await self._body(request)))
        else:
            key = parts[1]
            replace = {s for s in request.query_params.get("replace", "").split(",") if s}
            if method == "GET":
                expand = request.query_params.get("expandSubResources", "false").lower() == "true"
                record = self.store.find(record_type, key)
                return _json(self.store.render(record_type, record, expand=expand, root=BASE_URL + RECORD_PATH))
            if method == "PUT":
                if not key.startswith("eid:") or len(key) == 4:
                    raise NsError(400, "INVALID_PARAMETER", "PUT (upsert) requires an external ID key: eid:<value>.")
                internal, _created = self.store.upsert(record_type, key[4:], await self._body(request), replace)
                return self._written(record_type, internal)
            if method == "PATCH":
                return self._written(record_type, self.store.patch(record_type, key, await self._body(request),
                                                                   replace))
        raise NsError(405, "INVALID_PARAMETER", f"{method} is not allowed on this resource.")

    def _collection(self, request: Request[Any, Any, Any], record_type: str) -> Response[bytes]:
        try:
            limit = int(request.query_params.get("limit", "1000"))
            offset = int(request.query_params.get("offset", "0"))
        except ValueError:
            raise NsError(400, "INVALID_PARAMETER", "limit and offset must be integers.") from None
        if not 1 <= limit <= 1000:
            raise NsError(400, "INVALID_PARAMETER", "Invalid value for limit; it must be between 1 and 1000.", "limit")
        if offset < 0 or offset % limit:
            raise NsError(400, "INVALID_PARAMETER", "Invalid value for offset; it must be a multiple of limit.",
                          "offset")
        q = request.query_params.get("q")
        ids = self.store.ids(record_type, q)
        page = ids[offset:offset + limit]
        has_more = offset + len(page) < len(ids)
        root = f"{BASE_URL}{RECORD_PATH}/{record_type}"
        links = [{"rel": "self", "href": f"{root}?limit={limit}&offset={offset}"}]
        if has_more:
            links.insert(0, {"rel": "next", "href": f"{root}?limit={limit}&offset={offset + limit}"})
        return _json({"links": links, "count": len(page), "hasMore": has_more, "offset": offset,
                      "totalResults": len(ids),
                      "items": [{"links": [{"rel": "self", "href": f"{root}/{i}"}], "id": i} for i in page]})

    # ------------------------------------------------------------------ async requests

    async def _submit_async(self, request: Request[Any, Any, Any], record_type: str) -> Response[bytes]:
        key = request.headers.get("X-NetSuite-Idempotency-Key")
        if key is not None:
            try:
                uuid.UUID(key)
            except ValueError:
                raise NsError(400, "INVALID_PARAMETER", "The idempotency key must be a UUID.") from None
            if key in self.async_jobs.by_key:
                return _error(400, IDEMPOTENCY_ERROR, "A request with the same idempotency key is already "
                              "submitted. See the \"Location\" header for a link to the previously submitted job",
                              headers={"Location": self._job_url(self.async_jobs.by_key[key]),
                                       "Preference-Applied": "respond-async"})
        body = await self._body(request)
        job = self.async_jobs.open(key or str(uuid.uuid4()), record_type, format_instant(self._clock()))
        # The async processor picks the job up at once here; real NetSuite queues it for seconds.
        try:
            if record_type == BATCH_RECORD:
                body = {**body, "custrecord_psc_tb_status": "PENDING"}
            internal = self.store.create(record_type, body)
            job.location = f"{BASE_URL}{RECORD_PATH}/{record_type}/{internal}"
            job.progress, job.status = "succeeded", 204
            if record_type == BATCH_RECORD and not self.defer_postings:
                self.ledger.post_batch(self.store.records[BATCH_RECORD][internal])
        except NsError as exc:
            job.progress, job.status, job.error = "failed", exc.status, exc
        job.completed, job.ended = True, format_instant(self._clock())
        return Response(b"", status_code=202, media_type="application/json",
                        headers={"Location": self._job_url(job.id), "Preference-Applied": "respond-async"})

    @staticmethod
    def _job_url(job_id: str) -> str:
        return f"{BASE_URL}{ASYNC_PATH}/job/{job_id}"

    async def _async_dispatch(self, request: Request[Any, Any, Any], parts: list[str]) -> Response[bytes]:
        job = self.async_jobs.find(parts[0] if parts else "")
        url = self._job_url(job.id)
        if len(parts) == 1:
            return _json({"links": [{"rel": "self", "href": url}], "completed": job.completed, "id": job.id,
                          "progress": job.progress, "task": {"links": [{"rel": "self", "href": f"{url}/task"}]}})
        if parts[1] != "task" or len(parts) > 4 or (len(parts) >= 3 and parts[2] != "1"):
            raise NsError(404, "NONEXISTENT_ID", "The async task does not exist.")
        if len(parts) == 2:
            return _json({"links": [{"rel": "self", "href": f"{url}/task"}], "count": 1, "hasMore": False,
                          "offset": 0, "totalResults": 1,
                          "items": [{"links": [{"rel": "self", "href": f"{url}/task/1"}], "id": "1"}]})
        if len(parts) == 3:
            return _json({"links": [{"rel": "related", "href": f"{url}/task/1/result"},
                                    {"rel": "self", "href": f"{url}/task/1"}],
                          "completed": job.completed, "id": "1", "progress": job.progress,
                          "startTime": job.started, "endTime": job.ended})
        if parts[3] != "result" or not job.completed:
            raise NsError(404, "NONEXISTENT_ID", "The task has no result yet.")
        return self._job_result(job)

    def _job_result(self, job: SimJob) -> Response[bytes]:
        if job.error is not None:
            return _error(job.error.status, job.error.code, job.error.detail, path=job.error.path)
        internal = str(job.location).rsplit("/", 1)[-1]
        record = self.store.find(job.record_type, internal)
        return _json(self.store.render(job.record_type, record, expand=False, root=BASE_URL + RECORD_PATH))

    async def _suiteql(self, request: Request[Any, Any, Any], _parts: list[str]) -> Response[bytes]:
        if request.headers.get("Prefer", "").lower() != "transient":
            raise NsError(400, "INVALID_PARAMETER", "SuiteQL requests need the header Prefer: transient.")
        try:
            limit = int(request.query_params.get("limit", "1000"))
            offset = int(request.query_params.get("offset", "0"))
        except ValueError:
            raise NsError(400, "INVALID_PARAMETER", "limit and offset must be integers.") from None
        if not 1 <= limit <= 1000 or offset < 0:
            raise NsError(400, "INVALID_PARAMETER", "Invalid value for limit or offset.", "limit")
        statement = str((await self._body(request)).get("q") or "")
        answered = self.store.receivables.query(statement)
        if answered is None:
            answered = self.store.expenses.query(statement)
        if answered is None:
            answered = self.store.intercompany.query(statement)
        if answered is not None:
            rows, total = answered[offset:offset + limit], len(answered)
        else:
            rows, total = self.ledger.query(statement, limit, offset)
        root = BASE_URL + SUITEQL_PATH
        links = [{"rel": "self", "href": f"{root}?limit={limit}&offset={offset}"}]
        has_more = offset + len(rows) < total
        if has_more:
            links.insert(0, {"rel": "next", "href": f"{root}?limit={limit}&offset={offset + limit}"})
        return _json({"links": links, "count": len(rows), "hasMore": has_more, "items": rows, "offset": offset,
                      "totalResults": total})

    @staticmethod
    async def _body(request: Request[Any, Any, Any]) -> dict[str, Any]:
        try:
            body = decode(await request.body())
        except (msgspec.DecodeError, ValueError):
            raise NsError(400, "INVALID_CONTENT", "The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise NsError(400, "INVALID_CONTENT", "The request body must be a JSON object.")
        return body

    @staticmethod
    def _written(record_type: str, internal_id: str) -> Response[bytes]:
        return Response(b"", status_code=204,
                        headers={"Location": f"{BASE_URL}{RECORD_PATH}/{record_type}/{internal_id}"})
