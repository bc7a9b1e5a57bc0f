"""A stateful Business Central (API v2.0 + the psconnect extension's API page), with its failure modes.

What it reproduces, so an adapter passing here should pass against Business Central:

- the Microsoft identity platform token endpoint ``/{tenant}/oauth2/v2.0/token`` (client credentials,
  form-encoded; ``invalid_client`` 401 on wrong credentials) issuing tokens that expire after
  ``token_lifetime`` seconds; an expired or unknown token is 401 ``Authentication_InvalidCredentials``;
- ``/v2.0/{tenant}/{environment}/api/v2.0/companies`` and ``companies({id})/{entity set}``, one record
  by ``({id})``, ``$filter`` (see ``_store``), server-driven paging (``Prefer: odata.maxpagesize``,
  ``@odata.nextLink`` with ``$skiptoken``), ``@odata.context`` and ``@odata.etag`` on every record;
- ``PATCH``/``DELETE`` with ``If-Match`` (400 without it, 412 ``Request_EntityChanged`` on a stale one,
  nothing changed); sales document lines under ``salesInvoices({id})/salesInvoiceLines`` (and credit
  memos'), and the bound action ``Microsoft.NAV.post`` (refused in a closed / date-locked period), after
  which a document's ``remainingAmount`` is what the customer still owes;
- receivables (``_receivables``): ``customerPaymentJournals({id})/customerPayments`` posted by the
  journal's ``Microsoft.NAV.post`` and applied to invoices (``Paid`` when nothing is left), credit memos
  applied to the invoice they name, ``salesInvoices({id})/Microsoft.NAV.cancel``, and dated
  ``currencyExchangeRates``; ``$filter`` on ``lastModifiedDateTime``, which advances on every change;
- ``vendors`` and ``purchaseInvoices`` with ``purchaseInvoiceLines`` (price ``directUnitCost``), posted by
  ``Microsoft.NAV.post`` like sales documents; a vendor's ``vendorInvoiceNumber`` is refused a second posting;
- the general ledger (``_ledger``): ``accounts``, general journal batches ``journals({id})/journalLines``
  posted by the batch's ``Microsoft.NAV.post`` into ``generalLedgerEntries`` (all lines or none, a refusal
  naming its line);
- JSON ``$batch`` of at most 100 operations (more: 400), ``Isolation: snapshot`` all-or-nothing (the
  failing operation's error, the others 424, and nothing kept);
- errors ``{"error": {"code", "message"}}``; faults (429 ``Application_TooManyRequests`` + ``Retry-After``,
  5xx, 504 timeouts) through ``system_apis._internal.faults``.

Seeded from the demo firm for the legal entities asked for: one company per entity (its id is
`company_id(code)`), with companyInformation, accounting periods, customers, projects and employees,
the psconnect extension records the adapter keeps beside them, a cash receipts batch ``GENERAL``,
monthly 2026 exchange rates of the firm's other currencies against the company's, a small chart of
accounts and the general journal batch ``DEFAULT``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final
from urllib.parse import parse_qs, urlencode, urlsplit

import msgspec
from litestar import Litestar, Request, Response, route

from contracts.erp import BillingSchedule, CustomerUpsert, ErpProjectUpsert
from contracts.workforce import EmployeeUpsert
from system_apis._internal.faults import Fault, FaultPlan, control_router
from system_apis.businesscentral.client import BATCH_LIMIT, decode, encode
from system_apis.businesscentral.mapping import customer_to_record, employee_to_record, project_details
from system_apis.businesscentral.simulator._ledger import add_journal_line, seed_ledger
from system_apis.businesscentral.simulator._receivables import act, add_payment, seed_receivables
from system_apis.businesscentral.simulator._store import (
    JOURNAL_SETS,
    LINE_SETS,
    BcError,
    EntityStore,
    matches,
    parse_filter,
)
from system_apis.demo_firm import FX, DemoFirm, demo_firm

__all__ = ["BusinessCentralSimulator", "company_id"]

Record = dict[str, Any]
_NAMESPACE: Final = uuid.UUID("0b7d7d3e-3f4e-4a51-9d8c-0c0ffee0bc01")
_TOKEN_PATH: Final = re.compile(r"^/(?P<tenant>[^/]+)/oauth2/v2\.0/token$")
_API_PATH: Final = re.compile(r"^(?P<root>/v2\.0/[^/]+/[^/]+)(?P<api>/api/v2\.0|/api/psconnect/erp/v1\.0)"
                              r"(?P<rest>/.*)?$")
_SEGMENT: Final = re.compile(r"^(?P<name>[A-Za-z.]+)(?:\((?P<key>[^)]*)\))?$")
_ACTION: Final = "Microsoft.NAV."
_CHILD_SETS: Final = {**LINE_SETS, **JOURNAL_SETS}
_SERVER_PAGE: Final = 20000
_EXTENSION_SETS: Final = frozenset({"psconnectRecords"})


def _snapshot(tree: dict[str, dict[str, dict[str, Record]]]) -> dict[str, dict[str, dict[str, Record]]]:
    """A copy to roll a transaction back to: records are flat (nested values are never mutated in place)."""
    return {company: {name: {key: dict(record) for key, record in entities.items()}
                      for name, entities in sets.items()} for company, sets in tree.items()}


def company_id(code: str) -> str:
    """The simulator's (stable) company id for a legal entity code."""
    return str(uuid.uuid5(_NAMESPACE, code))


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(encode({"error": {"code": code, "message": message}}), status_code=status,
                    media_type="application/json", headers=headers)


class BusinessCentralSimulator:
    """Business Central seeded with the demo firm's data for ``legal_entities``.

    Args:
        legal_entities: demo firm entity codes to seed as companies (an unknown code seeds nothing).
        firm: the firm to seed (``demo_firm()`` by default).
        token_lifetime: seconds an access token is valid (the identity platform gives about an hour).
        clock: monotonic seconds, for token expiry (tests move it by hand).
        credentials: accepted ``client_id -> client_secret``; by default any non-empty pair.
        page_size: the server's page size when the client asks for none (BC's is 20,000).
        rate_limit: ``(requests, seconds)`` per sliding window over the API (BC: 6,000 per 300 s per
            user); excess is 429 ``Application_TooManyRequests`` with ``Retry-After``. None = unlimited.
    """

    def __init__(self, *, legal_entities: Collection[str] = ("CA01",), firm: DemoFirm | None = None,
                 token_lifetime: int = 3599, clock: Callable[[], float] = time.monotonic,
                 credentials: Mapping[str, str] | None = None, page_size: int = _SERVER_PAGE,
                 rate_limit: tuple[int, float] | None = None) -> None:
        self.legal_entities = tuple(legal_entities)
        self.token_lifetime = token_lifetime
        self.clock = clock
        self.credentials = dict(credentials) if credentials is not None else None
        self.page_size = page_size
        self.rate_limit = rate_limit
        self._window: deque[float] = deque()
        self._firm = firm
        self.faults = FaultPlan()
        self.tokens: dict[str, float] = {}
        self.tokens_issued = 0
        self.store = EntityStore(lambda: dt.datetime.now(dt.UTC))
        self._app: Litestar | None = None
        self.reset()

    # ------------------------------------------------------------------ control surface

    def reset(self) -> None:
        """Back to the seeded state: faults cleared, tokens forgotten."""
        self.faults = FaultPlan()
        self.tokens.clear()
        self._window.clear()
        self.store = EntityStore(lambda: dt.datetime.now(dt.UTC))
        self._seed(self._firm or demo_firm())

    def count(self, record_type: str, external_id: str | None) -> int:
        """Records of an entity set over every company (``external_id`` matches ``number`` or ``recordKey``)."""
        total = 0
        for sets in self.store.records.values():
            for record in sets.get(record_type, {}).values():
                if external_id is None or external_id in (record.get("number"), record.get("recordKey")):
                    total += 1
        return total

    def records(self, code: str, entity_set: str) -> list[Record]:
        """A company's records of one entity set (tests read what the adapter wrote)."""
        return list(self.store.entity_set(company_id(code), entity_set).values())

    def close_period(self, code: str, month: str, *, lock: bool = False) -> None:
        """Close (or only date-lock) a company's accounting period ``YYYY-MM``."""
        for period in self.store.entity_set(company_id(code), "accountingPeriods").values():
            if period["startingDate"].startswith(month):
                period["closed" if not lock else "dateLocked"] = True

    @property
    def app(self) -> Litestar:
        if self._app is None:
            @route("/{rest:path}", http_method=["GET", "POST", "PATCH", "DELETE"], include_in_schema=False)
            async def serve(request: Request[Any, Any, Any]) -> Response[bytes]:
                return await self._serve(request)

            self._app = Litestar(route_handlers=[control_router(self), serve], openapi_config=None)
        return self._app

    # ------------------------------------------------------------------ seed

    def _seed(self, firm: DemoFirm) -> None:
        entities = [e for e in firm.legal_entities if e.code in self.legal_entities]
        for entity in entities:
            cid = company_id(entity.code)
            self.store.add_company({"id": cid, "systemVersion": "24.0.16410.0", "name": entity.code,
                                    "displayName": entity.name, "businessProfileId": ""})
            self.store.insert(cid, "companyInformation", {
                "id": cid, "displayName": entity.name, "country": entity.country, "currencyCode": entity.currency,
                "taxRegistrationNumber": entity.tax_registration, "currentFiscalYearStartDate": "2026-01-01"},
                seeding=True)
            seed_receivables(self.store, cid, entity.currency, FX)
            seed_ledger(self.store, cid)
            for period in firm.accounting_periods:
                if period.legal_entity_id == entity.id:
                    self.store.insert(cid, "accountingPeriods", {
                        "startingDate": period.start_date.isoformat(), "name": period.start_date.strftime("%B"),
                        "newFiscalYear": period.start_date.month == 1, "closed": period.is_closed,
                        "dateLocked": period.ar_locked}, seeding=True)
            accounts = {a.id: a for a in firm.accounts}
            customers: dict[str, str] = {}
            for project in firm.projects:
                if project.legal_entity_code != entity.code:
                    continue
                account = accounts[project.account_id]
                if account.id not in customers:
                    body = customer_to_record(account.id, CustomerUpsert(
                        name=account.name, legal_entity_id=cid, currency=project.currency, tax_id=account.tax_id,
                        billing_address=account.billing_address), company_currency=entity.currency)
                    customers[account.id] = self.store.insert(cid, "customers", body)["id"]
                    self._index(cid, "customer", account.id, customers[account.id], {})
                job = self.store.insert(cid, "projects", {"number": project.external_id,
                                                          "displayName": project.name[:100]})
                details = project_details(ErpProjectUpsert(
                    name=project.name, customer_id=customers[account.id], legal_entity_id=cid,
                    currency=project.currency, budget=project.budget, start_date=project.start_date,
                    end_date=project.end_date,
                    billing=BillingSchedule(billing_type=project.billing_type, milestones=project.milestones)),
                    "closed" if project.status == "closed" else "active")
                if project.status == "closed":
                    job["blocked"] = True
                self._index(cid, "project", project.external_id, job["id"], msgspec.to_builtins(details))
            for worker in firm.workers:
                if worker.legal_entity_code != entity.code:
                    continue
                body = employee_to_record(worker.id, EmployeeUpsert(
                    name=worker.name, email=worker.email, legal_entity_id=cid, cost_center=worker.cost_center,
                    cost_rate=worker.cost_rate, active=worker.status != "terminated"))
                if worker.termination_date is not None:
                    body["terminationDate"] = worker.termination_date.isoformat()
                employee = self.store.insert(cid, "employees", body)
                self._index(cid, "employee", worker.id, employee["id"],
                            {"cost_rate": str(worker.cost_rate.amount), "currency": worker.cost_rate.currency,
                             "cost_center": worker.cost_center})

    def _index(self, cid: str, record_type: str, key: str, target: str, data: Record) -> None:
        self.store.insert(cid, "psconnectRecords", {"recordType": record_type, "recordKey": key, "targetId": target,
                                                    "parentKey": "", "groupKey": "", "recordDate": "",
                                                    "data": msgspec.json.encode(data).decode()})

    # ------------------------------------------------------------------ request pipeline

    async def _serve(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        path = request.url.path
        fault = self.faults.take(request.method, path)
        if fault is not None:
            await self.faults.delay_for(fault)
            if fault.kind != "slow":
                return self._render_fault(fault)
        token_path = _TOKEN_PATH.match(path)
        if token_path:
            return await self._token(request)
        match = _API_PATH.match(path)
        if not match:
            return _error(404, "BadRequest_NotFound", f"No HTTP resource was found that matches the URI {path}.")
        if not self._authorised(request.headers.get("Authorization", "")):
            return _error(401, "Authentication_InvalidCredentials", "The server has rejected the client "
                          "credentials.", headers={"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'})
        throttled = self._throttle()
        if throttled is not None:
            return throttled
        body: Record | None = None
        raw = await request.body()
        if raw:
            try:
                body = decode(raw)
            except (msgspec.DecodeError, ValueError):
                return _error(400, "BadRequest", "The request body is not valid JSON.")
        base = f"{request.url.scheme}://{request.url.netloc}{match['root']}{match['api']}"
        rest = match["rest"] or "/"
        if rest == "/$batch" and request.method == "POST":
            return self._batch(base, match["api"], body, isolated=request.headers.get("Isolation") == "snapshot")
        status, answer, headers = self._operation(request.method, base, match["api"], rest,
                                                  dict(request.query_params.items()), dict(request.headers), body)
        return Response(encode(answer) if answer is not None else b"", status_code=status,
                        media_type="application/json", headers=headers)

    @staticmethod
    def _render_fault(fault: Fault) -> Response[bytes]:
        if fault.kind in ("rate_limit", "concurrency_limit"):
            return _error(429, "Application_TooManyRequests", fault.message or "Too many requests reached. "
                          "Actual (6001). Maximum (6000).", headers={"Retry-After": str(fault.retry_after)})
        if fault.kind == "timeout":
            return _error(504, "Application_TimeoutException", fault.message or "The operation has timed out.")
        if fault.kind == "business_error":
            status = fault.status if 400 <= fault.status < 500 else 400
            return _error(status, "Application_DialogException", fault.message or "Simulated refusal.")
        status = fault.status if fault.status >= 500 else 503
        return _error(status, "Internal_ServerError", fault.message or "Something went wrong.")

    def _throttle(self) -> Response[bytes] | None:
        if self.rate_limit is None:
            return None
        limit, seconds = self.rate_limit
        now = self.clock()
        while self._window and self._window[0] <= now - seconds:
            self._window.popleft()
        if len(self._window) >= limit:
            wait = max(1, math.ceil(self._window[0] + seconds - now))
            return _error(429, "Application_TooManyRequests", f"Too many requests reached. Actual ({limit + 1}). "
                          f"Maximum ({limit}).", headers={"Retry-After": str(wait)})
        self._window.append(now)
        return None

    def _authorised(self, header: str) -> bool:
        if not header.startswith("Bearer "):
            return False
        expires = self.tokens.get(header[7:].strip())
        return expires is not None and self.clock() < expires

    async def _token(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        if request.method != "POST":
            return Response(b"", status_code=405)
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if form.get("grant_type") != "client_credentials":
            return Response(encode({"error": "unsupported_grant_type", "error_description":
                                    "AADSTS70003: The app requested an unsupported grant type."}),
                            status_code=400, media_type="application/json")
        if form.get("scope") != "https://api.businesscentral.dynamics.com/.default":
            return Response(encode({"error": "invalid_scope", "error_description":
                                    "AADSTS70011: The provided value for the input parameter 'scope' is not valid."}),
                            status_code=400, media_type="application/json")
        client, secret = form.get("client_id", ""), form.get("client_secret", "")
        valid = bool(client and secret) if self.credentials is None else self.credentials.get(client) == secret
        if not valid:
            return Response(encode({"error": "invalid_client", "error_description":
                                    "AADSTS7000215: Invalid client secret provided."}),
                            status_code=401, media_type="application/json")
        token = f"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.sim.{uuid.uuid4().hex}"
        self.tokens[token] = self.clock() + self.token_lifetime
        self.tokens_issued += 1
        return Response(encode({"token_type": "Bearer", "expires_in": self.token_lifetime,
                                "ext_expires_in": self.token_lifetime, "access_token": token}),
                        status_code=200, media_type="application/json")

    # ------------------------------------------------------------------ $batch

    def _batch(self, base: str, api: str, body: Record | None, *, isolated: bool) -> Response[bytes]:
        requests = (body or {}).get("requests")
        if not isinstance(requests, list) or not requests:
            return _error(400, "BadRequest", "The batch request must contain a 'requests' array.")
        if len(requests) > BATCH_LIMIT:
            return _error(400, "BadRequest", f"The batch request contains {len(requests)} operations; the "
                          f"maximum is {BATCH_LIMIT}.")
        saved = (_snapshot(self.store.records), _snapshot(self.store.lines)) if isolated else None
        answers: list[Record] = []
        failed = False
        for item in requests:
            ident = str(item.get("id", len(answers) + 1))
            if failed:
                answers.append({"id": ident, "status": 424, "headers": {},
                                "body": {"error": {"code": "FailedDependency", "message": "An earlier operation "
                                                   "of the transactional batch failed; nothing was kept."}}})
                continue
            url = urlsplit(str(item.get("url", "")))
            target_base, target_api = base, api
            path = url.path
            if url.scheme:  # absolute: must be on this environment, any API route of it
                match = _API_PATH.match(url.path)
                if not match or not base.endswith(match["root"] + api):
                    answers.append({"id": ident, "status": 400, "headers": {}, "body": {"error": {
                        "code": "BadRequest", "message": "The URL is not on this environment."}}})
                    failed = isolated
                    continue
                target_api = match["api"]
                target_base = base[: -len(api)] + target_api
                path = match["rest"] or "/"
            elif not path.startswith("/"):
                path = "/" + path
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            sent = {k: str(v) for k, v in (item.get("headers") or {}).items()}
            status, answer, _ = self._operation(str(item.get("method", "GET")).upper(), target_base, target_api,
                                                path, query, sent, item.get("body"))
            answers.append({"id": ident, "status": status, "headers": {}, "body": answer})
            if status >= 400 and isolated:
                failed = True
        if failed and saved is not None:
            self.store.restore(*saved)
            answers = [a if a["status"] >= 400 else {**a, "status": 424, "body": {"error": {
                "code": "FailedDependency", "message": "Rolled back: another operation of the batch failed."}}}
                       for a in answers]
        return Response(encode({"responses": answers}), status_code=200, media_type="application/json")

    # ------------------------------------------------------------------ one operation

    def _operation(self, method: str, base: str, api: str, rest: str, query: dict[str, str],
                   headers: Mapping[str, str], body: Record | None) -> tuple[int, Record | None, dict[str, str]]:
        try:
            return self._route(method, base, api, [s for s in rest.split("/") if s], query,
                               {k.lower(): v for k, v in headers.items()}, body)
        except BcError as exc:
            return exc.status, {"error": {"code": exc.code, "message": exc.message}}, {}

    def _route(self, method: str, base: str, api: str, parts: list[str], query: dict[str, str],
               headers: dict[str, str], body: Record | None) -> tuple[int, Record | None, dict[str, str]]:
        segments = [_SEGMENT.match(p) for p in parts]
        if not parts or any(s is None for s in segments) or segments[0]["name"] != "companies":  # type: ignore[index]
            raise BcError(404, "BadRequest_NotFound", "Resource not found for the segment.")
        first = segments[0]
        assert first is not None
        if len(parts) == 1:
            if first["key"] is None:
                if method != "GET":
                    raise BcError(405, "BadRequest_MethodNotAllowed", "Companies are read-only.")
                return self._list(base, "companies", list(self.store.companies.values()), query, headers)
            self.store.company(first["key"])
            return 200, self._one(base, "companies", self.store.companies[first["key"].lower()]), {}
        cid = str(first["key"] or "")
        self.store.company(cid)
        second = segments[1]
        assert second is not None
        name, key = second["name"], second["key"]
        extension = api != "/api/v2.0"
        if (name in _EXTENSION_SETS) != extension:
            raise BcError(404, "BadRequest_NotFound", f"Resource not found for the segment '{name}'.")
        context = f"{base}/$metadata#companies({cid})/{name}"
        if len(parts) == 2:
            if key is None:
                if method == "GET":
                    records = self.store.candidates(cid, name, parse_filter(query.get("$filter")))
                    return self._list(base, f"companies({cid})/{name}", records, query, headers, context)
                if method == "POST":
                    return 201, {"@odata.context": context + "/$entity",
                                 **self.store.insert(cid, name, body or {})}, {}
            else:
                if method == "GET":
                    return 200, {"@odata.context": context + "/$entity", **self.store.find(cid, name, key)}, {}
                if method == "PATCH":
                    record = self.store.update(cid, name, key, body or {}, headers.get("if-match"))
                    return 200, {"@odata.context": context + "/$entity", **record}, {}
                if method == "DELETE":
                    self.store.remove(cid, name, key, headers.get("if-match"))
                    return 204, None, {}
            raise BcError(405, "BadRequest_MethodNotAllowed", f"'{method}' requests are not allowed here.")
        third = segments[2]
        assert third is not None and key is not None
        if len(parts) == 3 and third["name"].startswith(_ACTION) and third["key"] is None and method == "POST":
            act(self.store, cid, name, key, third["name"][len(_ACTION):])
            return 204, None, {}
        if name not in _CHILD_SETS or third["name"] != _CHILD_SETS[name] or len(parts) > 3:
            raise BcError(404, "BadRequest_NotFound", f"Resource not found for the segment '{third['name']}'.")
        line_context = f"{base}/$metadata#companies({cid})/{name}({key})/{third['name']}"
        if third["key"] is None and method == "GET":
            lines = list(self.store.document_lines(cid, name, key).values())
            return self._list(base, f"companies({cid})/{name}({key})/{third['name']}", lines, query, headers,
                              line_context)
        if third["key"] is None and method == "POST":
            if name == "journals":
                line = add_journal_line(self.store, cid, key, body or {})
            elif name in JOURNAL_SETS:
                line = add_payment(self.store, cid, key, body or {})
            else:
                line = self.store.add_line(cid, name, key, body or {})
            return 201, {"@odata.context": line_context + "/$entity", **line}, {}
        if third["key"] is not None and method == "GET":
            return 200, {"@odata.context": line_context + "/$entity",
                         **self.store.line(cid, name, key, third["key"])}, {}
        if third["key"] is not None and method == "DELETE":
            self.store.remove_line(cid, name, key, third["key"].strip("'"), headers.get("if-match"))
            return 204, None, {}
        raise BcError(405, "BadRequest_MethodNotAllowed", f"'{method}' requests are not allowed here.")

    @staticmethod
    def _one(base: str, name: str, record: Record) -> Record:
        return {"@odata.context": f"{base}/$metadata#{name}/$entity", **record}

    def _list(self, base: str, path: str, records: list[Record], query: dict[str, str], headers: dict[str, str],
              context: str | None = None) -> tuple[int, Record, dict[str, str]]:
        terms = parse_filter(query.get("$filter"))
        chosen = [r for r in records if matches(r, terms)]
        size = self.page_size
        applied: dict[str, str] = {}
        prefer = re.search(r"odata\.maxpagesize=(\d+)", headers.get("prefer", ""))
        if prefer:
            size = max(1, min(int(prefer[1]), _SERVER_PAGE))
            applied["Preference-Applied"] = f"odata.maxpagesize={size}"
        if "$top" in query:
            chosen = chosen[: int(query["$top"])]
        try:
            skip = int(query.get("$skiptoken", "0"))
        except ValueError:
            raise BcError(400, "BadRequest", "The skip token is not valid.") from None
        page = chosen[skip: skip + size]
        answer: Record = {"@odata.context": context or f"{base}/$metadata#{path}", "value": page}
        if skip + size < len(chosen):
            following = {k: v for k, v in query.items() if k != "$skiptoken"}
            following["$skiptoken"] = str(skip + size)
            answer["@odata.nextLink"] = f"{base}/{path}?{urlencode(following)}"
        return 200, answer, applied
