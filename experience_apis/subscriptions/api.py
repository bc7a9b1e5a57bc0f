"""Routes of the subscriptions experience API: `/experience/subscriptions/v1`.

A consumer (its token's client) sees and manages only its own subscriptions. A restricted
consumer subscribes within its grant: naming another legal entity is a 403 and changes
nothing, and naming none subscribes to exactly its granted entities, so it never receives
another entity's events (nor events that name no entity). The signing secret is returned
once, at creation and at rotation; it is never listed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from litestar import Request, Router, delete, get, post
from litestar.params import JSONBody, PathParameter, QueryParameter

from contracts.common import Page
from contracts.problems import FieldError, ProblemError
from contracts.webhooks import (
    Delivery,
    DeliveryStatus,
    NewSubscription,
    Replay,
    ReplayQueued,
    Rotation,
    Subscription,
    SubscriptionCreated,
)
from experience_apis._internal.attribution import entity_aliases
from experience_apis.subscriptions.signing import new_secret
from experience_apis.subscriptions.store import SubscriptionStore
from foundation.clock import utcnow
from foundation.grants import entity_forbidden
from foundation.identity import principal_of
from foundation.paging import CURSOR_MAX_LENGTH, CURSOR_PATTERN, decode_cursor, encode_cursor

__all__ = ["API", "check_url", "replay_event", "replay_events", "subscribe", "subscriptions_router"]

API = "experience.subscriptions"
REPLAY_MAX = 1000
DELIVERIES = "subscriptions.deliveries"
"""What the delivery log's cursors are bound to (foundation.paging)."""
Limit = Annotated[int, QueryParameter(ge=1, le=500)]
Cursor = Annotated[str | None, QueryParameter(
    description="Opaque cursor: the `next_cursor` of the previous page of this same list; any other value is a 422 "
                "`invalid_cursor`.", pattern=CURSOR_PATTERN, max_length=CURSOR_MAX_LENGTH)]
SubscriptionId = Annotated[str, PathParameter(max_length=40)]
EventId = Annotated[str, PathParameter(min_length=1, max_length=200)]
T = TypeVar("T")


def _page(items: list[T], limit: int, cursor: str | None, list_id: str) -> Page[T]:
    offset = decode_cursor(cursor, list_id)
    more = len(items) > offset + limit
    return Page(items=items[offset:offset + limit],
                next_cursor=encode_cursor(offset + limit, list_id) if more else None)


def _invalid(pointer: str, detail: str) -> ProblemError:
    return ProblemError(422, "validation-error", "Validation failed", detail,
                        errors=[FieldError(pointer=pointer, detail=detail)])


def check_url(url: str, *, http_loopback: bool) -> None:
    """https everywhere; plain http only to the loopback host when the deployment allows it (tests, demos)."""
    parts = urlsplit(url)
    if not parts.hostname or parts.username or parts.password:
        raise _invalid("/url", "an absolute URL with a host and no credentials")
    if parts.scheme == "https":
        return
    loopback = parts.hostname == "localhost"
    with contextlib.suppress(ValueError):
        loopback = loopback or ipaddress.ip_address(parts.hostname).is_loopback
    if parts.scheme == "http" and loopback and http_loopback:
        return
    raise _invalid("/url", "the URL must use https" + (" (or http to 127.0.0.1)" if http_loopback else ""))


def subscribe(store: SubscriptionStore, client_id: str, grant: frozenset[str] | None, data: NewSubscription, *,
              http_loopback: bool) -> SubscriptionCreated:
    """Subscribe within the grant (the API and the portal alike); the secret is returned this once."""
    check_url(data.url, http_loopback=http_loopback)
    with store.engine.connect() as conn:
        aliases = entity_aliases(conn)
    entities: list[str] | None
    if data.legal_entities is None:
        entities = None if grant is None else sorted({aliases.get(g, g) for g in grant})
    else:
        entities = sorted({aliases.get(e, e) for e in data.legal_entities})
        if grant is not None:
            allowed = {aliases.get(g, g) for g in grant}
            for code in entities:
                if code not in allowed:
                    raise entity_forbidden(code)
    secret = new_secret()
    sub = store.create(client_id, data.url, data.event_types, entities, data.description, secret)
    return SubscriptionCreated(subscription=sub, secret=secret)


def replay_events(store: SubscriptionStore, sub: Subscription, data: Replay) -> int:
    """Queue every event of a time range again for `sub` (only what it would have received)."""
    until = data.until or utcnow()
    events = store.feed.between(data.since, until, REPLAY_MAX) if until > data.since else []
    return store.replay(sub.id, sub, events)


def replay_event(store: SubscriptionStore, sub: Subscription, event_id: str) -> int:
    """Queue one event again for `sub`: 1, or 0 when the subscription would never have received it."""
    fed = store.feed.get(event_id)
    if fed is None:
        raise ProblemError(404, "not-found", "Not found", f"No event {event_id}.")
    return store.replay(sub.id, sub, [fed])


def subscriptions_router(store: SubscriptionStore, *, http_loopback: bool) -> Router:
    def caller(request: Request[Any, Any, Any]) -> tuple[str, frozenset[str] | None]:
        principal = principal_of(request)
        if principal is None:
            raise ProblemError(401, "unauthorized", "Unauthorized", "A verified client is required.")
        return principal.client_id, principal.legal_entities

    def owned(request: Request[Any, Any, Any], subscription_id: str) -> tuple[str, Subscription]:
        client_id, _ = caller(request)
        sub = store.get(client_id, subscription_id)
        if sub is None or not sub.active:
            raise ProblemError(404, "not-found", "Not found", f"No subscription {subscription_id}.")
        return client_id, sub

    @post("/subscriptions", operation_id="subscriptions.createSubscription", status_code=201, sync_to_thread=True,
          summary="Subscribe an HTTPS URL to event types; the signing secret is shown once")
    def create(request: Request[Any, Any, Any], data: JSONBody[NewSubscription]) -> SubscriptionCreated:
        client_id, grant = caller(request)
        return subscribe(store, client_id, grant, data, http_loopback=http_loopback)

    @get("/subscriptions", operation_id="subscriptions.listSubscriptions", sync_to_thread=True,
         summary="This client's subscriptions")
    def list_subscriptions(request: Request[Any, Any, Any], limit: Limit = 100, cursor: Cursor = None
                           ) -> Page[Subscription]:
        client_id, _ = caller(request)
        return _page([s for s in store.of_client(client_id) if s.active], limit, cursor, "subscriptions")

    @get("/subscriptions/{subscription_id:str}", operation_id="subscriptions.getSubscription", sync_to_thread=True,
         summary="One subscription")
    def get_subscription(request: Request[Any, Any, Any], subscription_id: SubscriptionId) -> Subscription:
        return owned(request, subscription_id)[1]

    @delete("/subscriptions/{subscription_id:str}", operation_id="subscriptions.deleteSubscription",
            sync_to_thread=True, summary="End a subscription; its pending deliveries are dropped")
    def delete_subscription(request: Request[Any, Any, Any], subscription_id: SubscriptionId) -> None:
        owned(request, subscription_id)
        store.deactivate(subscription_id)

    @post("/subscriptions/{subscription_id:str}/rotate", operation_id="subscriptions.rotateSecret",
          status_code=200, sync_to_thread=True,
          summary="A new signing secret (shown once); the old one still signs during the overlap")
    def rotate(request: Request[Any, Any, Any], subscription_id: SubscriptionId,
               data: JSONBody[Rotation]) -> SubscriptionCreated:
        _, sub = owned(request, subscription_id)
        secret = new_secret()
        store.rotate(subscription_id, secret, dt.timedelta(seconds=data.overlap_seconds))
        return SubscriptionCreated(subscription=sub, secret=secret)

    @get("/subscriptions/{subscription_id:str}/deliveries", operation_id="subscriptions.listDeliveries",
         sync_to_thread=True, summary="The delivery log: status, attempts and latency, newest first")
    def deliveries(request: Request[Any, Any, Any], subscription_id: SubscriptionId,
                   status: Annotated[DeliveryStatus | None, QueryParameter()] = None,
                   limit: Limit = 100, cursor: Cursor = None) -> Page[Delivery]:
        owned(request, subscription_id)
        offset = decode_cursor(cursor, DELIVERIES)
        rows = store.log(subscription_id, status, limit + 1, offset)
        return Page(items=rows[:limit],
                    next_cursor=encode_cursor(offset + limit, DELIVERIES) if len(rows) > limit else None)

    @post("/subscriptions/{subscription_id:str}/replay", operation_id="subscriptions.replayEvents", status_code=202,
          sync_to_thread=True, summary="Deliver every event of a time range again")
    def replay(request: Request[Any, Any, Any], subscription_id: SubscriptionId,
               data: JSONBody[Replay]) -> ReplayQueued:
        _, sub = owned(request, subscription_id)
        return ReplayQueued(queued=replay_events(store, sub, data))

    @post("/subscriptions/{subscription_id:str}/events/{event_id:str}/replay", operation_id="subscriptions.replayEvent",
          status_code=202, sync_to_thread=True, summary="Deliver one event again (same webhook-id)")
    def replay_one(request: Request[Any, Any, Any], subscription_id: SubscriptionId, event_id: EventId
                   ) -> ReplayQueued:
        _, sub = owned(request, subscription_id)
        return ReplayQueued(queued=replay_event(store, sub, event_id))

    return Router(path="/experience/subscriptions/v1", opt={"api": API}, tags=["subscriptions"],
                  route_handlers=[create, list_subscriptions, get_subscription,
                                  delete_subscription, rotate, deliveries, replay, replay_one])

