"""Routes of the audit trail experience API: `/experience/audit/v1/events`.

Newest first, cursor-paged by position (the time and id of the last event seen), so a
page never repeats or skips an event while new ones are appended. A caller restricted
to legal entities (its token's `legal_entities`) sees only the events of those
entities — events that name no entity are shown to unrestricted callers only — and
naming another entity is a 403.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec
import sqlalchemy as sa
from litestar import Request, Router, get
from litestar.params import QueryParameter

from contracts.audit import AuditEntry
from contracts.common import Page
from contracts.problems import FieldError, ProblemError, invalid_cursor
from experience_apis._internal.attribution import entity_aliases
from foundation.audit import AuditLog, AuditQuery
from foundation.identity import principal_of
from foundation.paging import decode_position, encode_position

__all__ = ["API", "AuditFilters", "audit_router", "read_events"]

API = "experience.audit"
LIST_ID = "audit.events"
"""What the trail's cursors are bound to (foundation.paging): no other list accepts them."""
Text = Annotated[str | None, QueryParameter(max_length=120)]
Outcome = Literal["success", "refused", "error"]


class _After(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Position in the trail: after the event at `a` with id `i` (newest first)."""

    a: dt.datetime
    i: str


class AuditFilters(msgspec.Struct, frozen=True, kw_only=True):
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    client_id: str | None = None
    operation_id: str | None = None
    legal_entity: str | None = None
    outcome: Outcome | None = None
    entity_id: str | None = None


def read_events(trail: AuditLog, grant: frozenset[str] | None, filters: AuditFilters, limit: int,
                cursor: str | None) -> Page[AuditEntry]:
    """One page of the trail as `grant` may see it (None: unrestricted)."""
    for name, value in (("from", filters.since), ("to", filters.until)):
        if value is not None and value.tzinfo is None:
            raise ProblemError(422, "validation-error", "Validation failed", f"`{name}` needs a time zone.",
                               errors=[FieldError(pointer=name, detail="date-time without a time zone")])
    after = None
    if cursor:
        position = decode_position(cursor, _After, LIST_ID)
        if position.a.tzinfo is None:
            raise invalid_cursor()
        after = (position.a, position.i)
    entities = _entities(trail.engine, grant, filters.legal_entity)
    query = AuditQuery(since=filters.since, until=filters.until, client_id=filters.client_id,
                       operation_id=filters.operation_id, legal_entities=entities, outcome=filters.outcome,
                       entity_id=filters.entity_id)
    rows = trail.events(query, limit=limit + 1, after=after)
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(items=rows, next_cursor=encode_position(_After(rows[-1].at, rows[-1].id), LIST_ID) if more else None)


def _entities(engine: sa.Engine, grant: frozenset[str] | None, requested: str | None) -> frozenset[str] | None:
    """The `legal_entity` values the query may read (every alias of each entity); None = every row.

    An entity the catalog does not know is taken as written: the trail may name one the
    facts do not (yet) — it simply matches no rows the caller may not see.
    """
    with engine.connect() as conn:
        aliases = entity_aliases(conn)
    allowed = None if grant is None else frozenset(aliases.get(g, g) for g in grant)
    if requested is None:
        codes = allowed
    else:
        code = aliases.get(requested, requested)
        if allowed is not None and code not in allowed:
            raise ProblemError(403, "forbidden", "Legal entity not granted",
                               f"This client may not read legal entity {code}.", code="legal_entity_forbidden")
        codes = frozenset({code})
    if codes is None:
        return None
    return codes | {alias for alias, code in aliases.items() if code in codes}


def audit_router(trail: AuditLog) -> Router:
    @get("/events", operation_id="audit.listEvents",
         summary="The audit trail, newest first, within the caller's legal entities")
    async def list_events(
        request: Request[Any, Any, Any],
        since: Annotated[dt.datetime | None, QueryParameter(
            name="from", description="Events at or after this time (with a time zone).")] = None,
        until: Annotated[dt.datetime | None, QueryParameter(
            name="to", description="Events before this time (with a time zone).")] = None,
        client: Annotated[str | None, QueryParameter(max_length=120, description="Calling client id.")] = None,
        operation: Annotated[str | None, QueryParameter(
            max_length=120, description="Operation id, e.g. timeToBill.startBillingRun.")] = None,
        legal_entity: Annotated[str | None, QueryParameter(
            pattern=r"^[A-Za-z0-9-]{2,20}$", description="Legal entity code (US01) or ERP id (LE-US01).")] = None,
        outcome: Annotated[Outcome | None, QueryParameter(
            description="success (< 400), refused (4xx) or error (5xx).")] = None,
        record: Text = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, QueryParameter(max_length=400, description="Opaque cursor from `next_cursor`.")
                          ] = None,
    ) -> Page[AuditEntry]:
        principal = principal_of(request)
        grant = frozenset() if principal is None else principal.legal_entities
        filters = AuditFilters(since=since, until=until, client_id=client, operation_id=operation,
                               legal_entity=legal_entity, outcome=outcome, entity_id=record)
        return read_events(trail, grant, filters, limit, cursor)

    return Router(path="/experience/audit/v1", opt={"api": API}, tags=["audit"], route_handlers=[list_events])
