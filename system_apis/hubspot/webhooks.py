"""HubSpot's signed webhooks: a deal moving to closed-won, handed once to whoever starts provisioning.

HubSpot POSTs a JSON array of events to the app's target URL, e.g.
``[{"eventId", "subscriptionId", "portalId", "appId", "occurredAt", "subscriptionType": "deal.propertyChange",
"attemptNumber", "objectId", "propertyName": "dealstage", "propertyValue": "closedwon", "changeSource"}]``,
and retries a delivery that is not answered 2xx (https://developers.hubspot.com/docs/api/webhooks).

Verification follows HubSpot's v3 signature rules
(https://developers.hubspot.com/docs/apps/developer-platform/build-apps/authentication/request-validation,
https://developers.hubspot.com/changelog/introducing-version-3-of-webhook-signatures):

- refuse a request whose ``X-HubSpot-Request-Timestamp`` (epoch milliseconds) is older than 5 minutes (and,
  as clock skew can only explain so much, one more than 5 minutes in the future);
- the source string is ``method + uri + body + timestamp`` in UTF-8, where ``uri`` is the full URL HubSpot
  called (scheme, host, path, query) with the URL-encoded characters HubSpot lists decoded;
- ``X-HubSpot-Signature-v3`` must equal base64(HMAC-SHA256(client secret, source)), compared in constant time.

A refused request answers a 401 problem and starts nothing. Behind a proxy the URL HubSpot signed is the
public one: pass ``public_base_url`` so the URI is rebuilt on it.

Exactly once: each event is keyed by portal, subscription, eventId, object and occurrence (HubSpot does not
promise eventId alone is unique; a redelivery repeats all five and differs only in ``attemptNumber``) and
claimed in ``hubspot_webhook_events`` before the sink is called. A delivered event is never handed on
again; a sink failure releases the claim and answers 503, so HubSpot's own retry redelivers it; a claim left
by a crash mid-hand-off is taken over after `CLAIM_LEASE` seconds (the sink — provisioning — is idempotent
by opportunity, so that rare second hand-off starts nothing twice).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Final

import msgspec
import sqlalchemy as sa
from litestar import Request, Response, Router, post

from contracts.problems import ProblemError
from foundation.db import metadata

__all__ = [
    "CLAIM_LEASE",
    "MAX_AGE",
    "WON_STAGES",
    "HubSpotEvent",
    "WebhookSink",
    "claimed_events",
    "sign",
    "signed_uri",
    "webhook_router",
]

WebhookSink = Callable[[str, str], Awaitable[None]]
"""Receives (HubSpot deal id, event key) once per verified closed-won event."""

MAX_AGE: Final = 300.0
CLAIM_LEASE: Final = 120.0
WON_STAGES: Final = frozenset({"closedwon"})
"""Deal stage ids that mean closed-won (the default pipeline's); portals with their own pipelines add theirs."""

# The URL-encoded characters HubSpot decodes before signing the URI (request-validation page above).
_DECODED: Final = {"%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$", "%27": "'", "%28": "(",
                   "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";"}

claimed_events = sa.Table(
    "hubspot_webhook_events", metadata,
    sa.Column("event_key", sa.String(160), primary_key=True),
    sa.Column("deal_id", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("claimed_at", sa.Float, nullable=False),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
)
"""Verified closed-won events: `claimed` while being handed to the sink, then `delivered` for good."""


class HubSpotEvent(msgspec.Struct, kw_only=True, rename="camel"):
    event_id: int
    subscription_id: int
    portal_id: int
    occurred_at: int
    subscription_type: str
    object_id: int
    attempt_number: int = 0
    app_id: int | None = None
    property_name: str | None = None
    property_value: str | None = None
    change_source: str | None = None

    @property
    def key(self) -> str:
        return f"{self.portal_id}:{self.subscription_id}:{self.event_id}:{self.object_id}:{self.occurred_at}"


def signed_uri(url: str) -> str:
    """The URI as HubSpot signs it: the full URL with HubSpot's listed escapes decoded."""
    for encoded, plain in _DECODED.items():
        url = url.replace(encoded, plain).replace(encoded.lower(), plain)
    return url


def sign(secret: str, method: str, url: str, body: bytes, timestamp: str) -> str:
    """``X-HubSpot-Signature-v3`` of a request (what HubSpot sends; the simulator and tests sign with it)."""
    source = method.upper().encode() + signed_uri(url).encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest()).decode()


def _refused(detail: str, code: str) -> ProblemError:
    return ProblemError(401, "invalid-signature", "Webhook signature refused", detail, code=code)


def _verify(request_url: str, method: str, headers: Any, body: bytes, secret: str, now: float) -> None:
    signature = headers.get("x-hubspot-signature-v3")
    timestamp = headers.get("x-hubspot-request-timestamp")
    if not signature or not timestamp:
        raise _refused("X-HubSpot-Signature-v3 and X-HubSpot-Request-Timestamp are required.", "signature_missing")
    if not timestamp.isdigit():
        raise _refused("X-HubSpot-Request-Timestamp is not epoch milliseconds.", "timestamp_invalid")
    age = now - int(timestamp) / 1000
    if age > MAX_AGE or age < -MAX_AGE:
        raise _refused(f"The request timestamp is {age:.0f}s from now; at most {MAX_AGE:.0f}s is accepted.",
                       "timestamp_stale")
    expected = sign(secret, method, request_url, body, timestamp)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise _refused("The signature does not match the request.", "signature_mismatch")


class _Claims:
    """The durable claim on each event (`hubspot_webhook_events`)."""

    def __init__(self, engine: sa.Engine, now: Callable[[], float]) -> None:
        self.engine = engine
        self.now = now

    def claim(self, event: HubSpotEvent) -> bool:
        """Whether this delivery may hand the event on: a new event, or a claim abandoned past its lease."""
        now = self.now()
        with self.engine.begin() as conn:
            try:
                with conn.begin_nested():
                    conn.execute(claimed_events.insert().values(event_key=event.key, deal_id=str(event.object_id),
                                                                state="claimed", claimed_at=now))
                return True
            except sa.exc.IntegrityError:
                pass
            taken = conn.execute(claimed_events.update()
                                 .where(claimed_events.c.event_key == event.key,
                                        claimed_events.c.state == "claimed",
                                        claimed_events.c.claimed_at < now - CLAIM_LEASE)
                                 .values(claimed_at=now))
            return taken.rowcount == 1

    def state(self, event: HubSpotEvent) -> str | None:
        with self.engine.connect() as conn:
            state: str | None = conn.execute(sa.select(claimed_events.c.state)
                                             .where(claimed_events.c.event_key == event.key)).scalar()
            return state

    def delivered(self, event: HubSpotEvent) -> None:
        with self.engine.begin() as conn:
            conn.execute(claimed_events.update().where(claimed_events.c.event_key == event.key)
                         .values(state="delivered", delivered_at=dt.datetime.now(dt.UTC)))

    def release(self, event: HubSpotEvent) -> None:
        with self.engine.begin() as conn:
            conn.execute(claimed_events.delete().where(claimed_events.c.event_key == event.key,
                                                       claimed_events.c.state == "claimed"))


class WebhookAck(msgspec.Struct, kw_only=True):
    """What the route answers HubSpot (HubSpot reads only the status)."""

    received: int
    handed_on: list[str]
    duplicates: list[str]
    ignored: int


def webhook_router(*, client_secret: str, sink: WebhookSink, engine: sa.Engine, path: str = "/webhooks/hubspot",
                   public_base_url: str | None = None, won_stages: Collection[str] = WON_STAGES,
                   now: Callable[[], float] = time.time) -> Router:
    """The route HubSpot's webhook subscription targets (the integrator mounts it; the table must exist).

    Args:
        client_secret: the app's client secret, which HubSpot signs with.
        sink: called once per verified closed-won event with (deal id, event key).
        engine: the database holding `hubspot_webhook_events` (foundation.db metadata).
        public_base_url: scheme and host HubSpot calls (``https://psconnect.example``) when behind a proxy.
    """
    claims = _Claims(engine, now)
    stages = frozenset(won_stages)

    @post("/", status_code=200, summary="HubSpot webhook deliveries (signed, v3)", include_in_schema=False)
    async def receive(request: Request[Any, Any, Any]) -> Response[WebhookAck]:
        body = await request.body()
        url = str(request.url)
        if public_base_url:
            url = public_base_url.rstrip("/") + url[len(str(request.base_url).rstrip("/")):]
        _verify(url, request.method, request.headers, body, client_secret, now())
        try:
            events = msgspec.json.decode(body, type=list[HubSpotEvent])
        except msgspec.DecodeError as exc:
            raise ProblemError(400, "validation-error", "Validation failed",
                               f"Not a HubSpot webhook batch: {exc}", code="invalid_webhook_body") from exc
        ack = WebhookAck(received=len(events), handed_on=[], duplicates=[], ignored=0)
        for event in events:
            if not (event.subscription_type == "deal.propertyChange" and event.property_name == "dealstage"
                    and event.property_value in stages):
                ack.ignored += 1
                continue
            if not claims.claim(event):
                if claims.state(event) == "delivered":
                    ack.duplicates.append(event.key)
                    continue
                raise ProblemError(503, "vendor-unavailable", "Event being handed on",
                                   f"Event {event.key} is being handed on by another delivery; retry later.",
                                   code="webhook_in_flight", headers={"Retry-After": "60"})
            try:
                await sink(str(event.object_id), event.key)
            except Exception as exc:
                claims.release(event)
                raise ProblemError(503, "upstream-unavailable", "Could not start provisioning",
                                   f"Event {event.key} was not handed on ({type(exc).__name__}); HubSpot's "
                                   "retry will redeliver it.", code="webhook_sink_failed",
                                   headers={"Retry-After": "60"}) from exc
            claims.delivered(event)
            ack.handed_on.append(event.key)
        return Response(ack, status_code=200)

    return Router(path=path, route_handlers=[receive])
