"""A stateful Certinia PSA org in memory, speaking the Salesforce REST API (v60.0) at Salesforce's own paths.

It reproduces what an adapter must cope with against a real org: the OAuth 2.0 token endpoint
(client credentials; the answer carries ``issued_at`` but no ``expires_in``) whose sessions lapse
after `session_seconds` and can be revoked, 401 INVALID_SESSION_ID on a lapsed or unknown token,
SOQL query batches linked by ``nextRecordsUrl`` (with parent relationship fields nested as
Salesforce nests them; ContentDocumentLink only with an id filter, as Salesforce restricts it),
receipt files read by sObject Blob Retrieve (``/sobjects/ContentVersion/{id}/VersionData``),
external-id upserts (201/200/300, ``updateOnly``), error lists ``[{message, errorCode, fields}]``,
``Sforce-Limit-Info`` on every answer, and injected faults rendered as Salesforce renders them
(429/503 REQUEST_LIMIT_EXCEEDED with Retry-After, 5xx UNKNOWN_EXCEPTION, 504 REQUEST_RUNNING_TOO_LONG).
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm
https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_client_credentials_flow.htm
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import secrets
import time
from collections.abc import Callable, Collection
from typing import Annotated, Any, Final

import msgspec
from litestar import Litestar, Request, Response, Router, get, patch, post
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery, QueryParameter

from system_apis._internal.faults import FaultPlan, ReceivedRequest, control_router, received
from system_apis._internal.force_rest import TOKEN_PATH, decode_json
from system_apis._internal.force_soql import SoqlError, matches, parse
from system_apis.certinia.mapping import EXTERNAL_ID_FIELD
from system_apis.certinia.simulator._org import API_PATH, SCHEMA, ApiError, Org, Record, query_schema, salesforce_id
from system_apis.certinia.simulator._seed import seed_firm
from system_apis.demo_delivery import DEMO_PERIOD
from system_apis.demo_firm import DemoFirm, demo_firm

__all__ = ["CLIENT_ID", "CLIENT_SECRET", "CertiniaSimulator"]

API_LIMIT: Final = 100_000
CLIENT_ID: Final = "psconnect-certinia"
CLIENT_SECRET: Final = "sim-secret"
_ENCODER = msgspec.json.Encoder(decimal_format="number")
_QUERY_SCHEMA: Final = query_schema()
_firm = functools.cache(demo_firm)
"""The demo firm, built once per process (1.5 s a build): seeding only reads it."""


class CertiniaSimulator:
    """An in-memory Certinia PSA org.

    Args:
        legal_entities: the demo firm's entities whose PSA data lives in this org (CA01 by default:
            the acquired Canadian entity; a code the demo firm lacks seeds nothing).
        seed: seed the firm at all (False: an empty org).
        firm: the firm to seed (a small one in tests); the demo firm by default.
        time_period: seed timecards and expenses for these dates (first, last); None seeds neither.
        demo_time: seed the demo period's timecards and expenses (October 2026, as the Harvest simulator does) when no
            ``time_period`` is given — what embedded mode asks for in the connections file.
        batch_size: records per query batch; Salesforce sends at most 2,000 and may send fewer.
        session_seconds: how long an issued access token is valid (the org's session timeout).
        static_tokens: tokens always accepted (embedded mode's fixed token), besides issued ones.
        clock: seconds since the epoch; tests move it to make sessions lapse.
    """

    def __init__(self, *, legal_entities: Collection[str] = ("CA01",), seed: bool = True, firm: DemoFirm | None = None,
                 time_period: tuple[dt.date, dt.date] | None = None, demo_time: bool = False, batch_size: int = 2000,
                 session_seconds: float = 7200.0, static_tokens: Collection[str] = ("sim-token",),
                 clock: Callable[[], float] = time.time) -> None:
        self.legal_entities = tuple(legal_entities)
        self._seed = seed
        self._firm = firm
        self.time_period = time_period or (DEMO_PERIOD if demo_time else None)
        self.batch_size = batch_size
        self.session_seconds = session_seconds
        self.static_tokens = frozenset(static_tokens)
        self.clock = clock
        self.faults = FaultPlan()
        self.org = Org(clock)
        self.tokens: dict[str, float] = {}
        self.tokens_issued = 0
        self.received: list[ReceivedRequest] = []
        self.api_usage = 0
        self._cursors: dict[str, list[Record]] = {}
        self._locators = itertools.count(1)
        self._app: Litestar | None = None
        self.reset()

    # -- state ---------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the seeded org: records, sessions, counters, open query cursors; faults cleared."""
        self.faults.clear()
        self.org = Org(self.clock)
        self.tokens.clear()
        self.tokens_issued = 0
        self.received.clear()
        self.api_usage = 0
        self._cursors.clear()
        self._locators = itertools.count(1)
        if self._seed:
            seed_firm(self.org, self._firm or _firm(), self.legal_entities, self.time_period)

    def count(self, record_type: str, external_id: str | None = None) -> int:
        """How many records of `record_type` (an sObject name) exist, optionally with that External_Id__c."""
        records = self.org.tables.get(record_type, {}).values()
        return sum(1 for r in records if external_id is None or r.get(EXTERNAL_ID_FIELD) == external_id)

    def revoke_sessions(self) -> None:
        """Every issued token stops working at once, as when an admin revokes the connected app's sessions."""
        self.tokens.clear()

    def records(self, sobject: str) -> list[Record]:
        return list(self.org.tables[sobject].values())

    # -- auth ----------------------------------------------------------------------------------------
    def _issue(self, form: dict[str, str]) -> Response[bytes]:
        if form.get("grant_type") != "client_credentials":
            return self._json({"error": "unsupported_grant_type", "error_description": "grant type not supported"},
                              400)
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return self._json({"error": "invalid_client", "error_description": "invalid client credentials"}, 400)
        token = "00DCa0000000001!" + secrets.token_urlsafe(24)
        now = self.clock()
        self.tokens[token] = now
        self.tokens_issued += 1
        return self._json({"access_token": token, "signature": secrets.token_urlsafe(16), "scope": "api",
                           "instance_url": "https://meridian-ca.my.salesforce.com",
                           "id": "https://login.salesforce.com/id/00DCa0000000001/005Ca0000000001",
                           "token_type": "Bearer", "issued_at": str(int(now * 1000))})

    def _authorised(self, token: str) -> bool:
        if token in self.static_tokens:
            return True
        issued = self.tokens.get(token)
        return issued is not None and self.clock() - issued < self.session_seconds

    # -- wire protocol -------------------------------------------------------------------------------
    def _query(self, soql: str) -> dict[str, Any]:
        try:
            query = parse(soql, _QUERY_SCHEMA)
        except SoqlError as exc:
            raise ApiError(400, exc.code, exc.message) from exc
        if query.sobject == "ContentDocumentLink" and not any(
                c.field in ("Id", "LinkedEntityId", "ContentDocumentId") and c.op in ("=", "IN") for c in query.where):
            raise ApiError(400, "MALFORMED_QUERY", "Implementation restriction: ContentDocumentLink requires a filter "
                           "by a single Id on ContentDocumentId or LinkedEntityId using the equals operator or "
                           "multiple Id's using the IN operator.")
        paths = {c.field for c in query.where if "." in c.field}
        rows = [r for r in self.org.tables[query.sobject].values() if matches(self.org.flat(r, paths), query.where)]
        if query.order_by:
            key = query.order_by
            rows.sort(key=lambda r: (r.get(key) is None, str(r.get(key)) if r.get(key) is not None else ""),
                      reverse=query.descending)
        if query.limit is not None:
            rows = rows[:query.limit]
        rendered = [self.org.render(query.sobject, r, query.fields) for r in rows]
        locator = salesforce_id("01g", next(self._locators))[:15]
        self._cursors[locator] = rendered
        return self._batch(locator, 0)

    def _batch(self, locator: str, offset: int) -> dict[str, Any]:
        rows = self._cursors.get(locator)
        if rows is None or offset > len(rows):
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        end = offset + self.batch_size
        body: dict[str, Any] = {"totalSize": len(rows), "done": end >= len(rows), "records": rows[offset:end]}
        if end < len(rows):
            body["nextRecordsUrl"] = f"{API_PATH}/query/{locator}-{end}"
        else:
            del self._cursors[locator]
        return body

    def _upsert(self, sobject: str, field: str, value: str, body: Any, update_only: bool) -> Response[bytes]:
        table = self.org.table(sobject)
        if field not in (EXTERNAL_ID_FIELD, "Id") or field not in SCHEMA[sobject]:
            raise ApiError(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: "
                           f"{field}")
        found = [r for r in table.values() if str(r.get(field) or "").casefold() == value.casefold()]
        if len(found) > 1:
            return self._json([f"{API_PATH}/sobjects/{sobject}/{r['Id']}" for r in found], 300)
        if found:
            record = found[0]
            self.org.update(sobject, record, self.org.validate(sobject, body, creating=False))
            return self._json({"id": record["Id"], "success": True, "errors": [], "created": False}, 200)
        if update_only:
            raise ApiError(404, "NOT_FOUND", f"Provided external ID field value not found: {value}")
        fields = self.org.validate(sobject, body, creating=True)
        fields[field] = value
        return self._json({"id": self.org.insert(sobject, fields), "success": True, "errors": [], "created": True},
                          201)

    def _json(self, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response[bytes]:
        return Response(_ENCODER.encode(body), status_code=status, media_type="application/json",
                        headers={**self._limit_header(), **(headers or {})})

    def _limit_header(self) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={self.api_usage}/{API_LIMIT}"}

    def _error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response[bytes]:
        return self._json(ApiError(status, code, message).body, status, headers)

    async def _gate(self, request: Request[Any, Any, Any]) -> Response[bytes] | None:
        """Before every REST route: record, authenticate, count, then any injected fault."""
        self.received.append(received(request))
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not self._authorised(auth[7:].strip()):
            return self._error(401, "INVALID_SESSION_ID", "Session expired or invalid")
        self.api_usage += 1
        fault = self.faults.take(request.method, request.url.path)
        if fault is None:
            return None
        await self.faults.delay_for(fault)
        if fault.kind == "slow":
            return None
        retry = {"Retry-After": str(fault.retry_after)}
        if fault.kind == "timeout":
            return self._error(504, "REQUEST_RUNNING_TOO_LONG",
                               fault.message or "Your request was running for too long, and has been stopped.")
        if fault.kind == "rate_limit":
            return self._error(429, "REQUEST_LIMIT_EXCEEDED", fault.message or "TotalRequests Limit exceeded.", retry)
        if fault.kind == "concurrency_limit":
            return self._error(503, "REQUEST_LIMIT_EXCEEDED",
                               fault.message or "ConcurrentPerOrgLongTxn Limit exceeded.", retry)
        if fault.kind == "business_error":
            return self._error(400, "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                               fault.message or "Timecards cannot be saved for a closed time period.")
        return self._error(fault.status, "UNKNOWN_EXCEPTION", fault.message or "An unexpected error occurred. "
                           "Please include this ErrorId if you contact support: 1234567890-12345 (-1234567890)")

    @property
    def app(self) -> Litestar:
        """The org as an ASGI app; built once, so state and faults stay shared with this object."""
        if self._app is None:
            self._app = self._build_app()
        return self._app

    def _build_app(self) -> Litestar:
        sim = self

        @post(TOKEN_PATH, status_code=200)
        async def token(request: Request[Any, Any, Any]) -> Response[bytes]:
            form = await request.form()
            return sim._issue({k: str(v) for k, v in form.items()})

        @get("/query", sync_to_thread=False)
        def query(q: FromQuery[str | None] = None) -> Response[bytes]:
            if not q:
                raise ApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
            return sim._json(sim._query(q))

        @get("/query/{locator:str}", sync_to_thread=False)
        def query_more(locator: FromPath[str]) -> Response[bytes]:
            name, _, offset = locator.rpartition("-")
            if not name or not offset.isdigit():
                raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            return sim._json(sim._batch(name, int(offset)))

        @get("/limits", sync_to_thread=False)
        def limits() -> Response[bytes]:
            return sim._json({"DailyApiRequests": {"Max": API_LIMIT, "Remaining": API_LIMIT - sim.api_usage}})

        @get("/sobjects/{sobject:str}/{record_id:str}", sync_to_thread=False)
        def retrieve(sobject: FromPath[str], record_id: FromPath[str],
                     fields: FromQuery[str | None] = None) -> Response[bytes]:
            record = sim.org.find(sobject, record_id)
            wanted = [f.strip() for f in fields.split(",")] if fields else None
            for name in wanted or []:
                if name not in _QUERY_SCHEMA[sobject]:
                    raise ApiError(400, "INVALID_FIELD", f"No such column '{name}' on entity '{sobject}'")
            return sim._json(sim.org.render(sobject, record, wanted))

        @get("/sobjects/{sobject:str}/{field:str}/{value:str}", sync_to_thread=False)
        def blob(sobject: FromPath[str], field: FromPath[str], value: FromPath[str]) -> Response[bytes]:
            # sObject Blob Retrieve: /sobjects/{type}/{id}/{blobField} (path names shared with the upsert route).
            record = sim.org.find(sobject, field)
            data = sim.org.blobs.get((str(record["Id"]), value))
            if data is None:
                raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
            return Response(data, media_type="application/octet-stream", headers=sim._limit_header())

        @patch("/sobjects/{sobject:str}/{record_id:str}")
        async def update(request: Request[Any, Any, Any], sobject: FromPath[str],
                         record_id: FromPath[str]) -> Response[bytes]:
            record = sim.org.find(sobject, record_id)
            sim.org.update(sobject, record, sim.org.validate(sobject, _decode(await request.body()), creating=False))
            return Response(b"", status_code=204, headers=sim._limit_header())

        @patch("/sobjects/{sobject:str}/{field:str}/{value:str}")
        async def upsert(request: Request[Any, Any, Any], sobject: FromPath[str], field: FromPath[str],
                         value: FromPath[str],
                         update_only: Annotated[bool, QueryParameter(name="updateOnly")] = False) -> Response[bytes]:
            return sim._upsert(sobject, field, value, _decode(await request.body()), update_only)

        async def gate(request: Request[Any, Any, Any]) -> Response[bytes] | None:
            # A plain function, not the bound method: Litestar deep-copies hooks.
            return await sim._gate(request)

        rest = Router(path=API_PATH, route_handlers=[query, query_more, limits, retrieve, blob, update, upsert],
                      before_request=gate, include_in_schema=False)

        def vendor_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[bytes]:
            return sim._json(exc.body, exc.status, exc.headers)

        def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
            code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "INVALID_REQUEST")
            return sim._error(exc.status_code, code, str(exc.detail))

        return Litestar(route_handlers=[token, rest, control_router(self)], openapi_config=None,
                        exception_handlers={ApiError: vendor_error, HTTPException: http_error})


def _decode(body: bytes) -> Any:
    try:
        return decode_json(body) if body else None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "JSON_PARSER_ERROR", f"Unexpected character: {exc}") from exc
