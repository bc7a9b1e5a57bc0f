"""Console pages: an overview of open exceptions drawn as charts, the workbench list, one exception, dashboards,
and the audit trail (with its CSV export).

The console is a backend-for-frontend: it calls the experience APIs through the
gateway, with its own service token, on behalf of the signed-in person — the same
policies as any client, and the person (not the console) in the audit trail.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

import httpx
import msgspec
from litestar import Request, Response, Router, get, post
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Stream

from contracts.problems import FieldError, ProblemError
from foundation.audit import Via
from web.console.ages import age, distinct_details
from web.console.audit import AuditFilters, audit_csv, audit_page
from web.console.dashboard_charts import TEMPLATE_HELPERS
from web.console.dashboards import DashboardFilters, load
from web.console.schedules import ScheduleBoard
from web.console.summary import summary
from web.pages import render
from web.portal.accounts import Session
from web.portal.charts import horizontal_bar_chart
from web.sessions import WebSessions

__all__ = ["CONSOLE_SCOPES", "console_router"]

CONSOLE_SCOPES = ("experience.workbench:read", "experience.workbench:write", "experience.console:write",
                  "experience.dashboards:read", "experience.audit:read")
WB = "/experience/workbench/v1"
AUDIT = "/experience/audit/v1/events"
AGE_BUCKETS = (("< 1 day", 24.0), ("1–3 days", 72.0), ("3–7 days", 168.0), ("> 7 days", float("inf")))
Filter = Annotated[str | None, QueryParameter(max_length=120)]
Cursor = Annotated[str | None, QueryParameter(max_length=2000)]
T = TypeVar("T")


def console_router(web: WebSessions, http: httpx.AsyncClient, token: Callable[[], Awaitable[str]],
                   schedules: ScheduleBoard | None = None) -> Router:
    def staff(request: Request[Any, Any, Any]) -> Session:
        session = web.require(request)
        if not session.account.is_operations:
            raise ProblemError(403, "forbidden", "Operations staff only",
                               "The console is for finance and operations staff.", code="not_operations")
        return session

    async def send(session: Session, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {await token()}", "X-On-Behalf-Of": session.account.email}
        response = await http.request(method, path, headers=headers, **kwargs)
        if response.status_code >= 400:
            body = response.json()
            raise ProblemError(response.status_code, "upstream", body.get("title", "Error"), body.get("detail"),
                               code=body.get("code"),
                               errors=msgspec.convert(body.get("errors"), list[FieldError] | None))
        return response

    async def call(session: Session, method: str, path: str, **kwargs: Any) -> Any:
        return (await send(session, method, path, **kwargs)).json()

    async def everything(session: Session, **filters: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = await call(session, "GET", f"{WB}/exceptions",
                              params={**filters, "limit": 200, **({"cursor": cursor} if cursor else {})})
            items += page["items"]
            cursor = page["next_cursor"]
            if not cursor or len(items) >= 2000:
                return items

    @get("/")
    async def overview(request: Request[Any, Any, Any]) -> Response[str]:
        session = staff(request)
        items = await everything(session, status="open")
        reasons = Counter(i["exception"]["reason"] for i in items)
        owners = Counter(i["exception"]["owner"] for i in items)
        ages = Counter(next(label for label, limit in AGE_BUCKETS if i["age_hours"] < limit) for i in items)
        charts = [  # one row per reason, owner or age band, each named in full beside its bar
            horizontal_bar_chart(list(reasons), {"open": list(reasons.values())}, title="Open exceptions by reason",
                                 chart_id="chart-open-reason", description="Open exceptions by reason code."),
            horizontal_bar_chart(list(owners), {"open": list(owners.values())}, title="Open exceptions by owner",
                                 chart_id="chart-open-owner", description="Open exceptions by owning team."),
            horizontal_bar_chart([b for b, _ in AGE_BUCKETS], {"open": [ages.get(b, 0) for b, _ in AGE_BUCKETS]},
                                 title="Open exceptions by age", chart_id="chart-open-age",
                                 description="Open exceptions by time since raised."),
        ]
        return render("console_overview.html", title="Operations console", session=session, charts=charts,
                      total=len(items), reasons=reasons.most_common(), owners=owners.most_common())

    @get("/exceptions")
    async def exceptions(request: Request[Any, Any, Any], status: Filter = None, owner: Filter = None,
                         reason: Filter = None, process: Filter = None, assignee: Filter = None) -> Response[str]:
        session = staff(request)
        filters = {k: v for k, v in {"status": status, "owner": owner, "reason": reason, "process": process,
                                     "assignee": assignee}.items() if v}
        items = await everything(session, **filters)
        return render("console_exceptions.html", title="Exceptions", session=session, items=items,
                      filters=filters, query=urlencode(filters), age=age)

    @get("/exceptions/{exception_id:str}")
    async def exception(request: Request[Any, Any, Any], exception_id: FromPath[str],
                        notice: Annotated[str | None, QueryParameter(max_length=200)] = None) -> Response[str]:
        session = staff(request)
        detail = await call(session, "GET", f"{WB}/exceptions/{exception_id}")
        return render("console_exception.html", title="Exception", session=session, d=detail, notice=notice,
                      age=age, details=distinct_details(detail["item"]["exception"]["detail"]))

    @post("/exceptions/{exception_id:str}/{action:str}", status_code=200)
    async def act(request: Request[Any, Any, Any], exception_id: FromPath[str], action: FromPath[str]) -> Redirect:
        session = staff(request)
        values = {k: v[0] for k, v in (await web.form(request, session)).items()}
        path = f"{WB}/exceptions/{exception_id}"
        if action == "assign":
            await call(session, "POST", f"{path}/assignment", json={"assignee": values.get("assignee", "")})
            note = "Assigned."
        elif action == "comment":
            await call(session, "POST", f"{path}/comments", json={"text": values.get("text", "")})
            note = "Comment added."
        elif action == "resolve":
            await call(session, "POST", f"{path}/resolution", json={"resolution": values.get("resolution", "")})
            note = "Resolved."
        elif action == "replay":
            replayed = await call(session, "POST", f"{path}/replay")
            note = f"Replay started: run {replayed['run']['id']} attempt {replayed['run']['attempt']}."
        else:
            raise ProblemError(404, "not-found", "Unknown action", f"No console action {action!r}.")
        return Redirect(f"/console/exceptions/{exception_id}?{urlencode({'notice': note})}")

    @get("/dashboards")
    async def dashboards(request: Request[Any, Any, Any], legal_entity: Filter = None, period: Filter = None,
                         practice: Filter = None, as_of: Filter = None, workers_cursor: Cursor = None,
                         backlog_cursor: Cursor = None, readiness_cursor: Cursor = None,
                         margin_cursor: Cursor = None, wip_cursor: Cursor = None) -> Response[str]:
        session = staff(request)
        cursors = {"workers": workers_cursor, "backlog": backlog_cursor, "readiness": readiness_cursor,
                   "margin": margin_cursor, "wip": wip_cursor}
        filters = DashboardFilters(legal_entity=legal_entity or None, period=period or None,
                                   practice=practice or None, as_of=as_of or None,
                                   cursors={k: v for k, v in cursors.items() if v})

        async def fetch(path: str, params: Mapping[str, str | int], into: type[T]) -> T:
            return msgspec.json.decode((await send(session, "GET", path, params=params)).content, type=into)

        try:
            board = await load(fetch, filters)
            figures = await summary(fetch, board)
        except ProblemError as problem:  # the reader's filter was refused: say why, keep the form
            if problem.problem.status >= 500:
                raise
            return render("console_dashboards.html", status=problem.problem.status, title="Dashboards",
                          session=session, d=None, filters=filters, error=_refusal(problem), **TEMPLATE_HELPERS)
        return render("console_dashboards.html", title="Dashboards", session=session, d=board, filters=filters,
                      figures=figures, **TEMPLATE_HELPERS)

    @get("/audit")
    async def audit(request: Request[Any, Any, Any], cursor: Cursor = None) -> Response[str]:
        session = staff(request)
        filters = AuditFilters.of(request.query_params)
        try:
            page = await audit_page(lambda params: call(session, "GET", AUDIT, params=params), filters, cursor)
        except ProblemError as problem:  # the reader's filter was refused: say why, keep the form
            if problem.problem.status >= 500:
                raise
            return render("console_audit.html", status=problem.problem.status, title="Audit trail", session=session,
                          page=None, filters=filters, error=_refusal(problem))
        return render("console_audit.html", title="Audit trail", session=session, page=page, filters=filters)

    @get("/audit.csv")
    async def audit_export(request: Request[Any, Any, Any]) -> Stream:
        session = staff(request)
        filters = AuditFilters.of(request.query_params)
        rows = audit_csv(lambda params: call(session, "GET", AUDIT, params=params), filters)
        first = await anext(rows)  # the header, after the first page: a refused filter is a problem, not a file
        return Stream(_prepend(first, rows), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": 'attachment; filename="psconnect-audit.csv"', "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff"})

    def board() -> ScheduleBoard:
        if schedules is None:
            raise ProblemError(404, "not-found", "No schedules", "This console is not given the schedules.")
        return schedules

    @get("/schedules")
    async def schedule_list(request: Request[Any, Any, Any],
                            notice: Annotated[str | None, QueryParameter(max_length=200)] = None) -> Response[str]:
        session = staff(request)
        return render("console_schedules.html", title="Schedules", session=session,
                      schedules=await board().overview(), notice=notice)

    @post("/schedules/{name:str}/{action:str}", status_code=200)
    async def schedule_act(request: Request[Any, Any, Any], name: FromPath[str], action: FromPath[str]) -> Redirect:
        """Pause or resume one schedule for every worker; the person is in the audit trail."""
        session = staff(request)
        await web.form(request, session)  # refuses a form without this session's CSRF token
        if action not in ("pause", "resume"):
            raise ProblemError(404, "not-found", "Unknown action", f"No schedule action {action!r}.")
        view = await board().set_paused(name, action == "pause", session.account.email,
                                        via=Via(person=session.account.email, client_id="psconnect-console",
                                                operation_id=f"console.schedule.{action}", method="POST",
                                                path=request.url.path, status=303))
        note = f"Schedule {view.name} {'paused' if view.state == 'paused' else 'resumed'}."
        return Redirect(f"/console/schedules?{urlencode({'notice': note})}")

    return Router(path="/console", include_in_schema=False,
                  route_handlers=[overview, exceptions, exception, act, dashboards, audit, audit_export,
                                  schedule_list, schedule_act])


async def _prepend(first: str, rest: AsyncIterator[str]) -> AsyncIterator[str]:
    yield first
    async for chunk in rest:
        yield chunk


def _refusal(problem: ProblemError) -> str:
    """The API's own words for a refused filter, with the fields it names."""
    p = problem.problem
    fields = "; ".join(f"{e.pointer}: {e.detail}" for e in p.errors or [])
    return " ".join(part for part in (p.title + ".", p.detail or "", f"({fields})" if fields else "") if part)
