"""The event outbox: CloudEvents written in the same store as the runs that cause them.

Publishing is idempotent by event id (a step re-executed after a crash publishes the
same id, which is ignored), so a subscriber never sees an event twice. Subscribers
read in order by sequence with a cursor; distributed delivery (Redis streams) reads
from here too.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from contracts.common import Page
from contracts.events import CloudEvent
from foundation.clock import as_utc, utcnow
from foundation.paging import decode_cursor, encode_cursor
from process_apis._internal.tables import events

__all__ = ["EventOutbox", "event", "publish_in"]


def event(event_id: str, type_: str, process: str, subject: str | None,
          data: dict[str, Any]) -> CloudEvent[dict[str, Any]]:
    """A CloudEvent of `process`; `event_id` must be stable across re-executions of the step that publishes it."""
    return CloudEvent(id=event_id, source=f"/process/{process.replace('_', '-')}/v1", type=type_, subject=subject,
                      time=utcnow(), data=data)


def publish_in(conn: sa.Connection, event: CloudEvent[dict[str, Any]]) -> bool:
    """Publish inside the caller's transaction (the event commits with the change it reports), once by id."""
    if conn.execute(sa.select(events.c.seq).where(events.c.id == event.id)).first():
        return False
    conn.execute(events.insert().values(id=event.id, type=event.type, source=event.source, subject=event.subject,
                                        time=event.time or utcnow(), data=event.data))
    return True


class EventOutbox:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def publish(self, event: CloudEvent[dict[str, Any]]) -> bool:
        """Store the event once; False when an event with this id was already published."""
        with self.engine.begin() as conn:
            return publish_in(conn, event)

    def list(self, type_: str | None, limit: int, cursor: str | None) -> Page[CloudEvent[dict[str, Any]]]:
        offset = decode_cursor(cursor, "events")
        query = sa.select(events)
        if type_:
            query = query.where(events.c.type == type_)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(events.c.seq).limit(limit + 1).offset(offset)).mappings().all()
        items = [CloudEvent(id=r["id"], type=r["type"], source=r["source"], subject=r["subject"],
                            time=as_utc(r["time"]), data=dict(r["data"])) for r in rows[:limit]]
        return Page(items=items, next_cursor=encode_cursor(offset + limit, "events") if len(rows) > limit else None)
