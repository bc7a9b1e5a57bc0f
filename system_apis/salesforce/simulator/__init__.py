"""A stateful Salesforce org in memory, speaking REST v60.0 at Salesforce's own paths.

Seeded with the demo firm (seed keys kept in External_Id__c). It reproduces what an
adapter must cope with: SOQL query batches linked by `nextRecordsUrl`, external-id
upsert semantics (201/200/300, `updateOnly`), error lists `[{message, errorCode}]`,
`Sforce-Limit-Info` on every answer, 401 INVALID_SESSION_ID without a Bearer token,
and injected faults rendered as Salesforce renders them.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Collection
from typing import Annotated, Any, Final, NamedTuple

import msgspec
from litestar import Litestar, Request, Response, Router, get, patch
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery, QueryParameter

from system_apis._internal.faults import FaultPlan, control_router
from system_apis._internal.force_soql import SoqlError, matches, parse
from system_apis.demo_firm import HOME_ENTITIES, firm_for
from system_apis.salesforce.client import API_PATH, decode_json
from system_apis.salesforce.mapping import (
    ACCOUNT_FIELDS,
    ACCOUNT_PREFIX,
    EXTERNAL_ID_FIELD,
    OPPORTUNITY_FIELDS,
    OPPORTUNITY_PREFIX,
    account_to_sf,
    opportunity_to_sf,
)

__all__ = ["SalesforceApiError", "SalesforceSimulator", "SeenRequest"]

API_LIMIT: Final = 5000
_ENCODER = msgspec.json.Encoder(decimal_format="number")
_SCHEMA: Final = {"Account": frozenset(ACCOUNT_FIELDS), "Opportunity": frozenset(OPPORTUNITY_FIELDS)}
_PREFIX: Final = {"Account": ACCOUNT_PREFIX, "Opportunity": OPPORTUNITY_PREFIX}
_READ_ONLY: Final = frozenset({"Id", "IsWon"})
_REQUIRED: Final = {"Account": ("Name",), "Opportunity": ("Name", "StageName", "CloseDate")}
_BASE62: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHECKSUM: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def salesforce_id(prefix: str, number: int) -> str:
    """An 18-character id: key prefix, pod, counter, and Salesforce's case-checksum suffix.

    https://help.salesforce.com/s/articleView?id=000385008&type=1
    """
    digits = ""
    while True:
        number, rest = divmod(number, 62)
        digits = _BASE62[rest] + digits
        if not number:
            break
    short = f"{prefix}Hs0{digits.rjust(9, '0')}"
    suffix = "".join(
        _CHECKSUM[sum(1 << i for i, ch in enumerate(short[chunk * 5:chunk * 5 + 5]) if "A" <= ch <= "Z")]
        for chunk in range(3)
    )
    return short + suffix


class SalesforceApiError(Exception):
    """Raise in a simulator route to answer with Salesforce's error list."""

    def __init__(self, status: int, code: str, message: str, *, fields: list[str] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body: list[dict[str, Any]] = [{"message": message, "errorCode": code, "fields": fields or []}]
        self.headers = headers or {}


class SeenRequest(NamedTuple):
    """What the simulator saw of one vendor request, for tests on correlation propagation."""

    method: str
    path: str
    correlation_id: str | None
    traceparent: str | None


class SalesforceSimulator:
    """An in-memory Salesforce org.

    Args:
        seed: load the demo firm's accounts and opportunities.
        batch_size: records per query batch; Salesforce sends at most 2,000 and may send fewer.
    """

    def __init__(self, *, seed: bool = True, batch_size: int = 2000,
                 legal_entities: Collection[str] = HOME_ENTITIES) -> None:
        self.legal_entities = tuple(legal_entities)
        self.batch_size = batch_size
        self.faults = FaultPlan()
        self._seed = seed
        self.records: dict[str, dict[str, dict[str, Any]]] = {}
        self.requests: list[SeenRequest] = []
        self.api_usage = 0
        self._cursors: dict[str, list[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._locators = itertools.count(1)
        self._app: Litestar | None = None
        self.reset()

    # -- state ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the seeded org: records, counters, open query cursors; faults cleared."""
        self.faults.clear()
        self.records = {name: {} for name in _SCHEMA}
        self.requests.clear()
        self.api_usage = 0
        self._cursors.clear()
        self._ids = itertools.count(1)
        self._locators = itertools.count(1)
        if not self._seed:
            return
        firm = firm_for(self.legal_entities)
        account_ids: dict[str, str] = {}
        for account in firm.accounts:
            account_ids[account.id] = self._insert("Account", account_to_sf(account))
        for opp in firm.opportunities:
            fields = opportunity_to_sf(opp, account_id=account_ids[opp.account_id], external_id=opp.id)
            self._insert("Opportunity", fields)

    def _insert(self, sobject: str, fields: dict[str, Any]) -> str:
        record_id = salesforce_id(_PREFIX[sobject], next(self._ids))
        record: dict[str, Any] = dict.fromkeys(_SCHEMA[sobject])
        record.update(copy.deepcopy(fields))
        record["Id"] = record_id
        self._derive(sobject, record)
        self.records[sobject][record_id] = record
        return record_id

    @staticmethod
    def _derive(sobject: str, record: dict[str, Any]) -> None:
        if sobject == "Opportunity":
            record["IsWon"] = record.get("StageName") == "Closed Won"

    def count(self, record_type: str, external_id: str | None = None) -> int:
        """How many records of `record_type` (Account, Opportunity) exist, optionally with that external id."""
        records = self.records.get(record_type, {}).values()
        return sum(1 for r in records if external_id is None or r.get(EXTERNAL_ID_FIELD) == external_id)

    def _find(self, sobject: str, record_id: str) -> dict[str, Any]:
        table = self._table(sobject)
        record = table.get(record_id) if len(record_id) == 18 else next(
            (r for key, r in table.items() if key[:15] == record_id), None)
        if record is None:
            raise SalesforceApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return record

    def _table(self, sobject: str) -> dict[str, dict[str, Any]]:
        if sobject not in self.records:
            raise SalesforceApiError(404, "NOT_FOUND", f"The requested resource does not exist: sObject type "
                                     f"'{sobject}' is not supported.")
        return self.records[sobject]

    def _render(self, sobject: str, record: dict[str, Any], fields: list[str] | None = None) -> dict[str, Any]:
        url = f"{API_PATH}/sobjects/{sobject}/{record['Id']}"
        shown = fields if fields is not None else list(_SCHEMA[sobject])
        return {"attributes": {"type": sobject, "url": url}, **{f: record.get(f) for f in shown}}

    def _validate(self, sobject: str, body: Any, *, creating: bool) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise SalesforceApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
        for name in body:
            if name == "attributes":
                continue
            if name not in _SCHEMA[sobject]:
                raise SalesforceApiError(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type "
                                         f"{sobject}", fields=[name])
            if name in _READ_ONLY:
                raise SalesforceApiError(400, "INVALID_FIELD_FOR_INSERT_UPDATE", f"Unable to create/update "
                                         f"fields: {name}. Please check the security settings of this field.",
                                         fields=[name])
        fields = {k: v for k, v in body.items() if k != "attributes"}
        if creating:
            missing = [f for f in _REQUIRED[sobject] if fields.get(f) in (None, "")]
            if missing:
                raise SalesforceApiError(400, "REQUIRED_FIELD_MISSING",
                                         f"Required fields are missing: [{', '.join(missing)}]", fields=missing)
        return fields

    # -- wire protocol -------------------------------------------------------------------
    def _query(self, soql: str) -> dict[str, Any]:
        try:
            query = parse(soql, _SCHEMA)
        except SoqlError as exc:
            raise SalesforceApiError(400, exc.code, exc.message) from exc
        rows = [r for r in self.records[query.sobject].values() if matches(r, query.where)]
        if query.order_by:
            key = query.order_by
            rows.sort(key=lambda r: (r.get(key) is None, r.get(key) if r.get(key) is not None else ""),
                      reverse=query.descending)
        if query.limit is not None:
            rows = rows[:query.limit]
        rendered = [self._render(query.sobject, r, query.fields) for r in rows]
        locator = salesforce_id("01g", next(self._locators))[:15]
        self._cursors[locator] = rendered
        return self._batch(locator, 0)

    def _batch(self, locator: str, offset: int) -> dict[str, Any]:
        rows = self._cursors.get(locator)
        if rows is None or offset > len(rows):
            raise SalesforceApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        end = offset + self.batch_size
        body: dict[str, Any] = {"totalSize": len(rows), "done": end >= len(rows), "records": rows[offset:end]}
        if end < len(rows):
            body["nextRecordsUrl"] = f"{API_PATH}/query/{locator}-{end}"
        else:
            del self._cursors[locator]
        return body

    def _upsert(self, sobject: str, field: str, value: str, body: Any, update_only: bool) -> Response[bytes]:
        table = self._table(sobject)
        if field not in (EXTERNAL_ID_FIELD, "Id"):
            raise SalesforceApiError(404, "NOT_FOUND", f"Provided external ID field does not exist or is not "
                                     f"accessible: {field}")
        found = [r for r in table.values() if str(r.get(field) or "").casefold() == value.casefold()]
        if len(found) > 1:
            urls = [f"{API_PATH}/sobjects/{sobject}/{r['Id']}" for r in found]
            return self._json(urls, 300)
        if found:
            record = found[0]
            record.update(self._validate(sobject, body, creating=False))
            self._derive(sobject, record)
            return self._json({"id": record["Id"], "success": True, "errors": [], "created": False}, 200)
        if update_only:
            raise SalesforceApiError(404, "NOT_FOUND", f"Provided external ID field value not found: {value}")
        fields = self._validate(sobject, body, creating=True)
        fields[field] = value
        record_id = self._insert(sobject, fields)
        return self._json({"id": record_id, "success": True, "errors": [], "created": True}, 201)

    def _json(self, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response[bytes]:
        return Response(_ENCODER.encode(body), status_code=status, media_type="application/json",
                        headers={**self._limit_header(), **(headers or {})})

    def _limit_header(self) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={self.api_usage}/{API_LIMIT}"}

    def _error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response[bytes]:
        return self._json(SalesforceApiError(status, code, message).body, status, headers)

    async def _gate(self, request: Request[Any, Any, Any]) -> Response[bytes] | None:
        """Runs before every vendor route: auth, accounting, then any injected fault."""
        headers = request.headers
        self.requests.append(SeenRequest(request.method, request.url.path, headers.get("x-correlation-id"),
                                         headers.get("traceparent")))
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return self._error(401, "INVALID_SESSION_ID", "Session expired or invalid")
        self.api_usage += 1
        fault = self.faults.take(request.method, request.url.path)
        if fault is None:
            return None
        await self.faults.delay_for(fault)
        if fault.kind == "slow":
            return None
        if fault.kind == "timeout":
            return self._error(504, "REQUEST_RUNNING_TOO_LONG",
                               fault.message or "Your request was running for too long, and has been stopped.")
        return self._render_fault(fault.kind, fault.status, fault.retry_after, fault.message)

    def _render_fault(self, kind: str, status: int, retry_after: int, message: str | None) -> Response[bytes]:
        retry = {"Retry-After": str(retry_after)}
        if kind == "rate_limit":
            return self._error(429, "REQUEST_LIMIT_EXCEEDED", message or "TotalRequests Limit exceeded.", retry)
        if kind == "concurrency_limit":
            return self._error(503, "REQUEST_LIMIT_EXCEEDED", message or "ConcurrentPerOrgLongTxn Limit exceeded.",
                               retry)
        if kind == "business_error":
            return self._error(400, "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                               message or "Legal entity is required before the stage can change.")
        return self._error(status, "UNKNOWN_EXCEPTION", message or "An unexpected error occurred. Please include "
                           "this ErrorId if you contact support: 1234567890-12345 (-1234567890)")

    @property
    def app(self) -> Litestar:
        """The org as an ASGI app; built once, so state and faults stay shared with this object."""
        if self._app is None:
            self._app = self._build_app()
        return self._app

    def _build_app(self) -> Litestar:
        sim = self

        @get("/query", sync_to_thread=False)
        def query(q: FromQuery[str | None] = None) -> Response[bytes]:
            if not q:
                raise SalesforceApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
            return sim._json(sim._query(q))

        @get("/query/{locator:str}", sync_to_thread=False)
        def query_more(locator: FromPath[str]) -> Response[bytes]:
            name, _, offset = locator.rpartition("-")
            if not name or not offset.isdigit():
                raise SalesforceApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            return sim._json(sim._batch(name, int(offset)))

        @get("/limits", sync_to_thread=False)
        def limits() -> Response[bytes]:
            usage = {"Max": API_LIMIT, "Remaining": API_LIMIT - sim.api_usage}
            return sim._json({"DailyApiRequests": usage})

        @get("/sobjects/{sobject:str}/{record_id:str}", sync_to_thread=False)
        def retrieve(sobject: FromPath[str], record_id: FromPath[str],
                     fields: FromQuery[str | None] = None) -> Response[bytes]:
            record = sim._find(sobject, record_id)
            wanted = [f.strip() for f in fields.split(",")] if fields else None
            for name in wanted or []:
                if name not in _SCHEMA[sobject]:
                    raise SalesforceApiError(400, "INVALID_FIELD", f"No such column '{name}' on entity '{sobject}'")
            return sim._json(sim._render(sobject, record, wanted))

        @patch("/sobjects/{sobject:str}/{record_id:str}")
        async def update(request: Request[Any, Any, Any], sobject: FromPath[str],
                         record_id: FromPath[str]) -> Response[bytes]:
            record = sim._find(sobject, record_id)
            record.update(sim._validate(sobject, _decode(await request.body()), creating=False))
            sim._derive(sobject, record)
            return Response(b"", status_code=204, headers=sim._limit_header())

        @patch("/sobjects/{sobject:str}/{field:str}/{value:str}")
        async def upsert(request: Request[Any, Any, Any], sobject: FromPath[str], field: FromPath[str],
                         value: FromPath[str],
                         update_only: Annotated[bool, QueryParameter(name="updateOnly")] = False) -> Response[bytes]:
            body = _decode(await request.body())
            return sim._upsert(sobject, field, value, body, update_only)

        async def gate(request: Request[Any, Any, Any]) -> Response[bytes] | None:
            # A plain function, not the bound method: Litestar deep-copies hooks, and a copied
            # bound method would carry a copy of this simulator.
            return await sim._gate(request)

        vendor = Router(path=API_PATH, route_handlers=[query, query_more, limits, retrieve, update, upsert],
                        before_request=gate, include_in_schema=False)

        def vendor_error(_: Request[Any, Any, Any], exc: SalesforceApiError) -> Response[bytes]:
            return sim._json(exc.body, exc.status, exc.headers)

        def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
            code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "INVALID_REQUEST")
            return sim._error(exc.status_code, code, str(exc.detail))

        return Litestar(route_handlers=[vendor, control_router(self)], openapi_config=None,
                        exception_handlers={SalesforceApiError: vendor_error, HTTPException: http_error})


def _decode(body: bytes) -> Any:
    try:
        return decode_json(body) if body else None
    except msgspec.DecodeError as exc:
        raise SalesforceApiError(400, "JSON_PARSER_ERROR", f"Unexpected character: {exc}") from exc

