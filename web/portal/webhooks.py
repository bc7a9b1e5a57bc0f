"""The portal's webhook pages for a signed-in user's application: subscribe, list, delivery log, replay.

Server-rendered under the portal's CSP, every POST checked for origin and CSRF token like
the other portal forms. Subscriptions belong to the application's OAuth client, so what a
user sets up here is what the application sees through `/experience/subscriptions/v1`,
within the application's legal entities; the signing secret is shown once.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.params import FromPath
from litestar.response import Redirect

from contracts.events import EVENT_TYPES
from contracts.problems import ProblemError
from contracts.webhooks import NewSubscription, Replay
from experience_apis.subscriptions.api import replay_event, replay_events, subscribe
from experience_apis.subscriptions.store import SubscriptionStore
from web.pages import render
from web.portal.accounts import Session
from web.portal.apps import App, Apps
from web.sessions import WebSessions

__all__ = ["webhooks_router"]


def webhooks_router(web: WebSessions, apps: Apps, store: SubscriptionStore, *, http_loopback: bool) -> Router:
    def page(session: Session, app: App, *, status: int = 200, error: str | None = None,
             secret: str | None = None) -> Response[str]:
        subs = [s for s in store.of_client(app.client_id) if s.active]
        return render("webhooks.html", status=status, title=f"Webhooks of {app.name}", session=session, app=app,
                      subscriptions=subs, event_types=sorted(EVENT_TYPES), error=error, secret=secret,
                      deliveries={s.id: store.log(s.id, None, 20) for s in subs})

    def owned(request: Request[Any, Any, Any], app_id: str) -> tuple[Session, App]:
        session = web.require(request)
        return session, apps.get(session.account, app_id)

    @get("/{app_id:str}/webhooks", sync_to_thread=True)
    def webhooks_page(request: Request[Any, Any, Any], app_id: FromPath[str]) -> Response[str]:
        session, app = owned(request, app_id)
        return page(session, app)

    @post("/{app_id:str}/webhooks", status_code=200)
    async def create(request: Request[Any, Any, Any], app_id: FromPath[str]) -> Response[str]:
        session, app = owned(request, app_id)
        values = await web.form(request, session)
        entities = values.get("legal_entities", [""])[0].replace(",", " ").split()
        try:
            if app.revoked:
                raise ProblemError(409, "conflict", "Revoked", "A revoked application cannot subscribe.")
            data = msgspec.convert({"url": values.get("url", [""])[0].strip(),
                                    "event_types": values.get("event_type", []),
                                    "legal_entities": entities or None,
                                    "description": values.get("description", [""])[0]}, NewSubscription)
            grant = None if app.legal_entities is None else frozenset(app.legal_entities)
            created = subscribe(store, app.client_id, grant, data, http_loopback=http_loopback)
        except msgspec.ValidationError as exc:
            return page(session, app, status=422, error=str(exc))
        except ProblemError as exc:
            return page(session, app, status=exc.problem.status, error=exc.problem.detail)
        return page(session, app, status=201, secret=created.secret)

    @post("/{app_id:str}/webhooks/{subscription_id:str}/replay", status_code=200)
    async def replay(request: Request[Any, Any, Any], app_id: FromPath[str],
                     subscription_id: FromPath[str]) -> Response[Any]:
        session, app = owned(request, app_id)
        values = await web.form(request, session)
        sub = store.get(app.client_id, subscription_id)
        if sub is None or not sub.active:
            raise ProblemError(404, "not-found", "Not found", f"No subscription {subscription_id}.")
        event_id = values.get("event_id", [""])[0].strip() or None
        hours = values.get("hours", [""])[0].strip()
        try:
            if event_id is None:
                until = dt.datetime.now(dt.UTC)
                replay_events(store, sub, Replay(since=until - dt.timedelta(hours=float(hours or "24")), until=until))
            else:
                replay_event(store, sub, event_id)
        except ValueError:
            return page(session, app, status=422, error="Hours must be a number.")
        except ProblemError as exc:
            return page(session, app, status=exc.problem.status, error=exc.problem.detail)
        return Redirect(f"/portal/apps/{app_id}/webhooks")

    @post("/{app_id:str}/webhooks/{subscription_id:str}/delete", status_code=200)
    async def remove(request: Request[Any, Any, Any], app_id: FromPath[str],
                     subscription_id: FromPath[str]) -> Response[Any]:
        session, app = owned(request, app_id)
        await web.form(request, session)
        if store.get(app.client_id, subscription_id) is not None:
            store.deactivate(subscription_id)
        return Redirect(f"/portal/apps/{app_id}/webhooks")

    return Router(path="/portal/apps", include_in_schema=False,
                  route_handlers=[webhooks_page, create, replay, remove])
