"""An in-memory Xero (Accounting + Projects + identity) speaking the vendor's wire format, with faults.

What an adapter must cope with against the real service, reproduced here:

- **Token endpoint** ``POST https://identity.xero.com/connect/token`` (form, Basic client auth):
  ``grant_type=refresh_token`` answers a 30-minute access token and a **new** refresh token; the one
  sent is retired, accepted again only for a 30-minute grace period, then refused ``invalid_grant``
  (https://developer.xero.com/documentation/guides/oauth2/auth-flow/). An expired or unknown access
  token is a 401 ``{Type, Title: Unauthorized, Status, Detail: AuthenticationUnsuccessful}``.
- ``xero-tenant-id`` on every API call (403 ``AuthorizationUnsuccessful`` for an unknown tenant).
- **Limits** per tenant: 60 calls a minute and a day cap (5,000) → 429 with ``Retry-After`` and
  ``X-Rate-Limit-Problem: minute|day``; ``X-MinLimit-Remaining`` / ``X-DayLimit-Remaining`` on answers
  (https://developer.xero.com/documentation/guides/oauth2/limits/).
- **Idempotency-Key** on writes: the same key again answers the first answer and changes nothing
  (https://developer.xero.com/documentation/guides/idempotent-requests/idempotency/).
- Accounting: ``Organisation``, ``Contacts`` (POST creates or, with ``ContactID``, updates; ``where``),
  ``Invoices`` and ``CreditNotes`` (POST upsert by id, also at ``/{id}``; ``where``, ``page`` of 100,
  ``/Date(ms)/`` dates, refused before the period lock date; ``Status`` DRAFT -> AUTHORISED (a due date
  required) -> PAID once nothing is due, or VOIDED; ``SentToContact``; ``AmountPaid``, ``AmountCredited``,
  ``AmountDue``); bills (``ACCPAY``) and supplier credit notes (``ACCPAYCREDIT``) created by ``PUT`` with
  ``summarizeErrors`` (see `_payables`; ``PUT`` also creates approved sales invoices and customer credit notes, as
  the intercompany receivables are made, their numbers unique; lines may be negative, totals not);
  ``Currencies`` (GET; PUT adds one: a document in a currency not added is refused, ``CurrencyRate`` is the day's
  when none is sent); ``Payments`` (PUT applies a payment to an AUTHORISED invoice, at most its amount due, from a
  bank account; ``where``), ``CreditNotes/{id}/Allocations``, ``Accounts`` (the revenue accounts, the default
  chart's expense accounts, the intercompany accounts 4030 and 5030, bank account ``090``), ``TrackingCategories``
  (+ ``Options``). ``If-Modified-Since`` on the lists compares with each record's ``UpdatedDateUTC``, which every
  change moves on (see `_receivables`); ``where`` also takes ``OR`` and ``Date>=DateTime(y,m,d)``. Errors:
  ``{ErrorNumber: 10, Type: ValidationException, Message, Elements[{ValidationErrors[{Message}]}]}``.
- Projects: ``Projects`` (POST 201, PUT 204), ``Tasks``, ``Time`` (whole minutes, 1..59940), ``ProjectsUsers``,
  ``page``/``pageSize`` (max 500) with ``pagination``; errors ``{message, modelState}``.
- Faults through `system_apis._internal.faults` (429 in Xero's shape, 503, slow, timeout as 504).
"""

from __future__ import annotations

import collections
import datetime as dt
import math
import secrets
import time
from collections.abc import Callable, Collection
from decimal import Decimal
from typing import Annotated, Any, Final

import msgspec
from litestar import Litestar, Request, Response, Router, route
from litestar.params import PathParameter

from contracts.erp import CustomerUpsert
from contracts.workforce import EmployeeUpsert
from system_apis._internal.faults import FaultPlan, ReceivedRequest, control_router, received
from system_apis.demo_firm import demo_firm
from system_apis.xero._defaults import DEFAULT_CODE
from system_apis.xero.mapping import NAME_SEPARATOR, contact_from_customer, contact_from_employee
from system_apis.xero.simulator._payables import create_payables
from system_apis.xero.simulator._receivables import (
    allocate,
    changed_since,
    modified_since,
    save_document,
    save_payment,
)
from system_apis.xero.simulator._state import Organisation, Refused, matches, ms_date, seed_organisation

__all__ = ["ACCESS_SECONDS", "GRACE_SECONDS", "XeroSimulator"]

ACCESS_SECONDS: Final = 1800
GRACE_SECONDS: Final = 1800
ACCOUNTING_PAGE: Final = 100
_ENCODER: Final = msgspec.json.Encoder(decimal_format="number")
_DECODER: Final = msgspec.json.Decoder(float_hook=Decimal)
Json = dict[str, Any]


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(_ENCODER.encode(body), status_code=status, media_type="application/json", headers=headers)


def _validation(message: str) -> Response[bytes]:
    return _json(400, {"ErrorNumber": 10, "Type": "ValidationException", "Message": "A validation exception occurred",
                       "Elements": [{"ValidationErrors": [{"Message": message}]}]})


def _projects_error(message: str) -> Response[bytes]:
    return _json(400, {"message": message, "modelState": {"": [message]}})


class _Window:
    """Calls per tenant in a sliding window; how long until the next is allowed."""

    def __init__(self, limit: int | None, seconds: float, clock: Callable[[], float]) -> None:
        self.limit, self.seconds, self._clock = limit, seconds, clock
        self.seen: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)

    def hit(self, key: str) -> tuple[int | None, int]:
        if self.limit is None:
            return None, 0
        now, seen = self._clock(), self.seen[key]
        while seen and seen[0] <= now - self.seconds:
            seen.popleft()
        if len(seen) >= self.limit:
            return max(1, math.ceil(seen[0] + self.seconds - now)), 0
        seen.append(now)
        return None, self.limit - len(seen)


class XeroSimulator:
    """Stateful fake of Xero for some organisations; `app` is its ASGI app, `faults` its fault plan."""

    def __init__(self, *, legal_entities: Collection[str] = (DEFAULT_CODE,), refresh_token: str = "sim-token",
                 calls_per_minute: int | None = 60, calls_per_day: int | None = 5000,
                 grace_seconds: float = GRACE_SECONDS, clock: Callable[[], float] = time.time,
                 seed: bool = True) -> None:
        """``seed``: the organisations start with the demo firm's book of their entity (its customers and the
        projects already delivering, as provisioning left them), as the other ERP simulators do; ``False``:
        empty books (the start of tests that provision their own)."""
        self.faults = FaultPlan()
        self.seed = seed
        self.codes = tuple(legal_entities)
        self.initial_refresh_token = refresh_token
        self.grace_seconds = grace_seconds
        self._limits = (calls_per_minute, calls_per_day)
        self._clock = clock
        self._app: Litestar | None = None
        self.requests: list[ReceivedRequest] = []
        self.reset()

    # --- state ------------------------------------------------------------------------------------------

    def reset(self) -> None:
        self.faults.clear()
        self.requests = []
        per_minute, per_day = self._limits
        self.minute = _Window(per_minute, 60.0, self._clock)
        self.day = _Window(per_day, 86400.0, self._clock)
        self.organisations: dict[str, Organisation] = {}
        for code in self.codes:
            org = seed_organisation(code, self._clock)
            if org is not None:
                self.organisations[org.tenant] = org
                if self.seed:
                    self._seed_book(org)
        self.refresh_tokens: dict[str, float | None] = {self.initial_refresh_token: None}
        """Refresh token -> when it was retired (None: current)."""
        self.successors: dict[str, str] = {}
        self.access_tokens: dict[str, float] = {}
        self.idempotent: dict[tuple[str, str], tuple[int, bytes, dict[str, str]]] = {}
        self.token_grants = 0

    def tenant(self, code: str) -> str:
        return next(o.tenant for o in self.organisations.values() if o.code == code)

    def organisation(self, code: str) -> Organisation:
        return self.organisations[self.tenant(code)]

    def count(self, record_type: str, external_id: str | None) -> int:
        total = 0
        for org in self.organisations.values():
            if record_type in ("invoice", "bill"):
                kind = "ACCREC" if record_type == "invoice" else "ACCPAY"
                total += sum(1 for r in org.invoices.values()
                             if r["Type"] == kind and external_id in (None, r["InvoiceNumber"]))
            elif record_type in ("creditNote", "supplierCredit"):
                kind = "ACCRECCREDIT" if record_type == "creditNote" else "ACCPAYCREDIT"
                total += sum(1 for r in org.credit_notes.values()
                             if r["Type"] == kind and external_id in (None, r["CreditNoteNumber"]))
            elif record_type == "payment":
                total += sum(1 for r in org.payments.values() if external_id in (None, r["PaymentID"]))
            elif record_type == "contact":
                total += sum(1 for r in org.contacts.values() if external_id in (None, r.get("ContactNumber")))
            elif record_type == "project":
                total += len(org.projects)
            elif record_type == "time":
                total += sum(len(t) for t in org.time.values())
        return total

    def expire_access_tokens(self) -> None:
        """Every access token issued so far is expired now (as 30 minutes later)."""
        self.access_tokens = dict.fromkeys(self.access_tokens, self._clock() - 1)

    @property
    def app(self) -> Litestar:
        if self._app is None:
            self._app = Litestar(route_handlers=[self._router(), control_router(self)], openapi_config=None,
                                 debug=False)
        return self._app

    # --- identity ---------------------------------------------------------------------------------------

    def _token(self, form: dict[str, str], authorization: str | None) -> Response[bytes]:
        if not authorization or not authorization.startswith("Basic "):
            return _json(401, {"error": "invalid_client"})
        if form.get("grant_type") != "refresh_token":
            return _json(400, {"error": "unsupported_grant_type"})
        sent = form.get("refresh_token", "")
        if sent not in self.refresh_tokens:
            return _json(400, {"error": "invalid_grant"})
        retired = self.refresh_tokens[sent]
        if retired is not None and self._clock() - retired > self.grace_seconds:
            return _json(400, {"error": "invalid_grant"})
        now = self._clock()
        successor = self.successors.get(sent)
        if successor is not None:  # within the grace period: the one who lost the answer rotates from here
            self.refresh_tokens[successor] = self.refresh_tokens.get(successor) or now
        new_refresh, access = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.refresh_tokens[sent] = retired if retired is not None else now
        self.refresh_tokens[new_refresh] = None
        self.successors[sent] = new_refresh
        self.access_tokens[access] = now + ACCESS_SECONDS
        self.token_grants += 1
        return _json(200, {"access_token": access, "expires_in": ACCESS_SECONDS, "token_type": "Bearer",
                           "refresh_token": new_refresh, "scope": "accounting.transactions accounting.contacts "
                                                                  "accounting.settings projects offline_access"})

    def _unauthorised(self, request: Request[Any, Any, Any]) -> Response[bytes] | None:
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else ""
        if self.access_tokens.get(token, 0.0) <= self._clock():
            return _json(401, {"Type": None, "Title": "Unauthorized", "Status": 401,
                               "Detail": "AuthenticationUnsuccessful", "Instance": secrets.token_hex(8)})
        return None

    # --- the routes -------------------------------------------------------------------------------------

    def _router(self) -> Router:
        sim = self

        @route("/{path:path}", http_method=["GET", "POST", "PUT", "PATCH", "DELETE"])
        async def handle(request: Request[Any, Any, Any], path: Annotated[str, PathParameter()]) -> Response[bytes]:
            return await sim._handle(request, path)

        return Router(path="/", route_handlers=[handle], include_in_schema=False)

    async def _handle(self, request: Request[Any, Any, Any], path: str) -> Response[bytes]:
        self.requests.append(received(request))
        method = request.method.upper()
        fault = self.faults.take(method, path)
        if fault is not None:
            await self.faults.delay_for(fault)
            if fault.kind in ("rate_limit", "concurrency_limit"):
                return _json(429, {"Title": "Too Many Requests", "Status": 429},
                             {"Retry-After": str(fault.retry_after), "X-Rate-Limit-Problem": "minute"})
            if fault.kind == "timeout":
                return _json(504, {"Title": "Gateway Timeout", "Status": 504})
            if fault.kind in ("server_error", "business_error"):
                status = fault.status if fault.kind == "server_error" else 400
                if status == 400:
                    return _validation(fault.message or "Injected validation error")
                return _json(status, {"Title": "Service Unavailable", "Status": status,
                                      "Detail": fault.message or "injected"})
        if path == "/connect/token" and method == "POST":
            form = {k: str(v) for k, v in (await request.form()).items()}
            return self._token(form, request.headers.get("authorization"))
        refused = self._unauthorised(request)
        if refused is not None:
            return refused
        tenant = request.headers.get("xero-tenant-id", "")
        org = self.organisations.get(tenant)
        if org is None:
            return _json(403, {"Type": None, "Title": "Forbidden", "Status": 403,
                               "Detail": "AuthorizationUnsuccessful"})
        wait, minute_left = self.minute.hit(tenant)
        problem = "minute"
        day_left = 0
        if wait is None:
            wait, day_left = self.day.hit(tenant)
            problem = "day"
        if wait is not None:
            return Response(b"", status_code=429, headers={"Retry-After": str(wait), "X-Rate-Limit-Problem": problem})
        limits = {"X-MinLimit-Remaining": str(minute_left), "X-DayLimit-Remaining": str(day_left)}
        key = request.headers.get("idempotency-key")
        if key is not None and method != "GET":
            if len(key) > 128:
                return _validation("The Idempotency-Key header must be at most 128 characters.")
            if (tenant, key) in self.idempotent:
                status, content, headers = self.idempotent[(tenant, key)]
                return Response(content, status_code=status, media_type="application/json", headers=headers)
        body = _DECODER.decode(await request.body()) if method in ("POST", "PUT", "PATCH") else None
        try:
            if path.startswith("/api.xro/2.0/"):
                answer = self._accounting(org, method, path.removeprefix("/api.xro/2.0/"), request, body)
            elif path.startswith("/projects.xro/2.0/"):
                answer = self._projects(org, method, path.removeprefix("/projects.xro/2.0/"), request, body)
            else:
                answer = _json(404, {"Title": "Not Found", "Status": 404})
        except Refused as exc:
            answer = (_projects_error(str(exc)) if path.startswith("/projects.xro/") else _validation(str(exc)))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            answer = (_projects_error(f"invalid request: {exc}") if path.startswith("/projects.xro/")
                      else _validation(f"invalid request: {exc}"))
        answer.headers.update(limits)
        status = answer.status_code or 200
        if key is not None and method != "GET" and status < 500:
            content = answer.content if isinstance(answer.content, bytes) else b""
            self.idempotent[(tenant, key)] = (status, content, dict(limits))
        return answer

    # --- Accounting -------------------------------------------------------------------------------------

    def _envelope(self, name: str, items: list[Json], page: int | None = None) -> Json:
        body: Json = {"Id": secrets.token_hex(16)[:8] + "-0000-4000-8000-000000000000", "Status": "OK",
                      "ProviderName": "psconnect", "DateTimeUTC": ms_date(dt.date.today()), name: items}
        if page is not None:
            body["pagination"] = {"page": page, "pageSize": ACCOUNTING_PAGE, "pageCount": 0, "itemCount": 0}
        return body

    def _paged(self, name: str, records: list[Json], request: Request[Any, Any, Any]) -> Response[bytes]:
        where = request.query_params.get("where")
        since = modified_since(request.headers.get("if-modified-since"))
        found = [r for r in changed_since(records, since) if matches(r, where)]
        page = int(request.query_params.get("page") or 1)
        chunk = found[(page - 1) * ACCOUNTING_PAGE:page * ACCOUNTING_PAGE]
        body = self._envelope(name, chunk, page)
        body["pagination"].update(pageCount=max(1, math.ceil(len(found) / ACCOUNTING_PAGE)), itemCount=len(found))
        return _json(200, body)

    def _accounting(self, org: Organisation, method: str, path: str, request: Request[Any, Any, Any],
                    body: Any) -> Response[bytes]:
        parts = path.strip("/").split("/")
        head = parts[0]
        if head == "Organisation" and method == "GET":
            return _json(200, self._envelope("Organisations", [org.record]))
        if head == "Accounts" and method == "GET":
            return _json(200, self._envelope("Accounts", org.accounts))
        if head == "Currencies" and len(parts) == 1:
            if method == "GET":
                return _json(200, {"Currencies": [{"Code": c, "Description": d} for c, d in org.currencies.items()]})
            if method == "PUT":
                code = str(body.get("Code") or "")
                if code in org.currencies:
                    raise Refused(f"The currency {code} has already been added.")
                org.currency_rate(code)  # a currency Xero knows (one the day rates quote)
                org.currencies[code] = str(body.get("Description") or code)
                return _json(200, {"Currencies": [{"Code": code, "Description": org.currencies[code]}]})
        if head == "TrackingCategories":
            if method == "GET" and len(parts) == 1:
                return _json(200, self._envelope("TrackingCategories", [org.tracking]))
            if method == "PUT" and len(parts) == 3 and parts[1] == org.tracking["TrackingCategoryID"] \
                    and parts[2] == "Options":
                name = str(body.get("Name") or "")
                if not name or len(name) > 100:
                    raise Refused("A tracking option name of 1 to 100 characters is required.")
                if name in org.option_names():
                    raise Refused(f"The TrackingOption '{name}' already exists.")
                option = {"TrackingOptionID": org.next_id(), "Name": name, "Status": "ACTIVE"}
                org.tracking["Options"].append(option)
                return _json(200, {"Options": [option]})
        if head == "Contacts":
            if method == "GET" and len(parts) == 1:
                ids = request.query_params.get("IDs")
                wanted = set(ids.split(",")) if ids else None
                return self._paged("Contacts", [c for c in org.contacts.values()
                                                if wanted is None or c["ContactID"] in wanted], request)
            if method == "GET" and len(parts) == 2:
                found: Json | None = org.contacts.get(parts[1]) or next(
                    (c for c in org.contacts.values() if c.get("ContactNumber") == parts[1]), None)
                return _json(200, self._envelope("Contacts", [found])) if found else _json(404, {"Status": 404})
            if method == "POST" and len(parts) == 1:
                return _json(200, self._envelope("Contacts", [self._save_contact(org, c) for c in body["Contacts"]]))
        if head in ("Invoices", "CreditNotes"):
            return self._documents(org, head, method, parts, request, body)
        if head == "Payments":
            if method == "GET" and len(parts) == 1:
                return self._paged("Payments", list(org.payments.values()), request)
            if method == "GET" and len(parts) == 2 and parts[1] in org.payments:
                return _json(200, self._envelope("Payments", [org.payments[parts[1]]]))
            if method == "PUT" and len(parts) == 1:
                return _json(200, self._envelope("Payments", [save_payment(org, p) for p in body["Payments"]]))
        return _json(404, {"Title": "Not Found", "Status": 404, "Detail": f"no {method} {path}"})

    def _documents(self, org: Organisation, head: str, method: str, parts: list[str],
                   request: Request[Any, Any, Any], body: Any) -> Response[bytes]:
        store = org.invoices if head == "Invoices" else org.credit_notes
        id_field, number_field = ("InvoiceID", "InvoiceNumber") if head == "Invoices" else (
            "CreditNoteID", "CreditNoteNumber")
        if len(parts) == 1:
            if method == "GET":
                records = list(store.values())
                numbers = request.query_params.get("InvoiceNumbers")
                if numbers:
                    records = [r for r in records if r["InvoiceNumber"] in numbers.split(",")]
                return self._paged(head, records, request)
            if method == "POST":
                return _json(200, self._envelope(head, [self._save_document(org, head, d) for d in body[head]]))
            if method == "PUT":
                summarize = request.query_params.get("summarizeErrors", "true").lower() != "false"
                status, answer = create_payables(org, head, list(body[head]), summarize=summarize)
                return _json(status, {**self._envelope(head, []), **answer} if status == 200 else answer)
            return _json(404, {"Title": "Not Found", "Status": 404})
        # by id, or (as Xero also accepts) by number
        found = store.get(parts[1]) or next((r for r in store.values() if r[number_field] == parts[1]), None)
        if found is None:
            return _json(404, {"Title": "Not Found", "Status": 404, "Detail": f"no {head} {parts[1]}"})
        if len(parts) == 2 and method == "GET":
            return _json(200, self._envelope(head, [found]))
        if len(parts) == 2 and method == "POST":
            return _json(200, self._envelope(head, [self._save_document(org, head, {**d, id_field: found[id_field]})
                                                    for d in body[head][:1]]))
        if len(parts) == 3 and parts[2] == "Allocations" and method == "PUT" and head == "CreditNotes":
            return _json(200, {"Allocations": allocate(org, found, body)})
        return _json(404, {"Title": "Not Found", "Status": 404})

    def _seed_book(self, org: Organisation) -> None:
        """What provisioning writes for each delivering project of the entity: its customer's contact, the
        project (named `{external id} — {name}`), and the project's option of the Project tracking category; and
        what worker sync writes for each of the entity's workers: an employee contact (`EMP:<worker id>`)."""
        firm = demo_firm()
        for worker in firm.workers:
            if worker.legal_entity_code == org.code:
                self._save_contact(org, contact_from_employee(worker.id, EmployeeUpsert(
                    name=worker.name, email=worker.email, legal_entity_id=org.tenant, cost_center=worker.cost_center,
                    cost_rate=worker.cost_rate, active=worker.status != "terminated"), None))
        accounts = {a.id: a for a in firm.accounts}
        contacts: dict[str, str] = {}
        for project in firm.projects:
            if project.legal_entity_code != org.code:
                continue
            account = accounts[project.account_id]
            if account.id not in contacts:
                upsert = CustomerUpsert(name=account.name, legal_entity_id=org.tenant, currency=org.currency,
                                        tax_id=account.tax_id, billing_address=account.billing_address)
                contacts[account.id] = self._save_contact(org, contact_from_customer(account.id, upsert, None))[
                    "ContactID"]
            self._project(org, None, {"name": f"{project.external_id}{NAME_SEPARATOR}{project.name}",
                                      "contactId": contacts[account.id], "estimateAmount": project.budget.amount,
                                      "deadlineUtc": f"{project.end_date.isoformat()}T00:00:00Z"})
            org.tracking["Options"].append({"TrackingOptionID": org.next_id(), "Name": project.external_id,
                                            "Status": "ACTIVE"})

    def _save_contact(self, org: Organisation, data: Json) -> Json:
        number = data.get("ContactNumber")
        current = org.contacts.get(str(data.get("ContactID"))) if data.get("ContactID") else None
        if data.get("ContactID") and current is None:
            raise Refused(f"The contact {data['ContactID']} does not exist.")
        for other in org.contacts.values():
            if other is current:
                continue
            if number and other.get("ContactNumber") == number:
                raise Refused(f"The contact number '{number}' is already assigned to another contact.")
            if other.get("Name") == data.get("Name"):
                raise Refused(f"The contact name {data.get('Name')} is already assigned to another contact. "
                              "The contact name must be unique across all active contacts.")
        if not data.get("Name"):
            raise Refused("The contact name is required.")
        record = {**(current or {"ContactID": org.next_id(), "ContactStatus": "ACTIVE", "Addresses": [],
                                 "Phones": [], "IsSupplier": False, "IsCustomer": False}), **data}
        record["UpdatedDateUTC"] = org.now()
        record["HasValidationErrors"] = False
        org.contacts[record["ContactID"]] = record
        return record

    def _save_document(self, org: Organisation, kind: str, data: Json) -> Json:
        """One invoice or credit note POSTed (Xero's rules on it: `_receivables.save_document`)."""
        return save_document(org, kind, data)

    # --- Projects ---------------------------------------------------------------------------------------

    def _project_page(self, items: list[Json], request: Request[Any, Any, Any]) -> Response[bytes]:
        page = int(request.query_params.get("page") or 1)
        size = int(request.query_params.get("pageSize") or 50)
        if size < 1 or size > 500 or page < 1:
            raise Refused("pageSize must be between 1 and 500 and page at least 1")
        chunk = items[(page - 1) * size:page * size]
        return _json(200, {"pagination": {"page": page, "pageSize": size,
                                          "pageCount": max(1, math.ceil(len(items) / size)), "itemCount": len(items)},
                           "items": chunk})

    def _projects(self, org: Organisation, method: str, path: str, request: Request[Any, Any, Any],
                  body: Any) -> Response[bytes]:
        parts = path.strip("/").split("/")
        if parts == ["ProjectsUsers"] and method == "GET":
            return self._project_page(org.users, request)
        if parts[0] != "Projects":
            return _json(404, {"message": "Not found"})
        if len(parts) == 1:
            if method == "GET":
                states = (request.query_params.get("states") or "INPROGRESS").split(",")
                return self._project_page([p for p in org.projects.values() if p["status"] in states], request)
            if method == "POST":
                return _json(201, self._project(org, None, body))
        found_project = org.projects.get(parts[1])
        if found_project is None:
            return _json(404, {"message": f"Project {parts[1]} not found"})
        project = found_project
        if len(parts) == 2:
            if method == "GET":
                return _json(200, project)
            if method == "PUT":
                self._project(org, project, body)
                return Response(b"", status_code=204)
            if method == "PATCH":
                project["status"] = body["status"]
                return Response(b"", status_code=204)
        tasks = org.tasks[project["projectId"]]
        if parts[2] == "Tasks" and len(parts) == 3:
            if method == "GET":
                return self._project_page(list(tasks.values()), request)
            if method == "POST":
                return _json(201, self._task(org, project, body))
        if parts[2] == "Time" and len(parts) == 3:
            entries = org.time[project["projectId"]]
            if method == "GET":
                after, before = request.query_params.get("dateAfterUtc"), request.query_params.get("dateBeforeUtc")
                found = [e for e in entries.values()
                         if (not after or e["dateUtc"] >= after) and (not before or e["dateUtc"] <= before)]
                return self._project_page(found, request)
            if method == "POST":
                return _json(200, self._time(org, project, body))
        if parts[2] == "Time" and len(parts) == 4:
            entry = org.time[project["projectId"]].get(parts[3])
            if entry is None:
                return _json(404, {"message": f"Time entry {parts[3]} not found"})
            if method == "GET":
                return _json(200, entry)
            if method == "PUT":
                if entry["status"] != "ACTIVE":
                    raise Refused("Only an ACTIVE time entry can be updated.")
                change = self._time(org, project, body, entry)
                return Response(b"", status_code=204) if change else _json(500, {})
        return _json(404, {"message": "Not found"})

    def _project(self, org: Organisation, current: Json | None, data: Json) -> Json:
        if not data.get("name"):
            raise Refused("The project name is required.")
        contact = org.contacts.get(str(data.get("contactId")))
        if contact is None:
            raise Refused("The contact does not exist.")
        estimate = Decimal(str(data.get("estimateAmount") or 0))
        zero = {"currency": org.currency, "value": Decimal(0)}
        record: Json = current if current is not None else {
            "projectId": org.next_id(), "currencyCode": org.currency, "minutesLogged": 0, "status": "INPROGRESS",
            "totalTaskAmount": zero, "totalExpenseAmount": zero, "minutesToBeInvoiced": 0}
        record.update(name=data["name"], contactId=contact["ContactID"],
                      estimate={"currency": org.currency, "value": estimate})
        if data.get("deadlineUtc"):
            record["deadlineUtc"] = data["deadlineUtc"]
        org.projects[record["projectId"]] = record
        org.tasks.setdefault(record["projectId"], {})
        org.time.setdefault(record["projectId"], {})
        return record

    def _task(self, org: Organisation, project: Json, data: Json) -> Json:
        name = str(data.get("name") or "")
        if not name or len(name) > 100:
            raise Refused("A task name of 1 to 100 characters is required.")
        if data.get("chargeType") not in ("TIME", "FIXED", "NON_CHARGEABLE"):
            raise Refused("chargeType must be TIME, FIXED or NON_CHARGEABLE.")
        tasks = org.tasks[project["projectId"]]
        if any(t["name"] == name for t in tasks.values()):
            raise Refused(f"A task named '{name}' already exists on this project.")
        rate = data.get("rate") or {}
        task: Json = {"taskId": org.next_id(), "name": name, "projectId": project["projectId"],
                      "rate": {"currency": rate.get("currency", org.currency),
                               "value": Decimal(str(rate.get("value", 0)))},
                      "chargeType": data["chargeType"], "estimateMinutes": int(data.get("estimateMinutes") or 0),
                      "totalMinutes": 0, "status": "ACTIVE"}
        tasks[task["taskId"]] = task
        return task

    def _time(self, org: Organisation, project: Json, data: Json, current: Json | None = None) -> Json:
        if project["status"] == "CLOSED":
            raise Refused("Time cannot be added to a closed project.")
        task = org.tasks[project["projectId"]].get(str(data.get("taskId")))
        if task is None:
            raise Refused("The task does not exist on this project.")
        if str(data.get("userId")) not in {u["userId"] for u in org.users}:
            raise Refused("The user does not exist.")
        duration = data.get("duration")
        if not isinstance(duration, int) or not 1 <= duration <= 59940:
            raise Refused("duration must be a whole number of minutes between 1 and 59940.")
        day = str(data.get("dateUtc") or "")
        if dt.date.fromisoformat(day[:10]) <= org.lock_date:
            raise Refused(f"Time cannot be entered before the period lock date of {org.lock_date:%d %b %Y}.")
        before = int(current["duration"]) if current is not None else 0
        entry: Json = current if current is not None else {
            "timeEntryId": org.next_id(), "projectId": project["projectId"], "status": "ACTIVE",
            "dateEnteredUtc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        entry.update(userId=data["userId"], taskId=task["taskId"], dateUtc=day, duration=duration,
                     description=str(data.get("description") or ""))
        org.time[project["projectId"]][entry["timeEntryId"]] = entry
        task["totalMinutes"] += duration - before
        project["minutesLogged"] += duration - before
        return entry
