"""The event outbox as the process layer publishes it to the experience layer's subscriptions.

Webhook delivery (experience_apis/subscriptions) fans events out from here by sequence,
and looks one up by id or a time range for a replay — typed rows, never the outbox table.
Each event names the legal entity it belongs to in its data (`legal_entity`, else
`legal_entity_id`); an event that names none is for unrestricted subscribers only.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import sqlalchemy as sa

from contracts.events import CloudEvent
from foundation.clock import as_utc
from process_apis._internal.events import EventOutbox
from process_apis._internal.tables import events

__all__ = ["EventFeed", "FedEvent", "entity_of", "publish_event"]


class FedEvent(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    event: CloudEvent[dict[str, Any]]
    legal_entity: str | None


def entity_of(data: dict[str, Any]) -> str | None:
    for key in ("legal_entity", "legal_entity_id", "legal_entity_code"):
        value = data.get(key)
        if isinstance(value, str) and value and value != "*":
            return value
    return None


def publish_event(engine: sa.Engine, event: CloudEvent[dict[str, Any]]) -> bool:
    """Publish once by id into the outbox (what a process does through its runtime's outbox)."""
    return EventOutbox(engine).publish(event)


def _fed(row: sa.RowMapping) -> FedEvent:
    data = dict(row["data"])
    event = CloudEvent(id=row["id"], type=row["type"], source=row["source"], subject=row["subject"],
                       time=as_utc(row["time"]), data=data)
    return FedEvent(seq=int(row["seq"]), event=event, legal_entity=entity_of(data))


class EventFeed:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def last_seq(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.seq), 0))).scalar_one())

    def after(self, seq: int, limit: int) -> list[FedEvent]:
        """Events published after position `seq`, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(events).where(events.c.seq > seq).order_by(events.c.seq)
                                .limit(limit)).mappings().all()
        return [_fed(r) for r in rows]

    def get(self, event_id: str) -> FedEvent | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(events).where(events.c.id == event_id)).mappings().first()
        return None if row is None else _fed(row)

    def between(self, since: dt.datetime, until: dt.datetime, limit: int) -> list[FedEvent]:
        """Events whose time is in [since, until), oldest first (a replay's range)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(events).where(events.c.time >= since, events.c.time < until)
                                .order_by(events.c.seq).limit(limit)).mappings().all()
        return [_fed(r) for r in rows]
