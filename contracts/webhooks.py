"""Webhook subscriptions, their deliveries and replays (experience API `/experience/subscriptions/v1`)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

__all__ = ["Delivery", "DeliveryStatus", "EventType", "NewSubscription", "Replay", "ReplayQueued", "Rotation",
           "Subscription", "SubscriptionCreated"]

DeliveryStatus = Literal["pending", "delivered", "dead"]
EventType = Literal["psconnect.project.provisioned", "psconnect.worker.synced", "psconnect.time.posted",
                    "psconnect.invoice.drafted", "psconnect.credit_memo.issued", "psconnect.billing_run.finished",
                    "psconnect.exception.opened", "psconnect.exception.resolved", "psconnect.invoice.posted",
                    "psconnect.payment.received", "psconnect.revenue.recognized", "psconnect.expense.posted"]
"""The event types the processes publish (contracts/events.py EVENT_TYPES)."""
WEBHOOK_URL = r"^(https://[A-Za-z0-9.-]+|http://(127\.0\.0\.1|localhost|\[::1\]))(:[0-9]{1,5})?([/?#][!-~]*)?$"
"""An absolute URL with a host and no credentials (what `check_url` accepts, as a pattern a client can check);
printable ASCII after the host, as a URL travels (a class, not `\\S`, which Python and JSON Schema read differently)."""
EntityCode = Annotated[str, Meta(pattern=r"^[A-Za-z0-9-]{2,20}$")]


class NewSubscription(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    url: Annotated[str, Meta(min_length=8, max_length=2000, pattern=WEBHOOK_URL, description=(
        "Where events are POSTed: https to any host; http only to the loopback host, and only where the "
        "deployment allows it (embedded mode)."))]
    event_types: Annotated[list[EventType], Meta(min_length=1, max_length=50)]
    legal_entities: Annotated[list[EntityCode] | None, Meta(
        description="Only events of these entities (within the caller's grant); null: every entity granted.")] = None
    description: Annotated[str, Meta(max_length=200)] = ""


class Subscription(msgspec.Struct, kw_only=True):
    id: str
    url: str
    event_types: list[str]
    legal_entities: list[str] | None
    description: str
    active: bool
    created_at: dt.datetime


class SubscriptionCreated(msgspec.Struct, kw_only=True):
    subscription: Subscription
    secret: Annotated[str, Meta(description="The signing secret (`whsec_…`), shown this once.")]


class Rotation(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    overlap_seconds: Annotated[int, Meta(ge=0, le=7 * 86400, description="How long the old secret still signs.")
                               ] = 86400


class Replay(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Every event of a time range, [since, until), oldest first (one event: its own replay operation)."""

    since: Annotated[dt.datetime, Meta(tz=True)]
    until: Annotated[Annotated[dt.datetime, Meta(tz=True)] | None, Meta(
        description="Default: now. A range that ends before it begins holds no event (nothing is queued).")] = None


class ReplayQueued(msgspec.Struct, kw_only=True):
    queued: int


class Delivery(msgspec.Struct, kw_only=True):
    id: str
    event_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_latency_ms: int | None
    last_error: str | None
    created_at: dt.datetime
    next_attempt_at: dt.datetime | None
    delivered_at: dt.datetime | None

