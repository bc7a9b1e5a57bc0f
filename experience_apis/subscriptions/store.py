"""Subscriptions, their secrets and the deliveries table the dispatcher works from.

Durable by construction: an event becomes one delivery row per matching subscription
(fan-out moves a per-subscription cursor over the outbox with a compare-and-set, so two
dispatchers never fan out the same range twice), and a worker sends an attempt only after
claiming its row with a lease (a conditional UPDATE), so two workers never send the same
attempt at once and a crashed worker's claim simply expires. Nothing is held in memory.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence

import msgspec
import sqlalchemy as sa

from contracts.webhooks import Delivery, DeliveryStatus, Subscription
from experience_apis._internal.attribution import entity_aliases
from foundation.clock import as_utc, utcnow
from foundation.db import metadata
from process_apis.event_feed import EventFeed, FedEvent

__all__ = ["Claimed", "SubscriptionStore", "deliveries", "secrets_table", "subscriptions"]

subscriptions = sa.Table(
    "webhook_subscriptions", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("client_id", sa.String(120), nullable=False, index=True),
    sa.Column("url", sa.String(2000), nullable=False),
    sa.Column("event_types", sa.JSON, nullable=False),
    sa.Column("legal_entities", sa.JSON),
    sa.Column("description", sa.String(200), nullable=False, default=""),
    sa.Column("active", sa.Boolean, nullable=False, default=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("cursor_seq", sa.Integer, nullable=False),
    sa.Column("start_seq", sa.Integer, nullable=False),  # outbox position at creation: only later events
)

secrets_table = sa.Table(
    "webhook_secrets", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subscription_id", sa.String(40), sa.ForeignKey("webhook_subscriptions.id"), nullable=False),
    sa.Column("secret", sa.String(120), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True)),
)

deliveries = sa.Table(
    "webhook_deliveries", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("subscription_id", sa.String(40), sa.ForeignKey("webhook_subscriptions.id"), nullable=False),
    sa.Column("event_id", sa.String(200), nullable=False),
    sa.Column("event_type", sa.String(120), nullable=False),
    sa.Column("generation", sa.Integer, nullable=False, default=0),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_at", sa.DateTime(timezone=True)),
    sa.Column("lease_owner", sa.String(60)),
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    sa.Column("last_status_code", sa.Integer),
    sa.Column("last_latency_ms", sa.Integer),
    sa.Column("last_error", sa.String(300)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("subscription_id", "event_id", "generation", name="uq_webhook_delivery"),
    sa.Index("ix_webhook_deliveries_due", "status", "next_at"),
)


LOOKBACK = 50
"""How many outbox positions behind its cursor a subscription's fan-out looks again (late commits)."""


class Claimed(msgspec.Struct, frozen=True, kw_only=True):
    """A delivery attempt this worker holds the lease for."""

    id: str
    subscription_id: str
    event_id: str
    attempts: int
    url: str


def _subscription(row: sa.RowMapping) -> Subscription:
    ents = row["legal_entities"]
    return Subscription(id=row["id"], url=row["url"], event_types=list(row["event_types"]),
                        legal_entities=None if ents is None else list(ents), description=row["description"],
                        active=bool(row["active"]), created_at=as_utc(row["created_at"]))


def _delivery(row: sa.RowMapping) -> Delivery:
    def t(v: dt.datetime | None) -> dt.datetime | None:
        return None if v is None else as_utc(v)
    status: DeliveryStatus = row["status"]
    return Delivery(id=row["id"], event_id=row["event_id"], event_type=row["event_type"], status=status,
                    attempts=row["attempts"], last_status_code=row["last_status_code"],
                    last_latency_ms=row["last_latency_ms"], last_error=row["last_error"],
                    created_at=as_utc(row["created_at"]),
                    next_attempt_at=t(row["next_at"]) if row["status"] == "pending" else None,
                    delivered_at=t(row["delivered_at"]))


class SubscriptionStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.feed = EventFeed(engine)

    # --- subscriptions ---------------------------------------------------------------

    def create(self, client_id: str, url: str, event_types: Sequence[str], legal_entities: Sequence[str] | None,
               description: str, secret: str) -> Subscription:
        now = utcnow()
        sid = f"sub_{uuid.uuid4().hex}"
        begin = self.feed.last_seq()
        with self.engine.begin() as conn:
            conn.execute(subscriptions.insert().values(
                id=sid, client_id=client_id, url=url, event_types=sorted(set(event_types)),
                legal_entities=None if legal_entities is None else sorted(set(legal_entities)),
                description=description, active=True, created_at=now, cursor_seq=begin, start_seq=begin))
            conn.execute(secrets_table.insert().values(subscription_id=sid, secret=secret, created_at=now))
        found = self.get(client_id, sid)
        assert found is not None
        return found

    def of_client(self, client_id: str) -> list[Subscription]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(subscriptions).where(subscriptions.c.client_id == client_id)
                                .order_by(subscriptions.c.created_at, subscriptions.c.id)).mappings().all()
        return [_subscription(r) for r in rows]

    def get(self, client_id: str, sid: str) -> Subscription | None:
        """A subscription of this client; another client's is as if it did not exist."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(subscriptions).where(
                subscriptions.c.id == sid, subscriptions.c.client_id == client_id)).mappings().first()
        return None if row is None else _subscription(row)

    def deactivate(self, sid: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(subscriptions.update().where(subscriptions.c.id == sid).values(active=False))
            conn.execute(deliveries.update().where(deliveries.c.subscription_id == sid,
                                                   deliveries.c.status == "pending")
                         .values(status="dead", last_error="subscription deleted"))

    def rotate(self, sid: str, secret: str, overlap: dt.timedelta) -> None:
        """Add `secret`; every older secret still in force keeps signing until `overlap` has passed."""
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(secrets_table.update().where(
                secrets_table.c.subscription_id == sid,
                sa.or_(secrets_table.c.expires_at.is_(None), secrets_table.c.expires_at > now + overlap))
                .values(expires_at=now + overlap))
            conn.execute(secrets_table.insert().values(subscription_id=sid, secret=secret, created_at=now))

    def signing_secrets(self, sid: str) -> list[str]:
        now = utcnow()
        with self.engine.connect() as conn:
            return [str(s) for s in conn.execute(
                sa.select(secrets_table.c.secret).where(
                    secrets_table.c.subscription_id == sid,
                    sa.or_(secrets_table.c.expires_at.is_(None), secrets_table.c.expires_at > now))
                .order_by(secrets_table.c.id.desc())).scalars()]

    # --- fan-out -----------------------------------------------------------------------

    def fan_out(self, batch: int = 500) -> int:
        """Turn the outbox's new events into pending deliveries; returns how many were queued.

        Outbox sequence numbers are assigned at insert, not at commit: an event may become
        visible after one with a higher number. So each round looks `LOOKBACK` numbers behind
        the cursor again (never before the subscription began) and skips events it already
        queued; a generation-0 delivery is unique per subscription and event, so two
        dispatchers racing on the same event queue it once.
        """
        queued = 0
        with self.engine.connect() as conn:
            subs = conn.execute(sa.select(subscriptions).where(subscriptions.c.active.is_(True))).mappings().all()
            aliases = entity_aliases(conn) if subs else {}
        for sub in subs:
            cursor, start = int(sub["cursor_seq"]), int(sub["start_seq"])
            fed = self.feed.after(max(start, cursor - LOOKBACK), batch + LOOKBACK)
            wanted = {f.event.id: f for f in fed if _matches(sub, f, aliases)}
            if not wanted and (not fed or fed[-1].seq <= cursor):
                continue
            now = utcnow()
            try:
                with self.engine.begin() as conn:
                    if wanted:
                        seen = set(conn.execute(sa.select(deliveries.c.event_id).where(
                            deliveries.c.subscription_id == sub["id"], deliveries.c.generation == 0,
                            deliveries.c.event_id.in_(list(wanted)))).scalars())
                        for event_id, f in wanted.items():
                            if event_id in seen:
                                continue
                            conn.execute(deliveries.insert().values(
                                id=f"dlv_{uuid.uuid4().hex}", subscription_id=sub["id"], event_id=event_id,
                                event_type=f.event.type, generation=0, status="pending", attempts=0, next_at=now,
                                created_at=now))
                            queued += 1
                    if fed[-1].seq > cursor:
                        conn.execute(subscriptions.update().where(
                            subscriptions.c.id == sub["id"], subscriptions.c.cursor_seq < fed[-1].seq)
                            .values(cursor_seq=fed[-1].seq))
            except sa.exc.IntegrityError:
                continue  # another dispatcher queued the same event first; the next round sees it
        return queued

    def replay(self, sid: str, sub: Subscription, events: Sequence[FedEvent]) -> int:
        """Queue each event again for this subscription (same event id; a new delivery row)."""
        with self.engine.connect() as conn:
            aliases = entity_aliases(conn)
        row = {"event_types": sub.event_types, "legal_entities": sub.legal_entities}
        wanted = [f for f in events if _matches(row, f, aliases)]
        now = utcnow()
        with self.engine.begin() as conn:
            for f in wanted:
                gen = conn.execute(sa.select(sa.func.coalesce(sa.func.max(deliveries.c.generation), -1) + 1)
                                   .where(deliveries.c.subscription_id == sid,
                                          deliveries.c.event_id == f.event.id)).scalar_one()
                conn.execute(deliveries.insert().values(
                    id=f"dlv_{uuid.uuid4().hex}", subscription_id=sid, event_id=f.event.id, event_type=f.event.type,
                    generation=gen, status="pending", attempts=0, next_at=now, created_at=now))
        return len(wanted)

    # --- the dispatcher's side ---------------------------------------------------------

    def claim(self, owner: str, lease: dt.timedelta, limit: int, skip: Sequence[str] = ()) -> list[Claimed]:
        """Lease up to `limit` due attempts (not of the subscriptions in `skip`, which are at capacity)."""
        now = utcnow()
        query = (sa.select(deliveries.c.id, deliveries.c.subscription_id, deliveries.c.event_id,
                           deliveries.c.attempts, subscriptions.c.url)
                 .join(subscriptions, subscriptions.c.id == deliveries.c.subscription_id)
                 .where(deliveries.c.status == "pending", deliveries.c.next_at <= now,
                        sa.or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now))
                 .order_by(deliveries.c.next_at).limit(limit * 4))
        if skip:
            query = query.where(deliveries.c.subscription_id.not_in(list(skip)))
        claimed: list[Claimed] = []
        with self.engine.connect() as conn:
            candidates = conn.execute(query).all()
        for d_id, sid, event_id, attempts, url in candidates:
            if len(claimed) >= limit:
                break
            with self.engine.begin() as conn:
                won = conn.execute(deliveries.update().where(
                    deliveries.c.id == d_id, deliveries.c.status == "pending", deliveries.c.attempts == attempts,
                    sa.or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now))
                    .values(lease_owner=owner, lease_until=now + lease)).rowcount
            if won:
                claimed.append(Claimed(id=d_id, subscription_id=sid, event_id=event_id, attempts=attempts, url=url))
        return claimed

    def pending(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(deliveries)
                                    .where(deliveries.c.status == "pending")).scalar_one())

    def release(self, claim: Claimed, owner: str) -> None:
        """Give a lease back unused (the attempt is due again at once)."""
        with self.engine.begin() as conn:
            conn.execute(deliveries.update().where(deliveries.c.id == claim.id, deliveries.c.lease_owner == owner)
                         .values(lease_owner=None, lease_until=None))

    def finish(self, claim: Claimed, owner: str, *, ok: bool, status_code: int | None, latency_ms: int,
               error: str | None, retry_at: dt.datetime | None) -> None:
        """Record an attempt: delivered, pending again at `retry_at`, or dead (no `retry_at`)."""
        now = utcnow()
        status = "delivered" if ok else ("pending" if retry_at is not None else "dead")
        with self.engine.begin() as conn:
            conn.execute(deliveries.update().where(deliveries.c.id == claim.id, deliveries.c.lease_owner == owner,
                                                   deliveries.c.attempts == claim.attempts)
                         .values(status=status, attempts=claim.attempts + 1, next_at=retry_at, lease_owner=None,
                                 lease_until=None, last_status_code=status_code, last_latency_ms=latency_ms,
                                 last_error=None if error is None else error[:300],
                                 delivered_at=now if ok else None))

    def log(self, sid: str, status: DeliveryStatus | None, limit: int, offset: int = 0) -> list[Delivery]:
        query = sa.select(deliveries).where(deliveries.c.subscription_id == sid)
        if status is not None:
            query = query.where(deliveries.c.status == status)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(deliveries.c.created_at.desc(), deliveries.c.id)
                                .limit(limit).offset(offset)).mappings().all()
        return [_delivery(r) for r in rows]


def _matches(sub: Mapping[str, object] | sa.RowMapping, fed: FedEvent, aliases: dict[str, str]) -> bool:
    types = sub["event_types"]
    if not isinstance(types, list) or fed.event.type not in types:
        return False
    allowed = sub["legal_entities"]
    if allowed is None:
        return True
    if fed.legal_entity is None or not isinstance(allowed, list):
        return False  # what names no entity is for unrestricted subscriptions only
    return aliases.get(fed.legal_entity, fed.legal_entity) in {aliases.get(a, a) for a in allowed}
