"""The portal's pages: catalog and search, sign-up/in, applications, credentials, usage, try-it, admin.

Server-rendered HTML (Jinja2, autoescaped) under a strict Content-Security-Policy —
`default-src 'self'` — so nothing can load from anywhere but the gateway. Session
cookies are HttpOnly, Secure and SameSite=Lax; every POST must come from this origin
and, once signed in, carry the session's CSRF token. Sign-up mails a confirmation
link (`web/portal/mail.py`); failed sign-ins are throttled per email and per address
(429 with Retry-After); the admin page decides pending plans and scopes and grants or
revokes roles; `/portal/enrol` spends the server's one-time first-admin link.
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
from web.portal.accounts import ROLES, Account, Session
from web.portal.apps import PLANS, Apps
from web.portal.charts import bar_chart
from web.portal.mail import Mailer
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


class Throttle(Protocol):
    """Failed-authentication counting (`policies.failure_throttle.FailureThrottle`)."""

    def address(self, peer: str | None, forwarded_for: str | None) -> str: ...

    async def reserve(self, kind: str, identity: str, address: str) -> int | None: ...

    async def release(self, kind: str, identity: str, address: str) -> None: ...


def portal_router(web: WebSessions, apps: Apps, usage: UsageSeries, catalog: Any, *, token_url: str,
                  mailer: Mailer | None = None, throttle: Throttle | None = None) -> Router:
    """`catalog()` returns the API entries (gateway.openapi.catalog of the running app)."""
    accounts = web.accounts
    session_of = web.current
    require = web.require
    cookie = web.cookie
    mail = mailer or Mailer(None)

    async def form(request: Request[Any, Any, Any], *, needs_session: Session | None) -> dict[str, list[str]]:
        return await web.form(request, needs_session)

    async def send_confirmation(account: Account) -> None:
        link = accounts.confirmation_link(account)
        await mail.send(account.email, "Confirm your psconnect portal account",
                        f"Hello {account.name},\n\nconfirm your email address for the psconnect developer portal "
                        f"by opening this link within 48 hours:\n\n{link}\n\nIf you did not sign up, ignore this "
                        "message.\n", purpose="confirm_email", link=link)

    def require_admin(request: Request[Any, Any, Any]) -> Session:
        session = require(request)
        if not session.account.is_admin:
            raise ProblemError(403, "forbidden", "Admins only", "This page is for portal admins.", code="not_admin")
        return session

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
                     "sunset": e.deprecation.sunset.isoformat() if e.deprecation else None,
                     "backed_by": getattr(e, "backed_by", ())}
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
        await send_confirmation(account)
        token, _ = accounts.open_session(account)
        return Redirect("/portal/apps", cookies=[cookie(token, 8 * 3600)])

    @get("/confirm", sync_to_thread=False)
    def confirm(request: Request[Any, Any, Any],
                token: Annotated[str, QueryParameter(max_length=1000)] = "") -> Response[str]:
        try:
            account = accounts.confirm(token)
        except ProblemError as exc:
            return render("message.html", status=exc.problem.status, title=exc.problem.title,
                         session=session_of(request), error=exc.problem.detail, text=None)
        return render("message.html", title="Email confirmed", session=session_of(request),
                     notice=f"{account.email} is confirmed; you can register applications.", text=None)

    @post("/confirm/resend", status_code=200)
    async def resend_confirmation(request: Request[Any, Any, Any]) -> Response[Any]:
        session = require(request)
        await form(request, needs_session=session)
        if not session.account.email_confirmed:
            await send_confirmation(session.account)
        return Redirect("/portal/apps")

    @get("/signin", sync_to_thread=False)
    def signin_page(request: Request[Any, Any, Any]) -> Response[str]:
        return render("signup.html", title="Sign in", mode="signin", email=None, session=session_of(request))

    @post("/signin", status_code=200)
    async def signin(request: Request[Any, Any, Any]) -> Response[Any]:
        first = {k: v[0] for k, v in (await form(request, needs_session=None)).items()}
        email = first.get("email", "").strip().lower()
        address = throttle.address(request.client.host if request.client else None,
                                   request.headers.get("x-forwarded-for")) if throttle else ""
        if throttle is not None and (wait := await throttle.reserve("signin", email, address)) is not None:
            page = render("signup.html", status=429, title="Sign in", mode="signin", email=email,
                          error=f"Too many failed sign-ins; try again in {wait} seconds.")
            page.headers["Retry-After"] = str(wait)
            return page
        account = accounts.sign_in(email, first.get("password", ""))
        if account is not None and throttle is not None:
            await throttle.release("signin", email, address)  # only failed sign-ins stay counted
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

    def apps_page(session: Session, status: int = 200, error: str | None = None) -> Response[str]:
        scopes = [{"name": s, "approval": apps.needs_approval(s)} for s in scopes_offered()]
        notice = None if session.account.email_confirmed else (
            f"Confirm your email: open the link sent to {session.account.email} to register applications.")
        return render("apps.html", status=status, title="My applications", session=session,
                     apps=apps.owned_by(session.account), plans=PLANS, scopes=scopes, error=error, notice=notice)

    @get("/apps", sync_to_thread=False)
    def my_apps(request: Request[Any, Any, Any]) -> Response[str]:
        return apps_page(require(request))

    @post("/apps", status_code=200)
    async def register(request: Request[Any, Any, Any]) -> Response[str]:
        session = require(request)
        values = await form(request, needs_session=session)
        offered = set(scopes_offered())
        chosen = [s for s in values.get("scope", []) if s in offered]
        entities = values.get("legal_entities", [""])[0].replace(",", " ").split()
        try:
            app, secret = apps.register(session.account, values.get("name", [""])[0], chosen,
                                        values.get("plan", [PLANS[0]])[0], legal_entities=entities)
        except ProblemError as exc:
            return apps_page(session, exc.problem.status, exc.problem.detail)
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
        session = require_admin(request)
        return render("admin.html", title="Admin", session=session, pending=apps.pending(),
                     accounts=accounts.all(), roles=ROLES)

    @post("/admin/apps/{app_id:str}/decision", status_code=200)
    async def decide(request: Request[Any, Any, Any], app_id: FromPath[str]) -> Response[Any]:
        session = require(request)
        values = await form(request, needs_session=session)
        imposed = values.get("legal_entities", [""])[0].replace(",", " ").split()
        apps.decide(session.account, app_id, values.get("decision", [""])[0] == "approve",
                    legal_entities=imposed or None)
        return Redirect("/portal/admin")

    @post("/admin/accounts/{account_id:str}/roles", status_code=200)
    async def set_role(request: Request[Any, Any, Any], account_id: FromPath[str]) -> Response[Any]:
        session = require_admin(request)
        values = await form(request, needs_session=session)
        accounts.set_role(session.account.email, account_id, values.get("role", [""])[0],
                          values.get("action", [""])[0] == "grant")
        return Redirect("/portal/admin")

    @get("/enrol", sync_to_thread=False)
    def enrol_page(request: Request[Any, Any, Any],
                   token: Annotated[str, QueryParameter(max_length=1000)] = "") -> Response[str]:
        session = session_of(request)
        try:
            accounts.check_enrolment(token)
        except ProblemError as exc:
            return render("message.html", status=exc.problem.status, title=exc.problem.title, session=session,
                         error=exc.problem.detail, text=None)
        return render("enrol.html", title="Become the first admin", session=session, token=token)

    @post("/enrol", status_code=200)
    async def enrol(request: Request[Any, Any, Any]) -> Response[Any]:
        session = require(request)
        values = await form(request, needs_session=session)
        accounts.enrol(session.account, values.get("token", [""])[0])
        return Redirect("/portal/admin")

    static = create_static_files_router(path="/static", directories=[HERE / "static"], include_in_schema=False)
    return Router(path="/portal", include_in_schema=False,
                  route_handlers=[index, changelog_page, signup_page, signup, confirm, resend_confirmation,
                                  signin_page, signin, signout, my_apps, register, app_page, rotate, revoke,
                                  change_plan, admin, decide, set_role, enrol_page, enrol, static])
