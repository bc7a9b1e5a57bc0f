"""A stateful HubSpot portal in memory, speaking CRM v3 at HubSpot's own paths.

Seeded with the demo firm's deals booked to the given legal entities (``psconnect_legal_entity``) and
their companies, seed keys in ``psconnect_external_id``. It reproduces what an adapter must cope with:
cursor paging (``after`` / ``paging.next``, at most 100 a page, 400 beyond), property values as strings and
``null`` for requested unset properties, ``associations`` on reads, ``idProperty`` reads and batch upserts
(results flagged ``new``), HubSpot's error body ``{status, message, correlationId, category, errors,
context, links}``, ``X-HubSpot-RateLimit-*`` headers on every answer with a 429 (no ``Retry-After``) past
the rolling 10-second window, 401 ``INVALID_AUTHENTICATION`` without a valid private-app token, and
injected faults rendered as HubSpot renders them. `stage_change` moves a deal and returns the webhook
event HubSpot would send (`webhook_headers` signs a delivery).
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import time
import uuid
from collections.abc import Callable, Collection, Iterable
from typing import Annotated, Any, Final

import msgspec
from litestar import Litestar, Request, Response, Router, get, post
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery, QueryParameter

from system_apis._internal.faults import FaultPlan, control_router
from system_apis.demo_firm import firm_for
from system_apis.hubspot.mapping import EXTERNAL_ID, company_properties, deal_properties
from system_apis.hubspot.webhooks import sign

__all__ = ["HubSpotApiError", "HubSpotSimulator"]

PORTAL_ID: Final = 46_210_377
SEEDED_AT: Final = "2026-11-02T09:00:00.000Z"
_SCHEMA: Final = {
    "companies": frozenset({"name", "domain", "address", "city", "zip", "country", "industry", "psconnect_currency",
                            "psconnect_tax_id", EXTERNAL_ID, "createdate", "hs_lastmodifieddate", "hs_object_id"}),
    "deals": frozenset({"dealname", "amount", "deal_currency_code", "closedate", "dealstage", "pipeline",
                        "hs_is_closed_won", "psconnect_legal_entity", "psconnect_project_template",
                        "psconnect_practice", "psconnect_start_date", "psconnect_end_date", EXTERNAL_ID,
                        "createdate", "hs_lastmodifieddate", "hs_object_id"}),
}
_DEFAULT_PROPERTIES: Final = {
    "companies": ("name", "domain", "createdate", "hs_lastmodifieddate", "hs_object_id"),
    "deals": ("dealname", "amount", "closedate", "pipeline", "dealstage", "createdate", "hs_lastmodifieddate",
              "hs_object_id"),
}
_READ_ONLY: Final = frozenset({"hs_object_id", "createdate", "hs_lastmodifieddate", "hs_is_closed_won"})
_UNIQUE: Final = frozenset({EXTERNAL_ID, "hs_object_id"})
_FIRST_ID: Final = {"companies": 10_000_000_001, "deals": 20_000_000_001}
_ENCODER = msgspec.json.Encoder()


class HubSpotApiError(Exception):
    """Raise in a simulator route to answer with HubSpot's error body."""

    def __init__(self, status: int, category: str, message: str, *, errors: list[dict[str, Any]] | None = None,
                 context: dict[str, list[str]] | None = None, extra: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
                                     "category": category, **(extra or {})}
        if errors:
            self.body["errors"] = errors
        if context:
            self.body["context"] = context
        self.body["links"] = {"knowledge-base": "https://www.hubspot.com/products/service/knowledge-base"}


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class HubSpotSimulator:
    """An in-memory HubSpot portal.

    Args:
        legal_entities: entity codes whose deals (and those deals' companies) are seeded.
        requests_per_window: the rolling 10-second limit (None: unlimited).
        daily_limit: the daily cap reported in ``X-HubSpot-RateLimit-Daily``.
        clock: monotonic clock of the rate window; tests move it by hand.
    """

    def __init__(self, *, legal_entities: Collection[str] = ("CA01",), requests_per_window: int | None = 100,
                 window: float = 10.0, daily_limit: int = 250_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.legal_entities = tuple(legal_entities)
        self.requests_per_window = requests_per_window
        self.window = window
        self.daily_limit = daily_limit
        self.clock = clock
        self.faults = FaultPlan()
        self.records: dict[str, dict[int, dict[str, Any]]] = {}
        self.associations: dict[int, list[int]] = {}
        self.requests: list[dict[str, str]] = []
        self.revoked: set[str] = set()
        self.daily_used = 0
        self._sent: collections.deque[float] = collections.deque()
        self._ids: dict[str, itertools.count[int]] = {}
        self._events = itertools.count(1)
        self._app: Litestar | None = None
        self.reset()

    # -- state ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the seeded portal; faults, counters and the rate window cleared."""
        self.faults.clear()
        self.records = {name: {} for name in _SCHEMA}
        self.associations = {}
        self.requests.clear()
        self.revoked.clear()
        self.daily_used = 0
        self._sent.clear()
        self._ids = {name: itertools.count(first) for name, first in _FIRST_ID.items()}
        self._events = itertools.count(1)
        firm = firm_for(self.legal_entities)  # deals go with their company (one naming no known entity too)
        deals = firm.opportunities
        wanted = {o.account_id for o in deals}
        company_ids: dict[str, int] = {}
        for account in firm.accounts:
            if account.id in wanted:
                company_ids[account.id] = self.insert("companies", company_properties(account))
        for opp in deals:
            deal_id = self.insert("deals", deal_properties(opp, external_id=opp.id))
            self.associations[deal_id] = [company_ids[opp.account_id]]

    def insert(self, object_type: str, properties: dict[str, str], *, at: str = SEEDED_AT) -> int:
        record_id = next(self._ids[object_type])
        props: dict[str, str | None] = {k: (v if v != "" else None) for k, v in properties.items()}
        props.update(hs_object_id=str(record_id), createdate=at, hs_lastmodifieddate=at)
        record = {"id": record_id, "properties": props, "createdAt": at, "updatedAt": at, "archived": False}
        self._derive(object_type, record)
        self.records[object_type][record_id] = record
        return record_id

    @staticmethod
    def _derive(object_type: str, record: dict[str, Any]) -> None:
        if object_type == "deals":
            record["properties"]["hs_is_closed_won"] = \
                "true" if record["properties"].get("dealstage") == "closedwon" else "false"

    def find(self, object_type: str, external_id: str) -> dict[str, Any] | None:
        """The record whose psconnect_external_id is `external_id`, if any."""
        return next((r for r in self.records[object_type].values()
                     if r["properties"].get(EXTERNAL_ID) == external_id), None)

    def count(self, record_type: str, external_id: str | None = None) -> int:
        """How many records of `record_type` (companies, deals) exist, optionally with that external id."""
        records = self.records.get(record_type, {}).values()
        return sum(1 for r in records if external_id is None or r["properties"].get(EXTERNAL_ID) == external_id)

    def stage_change(self, deal_id: int, stage: str, *, occurred_at: int | None = None) -> dict[str, Any]:
        """Move a deal to `stage` and return the ``deal.propertyChange`` event HubSpot would deliver."""
        record = self.records["deals"][deal_id]
        record["properties"]["dealstage"] = stage
        record["updatedAt"] = record["properties"]["hs_lastmodifieddate"] = _now_iso()
        self._derive("deals", record)
        return {"eventId": next(self._events), "subscriptionId": 2_431_775, "portalId": PORTAL_ID,
                "appId": 3_412_009, "occurredAt": occurred_at or int(time.time() * 1000),
                "subscriptionType": "deal.propertyChange", "attemptNumber": 0, "objectId": deal_id,
                "propertyName": "dealstage", "propertyValue": stage, "changeSource": "CRM"}

    @staticmethod
    def webhook_headers(secret: str, url: str, body: bytes, *, timestamp_ms: int | None = None) -> dict[str, str]:
        """The headers HubSpot sends with a webhook delivery to `url`."""
        timestamp = str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
        return {"Content-Type": "application/json", "X-HubSpot-Request-Timestamp": timestamp,
                "X-HubSpot-Signature-v3": sign(secret, "POST", url, body, timestamp)}

    # -- wire format ---------------------------------------------------------------------
    def _table(self, object_type: str) -> dict[int, dict[str, Any]]:
        if object_type not in self.records:
            raise HubSpotApiError(400, "VALIDATION_ERROR", f"Unable to infer object type from: {object_type}")
        return self.records[object_type]

    def _render(self, object_type: str, record: dict[str, Any], properties: Iterable[str] | None,
                associations: Iterable[str] = ()) -> dict[str, Any]:
        wanted = list(properties) if properties is not None else list(_DEFAULT_PROPERTIES[object_type])
        props = {name: record["properties"].get(name) for name in wanted if name in _SCHEMA[object_type]}
        out = {"id": str(record["id"]), "properties": props, "createdAt": record["createdAt"],
               "updatedAt": record["updatedAt"], "archived": record["archived"]}
        if object_type == "deals" and "companies" in associations:
            linked = self.associations.get(record["id"], [])
            if linked:
                out["associations"] = {"companies": {"results": [
                    {"id": str(c), "type": "deal_to_company"} for c in linked]}}
        return out

    def _lookup(self, object_type: str, key: str, id_property: str | None) -> dict[str, Any]:
        table = self._table(object_type)
        if id_property and id_property != "hs_object_id":
            if id_property not in _UNIQUE:
                raise HubSpotApiError(400, "VALIDATION_ERROR", f"Property {id_property} is not a unique property",
                                      context={"idProperty": [id_property]})
            record = self.find(object_type, key)
        else:
            record = table.get(int(key)) if key.isdigit() else None
        if record is None:
            raise HubSpotApiError(404, "OBJECT_NOT_FOUND", "resource not found")
        return record

    def _list(self, object_type: str, limit: int, after: str | None, properties: list[str] | None,
              associations: list[str]) -> dict[str, Any]:
        if not 1 <= limit <= 100:
            raise HubSpotApiError(400, "VALIDATION_ERROR", "limit must be between 1 and 100",
                                  context={"limit": [str(limit)]})
        start = 0
        if after:
            if not after.isdigit():
                raise HubSpotApiError(400, "VALIDATION_ERROR", f"Invalid after value: {after}",
                                      context={"after": [after]})
            start = int(after)
        ids = sorted(i for i in self._table(object_type) if i >= start)
        page = ids[:limit]
        body: dict[str, Any] = {"results": [self._render(object_type, self.records[object_type][i], properties,
                                                         associations) for i in page]}
        if len(ids) > limit:
            following = str(ids[limit])
            body["paging"] = {"next": {"after": following,
                                       "link": f"https://api.hubapi.com/crm/v3/objects/{object_type}?after="
                                               f"{following}"}}
        return body

    def _upsert(self, object_type: str, body: Any) -> dict[str, Any]:
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not inputs:
            raise HubSpotApiError(400, "VALIDATION_ERROR", "Invalid input JSON: inputs is required")
        if len(inputs) > 100:
            raise HubSpotApiError(400, "VALIDATION_ERROR", "Batch input limit exceeded: at most 100 inputs")
        started = _now_iso()
        planned: list[tuple[str, str, dict[str, str]]] = []
        for item in inputs:
            key, id_property, props = item.get("id"), item.get("idProperty"), item.get("properties")
            if not isinstance(key, str) or not isinstance(props, dict):
                raise HubSpotApiError(400, "VALIDATION_ERROR", "Invalid input JSON: id and properties are required")
            if id_property not in _UNIQUE - {"hs_object_id"}:
                raise HubSpotApiError(400, "VALIDATION_ERROR", f"Property {id_property} is not a unique property",
                                      context={"idProperty": [str(id_property)]})
            unknown = [n for n in props if n not in _SCHEMA[object_type] or n in _READ_ONLY]
            if unknown:
                raise HubSpotApiError(400, "VALIDATION_ERROR", f"Property values were not valid: {unknown}",
                                      errors=[{"message": f'Property "{n}" does not exist',
                                               "code": "PROPERTY_DOESNT_EXIST", "context": {"propertyName": [n]}}
                                              for n in unknown],
                                      context={"propertyName": unknown})
            if not all(isinstance(v, str) for v in props.values()):
                raise HubSpotApiError(400, "VALIDATION_ERROR", "Property values must be strings")
            planned.append((key, id_property, props))
        results = []
        for key, id_property, props in planned:
            record = self.find(object_type, key)
            created = record is None
            if record is None:
                record = self.records[object_type][self.insert(object_type, {**props, id_property: key},
                                                               at=_now_iso())]
            else:
                record["properties"].update({k: (v if v != "" else None) for k, v in props.items()})
                record["updatedAt"] = record["properties"]["hs_lastmodifieddate"] = _now_iso()
                self._derive(object_type, record)
            rendered = self._render(object_type, record, [*props, id_property])
            rendered["new"] = created
            results.append(rendered)
        return {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": _now_iso()}

    def _limit_headers(self) -> dict[str, str]:
        limit = self.requests_per_window or 100
        return {"X-HubSpot-RateLimit-Max": str(limit),
                "X-HubSpot-RateLimit-Remaining": str(max(0, limit - len(self._sent))),
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.window * 1000)),
                "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
                "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily_limit - self.daily_used))}

    def _json(self, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response[bytes]:
        return Response(_ENCODER.encode(body), status_code=status, media_type="application/json",
                        headers={**self._limit_headers(), **(headers or {})})

    def _error(self, error: HubSpotApiError, headers: dict[str, str] | None = None) -> Response[bytes]:
        return self._json(error.body, error.status, headers)

    async def _gate(self, request: Request[Any, Any, Any]) -> Response[bytes] | None:
        """Before every vendor route: auth, the rolling window and daily cap, then any injected fault."""
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append({"method": request.method, "path": request.url.path, **headers})
        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth.startswith("Bearer ") else ""
        if not token or token in self.revoked:
            return self._error(HubSpotApiError(
                401, "INVALID_AUTHENTICATION", "Authentication credentials not found. This API supports OAuth 2.0 "
                "authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/"
                "oauth-overview"))
        now = self.clock()
        while self._sent and self._sent[0] <= now - self.window:
            self._sent.popleft()
        if self.daily_used >= self.daily_limit:
            return self._rate_limited("DAILY", "You have reached your daily limit.")
        if self.requests_per_window is not None and len(self._sent) >= self.requests_per_window:
            return self._rate_limited("TEN_SECONDLY_ROLLING", "You have reached your ten_secondly_rolling limit.")
        self._sent.append(now)
        self.daily_used += 1
        fault = self.faults.take(request.method, request.url.path)
        if fault is None:
            return None
        await self.faults.delay_for(fault)
        if fault.kind == "slow":
            return None
        retry = {"Retry-After": str(fault.retry_after)}
        if fault.kind in ("rate_limit", "concurrency_limit"):
            policy = "TEN_SECONDLY_ROLLING" if fault.kind == "rate_limit" else "SECONDLY"
            return self._rate_limited(policy, fault.message or f"You have reached your {policy.lower()} limit.",
                                      retry)
        if fault.kind == "business_error":
            return self._error(HubSpotApiError(400, "VALIDATION_ERROR",
                                               fault.message or "Property values were not valid"))
        if fault.kind == "timeout":
            return self._error(HubSpotApiError(504, "GATEWAY_TIMEOUT", fault.message or "Gateway timeout"))
        return self._error(HubSpotApiError(fault.status, "INTERNAL_ERROR", fault.message or "internal error"))

    def _rate_limited(self, policy: str, message: str, headers: dict[str, str] | None = None) -> Response[bytes]:
        error = HubSpotApiError(429, "RATE_LIMITS", message, extra={"errorType": "RATE_LIMIT", "policyName": policy})
        return self._error(error, headers)

    @property
    def app(self) -> Litestar:
        """The portal as an ASGI app; built once, so state and faults stay shared with this object."""
        if self._app is None:
            self._app = self._build_app()
        return self._app

    def _build_app(self) -> Litestar:
        sim = self

        def split(value: str | None) -> list[str]:
            return [p.strip() for p in value.split(",") if p.strip()] if value else []

        @get("/{object_type:str}", sync_to_thread=False)
        def list_objects(object_type: FromPath[str], limit: FromQuery[int] = 10, after: FromQuery[str | None] = None,
                         properties: FromQuery[str | None] = None,
                         associations: FromQuery[str | None] = None) -> Response[bytes]:
            return sim._json(sim._list(object_type, limit, after, split(properties) if properties else None,
                                       split(associations)))

        @get("/{object_type:str}/{key:str}", sync_to_thread=False)
        def read(object_type: FromPath[str], key: FromPath[str], properties: FromQuery[str | None] = None,
                 associations: FromQuery[str | None] = None,
                 id_property: Annotated[str | None, QueryParameter(name="idProperty")] = None) -> Response[bytes]:
            record = sim._lookup(object_type, key, id_property)
            return sim._json(sim._render(object_type, record, split(properties) if properties else None,
                                         split(associations)))

        @post("/{object_type:str}/batch/upsert")
        async def upsert(request: Request[Any, Any, Any], object_type: FromPath[str]) -> Response[bytes]:
            sim._table(object_type)
            try:
                body = msgspec.json.decode(await request.body())
            except msgspec.DecodeError as exc:
                raise HubSpotApiError(400, "VALIDATION_ERROR", f"Invalid input JSON: {exc}") from exc
            return sim._json(sim._upsert(object_type, body))

        async def gate(request: Request[Any, Any, Any]) -> Response[bytes] | None:
            # A plain function: Litestar deep-copies hooks, and a copied bound method would copy the simulator.
            return await sim._gate(request)

        vendor = Router(path="/crm/v3/objects", route_handlers=[list_objects, read, upsert], before_request=gate,
                        include_in_schema=False)

        def vendor_error(_: Request[Any, Any, Any], exc: HubSpotApiError) -> Response[bytes]:
            return sim._error(exc)

        def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
            category = "OBJECT_NOT_FOUND" if exc.status_code == 404 else "VALIDATION_ERROR"
            return sim._error(HubSpotApiError(exc.status_code, category, str(exc.detail)))

        return Litestar(route_handlers=[vendor, control_router(self)], openapi_config=None,
                        exception_handlers={HubSpotApiError: vendor_error, HTTPException: http_error})
