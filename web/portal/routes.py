"""The portal's pages: catalog and search, sign-up/in, applications, credentials, usage, try-it, admin.

Server-rendered HTML (Jinja2, autoescaped) under a strict Content-Security-Policy —
`default-src 'self'` — so nothing can load from anywhere but the gateway. Session
cookies are HttpOnly, Secure and SameSite=Lax; every POST must come from this origin
and, once signed in, carry the session's CSRF token.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Protocol

from litestar import Request, Response, Router, get, post
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect
from litestar.static_files import create_static_files_router

from contracts.problems import ProblemError
from web.pages import render
from web.portal.accounts import Session
from web.portal.apps import PLANS, Apps
from web.portal.charts import bar_chart
from web.sessions import COOKIE, WebSessions

__all__ = ["portal_router"]

HERE = Path(__file__).parent


class UsageMinute(Protocol):
    """One minute of an application's calls, as the gateway counted them."""

    minute: int
    requests: int
    errors: int
    throttled: int
    latency_ms_max: float

    @property
    def latency_ms_avg(self) -> float: ...


class UsageSeries(Protocol):
    """The gateway's per-client usage counters (summed over every worker)."""

    async def series(self, client_id: str, minutes: int = 60) -> Sequence[UsageMinute]: ...


def portal_router(web: WebSessions, apps: Apps, usage: UsageSeries, catalog: Any, *, token_url: str) -> Router:
    """`catalog()` returns the API entries (gateway.openapi.catalog of the running app)."""
    accounts = web.accounts
    session_of = web.current
    require = web.require
    cookie = web.cookie

    async def form(request: Request[Any, Any, Any], *, needs_session: Session | None) -> dict[str, list[str]]:
        return await web.form(request, needs_session)

    @get("/", sync_to_thread=False)
    def index(request: Request[Any, Any, Any],
              q: Annotated[str, QueryParameter(max_length=200)] = "") -> Response[str]:
        needle = q.strip().lower()
        entries = [e for e in catalog() if e.name != "gateway"]
        if needle:
            entries = [e for e in entries if needle in " ".join(
                [e.name, e.title, e.description, e.owner, e.layer, e.lifecycle, *e.scopes]).lower()]
        layers = []
        for layer in ("experience", "process", "system"):
            rows = [{"name": e.name, "version": e.version, "title": e.title, "description": e.description,
                     "lifecycle": e.lifecycle, "owner": e.owner, "scopes": e.scopes,
                     "sunset": e.deprecation.sunset.isoformat() if e.deprecation else None}
                    for e in entries if e.layer == layer]
            if rows:
                layers.append((layer, rows))
        return render("catalog.html", title="API catalog", layers=layers, q=q, session=session_of(request))

    @get("/apis/{name:str}/changelog", sync_to_thread=False)
    def changelog_page(request: Request[Any, Any, Any], name: FromPath[str]) -> Response[str]:
        if not any(e.name == name for e in catalog()):
            raise ProblemError(404, "not-found", "API not found", f"No published API {name!r}.")
        return render("changelog.html", title=f"Changelog {name}", api=name, session=session_of(request))

    @get("/signup", sync_to_thread=False)
    def signup_page(request: Request[Any, Any, Any]) -> Response[str]:
        return render("signup.html", title="Sign up", mode="signup", email=None, session=session_of(request))

    @post("/signup", status_code=200)
    async def signup(request: Request[Any, Any, Any]) -> Response[Any]:
        values = await form(request, needs_session=None)
        first = {k: v[0] for k, v in values.items()}
        try:
            account = accounts.sign_up(first.get("email", ""), first.get("name", ""), first.get("password", ""))
        except ProblemError as exc:
            detail = "; ".join(f"{e.pointer}: {e.detail}" for e in exc.problem.errors or []) or exc.problem.detail
            return render("signup.html", status=exc.problem.status, title="Sign up", mode="signup",
                         email=first.get("email"), error=detail)
        token, _ = accounts.open_session(account)
        return Redirect("/portal/apps", cookies=[cookie(token, 8 * 3600)])

    @get("/signin", sync_to_thread=False)
    def signin_page(request: Request[Any, Any, Any]) -> Response[str]:
        return render("signup.html", title="Sign in", mode="signin", email=None, session=session_of(request))

    @post("/signin", status_code=200)
    async def signin(request: Request[Any, Any, Any]) -> Response[Any]:
        first = {k: v[0] for k, v in (await form(request, needs_session=None)).items()}
        account = accounts.sign_in(first.get("email", ""), first.get("password", ""))
        if account is None:
            return render("signup.html", status=401, title="Sign in", mode="signin", email=first.get("email"),
                         error="Email or password is wrong.")
        token, _ = accounts.open_session(account)
        return Redirect("/portal/apps", cookies=[cookie(token, 8 * 3600)])

    @post("/signout", status_code=200)
    async def signout(request: Request[Any, Any, Any]) -> Response[Any]:
        session = require(request)
        await form(request, needs_session=session)
        accounts.close_session(request.cookies.get(COOKIE))
        return Redirect("/portal", cookies=[cookie("", 0)])

    def scopes_offered() -> list[str]:
        return sorted({s for e in catalog() if e.name != "gateway" for s in e.scopes})

    @get("/apps", sync_to_thread=False)
    def my_apps(request: Request[Any, Any, Any]) -> Response[str]:
        session = require(request)
        return render("apps.html", title="My applications", session=session, apps=apps.owned_by(session.account),
                     plans=PLANS, scopes=scopes_offered())

    @post("/apps", status_code=200)
    async def register(request: Request[Any, Any, Any]) -> Response[str]:
        session = require(request)
        values = await form(request, needs_session=session)
        offered = set(scopes_offered())
        chosen = [s for s in values.get("scope", []) if s in offered]
        try:
            app, secret = apps.register(session.account, values.get("name", [""])[0], chosen,
                                        values.get("plan", [PLANS[0]])[0])
        except ProblemError as exc:
            return render("apps.html", status=exc.problem.status, title="My applications", session=session,
                         apps=apps.owned_by(session.account), plans=PLANS, scopes=sorted(offered),
                         error=exc.problem.detail)
        return render("secret.html", title="Credentials", session=session, app=app, secret=secret, token_url=token_url)

    @get("/apps/{app_id:str}")
    async def app_page(request: Request[Any, Any, Any], app_id: FromPath[str]) -> Response[str]:
        session = require(request)
        app = apps.get(session.account, app_id)
        buckets = await usage.series(app.client_id, minutes=60)
        labels = [dt.datetime.fromtimestamp(b.minute * 60, dt.UTC).strftime("%H:%M") for b in buckets]
        chart = bar_chart(labels, {"requests": [b.requests for b in buckets], "errors": [b.errors for b in buckets],
                                   "429s": [b.throttled for b in buckets]}, title="Calls per minute")
        rows = [{"label": label, "requests": b.requests, "errors": b.errors, "throttled": b.throttled,
                 "latency_ms_avg": b.latency_ms_avg, "latency_ms_max": b.latency_ms_max}
                for label, b in zip(labels, buckets, strict=True)]
        try_ops = [{"path": path, "scope": scope} for path, scope in (
            ("/system/crm/v1/accounts?limit=3", "system.crm:read"),
            ("/system/erp/v1/legal-entities", "system.erp:read"),
            ("/process/provisioning/v1/runs?limit=3", "process.provisioning:read"),
            ("/experience/workbench/v1/exceptions?limit=3", "experience.workbench:read"),
            ("/experience/dashboards/v1/utilization", "experience.dashboards:read")) if scope in app.scopes]
        return render("app.html", title=app.name, session=session, app=app, plans=PLANS, chart=chart, usage=rows,
                     try_ops=try_ops)

    @post("/apps/{app_id:str}/rotate", status_code=200)
    async def rotate(request: Request[Any, Any, Any], app_id: FromPath[str]) -> Response[str]:
        session = require(request)
        await form(request, needs_session=session)
        secret = apps.rotate(session.account, app_id)
        return render("secret.html", title="New secret", session=session, app=apps.get(session.account, app_id),
                     secret=secret, token_url=token_url)

    @post("/apps/{app_id:str}/revoke", status_code=200)
    async def revoke(request: Request[Any, Any, Any], app_id: FromPath[str]) -> Response[Any]:
        session = require(request)
        await form(request, needs_session=session)
        apps.revoke(session.account, app_id)
        return Redirect(f"/portal/apps/{app_id}")

    @post("/apps/{app_id:str}/plan", status_code=200)
    async def change_plan(request: Request[Any, Any, Any], app_id: FromPath[str]) -> Response[Any]:
        session = require(request)
        values = await form(request, needs_session=session)
        apps.request_plan(session.account, app_id, values.get("plan", [""])[0])
        return Redirect(f"/portal/apps/{app_id}")

    @get("/admin", sync_to_thread=False)
    def admin(request: Request[Any, Any, Any]) -> Response[str]:
        session = require(request)
        if not session.account.is_admin:
            raise ProblemError(403, "forbidden", "Admins only", "This page is for portal admins.", code="not_admin")
        return render("admin.html", title="Admin", session=session, pending=apps.pending())

    @post("/admin/apps/{app_id:str}/decision", status_code=200)
    async def decide(request: Request[Any, Any, Any], app_id: FromPath[str]) -> Response[Any]:
        session = require(request)
        values = await form(request, needs_session=session)
        apps.decide(session.account, app_id, values.get("decision", [""])[0] == "approve")
        return Redirect("/portal/admin")

    static = create_static_files_router(path="/static", directories=[HERE / "static"], include_in_schema=False)
    return Router(path="/portal", include_in_schema=False,
                  route_handlers=[index, changelog_page, signup_page, signup, signin_page, signin, signout, my_apps,
                                  register, app_page, rotate, revoke, change_plan, admin, decide, static])
