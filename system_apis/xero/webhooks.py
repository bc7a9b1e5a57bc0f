"""Xero's signed webhooks: an invoice changed in the organisation, so read invoice status and payments back now.

Xero POSTs ``{"events": [{"resourceUrl", "resourceId", "eventDateUtc", "eventType": "CREATE" | "UPDATE",
"eventCategory": "INVOICE" | "CONTACT", "tenantId", "tenantType"}], "firstEventSequence",
"lastEventSequence", "entropy"}`` to the app's delivery URL and signs the raw body:
``x-xero-signature`` is base64(HMAC-SHA256(the app's webhook key, body))
(https://developer.xero.com/documentation/guides/webhooks/overview/). A delivery whose signature does not
match answers 401 and does nothing; a matching one answers 200 with an empty body — which is also how the
"intent to receive" check Xero runs before it turns a subscription on is passed (it sends empty event lists,
some signed wrongly on purpose). A delivery not answered 2xx is retried by Xero.

An event names the changed invoice, not its new state, so it only says *when* to read: any INVOICE event
starts the receivables read-back (`WebhookSinks.invoices_changed`), which reads the changes of every entity's
ERP by its cursor, this organisation's among them. The start is keyed by the delivery's invoice events (their
tenant, resource, type and time), so a redelivery starts nothing new; a read-back already running is joined,
and as it may have passed this organisation before the change, one more read-back runs after it. CONTACT
events are acknowledged and ignored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any, Final

import msgspec
from litestar import MediaType, Request, Response, Router, post

from contracts.problems import ProblemError
from system_apis.registry import InvoicesChangedSink

__all__ = ["SIGNATURE_HEADER", "XeroDelivery", "XeroEvent", "event_key", "sign", "webhook_router"]

SIGNATURE_HEADER: Final = "x-xero-signature"
MAX_BODY: Final = 1_048_576


class XeroEvent(msgspec.Struct, rename="camel", kw_only=True):
    resource_id: str = ""
    resource_url: str = ""
    event_date_utc: str = ""
    event_type: str = ""
    event_category: str = ""
    tenant_id: str = ""
    tenant_type: str = ""


class XeroDelivery(msgspec.Struct, rename="camel", kw_only=True):
    events: list[XeroEvent] = []
    first_event_sequence: int | None = None
    last_event_sequence: int | None = None
    entropy: str | None = None


def sign(webhook_key: str, body: bytes) -> str:
    """The `x-xero-signature` of a body: what Xero sends and what a test delivery carries."""
    return base64.b64encode(hmac.new(webhook_key.encode(), body, hashlib.sha256).digest()).decode()


def event_key(events: list[XeroEvent]) -> str:
    """The start's idempotency key: the same invoice events (a redelivery) give the same key."""
    parts = sorted(f"{e.tenant_id}|{e.resource_id}|{e.event_type}|{e.event_date_utc}" for e in events)
    return "xero-webhook:" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:40]


def webhook_router(*, webhook_key: str, sink: InvoicesChangedSink, path: str) -> Router:
    @post("/", status_code=200, summary="Xero webhook deliveries (signed)", include_in_schema=False)
    async def deliver(request: Request[Any, Any, Any]) -> Response[bytes]:
        body = await request.body()
        given = request.headers.get(SIGNATURE_HEADER, "")
        if len(body) > MAX_BODY or not hmac.compare_digest(given.encode(), sign(webhook_key, body).encode()):
            raise ProblemError(401, "unauthorized", "Signature mismatch",
                               f"The {SIGNATURE_HEADER} header does not sign this body with the app's webhook key.",
                               code="signature_mismatch")
        try:
            delivery = msgspec.json.decode(body, type=XeroDelivery)
        except msgspec.DecodeError as exc:
            raise ProblemError(400, "validation-error", "Validation failed", f"Not a Xero webhook body: {exc}",
                               code="invalid_webhook_body") from exc
        invoices = [e for e in delivery.events if e.event_category == "INVOICE"]
        if invoices:
            try:
                await sink(event_key(invoices))
            except Exception as exc:  # Xero retries what is not answered 2xx: nothing is lost
                raise ProblemError(503, "upstream-unavailable", "Could not start the read-back",
                                   f"The invoice events were not handed on ({type(exc).__name__}); Xero's retry "
                                   "will redeliver them.", code="webhook_sink_failed",
                                   headers={"Retry-After": "60"}) from exc
        return Response(content=b"", status_code=200, media_type=MediaType.TEXT)

    return Router(path=path, route_handlers=[deliver])
