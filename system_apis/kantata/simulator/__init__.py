"""An in-memory Kantata OX (API v1) speaking the vendor's wire format, with fault injection.

Reproduces what an adapter must cope with against the real service: records indexed by
id with their order in `results` and paging in `meta` (per_page silently capped at
200), included associations, the `{"errors": [...]}` envelope (422 validation, 404,
401 without a Bearer token), boolean filters applied whenever present — even
`archived=false` — and 429 + Retry-After for both rate and concurrency limits (Kantata
has no distinct concurrency error). Seeded from the demo firm: its workers as users, its
delivering projects as workspaces with rate cards, staffing and their contract's expense terms
as workspace custom field values (`simulator/_seed.py`, `simulator/_custom_fields.py`), and —
when a period is given — their time with weekly timesheet submissions and their expenses with weekly
expense report submissions (`simulator/_expenses.py`). Projects that
provisioning creates (PRJ-OPP-...) are not seeded.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Collection
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, route

from system_apis._internal.faults import Fault, FaultPlan, ReceivedRequest, control_router, received
from system_apis.demo_delivery import DEMO_PERIOD
from system_apis.demo_firm import HOME_ENTITIES, DemoFirm, default_accounts, firm_for
from system_apis.kantata.mapping import STATUS_KEYS, base_unit, format_price
from system_apis.kantata.simulator._custom_fields import CUSTOM_FIELD_TABLES, custom_field_filter
from system_apis.kantata.simulator._delivery import DELIVERY_TABLES, DeliveryResources
from system_apis.kantata.simulator._delivery import Invalid as _Invalid
from system_apis.kantata.simulator._delivery import now as _now
from system_apis.kantata.simulator._expenses import EXPENSE_TABLES, expense_filter
from system_apis.kantata.simulator._seed import seed_firm

__all__ = ["KantataSimulator"]

Record = dict[str, Any]
Answer = tuple[int, Any]

_WORKSPACE_FIELDS = ("title", "description", "budgeted", "start_date", "due_date", "archived",
                     "stories_are_fixed_fee_by_default", "workspace_group_ids", "client_role_name",
                     "consultant_role_name", "rate_card_id")
_STORY_FIELDS = ("title", "description", "due_date", "start_date", "fixed_fee", "budget_estimate_in_cents",
                 "archived", "state", "billable")
_STORY_TYPES = ("task", "deliverable", "milestone")
_EXTREF_REQUIRED = ("service_name", "service_model", "service_model_ref")


def _errors(kind: str, message: str, field: str | None = None) -> Record:
    error: Record = {"type": kind, "message": message}
    if field:
        error["field"] = field
    return {"errors": [error]}


def _truthy_filter(query: dict[str, str], name: str) -> bool:
    # Kantata quirk: a boolean filter is applied whenever present, whatever its value.
    return name in query


_SINGULAR = {"stories": "story", "time_entries": "time_entry", "timesheet_submissions": "timesheet_submission",
             "rate_card_versions": "rate_card_version", "workspace_allocations": "workspace_allocation"}
_INCLUDES = {  # include name -> (table, field on the record holding the id or the list of ids)
    "external_references": ("external_references", "external_reference_ids"),
    "workspace_groups": ("workspace_groups", "workspace_group_ids"), "stories": ("stories", "story_ids"),
    "user": ("users", "user_id"), "role": ("roles", "role_id"), "workspace": ("workspaces", "workspace_id"),
    "story": ("stories", "story_id"), "timesheet_submission": ("timesheet_submissions", "timesheet_submission_id"),
    "rate_card": ("rate_cards", "rate_card_id"),
    "custom_field_values": ("custom_field_values", "custom_field_value_ids"),
    "choices": ("custom_field_choices", "choice_ids"), "custom_field": ("custom_fields", "custom_field_id"),
    "active_submission": ("expense_report_submissions", "active_submission_id")}
_COUNTED = {"workspace": "workspaces", "story": "stories", "external_reference": "external_references",
            "workspace_group": "workspace_groups", "user": "users", "rate_card": "rate_cards",
            "workspace_resource": "workspace_resources", "time_entry": "time_entries",
            "timesheet_submission": "timesheet_submissions", "expense": "expenses"}


class KantataSimulator(DeliveryResources):
    """Stateful fake of Kantata OX; `app` is its ASGI app, `faults` its fault plan.

    `firm` (default: the demo firm) is what gets seeded; `time_period` adds its time and expenses, and
    `demo_time` the demo period's (October 2026, as the Harvest simulator seeds) when no `time_period` is
    given — what embedded mode asks for in the connections file for an account that captures time.
    """

    def __init__(self, *, seed: bool = True, firm: DemoFirm | None = None,
                 time_period: tuple[dt.date, dt.date] | None = None, demo_time: bool = False,
                 legal_entities: Collection[str] = HOME_ENTITIES) -> None:
        self.legal_entities = tuple(legal_entities)
        self.faults = FaultPlan()
        self._seed = seed
        self._firm = firm
        self._time_period = time_period or (DEMO_PERIOD if demo_time else None)
        self._app: Litestar | None = None
        self.requests: list[ReceivedRequest] = []
        self.reset()

    # --- state ------------------------------------------------------------------------------------

    def reset(self) -> None:
        self.faults.clear()
        self.requests = []
        self._ids = itertools.count(1001)
        self.tables: dict[str, dict[str, Record]] = {
            "workspaces": {}, "stories": {}, "external_references": {}, "workspace_groups": {}, "users": {},
            **{table: {} for table in (*DELIVERY_TABLES, *CUSTOM_FIELD_TABLES, *EXPENSE_TABLES)}}
        self._refs_of: dict[tuple[str, str], list[str]] = {}
        self._values_of: dict[tuple[str, str], list[str]] = {}  # (subject type, id) -> custom field value ids
        self._stamp: str | None = None
        self.me_id = self._insert("users", {"full_name": "psconnect integration", "email_address":
                                            "integration@meridian.example", "headline": "API user"})
        if self._seed:
            self._stamp = _now()  # one shared timestamp string for the whole seed keeps memory flat
            seed_firm(self, firm_for(self.legal_entities, self._firm), self._time_period,
                      [firm_for(account, self._firm) for account in default_accounts(self.legal_entities)])
            self._stamp = None

    def _insert(self, table: str, record: Record) -> str:
        rid = str(next(self._ids))
        now = self._stamp or _now()
        self.tables[table][rid] = {"id": rid, "created_at": now, "updated_at": now, **record}
        if table == "external_references":
            self._refs_of.setdefault((record["subject_type"], record["subject_id"]), []).append(rid)
        if table == "custom_field_values":
            self._values_of.setdefault((record["subject_type"], record["subject_id"]), []).append(rid)
        return rid

    def count(self, record_type: str, external_id: str | None = None) -> int:
        """Records of a type; with an external id: the workspace(s) with that id (and their stories, resources,
        time entries and submissions), the user(s) with that HR worker id, the rate card(s) with that id."""
        table = _COUNTED.get(record_type, record_type)
        if table not in self.tables:
            return 0
        if external_id is None:
            return len(self.tables[table])
        subject = {"users": "User", "rate_cards": "RateCard"}.get(table)
        if subject is not None:
            return len({r["subject_id"] for r in self.tables["external_references"].values()
                        if r["subject_type"] == subject and r["service_model_ref"] == external_id}
                       & self.tables[table].keys())
        owners = {r["subject_id"] for r in self.tables["external_references"].values()
                  if r["subject_type"] == "Workspace" and r["service_model_ref"] == external_id}
        if table == "workspaces":
            return len(owners & self.tables["workspaces"].keys())
        if table in ("stories", "workspace_resources", "time_entries", "timesheet_submissions", "expenses"):
            return sum(1 for s in self.tables[table].values() if s["workspace_id"] in owners)
        return sum(1 for r in self.tables[table].values() if r.get("service_model_ref") == external_id)

    # --- wire helpers -------------------------------------------------------------------------------

    def _envelope(self, key: str, ids: list[str], query: dict[str, str], *, paged: bool) -> Record:
        per_page = min(max(int(query.get("per_page", "20") or 20), 1), 200)  # capped, like Kantata
        page = max(int(query.get("page", "1") or 1), 1)
        total = len(ids)
        shown = ids[(page - 1) * per_page: page * per_page] if paged else ids
        body: Record = {"count": total, "results": [{"key": key, "id": i} for i in shown],
                        key: {i: self._render(key, i) for i in shown}}
        for include in filter(None, query.get("include", "").split(",")):
            table, ids_field = _INCLUDES.get(include, ("", ""))
            if table:
                pointed = (j for rec in body[key].values() for j in (
                    rec.get(ids_field) or [] if ids_field.endswith("_ids") else [rec.get(ids_field)]))
                body[table] = {str(j): dict(self.tables[table][str(j)]) for j in pointed
                               if j is not None and str(j) in self.tables[table]}
        if paged:
            body["meta"] = {"count": total, "page_count": max(1, -(-total // per_page)), "page_number": page,
                            "page_size": per_page}
        return body

    def _render(self, key: str, rid: str) -> Record:
        record = dict(self.tables[key][rid])
        if key in ("workspaces", "stories", "users", "rate_cards"):
            subject = {"workspaces": "Workspace", "stories": "Story", "users": "User", "rate_cards": "RateCard"}[key]
            record["external_reference_ids"] = list(self._refs_of.get((subject, rid), []))
        if key == "workspaces":
            record["story_ids"] = [s["id"] for s in self.tables["stories"].values() if s["workspace_id"] == rid]
            record["custom_field_value_ids"] = list(self._values_of.get(("Workspace", rid), []))
        return record

    def _get(self, table: str, rid: str) -> Record:
        if rid not in self.tables[table]:
            raise _Invalid("id", f"{table} {rid} not found", status=404, kind="system")
        return self.tables[table][rid]

    # --- resources ----------------------------------------------------------------------------------

    def _set_price(self, ws: Record, attrs: Record) -> None:
        currency = str(attrs.get("currency") or ws.get("currency") or "USD")
        if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
            raise _Invalid("currency", "Currency is not a valid ISO 4217 code")
        ws.update(currency=currency, currency_base_unit=base_unit(currency))
        if "price" in attrs and attrs["price"] is not None:
            try:
                minor = Decimal(str(attrs["price"])) * base_unit(currency)
            except InvalidOperation as exc:
                raise _Invalid("price", "Price is not a number") from exc
            if minor != minor.to_integral_value() or minor < 0:
                raise _Invalid("price", "Price must be a non-negative amount in the currency's minor unit")
            ws["price_in_cents"] = int(minor)
        if ws.get("price_in_cents") is not None:
            ws["price"] = format_price(ws["price_in_cents"], currency)

    def _workspace_attrs(self, ws: Record, attrs: Record) -> None:
        for name in _WORKSPACE_FIELDS:
            if name in attrs:
                ws[name] = attrs[name]
        if not str(ws.get("title") or "").strip():
            raise _Invalid("title", "Title can't be blank")
        for gid in ws.get("workspace_group_ids") or []:
            self._get("workspace_groups", str(gid))
        ws["workspace_group_ids"] = [str(g) for g in ws.get("workspace_group_ids") or []]
        if ws.get("rate_card_id") is not None:
            ws["rate_card_id"] = str(self._get("rate_cards", str(ws["rate_card_id"]))["id"])
        if "status_key" in attrs:
            status = next((s for s in STATUS_KEYS.values() if s["key"] == attrs["status_key"]), None)
            if status is None:
                raise _Invalid("status_key", "Status key is not valid for this account")
            ws["status"] = dict(status)
        self._set_price(ws, attrs)

    def _check_extref(self, ref: Any) -> Record:
        if not isinstance(ref, dict) or any(not ref.get(f) for f in _EXTREF_REQUIRED):
            raise _Invalid("external_reference", "External reference needs service_name, service_model and "
                                                 "service_model_ref")
        return {f: str(ref[f]) for f in (*_EXTREF_REQUIRED, "status", "external_link") if ref.get(f) is not None}

    def create_workspace(self, attrs: Record) -> str:
        ws: Record = {"archived": False, "budgeted": False, "description": "", "price_in_cents": None,
                      "status": dict(STATUS_KEYS["not_started"]), "creator_id": self.me_id,
                      "stories_are_fixed_fee_by_default": False, "client_role_name": "Client",
                      "consultant_role_name": "Provider"}
        self._workspace_attrs(ws, attrs)  # validate everything before writing anything: the create is atomic
        ref = self._check_extref(attrs["external_reference"]) if "external_reference" in attrs else None
        wid = self._insert("workspaces", ws)
        if ref is not None:
            self._insert("external_references", {"subject_type": "Workspace", "subject_id": wid, **ref})
        return wid

    def update_workspace(self, wid: str, attrs: Record) -> None:
        ws = dict(self._get("workspaces", wid))
        self._workspace_attrs(ws, attrs)
        ref = self._check_extref(attrs["external_reference"]) if "external_reference" in attrs else None
        ws["updated_at"] = _now()
        self.tables["workspaces"][wid] = ws
        if ref is not None:
            self.save_extref({"subject_type": "Workspace", "subject_id": wid, **ref})

    def save_extref(self, attrs: Record) -> str:
        ref = self._check_extref(attrs)
        subject_type, subject_id = str(attrs.get("subject_type") or ""), str(attrs.get("subject_id") or "")
        table = {"Workspace": "workspaces", "Story": "stories", "User": "users",
                 "RateCard": "rate_cards"}.get(subject_type)
        if table is None:
            raise _Invalid("subject_type", "Subject type is not supported")
        self._get(table, subject_id)
        for rid, existing in self.tables["external_references"].items():  # create *or update*
            if (existing["subject_type"], existing["subject_id"], existing["service_name"],
                    existing["service_model"]) == (subject_type, subject_id, ref["service_name"],
                                                   ref["service_model"]):
                existing.update(ref, updated_at=_now())
                return rid
        return self._insert("external_references", {"subject_type": subject_type, "subject_id": subject_id, **ref})

    def create_group(self, attrs: Record) -> str:
        name = str(attrs.get("name") or "").strip()
        if not name:
            raise _Invalid("name", "Name can't be blank")
        return self._insert("workspace_groups", {"name": name, "company": bool(attrs.get("company"))})

    def save_story(self, attrs: Record, sid: str | None = None) -> str:
        story: Record = dict(self._get("stories", sid)) if sid else {
            "archived": False, "state": "not started", "fixed_fee": False, "budget_estimate_in_cents": None}
        if sid is None:
            wid = str(attrs.get("workspace_id") or "")
            if wid not in self.tables["workspaces"]:
                raise _Invalid("workspace_id", "Workspace can't be blank or does not exist")
            story["workspace_id"] = wid
        story_type = attrs.get("story_type", story.get("story_type"))
        if story_type not in _STORY_TYPES:
            raise _Invalid("story_type", "Story type must be task, deliverable or milestone")
        story["story_type"] = story_type
        for name in _STORY_FIELDS:
            if name in attrs:
                story[name] = attrs[name]
        if not str(story.get("title") or "").strip() or len(str(story["title"])) > 200:
            raise _Invalid("title", "Title can't be blank or longer than 200 characters")
        if sid is None:
            return self._insert("stories", story)
        story["updated_at"] = _now()
        self.tables["stories"][sid] = story
        return sid

    # --- request handling ---------------------------------------------------------------------------------

    def _filtered(self, table: str, query: dict[str, str]) -> list[str]:
        rows = list(self.tables[table].values())
        if table in ("workspaces", "stories"):
            archived = _truthy_filter(query, "archived")
            rows = [r for r in rows if bool(r.get("archived")) == archived]
        if "only" in query:
            wanted = set(query["only"].split(","))
            rows = [r for r in rows if r["id"] in wanted]
        rows = self.delivery_filter(table, rows, query)
        rows = custom_field_filter(table, rows, query)
        rows = expense_filter(table, rows, query, self.tables["expense_report_submissions"], self.tables["workspaces"])
        if table == "stories" and "workspace_id" in query:
            wids = set(query["workspace_id"].split(","))
            rows = [r for r in rows if r["workspace_id"] in wids]
        if table == "external_references":
            for name in ("subject_type", "subject_id", "service_name", "service_model", "service_model_ref"):
                if name in query:  # id filters take comma-separated lists, like every Kantata id filter
                    wanted = set(query[name].split(",")) if name in ("subject_id", "service_model_ref") \
                        else {query[name]}
                    rows = [r for r in rows if r.get(name) in wanted]
        if table == "workspace_groups":
            if _truthy_filter(query, "company"):
                rows = [r for r in rows if r.get("company")]
            if "search" in query:
                rows = [r for r in rows if query["search"].casefold() in str(r.get("name", "")).casefold()]
        return [r["id"] for r in rows]

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> Answer:
        parts = path.removeprefix("/api/v1/").removesuffix(".json").split("/")
        key = parts[0]
        if key not in self.tables:
            raise _Invalid("path", f"no route for {path}", status=404, kind="system")
        if key == "users" and parts[1:] == ["me"]:
            return 200, self._envelope("users", [self.me_id], query, paged=False)
        singular = _SINGULAR.get(key, key[:-1])
        if len(parts) == 1 and method == "GET":
            return 200, self._envelope(key, self._filtered(key, query), query, paged=True)
        if len(parts) == 3 and key == "timesheet_submissions" and method == "PUT" and parts[2] in ("approve",
                                                                                                   "reject"):
            self.decide_submission(parts[1], parts[2], body)
            return 200, self._envelope(key, [parts[1]], query, paged=False)
        payload = body.get(singular) if isinstance(body, dict) else None
        if method in ("POST", "PUT") and not isinstance(payload, dict):
            raise _Invalid(singular, f"Request body must contain a '{singular}' object", status=400)
        if len(parts) == 1 and method == "POST":
            creators = {"workspaces": self.create_workspace, "stories": self.save_story,
                        "external_references": self.save_extref, "workspace_groups": self.create_group,
                        "users": self.create_user, "time_entries": self.create_time_entry,
                        "timesheet_submissions": self.create_submission}
            if key not in creators:
                raise _Invalid("path", f"{key} cannot be created here", status=404, kind="system")
            return 200, self._envelope(key, [creators[key](payload or {})], query, paged=False)
        if len(parts) == 2:
            rid = parts[1]
            if method == "GET":
                self._get(key, rid)
            elif method == "PUT" and key == "workspaces":
                self.update_workspace(rid, payload or {})
            elif method == "PUT" and key == "stories":
                self.save_story(payload or {}, rid)
            elif method == "PUT" and key == "users":
                self.update_user(rid, payload or {})
            elif method == "PUT" and key == "time_entries":
                self.update_time_entry(rid, payload or {})
            else:
                raise _Invalid("path", f"{method} {path} is not supported", status=404, kind="system")
            return 200, self._envelope(key, [rid], query, paged=False)
        raise _Invalid("path", f"no route for {method} {path}", status=404, kind="system")

    async def _fault_answer(self, fault: Fault) -> Response[bytes] | None:
        await self.faults.delay_for(fault)
        message = fault.message
        if fault.kind in ("rate_limit", "concurrency_limit"):
            text = message or ("Too many concurrent requests" if fault.kind == "concurrency_limit"
                               else "Rate limit exceeded")
            return _json(429, _errors("system", text), {"Retry-After": str(fault.retry_after)})
        if fault.kind == "server_error":
            return _json(fault.status if fault.status >= 500 else 500, _errors("system", message or "Server error"))
        if fault.kind == "timeout":
            return _json(504, _errors("system", message or "Gateway timeout"))
        if fault.kind == "business_error":
            return _json(422, _errors("validation", message or "Simulated business rule failure", "base"))
        return None  # slow: answer normally after the delay

    async def _dispatch(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        seen = received(request)
        method, path, query = seen.method, seen.path, seen.query
        self.requests.append(seen)
        fault = self.faults.take(method, path)
        if fault is not None:
            answer = await self._fault_answer(fault)
            if answer is not None:
                return answer
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return _json(401, _errors("authentication", "You must be logged in to access this resource"))
        raw = await request.body()
        try:
            body = msgspec.json.decode(raw) if raw else None
        except msgspec.DecodeError:
            return _json(400, _errors("system", "Request body is not valid JSON"))
        try:
            status, answer_body = self.handle(method, path, query, body)
        except _Invalid as exc:
            return _json(exc.status, _errors(exc.kind, exc.message, exc.field if exc.kind == "validation" else None))
        except ValueError as exc:
            return _json(400, _errors("system", f"Bad parameter: {exc}"))
        return _json(status, answer_body)

    @property
    def app(self) -> Litestar:
        """The simulator's ASGI app (built once; state lives on the simulator, so reset() needs no rebuild)."""
        if self._app is None:
            self._app = self._build_app()
        return self._app

    def _build_app(self) -> Litestar:
        sim = self

        @route("/api/v1/{path:path}", http_method=["GET", "POST", "PUT", "DELETE"], include_in_schema=False)
        async def kantata(request: Request[Any, Any, Any]) -> Response[bytes]:
            return await sim._dispatch(request)

        return Litestar(route_handlers=[kantata, control_router(self)], openapi_config=None)


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(msgspec.json.encode(body), status_code=status, media_type="application/json", headers=headers)

